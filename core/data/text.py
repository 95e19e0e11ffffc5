"""What the proxy model sees of each row: chats, plain text, and one-line previews.

- `conversations` gives, per row, a user/assistant chat (a prompt/response pair or a chat column,
  ShareGPT `from`/`value` accepted) or the plain text.
- `preview_text` gives a short one-line label per row (hover labels, tables).
- `normalise_chat` checks one chat cell; `check_cell_size` refuses cells too long to tokenise
  (`MAX_CELL_CHARS`); `over_limit` is the one length cap, shared with generator replies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data.cells import is_null, row_label, scalar_text, snippet, type_name
from core.data.limits import MAX_CELL_CHARS, over_limit
from core.errors import DataError

if TYPE_CHECKING:
    from core.data.columns import ColumnMap


# ShareGPT and friends name roles differently; the chat template only knows these four.
_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "system": "system",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
}


def message_list(value: Any) -> list[Any] | None:
    """The cell as a Python list (parsing a JSON string, unwrapping a numpy array), else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, (np.ndarray, tuple)):
        value = list(value)
    return value if isinstance(value, list) else None


def looks_like_chat(value: Any) -> bool:
    messages = message_list(value)
    return bool(messages) and all(
        isinstance(m, Mapping) and ("role" in m or "from" in m) for m in messages or []
    )


def normalise_chat(value: Any, *, where: str) -> list[dict[str, str]]:
    """A chat cell as a list of {"role", "content"} dicts (ShareGPT from/value accepted).

    An empty list is returned as is (the row counts as empty); otherwise the last message must
    come from the assistant, since the loss is taken on what the assistant says.
    """
    messages = message_list(value)
    if messages is None:
        raise DataError(
            f"{where}: the messages cell is a {type_name(value)} ({snippet(value)}), expected "
            'a list of {"role": ..., "content": ...} messages (or a JSON string of one).'
        )
    chat = []
    for j, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise DataError(
                f"{where}: message {j + 1} is a {type_name(message)}, expected a dict with "
                '"role" and "content" (or ShareGPT "from" and "value").'
            )
        # Parquet/Arrow unify the keys of all rows, so a missing key shows up as None.
        role = message.get("role")
        if is_null(role):
            role = message.get("from")
        content = message.get("content")
        if is_null(content):
            content = message.get("value")
        norm_role = _ROLE_ALIASES.get(str(role).strip().lower()) if not is_null(role) else None
        if norm_role is None:
            raise DataError(
                f"{where}: message {j + 1} has role {role!r}; expected one of "
                f"{', '.join(sorted(_ROLE_ALIASES))}."
            )
        text = "" if is_null(content) else scalar_text(content)
        if text is None:
            raise DataError(
                f"{where}: message {j + 1} has content of type {type_name(content)}, expected text."
            )
        chat.append({"role": norm_role, "content": text})
    if chat and chat[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: the last message is from {chat[-1]['role']!r}, but it must be from the "
            "assistant (the loss is measured on the assistant's reply). Drop or fix this row."
        )
    return chat


def check_cell_size(n_chars: int, *, col: str, where: str) -> None:
    problem = over_limit(n_chars, MAX_CELL_CHARS)
    if problem:
        raise DataError(
            f"{where}: column {col!r} {problem} characters per content cell (the model could not "
            "read it in any reasonable time or memory). Shorten the cell, split it into several "
            "rows, or drop the row."
        )


def _cell_text(value: Any, *, col: str, where: str) -> str:
    text = None if is_null(value) else scalar_text(value)
    if text is None:
        raise DataError(
            f"{where}: column {col!r} holds {type_name(value)} {snippet(value)}, expected text."
        )
    return text


def conversations(samples: pd.DataFrame, columns: ColumnMap) -> list[list[dict[str, str]] | str]:
    """Per row, what the proxy model sees: a user/assistant chat, or the plain text."""
    for col in columns.content_columns:
        if col not in samples.columns:
            raise DataError(
                f"The samples have no column {col!r}; columns: {', '.join(map(str, samples))}."
            )
    ids = [str(v) for v in samples["id"]] if "id" in samples.columns else None
    out: list[list[dict[str, str]] | str] = []
    if columns.text is not None:
        for i, value in enumerate(samples[columns.text]):
            out.append(_cell_text(value, col=columns.text, where=row_label(i, ids)))
    elif columns.messages is not None:
        for i, value in enumerate(samples[columns.messages]):
            out.append(normalise_chat(value, where=row_label(i, ids)))
    else:
        prompt_col, response_col = str(columns.prompt), str(columns.response)
        pairs = zip(samples[prompt_col], samples[response_col], strict=True)
        for i, (prompt, response) in enumerate(pairs):
            where = row_label(i, ids)
            out.append(
                [
                    {"role": "user", "content": _cell_text(prompt, col=prompt_col, where=where)},
                    {
                        "role": "assistant",
                        "content": _cell_text(response, col=response_col, where=where),
                    },
                ]
            )
    return out


def _shorten(text: str, max_chars: int) -> str:
    flat = " ".join(text.split())  # hover labels are one line
    return flat if len(flat) <= max_chars else flat[: max_chars - 1].rstrip() + "…"


def preview_text(samples: pd.DataFrame, columns: ColumnMap, *, max_chars: int = 200) -> list[str]:
    """Per row, the start of the prompt (or text, or first user message), on one line."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    out = []
    for chat in conversations(samples, columns):
        if isinstance(chat, str):
            text = chat
        else:
            user = [m["content"] for m in chat if m["role"] == "user"]
            text = user[0] if user else (chat[0]["content"] if chat else "")
        out.append(_shorten(text, max_chars))
    return out
