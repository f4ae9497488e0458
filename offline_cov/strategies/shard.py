"""Sharded runs for batch schedulers (SLURM job arrays): label one shard, then merge the shards.

`analyze --shard I/N` labels the samples whose index is I modulo N and writes a shard manifest
(its metadata, with the labels inside). `merge` rebuilds the report from all N manifests;
it equals a single run's report byte for byte. It reads one manifest at a time and keeps its
labels compactly (`aggregate.LabelStore`), so merging holds one shard's JSON at most.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path

from ..data.readers import FieldSpec
from ..errors import OfflineCovError
from ..report.contract import CoverageReport
from ..report.metadata import ShardManifest, check_shape
from ..report.tally import LabelStore, SampleLabel, Thresholds
from ..run import FEW_SAMPLES, few_samples_warning, report_warning
from ..taxonomy import Taxonomy


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise OfflineCovError(f"--shard {text!r}: expected I/N, for example 0/8") from None
    if count < 1 or not 0 <= index < count:
        raise OfflineCovError(f"--shard {text!r}: I must be in 0..N-1 and N at least 1")
    return index, count


def shard_block(shard: tuple[int, int], labels: list[SampleLabel], failed: list[dict], taxonomy: Taxonomy) -> dict:
    """What a shard adds to its metadata so that `merge` needs nothing else but the dataset."""
    return {
        "index": shard[0],
        "count": shard[1],
        "taxonomy": taxonomy.model_dump(),
        "labels": [lab.to_json() for lab in labels],
        "failed": failed,
    }


def load_manifests(paths: list[str | Path]) -> list[dict]:
    """The manifests, checked to make one run; each one's labels become a LabelStore as it is read."""
    manifests = []
    for path in paths:
        try:
            meta = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise OfflineCovError(f"{path}: cannot read the shard manifest ({exc})") from None
        if not isinstance(meta, dict) or "shard" not in meta:
            raise OfflineCovError(f"{path}: not a shard manifest (written by `analyze --shard I/N`)")
        check_shape(meta, path, ShardManifest, "`offline-cov analyze --shard I/N`")
        meta["shard"]["labels"] = LabelStore(
            sorted((SampleLabel.from_json(d) for d in meta["shard"]["labels"]), key=lambda lab: lab.index))
        manifests.append(meta)
    _check_complete(paths, manifests)
    return manifests


def _check_complete(paths, manifests: list[dict]) -> None:
    """Every shard 0..N-1 once, and all from one run: else an error naming the shard or the file."""
    count = manifests[0]["shard"]["count"]
    given: dict[int, list[str]] = {}
    for path, meta in zip(paths, manifests):
        if meta["shard"]["count"] != count:
            raise OfflineCovError(f"{path}: a shard of {meta['shard']['count']}, the first is of {count}; "
                                  "shards must come from one run")
        given.setdefault(meta["shard"]["index"], []).append(str(path))
    for index, files in sorted(given.items()):
        if len(files) > 1:
            raise OfflineCovError(f"shard {index}/{count} is given twice ({', '.join(files)}): give each shard's "
                                  "manifest once")
    missing = [f"{i}/{count}" for i in range(count) if i not in given]
    if missing:
        one = len(missing) == 1
        raise OfflineCovError(f"shard {', '.join(missing)} {'is' if one else 'are'} missing: give "
                              f"{'its manifest' if one else 'their manifests'}, written by `analyze --shard "
                              f"{missing[0]}`{'' if one else ' and so on'} (run it first if it has not run)")
    first = manifests[0]
    for path, meta in zip(paths, manifests):
        for key, what in (("taxonomy", "its taxonomy differs"), ("thresholds", "its thresholds differ"),
                          ("engine_identity", "its model or engine differs"), ("prompt_version", "its prompt differs")):
            if meta.get(key) != first.get(key):
                raise OfflineCovError(f"{path}: {what} from the first shard's; shards must come from one run")
        if _run_input(meta) != _run_input(first):
            raise OfflineCovError(f"{path}: dataset or sampling differs from the first shard's")


def _run_input(meta: dict) -> dict:
    """The dataset and sampling facts a shard was drawn from (skipped lines are per reader, not per run)."""
    return {k: v for k, v in meta["input"].items() if k != "skipped_records"}


