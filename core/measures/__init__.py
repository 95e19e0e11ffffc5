"""Measures on feature matrices: the Vendi score, clusters, layouts, neighbours, text measures."""
