"""Text-space baselines: the text of each sample, and its surface diversity scores.

Gradient space is what Prism is about; these are the surface measures it is compared with.

- ``sample_texts``: the text of each sample as one string — the plain text, or the prompt and
  response (every message of a chat) joined by a blank line: the same content the proxy model
  sees, without its chat template.
- ``lexical_scores``: the n-gram Vendi score (None when no text has a word token) and distinct-2
  of any list of texts, as shown beside G-Vendi in every diversity table (``TEXT_SCORE_KEYS``;
  the workspace-level ``text_scores`` adds the embedding Vendi).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.errors import PrismError
from core.measures.lexical import distinct_n, ngram_vendi

TEXT_SCORE_KEYS = ("embedding_vendi", "ngram_vendi", "distinct_2")


def sample_texts(samples: pd.DataFrame, columns: ColumnMap) -> list[str]:
    """Per row, the sample's text: the plain text, or its messages' contents joined by blank lines."""
    return [
        chat if isinstance(chat, str) else "\n\n".join(m["content"] for m in chat)
        for chat in conversations(samples, columns)
    ]


def lexical_scores(texts: Sequence[str]) -> dict[str, float | None]:
    """``ngram_vendi`` (None when no text has a word token) and ``distinct_2`` of the texts."""
    try:
        vendi: float | None = ngram_vendi(texts)
    except PrismError:  # no text with a word token
        vendi = None
    return {"ngram_vendi": vendi, "distinct_2": distinct_n(texts, n=2)}
