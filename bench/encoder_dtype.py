"""Dev split only: `fused`'s second view (SmolLM2's hidden states) in bfloat16 instead of float32 on a CPU.

On a CPU with bfloat16 instructions (AVX-512 BF16 or AMX) SmolLM2 reads text faster in bfloat16, and the
`ensemble-lite` default spends ~11% of the bundled example's run on it (bench/README.md, session 31). Its
numbers change a little, so before the product reads it so, this measures on the dev rows of
bench/views.py's sets:

- `fused` (MiniLM + SmolLM2 hidden states) in each dtype: accuracy, how many labels moved, the largest
  change of a hidden-state cosine, and the seconds SmolLM2 took;
- `ensemble-lite` from the pool views the check-v2 collection left (Arena-Hard and Just-Eval topics,
  label request and every category's check), on their dev rows, its SmolLM2 view swapped for each dtype's
  (`bench.choose.predictions`): accuracy and labels moved.

The model-described sets are left out (their category texts are the model's, written at collection
time). Pooling is in float32 for both dtypes (`embed.mean_pooled`).

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.encoder_dtype
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import common
from .views import DEFAULT_DATA, OUT, SETS, read_rows, split_rows, taxonomy_for

FUSED_SETS = ["arena-hard", "arena-hard-names", "selfinstruct-domains", "infobench", "justeval-tasks",
              "justeval-topics", "justeval-topics-names"]
POOL_FOLDER = "qwen2.5-coder-1.5b@cut512+label-v2+check-v2"
POOL_SETS = ["arena-hard", "justeval-topics"]
DTYPES = ("float32", "bfloat16")


def encoders() -> dict:
    """SmolLM2 (fused's FUSED_ENCODER_MODEL) on the CPU in each dtype."""
    from offline_cov.home import go_offline
    from offline_cov.labelers.fused import FUSED_ENCODER_MODEL, LLMEncoder
    from offline_cov.registry import load_registry, resolve_weights

    go_offline()
    spec = load_registry().get(FUSED_ENCODER_MODEL)
    return {d: LLMEncoder(resolve_weights(spec), spec.name, device="cpu", dtype=d) for d in DTYPES}


def views(taxonomy, texts: list[str], llms: dict) -> tuple[np.ndarray, dict, dict]:
    """(MiniLM cosines, {dtype: hidden-state cosines}, {dtype: seconds of SmolLM2}) of `texts`."""
    from offline_cov.labelers.embed import EmbedLabeler
    from offline_cov.labelers.fused import FusedLabeler

    embed = EmbedLabeler(taxonomy)
    hidden, seconds = {}, {}
    for dtype, llm in llms.items():
        started = time.perf_counter()
        hidden[dtype] = FusedLabeler(taxonomy, embed=embed, llm=llm).llm_scores(texts)
        seconds[dtype] = round(time.perf_counter() - started, 1)
    return embed.scores(texts), hidden, seconds


def compared(payload_rows: list[dict], names: list[str], labeler: str, hidden: dict, payload: dict | None = None) -> dict:
    """Accuracy of `labeler` (bench.choose) with each dtype's hidden view, and the rows whose label moved."""
    from .choose import category_scores, predictions

    out, preds = {}, {}
    for dtype, h in hidden.items():
        rows = [{**r, "hidden": [float(x) for x in row]} for r, row in zip(payload_rows, h)]
        p = {**(payload or {}), "taxonomy": names, "rows": rows}
        preds[dtype] = predictions(p, labeler)
        out[dtype] = category_scores(p, preds[dtype])
    out["moved"] = sum(a[0] != b[0] for a, b in zip(*preds.values()))
    return out


def fused_set(name: str, data_dir: Path, llms: dict) -> dict:
    spec = SETS[name]
    taxonomy = taxonomy_for(spec)
    rows = split_rows(spec, read_rows(spec, data_dir), "dev")
    embed, hidden, seconds = views(taxonomy, [r["text"] for r in rows], llms)
    base = [{"labels": r["labels"], "embed": [float(x) for x in e]} for r, e in zip(rows, embed)]
    result = compared(base, taxonomy.names, "fused", hidden)
    result.update(rows=len(rows), smollm2_s=seconds,
                  max_cosine_change=round(float(np.abs(hidden["float32"] - hidden["bfloat16"]).max()), 4))
    return result


def ensemble_set(name: str, data_dir: Path, llms: dict) -> dict | None:
    """ensemble-lite on the check-v2 pool views' dev rows, each dtype's SmolLM2 view swapped in."""
    path = OUT / POOL_FOLDER / "pool" / f"{name}.json"
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    spec = SETS[name]
    read = read_rows(spec, data_dir)
    dev = {r["row"] for r in split_rows(spec, read, "dev")}
    texts = {r["row"]: r["text"] for r in read}
    rows = [r for r in payload["rows"] if r["row"] in dev]
    _, hidden, _ = views(taxonomy_for(spec), [texts[r["row"]] for r in rows], llms)
    result = compared(rows, payload["taxonomy"], "ensemble", hidden, payload)
    result["rows"] = len(rows)
    return result


def markdown(res: dict) -> str:
    lines = [f"# `fused`'s SmolLM2 view in float32 vs bfloat16 (dev split, {res['machine'].get('cpu', '')})", "",
             "| set | rows | fused f32 | fused bf16 | moved | max cosine change | SmolLM2 s f32 / bf16 |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in res["fused"].items():
        lines.append(f"| {name} | {r['rows']} | {r['float32']['accuracy']} | {r['bfloat16']['accuracy']} | {r['moved']} | "
                     f"{r['max_cosine_change']} | {r['smollm2_s']['float32']} / {r['smollm2_s']['bfloat16']} |")
    lines += ["", "| set (check-v2 pool views, dev rows) | rows | ensemble-lite f32 | bf16 | moved |", "|---|---:|---:|---:|---:|"]
    for name, r in res["ensemble"].items():
        if r:
            lines.append(f"| {name} | {r['rows']} | {r['float32']['accuracy']} | {r['bfloat16']['accuracy']} | {r['moved']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_dtype", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), type=Path)
    args = parser.parse_args(argv)
    llms = encoders()
    res = {"model": "smollm2-135m", "machine": common.machine_info(),
           "fused": {name: fused_set(name, args.data_dir, llms) for name in FUSED_SETS},
           "ensemble": {name: ensemble_set(name, args.data_dir, llms) for name in POOL_SETS}}
    text = markdown(res)
    print(text)
    common.write_results("encoder-dtype", res, text)
    return res


if __name__ == "__main__":
    main()
