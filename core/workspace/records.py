"""JSON records as frozen dataclasses: the base ``Record``, and a subset of ``subsets.json``.

``Record.from_dict`` reads a JSON object tolerantly — a missing key takes its default, an unknown
key is kept in ``extra`` — and ``to_dict`` writes it back (``None`` values and empty ``extra`` left
out, tuples as lists, nested records as objects), so a file read and written again keeps what it
held. The manifest's sections (``core.workspace.manifest``) are records; so is each named subset:

    {"hard cases": {"ids": ["12", "907"], "how": {"method": "lasso"}, "created": "…",
                    "stale": {"changed": 3, "marked": "…"},
                    "rebuilt": {"manifest": "…", "exported": "…", "subset": "…",
                                "identical": true, "when": "…"}}}

``stale`` and ``rebuilt`` appear only when a subset was marked stale or rebuilt from an export
(``core.workspace.subsets``); older files lack ``created`` or even ``how`` and read the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def plain(value: Any) -> Any:
    """``value`` as JSON holds it: tuples become lists and records objects, all the way down."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Record:
    """A JSON object with known keys as fields; keys this Prism does not know stay in ``extra``."""

    # Keys this Prism does not know (a newer writer, a test's own): kept through a round trip.
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any] | None) -> R:
        data = data if isinstance(data, Mapping) else {}
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for name, spec in known.items():
            if name in data and data[name] is not None:
                value = data[name]
                if isinstance(value, list) and "tuple" in str(spec.type):
                    value = tuple(value)
                values[name] = value
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in fields(self):
            if spec.name == "extra":
                continue
            value = getattr(self, spec.name)
            if value is not None:
                out[spec.name] = plain(value)
        out.update(plain(dict(self.extra)))
        return out

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SubsetStale(Record):
    """Why a subset's ids no longer name its rows: how many changed in a rebuild, and when."""

    changed: int | None = None
    marked: str | None = None


# SubsetRebuilt's field ``source`` is the key ``manifest`` on disk (``.manifest`` is the store's).
_FILE = {"manifest": "source"}
_KEY = {"source": "manifest"}


@dataclass(frozen=True)
class SubsetRebuilt(Record):
    """Where a subset was rebuilt from: the export manifest's file (``source``, stored under the
    key ``manifest``), its export date and subset, whether the ids came out identical, and when."""

    source: str | None = None
    exported: str | None = None
    subset: str | None = None
    identical: bool | None = None
    when: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SubsetRebuilt:
        data = data if isinstance(data, Mapping) else {}
        return super().from_dict({_FILE.get(k, k): v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {_KEY.get(k, k): v for k, v in super().to_dict().items()}


@dataclass(frozen=True)
class SubsetRecord(Record):
    """A named subset: its sample ids (strings, in order) and how it was made (``how``: the
    method and its settings, as the maker wrote them), when, and whether it went stale or was
    rebuilt."""

    ids: tuple[str, ...] = ()
    how: Mapping[str, Any] = field(default_factory=dict)
    created: str | None = None
    stale: SubsetStale | None = None
    rebuilt: SubsetRebuilt | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SubsetRecord:
        record = super().from_dict(data)
        stale, rebuilt = record.stale, record.rebuilt  # the raw values, read as they were
        return record.replace(
            ids=tuple(str(i) for i in record.ids),
            how=dict(record.how) if isinstance(record.how, Mapping) else {},
            stale=SubsetStale.from_dict(stale) if isinstance(stale, Mapping) and stale else None,
            rebuilt=SubsetRebuilt.from_dict(rebuilt) if isinstance(rebuilt, Mapping) else None,
        )

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ExportManifest(Record):
    """An export's ``<out>.manifest.json`` (``core.workspace.export``), as read back to rebuild
    its subset: the workspace it came from (``fingerprint`` …), the subset (name, how, ids), when
    it was exported, its rows and the sha256 of the data beside it; every other key in ``extra``."""

    exported: str | None = None
    n_rows: int | None = None
    workspace: Mapping[str, Any] = field(default_factory=dict)
    subset: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    @property
    def fingerprint(self) -> str | None:
        """The dataset fingerprint of the workspace it was exported from."""
        value = self.workspace.get("fingerprint")
        return str(value) if value else None
