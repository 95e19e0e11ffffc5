"""core.workspace.subsets: named subsets saved in a workspace's subsets.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.errors import PrismError
from core.workspace.records import SubsetRecord
from core.workspace.store import Workspace
from core.workspace.subsets import delete_subset, save_subset, stale_reason


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    samples = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"]})
    return Workspace.create(tmp_path / "ws", {"dataset": {"n_samples": 3}}, samples)


def test_save_list_and_delete(workspace: Workspace) -> None:
    name = save_subset(workspace, "  my   picks ", ["c", "a", "c"], how={"method": "lasso"})
    assert name == "my picks"
    saved = Workspace.open(workspace.path).subsets()
    assert list(saved["my picks"].ids) == ["c", "a"]  # order kept, duplicates dropped
    assert saved["my picks"].how == {"method": "lasso"}
    assert saved["my picks"].created
    delete_subset(workspace, "my picks")
    assert Workspace.open(workspace.path).subsets() == {}


def test_refusals_say_what_to_do(workspace: Workspace) -> None:
    save_subset(workspace, "one", ["a"])
    with pytest.raises(PrismError, match="already exists"):
        save_subset(workspace, "one", ["b"])
    save_subset(workspace, "one", ["b"], overwrite=True)
    assert list(workspace.subsets()["one"].ids) == ["b"]
    with pytest.raises(PrismError, match="name"):
        save_subset(workspace, "   ", ["a"])
    with pytest.raises(PrismError, match="at most 80"):
        save_subset(workspace, "x" * 81, ["a"])
    with pytest.raises(PrismError, match="empty"):
        save_subset(workspace, "none", [])
    with pytest.raises(PrismError, match="not samples"):
        save_subset(workspace, "ghost", ["a", "zzz"])
    with pytest.raises(PrismError, match="no subset"):
        delete_subset(workspace, "missing")


def test_subsets_json_reads_as_records_and_writes_back_what_it_held(
    workspace: Workspace,
) -> None:
    """Files of every age read as ``SubsetRecord``s and are written back key for key: a hand-made
    one without ``created`` or ``how``, a stale one, a rebuilt one, one with a key this version
    does not know."""
    on_disk = {
        "old": {"ids": ["a", "b"], "how": {"method": "lasso"}, "created": "2025-01-02T03:04:05"},
        "hand": {"ids": ["c"]},
        "stale": {"ids": ["a"], "how": {}, "stale": {"changed": 1, "marked": "2025-02-01"}},
        "rebuilt": {
            "ids": ["b"],
            "how": {"method": "random", "k": 1, "seed": 0, "options": {}},
            "created": "2025-03-01",
            "rebuilt": {"manifest": "/x/manifest.json", "identical": True, "when": "2025-03-02"},
            "note": {"by": "a newer Prism"},
        },
    }
    path = workspace.path / "subsets.json"
    path.write_text(json.dumps(on_disk))
    records = workspace.subsets()
    assert all(isinstance(r, SubsetRecord) for r in records.values())
    assert records["old"].ids == ("a", "b") and records["old"].how == {"method": "lasso"}
    assert records["hand"].how == {} and records["hand"].created is None
    assert records["stale"].stale is not None and records["stale"].stale.changed == 1
    assert stale_reason(records["stale"]) is not None and stale_reason(records["old"]) is None
    rebuilt = records["rebuilt"].rebuilt
    assert (
        rebuilt is not None and rebuilt.identical is True and rebuilt.source == "/x/manifest.json"
    )
    assert records["rebuilt"].extra == {"note": {"by": "a newer Prism"}}
    workspace.write_subsets(records)
    written = json.loads(path.read_text())
    assert written == {**on_disk, "hand": {"ids": ["c"], "how": {}}}  # "how" is always written
    assert list(written) == list(on_disk)
    assert all(list(written[n]) == list(on_disk[n]) for n in on_disk if n != "hand")
    assert Workspace.open(workspace.path).subsets() == records
