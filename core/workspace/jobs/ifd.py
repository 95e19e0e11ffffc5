"""IFD into a workspace: one forward pass per row of the response alone, resumable like features.

``run_ifd`` reads what a workspace needs for IFD (its proxy settings, its stored ``loss``: the
response given its prompt), computes the loss of each row's response alone
(``core.features.ifd``: the response after one empty user turn, the workspace's own proxy, chat
template, dtype and maximum length) in windows of ``shard_size`` rows, and writes each finished
window atomically to ``ifd-shards/``, so a killed run keeps its finished rows and the next run
computes only the rest. At the end the derived columns ``loss_alone`` and ``ifd`` (= loss /
loss_alone, ``core.measures.quality.ifd_ratio``) and the ``ifd`` manifest section are written
and the shards removed. Its progress is job ``ifd`` (``core.workspace.jobs.record``).

It refuses a workspace of imported features (no proxy computed them, so there is no loss and no
model to run) and one whose rows are plain text (IFD needs a prompt to leave out).
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.errors import JobStopped, PrismError
from core.measures.quality import ifd_ratio
from core.validate import check_int
from core.workspace.files import atomic_path, now
from core.workspace.imported import is_imported
from core.workspace.jobs.extraction import config_from_workspace
from core.workspace.jobs.record import DONE, FAILED, RUNNING, Job, Stop, report_job, sigterm_stops
from core.workspace.manifest import FeatureSection, IfdSection
from core.workspace.store import IFD_SHARDS, Workspace

IFD = "ifd"  # the job's kind
DEFAULT_SHARD_SIZE = 64
ALONE = "the response as the assistant turn after one empty user turn (earlier turns removed)"


def _shard_dir(workspace: Workspace) -> Path:
    return workspace.path / IFD_SHARDS


def finished_rows(workspace: Workspace, total: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of rows already computed, their loss alone) from the readable shards; a shard that
    cannot be read or does not fit is ignored (its rows are computed again)."""
    done = np.zeros(total, dtype=bool)
    alone = np.full(total, np.nan, dtype=np.float32)
    folder = _shard_dir(workspace)
    if not folder.is_dir():
        return done, alone
    for path in sorted(folder.glob("shard-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as shard:
                rows = np.asarray(shard["rows"], dtype=np.int64)
                values = np.asarray(shard["loss_alone"], dtype=np.float32)
        except Exception:  # noqa: BLE001 - unreadable: recomputed
            continue
        if len(rows) != len(values) or not len(rows) or rows.min() < 0 or rows.max() >= total:
            continue
        done[rows] = True
        alone[rows] = values
    return done, alone


def _write_shard(workspace: Workspace, rows: np.ndarray, values: np.ndarray) -> None:
    path = _shard_dir(workspace) / f"shard-{int(rows.min()):09d}-{len(rows):06d}.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, rows=rows, loss_alone=values.astype(np.float32))


def _refusal(workspace: Workspace) -> None:
    """Raise a PrismError when IFD cannot be computed for this workspace."""
    if is_imported(workspace):
        raise PrismError(
            f"{workspace.path} holds imported features: no proxy model computed them, so there "
            "is no response loss to divide and no model for the pass over the response alone. "
            "IFD needs a workspace built with `prism features DATA --workspace WS`.",
            param="workspace",
        )
    if not workspace.has_features or "loss" not in workspace.sample_columns():
        raise PrismError(
            f"{workspace.path} has no finished features (they hold the loss IFD divides); run "
            f"`prism resume {workspace.path}` first.",
            param="workspace",
        )


def _chats(workspace: Workspace) -> list[list[dict[str, str]]]:
    """Every row as a chat; a PrismError when rows are plain text (no prompt to leave out)."""
    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    rows = conversations(workspace.samples(), columns)
    texts = [i for i, row in enumerate(rows) if isinstance(row, str)]
    if texts:
        raise PrismError(
            f"IFD compares a response's loss with and without its prompt, but {len(texts):,} of "
            f"the {len(rows):,} rows of {workspace.path} are plain text with no prompt (a text "
            "column). Build the workspace from prompt/response or chat columns to compute IFD.",
            param="workspace",
        )
    return rows  # type: ignore[return-value]


def ifd_current(workspace: Workspace) -> bool:
    """Whether the stored IFD was computed for these samples and these features."""
    section = workspace.ifd
    features = workspace.feature_section
    return (
        section is not None
        and section.complete
        and section.fingerprint == workspace.dataset.fingerprint
        and features is not None
        and section.features_completed == features.completed
        and {"ifd", "loss_alone"} <= set(workspace.sample_columns())
    )


def run_ifd(
    workspace: Workspace,
    *,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    force: bool = False,
    on_progress: Callable[[Job], None] | None = None,
) -> IfdSection:
    """Compute (or finish) the IFD of every row; returns the ``ifd`` section written.

    A current IFD is returned as it is unless ``force``. A stop (Ctrl-C, SIGTERM) keeps the
    finished shards and raises ``JobStopped`` saying how to continue.
    """
    # heavy: torch (the proxy), only when features are computed
    from core.features.extract import default_batch_size, default_batch_tokens
    from core.features.ifd import response_alone, response_losses
    from core.features.proxy import load_proxy
    from core.features.tokenize import encode_many

    check_int(shard_size, param="shard_size", minimum=1)
    _refusal(workspace)
    if ifd_current(workspace) and not force:
        return workspace.ifd  # type: ignore[return-value]
    if force:
        shutil.rmtree(_shard_dir(workspace), ignore_errors=True)
    chats = _chats(workspace)
    loss = workspace.samples(columns=["loss"])["loss"].to_numpy(dtype=np.float32)
    config = config_from_workspace(
        workspace, batch_size=batch_size, batch_tokens=batch_tokens, device=device
    )
    total = len(chats)
    _shard_dir(workspace).mkdir(exist_ok=True)
    done, _ = finished_rows(workspace, total)
    todo = np.flatnonzero(~done)
    features = workspace.feature_section or FeatureSection()
    section = IfdSection(
        status="running",
        alone=ALONE,
        fingerprint=workspace.dataset.fingerprint,
        features_completed=features.completed,
        shard_size=shard_size,
    )
    workspace.set_section(section)
    started, t0 = now(), time.monotonic()
    state = {"done": total - len(todo), "new": 0}

    def report(status: str, message: str = "") -> None:
        elapsed = time.monotonic() - t0
        rate = state["new"] / elapsed if elapsed > 0 and state["new"] else 0.0
        eta = (total - state["done"]) / rate if rate else None
        job = report_job(
            workspace, IFD, status=status, done=state["done"], total=total, message=message,
            samples_per_s=rate, eta_s=eta, started=started,
        )  # fmt: skip
        if on_progress is not None:
            on_progress(job)

    with sigterm_stops():
        try:
            report(RUNNING, "loading the proxy model" if len(todo) else "assembling")
            if len(todo):
                proxy = load_proxy(
                    config.model,
                    dtype=config.dtype,
                    device=config.device,
                    trust_remote_code=config.trust_remote_code,
                )
                section = section.replace(device=str(proxy.device))
                sizes = {
                    "batch_size": config.batch_size or default_batch_size(proxy.device),
                    "batch_tokens": config.batch_tokens or default_batch_tokens(proxy.device),
                }
                t0 = time.monotonic()
                for lo in range(0, len(todo), shard_size):
                    rows = todo[lo : lo + shard_size]
                    encoded = encode_many(
                        proxy.tokenizer,
                        [response_alone(chats[i]) for i in rows],
                        max_length=config.max_length,
                    )
                    values = np.zeros(len(rows), dtype=np.float32)
                    for batch, losses in response_losses(proxy, encoded, **sizes):
                        values[batch] = losses
                    _write_shard(workspace, rows, values)
                    state["done"] += len(rows)
                    state["new"] += len(rows)
                    report(RUNNING)
            covered, alone = finished_rows(workspace, total)
            if not covered.all():  # a shard vanished meanwhile: say so rather than guess
                raise PrismError(
                    f"{int((~covered).sum()):,} rows lost their finished IFD shard; run "
                    f"`prism quality {workspace.path} --ifd` again.",
                    param="workspace",
                )
            ratio = ifd_ratio(loss, alone)
            workspace.add_columns({"loss_alone": alone, "ifd": ratio})
            finite = ratio[np.isfinite(ratio)]
            section = section.replace(
                status="complete",
                n=total,
                median_ifd=float(np.median(finite)) if len(finite) else None,
                n_above_one=int((finite >= 1).sum()),
                seconds=round(time.monotonic() - t0, 3),
                completed=now(),
            )
            workspace.set_section(section)
            shutil.rmtree(_shard_dir(workspace), ignore_errors=True)
            report(DONE, "IFD complete")
            return section
        except (Stop, KeyboardInterrupt) as error:
            kept, _ = finished_rows(workspace, total)
            state["done"] = int(kept.sum())
            workspace.set_section(section.replace(status="cancelled"))
            report("cancelled", f"stopped; {state['done']:,} finished rows are kept")
            interrupted = isinstance(error, KeyboardInterrupt)
            raise JobStopped(
                f"IFD was {'interrupted' if interrupted else 'stopped'}: {state['done']:,} of "
                f"{total:,} rows are finished and kept in {workspace.path}. Continue with: "
                f"`prism quality {shlex.quote(str(workspace.path))} --ifd`",
                exit_code=130 if interrupted else 143,
            ) from None
        except BaseException as error:
            workspace.set_section(section.replace(status="failed"))
            report(FAILED, str(error) or type(error).__name__)
            raise
