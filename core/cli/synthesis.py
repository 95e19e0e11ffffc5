"""``prism synthesize``: grow the sparse regions of gradient space (the Prismatic Synthesis loop).

Runs rounds (``core.workspace.synthesis.loop``), or with ``--list`` shows the candidates, with
``--keep`` / ``--drop`` decides some by hand, with ``--join`` joins reviewed rounds, with
``--unjoin ROUND|all`` takes joined rows out again and with ``--resume`` finishes a stopped run.
``--json`` prints the round records for machines.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from core.cli.options import JsonOpt, QuietOpt, WorkspaceArg, open_workspace
from core.cli.render import console, err, fmt, print_json, table
from core.errors import PrismError
from core.synthesis.generation import DEFAULT_KEY_ENV, MAX_REPLY_CHARS
from core.synthesis.targets import TARGET_HELP
from core.workspace.manifest import RoundRecord


def synthesize(
    workspace: WorkspaceArg,
    rounds: Annotated[int, typer.Option(help="Rounds to run.")] = 1,
    per_round: Annotated[int, typer.Option(help="Candidates generated per round.")] = 20,
    target: Annotated[str, typer.Option(help=f"Where to aim: {TARGET_HELP}.")] = "sparse",
    few_shot: Annotated[int, typer.Option(help="Examples shown per request.")] = 5,
    generator: Annotated[
        str,
        typer.Option(
            help="'default' (the embedded SmolLM2-135M: small, offline — expect modest samples), "
            "or a Hugging Face causal LM name or local path run here."
        ),
    ] = "default",
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible server's base URL (vLLM, SGLang, llama.cpp, Ollama, "
            "`transformers serve`, hosted APIs), without key or query; the key comes from "
            "--api-key-env or --api-key-file."
        ),
    ] = None,
    endpoint_model: Annotated[
        str | None, typer.Option(help="The model name to ask the endpoint for.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help=f"Environment variable holding the endpoint's key (default {DEFAULT_KEY_ENV}); "
            "read again by --resume, never stored."
        ),
    ] = None,
    api_key_file: Annotated[
        str | None,
        typer.Option(
            help="A file whose first line is the endpoint's key (its path is stored, the key "
            "never); read again by --resume."
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(help="Longest reply, in tokens.")] = 384,
    max_reply_chars: Annotated[
        int,
        typer.Option(help="Longest reply taken, in characters; a longer one counts as malformed."),
    ] = MAX_REPLY_CHARS,
    seed: Annotated[int, typer.Option(help="Seed of targets, examples and sampling.")] = 0,
    duplicate_cosine: Annotated[
        float, typer.Option(help="A candidate this close (cosine) to a pool row is a duplicate.")
    ] = 0.98,
    sparse_filter: Annotated[
        bool,
        typer.Option(
            "--filter/--no-filter",
            help="Keep only candidates whose nearest cluster is sparse (--no-filter: the "
            "published ablation).",
        ),
    ] = True,
    budget: Annotated[
        int | None, typer.Option(help="Stop once this many candidates joined in this run.")
    ] = None,
    quality_gate: Annotated[
        bool,
        typer.Option(
            "--quality-gate/--no-quality-gate",
            help="Reject low-quality candidates: response loss outside the source's 5th–95th "
            "percentile band, or (GSM8K-style answers) an answer its own working does not give.",
        ),
    ] = True,
    review: Annotated[
        bool | None,
        typer.Option(
            "--review/--no-review",
            help="Stop after one round for keep/drop by hand, then --join. Default: on for the "
            "embedded generator, off otherwise.",
        ),
    ] = None,
    unjoin: Annotated[
        str | None,
        typer.Option(
            help="Take a joined round's rows out again (a round number, or 'all'); its "
            "candidates stay, marked unjoined."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Finish the rounds a stopped run left.")] = False,
    join: Annotated[bool, typer.Option(help="Join the reviewed rounds' kept candidates.")] = False,
    keep: Annotated[
        list[str] | None, typer.Option(help="Candidate ids to keep by hand (repeatable).")
    ] = None,
    drop: Annotated[
        list[str] | None, typer.Option(help="Candidate ids to drop by hand (repeatable).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the candidates.")] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Generate samples aimed at sparse clusters, keep those that land there, add them."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.synthesis import loop as synthesis
    from core.workspace.synthesis.candidates import decide, read_candidates

    ws = open_workspace(workspace)
    if unjoin is not None:
        records = [synthesis.unjoin(ws, r) for r in _unjoin_rounds(ws, unjoin)]
        if as_json:
            print_json({"rounds": [r.to_dict() for r in records]})
            return
        for r in records:
            stale = r.stale_subsets or ()
            console.print(
                f"Round {r.round}: {r.unjoined} row(s) taken out; G-Vendi now "
                f"{fmt(r.g_vendi_unjoined)}"
                + (f"; subsets marked stale: {escape(', '.join(stale))}" if stale else "")
                + "."
            )
        return
    if keep or drop:
        changed = decide(ws, keep or [], "keep") if keep else 0
        changed += decide(ws, drop or [], "drop") if drop else 0
        console.print(f"{changed} candidate(s) changed; join them with --join.")
        return
    if list_:
        frame = read_candidates(ws)
        if as_json:
            print_json(frame.drop(columns=["settings"]).to_dict(orient="records"))
        else:
            _print_candidates(frame)
        return
    if join:
        records = [synthesis.join(ws, r) for r in synthesis.pending_rounds(ws)]
    else:
        options: dict[str, Any] = {
            "rounds": rounds,
            "per_round": per_round,
            "target": target,
            "few_shot": few_shot,
            "generator": generator,
            "endpoint": endpoint,
            "endpoint_model": endpoint_model,
            "api_key_env": api_key_env or DEFAULT_KEY_ENV,
            "api_key_file": api_key_file,
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "max_reply_chars": max_reply_chars,
            "seed": seed,
            "duplicate_cosine": duplicate_cosine,
            "sparse_only": sparse_filter,
            "budget": budget,
            "quality_gate": quality_gate,
            "review": review,
        }
        if review is None:
            options["review"] = generator == "default" and endpoint is None
            if options["review"] and not resume and not quiet and not as_json:
                err.print(
                    "Review is on: the embedded 135M generator often writes wrong or incoherent "
                    "samples, so read them before they join (--no-review joins them at once)."
                )
        try:
            synthesis.check_synthesizable(ws)  # before any model loads
            # A resumed run may read its key from another variable or file.
            key_source = {"api_key_env": api_key_env, "api_key_file": api_key_file}
            config = (
                synthesis.resume_config(ws, **{k: v for k, v in key_source.items() if v})
                if resume
                else synthesis.SynthesisConfig(**options)
            )
        except PrismError as error:
            synthesis.fail_started_job(ws, error)
            raise

        def progress(state: dict[str, Any]) -> None:
            if not quiet and not as_json:
                err.print(
                    f"round {state['round']}: {escape(state['step'])} "
                    f"({state['done']}/{state['total']})"
                )

        records = synthesis.run_synthesis(ws, config, on_progress=progress)
    if as_json:
        print_json({"rounds": [r.to_dict() for r in records], "gain": synthesis.gain(records)})
        return
    print_rounds(records)
    if any(r.status == "judged" for r in records):
        console.print("Review the candidates (`--list`, `--keep ID`, `--drop ID`), then `--join`.")


def _unjoin_rounds(ws: Any, which: str) -> list[int]:
    """The rounds ``--unjoin`` names: one number, or every joined round (newest first)."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.synthesis.loop import joined_rounds

    if which.strip().lower() == "all":
        return sorted(joined_rounds(ws), reverse=True)
    if not which.strip().isdigit():
        raise PrismError(f"unjoin must be a round number or 'all'; got {which!r}.", param="unjoin")
    return [int(which)]


