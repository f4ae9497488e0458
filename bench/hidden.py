"""Dev-split study behind the fused labeler: which of the LLM's hidden states to read, and how
much weight they get next to MiniLM (issue #7).

For every bench set of bench/labelers.py, on the dev split only, the LLM (default smollm2-135m,
through transformers) reads each sample and each category text (card and examples) once; then for
each choice of

- template: the raw text, or the text inside `This request: "..." is about the topic: "`,
- pooling: the mean over the text's tokens, or the last token,
- layer: 6, 12, 18, 24 of 30, or the final (normed) output,

it builds prototypes as `embed.prototypes` does (vectors centred on the category texts' mean),
scores the nearest prototype alone, and fused with MiniLM (`fused.zscores`) at LLM weights 0.25,
0.5 and 1.0. The fused labeler's choice (raw, mean, final, 0.5) was read off this table.

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.hidden
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from offline_cov.taxonomy import load_taxonomy_file

from . import common
from .labelers import DEFAULT_DATA, HERE, SETS, load_set, split

TEMPLATES = {"raw": "{text}", "topic": 'This request: "{text}" is about the topic: "'}
LAYERS = (6, 12, 18, 24, "final")
WEIGHTS = (0.25, 0.5, 1.0)
MAX_CHARS, MAX_TOKENS, BATCH = 1200, 320, 8


def hidden_views(model, tokenizer, texts: list[str], template: str) -> dict:
    """(pooling, layer) -> (len(texts), hidden) array of the LLM's states for `texts`."""
    import numpy as np
    import torch

    out: dict = {}
    for start in range(0, len(texts), BATCH):
        batch = tokenizer([TEMPLATES[template].format(text=t[:MAX_CHARS]) for t in texts[start : start + BATCH]],
                          return_tensors="pt", padding=True, truncation=True, max_length=MAX_TOKENS)
        with torch.inference_mode():
            states = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        last = batch["attention_mask"].sum(1) - 1
        for layer in LAYERS:
            h = states[-1 if layer == "final" else layer]
            out.setdefault(("mean", layer), []).append(((h * mask).sum(1) / mask.sum(1)).numpy())
            out.setdefault(("last", layer), []).append(h[torch.arange(len(h)), last].numpy())
    return {key: np.concatenate(parts) for key, parts in out.items()}


def run_set(name: str, args, model, tokenizer) -> dict:
    import numpy as np

    from offline_cov.labelers.embed import EmbedLabeler, category_texts, load_encoder, unit_rows
    from offline_cov.labelers.fused import centred_prototypes, zscores

    taxonomy = load_taxonomy_file(HERE / "taxonomies" / SETS[name].taxonomy)
    rows = split(load_set(SETS[name], args.data_dir), name, args.split)
    texts, y = [r.text for r in rows], np.array([taxonomy.names.index(r.label) for r in rows])
    embed = EmbedLabeler(taxonomy, encoder=load_encoder())
    base = zscores(embed.scores(texts))
    groups = category_texts(taxonomy)
    flat = [t for g in groups for t in g]
    results = {"embed alone": float((base.argmax(1) == y).mean())}
    for template in TEMPLATES:
        samples, cats = hidden_views(model, tokenizer, texts, template), hidden_views(model, tokenizer, flat, template)
        for key in samples:
            centre, protos = centred_prototypes(cats[key], groups)
            scores = unit_rows(samples[key] - centre) @ protos.T
            row = {"alone": float((scores.argmax(1) == y).mean())}
            row |= {f"fused w={w}": float(((base + w * zscores(scores)).argmax(1) == y).mean()) for w in WEIGHTS}
            results[f"{template} / {key[0]} / layer {key[1]}"] = row
    return {"set": name, "split": args.split, "rows": len(rows), "results": results}


def markdown(payload: dict) -> str:
    lines = ["## Which LLM hidden states, at what weight (accuracy)", "", f"- when: {payload['when']}",
             f"- LLM: `{payload['model']}`; split `{payload['split']}`", ""]
    for s in payload["sets"]:
        lines += [f"### {s['set']} ({s['rows']} rows; embed alone {s['results']['embed alone']:.3f})", ""]
        table = [[k, *(f"{v:.3f}" for v in r.values())] for k, r in s["results"].items() if k != "embed alone"]
        lines += [common.md_table(["template / pooling / layer", "alone", *(f"fused w={w}" for w in WEIGHTS)], table), ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.hidden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), type=Path)
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out-dir", default=None)
    return parser


def run(args) -> dict:
    from transformers import AutoModel, AutoTokenizer

    from offline_cov.registry import load_registry, resolve_weights

    common.set_bench_env()
    path = resolve_weights(load_registry().get(args.model))
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    model = AutoModel.from_pretrained(path).eval()
    return {"bench": "hidden", "when": common.now_iso(), "model": args.model, "split": args.split,
            "command": sys.argv, "sets": [run_set(name, args, model, tokenizer) for name in SETS]}


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("hidden", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    main()
