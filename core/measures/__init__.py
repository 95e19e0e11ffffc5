"""Measures on feature matrices, arrays in and arrays out (never a workspace).

- ``vendi``: the Vendi score (the one implementation), its orders and their spelling.
- ``curves``: G-Vendi against subset size — budget curves and random baselines, one schema.
- ``clusters``: spherical k-means, sparse clusters, coverage; ``words``: the words naming a cluster.
- ``layout``: the 2-D map (UMAP); ``selection``: scores of a selection on the map, the lasso.
- ``relevance``: relevance of rows to a target set (LESS mean-max, max, whitened), its coverage.
- ``neighbours``: how far two feature spaces agree on who is near whom.
- ``lexical``, ``textspace``, ``embed``: text-space baselines (n-grams, sentence embeddings).
"""
