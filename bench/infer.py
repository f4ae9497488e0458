"""How good an inferred taxonomy is: infer one from a labeled set's rows, label the rows with it, and
compare the labels with the set's own classes (which the inference never sees).

A taxonomy is good for a coverage audit when its categories separate the kinds of request the data
holds: every true class should be the main content of some inferred category ("classes with a home"),
and the labels should carry the classes' information (normalized mutual information, NMI: 1 when
the inferred labels determine the true class and back, 0 when they are unrelated). Names are not
compared: the inference writes its own. Method `given` labels the rows with the set's own taxonomy
the same way: what a taxonomy written for the data reaches with this labeler. "(vote)" marks a run
where the model's proposal failed and the product fell back to its fixed vocabulary, "(proposal)" a
`clusters` run whose groups got fewer than five distinct names (`strategies/infer.py`). Where
`proposal` runs before `proposal+skills`, the latter tops up the former's proposal ("(same proposal)"),
so the two differ by the added skills alone.

  HF_HUB_OFFLINE=1 .venv/bin/python -m bench.infer --split dev   # ~6 min a method on a 2-core CPU

One vLLM engine serves every method and set; the labeler (default `ensemble-nocheck`, the CPU
default's label request and prototypes without its check, for time) is the same for every method.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import Counter
from pathlib import Path

from . import common
from .views import DEFAULT_DATA, SETS, read_rows, split_rows, taxonomy_for

INFER_SETS = ("arena-hard", "selfinstruct-domains", "infobench", "justeval-tasks", "justeval-topics")


def nmi(truth: list[str], labels: list[str]) -> float:
    """Mutual information of two labelings over the mean of their entropies (0 where both are constant)."""
    n = len(truth)
    joint, left, right = Counter(zip(truth, labels)), Counter(truth), Counter(labels)
    mutual = sum(c / n * math.log(c * n / (left[a] * right[b])) for (a, b), c in joint.items())
    entropy = [-sum(c / n * math.log(c / n) for c in counts.values()) for counts in (left, right)]
    mean = sum(entropy) / 2
    return mutual / mean if mean > 0 else 0.0


GENERIC_WORDS = {"task", "request", "question", "subject", "topic", "skill", "instruction", "response", "data",
                 "general", "other", "misc", "description", "category", "answer", "text", "prompt", "type", "level",
                 "domain", "target", "kind", "item"}


def generic_names(names: list[str]) -> list[str]:
    """Inferred names made of generic words only (`task`, `instruction_type`): they say nothing of the data."""
    return [n for n in names if set(n.split("_")) <= GENERIC_WORDS]


def classes_with_home(truth: list[str], labels: list[str]) -> list[str]:
    """The true classes that are the most common class of at least one inferred category."""
    homes = set()
    for category in set(labels):
        held = Counter(t for t, label in zip(truth, labels) if label == category)
        homes.add(held.most_common(1)[0][0])
    return sorted(homes)


def run_method(engine, rows: list[dict], method: str, labeler_name: str, spec=None, proposed=None) -> dict:
    """Infer a taxonomy from the rows with `method` (or take the set's own with "given", the reference),
    label every row with it, score the labels. `proposed`: the result of method "proposal" on the same
    rows, which "proposal+skills" then tops up (`topped_up`) rather than asking for a proposal of its own."""
    from offline_cov.data.readers import Sample
    from offline_cov.labelers import get_labeler_class
    from offline_cov.labelers.base import LabelRun
    from offline_cov.strategies.infer import infer_taxonomy
    from offline_cov.taxonomy import Taxonomy

    samples = [Sample(i, (("user", r["text"]),)) for i, r in enumerate(rows)]
    started = time.perf_counter()
    if method == "proposal+skills" and proposed is not None:
        taxonomy = Taxonomy.model_validate(proposed["taxonomy"])
        taxonomy = topped_up(engine, samples, taxonomy)
        if taxonomy.inferred_by == "proposal":  # nothing added: the proposal's own labels
            return {**proposed, "method": method, "paired": True}
    else:
        taxonomy = taxonomy_for(spec) if method == "given" else infer_taxonomy(engine, samples, method)
    infer_s = time.perf_counter() - started
    labeler = get_labeler_class(labeler_name)(engine, taxonomy)
    run, labels = LabelRun(), []
    for at in range(0, len(samples), 64):
        labels += labeler.label_batch(samples[at: at + 64], run)
    assigned = [label.categories[0] if label.categories else "" for label in labels]
    truth = [r["labels"][0] for r in rows]
    homes = classes_with_home(truth, assigned)
    return {"method": method, "inferred_by": taxonomy.inferred_by, "names": taxonomy.names,
            "taxonomy": taxonomy.model_dump(), "paired": proposed is not None and method == "proposal+skills",
            "descriptions": {c.name: c.description for c in taxonomy.categories},
            "nmi": round(nmi(truth, assigned), 3), "generic": generic_names(taxonomy.names),
            "classes": sorted(set(truth)), "homes": homes,
            "failed": len(run.failed), "infer_s": round(infer_s, 1),
            "shares": dict(Counter(assigned).most_common())}


def topped_up(engine, samples, proposed):
    """`proposed` (a "proposal" taxonomy of these samples) as the product tops it up
    (`strategies.infer.topped_up` over the same shown samples): "proposal+skills" scored on the very
    proposal "proposal" was, so that the two differ by the skills alone (two proposal requests for the
    same samples can come back different, session 35)."""
    from offline_cov.strategies import infer

    if proposed.inferred_by != "proposal":  # the vote: infer_taxonomy adds no skills to it
        return proposed
    shown, _ = infer.fitted(engine, infer.shown_snippets(samples), None)
    return infer.topped_up(proposed, shown)


def run(args) -> dict:
    from offline_cov.engines.vllm_engine import VllmEngine
    from offline_cov.registry import load_registry

    common.set_bench_env()
    engine = VllmEngine(load_registry().get(args.model))
    results = []
    try:
        for name in args.sets.split(","):
            spec = SETS[name]
            rows = [r for r in split_rows(spec, read_rows(spec, args.data_dir), args.split) if len(r["labels"]) == 1]
            if len(rows) > args.rows:  # a seeded draw: the files are often sorted by class
                rows = sorted(random.Random(f"{name}:{args.split}").sample(rows, args.rows), key=lambda r: r["row"])
            proposed = None
            for method in args.methods.split(","):
                print(f"[infer {time.strftime('%H:%M:%S')}] {name}: {method} on {len(rows)} rows", flush=True)
                result = run_method(engine, rows, method, args.labeler, spec, proposed)
                proposed = result if method == "proposal" else proposed
                results.append({"set": name, "rows": len(rows), **result})
    finally:
        engine.close()
    return {"kind": "infer", "split": args.split, "model": args.model, "labeler": args.labeler,
            "machine": common.machine_info(), "versions": common.versions(), "results": results}


def fell_back(result: dict) -> str:
    """" (vote)" or " (proposal)" where the product fell back from the method asked, else ""."""
    by, method = result["inferred_by"], result["method"]
    asked = ("clusters",) if method.startswith("clusters") else ("proposal", "proposal+skills")
    return f" ({by})" if by not in (None, *asked) else ""


def method_shown(result: dict) -> str:
    """The method as the table shows it: with `fell_back`'s marker, and "(same proposal)" where
    `proposal+skills` topped up the `proposal` row's own proposal."""
    return result["method"] + fell_back(result) + (" (same proposal)" if result.get("paired") else "")


def markdown(payload: dict) -> str:
    head = (f"# Inferred taxonomies ({payload['split']} split, {payload['model']}, labeled by {payload['labeler']})\n\n"
            f"{common.machine_line(payload['machine'])}\n\n")
    rows = [[r["set"], r["rows"], method_shown(r), len(r["names"]), ", ".join(r["names"]), r["nmi"],
             f"{len(r['homes'])} / {len(r['classes'])}", len(r["generic"]), r["infer_s"]] for r in payload["results"]]
    table = common.md_table(["set", "rows", "method", "k", "inferred names", "NMI", "classes with a home",
                             "generic names", "infer s"], rows)
    means = []
    for method in sorted({r["method"] for r in payload["results"]}):
        runs = [r for r in payload["results"] if r["method"] == method]
        means.append([method, round(sum(r["nmi"] for r in runs) / len(runs), 3),
                      *(sum(len(r[key]) for r in runs) for key in ("homes", "classes", "generic"))])
    return head + table + "\n\n" + common.md_table(["method", "mean NMI", "classes with a home", "classes",
                                                     "generic names"], means) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.infer", description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test"], default="dev")
    p.add_argument("--sets", default=",".join(INFER_SETS))
    p.add_argument("--methods", default="proposal,proposal+skills,given",
                   help='proposal, tags, proposal+skills, clusters, clusters+examples (strategies/infer.py); "given": the set\'s own '
                        'taxonomy, labeled the same way (the reference)')
    p.add_argument("--rows", type=int, default=60, help="rows a set, a seeded draw from its split")
    p.add_argument("--labeler", default="ensemble-nocheck")
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out-dir", default=None)
    return p


def main(argv: list[str] | None = None) -> dict:
    return common.bench_main("infer", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    main()
