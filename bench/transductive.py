"""Dev-split study: can the embedding labeler gain from seeing the whole dataset it labels?

Transductive variants of the nearest-prototype labeler (`offline_cov.labelers.embed`), all on the packaged
MiniLM, measured on the dev split of bench/labelers.py only:

- `refine`: one or more Lloyd steps from the seed prototypes; a category's new prototype
  interpolates its seed and the centroid of the samples assigned to it (kept as the seed when
  fewer than 3 are assigned),
- `knn`: each sample's category scores averaged with those of its k nearest dataset neighbours,
- `spread`: label spreading (Zhou et al. 2004) on the dataset's kNN graph, seeded by the
  prototype scores,
- `center`: the dataset's mean embedding subtracted from samples and prototypes.

Besides accuracy on the whole dev split it checks what an audit needs: accuracy and share error
on skewed mixtures drawn from dev rows (`bench.data.default_mixtures`), and for each category
left out of the data entirely, the share of samples it still gets (should stay near 0).

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.transductive
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from offline_cov.taxonomy import load_taxonomy_file

from . import common
from .data import default_mixtures, mixture_counts
from .labelers import DEFAULT_DATA, HERE, SETS, load_set, split

MIN_ASSIGNED = 3


def unit(v):
    import numpy as np

    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def refine(X, P, alpha: float, steps: int):
    """Prototypes after `steps` Lloyd steps anchored to the seeds with weight `alpha`."""
    Q = P.copy()
    for _ in range(steps):
        a = (X @ Q.T).argmax(1)
        Q = unit(P.copy())
        for c in range(len(P)):
            if (a == c).sum() >= MIN_ASSIGNED:
                Q[c] = unit(alpha * P[c] + (1 - alpha) * unit(X[a == c].mean(0)))
    return Q


def knn_graph(X, k: int):
    """Indices of each row's k most similar other rows."""
    import numpy as np

    G = X @ X.T
    np.fill_diagonal(G, -np.inf)
    return np.argsort(-G, 1)[:, :k], G


def knn_smooth(X, P, k: int, beta: float):
    S = X @ P.T
    nb, _ = knn_graph(X, k)
    return (1 - beta) * S + beta * S[nb].mean(1)


def label_spread(X, P, k: int, alpha: float, temperature: float = 0.05, steps: int = 10):
    import numpy as np

    S = X @ P.T
    Y0 = np.exp((S - S.max(1, keepdims=True)) / temperature)
    Y0 /= Y0.sum(1, keepdims=True)
    nb, G = knn_graph(X, k)
    W = np.zeros_like(G)
    rows = np.repeat(np.arange(len(X)), k)
    W[rows, nb.ravel()] = np.maximum(G[rows, nb.ravel()], 0)
    W = np.maximum(W, W.T)
    d = np.maximum(W.sum(1), 1e-9)
    Wn = W / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    F = Y0
    for _ in range(steps):
        F = alpha * Wn @ F + (1 - alpha) * Y0
    return F


def variants() -> dict:
    """name -> function (sample embeddings, seed prototypes) -> scores (samples, categories)."""
    out = {"nearest prototype (embed)": lambda X, P: X @ P.T}
    for alpha in (0.3, 0.5, 0.7):
        for steps in (1, 3):
            out[f"refine alpha={alpha} steps={steps}"] = lambda X, P, a=alpha, s=steps: X @ refine(X, P, a, s).T
    for k in (5, 10, 20):
        out[f"knn k={k} beta=0.3"] = lambda X, P, k=k: knn_smooth(X, P, k, 0.3)
    for alpha in (0.2, 0.5):
        out[f"spread k=10 alpha={alpha}"] = lambda X, P, a=alpha: label_spread(X, P, 10, a)
    out["center (dataset mean)"] = lambda X, P: unit(X - X.mean(0)) @ unit(P - X.mean(0)).T
    return out


def mixture_indices(y, k: int, seed: int) -> dict:
    """Row indices of each default mixture, as large as the dev rows allow."""
    out = {}
    for name, comp in default_mixtures(list(range(k))).items():
        pool = {c: [i for i in range(len(y)) if y[i] == c] for c in range(k)}
        size = len(y)
        while any(n > len(pool[c]) for c, n in mixture_counts(comp, size).items()):
            size -= 1
        rng = random.Random(seed)
        out[name] = [i for c, n in mixture_counts(comp, size).items() for i in rng.sample(pool[c], n)]
    return out


def evaluate(fn, X, P, y, k: int, seed: int) -> dict:
    """Dev accuracy, mean mixture accuracy and share error, and the share an absent category gets."""
    import numpy as np

    from offline_cov.metrics import label_metrics

    pred = fn(X, P).argmax(1)
    m = label_metrics([int(v) for v in y], [int(v) for v in pred], list(range(k)))
    mixes, errors = [], []
    for idx in mixture_indices(y, k, seed).values():
        p, t = fn(X[idx], P).argmax(1), y[idx]
        mixes.append(float((p == t).mean()))
        errors.append(100 * float(np.mean([abs((p == c).mean() - (t == c).mean()) for c in range(k)])))
    absent = [100 * float((fn(X[y != c], P).argmax(1) == c).mean()) for c in range(k)]
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "mixture_accuracy": round(float(np.mean(mixes)), 3),
            "mixture_share_mae_pp": round(float(np.mean(errors)), 1), "absent_share_pct": [round(a, 1) for a in absent]}


def run_set(name: str, args) -> dict:
    import numpy as np

    from offline_cov.labelers.embed import EmbedLabeler, load_encoder

    taxonomy = load_taxonomy_file(HERE / "taxonomies" / SETS[name].taxonomy)
    rows = split(load_set(SETS[name], args.data_dir), name, args.split)
    labeler = EmbedLabeler(taxonomy, encoder=load_encoder())
    X, P = labeler.encoder.encode([r.text for r in rows]), labeler.prototypes
    y = np.array([taxonomy.names.index(r.label) for r in rows])
    results = {v: evaluate(fn, X, P, y, len(taxonomy.names), args.seed) for v, fn in variants().items()}
    return {"set": name, "split": args.split, "rows": len(rows), "taxonomy": taxonomy.names, "variants": results}


def markdown(payload: dict) -> str:
    lines = ["## Transductive variants of the embedding labeler", "", f"- when: {payload['when']}",
             f"- split: `{payload['split']}`; mixtures: {', '.join(default_mixtures(['a', 'b', 'c']))}", ""]
    rows = [[s["set"], v, r["accuracy"], r["macro_f1"], r["mixture_accuracy"], r["mixture_share_mae_pp"],
             " / ".join(str(a) for a in r["absent_share_pct"])]
            for s in payload["sets"] for v, r in s["variants"].items()]
    lines.append(common.md_table(["set", "variant", "accuracy", "macro-F1", "mixture accuracy (mean)",
                                  "mixture share MAE pp", "share given to an absent category, % (each category)"], rows))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.transductive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), type=Path)
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None)
    return parser


def run(args) -> dict:
    common.set_bench_env()
    return {"bench": "transductive", "when": common.now_iso(), "model": "minilm", "split": args.split,
            "command": sys.argv, "sets": [run_set(name, args) for name in SETS]}


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("transductive", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    main()