def merge_shards(manifests: list[dict], calibration: str | Path | None = None) -> tuple[CoverageReport, LabelStore, dict, dict]:
    """The report of the whole run, from its shards' labels and the dataset they came from
    (streamed); its labels; the merge's summary; the whole run's how-sure blocks (`how_sure_blocks`).
    `calibration` (rows of the dataset with their true category, as `analyze --calibration` takes)
    corrects the shares as a single run's would; rows naming a text that is not in the dataset are
    left out, since merge runs no labeler."""
    from ..data.plan import DatasetPlan
    from ..options import AnalyzeOptions
    from ..report.tally import Tally
    from .how_sure import calibrated, example_texts, sampling_intervals

    first = manifests[0]
    facts = first["input"]
    opts = AnalyzeOptions(fields=FieldSpec(*facts.get("fields", (None, None))), encoding=facts.get("encoding", "utf-8"),
                          skip_bad_lines=bool(facts["skipped_records"]), sample=facts["sample_size"], seed=facts["seed"])
    if not Path(facts["dataset"]).exists():
        raise OfflineCovError(f"{facts['dataset']}: the dataset the shards labeled is not there, and merge reads it again "
                              "(counts and examples): put it back at that path, or run merge from the folder the "
                              "shards ran in when the path is relative")
    plan = DatasetPlan.of(facts["dataset"], opts)
    if plan.scan.count != facts["samples_in_file"]:
        raise OfflineCovError(
            f"{facts['dataset']} holds {plan.scan.count} samples now but {facts['samples_in_file']} when the shards "
            "were labeled: the dataset changed; run the shards again on it"
        )
    if facts.get("content_digest") and plan.scan.content_digest != facts["content_digest"]:
        raise OfflineCovError(f"{facts['dataset']}: its samples are not the ones the shards labeled (same count, other "
                              "content): the dataset changed; run the shards again on it")
    taxonomy = Taxonomy.model_validate(first["shard"]["taxonomy"])
    labels = LabelStore(heapq.merge(*(m["shard"]["labels"] for m in manifests), key=lambda lab: lab.index))
    tally, pending = Tally(taxonomy), iter(labels)
    label = next(pending, None)
    for sample in plan.stream():  # in index order, as the labels
        while label is not None and label.index < sample.index:
            label = next(pending, None)
        if label is not None and label.index == sample.index:
            tally.add(label, len(sample.instruction))
    warnings: list[str] = []
    decided, corrected = None, {}
    if calibration is not None:  # no labeler here: rows naming a text not in the dataset stay unmatched
        decided, corrected = calibrated(calibration, taxonomy, plan.stream(), tally, labels, facts["seed"], warnings)
    examples, texts = example_texts(plan, tally)
    thresholds = Thresholds(**first["thresholds"])
    report = plan.report(tally, thresholds, decided, texts=texts)
    failed = [f for m in manifests for f in m["shard"]["failed"]]
    summary = {"shards": len(manifests), "labeled": len(labels), "failed": failed, "analyzed": plan.analyzed}
    blocks = how_sure_blocks(first, report, labels, examples, texts, taxonomy, thresholds, corrected)
    whole = [few_samples_warning(plan.analyzed), report_warning(report, taxonomy)]
    warnings = [w for w in whole if w] + warnings + blocks["warnings"]
    how_sure = {**corrected, **blocks, "warnings": warnings, **sampling_intervals(plan, report),
                "category_counts": report.counts()}
    return report, labels, summary, how_sure


def shard_only_warnings(manifest: dict) -> set[str]:
    """A shard's warnings about its own part, which the merged run replaces with its own: few samples
    and a one-sided difficulty mix (the others, of the whole file or the labeler, hold for the run)."""
    from .how_sure import mix_of

    analyzed = (manifest.get("samples") or {}).get("analyzed")
    own = {few_samples_warning(FEW_SAMPLES if analyzed is None else analyzed),
           mix_of(manifest["shard"]["labels"])[1]}
    return own - {None}


PER_SHARD = ("shard", "samples", "failed", "cache", "timings", "share_intervals", "share_ci95", "examples",
             "difficulty_mix", "throughput", "output_tokens", "warnings", "category_counts")


def how_sure_blocks(first: dict, report: CoverageReport, labels: LabelStore, examples: dict, texts: dict[int, str],
                    taxonomy: Taxonomy, thresholds: Thresholds, calibration: dict | None = None) -> dict:
    """The whole run's difficulty mix, share intervals and per-category examples, as a single run's
    metadata has them (a shard's own are of its samples alone). The intervals are the calibration's
    when one was given, else widened by the bench's measured accuracy of the shards' labeler, which
    every shard's metadata names."""
    from .how_sure import example_block, intervals_of, mix_of

    mix, warning = mix_of(labels)
    measured = (first.get("share_intervals") or {}).get("labeler_measured") or {}
    intervals = intervals_of(report, calibration or {}, taxonomy, thresholds, measured)
    blocks = {"difficulty_mix": mix, "share_intervals": intervals,
              "examples": example_block(examples, texts)}
    return {**blocks, "warnings": [warning] if warning else []}


def merged_metadata(manifests: list[dict], paths: list[str], summary: dict, how_sure: dict) -> dict:
    """The merged run's metadata: what every shard shares, the whole run's how-sure blocks, and each
    shard's own facts (samples, throughput, warnings) under `merge.per_shard` (`analyze` refuses
    `--calibration` with `--shard`, so no shard carries a correction; `merge --calibration` adds the
    whole run's `calibration` block)."""
    how_sure = dict(how_sure)
    shards = []
    for m in manifests:
        own = shard_only_warnings(m)
        shards += [w for w in m.get("warnings") or [] if w not in own]
    warnings = list(dict.fromkeys(how_sure.pop("warnings") + shards))
    meta = {k: v for k, v in manifests[0].items() if k not in PER_SHARD}
    per_shard = [{"shard": m["shard"]["index"], **{k: m[k] for k in PER_SHARD[1:] if k in m and k not in ("share_intervals", "examples")}}
                 for m in sorted(manifests, key=lambda m: m["shard"]["index"])]
    return {**meta, **how_sure, "warnings": warnings,
            "merge": {"manifests": [str(p) for p in paths], **summary, "per_shard": per_shard}}
