"""What the pages show, one module per thing: a page reads its widgets and calls these.

- ``workspaces``, ``data``: the workspaces the app knows; a dataset and its columns (Data)
- ``features``, ``jobs``: the feature settings; background jobs followed live (Features, Map)
- ``map``, ``selection``, ``clusters``, ``textspace``: the map, its selection panel, the cluster
  tables, text space beside gradient space (Map, Diversity)
- ``diversity``: Vendi orders and the saturation curve (Diversity)
- ``subsets``, ``selectors``, ``filters``, ``combine``, ``records``, ``export``: saved subsets and
  the ways to make, read and export them (Subsets, Map)
- ``compare``, ``curves``: subsets side by side; G-Vendi against budget (Compare)
"""
