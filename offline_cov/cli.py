"""The `offline-cov` command: a thin Click layer over the library."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import OfflineCovError

CONTEXT = {"help_option_names": ["-h", "--help"]}


class CliError(click.ClickException):
    """A library error shown as 'Error: ...' with exit status 1."""


def _fail(exc: Exception):
    raise CliError(str(exc)) from None


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="offline-cov")
def main():
    """What your SFT dataset covers and lacks, labeled by a local open-weights model.

    Nothing leaves the machine: no downloads, no telemetry.
    """


def _taxonomy_from(taxonomy: str | None, taxonomy_file: str | None):
    from .taxonomy import load_taxonomy_file, parse_taxonomy_list

    if taxonomy and taxonomy_file:
        raise click.UsageError("give --taxonomy or --taxonomy-file, not both")
    if taxonomy_file:
        return load_taxonomy_file(taxonomy_file)
    return parse_taxonomy_list(taxonomy) if taxonomy else None


@main.command(context_settings=CONTEXT)
@click.argument("data", type=click.Path(exists=True, dir_okay=True))
@click.option("--taxonomy", help="Comma-separated categories; name=share sets a target (math=30,code=70).")
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False), help="YAML/JSON taxonomy with descriptions, examples and target shares.")
@click.option("--model", help="A name from models.yaml (see `offline-cov models`). Default: one this machine can run.")
@click.option("--engine", type=click.Choice(["vllm", "transformers", "embed", "fused", "hybrid", "ray"]), default=None,
              help="vllm/transformers: the LLM labels each sample; embed: nearest MiniLM category prototype, "
                   "no LLM; fused: MiniLM's and the LLM's hidden-state similarity to each category, added; "
                   "hybrid: the LLM picks among the embedding's top candidates; ray: vLLM replicas "
                   "on a Ray cluster's nodes. "
                   "Default: vllm on a GPU or with --model, else fused (see bench/README.md).")
@click.option("--ray-address", help="--engine ray: the cluster (auto, host:port, ray://host:port). "
              "Default: as ray.init(): $RAY_ADDRESS, the cluster last started here, or a new local one.")
@click.option("--replicas", type=click.IntRange(min=1), help="--engine ray: vLLM replicas. "
              "Default: one per tensor_parallel_size GPUs, or one per node on CPU.")
@click.option("--strategy", type=click.Choice(["per-sample", "card", "distill"]), default="per-sample", show_default=True, help="card: the original single-prompt analysis, checked against the contract. distill: the LLM labels a stratified subsample, a classifier on sentence embeddings labels the rest (very large data).")
@click.option("--distill-size", type=click.IntRange(min=10), default=2000, show_default=True, help="distill: how many samples the LLM labels.")
@click.option("--sample", "sample_n", type=click.IntRange(min=1), help="Analyze a reproducible random sample of N samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample and of the engine.")
@click.option("--out", type=click.Path(dir_okay=False), default="report.json", show_default=True, help="Where to write the report.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Write per-sample labels (JSONL).")
@click.option("--metadata", "metadata_path", type=click.Path(dir_okay=False), help="Run metadata file. Default: beside --out as *.meta.json.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Also write a Markdown summary.")
@click.option("--instruction-field", help="Field holding the instruction (overrides shape detection).")
@click.option("--response-field", help="Field holding the response.")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the dataset file.")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed records and list them in the metadata.")
@click.option("--gap-threshold", type=float, default=5.0, show_default=True, help="Share (percent) under which a target category is a gap.")
@click.option("--over-threshold", type=float, default=35.0, show_default=True, help="Share (percent) over which a category is over-represented.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), help="Label cache file (SQLite). Default: $OFFLINE_COV_CACHE or the tool home.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the label cache.")
@click.option("--shard", help="Label only shard I of N (I/N, 0-based) for job arrays; combine with `offline-cov merge`.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def analyze(**kw):
    """Label a dataset with a local model and write its coverage report.

    Example: offline-cov analyze data.jsonl --taxonomy math,code,writing --out report.json
    """
    from .aggregate import Thresholds
    from .dataset import FieldSpec
    from .labeling import LabelSettings
    from .pipeline import AnalyzeOptions
    from .shard import parse_shard

    try:
        opts = AnalyzeOptions(
            taxonomy=_taxonomy_from(kw["taxonomy"], kw["taxonomy_file"]),
            model=kw["model"], engine=kw["engine"], sample=kw["sample_n"], seed=kw["seed"],
            strategy=kw["strategy"], distill_size=kw["distill_size"],
            fields=FieldSpec(kw["instruction_field"], kw["response_field"]),
            encoding=kw["encoding"], skip_bad_lines=kw["skip_bad_lines"],
            thresholds=Thresholds(kw["gap_threshold"], kw["over_threshold"]),
            label=LabelSettings(batch_size=kw["batch_size"]),
            use_cache=not kw["no_cache"], cache_path=kw["cache_path"],
            shard=parse_shard(kw["shard"]) if kw["shard"] else None,
            engine_options=_engine_options(kw),
        )
        result = _run_analyze(kw["data"], opts, kw["quiet"])
    except OfflineCovError as exc:
        _fail(exc)
    _write_outputs(result, kw)
    if not kw["quiet"]:
        _print_summary(result, kw["out"])


def _engine_options(kw) -> dict:
    if kw["engine"] != "ray":
        if kw["ray_address"] or kw["replicas"]:
            raise click.UsageError("--ray-address and --replicas go with --engine ray")
        return {}
    return {"address": kw["ray_address"], "replicas": kw["replicas"]}


def _run_analyze(data, opts, quiet: bool):
    from .pipeline import analyze as run

    if quiet:
        return run(data, opts)
    progress = _Progress()
    try:
        return run(data, opts, progress=progress)
    finally:
        progress.close()


class _Progress:
    """A progress bar on stderr, opened once the number of samples is known."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="labeling", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _write_outputs(result, kw) -> None:
    from pathlib import Path

    from .io import write_json, write_jsonl

    out = Path(kw["out"])
    write_json(out, result.report.model_dump())
    meta = Path(kw["metadata_path"]) if kw["metadata_path"] else out.with_suffix(".meta.json")
    write_json(meta, result.metadata)
    if kw["labels_path"]:
        write_jsonl(kw["labels_path"], (lab.to_json() for lab in result.labels))
    if kw["html_path"] or kw["markdown_path"]:
        from .io import write_atomic
        from .render import render_html, render_markdown

        if kw["html_path"]:
            write_atomic(kw["html_path"], render_html(result.report, result.metadata, result.taxonomy.targets()))
        if kw["markdown_path"]:
            write_atomic(kw["markdown_path"], render_markdown(result.report, result.metadata))


