"""Selectors (random, cluster-balanced, k-center, greedy Vendi, …) and row filters."""
