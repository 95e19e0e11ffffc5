"""The shard plan of torch.distributed ranks: disjoint windows that cover every missing row once,
the same on every rank; the torchrun environment; rank devices; ``--nproc`` checks."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.features.distributed import (
    RANK_ENV,
    SOLO,
    Group,
    join,
    rank_device,
    torchrun_env,
    validate_nproc,
)


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
@pytest.mark.parametrize("n_todo", [0, 1, 5, 24, 257])
@pytest.mark.parametrize("size", [1, 2, 128])
def test_windows_of_all_ranks_are_disjoint_and_cover_every_row_once(
    world_size: int, n_todo: int, size: int
) -> None:
    rng = np.random.default_rng(0)
    todo = np.sort(rng.choice(10 * n_todo + 1, size=n_todo, replace=False)).astype(np.int64)
    per_rank = [Group(rank=r, world_size=world_size).windows(todo, size) for r in range(world_size)]
    rows = np.concatenate([w for windows in per_rank for w in windows] or [np.zeros(0, np.int64)])
    assert len(rows) == len(todo)
    np.testing.assert_array_equal(np.sort(rows), todo)
    for windows in per_rank:
        assert all(0 < len(w) <= size for w in windows)
    # The same plan from the same rows: nothing random, nothing that depends on the caller.
    again = Group(rank=world_size - 1, world_size=world_size).windows(todo.copy(), size)
    assert all(np.array_equal(a, b) for a, b in zip(again, per_rank[-1], strict=True))


def test_windows_shrink_so_that_no_rank_sits_idle_and_ranks_stay_balanced() -> None:
    todo = np.arange(24)
    counts = [sum(map(len, Group(rank=r, world_size=2).windows(todo, 128))) for r in range(2)]
    assert counts == [12, 12]
    counts = [sum(map(len, Group(rank=r, world_size=4).windows(todo, 4))) for r in range(4)]
    assert counts == [8, 8, 4, 4]  # windows 0..5 of 4 rows, dealt round-robin


def test_solo_is_one_process_that_shares_and_gathers_locally() -> None:
    assert SOLO.is_main and not SOLO.distributed
    assert SOLO.share({"a": 1}) == {"a": 1}
    assert SOLO.gather(3) == [3]
    todo = np.arange(10)
    assert [w.tolist() for w in SOLO.windows(todo, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_plain_process_is_not_a_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RANK_ENV:
        monkeypatch.delenv(name, raising=False)
    assert not torchrun_env()
    assert join("cpu") is SOLO
    full = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29500"}  # fmt: skip
    assert torchrun_env(full)
    assert not torchrun_env({k: v for k, v in full.items() if k != "MASTER_PORT"})


def test_rank_devices() -> None:
    assert rank_device("cpu", 3) == "cpu"
    import torch

    if torch.cuda.is_available():
        assert rank_device("auto", 1) == rank_device("cuda:0", 1) == "cuda:1"
    else:
        assert rank_device("auto", 1) == rank_device(None, 1) == "cpu"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_nproc_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(PrismError) as caught:
        validate_nproc(bad)
    assert caught.value.param == "nproc"
    assert validate_nproc(2) == 2


def test_windows_refuse_a_bad_size() -> None:
    with pytest.raises(PrismError) as caught:
        Group(rank=0, world_size=2).windows(np.arange(4), 0)
    assert caught.value.param == "shard_size"
