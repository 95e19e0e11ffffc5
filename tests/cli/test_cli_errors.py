"""Engine errors name the parameter; the CLI names the flag of the command that was run."""

from __future__ import annotations

from typing import Any

import pytest

from core.cli import describe_error, flag_for
from core.errors import PrismError


@pytest.mark.parametrize(
    ("argv", "param", "flag"),
    [
        (["select", "ws"], "budget", "--k"),
        (["cluster", "ws"], "n_clusters", "--k"),
        (["embed", "ws"], "n_clusters", "--k"),
        (["embed", "ws"], "n_neighbors", "--neighbours"),
        (["map", "ws"], "n_neighbors", "--n-neighbors"),
        (["features", "data.jsonl"], "shard_size", "--shard-size"),
        (["features", "data.jsonl"], "batch_size", "--batch-size"),
        (["resume", "ws"], "shard_seconds", "--shard-seconds"),
        (["score", "ws"], "ids", "--ids"),
        (["export", "ws"], "fmt", "--format"),
        (["subset", "combine", "ws"], "name", "--name"),
        (["select", "ws"], "threshold", "--option"),
        (["select", "ws"], "rescore", "--option"),
        (["select", "ws"], "start", "--start"),
        (["select", "ws"], "target", "--target"),
        (["select", "ws"], "shortlist", "--option"),
        (["select", "ws"], "agg", "--option"),
        (["target", "add", "ws"], "group_column", "--group-col"),
        (["target", "add", "ws"], "texts", "--text"),
        (["relevance", "ws"], "agg", "--agg"),
        (["target", "coverage", "ws", "t"], "threshold", "--threshold"),
        # a parameter the command has no flag for, or no command at all
        (["score", "ws"], "budget", None),
        (["map", "ws"], "shard_size", None),
        (["nonsense"], "seed", None),
        ([], "seed", None),
        (["cluster", "ws"], None, None),
    ],
)
def test_flag_of_each_parameter(argv: list[str], param: str | None, flag: str | None) -> None:
    assert flag_for(param, argv) == flag


@pytest.mark.parametrize(
    ("argv", "error", "shown"),
    [
        # the parameter opens the message: the flag follows it
        (
            ["features", "d.jsonl", "--seed", "-1"],
            PrismError("seed must be a non-negative integer, got -1.", param="seed"),
            "seed (--seed) must be a non-negative integer, got -1.",
        ),
        (
            ["select", "ws", "--k", "500"],
            PrismError("budget = 500 is more than the 40 rows of this workspace.", param="budget"),
            "budget (--k) = 500 is more than the 40 rows of this workspace.",
        ),
        # elsewhere: the flag leads
        (
            ["score", "ws", "--ids", "ids.txt"],
            PrismError("1 ids are not in the workspace.", param="ids"),
            "--ids: 1 ids are not in the workspace.",
        ),
        # a message that already names the flag is kept as it is
        (
            ["cluster", "ws", "--k", "17"],
            PrismError("--k must be between 1 and 16; got 17.", param="n_clusters"),
            "--k must be between 1 and 16; got 17.",
        ),
        (
            ["select", "ws"],
            PrismError("budget (--k) = 500 is too many.", param="budget"),
            "budget (--k) = 500 is too many.",
        ),
        # no parameter, or none this command has a flag for
        (["score", "ws"], PrismError("no finished features yet"), "no finished features yet"),
        (["score", "ws"], PrismError("budget = 5", param="budget"), "budget = 5"),
    ],
)
def test_messages_name_the_flag(argv: list[str], error: PrismError, shown: str) -> None:
    assert describe_error(error, argv) == shown


def test_a_parameter_inside_a_word_is_not_a_flag_mention() -> None:
    error = PrismError("seeds must be listed", param="seed")
    assert describe_error(error, ["features", "d.jsonl"]) == "--seed: seeds must be listed"


def test_the_flag_reaches_the_user(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: an engine error raised with ``param`` is printed once with its flag, exit 2."""
    import core.cli.analyses
    import core.workspace.analyses

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PrismError("n_clusters must be at most 16, got 17.", param="n_clusters")

    monkeypatch.setattr(core.cli.analyses, "open_workspace", lambda path: None)
    monkeypatch.setattr(core.workspace.analyses, "cluster_workspace", refuse)
    code, out, err = run_cli("cluster", "ws", "--k", "17")
    assert code == 2 and "Traceback" not in err
    assert err.count("error:") == 1
    assert "n_clusters (--k) must be at most 16, got 17." in " ".join(err.split())
