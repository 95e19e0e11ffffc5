"""Choosing rows: selectors and row filters.

- ``selectors``: ``SELECTORS``, one typed ``SelectorSpec`` per selector, and ``select``.
- ``pool``: what a selector chooses from (``Pool``) and how many rows it keeps (the budget).
- ``targeted``: the selectors that rank by relevance to a target set (``targeted``,
  ``targeted_diverse``).
- ``greedy``: the lazy greedy behind k-center and greedy Vendi, and its eager reference.
- ``filters``: conditions on the samples table's columns (ranges, values, text).
"""
