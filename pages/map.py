"""Map: gradient space (and text space beside it); lasso, box or cluster picks set the selection."""

from ui import widgets
from ui.panels.map import map_page

widgets.page_header(
    "Map",
    "Each point is a sample, placed by the direction its gradient pushes the proxy model. "
    "Nearby samples teach the model similar things; isolated ones teach something new.",
)
with widgets.guard():
    map_page(widgets.workspace_with_features())
