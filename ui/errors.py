"""Engine errors shown beside the control they are about.

The engine names the parameter a message is about (``PrismError.param``); the CLI maps it to a
flag, the app to a control: ``CONTROLS`` maps a parameter to the name a form gives the place
under that control. A form leaves such a place under each control (``Slots.under``) and shows an
error with ``Slots.show``: beside its control when the form has one, else where it is called.
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.errors import PrismError
from ui.widgets import error_message, plain

# parameter (as the engine names it) → control (as the app's forms name the place under it)
CONTROLS = {
    # the Data page: where the data is and which columns hold what
    "path": "source",
    "source": "source",
    "prompt": "prompt",
    "prompt_col": "prompt",
    "response": "response",
    "response_col": "response",
    "messages": "messages",
    "messages_col": "messages",
    "text": "text",
    "text_col": "text",
    "id": "id",
    "id_col": "id",
    "columns": "kind",
    # the Features form
    "model": "model",
    "scope": "scope",
    "last_k": "scope",
    "dim": "dim",
    "proj_dim": "dim",
    "seed": "seed",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "dtype": "dtype",
    "sample": "sample",
    "workspace": "workspace",
    "force": "force",
    # selectors, subsets and exports
    "method": "method",
    "budget": "budget",
    "k": "budget",
    "within": "within",
    "start": "start",
    "rescore": "rescore",
    "threshold": "threshold",
    "name": "name",
    "fmt": "format",
    "out": "out",
    # the Grow page (synthesis)
    "target": "target",
    "rounds": "rounds",
    "per_round": "per_round",
    "few_shot": "few_shot",
    "generator": "generator",
    "endpoint": "endpoint",
    "endpoint_model": "endpoint_model",
    "api_key_env": "api_key_env",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_new_tokens": "max_new_tokens",
    "duplicate_cosine": "duplicate_cosine",
    "review": "review",
    "resume": "review",
    "candidates": "candidates",
    "decision": "candidates",
}


def control_of(error: PrismError) -> str | None:
    """The control an error is about, or None when it names no parameter the app sets."""
    return CONTROLS.get(error.param or "")


class Slots:
    """Places under a form's controls, where an error about that control is shown."""

    def __init__(self) -> None:
        self._places: dict[str, DeltaGenerator] = {}

    def under(self, *controls: str, where: DeltaGenerator | None = None) -> None:
        """Leave a place here (or in ``where``, e.g. a column) for errors about ``controls``."""
        place = (where or st).empty()
        for control in controls:
            self._places[control] = place

    def show(self, error: PrismError) -> None:
        """The error's message beside its control; where this is called when there is none."""
        control = control_of(error)
        place = self._places.get(control) if control else None
        if place is None:
            error_message(str(error))
        else:
            place.error(plain(str(error)), icon=":material/error:")
