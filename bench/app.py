"""Benchmark of the app's server time on a 50,000-point workspace: page switches and a lasso.

    python bench/app.py            # 50,000 samples × 1024 dims, 5,000 clusters (synthetic)
    python bench/app.py --quick    # 5,000 samples, a smoke test of the script itself

Cases (server time: the Streamlit script run, measured with streamlit's AppTest in this process,
which also parses every message the browser would get; the browser's drawing is not counted):
- ``open map (cold)``: the first run of a session on the Map page (samples, hover texts, cluster
  words and the 50,000-point figure are built and cached).
- ``switch → <page>``: moving to each page, first visit (cold caches) and again (warm).
  Target: ≤ 2 s.
- ``lasso k = …``: a lasso that selects k points, from the selection event to the updated
  selection statistics: decoding the event as Streamlit receives it (JSON with one record per
  point, the row id in ``customdata``), turning it into rows, then the Map page's rerun that scores
  the selection (G-Vendi, random baseline, coverage, records). The rerun here also redraws the
  whole map with the selection dimmed, as a cluster pick does; after a real lasso the map is not
  sent again (Plotly already shows that selection), so a real lasso costs less. Target: ≤ 1 s.
- ``background results``: map tiles, random-subset curve, cluster words and within-cluster
  Vendi, computed in a background thread after the first visits (not a target; the pages show
  them when ready).

The workspace is synthetic (tests/app_workspaces.py): a seeded mixture of directions with
generated text, written in the real schema. Prints a table and writes ``bench/results/app.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PAGE_TARGET_S = 2.0
LASSO_TARGET_S = 1.0


def _table(rows: list[dict[str, object]]) -> str:
    columns = ("case", "n", "seconds", "target", "ok")
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _row(case: str, n: int, seconds: float, target: float | None) -> dict[str, object]:
    return {
        "case": case,
        "n": f"{n:,}",
        "seconds": f"{seconds:.3f}",
        "target": f"≤ {target:g} s" if target else "",
        "ok": ("yes" if seconds <= target else "NO") if target else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 samples instead of 50,000")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--dim", type=int, default=1024)
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 50_000)

    home = Path(tempfile.mkdtemp(prefix="prism-bench-app-"))
    os.environ["PRISM_HOME"] = str(home)

    import numpy as np
    from app_workspaces import make_workspace
    from streamlit.testing.v1 import AppTest

    import ui.cache  # noqa: F401 — the app's BLAS setting, as the server has it
    from ui import state
    from ui.events import rows_from_event

    t0 = time.perf_counter()
    ws = make_workspace(home / "workspaces" / "bench", n=n, dim=args.dim, gsm8k=False, seed=0)
    build_s = time.perf_counter() - t0
    # The app opens the workspace it last showed; make that this one (not the shipped demo).
    (home / "app.json").write_text(json.dumps({"last_workspace": str(ws.path)}))
    print(f"built a synthetic workspace of {n:,} × {args.dim} in {build_s:.1f} s ({ws.path})")

    rows: list[dict[str, object]] = []
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)

    def timed_run(label: str, target: float | None, title: str) -> float:
        start = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - start
        shown = [t.value for t in at.title]
        if shown != [title]:
            raise SystemExit(f"{label}: expected the {title} page, got {shown}")
        if "bench" not in at.sidebar.selectbox[0].value:
            raise SystemExit(f"{label}: the page shows another workspace")
        if at.exception:
            raise SystemExit(f"{label}: the page raised {at.exception[0].value}")
        errors = [e.value for e in at.error]
        if errors:
            raise SystemExit(f"{label}: the page shows an error: {errors[0]}")
        rows.append(_row(label, n, seconds, target))
        print(f"  {label}: {seconds:.3f} s")
        return seconds

    timed_run("open map (cold)", None, "Map")
    pages = ["data", "features", "diversity", "map"]
    for visit in ("cold", "warm"):
        for page in pages:
            if visit == "cold" and page == "map":
                continue
            at.switch_page(f"pages/{page}.py")
            timed_run(f"switch → {page} ({visit})", PAGE_TARGET_S, page.title())

    # The random-subset curve runs in the background; the lasso needs it for its baseline.
    from ui import cache

    start = time.perf_counter()
    cache.curve(ws, wait=True)
    while not cache.background_ready(ws):  # nothing else running while the lassos are timed
        time.sleep(0.05)
    rows.append(_row("background results ready", n, time.perf_counter() - start, None))

    at.switch_page("pages/map.py")
    at.run()
    frame = ws.samples(columns=["umap_x", "umap_y"])
    x, y = frame["umap_x"].to_numpy(), frame["umap_y"].to_numpy()
    centre = np.array([np.median(x), np.median(y)])
    distance = np.hypot(x - centre[0], y - centre[1])
    for fraction in (0.02, 0.2, 0.5, 0.8):
        k = int(n * fraction)
        inside = np.sort(np.argsort(distance)[:k])  # a disc around the centre, as a lasso takes
        points = [
            {
                "curve_number": 0,
                "point_number": int(r),
                "point_index": int(r),
                "x": float(x[r]),
                "y": float(y[r]),
                "customdata": int(r),
            }
            for r in inside
        ]
        wire = json.dumps(
            {
                "selection": {
                    "points": points,
                    "point_indices": inside.tolist(),
                    "box": [],
                    "lasso": [{"x": [0.0], "y": [0.0]}],
                }
            }
        )
        start = time.perf_counter()
        event = json.loads(wire)
        selected = rows_from_event(event, n)
        decode_s = time.perf_counter() - start
        assert selected is not None and len(selected) == k
        at.session_state[state.SELECTION] = {
            "workspace": str(ws.path),
            "rows": selected.tolist(),
            "how": {"method": "lasso"},
        }
        start = time.perf_counter()
        at.run()
        rerun_s = time.perf_counter() - start
        shown = [m.value for m in at.metric if m.label == "Selected samples"]
        assert shown == [f"{k:,}"], shown
        rows.append(
            _row(
                f"lasso k = {k:,} (decode {decode_s:.2f} + rerun {rerun_s:.2f})",
                n,
                decode_s + rerun_s,
                LASSO_TARGET_S,
            )
        )
        print(f"  lasso {k:,}: {decode_s + rerun_s:.3f} s")

    print()
    print(
        f"Prism app, server time ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"
    )
    print(_table(rows))
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "app.json").write_text(
        json.dumps({"n": n, "dim": args.dim, "rows": rows}, indent=2) + "\n"
    )
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return 0 if all(r["ok"] in ("", "yes") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
