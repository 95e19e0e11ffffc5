"""The chats a generator is sent, and how its replies become samples.

A prompt/response (or chat) dataset grows in two steps, as published: the generator is shown a
few example prompts and asked for a new one, then answers that new prompt after the examples'
own prompt → response turns. A plain-text dataset grows in one step: a new text like the
examples. ``clean_reply`` turns a raw reply into the sample's text, or None when it is malformed
(empty, a bare label, or a copy of an example).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Chat = list[dict[str, str]]
MIN_CHARS = 8  # shorter replies are not samples (a bare number, "Sure!", a label)
_SYSTEM = "You write new, high-quality training examples for a language model."
_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:new\s+|example\s*\d*\s*)?(?:question|problem|prompt|text|example|answer|"
    r"response|solution)\s*\d*\s*(?:\*\*)?\s*[:.-]\s*(?:\*\*)?\s*",
    flags=re.IGNORECASE,
)


@dataclass(frozen=True)
class Example:
    """A pool sample as the generator sees it: a prompt and its response, or a plain text."""

    prompt: str | None = None
    response: str | None = None
    text: str | None = None


def _numbered(items: Sequence[str], noun: str) -> str:
    return "\n\n".join(f"{noun} {i}:\n{item.strip()}" for i, item in enumerate(items, 1))


def _ask_for_one_more(items: Sequence[str], kind: str, like: str) -> Chat:
    """Show the examples and ask for one new ``kind`` of the same ``like``."""
    return [
        {"role": "system", "content": _SYSTEM},
        {
            "role": "user",
            "content": (
                f"Here are {len(items)} example {kind}s from a dataset.\n\n"
                f"{_numbered(items, 'Example')}\n\n"
                f"Write one new {kind} of the same {like} that differs from every example. "
                f"Reply with the new {kind} only."
            ),
        },
    ]


def prompt_chat(examples: Sequence[Example]) -> Chat:
    """Ask for one new prompt like the examples' prompts."""
    return _ask_for_one_more([e.prompt or "" for e in examples], "question", "kind and difficulty")


def response_chat(prompt: str, examples: Sequence[Example]) -> Chat:
    """Ask for the response to ``prompt``, after the examples as worked user → assistant turns."""
    chat: Chat = [{"role": "system", "content": "You are a helpful assistant."}]
    for example in examples:
        chat += [
            {"role": "user", "content": example.prompt or ""},
            {"role": "assistant", "content": example.response or ""},
        ]
    return [*chat, {"role": "user", "content": prompt}]


def text_chat(examples: Sequence[Example]) -> Chat:
    """Ask for one new text like the example texts."""
    return _ask_for_one_more([e.text or "" for e in examples], "text", "kind, style and length")


def clean_reply(raw: str | None, examples: Sequence[str] = ()) -> str | None:
    """The sample text in a generator's reply, or None when the reply is malformed.

    Strips a leading label ("New question:", "**Problem 3:**"), surrounding quotes and
    whitespace. Malformed: nothing left, fewer than ``MIN_CHARS`` characters, or the same text
    as one of ``examples`` (the generator copied its input).
    """
    if not isinstance(raw, str):
        return None
    text = _LABEL.sub("", raw.strip(), count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    if len(text) < MIN_CHARS:
        return None
    if any(text == e.strip() for e in examples):
        return None
    return text
