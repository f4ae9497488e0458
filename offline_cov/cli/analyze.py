"""`analyze`, `models` and `merge`: label a dataset, list the models, merge shard runs."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from ..io import writes_in_place
from ..labelers import LABELERS
from ..options import ENGINES, LABELER_ENGINES
from .common import (
    CONTEXT,
    METADATA_START,
    REPORT_START,
    STDOUT,
    check_paths,
    display_width,
    echo_err,
    encoding_option,
    json_flag,
    model_option,
    out_defaulted,
    out_option,
    pad,
    quiet_option,
    refuse_others_file,
    silence_libraries,
    status_lines,
    user_errors,
    verbose_option,
)


def _taxonomy_from(taxonomy: str | None, taxonomy_file: str | None):
    from ..taxonomy import load_taxonomy_file, parse_taxonomy_list

    if taxonomy and taxonomy_file:
        raise click.UsageError("give --taxonomy or --taxonomy-file, not both")
    if taxonomy_file:
        return load_taxonomy_file(taxonomy_file)
    return parse_taxonomy_list(taxonomy) if taxonomy is not None else None


def _shard(text: str | None) -> tuple[int, int] | None:
    """--shard I/N parsed; a malformed one is a usage error (exit 2), like other bad option values."""
    from ..errors import OfflineCovError
    from ..strategies.shard import parse_shard

    try:
        return parse_shard(text) if text else None
    except OfflineCovError as exc:
        raise click.UsageError(str(exc)) from None


def _labeler_and_engine(labeler: str | None, engine: str | None) -> tuple[str | None, str | None]:
    """The old `--engine embed|fused|hybrid` still works, with a one-line note."""
    if engine in LABELER_ENGINES:
        if labeler not in (None, engine):
            raise click.UsageError(f"--engine {engine} names a labeler; give --labeler {labeler} alone")
        echo_err(f"Note: --engine {engine} is deprecated; use --labeler {engine}")
        return engine, None
    return labeler, engine


@click.command(context_settings=CONTEXT)
@click.argument("data", type=click.Path(exists=True, dir_okay=True))
@click.option("--taxonomy", help="Comma-separated categories; name=share sets a target (math=30,code=70).")
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False), help="YAML/JSON taxonomy with descriptions, examples and target shares.")
@model_option
@click.option("--labeler", type=click.Choice(list(LABELERS)), default=None,
              help="llm: the LLM writes each label; embed: nearest MiniLM category prototype, no LLM; "
                   "fused: MiniLM's and the LLM's hidden-state similarity to each category, added; "
                   "hybrid: the LLM picks among the embedding's top candidates; "
                   "ensemble: the LLM's probability of each category times fused's, and its yes/no check of the likeliest; "
                   "ensemble-lite: the same, the check asked in the label request's own chat (about 2x faster on a "
                   "CPU without AMX); ensemble-nocheck: the same without the check (less accurate). "
                   "Default: llm on a GPU, with --engine transformers/ray or --strategy card/distill, else ensemble "
                   "(ensemble-lite on a CPU without AMX), which reads the --model given ($OFFLINE_COV_LABELER overrides; "
                   "see bench/README.md).")
@click.option("--engine", type=click.Choice(ENGINES + LABELER_ENGINES), default=None, metavar="[vllm|transformers|ray]",
              help="The model runtime: vllm (default), transformers, or ray (vLLM replicas on a Ray cluster's nodes). "
                   "(embed, fused, hybrid here are the old spelling of --labeler.)")
@click.option("--ray-address", help="--engine ray: the cluster (auto, host:port, ray://host:port). "
              "Default: as ray.init(): $RAY_ADDRESS, the cluster last started here, or a new local one.")
@click.option("--replicas", type=click.IntRange(min=1), help="--engine ray: vLLM replicas. "
              "Default: one per tensor_parallel_size GPUs, or one per node on CPU.")
@click.option("--strategy", type=click.Choice(["per-sample", "card", "distill"]), default="per-sample", show_default=True,
              help="card: the original single-prompt analysis, checked against the contract. distill: the LLM labels a "
                   "stratified subsample, a classifier on sentence embeddings labels the rest (very large data).")
@click.option("--distill-size", type=click.IntRange(min=10), default=2000, show_default=True, help="distill: how many samples the LLM labels.")
@click.option("--sample", "sample_n", type=click.IntRange(min=1), help="Analyze a reproducible random sample of N samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample and of the engine.")
@out_option("report.json", "the report")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Write per-sample labels (JSONL).")
@click.option("--metadata", "metadata_path", type=click.Path(dir_okay=False),
              help="Run metadata file. Default: beside --out as *.meta.json (none with --out -).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Also write a Markdown summary.")
@click.option("--instruction-field", help="Field holding the instruction (overrides shape detection).")
@click.option("--response-field", help="Field holding the response. Default: output, response, completion, answer "
                                       "or chosen, where the record has one.")
@encoding_option("Text encoding of the dataset file.")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed records and list them in the metadata.")
@click.option("--gap-threshold", type=float, default=5.0, show_default=True, help="Share (percent) under which a target category is a gap.")
@click.option("--over-threshold", type=float, default=35.0, show_default=True, help="Share (percent) over which a category is over-represented.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), help="Label cache file (SQLite). Default: $OFFLINE_COV_CACHE or the tool home.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the label cache.")
@click.option("--shard", help="Label only shard I of N (I/N, 0-based) for job arrays; combine with `offline-cov merge`.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Samples per engine call (and per label-cache commit). Default: 1024 on a GPU, 64 on a CPU.")
@click.option("--calibration", "calibration_path", type=click.Path(exists=True, dir_okay=False),
              help="Rows of this dataset with their true category (JSONL/CSV: category plus index or text; "
                   "`offline-cov review` writes one): shares are corrected for the labeler's errors, with intervals.")
@click.option("--describe/--no-describe", default=None,
              help="Let the local model write a description and example requests for each category given by "
                   "name only, read by every labeler (default: on when the labeler reads an LLM, and with --strategy card).")
@quiet_option
@verbose_option
def analyze(data, taxonomy, taxonomy_file, model, labeler, engine, ray_address, replicas, strategy, distill_size,
            sample_n, seed, out, labels_path, metadata_path, html_path, markdown_path, instruction_field,
            response_field, encoding, skip_bad_lines, gap_threshold, over_threshold, cache_path, no_cache, shard,
            batch_size, calibration_path, describe, quiet, verbose):
    """Label a dataset with a local model and write its coverage report.

    Example: offline-cov analyze data.jsonl --taxonomy math,code,writing -o report.json
    """
    from ..data.readers import FieldSpec
    from ..labelers.base import LabelSettings
    from ..options import AnalyzeOptions

    if not verbose:
        silence_libraries()
    labeler, engine = _labeler_and_engine(labeler, engine)
    engine_options = _engine_options(engine, ray_address, replicas)
    thresholds = _thresholds(gap_threshold, over_threshold)
    if strategy == "card" and (shard or labeler):
        raise click.UsageError(f"--{'shard' if shard else 'labeler'} has no effect with --strategy card: the model "
                               "writes the whole report in one answer from the samples that fit its context")
    if calibration_path and (strategy != "per-sample" or shard):
        raise click.UsageError("--calibration goes with --strategy per-sample and no --shard "
                               "(for a sharded run, give it to `offline-cov merge`)")
    if out_defaulted():
        refuse_others_file(out, REPORT_START, "name the report with -o")
    if not metadata_path and out != STDOUT and not writes_in_place(out):  # none beside /dev/null, say
        metadata_path = str(Path(out).with_suffix(".meta.json"))
        refuse_others_file(metadata_path, METADATA_START, "name the metadata file with --metadata")
    check_paths({"DATA": data, "--taxonomy-file": taxonomy_file, "--calibration": calibration_path},
                 {"--out": out, "--metadata": metadata_path, "--labels": labels_path, "--html": html_path,
                  "--markdown": markdown_path, "--cache": cache_path})  # the cache is written too
    with user_errors():
        opts = AnalyzeOptions(
            taxonomy=_taxonomy_from(taxonomy, taxonomy_file), model=model, labeler=labeler, engine=engine,
            sample=sample_n, seed=seed, strategy=strategy, distill_size=distill_size,
            fields=FieldSpec(instruction_field, response_field), encoding=encoding, skip_bad_lines=skip_bad_lines,
            thresholds=thresholds, label=LabelSettings(**({"batch_size": batch_size} if batch_size else {})),
            use_cache=not no_cache, cache_path=cache_path, shard=_shard(shard),
            engine_options=engine_options, calibration=calibration_path,
            **({} if describe is None else {"describe": describe}),
        )
        with status_lines(not quiet), _interrupted(opts):
            result = _run_analyze(data, opts, quiet)
    with user_errors(writing=out):
        _write_outputs(result, out, metadata_path, labels_path, html_path, markdown_path)
    if not quiet:
        _print_summary(result, out)
        hint = review_hint(data, opts, metadata_path, labels_path)
        if hint:
            echo_err(hint)


def _thresholds(gap: float, over: float):
    """The thresholds, or a usage error (exit 2) naming the options when they are out of range."""
    from ..errors import OfflineCovError
    from ..report.tally import Thresholds

    try:
        return Thresholds(gap, over)
    except OfflineCovError as exc:
        raise click.UsageError(f"--gap-threshold/--over-threshold: {exc}") from None


def _engine_options(engine: str | None, ray_address: str | None, replicas: int | None) -> dict:
    if engine != "ray":
        if ray_address or replicas:
            raise click.UsageError("--ray-address and --replicas go with --engine ray")
        return {}
    return {"address": ray_address, "replicas": replicas}


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's cancel or time limit), raised where the run is so that it stops as Ctrl-C does."""


