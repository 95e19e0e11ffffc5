"""Prism engine: gradient features of a proxy LM, their diversity, clusters and layout.

No module in this package imports streamlit.
"""

__version__ = "0.1.0"
