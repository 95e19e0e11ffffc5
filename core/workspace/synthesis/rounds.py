"""One round of the synthesis loop on a workspace: cluster, plan, generate, featurise, judge.

``SynthesisConfig`` holds a run's settings; ``SynthesisRound.run`` does steps 1–4 of
``core.workspace.synthesis.loop`` for one round and stores every candidate
(``core.workspace.synthesis.candidates``), leaving ``record`` (the round's counts, a ``RoundRecord``) for the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.measures.clusters import default_n_clusters, sparse_clusters, unit_rows
from core.synthesis.endpoint import check_key_source
from core.synthesis.filter import DUPLICATE_COSINE, judge, text_key
from core.synthesis.generation import (
    DEFAULT_KEY_ENV,
    MAX_REPLY_CHARS,
    GenerationSettings,
    Generator,
)
from core.synthesis.prompts import Example, clean_reply, prompt_chat, response_chat, text_chat
from core.synthesis.quality import Quality, assess
from core.synthesis.targets import parse_target, plan_requests
from core.validate import check_int, check_number, check_seed, check_url
from core.workspace.analyses import cluster_workspace
from core.workspace.manifest import RoundRecord
from core.workspace.store import Workspace
from core.workspace.subsets import rows_of
from core.workspace.synthesis.candidates import write_round
from core.workspace.synthesis.grow import SOURCE, is_extended, origin_rows


@dataclass(frozen=True)
class SynthesisConfig:
    """One run of the loop; ``settings()`` is what the manifest and each candidate record."""

    rounds: int = 1
    per_round: int = 20
    target: str = "sparse"
    few_shot: int = 5
    generator: str = "default"
    endpoint: str | None = None
    endpoint_model: str | None = None
    api_key_env: str = DEFAULT_KEY_ENV  # the variable's name; the key itself is never stored
    api_key_file: str | None = None  # a file holding the key (its path is stored, never the key)
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 384
    max_reply_chars: int = MAX_REPLY_CHARS
    seed: int = 0
    duplicate_cosine: float = DUPLICATE_COSINE
    sparse_only: bool = True
    quality_gate: bool = True  # reject low-quality candidates (core.synthesis.quality)
    review: bool = False
    budget: int | None = None  # stop once this many candidates joined in this run

    def __post_init__(self) -> None:
        check_int(self.rounds, param="rounds", minimum=1, maximum=10_000)
        check_int(self.per_round, param="per_round", minimum=1, maximum=1_000_000)
        check_int(self.few_shot, param="few_shot", minimum=1, maximum=50)
        check_seed(self.seed)
        parse_target(self.target)
        self.generation  # noqa: B018 — validates temperature, top_p, max_new_tokens, the cap
        if self.endpoint is not None:
            # Stored without secrets, so it must hold none: a resumed run uses it as it is.
            check_url(self.endpoint, param="endpoint", secrets=False)
        check_key_source(self.api_key_env, self.api_key_file)
        check_number(self.duplicate_cosine, param="duplicate_cosine", above=0, maximum=1)
        if self.budget is not None:
            check_int(self.budget, param="budget", minimum=1)

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            max_reply_chars=self.max_reply_chars,
        )

    def settings(self) -> dict[str, Any]:
        """The fields, as stored in the manifest and with every candidate (the endpoint URL holds
        no user, password or query: they are refused, since they may carry a key)."""
        return asdict(self)


def _pool_clustering(
    workspace: Workspace, seed: int, *, keep_extended: bool = False
) -> tuple[np.ndarray, int]:
    """(labels (N,), n_clusters) of the current pool: the workspace's own when it covers exactly
    these rows, else a fresh spherical k-means (k = 10% of the pool) written to the workspace.

    A clustering extended by joined rows (nearest centroid) is clustered afresh, as published,
    unless ``keep_extended``: a ``cluster:ID`` target names a cluster of the clustering the user
    saw, so it is kept."""
    n = workspace.n_samples
    section = workspace.clusters
    current = (
        section is not None
        and sum(section.sizes) == n
        and (keep_extended or not is_extended(section))
        and "cluster" in workspace.sample_columns()
    )
    if not current:
        cluster_workspace(workspace, n_clusters=default_n_clusters(n), seed=seed)
        workspace.reload()
    section = workspace.clusters
    assert section is not None
    labels = workspace.samples(["cluster"])["cluster"].to_numpy().astype(np.int64)
    return labels, int(section.n_clusters)


def _centroids(features: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Unit mean direction of each cluster's rows (k×d), read in blocks of the memory map."""
    sums = np.zeros((n_clusters, features.shape[1]), dtype=np.float64)
    for start in range(0, len(features), 65_536):
        block = np.asarray(features[start : start + 65_536], dtype=np.float64)
        np.add.at(sums, labels[start : start + 65_536], block)
    return unit_rows(sums)


