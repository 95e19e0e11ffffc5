"""Curation on a real workspace: subsets and set operations, selectors, compare, export.

The export tests use the tiny-model workspace built from a JSONL file by `prism features`, so
"re-import" means loading the exported file with Prism's own loader and comparing rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_workspaces import make_workspace
from cli_support import N_SAMPLES, sample_records

from core.data.dataset import load_dataset
from core.errors import PrismError
from core.measures.curves import prefix_vendi, random_equivalent, summarise_curves
from core.measures.vendi import subset_vendi, vendi_score
from core.select.selectors import Pool, select
from core.workspace.compare import WHOLE_SET, budget_curves, compare_subsets, subset_report
from core.workspace.export import FORMATS, export_bytes, export_rows, read_export
from core.workspace.selector_runs import run_selector
from core.workspace.store import Workspace
from core.workspace.subsets import (
    combine_subsets,
    delete_subset,
    edit_subset,
    rename_subset,
    restore_subset,
    rows_of,
    save_subset,
    subset_record,
)


@pytest.fixture
def synthetic(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", n=240, dim=32, seed=0)


# -- subsets and set operations ----------------------------------------------------------------


def test_set_operations_rename_edit_and_undo(synthetic: Workspace) -> None:
    save_subset(synthetic, "a", ["1", "2", "3", "4"])
    save_subset(synthetic, "b", ["3", "4", "5"])
    for operation, expected in (
        ("union", ("1", "2", "3", "4", "5")),
        ("intersection", ("3", "4")),
        ("difference", ("1", "2")),
    ):
        name = combine_subsets(synthetic, operation, ["a", "b"], name=operation[0])
        assert subset_record(synthetic, name).ids == expected
    complement = subset_record(synthetic, combine_subsets(synthetic, "complement", ["a"], name="c"))
    assert complement.size == 240 - 4 and "1" not in complement.ids
    assert complement.how == {"method": "complement", "of": ["a"]}
    with pytest.raises(PrismError, match="empty"):
        combine_subsets(synthetic, "difference", ["b", "u"], name="nothing")

    assert rename_subset(synthetic, "a", "  first   four ") == "first four"
    assert list(synthetic.subsets())[0] == "first four"  # keeps its place
    assert edit_subset(synthetic, "first four", add=["9"], remove=["1"]) == 4
    assert subset_record(synthetic, "first four").ids == ("2", "3", "4", "9")
    record = subset_record(synthetic, "first four")
    delete_subset(synthetic, "first four")
    assert "first four" not in synthetic.subsets()
    restore_subset(synthetic, "first four", record)
    assert subset_record(synthetic, "first four") == record
    np.testing.assert_array_equal(rows_of(synthetic, "first four"), [2, 3, 4, 9])
    with pytest.raises(PrismError, match="already exists"):
        rename_subset(synthetic, "first four", "b")
    with pytest.raises(PrismError, match="no subset named"):
        subset_record(synthetic, "missing")


def test_run_selector_records_how_and_reproduces(synthetic: Workspace) -> None:
    name, rows = run_selector(synthetic, "vendi_greedy", name="greedy", k=30, seed=2)
    record = subset_record(synthetic, name)
    assert record.how == {"method": "vendi_greedy", "k": 30, "seed": 2, "options": {}}
    np.testing.assert_array_equal(rows_of(synthetic, name), rows)
    save_subset(synthetic, "pool", [str(i) for i in range(100)])
    _, within = run_selector(
        synthetic, "cluster_balanced", name="balanced", k=20, seed=0, within="pool"
    )
    assert within.max() < 100
    assert subset_record(synthetic, "balanced").how["clusters"]["n_clusters"] == int(
        synthetic.manifest["clusters"]["n_clusters"]
    )
    _, grown = run_selector(synthetic, "k_center", name="grown", k=40, seed=0, start="greedy")
    np.testing.assert_array_equal(grown[:30], rows)
    with pytest.raises(PrismError, match="already exists"):
        run_selector(synthetic, "random", name="greedy", k=5)


# -- compare ---------------------------------------------------------------------------------


def test_compare_table_matches_direct_computation(synthetic: Workspace) -> None:
    run_selector(synthetic, "random", name="r", k=50, seed=0)
    table = compare_subsets(synthetic, ["r"])
    assert table["subset"].tolist() == [WHOLE_SET, "r"]
    features = synthetic.features()
    rows = rows_of(synthetic, "r")
    row = table.iloc[1]
    assert row["size"] == 50
    assert row["g_vendi"] == pytest.approx(vendi_score(features[np.sort(rows)]), rel=1e-9)
    assert row["vendi_q2"] == pytest.approx(subset_vendi(features, rows, qs=[2.0])[2.0], rel=1e-9)
    labels = synthetic.samples(columns=["cluster"])["cluster"].to_numpy()
    assert row["coverage"] == pytest.approx(
        len(set(labels[rows].tolist())) / synthetic.manifest["clusters"]["n_clusters"]
    )
    loss = synthetic.samples(columns=["loss"])["loss"].to_numpy()
    assert row["mean_loss"] == pytest.approx(float(loss[rows].mean()), rel=1e-6)
    whole = table.iloc[0]
    assert whole["coverage"] == 1.0 and whole["coverage_weighted"] == 1.0
    assert row["how"] == "random (k=50, seed=0)"


def test_prefix_vendi_matches_direct_scores() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((90, 8)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    order = rng.permutation(90)
    sizes = [3, 8, 20, 90]  # both sides of d = 8
    expected = [vendi_score(features[order[:s]]) for s in sizes]
    np.testing.assert_allclose(prefix_vendi(features, order, sizes), expected, rtol=1e-9)


def test_budget_curves_put_selectors_above_random(synthetic: Workspace) -> None:
    labels = synthetic.samples(columns=["cluster"])["cluster"].to_numpy()
    pool = Pool(synthetic.features(), labels=labels)
    raw = budget_curves(
        pool,
        methods=["vendi_greedy", "cluster_balanced", "dedupe"],
        sizes=[10, 40],
        seeds=[0, 1, 2],
        random_sizes=[10, 40, 120, 240],
    )
    summary = summarise_curves(raw)
    assert set(summary["method"]) == {"random", "vendi_greedy", "cluster_balanced", "dedupe"}
    assert (summary["n_seeds"] == 3).all() or set(summary[summary["n_seeds"] != 3]["size"]) == {240}
    greedy = summary[(summary["method"] == "vendi_greedy") & (summary["size"] == 40)].iloc[0]
    random40 = summary[(summary["method"] == "random") & (summary["size"] == 40)].iloc[0]
    assert greedy["mean"] > random40["high"]
    equivalent = random_equivalent(summary, greedy["mean"])
    assert equivalent is None or equivalent > 40
    assert random_equivalent(summary, random40["mean"]) == pytest.approx(40, rel=1e-6)


# -- export ----------------------------------------------------------------------------------


@pytest.fixture
def real(copy_built: Path) -> Workspace:
    return Workspace.open(copy_built)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_reimports_exactly_the_selected_rows(
    real: Workspace, tmp_path: Path, fmt: str
) -> None:
    ids = ["s011", "s002", "s007", "s013"]
    save_subset(real, "picked", ids, how={"method": "lasso"})
    out = tmp_path / f"picked.{fmt}"
    result = export_rows(real, rows_of(real, "picked"), fmt=fmt, out=out, subset="picked")
    assert result.n_rows == 4
    reloaded = load_dataset(out)
    source = {r["id"]: r for r in sample_records(N_SAMPLES)}
    # Original row order, not the subset's order; texts byte for byte.
    assert reloaded.samples["id"].tolist() == sorted(ids)
    for _, row in reloaded.samples.iterrows():
        assert row["prompt"] == source[row["id"]]["prompt"]
        assert row["response"] == source[row["id"]]["response"]
    written = read_export(out, fmt)
    assert list(written.columns) == ["id", "prompt", "response"]  # no Prism columns by default
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["subset"]["ids"] == sorted(ids)
    assert manifest["n_rows"] == 4 and manifest["format"] == fmt
    assert manifest["workspace"]["fingerprint"] == real.manifest["dataset"]["fingerprint"]
    assert manifest["features"]["model"] == "tiny"
    assert manifest["g_vendi"] == pytest.approx(
        subset_vendi(real.features(), rows_of(real, "picked"), qs=[1.0])[1.0]
    )


def test_export_never_overwrites_without_force_and_adds_derived(
    real: Workspace, tmp_path: Path
) -> None:
    rows = np.array([0, 5, 9])
    out = tmp_path / "rows.csv"
    out.write_text("precious\n")
    with pytest.raises(PrismError, match="already exists"):
        export_rows(real, rows, fmt="csv", out=out)
    assert out.read_text() == "precious\n"
    result = export_rows(real, rows, fmt="parquet", out=tmp_path / "rows.parquet", derived=True)
    frame = pd.read_parquet(result.path)
    assert {"loss", "grad_norm", "n_tokens"} <= set(frame.columns)
    assert frame["loss"].tolist() == real.samples()["loss"].iloc[rows].tolist()
    export_rows(real, rows, fmt="csv", out=out, force=True)
    assert len(read_export(out, "csv")) == 3
    with pytest.raises(PrismError, match="does not exist"):
        export_rows(real, rows, fmt="csv", out=tmp_path / "missing" / "x.csv")
    with pytest.raises(PrismError, match="format"):
        export_rows(real, rows, fmt="xlsx", out=tmp_path / "x.xlsx")
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_export_streams_in_batches(
    real: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.workspace.export as export_module

    monkeypatch.setattr(export_module, "BATCH_ROWS", 3)  # many batches, some with no chosen row
    rows = np.array([1, 2, 8, 13, 15])
    for fmt in ("jsonl", "csv", "parquet"):
        result = export_rows(real, rows, fmt=fmt, out=tmp_path / f"b.{fmt}")
        frame = read_export(result.path, fmt)
        assert frame["id"].astype(str).tolist() == [f"s{i:03d}" for i in rows]


def test_export_bytes_for_download(real: Workspace) -> None:
    data, name = export_bytes(real, np.array([3, 4]), fmt="jsonl", subset="two rows")
    assert name == "two_rows.jsonl"
    assert [json.loads(line)["id"] for line in data.decode().splitlines()] == ["s003", "s004"]
    archive, zip_name = export_bytes(real, np.array([3, 4]), fmt="hf", subset="two")
    assert zip_name == "two.zip" and archive[:2] == b"PK"


def test_reserved_column_names_are_exported_under_their_own_names(tmp_path: Path, run_cli) -> None:
    records = [
        {"question": f"q{i} about {w}?", "answer": f"a{i} {w}", "cluster": f"topic-{i % 2}"}
        for i, w in enumerate(["x", "y", "z", "w", "v", "u"])
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    ws_path = tmp_path / "ws"
    code, _, err = run_cli(
        "features", data, "--model", "tiny", "--dim", "64", "--workspace", ws_path
    )
    assert code == 0, err
    ws = Workspace.open(ws_path)
    assert "cluster_orig" in ws.samples().columns
    result = export_rows(ws, np.array([1, 4]), fmt="jsonl", out=tmp_path / "e.jsonl")
    lines = [json.loads(x) for x in result.path.read_text().splitlines()]
    assert lines == [records[1], records[4]]


def test_subset_report_refuses_empty() -> None:
    with pytest.raises(PrismError, match="empty"):
        subset_report(np.eye(3, dtype=np.float32), np.array([], dtype=np.int64))


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_select_compare_export_and_reproduce(real: Workspace, tmp_path: Path, run_cli) -> None:
    ws = str(real.path)
    code, _, err = run_cli("cluster", ws, "--k", "3")
    assert code == 0, err
    code, out, err = run_cli(
        "select", ws, "--method", "cluster_balanced", "--k", "6", "--seed", "1", "--name", "bal"
    )
    assert code == 0, err
    assert "6 rows" in out
    code, out, err = run_cli("subset", "combine", ws, "complement", "bal", "--name", "rest")
    assert code == 0, err
    code, out, _ = run_cli("subset", "list", ws, "--json")
    listed = json.loads(out)
    assert listed["bal"]["size"] == 6 and listed["rest"]["size"] == N_SAMPLES - 6
    code, out, err = run_cli("compare", ws, "bal", "rest", "--json")
    assert code == 0, err
    table = json.loads(out)["subsets"]
    assert [r["subset"] for r in table] == [WHOLE_SET, "bal", "rest"]
    assert table[1]["coverage"] == 1.0  # k = 6 ≥ 3 clusters

    out_file = tmp_path / "bal.parquet"
    code, out, err = run_cli(
        "export", ws, "--subset", "bal", "--format", "parquet", "--out", out_file
    )
    assert code == 0, err
    code, _, err = run_cli(
        "export", ws, "--subset", "bal", "--format", "parquet", "--out", out_file
    )
    assert code == 2 and "--force" in err
    manifest = Path(str(out_file) + ".manifest.json")
    code, out, err = run_cli("select", ws, "--from-manifest", manifest, "--name", "again", "--json")
    assert code == 0, err
    assert json.loads(out)["identical_to_manifest"] is True
    assert sorted(subset_record(real, "again").ids) == sorted(subset_record(real, "bal").ids)
    # the rebuilt subset says so, and from which manifest: the recipe alone would not
    code, out, _ = run_cli("subset", "list", ws, "--json")
    rebuilt = json.loads(out)["again"]["rebuilt"]
    assert rebuilt["manifest"] == str(manifest.absolute()) and rebuilt["identical"] is True
    assert rebuilt["subset"] == "bal" and rebuilt["exported"]
    assert json.loads(out)["bal"]["rebuilt"] is None
    code, out, _ = run_cli("subset", "list", ws)
    listed_rows = {x.split()[0]: x for x in out.splitlines() if x.strip()}
    assert "cluster_balanced" in listed_rows["again"]
    assert f"rebuilt from {manifest.name} (same ids)" in listed_rows["again"]
    assert "rebuilt" not in listed_rows["bal"]

    code, _, err = run_cli("select", ws, "--method", "vendi_greedy", "--k", "lots", "--name", "x")
    assert code == 2 and "--k must be" in err
    code, _, err = run_cli(
        "select", ws, "--method", "dedupe", "--option", "threshold", "--name", "x"
    )
    assert code == 2 and "name=value" in err
    code, _, err = run_cli("export", ws, "--subset", "nope", "--out", tmp_path / "n.jsonl")
    assert code == 2 and "no subset named" in err


def test_select_reproduces_selector_runs_exactly(synthetic: Workspace) -> None:
    labels = synthetic.samples(columns=["cluster"])["cluster"].to_numpy()
    pool = Pool(synthetic.features(), labels=labels)
    for method in ("random", "cluster_balanced", "k_center", "vendi_greedy", "sparse_clusters"):
        _, rows = run_selector(synthetic, method, name=method, k=25, seed=5)
        np.testing.assert_array_equal(rows, select(method, pool, budget=25, seed=5))


def test_curves_are_stored_for_their_settings_and_basis(synthetic: Workspace) -> None:
    from core.workspace.compare import load_curves, save_curves

    labels = synthetic.samples(columns=["cluster"])["cluster"].to_numpy()
    pool = Pool(synthetic.features(), labels=labels)
    summary = summarise_curves(budget_curves(pool, methods=["k_center"], sizes=[10], seeds=[0]))
    settings = {"methods": ("random", "k_center"), "seeds": 1, "largest": 10}
    save_curves(synthetic, summary, settings)
    again = Workspace.open(synthetic.path)
    pd.testing.assert_frame_equal(load_curves(again, settings), summary)
    assert load_curves(again, {**settings, "seeds": 2}) is None
    again.manifest["clusters"]["seed"] = 99  # re-clustered: the stored curves are stale
    assert load_curves(again, settings) is None


def test_random_equivalent_reads_small_subsets_below_the_smallest_budget() -> None:
    from core.measures.curves import ABOVE_RANDOM, random_budget_sizes, random_mean_at

    # Nearly orthogonal rows: a random subset of s rows has G-Vendi close to s, so a 5-row subset
    # reads as random at about 5 rows, not at the curve's smallest budget (20).
    rng = np.random.default_rng(0)
    features = rng.standard_normal((300, 512)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    pool = Pool(features)
    coarse = summarise_curves(
        budget_curves(pool, methods=[], sizes=[20, 40], seeds=[0, 1], random_sizes=[20, 80, 300])
    )
    five = vendi_score(features[:5])
    assert 4.5 < five < 5.0
    assert random_equivalent(coarse, five) == pytest.approx(five, rel=0.1)
    assert random_equivalent(coarse, 1.0) == pytest.approx(1.0)  # one row: G-Vendi exactly 1
    assert random_mean_at(coarse, 1) == pytest.approx(1.0)
    assert random_mean_at(coarse, 5) == pytest.approx(five, rel=0.1)
    # Measured small sizes: the curve starts at one row, whose G-Vendi is exactly 1.
    sizes = random_budget_sizes(300)
    assert sizes[:3] == [1, 2, 3] and sizes[-1] == 300
    fine = summarise_curves(
        budget_curves(pool, methods=[], sizes=[20], seeds=[0, 1], random_sizes=sizes)
    )
    assert fine.loc[fine["size"] == 1, "mean"].item() == pytest.approx(1.0)
    assert random_equivalent(fine, five) == pytest.approx(5, rel=0.05)
    # Above the whole set's score there is no random size: None, said in words by the CLI/app.
    assert random_equivalent(fine, 1.01 * float(fine["mean"].max())) is None
    assert ABOVE_RANDOM == "above every random size"
