"""`--strategy distill`: the LLM labels a stratified subsample; a classifier on sentence embeddings
labels the rest.

1. Every analyzed sample is embedded once with the packaged all-MiniLM-L6-v2 (`embed.py`); the
   vectors go to a float16 memory-mapped file on disk (768 bytes a sample), so memory stays flat.
   Each sample's nearest category prototype is its stratum.
2. A subsample is drawn per stratum (at least `MIN_PER_STRATUM` where the stratum has them, the
   rest in proportion), so rare categories are seen by the LLM, and labeled by the LLM through
   the label cache, like any run.
3. Two multinomial logistic regressions (category; difficulty, with the rubric's length and
   constraint counts as extra features) are fitted on a part of the LLM labels; their agreement
   with the LLM on the held-out part goes to the metadata. They are then refitted on all LLM
   labels and label every sample the LLM did not see.
4. The report counts each sample's primary category (the classifier predicts one), from the LLM
   where it labeled the sample and the classifier elsewhere. The metadata also gives, per
   category, the share the LLM itself would give the whole set, estimated from the stratified
   subsample with a 95% interval (stratified estimator, normal approximation).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from ..data.plan import chunks
from ..errors import OfflineCovError
from ..metrics import accuracy, cohen_kappa
from ..report.contract import DIFFICULTIES
from ..report.tally import LabelStore, SampleLabel, Tally, wilson_interval

DISTILL_SIZE = 2000  # samples the LLM labels, by default
MIN_PER_STRATUM = 20
HELD_OUT = 0.2
L2 = 1e-3
CHUNK = 1024


@dataclass
class Embedded:
    """Pass 1's output: every analyzed sample's unit vector (on disk), index, stratum and rubric features."""

    vectors: object  # numpy memmap (n, dim) float16
    indices: array
    strata: array
    features: object  # numpy (n, 4) float32: log1p of the rubric counts


def embed_all(labeler, samples, n: int, workdir: Path, progress=None) -> Embedded:
    """Embed the samples chunk by chunk into a memory-mapped file; strata = nearest prototype."""
    import numpy as np

    from ..labelers.base import sample_text
    from ..labelers.difficulty import difficulty_features

    dim = labeler.prototypes.shape[1]
    vectors = np.lib.format.open_memmap(workdir / "vectors.npy", mode="w+", dtype=np.float16, shape=(max(n, 1), dim))
    features = np.zeros((max(n, 1), 4), dtype=np.float32)
    indices, strata, row = array("q"), array("B"), 0
    for chunk in chunks(samples, CHUNK):
        vecs = labeler.encoder.encode([sample_text(s)[0] for s in chunk])
        vectors[row : row + len(chunk)] = vecs
        for j, s in enumerate(chunk):
            features[row + j] = np.log1p(list(difficulty_features(s.instruction).values()))
        indices.extend(s.index for s in chunk)
        strata.extend(int(k) for k in (vecs @ labeler.prototypes.T).argmax(axis=1))
        row += len(chunk)
        if progress:
            progress(len(chunk), n)
    return Embedded(vectors, indices, strata, features)


def stratified_pick(strata: array, size: int, seed: int, floor: int = MIN_PER_STRATUM) -> dict[int, list[int]]:
    """Row numbers to send to the LLM, per stratum: a floor each where possible (lowered when the
    strata are many for the size), the rest in proportion."""
    rows: dict[int, list[int]] = {}
    for row, stratum in enumerate(strata):
        rows.setdefault(stratum, []).append(row)
    total, size = len(strata), min(size, len(strata))
    floor = max(1, min(floor, size // len(rows)))  # the floors alone never exceed the size
    take = {s: min(len(r), floor) for s, r in rows.items()}
    left = size - sum(take.values())
    if left > 0:
        for s, r in rows.items():
            take[s] = min(len(r), take[s] + math.floor(left * len(r) / total))
    rng = random.Random(seed)
    return {s: sorted(rng.sample(r, take[s])) for s, r in sorted(rows.items())}


def fit_softmax(x, y: list[int], classes: int, l2: float = L2):
    """Multinomial logistic regression (L-BFGS, L2 penalty); returns a predict(x) -> class ids."""
    import numpy as np
    import torch

    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros(xt.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weights, bias = w.detach().numpy(), b.detach().numpy()
    return lambda rows: (np.asarray(rows, dtype=np.float32) @ weights + bias).argmax(axis=1)


class Classifiers:
    """The category and difficulty classifiers, fitted on LLM labels of some rows."""

    def __init__(self, emb: Embedded, labels: dict[int, SampleLabel], names: list[str], rows: list[int]):
        self.emb, self.names = emb, names
        x = self.inputs(rows)
        self.category = fit_softmax(x[0], [names.index(labels[r].categories[0]) for r in rows], len(names))
        self.difficulty = fit_softmax(x[1], [DIFFICULTIES.index(labels[r].difficulty) for r in rows], 3)

    def inputs(self, rows: list[int]):
        import numpy as np

        vec = np.asarray(self.emb.vectors[rows], dtype=np.float32)
        return vec, np.concatenate([vec, self.emb.features[rows]], axis=1)

    def predict(self, rows: list[int]) -> list[tuple[str, str]]:
        if not rows:
            return []
        cat_x, diff_x = self.inputs(rows)
        return [(self.names[c], DIFFICULTIES[d]) for c, d in zip(self.category(cat_x), self.difficulty(diff_x))]


def held_out_split(rows: list[int], seed: int, part: float = HELD_OUT) -> tuple[list[int], list[int]]:
    """(train, held-out) rows: a seeded random `part` is held out (none when too few to fit on)."""
    shuffled = rows[:]
    random.Random(seed + 1).shuffle(shuffled)
    cut = int(len(shuffled) * part) if len(shuffled) >= 10 else 0
    return sorted(shuffled[cut:]), sorted(shuffled[:cut])


def agreement(clf: Classifiers, held: list[int], labels: dict[int, SampleLabel], indices: array) -> dict:
    """How often the classifier agrees with the LLM on rows it was not fitted on."""
    if not held:
        return {"n": 0, "note": "too few LLM labels to hold any out"}
    pred = clf.predict(held)
    llm_cat = [labels[r].categories[0] for r in held]
    llm_diff = [labels[r].difficulty for r in held]
    return {
        "n": len(held),
        "category_accuracy": round(accuracy(llm_cat, [p[0] for p in pred]), 4),
        "category_kappa": round(cohen_kappa(llm_cat, [p[0] for p in pred]), 4),
        "difficulty_accuracy": round(accuracy(llm_diff, [p[1] for p in pred]), 4),
        "rows": [{"index": indices[r], "llm": [c, d], "classifier": list(p)}
                 for r, c, d, p in zip(held, llm_cat, llm_diff, pred)],
    }


def stratified_share_estimate(strata: array, picked: dict[int, list[int]], labels: dict[int, SampleLabel],
                              names: list[str]) -> dict[str, dict]:
    """Per category, the share the LLM would give the whole set, from the stratified subsample, with a
    95% interval: sum_s W_s p_s, variance sum_s W_s^2 p_s (1 - p_s) / n_s (1 - n_s / N_s)."""
    sizes = {s: 0 for s in picked}
    for s in strata:
        sizes[s] = sizes.get(s, 0) + 1
    total, out = len(strata), {}
    for name in names:
        est = var = 0.0
        for s, rows in picked.items():
            got = [labels[r] for r in rows if r in labels]
            if not got:
                continue
            w, p = sizes[s] / total, sum(lab.categories[0] == name for lab in got) / len(got)
            est += w * p
            var += w * w * p * (1 - p) / len(got) * (1 - len(got) / sizes[s])
        half = 1.96 * math.sqrt(var)
        out[name] = {"share_percent": round(100 * est, 2),
                     "ci95": (round(100 * max(0.0, est - half), 2), round(100 * min(1.0, est + half), 2))}
    return out


def check_options(run) -> None:
    """Distillation needs the whole set in one run and labels that an LLM wrote to learn from."""
    if run.opts.shard:
        raise OfflineCovError("--strategy distill labels the whole set in one run; drop --shard")
    if not run.labeler_cls.writes_labels:
        raise OfflineCovError(
            f"--strategy distill trains its classifier on labels an LLM writes, and --labeler {run.labeler_cls.name} "
            "writes none; use --labeler llm (or --strategy per-sample to label every sample with "
            f"{run.labeler_cls.name})"
        )


def run_distilled(run):
    """`--strategy distill`: the LLM labels a stratified subsample, a classifier on sentence embeddings the rest."""
    from .describe import described_taxonomy
    from .infer import inferred_taxonomy

    check_options(run)
    taxonomy = described_taxonomy(run, run.opts.taxonomy or inferred_taxonomy(run))
    t = time.perf_counter()
    labels, tally, llm, facts = distill_labels(run, taxonomy)
    run.timed("label_s", t)
    report = run.plan.report(tally, run.opts.thresholds)
    if llm.failed:
        run.warnings.append(f"the LLM could not label {len(llm.failed)} subsample sample(s) after a retry")
    samples = {"analyzed": run.plan.analyzed, "labeled": len(labels), "llm_labeled": facts["llm_labeled"],
               "classifier_labeled": facts["classifier_labeled"], "failed": len(llm.failed)}
    return run.result(report, labels, taxonomy, samples=samples, failed=llm.failed, distill=facts,
                      share_ci95=share_intervals(report, facts["llm_labeled"]))


def distill_labels(run, taxonomy) -> tuple:
    """Label the run's samples by distillation; returns (labels, tally, the LLM's pass, facts for the metadata)."""
    from ..labelers.embed import EmbedLabeler
    from .per_sample import label_stream

    opts, plan, timings = run.opts, run.plan, {}
    t = time.perf_counter()
    labeler = EmbedLabeler(taxonomy, opts.label)
    with tempfile.TemporaryDirectory(prefix="offline-cov-distill-") as tmp:
        emb = embed_all(labeler, plan.stream(), plan.analyzed, Path(tmp), run.progress)
        timings["embed_s"] = round(time.perf_counter() - t, 3)
        picked = stratified_pick(emb.strata, opts.distill_size, opts.seed)
        rows = sorted(r for rs in picked.values() for r in rs)
        t = time.perf_counter()
        index_row = {emb.indices[r]: r for r in rows}
        llm = label_stream(run, taxonomy, plan.stream(only=set(index_row)), len(rows))
        timings["llm_label_s"] = round(time.perf_counter() - t, 3)
        labels = {index_row[lab.index]: lab for lab in llm.labels}
        if not labels:
            raise OfflineCovError("the LLM labeled none of the distillation subsample; see the run's warnings")
        t = time.perf_counter()
        train, held = held_out_split(sorted(labels), opts.seed)
        agreed = agreement(Classifiers(emb, labels, taxonomy.names, train), held, labels, emb.indices)
        final = Classifiers(emb, labels, taxonomy.names, sorted(labels))
        timings["fit_s"] = round(time.perf_counter() - t, 3)
        store, tally = LabelStore(), Tally(taxonomy)
        t = time.perf_counter()
        _label_rest(plan, emb, labels, final, store, tally)
        timings["classify_s"] = round(time.perf_counter() - t, 3)
    facts = {
        "llm_labeled": len(labels), "llm_failed": len(llm.failed), "classifier_labeled": len(store) - len(labels),
        "strata": {taxonomy.names[s]: len(r) for s, r in picked.items()},
        "held_out_agreement": agreed,
        "llm_share_estimate": stratified_share_estimate(emb.strata, picked, labels, taxonomy.names),
        "classifier": "multinomial logistic regression on all-MiniLM-L6-v2 embeddings (difficulty: + rubric counts)",
        "timings": timings,
    }
    return store, tally, llm, facts


def _label_rest(plan, emb: Embedded, labels: dict[int, SampleLabel], clf: Classifiers, store, tally) -> None:
    """Walk the samples again: the LLM's primary label where it gave one, the classifier's elsewhere."""
    row = 0
    for chunk in chunks(plan.stream(), CHUNK):
        rows = list(range(row, row + len(chunk)))
        unseen = [r for r in rows if r not in labels]
        guesses = dict(zip(unseen, clf.predict(unseen)))
        for r, sample in zip(rows, chunk):
            if r in labels:
                label = SampleLabel(sample.index, labels[r].categories[:1], labels[r].difficulty)
            else:
                label = SampleLabel(sample.index, (guesses[r][0],), guesses[r][1])
            store.append(label)
            tally.add(label, len(sample.instruction))
        row += len(chunk)


def share_intervals(report, llm_labeled: int) -> dict[str, tuple[float, float]]:
    """Wilson 95% intervals of the report's shares, with the LLM-labeled count as the sample size."""
    return {c.name: wilson_interval(round(c.share_percent / 100 * llm_labeled), llm_labeled) for c in report.categories}
