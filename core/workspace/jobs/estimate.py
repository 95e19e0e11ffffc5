"""How long a feature run will take, measured before it starts.

``estimate_run(dataset_or_samples, config, *, probe_rows=4, seed=0) -> RunEstimate`` loads the
proxy model on the chosen device, computes the features of a few rows of about the data's median
token length (picked with ``seed``), and scales that time by the tokens of all rows (from a seeded
sample of at most ``LENGTH_SAMPLE`` rows). It writes nothing: no workspace, no shard, no progress.

The cost of a row grows about linearly with its tokens at these lengths, so the estimate is
probe seconds × (mean tokens per row × rows) / probe tokens, plus the model's load time, plus
converting the embedded model when this is its first use (measured, and said in the sentence;
``core.features.proxy.conversion_note`` says it before). Long rows are probed fewer at a time
(about ``PROBE_TOKENS`` tokens in all, at least one row). A GPU runs the real job in larger
batches than the probe, which this does not model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.data.dataset import Dataset
from core.data.text import conversations
from core.errors import PrismError
from core.features.extract import FeatureExtractor
from core.features.proxy import conversion_note, default_model_dir, load_proxy
from core.validate import check_int

if TYPE_CHECKING:
    from core.features.extract import FeatureConfig
    from core.features.tokenize import Conversation

LENGTH_SAMPLE = 256  # rows tokenised to learn the data's length distribution
PROBE_TOKENS = 1024  # enough tokens to time: rows past it are not probed (a row costs ∝ tokens)


@dataclass(frozen=True)
class RunEstimate:
    """A feature run's expected duration, and the probe it was measured from."""

    seconds: float
    rows: int
    device: str
    probe_rows: int
    probe_seconds: float
    load_seconds: float = 0.0
    convert_seconds: float = 0.0  # the embedded model's one-time conversion, when it ran here

    def sentence(self) -> str:
        """ "about 25 min for 1,319 rows on cpu (probe: 4 rows in 3.1 s)", and the one-time
        conversion of the embedded model when it was part of it."""
        rows = f"{self.rows:,} row{'' if self.rows == 1 else 's'}"
        probe = f"{self.probe_rows} row{'' if self.probe_rows == 1 else 's'}"
        converted = (
            f"; converting the embedded model once: {rough_duration(self.convert_seconds)}, "
            "included"
            if self.convert_seconds
            else ""
        )
        return (
            f"about {rough_duration(self.seconds)} for {rows} on {self.device} "
            f"(probe: {probe} in {self.probe_seconds:.1f} s{converted})"
        )


def rough_duration(seconds: float) -> str:
    """A duration rounded the way an estimate deserves: "40 s", "25 min", "3 h 10 min"."""
    if seconds < 55:
        return f"{max(1, round(seconds / 5) * 5 if seconds >= 10 else round(seconds))} s"
    minutes = seconds / 60
    if minutes < 59.5:
        return f"{max(1, round(minutes))} min"
    hours, rest = divmod(round(minutes / 10) * 10, 60)
    return f"{hours} h" + (f" {rest:02d} min" if rest else "")


def probe_indices(lengths: Sequence[int], probe_rows: int, *, seed: int = 0) -> np.ndarray:
    """Positions of the ``probe_rows`` rows whose lengths are nearest the median (ties broken by
    a seeded shuffle), so the probe costs what a typical row costs."""
    values = np.asarray(lengths, dtype=np.float64)
    order = np.random.default_rng(seed).permutation(len(values))
    distance = np.abs(values[order] - np.median(values))
    return order[np.argsort(distance, kind="stable")[:probe_rows]]


def _length_sample(
    dataset_or_samples: Dataset | Sequence[Conversation | str], seed: int
) -> tuple[list[Conversation | str], int]:
    """(a seeded sample of at most ``LENGTH_SAMPLE`` rows as the model sees them, all rows)."""
    rng = np.random.default_rng(seed)
    if isinstance(dataset_or_samples, Dataset):
        n = dataset_or_samples.n_samples
        picks = np.sort(rng.choice(n, size=min(n, LENGTH_SAMPLE), replace=False))
        frame = dataset_or_samples.samples.iloc[picks].reset_index(drop=True)
        return conversations(frame, dataset_or_samples.columns), n
    samples = list(dataset_or_samples)
    n = len(samples)
    chosen = np.sort(rng.choice(n, size=min(n, LENGTH_SAMPLE), replace=False)) if n else ()
    return [samples[int(i)] for i in chosen], n


def estimate_run(
    dataset_or_samples: Dataset | Sequence[Conversation | str],
    config: FeatureConfig,
    *,
    probe_rows: int = 4,
    seed: int = 0,
) -> RunEstimate:
    """Time the features of ``probe_rows`` median-length rows with ``config``'s model, dtype and
    device, and scale it to all rows (see the module docstring); writes nothing."""

    check_int(probe_rows, param="probe_rows", minimum=1)
    sample, rows = _length_sample(dataset_or_samples, seed)
    if rows == 0:
        raise PrismError("There are no rows to estimate a run for.")
    convert_seconds = 0.0
    if conversion_note(config.model) is not None:
        started = time.perf_counter()
        default_model_dir()
        convert_seconds = time.perf_counter() - started
    started = time.perf_counter()
    proxy = load_proxy(
        config.model,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
    )
    load_seconds = time.perf_counter() - started
    extractor = FeatureExtractor(proxy, config)
    encoded = extractor.encode(sample)
    lengths = [len(e.input_ids) for e in encoded]
    by_tokens = max(1, -(-PROBE_TOKENS // max(int(np.median(lengths)), 1)))
    chosen = probe_indices(lengths, min(probe_rows, len(encoded), by_tokens), seed=seed)
    probe = [encoded[int(i)] for i in chosen]
    if torch.device(proxy.device).type == "cuda":
        extractor.compute(probe[:1])  # warm-up: kernel choices, compiled functions
        torch.cuda.synchronize(proxy.device)
    started = time.perf_counter()
    extractor.compute(probe)
    if torch.device(proxy.device).type == "cuda":
        torch.cuda.synchronize(proxy.device)
    probe_seconds = time.perf_counter() - started
    probe_tokens = sum(len(e.input_ids) for e in probe)
    seconds = probe_seconds * float(np.mean(lengths)) * rows / max(probe_tokens, 1)
    return RunEstimate(
        seconds=seconds + load_seconds + convert_seconds,
        rows=rows,
        device=str(proxy.device),
        probe_rows=len(probe),
        probe_seconds=probe_seconds,
        load_seconds=load_seconds,
        convert_seconds=convert_seconds,
    )
