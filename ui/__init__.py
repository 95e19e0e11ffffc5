"""The app's Streamlit layer, and nothing else: no numbers, selection logic, filtering or jobs
are computed here (they live in ``core/``).

- ``state``: session-state keys, the current workspace and selection
- ``cache``: cached reads of a workspace and its derived tables, background results
- ``charts`` / ``curve_charts``: Plotly figures (map, cluster sizes; G-Vendi curves)
- ``widgets``: the sidebar, the error guard, empty states, text escaping
- ``errors``: engine errors shown beside the control of their parameter
- ``events``: Plotly selection events read as row numbers (no streamlit import)
- ``paths``: which server files the app may read and write (data roots, uploads, exports)
- ``format``, ``explain``: numbers and measures in words; ``guard``: the Host/Origin check
- ``panels/``: what the pages show, one module per thing shown

Only this package, ``app.py`` and ``pages/`` import streamlit.
"""
