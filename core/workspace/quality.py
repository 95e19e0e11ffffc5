"""Quality beside diversity on a workspace: outlier flags, what is known of each signal, the blend.

- ``flag_outliers``: the loss-outlier rule (``core.measures.quality.OUTLIER_RULE``) over the
  workspace's ``loss``, stored as the derived columns ``is_high_loss_outlier`` /
  ``is_low_loss_outlier`` and the ``outliers`` manifest section (the rule in words, its cuts).
- ``quality_signals``: per quality signal (loss, gradient norm, IFD, outlier flags), whether the
  workspace has it and, when not, why and how to get it (an older workspace has no ``grad_norm``:
  a note, not an error). ``prism info`` and ``prism quality`` print these.
- ``blend_curve``: ``quality_blend`` at one budget over several β: G-Vendi and mean quality of
  each pick, beside a random subset of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.measures.quality import OUTLIER_RULE, loss_outliers
from core.measures.vendi import vendi_score
from core.select.pool import Pool
from core.select.quality import DEFAULT_SCORE, quality_score
from core.select.selectors import select
from core.validate import check_number
from core.workspace.files import now
from core.workspace.imported import is_imported
from core.workspace.manifest import OutliersSection
from core.workspace.store import Workspace

DEFAULT_BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def flag_outliers(workspace: Workspace) -> OutliersSection:
    """Flag the workspace's rows of extreme loss and store the flags and the rule's cuts."""
    if "loss" not in workspace.sample_columns():
        why = (
            "its features were imported, so no proxy computed a loss"
            if is_imported(workspace)
            else "its features are not finished"
        )
        raise PrismError(
            f"{workspace.path} has no response loss ({why}); the outlier rule reads the loss.",
            param="workspace",
        )
    loss = workspace.samples(columns=["loss"])["loss"].to_numpy(dtype=np.float64)
    found = loss_outliers(loss)
    features = workspace.feature_section
    section = OutliersSection(
        rule=OUTLIER_RULE,
        high_cut=found.high_cut,
        low_cut=found.low_cut,
        n_rows=found.n_rows,
        n_high=int(found.high.sum()),
        n_low=int(found.low.sum()),
        features_completed=features.completed if features is not None else None,
        computed=now(),
    )
    with workspace.lock():
        workspace.add_columns(
            {"is_high_loss_outlier": found.high, "is_low_loss_outlier": found.low}
        )
        workspace.set_section(section)
    return section


@dataclass(frozen=True)
class Signal:
    """One quality signal of a workspace: its column, whether present, and a note in words."""

    name: str
    column: str
    present: bool
    note: str


def quality_signals(workspace: Workspace) -> list[Signal]:
    """Loss, gradient norm, IFD and the outlier flags: present or not, and what to do."""
    columns = set(workspace.sample_columns())
    imported = is_imported(workspace)
    path = workspace.path
    no_proxy = "imported features: no proxy computed it"
    signals = [
        Signal(
            "response loss",
            "loss",
            "loss" in columns,
            "mean NLL of the response tokens given the prompt"
            if "loss" in columns
            else no_proxy
            if imported
            else f"missing until the features finish (`prism resume {path}`)",
        ),
        Signal(
            "gradient norm",
            "grad_norm",
            "grad_norm" in columns,
            "length of the sketched gradient before normalisation (a JL estimate of the norm)"
            if "grad_norm" in columns
            else no_proxy
            if imported
            else "missing: this workspace was built before Prism stored it; rebuild with "
            f"`prism features DATA --workspace {path} --force` to get it",
        ),
    ]
    ifd = workspace.ifd
    has_ifd = "ifd" in columns
    signals.append(
        Signal(
            "IFD",
            "ifd",
            has_ifd,
            f"loss with prompt / loss alone; median {ifd.median_ifd:.3f}, "
            f"{ifd.n_above_one:,} rows ≥ 1 (the prompt does not help)"
            if has_ifd and ifd is not None and ifd.median_ifd is not None
            else no_proxy
            if imported
            else f"not computed (`prism quality {path} --ifd`: one forward pass per row)"
            + (f"; a {ifd.status} run keeps its finished rows" if ifd and not has_ifd else ""),
        )
    )
    outliers = workspace.outliers
    has_flags = "is_high_loss_outlier" in columns
    signals.append(
        Signal(
            "loss outliers",
            "is_high_loss_outlier",
            has_flags,
            f"{outliers.n_high:,} high (loss > {outliers.high_cut:.3g}), {outliers.n_low:,} low "
            f"(loss < {outliers.low_cut:.3g})"
            if has_flags and outliers is not None
            else no_proxy
            if imported
            else f"not flagged yet (`prism quality {path}`)",
        )
    )
    return signals


@dataclass(frozen=True)
class BlendPoint:
    """``quality_blend`` at one β (``beta`` None: a random subset of the same size)."""

    beta: float | None
    size: int
    g_vendi: float
    mean_quality: float
    mean_loss: float | None


def blend_curve(
    pool: Pool,
    *,
    budget: int,
    betas: Sequence[float] = DEFAULT_BETAS,
    score: str = DEFAULT_SCORE,
    seed: int = 0,
) -> list[BlendPoint]:
    """G-Vendi (order 1) and mean quality of ``quality_blend`` at ``budget`` for each β, then a
    seeded random subset of the same size for reference; ``mean_quality`` is the mean of the
    score's column itself (the loss for ``-loss``)."""
    values = [check_number(b, param="betas", minimum=0) for b in betas]
    if not values:
        raise PrismError("Give at least one β (e.g. 0,0.5,1,2).", param="betas")
    quality = quality_score(pool, score, "quality_blend")
    loss = pool.columns.get("loss")
    points = []
    for beta in [*values, None]:
        if beta is None:
            rows = select("random", pool, budget=budget, seed=seed)
        else:
            rows = select("quality_blend", pool, budget=budget, seed=seed, score=score, beta=beta)
        sign = -1.0 if score.startswith("-") else 1.0
        points.append(
            BlendPoint(
                beta=beta,
                size=len(rows),
                g_vendi=float(vendi_score(np.asarray(pool.features[np.sort(rows)]))),
                mean_quality=float(sign * np.nanmean(quality[rows])),
                mean_loss=None if loss is None else float(np.nanmean(np.asarray(loss)[rows])),
            )
        )
    return points
