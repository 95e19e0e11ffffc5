"""Compare: saved subsets side by side, and what each selector buys against random subsets."""

from ui import explain, widgets
from ui.panels.compare import compare_page

widgets.page_header(
    "Compare",
    "Subsets side by side in gradient space, and G-Vendi against budget for every selector next "
    "to random subsets — how many random rows each selected row is worth.",
)
with widgets.guard():
    compare_page(widgets.workspace_with_features())
    explain.measures_help()
