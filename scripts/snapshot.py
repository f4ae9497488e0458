"""Save what the CLI writes for the bundled example under every labeler and strategy that runs here.

Run it before and after a change that should not change behaviour, then diff the two folders:

    .venv/bin/python scripts/snapshot.py /tmp/before    # or PYTHONPATH=<old checkout> for the old code
    ... change the code ...
    .venv/bin/python scripts/snapshot.py /tmp/after
    diff -r /tmp/before /tmp/after

Timings, the cache's path and the run's own output paths are dropped (they differ run to run);
everything else (report, labels, metadata) is kept as written, keys sorted. Each run uses
--no-cache so every label is computed afresh. The runs use old-style flags (`--engine embed`),
which the CLI keeps accepting, so the same script serves both sides of a refactor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sft_sample.jsonl"
TAXONOMY = REPO / "examples" / "taxonomy.yaml"
DROP = {"timings", "path", "load_s"}
# The CLI of whichever offline_cov this interpreter imports (PYTHONPATH can point at another checkout).
CLI = [sys.executable, "-c", "from offline_cov.cli import main; main()"]

RUNS = {
    "embed": ["--engine", "embed"],
    "fused": ["--engine", "fused"],
    "hybrid": ["--engine", "hybrid"],
    "vllm": ["--engine", "vllm"],
    "transformers": ["--engine", "transformers", "--sample", "24"],
    "card": ["--engine", "vllm", "--strategy", "card"],
    "distill": ["--engine", "vllm", "--strategy", "distill", "--distill-size", "40"],
    "inferred-embed": ["--engine", "embed", "--no-taxonomy"],
}


def strip(value):
    """The value without the keys that change from run to run."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in sorted(value.items()) if k not in DROP}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def run(name: str, args: list[str], out_dir: Path, work: Path) -> None:
    taxonomy = [] if "--no-taxonomy" in args else ["--taxonomy-file", str(TAXONOMY)]
    args = [a for a in args if a != "--no-taxonomy"]
    report, labels = work / f"{name}.json", work / f"{name}.labels.jsonl"
    cmd = [*CLI, "analyze", str(EXAMPLE), *taxonomy, *args, "--no-cache",
           "--quiet", "--out", str(report), "--labels", str(labels)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        print(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
        return
    save(out_dir / f"{name}.report.json", json.loads(report.read_text()))
    save(out_dir / f"{name}.meta.json", json.loads(report.with_suffix(".meta.json").read_text()))
    (out_dir / f"{name}.labels.jsonl").write_text(labels.read_text())
    print(f"{name}: saved", file=sys.stderr)


def save(path: Path, value) -> None:
    path.write_text(json.dumps(strip(value), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def shards_and_merge(out_dir: Path, work: Path) -> None:
    """Two `--shard I/2` runs of the embed labeler, then `merge`: the merged report and labels."""
    for i in (0, 1):
        run(f"shard{i}", ["--engine", "embed", "--shard", f"{i}/2"], out_dir, work)
    merged, labels = work / "merged.json", work / "merged.labels.jsonl"
    cmd = [*CLI, "merge", str(work / "shard0.meta.json"),
           str(work / "shard1.meta.json"), "--out", str(merged), "--labels", str(labels)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(f"merge: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
        return
    save(out_dir / "merged.report.json", json.loads(merged.read_text()))
    (out_dir / "merged.labels.jsonl").write_text(labels.read_text())
    print("merge: saved", file=sys.stderr)


def main(out_dir: str, only: list[str]) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name, args in RUNS.items():
            if not only or name in only:
                run(name, args, out, Path(work))
        if not only or "merge" in only:
            shards_and_merge(out, Path(work))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
