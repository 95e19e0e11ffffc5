"""Prism's app: page configuration and navigation only; each task is a file in pages/.

`streamlit run app.py` reads this file twice over. First it imports it to build the server: the
`st.App` below, which serves this same file as the app's script behind ui/guard.py's Host/Origin
check (no DNS rebinding). Then it runs it as that script (`__name__ == "__main__"`) for every
browser session: the router.
"""

import streamlit as st

if __name__ != "__main__":
    from ui import guard

    app = st.App(__file__, middleware=guard.middleware())
else:
    from ui.widgets import LOGO, PAGES, sidebar

    st.set_page_config(
        page_title="Prism · gradient-space diversity",
        # A file served by the app itself: a `:material/…:` page icon is fetched from a font host.
        page_icon=LOGO,
        layout="wide",
        initial_sidebar_state="expanded",
    )
    st.logo(str(LOGO), size="large")

    def start() -> None:
        """The app's root URL opens the Map at its own URL, /map."""
        st.switch_page(PAGES["map"])

    # Every page has its own URL (/data, /map, …) that can be shared; Streamlit serves the
    # default page at / only, so the default is a hidden page that moves on to /map.
    navigation = st.navigation(
        [
            st.Page(start, title="Prism", url_path="start", default=True, visibility="hidden"),
            st.Page(PAGES["data"], title="Data", icon=":material/table_view:", url_path="data"),
            st.Page(
                PAGES["features"], title="Features", icon=":material/memory:", url_path="features"
            ),
            st.Page(PAGES["map"], title="Map", icon=":material/scatter_plot:", url_path="map"),
            st.Page(
                PAGES["diversity"],
                title="Diversity",
                icon=":material/insights:",
                url_path="diversity",
            ),
            st.Page(
                PAGES["subsets"], title="Subsets", icon=":material/bookmarks:", url_path="subsets"
            ),
            st.Page(
                PAGES["compare"],
                title="Compare",
                icon=":material/compare_arrows:",
                url_path="compare",
            ),
            st.Page(PAGES["grow"], title="Grow", icon=":material/add_circle:", url_path="grow"),
        ]
    )
    sidebar()
    navigation.run()