def print_rounds(records: list[RoundRecord]) -> None:
    """The round table: counts, G-Vendi and rows in sparse clusters before → after."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.synthesis.quality import RULE

    names = ["round", "made", "bad", "dup", "low q", "dense", "kept", "joined", "G-Vendi"]
    columns = [(name, True) for name in [*names, "sparse", "s"]]
    out = table("Synthesis rounds", columns)
    counts = ("generated", "malformed", "duplicate", "low_quality", "dense", "kept")

    def text(value: object, missing: str = "—") -> str:
        return missing if value is None else str(value)

    for r in records:
        after = r.g_vendi_after
        out.add_row(
            str(r.round),
            *(text(getattr(r, count), "") for count in counts),
            text(r.joined),
            f"{fmt(r.g_vendi_before)}→{fmt(after) if after is not None else '—'}",
            f"{text(r.sparse_rows_before)}→{text(r.sparse_rows_after)}",
            fmt(r.seconds, 1),
        )
    console.print(out)
    console.print("G-Vendi and rows in sparse clusters: before → after joining.")
    console.print(f"Low quality (low q): {escape(RULE)}.")
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.synthesis.loop import gain

    per_100 = gain(records)
    if per_100 is not None:
        console.print(f"G-Vendi gained per 100 joined samples: {per_100:+.2f}")


def _print_candidates(frame: Any, limit: int = 200) -> None:
    columns = [("id", False), ("reason", False), ("hand", False), ("joined", False)]
    columns.append(("sample", False))
    out = table(f"Candidates ({len(frame):,})", columns)
    for _, row in frame.head(limit).iterrows():
        sample = row["text"] if isinstance(row["text"], str) else row["prompt"]
        if row["reason"] == "malformed" and row.get("problem"):
            sample = f"({row['problem']})"
        reason = str(row["reason"])
        if reason == "low quality" and row.get("quality"):
            reason = f"{reason}: {row['quality']}"
        out.add_row(
            escape(str(row["candidate_id"])),
            escape(reason),
            escape(str(row["decision"] or "—")),
            "yes" if row["joined"] else "no",
            escape(
                " ".join(str(sample or row["raw_prompt"] or row["raw_response"] or "").split())[:48]
            ),
        )
    console.print(out)