def _print_summary(result, out) -> None:
    report = result.report
    for warning in result.metadata.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    click.echo(f"{'category':<28}{'count':>7}{'share %':>9}", err=True)
    for cat in report.categories:
        click.echo(f"{cat.name:<28}{cat.count:>7}{cat.share_percent:>9.1f}", err=True)
    gaps = ", ".join(g.category for g in report.gaps) or "none"
    over = ", ".join(o.category for o in report.over_represented) or "none"
    click.echo(f"gaps: {gaps} | over-represented: {over} | balance {report.balance_score:.2f}", err=True)
    click.echo(f"report written to {out}", err=True)


@main.command(context_settings=CONTEXT)
def models():
    """List the models in models.yaml and which is the default here.

    Example: offline-cov models
    """
    from .registry import load_registry, models_file

    try:
        registry = load_registry()
    except OfflineCovError as exc:
        _fail(exc)
    default = registry.default_name()
    click.echo(f"# {models_file()}")
    for name, spec in registry.models.items():
        mark = "*" if name == default else " "
        where = spec.source.repo or spec.source.path or f"{spec.source.package}:{spec.source.file}"
        gpu = "gpu" if spec.requires_gpu else "cpu/gpu"
        click.echo(f"{mark} {name:<26} {gpu:<8} {where}")
        if spec.description:
            click.echo(f"    {spec.description}")
    click.echo("* = default on this machine")


@main.command(context_settings=CONTEXT)
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default="report.json", show_default=True)
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), help="Write all shards' labels (JSONL).")
def merge(manifests, out, labels_path):
    """Build one report from the shard manifests of `analyze --shard I/N` runs.

    Example: offline-cov merge shards/*.meta.json --out report.json
    """
    from pathlib import Path

    from .io import write_json, write_jsonl
    from .shard import load_manifests, merge_shards

    try:
        loaded = load_manifests(list(manifests))
        report, labels, summary = merge_shards(loaded)
    except OfflineCovError as exc:
        _fail(exc)
    write_json(out, report.model_dump())
    meta = {k: v for k, v in loaded[0].items() if k not in ("shard", "samples", "failed", "cache", "timings")}
    meta["merge"] = {"manifests": [str(m) for m in manifests], **summary}
    write_json(Path(out).with_suffix(".meta.json"), meta)
    if labels_path:
        write_jsonl(labels_path, (lab.to_json() for lab in labels))
    click.echo(f"merged {len(loaded)} shards ({summary['labeled']} labels) into {out}", err=True)


def _register_report_commands() -> None:
    from .cli_reports import compare, render, seeds

    for command in (render, compare, seeds):
        main.add_command(command)


_register_report_commands()


if __name__ == "__main__":
    main()
