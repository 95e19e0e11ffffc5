"""Prism engine: gradient features of a proxy LM, their diversity, clusters and layout.

One subpackage per stage of the pipeline:

- ``core.data``: read datasets (every format, in record batches), cells, columns, ids, text view;
- ``core.features``: proxy models, tokenising, loss, scope, the sketch, the extractor;
- ``core.measures``: the Vendi score, curves, clusters, layout, neighbours, text-space measures;
- ``core.select``: selectors, the greedy, filters;
- ``core.workspace``: the store, its schema, analyses, subsets, compare, export, jobs;
- ``core.cli``: the ``prism`` command line.

No module in this package imports streamlit. ``__version__`` is the one place the package's
version is written (``pyproject.toml`` reads it from here).
"""

__version__ = "0.1.0"
