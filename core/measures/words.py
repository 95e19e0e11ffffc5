"""Short human labels for clusters: the words that set each cluster's samples apart.

``top_words`` scores each word by TF-IDF at the level of clusters: the share of a cluster's samples
that use it times log(N / samples that use it anywhere), so words common to every sample do not
name a cluster, and a word must recur in a cluster (in two of its samples, when it has four or
more) to name it. English stop words, numbers and words shorter than three letters
are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse

from core.errors import PrismError
from core.validate import check_int

_TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]{2,}\b"


def top_words(
    texts: Sequence[str],
    labels: np.ndarray,
    *,
    n_clusters: int | None = None,
    n_words: int = 3,
    max_vocabulary: int = 20_000,
) -> list[list[str]]:
    """Per cluster (0 … n_clusters−1), its ``n_words`` most distinctive words; [] if none."""
    # heavy: scikit-learn, only when counting words
    from sklearn.feature_extraction.text import CountVectorizer

    label_array = np.asarray(labels)
    if label_array.ndim != 1 or len(label_array) != len(texts):
        raise PrismError(
            f"labels must give one cluster per text; got {label_array.shape} for {len(texts)} texts.",
            param="labels",
        )
    check_int(n_words, param="n_words", minimum=1)
    k = (
        int(label_array.max()) + 1
        if n_clusters is None and label_array.size
        else int(n_clusters or 0)
    )
    if k == 0:
        return []
    vectorizer = CountVectorizer(
        lowercase=True,
        stop_words="english",
        token_pattern=_TOKEN_PATTERN,
        max_features=max_vocabulary,
        binary=True,  # a sample votes once per word: one long sample cannot name its cluster
        dtype=np.float32,
    )
    try:
        counts = vectorizer.fit_transform([str(t) for t in texts])
    except ValueError:  # every text is empty or made of stop words only
        return [[] for _ in range(k)]
    vocabulary = vectorizer.get_feature_names_out()
    one_hot = scipy.sparse.csr_matrix(
        (np.ones(label_array.size, dtype=np.float32), (label_array, np.arange(label_array.size))),
        shape=(k, label_array.size),
    )
    # Sparse throughout: k clusters × a 20,000-word vocabulary would be 400 MB dense at k = 5,000.
    per_cluster = scipy.sparse.csr_matrix(one_hot @ counts)  # k × vocabulary
    sizes = np.bincount(label_array, minlength=k)
    used_by = np.asarray(counts.sum(axis=0)).ravel()  # samples using each word
    idf = np.log(label_array.size / np.maximum(used_by, 1)).astype(np.float32)
    out: list[list[str]] = []
    for c in range(k):
        start, end = per_cluster.indptr[c], per_cluster.indptr[c + 1]
        if start == end:
            out.append([])
            continue
        words = per_cluster.indices[start:end]
        samples_using = per_cluster.data[start:end]
        scores = samples_using / sizes[c] * idf[words]
        if sizes[c] >= 4:
            scores = np.where(samples_using >= 2, scores, 0.0)
        # Highest score first; ties broken by the word itself, so labels are stable.
        order = np.lexsort((vocabulary[words], -scores))[:n_words]
        out.append([str(vocabulary[words[i]]) for i in order if scores[i] > 0])
    return out
