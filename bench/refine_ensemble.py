"""The ensemble with fused's prototypes refined on the data being labeled: a dev probe, not shipped.

bench/transductive.py (issue #7) asked this of the embedding labeler alone; this asks it of the CPU
default. `fused`, the ensemble's second expert, compares each sample with prototypes built from the
taxonomy's text alone. Here, once the ensemble has labeled a set, each category's prototype is moved
towards where that set's samples of the category lie, in both of fused's spaces (MiniLM, SmolLM2's
centred hidden states), and the ensemble labels the set again:

    P'_c = unit(P_c + beta * unit(m_c - mean_i v_i)),  m_c = sum_i p_ic v_i / sum_i p_ic

with p_ic the ensemble's probability of category c for sample i (`hard`: its argmax instead), v_i the
samples' unit vectors, `raw`: m_c without the mean subtracted; more passes repeat it from the new
labels. Besides accuracy it reports what a coverage audit needs most: the share a category gets when
every row labeled with it is left out (each category in turn), which should stay near where the shipped
ensemble puts it. Views and vectors are bench/views.py's; `--vectors` adds each views file's rows'
vectors beside it (`<set>.vectors.npz`, checked against the cosines the views hold).

  .venv/bin/python -m bench.refine_ensemble --split dev --vectors   # the rows' vectors, once (~5 min here)
  .venv/bin/python -m bench.refine_ensemble --split dev             # the grid, seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from offline_cov.labelers.embed import softmax, unit_rows
from offline_cov.labelers.ensemble import ENSEMBLE_FUSED_WEIGHT, ENSEMBLE_TEMPERATURE, combined_scores
from offline_cov.labelers.fused import FUSED_TEMPERATURE, fused_scores

from . import common
from .choose import category_scores, llm_probs
from .views import CPU_DEFAULT_VIEWS, DEFAULT_DATA, OUT, SETS, read_rows, split_rows, taxonomy_for

CATEGORY_SETS = ["arena-hard", "arena-hard-names", "selfinstruct-domains", "infobench", "justeval-tasks",
                 "justeval-topics", "justeval-topics-names", "arena-hard-described", "justeval-topics-described"]
BETAS = [0.25, 0.5, 1.0, 2.0]
ITERATIONS = [1, 2]


def vectors_path(folder: Path, set_name: str) -> Path:
    return folder / f"{set_name}.vectors.npz"


def views_taxonomy(spec, payload: dict):
    """The taxonomy the views were collected with: the set's, with what the model wrote where it described it."""
    from offline_cov.strategies.describe import with_written

    return with_written(taxonomy_for(spec), payload.get("described") or {})


def collect_vectors(folder: Path, set_name: str, data_dir: Path, encoders) -> Path:
    """The unit MiniLM vector and centred unit SmolLM2 vector of every row of a views file, and both
    spaces' prototypes; checked against the cosines the views hold."""
    from offline_cov.labelers.embed import EmbedLabeler
    from offline_cov.labelers.fused import FUSED_ENCODER_MODEL, FusedLabeler

    payload = json.loads((folder / f"{set_name}.json").read_text())
    spec, taxonomy = SETS[set_name], views_taxonomy(SETS[set_name], payload)
    rows = split_rows(spec, read_rows(spec, data_dir), payload["split"])
    if [r["row"] for r in rows] != [r["row"] for r in payload["rows"]]:
        raise SystemExit(f"{set_name}: the rows differ from the views' (collect the views again)")
    texts, (minilm, smol) = [r["text"] for r in rows], encoders
    fused = FusedLabeler(taxonomy, model=FUSED_ENCODER_MODEL, embed=EmbedLabeler(taxonomy, encoder=minilm), llm=smol)
    e, h = np.asarray(minilm.encode(texts)), unit_rows(smol.encode(texts) - fused.centre)
    for got, key in ((e @ fused.embed.prototypes.T, "embed"), (h @ fused.prototypes.T, "hidden")):
        off = float(np.abs(got - np.asarray([r[key] for r in payload["rows"]])).max())
        if off > 1e-3:
            raise SystemExit(f"{set_name}: {key} cosines differ from the views' by {off:.4f}")
    path = vectors_path(folder, set_name)
    np.savez(path, E=e, H=h, PE=fused.embed.prototypes, PH=fused.prototypes)
    return path


def ensemble(p_llm, e_scores, h_scores):
    """The shipped ensemble's probabilities from the LLM's and the two spaces' cosines."""
    p_fused = [softmax(s * FUSED_TEMPERATURE) for s in fused_scores(e_scores, h_scores)]
    return np.stack([softmax(combined_scores(p, f, ENSEMBLE_FUSED_WEIGHT) * ENSEMBLE_TEMPERATURE)
                     for p, f in zip(p_llm, p_fused)])


def refined(vectors, prototypes, weights, beta: float, centred: bool):
    """Each prototype moved by `beta` towards its weighted centroid (minus the mean of all rows when
    centred); a category no row has any weight in keeps its prototype."""
    mass = weights.sum(axis=0)[:, None]
    centroids = (weights.T @ vectors) / np.maximum(mass, 1e-9)
    if centred:
        centroids = centroids - vectors.mean(axis=0)
    return unit_rows(prototypes + beta * unit_rows(centroids) * (mass > 1e-9))


