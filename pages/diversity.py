"""Diversity: G-Vendi and the order-q family, clusters, and where the dataset saturates."""

from ui import widgets
from ui.panels.diversity import diversity

widgets.page_header(
    "Diversity",
    "How many different things this data teaches the proxy model, measured on its per-sample "
    "loss gradients (G-Vendi), and where adding more of the same stops helping.",
)
with widgets.guard():
    diversity(widgets.workspace_with_features())