@contextlib.contextmanager
def _interrupted(opts):
    """Ctrl-C or SIGTERM: the engine is closed on the way out, then one line on what was kept and how to go
    on, exit 130 or 143 (the shell's codes), instead of Click's bare 'Aborted!' and 1, or a silent death."""
    import signal
    import threading

    def terminate(*_):
        raise _Terminated

    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        yield
    except KeyboardInterrupt as exc:
        kept = ("the labels made so far are in the label cache: the same command resumes from them"
                if opts.use_cache else "nothing was kept (--no-cache)")
        echo_err(f"\n{'Terminated' if isinstance(exc, _Terminated) else 'Interrupted'}; {kept}.")
        raise SystemExit(143 if isinstance(exc, _Terminated) else 130) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def _run_analyze(data, opts, quiet: bool):
    from ..pipeline import analyze as run

    if quiet:
        return run(data, opts)
    progress = _Progress()
    try:
        return run(data, opts, progress=progress)
    finally:
        progress.close()


class _Progress:
    """A progress bar on stderr, opened once the number of samples is known: done/total, the ETA and
    the labeling rate (samples/s of the samples labeled now, cache hits left out of the rate)."""

    def __init__(self):
        self.bar, self.labeled, self.started = None, 0, None

    def __call__(self, done: int, total: int, cached: bool = False) -> None:
        import time

        if self.bar is None:
            self.bar = click.progressbar(length=total, label="labeling", file=sys.stderr, show_pos=True,
                                         item_show_func=lambda rate: rate)
            self.bar.__enter__()
        if not cached:
            self.started = self.started or time.perf_counter()
            self.labeled += done
        elapsed = time.perf_counter() - self.started if self.started else 0
        rate = self.labeled / elapsed if self.labeled and elapsed > 0 else None
        self.bar.update(done, f"{rate:.2f} samples/s" if rate else None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _write_outputs(result, out: str, metadata_path, labels_path, html_path, markdown_path) -> None:
    """Every output as one set: all written to temporary files first, then renamed into place."""
    from ..io import OutputSet, json_text, jsonl_lines
    from ..report.render import render_html, render_markdown
    from .common import write_text_out

    report = json_text(result.report.model_dump())
    with OutputSet() as outputs:
        if out != STDOUT:
            outputs.add(out, report)
        if metadata_path:
            outputs.add(metadata_path, json_text(result.metadata))
        if labels_path:
            outputs.add(labels_path, jsonl_lines(lab.to_json() for lab in result.labels))
        if html_path:
            outputs.add(html_path, render_html(result.report, result.metadata, result.taxonomy.targets()))
        if markdown_path:
            outputs.add(markdown_path, render_markdown(result.report, result.metadata))
    if out == STDOUT:
        write_text_out(out, report)


def _print_possible(metadata: dict) -> None:
    """The categories whose 95% share interval crosses the gap or over-representation line although the
    report does not call them (`report/decisions.py`), and how to narrow the intervals."""
    from ..report.render import narrowing_step

    calls = (metadata.get("share_intervals") or {}).get("calls") or {}
    maybe_gaps = ", ".join(calls.get("gaps", {}).get("possible", []))
    maybe_over = ", ".join(calls.get("over_represented", {}).get("possible", []))
    narrow = narrowing_step(metadata)
    if maybe_gaps or maybe_over:
        echo_err(f"possible gaps: {maybe_gaps or 'none'} | possibly over-represented: {maybe_over or 'none'} "
                 f"(the 95% interval crosses the line; {narrow})")


def review_hint(data: str, opts, metadata_path: str | None, labels_path: str | None) -> str | None:
    """The commands that check this run's labels (`review`) and correct its shares with the answers
    (`--calibration`), ready to paste; None when the run was calibrated, cannot take a calibration, or
    names no file `review` could read its categories from."""
    if opts.calibration is not None or opts.strategy != "per-sample" or opts.shard is not None:
        return None
    if metadata_path:
        taxonomy = ("--metadata", metadata_path)
    elif opts.taxonomy is not None and not opts.taxonomy.inferred:
        taxonomy = ("--taxonomy", ",".join(opts.taxonomy.names))
    else:
        return None
    cached = " (the labels come from the cache)" if opts.use_cache else ""
    return _review_commands(data, labels_path, taxonomy, (opts.fields.instruction, opts.fields.response, opts.encoding),
                            "this command", cached)


def _review_commands(data: str, labels_path: str | None, taxonomy: tuple[str, str], reading: tuple, rerun: str,
                     cached: str = "") -> str:
    """The `review` command for a run's labels (its taxonomy option, and the instruction field, response
    field and encoding the dataset was `reading` with), then the `rerun` with --calibration."""
    import shlex

    flags = ("--instruction-field", "--response-field", "--encoding")
    fields = [(flag, value) for flag, value in zip(flags, reading) if value and value != "utf-8"]
    args = [("--labels", labels_path or "labels.jsonl"), taxonomy, *fields, ("-o", "calibration.jsonl")]
    command = " ".join(["offline-cov review", shlex.quote(data), *(f"{f} {shlex.quote(str(v))}" for f, v in args)])
    first = "" if labels_path else f"rerun {rerun} with --labels labels.jsonl{cached}, then "
    return (f"to check the labels by hand: {first}{command} (Enter accepts a label; -n sets how many, 200 by default), "
            f"then rerun {rerun} with --calibration calibration.jsonl")


def _print_summary(result, out) -> None:
    """The shares (and, after a trusted calibration, the corrected ones the calls were decided on), the calls."""
    from ..report.render import corrected_balance, corrected_shares

    report = result.report
    for warning in result.metadata.get("warnings", []):
        echo_err(f"Warning: {warning}")
    corrected = corrected_shares(result.metadata)
    width = max([28] + [display_width(cat.name) + 2 for cat in report.categories])
    echo_err(f"{pad('category', width)}{'count':>7}{'share %':>9}" + (f"{'corrected %':>13}" if corrected else ""))
    for cat in report.categories:
        fixed = f"{corrected[cat.name]:>13.1f}" if cat.name in corrected else ""
        echo_err(f"{pad(cat.name, width)}{cat.count:>7}{cat.share_percent:>9.1f}{fixed}")
    gaps = ", ".join(g.category for g in report.gaps) or "none"
    over = ", ".join(o.category for o in report.over_represented) or "none"
    on = " (decided on the corrected shares)" if corrected else ""
    echo_err(f"gaps: {gaps} | over-represented: {over}{on} | balance {report.balance_score:.2f}"
             f"{corrected_balance(result.metadata)}")
    _print_possible(result.metadata)
    _print_truncated(result.metadata)
    echo_err(f"report written to {'stdout' if out == STDOUT else out}")


def _print_truncated(metadata: dict) -> None:
    """How many samples the labeler read only the beginning of (the metadata's samples.truncated)."""
    samples, budget = metadata.get("samples") or {}, metadata.get("sample_token_budget")
    cut, labeled = samples.get("truncated") or 0, samples.get("labeled") or 0
    if cut and labeled:
        read = f"the {budget} tokens" if budget else "what"
        echo_err(f"{cut} of {labeled} samples ({100 * cut / labeled:.0f}%) are longer than {read} the labeler reads: "
                 "each was labeled on its beginning, the request first")


@click.command(context_settings=CONTEXT)
@json_flag
def models(as_json):
    """List the models in models.yaml and which is the default here.

    Example: offline-cov models --json
    """
    from ..registry import load_registry, models_file, weights_here

    with user_errors():
        registry = load_registry()
    default = registry.default_name()
    here = {name: weights_here(spec) for name, spec in registry.models.items()}
    if as_json:
        rows = [{"name": name, "default": name == default, "requires_gpu": spec.requires_gpu, "weights": here[name],
                 "source": spec.source.model_dump(exclude_none=True), "description": spec.description}
                for name, spec in registry.models.items()]
        click.echo(json.dumps({"models_file": str(models_file()), "models": rows}, indent=2))
        return
    click.echo(f"# {models_file()}")
    for name, spec in registry.models.items():
        mark = "*" if name == default else " "
        where = spec.source.repo or spec.source.path or f"{spec.source.package}:{spec.source.file}"
        gpu = "gpu" if spec.requires_gpu else "cpu/gpu"
        click.echo(f"{mark} {name:<26} {gpu:<8} {here[name]:<9} {where}")
        if spec.description:
            click.echo(f"    {spec.description}")
    click.echo("* = default on this machine; weights: ready (here), packaged (installed, converted on first use), "
               "missing")


@click.command(context_settings=CONTEXT)
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@out_option("report.json", "the merged report")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Write all shards' labels (JSONL).")
@click.option("--calibration", "calibration_path", type=click.Path(exists=True, dir_okay=False),
              help="Rows of the dataset with their true category (`offline-cov review` of the merged labels writes "
                   "one): the shares are corrected as `analyze --calibration` corrects a single run's.")
def merge(manifests, out, labels_path, calibration_path):
    """Build one report from the shard manifests of `analyze --shard I/N` runs.

    Example: offline-cov merge shards/*.meta.json -o report.json
    """
    from ..io import OutputSet, json_text, jsonl_lines
    from ..strategies.shard import load_manifests, merge_shards, merged_metadata
    from .common import write_text_out

    meta_path = None if out == STDOUT or writes_in_place(out) else Path(out).with_suffix(".meta.json")
    if out_defaulted():
        refuse_others_file(out, REPORT_START, "name the merged report with -o")
    if meta_path:
        refuse_others_file(meta_path, METADATA_START, "choose another -o")
    with user_errors():
        loaded = load_manifests(list(manifests))
    dataset = (loaded[0].get("input") or {}).get("dataset")  # one for all shards: load_manifests checks it
    check_paths({**{f"manifest {m}": m for m in manifests}, "--calibration": calibration_path,
                 "dataset the shards read": dataset}, {"--out": out, "metadata": meta_path, "--labels": labels_path})
    with user_errors():
        report, labels, summary, how_sure = merge_shards(loaded, calibration_path)
    meta = merged_metadata(loaded, list(manifests), summary, how_sure)
    with user_errors(writing=out), OutputSet() as outputs:
        if out != STDOUT:
            outputs.add(out, json_text(report.model_dump()))
        if meta_path:
            outputs.add(meta_path, json_text(meta))
        if labels_path:
            outputs.add(labels_path, jsonl_lines(lab.to_json() for lab in labels))
    if out == STDOUT:
        write_text_out(out, json_text(report.model_dump()))
    for warning in meta.get("warnings", []):
        echo_err(f"Warning: {warning}")
    echo_err(f"merged {len(loaded)} shards ({summary['labeled']} labels) into {'stdout' if out == STDOUT else out}")
    hint = None if calibration_path or not meta_path else merge_review_hint(meta, str(meta_path), labels_path)
    if hint:
        echo_err(hint)


def merge_review_hint(meta: dict, metadata_path: str, labels_path: str | None) -> str:
    """`review_hint` for a merged run: review the merged labels, then merge again with --calibration."""
    facts = meta.get("input") or {}
    instruction, response = (facts.get("fields") or (None, None))[:2]
    return _review_commands(str(facts.get("dataset", "DATA")), labels_path, ("--metadata", metadata_path),
                            (instruction, response, facts.get("encoding")), "this merge")
