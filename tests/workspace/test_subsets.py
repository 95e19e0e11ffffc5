"""core.workspace.subsets: named subsets saved in a workspace's subsets.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.errors import PrismError
from core.workspace.store import Workspace
from core.workspace.subsets import delete_subset, save_subset


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    samples = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"]})
    return Workspace.create(tmp_path / "ws", {"dataset": {"n_samples": 3}}, samples)


def test_save_list_and_delete(workspace: Workspace) -> None:
    name = save_subset(workspace, "  my   picks ", ["c", "a", "c"], how={"method": "lasso"})
    assert name == "my picks"
    saved = Workspace.open(workspace.path).subsets()
    assert saved["my picks"]["ids"] == ["c", "a"]  # order kept, duplicates dropped
    assert saved["my picks"]["how"] == {"method": "lasso"}
    assert saved["my picks"]["created"]
    delete_subset(workspace, "my picks")
    assert Workspace.open(workspace.path).subsets() == {}


def test_refusals_say_what_to_do(workspace: Workspace) -> None:
    save_subset(workspace, "one", ["a"])
    with pytest.raises(PrismError, match="already exists"):
        save_subset(workspace, "one", ["b"])
    save_subset(workspace, "one", ["b"], overwrite=True)
    assert workspace.subsets()["one"]["ids"] == ["b"]
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
