"""The vocabulary every generator shares: a chat, the sampling settings, the ``Generator``
interface, the checks on a request and the rule that makes a reply malformed (too long).

Replies are capped (``GenerationSettings.max_reply_chars``, default ``MAX_REPLY_CHARS``, and
``max_new_tokens`` where a server reports its token count): an over-long reply yields ``""`` and
its size in ``failures``, so it counts as malformed. The cap is ``core.data.text.over_limit``,
the one that bounds dataset cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.data.limits import MAX_CELL_CHARS, over_limit
from core.errors import PrismError
from core.validate import check_int, check_number, check_seed

Chat = list[dict[str, str]]

DEFAULT_GENERATOR = "default"
# Longest reply taken as a candidate, in characters: about 8,000 tokens of English text, so that
# the default max_new_tokens (384) never reaches it while a runaway reply is stopped long before
# its features would need gigabytes. A dataset cell may hold up to MAX_CELL_CHARS.
MAX_REPLY_CHARS = 32_768
DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # where an endpoint's key is read from by default


@dataclass(frozen=True)
class GenerationSettings:
    """How candidates are sampled (the published loop: temperature 1.0, top-p 0.95)."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 384
    timeout_s: float = 120.0  # per request, endpoint only
    max_reply_chars: int = MAX_REPLY_CHARS

    def __post_init__(self) -> None:
        check_number(self.temperature, param="temperature", minimum=0, maximum=2)
        check_number(self.top_p, param="top_p", above=0, maximum=1)
        check_int(self.max_new_tokens, param="max_new_tokens", minimum=1)
        check_int(self.max_reply_chars, param="max_reply_chars", minimum=1, maximum=MAX_CELL_CHARS)
        check_number(self.timeout_s, param="timeout_s", above=0)


class Generator(Protocol):
    """Writes one assistant reply per chat; ``label`` says which generator did (provenance)."""

    label: str
    failures: dict[int, str]

    def generate(
        self, chats: Sequence[Chat], *, settings: GenerationSettings, seeds: Sequence[int]
    ) -> list[str]:
        """One completion per chat, in order; ``seeds[i]`` makes chat i reproducible where the
        backend allows it. Per-request failures give ``""`` and a reason in ``failures``."""
        ...


def check_request(chats: Sequence[Chat], seeds: Sequence[int]) -> list[int]:
    for position, chat in enumerate(chats):
        if (
            not isinstance(chat, list)
            or not chat
            or not all(
                isinstance(turn, dict)
                and isinstance(turn.get("role"), str)
                and isinstance(turn.get("content"), str)
                for turn in chat
            )
        ):
            raise PrismError(
                f"chat {position} must be a non-empty list of {{'role': str, 'content': str}} "
                f"turns; got {chat!r:.200}.",
                param="chats",
            )
    if len(seeds) != len(chats):
        raise PrismError(
            f"seeds must hold one seed per chat ({len(chats)}); got {len(seeds)}.", param="seeds"
        )
    return [check_seed(seed, param="seeds") for seed in seeds]


def reply_problem(
    reply: str, settings: GenerationSettings, *, n_tokens: int | None = None
) -> str | None:
    """Why a reply is too long to be a candidate (characters, or tokens when known), else None."""
    if problem := over_limit(n_tokens or 0, settings.max_new_tokens, unit="tokens"):
        return f"the reply {problem} (max_new_tokens; the server did not stop there)"
    if problem := over_limit(len(reply), settings.max_reply_chars):
        return f"the reply {problem} (max_reply_chars)"
    return None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
