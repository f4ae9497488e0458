"""Scale bench: peak memory and samples/s of `analyze` as the dataset grows, side by side in one run.

For each size N it writes a JSONL of N samples (real instructions from `--source`, cycled, each
made unique with a suffix), then runs, each in a fresh process so peak RSS is its own:

- `read-all`: `dataset.read_samples` (the whole dataset held in memory), for comparison;
- `analyze` with each engine of `--engines`: the streamed product path, label cache on.
- with `--huge-line-mib M --huge-sizes N --huge-engines fused`: the N-sample file again with one
  more record of M MiB (a single JSONL line), so a huge record's cost shows beside the normal run.
  `fake` is offline-cov's deterministic stand-in engine: it measures the tool's own cost
  (reading, cache, tally, JSON) with no model; `embed` is the MiniLM labeler, `fused` the CPU
  default (MiniLM plus the LLM's hidden states).

Example:
  .venv/bin/python -m bench.scale --source ../shared/data/arena_hard_v2_questions.jsonl \\
    --sizes 1000,10000,100000 --engines fake --embed-sizes 1000,10000 --fused-sizes 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from . import common

TAXONOMY = "coding,math,creative_writing"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="JSONL whose --text-field gives the instructions")
    parser.add_argument("--text-field", default="prompt")
    parser.add_argument("--sizes", default="1000,10000,100000", help="Dataset sizes (samples)")
    parser.add_argument("--engines", default="fake", help="Engines to run analyze with at every size")
    parser.add_argument("--embed-sizes", default="", help="Sizes at which to also run the embed labeler")
    parser.add_argument("--fused-sizes", default="", help="Sizes at which to also run the fused labeler")
    parser.add_argument("--huge-line-mib", type=int, default=50, help="Size of the one huge record (MiB)")
    parser.add_argument("--huge-sizes", default="", help="Sizes at which to also run a file with one huge record")
    parser.add_argument("--huge-engines", default="fused", help="Labelers to run on the files with a huge record")
    parser.add_argument("--taxonomy", default=TAXONOMY)
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DATA", "WORKDIR"), help=argparse.SUPPRESS)
    return parser


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_dataset(source: Path, field: str, n: int, path: Path) -> int:
    """N samples cycled from the source's texts, each unique; returns the file's size in bytes."""
    texts = [t for t in (json.loads(line).get(field) for line in source.open(encoding="utf-8") if line.strip())
             if isinstance(t, str) and t.strip()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({"prompt": f"{texts[i % len(texts)]}\n(variant {i})", "response": "ok"}) + "\n")
    return path.stat().st_size


def add_huge_record(path: Path, mib: int, out: Path) -> int:
    """A copy of `path` with one more record whose prompt is `mib` MiB of words (one JSONL line)."""
    words = ("lorem ipsum dolor sit amet " * (mib * 2**20 // 27 + 1))[: mib * 2**20]
    out.write_bytes(path.read_bytes() + (json.dumps({"prompt": words, "response": "ok"}) + "\n").encode())
    return out.stat().st_size


def child(mode: str, data: str, workdir: str, taxonomy: str) -> dict:
    """Run one mode in this (fresh) process and measure it."""
    from offline_cov.pipeline import AnalyzeOptions, analyze
    from offline_cov.taxonomy import parse_taxonomy_list

    start_rss = peak_rss_mib()
    t = time.perf_counter()
    if mode == "read-all":
        from offline_cov.data.readers import read_samples

        n = len(read_samples(data).samples)
        extra = {}
    else:
        engine = None
        opts = AnalyzeOptions(taxonomy=parse_taxonomy_list(taxonomy), engine=mode,
                              cache_path=Path(workdir) / f"{mode}-{Path(data).stem}.sqlite")
        if mode == "fake":
            from offline_cov.engines.fake import FakeEngine

            engine, opts.engine = FakeEngine(record=False), None
        result = analyze(data, opts, engine=engine)
        n = result.report.total_samples_analyzed
        extra = {"labeled": result.metadata["samples"]["labeled"], "engine_load_s": result.metadata["timings"]["engine_load_s"]}
    seconds = time.perf_counter() - t
    return {"mode": mode, "samples": n, "seconds": round(seconds, 2), "samples_per_s": round(n / seconds, 1),
            "rss_at_start_mib": start_rss, "peak_rss_mib": peak_rss_mib(), **extra}


def run_child(mode: str, data: Path, workdir: Path, taxonomy: str) -> dict:
    cmd = [sys.executable, "-m", "bench.scale", "--source", "-", "--taxonomy", taxonomy, "--child", mode, str(data), str(workdir)]
    out = common.run_child(cmd, capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise SystemExit(f"{mode} on {data} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    common.set_bench_env()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    embed_sizes = {int(s) for s in args.embed_sizes.split(",") if s}
    fused_sizes = {int(s) for s in args.fused_sizes.split(",") if s}
    rows = []
    with tempfile.TemporaryDirectory(prefix="offline-cov-scale-") as tmp:
        for n in sorted(set(sizes) | embed_sizes | fused_sizes):
            data = Path(tmp) / f"d{n}.jsonl"
            size = write_dataset(Path(args.source), args.text_field, n, data)
            modes = ["read-all"] + [e for e in args.engines.split(",") if e and n in sizes]
            modes += ["embed"] if n in embed_sizes and "embed" not in modes else []
            modes += ["fused"] if n in fused_sizes and "fused" not in modes else []
            runs = [(data, size, "", modes)]
            if n in {int(s) for s in args.huge_sizes.split(",") if s}:
                huge = Path(tmp) / f"d{n}-huge.jsonl"
                huge_modes = [e for e in args.huge_engines.split(",") if e]
                runs = [(data, size, "", modes + [m for m in huge_modes if m not in modes]),
                        (huge, add_huge_record(data, args.huge_line_mib, huge), f"+1 record of {args.huge_line_mib} MiB",
                         ["read-all"] + huge_modes)]
            for path, file_size, note, path_modes in runs:
                for mode in path_modes:
                    row = {"size": n, "file_mib": round(file_size / 2**20, 1), "note": note,
                           **run_child(mode, path, Path(tmp), args.taxonomy)}
                    print(json.dumps(row), file=sys.stderr)
                    rows.append(row)
    return {"kind": "scale", "model": "scale", "when": common.now_iso(), "machine": common.machine_info(),
            "versions": common.versions(), "rows": rows}


def to_markdown(payload: dict) -> str:
    headers = ["samples", "file MiB", "file", "run", "seconds", "samples/s", "RSS at start MiB", "peak RSS MiB", "growth MiB"]
    table = [[r["size"], r["file_mib"], r.get("note", ""), r["mode"], r["seconds"], r["samples_per_s"], r["rss_at_start_mib"],
              r["peak_rss_mib"], round(r["peak_rss_mib"] - r["rss_at_start_mib"], 1)] for r in payload["rows"]]
    return "\n".join([
        "# offline-cov scale bench", "",
        f"- when: {payload['when']}", f"- machine: {common.machine_line(payload['machine'])}", "",
        common.md_table(headers, table), "",
        "`read-all` holds the dataset in memory (what analyze did before streaming); `fake` is the streamed "
        "analyze path with offline-cov's stand-in engine (no model: the tool's own cost); `embed` adds the "
        "MiniLM labeler, `fused` MiniLM and the LLM's hidden states. growth = peak RSS - RSS after imports.",
    ])


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.taxonomy)))
        return
    common.bench_main("scale", build_parser(), run, to_markdown, argv)


if __name__ == "__main__":
    main()
