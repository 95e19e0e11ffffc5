"""Text-space baselines of a workspace: the text of each sample and its diversity scores.

Gradient space is what Prism is about; these are the surface measures it is compared with.

- ``sample_texts`` / ``workspace_texts``: the text of each sample as one string — the plain text,
  or the prompt and response (every message of a chat) joined by a blank line: the same content
  the proxy model sees, without its chat template.
- ``lexical_workspace``: distinct-1…4 and the n-gram Vendi score of the whole set, stored as the
  manifest section ``lexical`` (so large sets are not re-tokenised for every table).
- ``has_lexical``: whether that section belongs to the workspace's current samples.
- ``text_scores``: the three text-space numbers shown beside G-Vendi in every diversity table —
  ``embedding_vendi`` (Vendi of the sentence embeddings; None until ``prism embed`` has run),
  ``ngram_vendi`` and ``distinct_2`` — for any rows of a workspace.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from core.data.dataset import ColumnMap, conversations
from core.errors import PrismError
from core.measures.lexical import NGRAM_RANGE, distinct_n, lexical_summary, ngram_vendi
from core.measures.vendi import check_indices, subset_vendi
from core.workspace.store import Workspace

LEXICAL = "lexical"
TEXT_SCORE_KEYS = ("embedding_vendi", "ngram_vendi", "distinct_2")


def sample_texts(samples: pd.DataFrame, columns: ColumnMap) -> list[str]:
    """Per row, the sample's text: the plain text, or its messages' contents joined by blank lines."""
    return [
        chat if isinstance(chat, str) else "\n\n".join(m["content"] for m in chat)
        for chat in conversations(samples, columns)
    ]


def workspace_texts(workspace: Workspace) -> list[str]:
    """``sample_texts`` of every sample of a workspace, in row order (cached per file version)."""
    columns = ColumnMap.from_dict(workspace.manifest["dataset"]["columns"])
    path = workspace.samples_path
    stat = path.stat()
    return list(_texts(str(path), stat.st_mtime_ns, stat.st_size, columns))


@lru_cache(maxsize=4)
def _texts(path: str, mtime_ns: int, size: int, columns: ColumnMap) -> tuple[str, ...]:
    # Every diversity table asks for the texts of each of its subsets: read them once.
    wanted = ["id", *columns.content_columns]
    return tuple(sample_texts(pd.read_parquet(path, columns=wanted), columns))


def _fingerprint(workspace: Workspace) -> str | None:
    value = workspace.manifest.get("dataset", {}).get("fingerprint")
    return None if value is None else str(value)


def lexical_workspace(workspace: Workspace, *, texts: list[str] | None = None) -> dict[str, Any]:
    """distinct-1…4 and the n-gram Vendi score of the whole set; stored as section ``lexical``."""
    texts = workspace_texts(workspace) if texts is None else texts
    start = time.perf_counter()
    record: dict[str, Any] = {
        "n": len(texts),
        "fingerprint": _fingerprint(workspace),
        "tokens": "lower-cased word tokens (runs of letters, digits, underscore)",
        "ngram_range": list(NGRAM_RANGE),
        **lexical_summary(texts),
    }
    record["seconds"] = round(time.perf_counter() - start, 3)
    workspace.update(LEXICAL, record)
    return record


def has_lexical(workspace: Workspace) -> bool:
    """True when the section ``lexical`` was computed for this workspace's current samples."""
    cached = workspace.manifest.get(LEXICAL, {})
    return cached.get("n") == workspace.n_samples and cached.get("fingerprint") == _fingerprint(
        workspace
    )


def _ngram_vendi_or_none(texts: list[str]) -> float | None:
    try:
        return ngram_vendi(texts)
    except PrismError:  # no text with a word token
        return None


def text_scores(workspace: Workspace, rows: np.ndarray) -> dict[str, float | None]:
    """Embedding Vendi, n-gram Vendi and distinct-2 of the samples at ``rows`` (row positions).

    Repeated rows count repeatedly, as in ``core.measures.vendi.subset_vendi``. ``embedding_vendi`` is None
    while the workspace has no embeddings; ``ngram_vendi`` is None when no selected text has a
    word token. For the whole set, the values stored by ``lexical_workspace`` are reused.
    """
    texts = workspace_texts(workspace)
    positions = check_indices(rows, len(texts), name="rows")
    embedding = None
    if workspace.has_embeddings:
        embedding = subset_vendi(workspace.embeddings(), positions, qs=(1.0,))[1.0]
    whole = positions.size == len(texts) and np.array_equal(
        np.sort(positions), np.arange(len(texts))
    )
    if whole and has_lexical(workspace):
        cached = workspace.manifest[LEXICAL]
        lexical = {"ngram_vendi": cached["ngram_vendi"], "distinct_2": cached["distinct_2"]}
    else:
        chosen = [texts[i] for i in positions]
        lexical = {
            "ngram_vendi": _ngram_vendi_or_none(chosen),
            "distinct_2": distinct_n(chosen, n=2),
        }
    return {"embedding_vendi": embedding, **lexical}
