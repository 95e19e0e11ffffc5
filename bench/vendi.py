"""Benchmark of G-Vendi: streamed from a large .npy on disk, and against the vendi-score package.

    python bench/vendi.py                 # 1,000,000 × 1024 streamed; 10,000 × 1024 vs vendi-score
    python bench/vendi.py --quick         # small sizes, a few seconds (smoke test)

Cases:
- ``stream``: features written to a temporary .npy (chunk by chunk, never held whole in memory),
  then C = UᵀU/N streamed from it (``covariance_from_npy``) and scored (``vendi_from_covariance``).
  Target: ≤ 15 s at 1,000,000 × 1024. The file was just written, so it is read from the page cache.
- ``vs vendi-score q=…``: at 10,000 × 1024, ``vendi_scores`` (d×d covariance) against the package's
  N×N computation (``score_K`` on the float64 cosine kernel: K/N, ``scipy.linalg.eigvalsh``,
  ``entropy_q``). Target: relative difference ≤ 1e-6; ratio = their seconds / ours.

The data is a mixture of a few hundred directions plus isotropic noise, so G-Vendi is neither 1
nor d. Prints a table and writes ``bench/results/vendi.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.measures.vendi import QS_DEFAULT, covariance_from_npy, vendi_from_covariance, vendi_scores  # noqa: E402

STREAM_TARGET_S = 15.0
REL_DIFF_TARGET = 1e-6
WRITE_CHUNK_ROWS = 65536
COLUMNS = (
    "case",
    "n",
    "d",
    "seconds",
    "value",
    "reference",
    "rel_diff",
    "ratio",
    "target",
    "ok",
)


class Mixture:
    """Unit rows drawn around ``n_directions`` random directions plus isotropic noise, seeded."""

    def __init__(self, d: int, *, n_directions: int = 300, noise: float = 1.0, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        directions = self.rng.standard_normal((n_directions, d), dtype=np.float32)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        # Zipf-like weights: a few big modes and a long tail, as in real data
        weights = 1.0 / np.arange(1, n_directions + 1)
        self.directions = directions
        self.weights = weights / weights.sum()
        self.noise = np.float32(noise / math.sqrt(d))

    def rows(self, n: int) -> np.ndarray:
        picks = self.rng.choice(len(self.weights), size=n, p=self.weights)
        rows = self.rng.standard_normal((n, self.directions.shape[1]), dtype=np.float32)
        rows *= self.noise
        rows += self.directions[picks]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows


def write_npy(path: Path, n: int, d: int, *, seed: int) -> None:
    """Write n unit rows to ``path`` chunk by chunk through a memory map."""
    mixture = Mixture(d, seed=seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, WRITE_CHUNK_ROWS):
        stop = min(n, start + WRITE_CHUNK_ROWS)
        out[start:stop] = mixture.rows(stop - start)
    out.flush()
    del out


def bench_stream(n: int, d: int, *, tmp_dir: str | None, seed: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="prism-bench-", dir=tmp_dir) as folder:
        path = Path(folder) / "features.npy"
        start = time.perf_counter()
        write_npy(path, n, d, seed=seed)
        write_s = time.perf_counter() - start

        start = time.perf_counter()
        cov, n_read = covariance_from_npy(path)
        scores = vendi_from_covariance(cov, qs=QS_DEFAULT)
        stream_s = time.perf_counter() - start
    assert n_read == n
    return [
        row("write .npy (setup)", n, d, write_s, None),
        row(
            "stream G-Vendi q=1",
            n,
            d,
            stream_s,
            scores[1.0],
            target=f"≤ {STREAM_TARGET_S:g} s",
            ok=stream_s <= STREAM_TARGET_S,
            extra={"scores": {q_name(q): v for q, v in scores.items()}},
        ),
    ]


def reference_scores(features: np.ndarray) -> tuple[dict[float, float], float]:
    """The vendi-score package's N×N computation (what ``score_K`` does), all orders at once."""
    from vendi_score import vendi

    start = time.perf_counter()
    rows = features.astype(np.float64)
    kernel = rows @ rows.T
    eigenvalues = scipy.linalg.eigvalsh(vendi.weight_K(kernel))
    scores = {
        q: float(np.exp(vendi.entropy_q(eigenvalues, q="inf" if math.isinf(q) else q)))
        for q in QS_DEFAULT
    }
    return scores, time.perf_counter() - start


def bench_reference(n: int, d: int, *, seed: int) -> list[dict]:
    features = Mixture(d, seed=seed).rows(n)
    vendi_scores(features[:64])  # first-call overheads out of the timing
    start = time.perf_counter()
    ours = vendi_scores(features, qs=QS_DEFAULT)
    ours_s = time.perf_counter() - start
    theirs, theirs_s = reference_scores(features)
    rows = []
    for q in QS_DEFAULT:
        rel_diff = abs(ours[q] - theirs[q]) / abs(theirs[q])
        rows.append(
            row(
                f"vs vendi-score q={q_name(q)}",
                n,
                d,
                ours_s,
                ours[q],
                reference=theirs[q],
                rel_diff=rel_diff,
                ratio=theirs_s / ours_s,
                target=f"rel_diff ≤ {REL_DIFF_TARGET:g}",
                ok=rel_diff <= REL_DIFF_TARGET,
                extra={"reference_seconds": theirs_s},
            )
        )
    return rows


def q_name(q: float) -> str:
    return "inf" if math.isinf(q) else f"{q:g}"


def row(
    case: str,
    n: int,
    d: int,
    seconds: float,
    value: float | None,
    *,
    reference: float | None = None,
    rel_diff: float | None = None,
    ratio: float | None = None,
    target: str = "",
    ok: bool | None = None,
    extra: dict | None = None,
) -> dict:
    return {
        "case": case,
        "n": n,
        "d": d,
        "seconds": seconds,
        "value": value,
        "reference": reference,
        "rel_diff": rel_diff,
        "ratio": ratio,
        "target": target,
        "ok": ok,
        **(extra or {}),
    }


def format_cell(key: str, value: object) -> str:
    if value is None:
        return ""
    if key == "ok":
        return "yes" if value else "NO"
    if key == "n" or key == "d":
        return f"{value:,}"
    if key == "seconds":
        return f"{value:.2f}"
    if key == "rel_diff":
        return f"{value:.1e}"
    if key == "ratio":
        return f"{value:,.0f}×"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    cells = [[format_cell(key, r[key]) for key in COLUMNS] for r in rows]
    widths = [max(len(key), *(len(c[i]) for c in cells)) for i, key in enumerate(COLUMNS)]
    print("  ".join(key.ljust(w) for key, w in zip(COLUMNS, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-large", type=int, default=1_000_000, help="rows of the streamed case")
    parser.add_argument("--n-ref", type=int, default=10_000, help="rows of the vendi-score case")
    parser.add_argument("--d", type=int, default=1024, help="feature dimension")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp-dir", default=None, help="where the temporary .npy goes")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "vendi.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_large, args.n_ref, args.d = 50_000, 1_000, 256

    load_before = os.getloadavg()
    rows = bench_stream(args.n_large, args.d, tmp_dir=args.tmp_dir, seed=args.seed)
    rows += bench_reference(args.n_ref, args.d, seed=args.seed + 1)
    print_table(rows)

    result = {
        "benchmark": "vendi",
        "quick": args.quick,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    print(f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} (2 cores)")
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
