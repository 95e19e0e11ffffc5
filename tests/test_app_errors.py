"""Engine errors are shown beside the control of the parameter they name (``ui.errors``)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _form(param: str | None) -> None:
    import streamlit as st

    from core.errors import PrismError
    from ui.errors import Slots

    slots = Slots()
    st.number_input("Seed", value=0, key="seed")
    slots.under("seed")
    st.text_input("Subset name", key="name")
    slots.under("name")
    st.markdown("end of the form")
    slots.show(PrismError("That will not do.", param=param))


def _order(param: str | None) -> list[str]:
    at = AppTest.from_function(_form, args=(param,)).run()
    assert not at.exception
    kinds = []
    for node in at.main:
        kind = getattr(node, "type", "")
        if kind == "error":
            kinds.append("error")
        elif kind in ("number_input", "text_input"):
            kinds.append(node.label)
        elif kind == "markdown":
            kinds.append("markdown")
    return kinds


def test_error_shows_under_the_control_of_its_parameter() -> None:
    assert _order("seed") == ["Seed", "error", "Subset name", "markdown"]
    assert _order("name") == ["Seed", "Subset name", "error", "markdown"]
    assert _order("budget") == ["Seed", "Subset name", "markdown", "error"]  # no such control
    assert _order("k") == ["Seed", "Subset name", "markdown", "error"]  # budget: not in this form
    assert _order(None) == ["Seed", "Subset name", "markdown", "error"]


def test_every_parameter_maps_to_a_named_control() -> None:
    from ui.errors import CONTROLS

    assert CONTROLS["seed"] == "seed" and CONTROLS["k"] == CONTROLS["budget"] == "budget"
    assert all(isinstance(v, str) and v for v in CONTROLS.values())
