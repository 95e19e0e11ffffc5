"""Grow: generate new samples aimed at the sparse regions of gradient space, keep those that land
there, and add them (the Prismatic Synthesis loop)."""

from ui import widgets
from ui.panels.grow import grow_page

widgets.page_header(
    "Grow",
    "Ask a generator for new samples modelled on the sparse clusters, keep the ones whose "
    "gradients land there, and add them to the data. Every candidate is kept with where it came "
    "from and why it was kept or rejected.",
)
with widgets.guard():
    grow_page(widgets.workspace_with_features())