def transductive(p_llm, v, beta: float, iterations: int, centred: bool, hard: bool):
    p = ensemble(p_llm, v["E"] @ v["PE"].T, v["H"] @ v["PH"].T)
    for _ in range(iterations):
        w = np.eye(p.shape[1])[p.argmax(axis=1)] if hard else p
        pe, ph = refined(v["E"], v["PE"], w, beta, centred), refined(v["H"], v["PH"], w, beta, centred)
        p = ensemble(p_llm, v["E"] @ pe.T, v["H"] @ ph.T)
    return p


def accuracy(payload: dict, p) -> float:
    names = payload["taxonomy"]
    return category_scores(payload, [(names[int(np.argmax(r))], float(r.max())) for r in p])["accuracy"]


def absent_shares(payload: dict, p_llm, v, chosen) -> dict:
    """Per setting, the mean share (%) a category gets when every row labeled with it is left out
    (each category in turn): what a gap looks like after the labeler has seen the data."""
    names, out = payload["taxonomy"], {}
    methods = {"ensemble (shipped)": None, **{label(s): s for s in chosen}}
    for m, s in methods.items():
        shares = []
        for c, name in enumerate(names):
            keep = np.asarray([name not in r["labels"] for r in payload["rows"]])
            if keep.all() or not keep.any():
                continue
            sub = {k: v[k][keep] if k in ("E", "H") else v[k] for k in v.files}
            pl = [p for p, k in zip(p_llm, keep) if k]
            p = ensemble(pl, sub["E"] @ sub["PE"].T, sub["H"] @ sub["PH"].T) if s is None else transductive(pl, sub, *s)
            shares.append(100 * float((p.argmax(axis=1) == c).mean()))
        out[m] = round(float(np.mean(shares)), 2)
    return out


def settings(grid: str | None) -> list[tuple[float, int, bool, bool]]:
    if grid:
        beta, iterations, centring, weighting = grid.split(":")
        return [(float(beta), int(iterations), centring == "centred", weighting == "hard")]
    return list(itertools.product(BETAS, ITERATIONS, [True, False], [False, True]))


def label(setting) -> str:
    beta, iterations, centred, hard = setting
    return f"beta {beta}, {iterations} pass{'es' if iterations > 1 else ''}, {'centred' if centred else 'raw'}, {'hard' if hard else 'soft'}"


def run(split: str, folder: Path, grid: str | None) -> dict:
    table, absent = {}, {}
    for name in CATEGORY_SETS:
        if not vectors_path(folder, name).exists():
            continue
        payload, v = json.loads((folder / f"{name}.json").read_text()), np.load(vectors_path(folder, name))
        p_llm = [llm_probs(r, payload["taxonomy"]) for r in payload["rows"]]
        base = ensemble(p_llm, v["E"] @ v["PE"].T, v["H"] @ v["PH"].T)
        row = {"rows": len(payload["rows"]), "ensemble (shipped)": accuracy(payload, base)}
        row.update({label(s): accuracy(payload, transductive(p_llm, v, *s)) for s in settings(grid)})
        table[name] = row
        absent[name] = absent_shares(payload, p_llm, v, settings(grid))
    return {"split": split, "model": folder.parent.name, "views": str(folder.relative_to(OUT)),
            "machine": common.machine_info(), "accuracy": table, "absent": absent}


def markdown(res: dict) -> str:
    sets = list(res["accuracy"])
    methods = [m for m in next(iter(res["accuracy"].values())) if m != "rows"] if sets else []
    lines = [f"# Transductive prototypes ({res['split']} split, views {res['views']})", "",
             "| method | " + " | ".join(f"{s} ({res['accuracy'][s]['rows']})" for s in sets) + " | mean |",
             "|---" * (len(sets) + 2) + "|"]
    for m in methods:
        values = [res["accuracy"][s][m] for s in sets]
        lines.append(f"| {m} | " + " | ".join(f"{x:.3f}" for x in values) + f" | {np.mean(values):.3f} |")
    lines += ["", "Mean share (%) a category gets when all its rows are left out (each category in turn):", "",
              "| method | " + " | ".join(sets) + " | mean |", "|---" * (len(sets) + 2) + "|"]
    for m in ["ensemble (shipped)", *[x for x in methods if x != "ensemble (shipped)"]]:
        values = [res["absent"][s][m] for s in sets]
        lines.append(f"| {m} | " + " | ".join(f"{x:.1f}" for x in values) + f" | {np.mean(values):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test"], required=True)
    p.add_argument("--views", default=CPU_DEFAULT_VIEWS, help="the views folder under results/tmp/views")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--vectors", action="store_true", help="collect the rows' vectors first (MiniLM and SmolLM2)")
    p.add_argument("--grid", help="one setting, beta:iterations:centred|raw:soft|hard (default: the whole grid)")
    args = p.parse_args(argv)
    folder = OUT / args.views / args.split
    if args.vectors:
        from offline_cov.labelers.embed import load_encoder
        from offline_cov.labelers.fused import FUSED_ENCODER_MODEL, load_llm_encoder

        encoders = load_encoder(), load_llm_encoder(FUSED_ENCODER_MODEL)
        for name in CATEGORY_SETS:
            if (folder / f"{name}.json").exists() and not vectors_path(folder, name).exists():
                started = time.perf_counter()
                path = collect_vectors(folder, name, args.data_dir, encoders)
                print(f"{name}: {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    res = run(args.split, folder, args.grid)
    common.write_results(f"refine-ensemble-{args.split}", res, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