def _examples(samples: pd.DataFrame, columns: ColumnMap) -> list[Example]:
    out = []
    for chat in conversations(samples, columns):
        if isinstance(chat, str):
            out.append(Example(text=chat))
            continue
        users = [m["content"] for m in chat if m["role"] == "user"]
        replies = [m["content"] for m in chat if m["role"] == "assistant"]
        out.append(
            Example(prompt=users[0] if users else "", response=replies[-1] if replies else "")
        )
    return out


QUALITY_SAMPLE = 2_000  # source responses read to tell whether answers are checkable


def _seeds(seed: int, round_no: int, n: int) -> list[int]:
    state = np.random.SeedSequence([seed, round_no]).generate_state(n, dtype=np.uint32)
    return [int(s) for s in state]


# Why a reply that the generator gave without a failure still made no sample (clean_reply's rule).
_UNUSABLE = "no sample in the reply (empty, a bare label, too short or a copy of an example)"


class SynthesisRound:
    """Generates, featurises and judges one round's candidates."""

    def __init__(
        self,
        workspace: Workspace,
        config: SynthesisConfig,
        generator: Generator,
        extractor: Any,
        report: Callable[[str, int], None],
    ):
        self.workspace, self.config, self.generator = workspace, config, generator
        self.extractor, self.report = extractor, report
        self.columns = ColumnMap.from_dict(dict(workspace.dataset.columns))

    def run(self, round_no: int) -> None:
        ws, config = self.workspace, self.config
        target = parse_target(config.target)
        labels, n_clusters = _pool_clustering(
            ws, config.seed + round_no, keep_extended=target.kind == "cluster"
        )
        samples = ws.samples(["id", *self.columns.content_columns])
        subset_rows = None
        if target.kind == "subset":
            subset_rows = rows_of(ws, str(target.subset))
        requests = plan_requests(
            labels,
            n_clusters=n_clusters,
            target=target,
            n_requests=config.per_round,
            few_shot=config.few_shot,
            seed=_seeds(config.seed, round_no, 1)[0],
            subset_rows=subset_rows,
        )
        rows = sorted({r for q in requests for r in q.example_rows})
        by_row = dict(zip(rows, _examples(samples.iloc[rows], self.columns), strict=True))
        shots = [[by_row[r] for r in q.example_rows] for q in requests]
        seeds = _seeds(config.seed, round_no, 2 * len(requests))
        frame = self._generate(shots, seeds)
        ids = samples["id"].astype(str).to_numpy()
        frame["candidate_id"] = [f"syn-{round_no:03d}-{i:04d}" for i in range(len(requests))]
        frame["round"] = round_no
        frame["target"] = target.label
        frame["target_cluster"] = [
            -1 if q.target_cluster is None else q.target_cluster for q in requests
        ]
        frame["examples"] = [json.dumps([ids[r] for r in q.example_rows]) for q in requests]
        frame["generator"] = self.generator.label
        frame["settings"] = json.dumps(config.settings(), sort_keys=True)
        frame["seed"] = seeds[: len(requests)]
        features = self._featurise(frame)
        self.report("judging", len(requests))
        pool = ws.features()
        sizes = np.bincount(labels, minlength=n_clusters)
        texts = frame["text"] if self.columns.kind == "text" else frame["prompt"]
        pool_texts = (
            samples[self.columns.text or self.columns.prompt]
            if self.columns.kind != "messages"
            else [e.prompt or "" for e in _examples(samples, self.columns)]
        )
        formed = [t if ok else None for t, ok in zip(texts, frame["formed"], strict=True)]
        quality = self._quality(frame, samples) if config.quality_gate else None
        frame["quality"] = "" if quality is None else quality.problem
        verdict = judge(
            features,
            formed,
            centroids=_centroids(pool, labels, n_clusters),
            sizes=sizes,
            pool_features=pool,
            pool_keys=(text_key(str(t)) for t in pool_texts),
            duplicate_cosine=config.duplicate_cosine,
            sparse_only=config.sparse_only,
            quality=None if quality is None else list(quality.problem),
        )
        frame["reason"] = verdict.reason.astype(str)
        frame["nearest_cluster"] = verdict.nearest
        frame["nearest_cosine"] = verdict.nearest_cosine
        frame["pool_cosine"] = verdict.pool_cosine
        sparse = sparse_clusters(sizes)
        frame["nearest_sparse"] = (verdict.nearest >= 0) & sparse[np.maximum(verdict.nearest, 0)]
        counts = verdict.counts()
        self.record = RoundRecord(
            round=round_no,
            target=target.label,
            generator=self.generator.label,
            pool_before=int(len(pool)),
            n_clusters=int(n_clusters),
            n_sparse=int(sparse.sum()),
            sparse_rows_before=int(sizes[sparse].sum()),
            generated=len(frame),
            malformed=counts["malformed"],
            duplicate=counts["duplicate"],
            low_quality=counts["low_quality"],
            dense=counts["dense"],
            kept=counts["kept"],
            loss_band=None if quality is None or quality.band is None else tuple(quality.band),
            answers_checked=bool(quality is not None and quality.checked),
        )
        frame["decision"] = ""
        frame["joined"] = False
        write_round(ws, round_no, frame, features)

    def _quality(self, frame: pd.DataFrame, samples: pd.DataFrame) -> Quality:
        """The quality gate of the round's candidates against the source rows (their losses and,
        for checkable answers, a spread sample of up to ``QUALITY_SAMPLE`` of their responses)."""
        ws, columns = self.workspace, self.columns
        wanted = [c for c in ("loss", "origin") if c in ws.sample_columns()]
        extra = ws.samples(wanted) if wanted else pd.DataFrame(index=samples.index)
        source = origin_rows(extra, SOURCE)
        losses = (
            extra["loss"].to_numpy(dtype=np.float64)[source]
            if "loss" in extra.columns
            else np.array([])
        )
        spread = np.unique(np.linspace(0, len(source) - 1, QUALITY_SAMPLE).astype(int))
        picked = samples.iloc[source[spread]] if len(source) else samples.iloc[:0]
        if columns.kind == "messages":
            responses = [e.response or "" for e in _examples(picked, columns)]
        else:
            responses = [str(t) for t in picked[columns.text or columns.response]]
        kind = "text" if columns.kind == "text" else "response"
        candidates = [t if ok else None for t, ok in zip(frame[kind], frame["formed"], strict=True)]
        return assess(
            candidates,
            frame["loss"].to_numpy(dtype=np.float64),
            source_losses=losses,
            source_responses=responses,
        )

    def _generate(self, shots: list[list[Example]], seeds: list[int]) -> pd.DataFrame:
        """The raw replies, the samples cleaned from them (None when malformed) and, per
        candidate, the ``problem`` that made it malformed ("" otherwise)."""
        n, settings = len(shots), self.config.generation
        frame = pd.DataFrame(index=pd.RangeIndex(n))
        for name in ("raw_prompt", "raw_response", "prompt", "response", "text"):
            frame[name] = pd.Series([None] * n, dtype=object)
        problems = [""] * n
        if self.columns.kind == "text":
            self.report("generating texts", 0)
            raw = self.generator.generate(
                [text_chat(s) for s in shots], settings=settings, seeds=seeds[:n]
            )
            failures = dict(self.generator.failures)
            frame["raw_response"] = raw
            frame["text"] = [
                clean_reply(r, [e.text or "" for e in s]) for r, s in zip(raw, shots, strict=True)
            ]
            for i in range(n):
                if frame.at[i, "text"] is None:
                    problems[i] = failures.get(i) or _UNUSABLE
            frame["formed"] = frame["text"].notna()
            frame["problem"] = problems
            return frame
        self.report("generating prompts", 0)
        raw = self.generator.generate(
            [prompt_chat(s) for s in shots], settings=settings, seeds=seeds[:n]
        )
        failures = dict(self.generator.failures)
        frame["raw_prompt"] = raw
        frame["prompt"] = [
            clean_reply(r, [e.prompt or "" for e in s]) for r, s in zip(raw, shots, strict=True)
        ]
        asked = [i for i in range(n) if frame.at[i, "prompt"] is not None]
        for i in sorted(set(range(n)) - set(asked)):
            problems[i] = f"prompt: {failures.get(i) or _UNUSABLE}"
        self.report("generating responses", 0)
        replies = (
            self.generator.generate(
                [response_chat(str(frame.at[i, "prompt"]), shots[i]) for i in asked],
                settings=settings,
                seeds=[seeds[n + i] for i in asked],
            )
            if asked
            else []
        )
        failures = dict(self.generator.failures)
        for position, (i, reply) in enumerate(zip(asked, replies, strict=True)):
            frame.at[i, "raw_response"] = reply
            frame.at[i, "response"] = clean_reply(reply)
            if frame.at[i, "response"] is None:
                problems[i] = f"response: {failures.get(position) or _UNUSABLE}"
        frame["formed"] = frame["prompt"].notna() & frame["response"].notna()
        frame["problem"] = problems
        return frame

    def _featurise(self, frame: pd.DataFrame) -> np.ndarray:
        n, dim = len(frame), int(self.extractor.config.dim)
        features = np.zeros((n, dim), dtype=np.float32)
        for name, dtype in (
            ("loss", np.float32),
            ("grad_norm", np.float32),
            ("n_tokens", np.int32),
            ("n_response_tokens", np.int32),
        ):
            frame[name] = np.zeros(n, dtype=dtype)
        frame["truncated"] = False
        formed = np.flatnonzero(frame["formed"].to_numpy())
        self.report("computing features", len(frame) - len(formed))
        if formed.size:
            convs: list[Any] = (
                list(frame["text"].iloc[formed])
                if self.columns.kind == "text"
                else [
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                    for p, r in zip(
                        frame["prompt"].iloc[formed], frame["response"].iloc[formed], strict=True
                    )
                ]
            )
            out = self.extractor.compute(self.extractor.encode(convs))
            features[formed] = out.features
            for name in ("loss", "grad_norm", "n_tokens", "n_response_tokens", "truncated"):
                frame.loc[formed, name] = getattr(out, name)
        return features
