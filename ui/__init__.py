"""The app's streamlit layer: state keys, cached wrappers, charts and shared widgets.

Only this package, ``app.py`` and ``pages/`` import streamlit; ``ui.format``, ``core.measures.selection`` and
``core.workspace.analysis_job`` do not, so they can be tested (and later moved to ``core/``) on their own.
"""
