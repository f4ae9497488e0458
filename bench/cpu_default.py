"""Which labeler can be the default on this CPU: `analyze` on the bundled example for each candidate, one run.

The rule (issue #13): the default without a GPU is the most accurate labeler that labels the bundled
120-sample example in at most 5 minutes on the machine at hand, model load included, conversion
excluded. Accuracy comes from `bench.views` + `bench.choose` (no model time); this times every
candidate here, one after the other in fresh processes with no label cache, so that the ratios are
side by side on one machine and load. Run it with nothing else running; the models must be
converted already (any earlier run of them does it).

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.cpu_default   # ~20-25 min on a 2-core AVX2 VM
"""

from __future__ import annotations

import argparse
import sys
import time

from offline_cov.registry import HALF_PRECISION_FLAGS, cpu_flags

from . import common
from .speed_cpu import analyze_bundled

BAR_S = 300
# name -> the options `analyze` gets on top of the bundled example's
CANDIDATES = {
    "ensemble, qwen2.5-coder-1.5b": ["--labeler", "ensemble", "-m", "qwen2.5-coder-1.5b"],
    "ensemble-nocheck, qwen2.5-coder-1.5b": ["--labeler", "ensemble-nocheck", "-m", "qwen2.5-coder-1.5b"],
    "ensemble-lite, qwen2.5-coder-1.5b": ["--labeler", "ensemble-lite", "-m", "qwen2.5-coder-1.5b"],
    "ensemble, qwen2.5-coder-0.5b": ["--labeler", "ensemble", "-m", "qwen2.5-coder-0.5b"],
    "ensemble-lite, qwen2.5-coder-0.5b": ["--labeler", "ensemble-lite", "-m", "qwen2.5-coder-0.5b"],
    "fused": ["--labeler", "fused"],
    "embed": ["--labeler", "embed"],
}
BF16_FLAGS = HALF_PRECISION_FLAGS["bfloat16"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", help="candidates separated by ';', from: " + "; ".join(CANDIDATES))
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(";")] if args.only else list(CANDIDATES)
    results = {}
    for name in names:
        print(f"[cpu_default {time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        results[name] = analyze_bundled(CANDIDATES[name], {"VLLM_CPU_KVCACHE_SPACE": "4"}, name.replace(", ", "-"))
        print(f"  {results[name].get('wall_s', 'failed')} s", file=sys.stderr, flush=True)
    flags = cpu_flags() or set()
    payload = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": common.machine_info(),
               "bf16_flags": sorted(BF16_FLAGS & flags), "bar_s": BAR_S, "candidates": results}
    text = markdown(payload)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common.write_named([f"cpu-default-{stamp}", "cpu-default-latest"], payload, text)
    print(text)


def markdown(payload: dict) -> str:
    flags = ", ".join(payload["bf16_flags"]) or "none (the LLMs run in float32)"
    lines = ["## The bundled example per candidate CPU default (`bench.cpu_default`)", "",
             f"- when: {payload['when']}; machine: {common.machine_line(payload['machine'])}; bfloat16 instructions: {flags}",
             "- `offline-cov analyze examples/sft_sample.jsonl --taxonomy-file examples/taxonomy.yaml --no-cache` plus the "
             "candidate's options, each a fresh process, one after the other", "",
             "- seconds of prototypes / label request / check: the ensemble's own split of its labeling time (run metadata)", "",
             f"| candidate | wall s | within {payload['bar_s']} s | engine start s | samples/s labeling | seconds of prototypes / "
             "label request / check | category counts | difficulty e/m/h | load1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in payload["candidates"].items():
        if "error" in r:
            lines.append(f"| {name} | failed | | | | | | | |")
            continue
        t, mix = r.get("throughput") or {}, r.get("difficulty_mix") or {}
        counts = " / ".join(f"{k} {v}" for k, v in r["counts"].items())
        experts = " / ".join(str(v) for v in (r.get("expert_s") or {}).values()) or "-"
        lines.append(f"| {name} | {r['wall_s']} | {'yes' if r['wall_s'] <= payload['bar_s'] else 'no'} | {r['engine_load_s']} | "
                     f"{t.get('samples_per_s')} | {experts} | {counts} | {mix.get('easy')}/{mix.get('medium')}/{mix.get('hard')} | {r['load1']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
