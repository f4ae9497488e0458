"""What each view of a sample knows, on every labeled set: the collection behind bench/choose.py.

For each set and split this reads every row once through the product's own pieces and keeps, per row:
- the LLM's answer to the product's label request (`LLMLabeler.request`, vLLM, enum-constrained JSON)
  with the top-20 allowed tokens at each position, turned by `choice_distribution` into its
  probability of every category and of every difficulty;
- the MiniLM cosine of the sample to each category prototype (`embed`) and the SmolLM2 hidden-state
  cosine (`fused`'s second view);
- the difficulty rule's features;
- the LLM's yes/no check of every category (`labelers/check.py`): P(yes) per category (`check`),
  asked with check-v1 unless `--check-prompt` names another (its folder is <folder>+<check prompt>);
and, per set, the same three views of CONTENT_FREE inputs (what each view leans to when the
sample says nothing: the bias contextual calibration divides out).
Nothing is chosen here: bench/choose.py scores every labeler and combination from these files,
so a choice costs no model time. Each (set, split) is one file under
bench/results/tmp/views/<model>/<split>/, written when the set is done; a rerun skips sets already
collected (delete the folder to collect again; a file collected before the yes/no check existed, or
with `--no-check`, gets only the check added), and rows another split of the same folder already
read are reused, not asked again.

  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=4 .venv/bin/python -m bench.views --split dev
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=4 .venv/bin/python -m bench.views --split pool \
      --sets arena-hard,justeval-topics --max-sample-tokens 512   # bench/calibration.py's mixtures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from offline_cov.labelers.base import CPU_SAMPLE_TOKENS
from offline_cov.labelers.check import CONTENT_FREE as CHECK_CONTENT_FREE
from offline_cov.prompts import CHECK_PROMPT_VERSION, CHECK_PROMPTS, LABEL_PROMPTS, PROMPT_VERSION
from offline_cov.taxonomy import Taxonomy, load_taxonomy_file, parse_taxonomy_list

from . import common

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "tmp" / "views"
DIFFICULTIES = ["easy", "medium", "hard"]
DEV_SHARE = 3
TOP_LOGPROBS = 20
CONTENT_FREE = ["N/A", "[MASK]", ""]  # inputs that say nothing (Zhao et al. 2021): what each view leans to unprompted
assert tuple(CONTENT_FREE) == CHECK_CONTENT_FREE  # the check's offsets in the product are measured on the same inputs


@dataclass(frozen=True)
class ViewSet:
    """One labeled set read for the views: file, fields, taxonomy and how labels map onto it."""

    name: str
    file: str
    taxonomy: str  # a bench/taxonomies file, or "names:a,b,c" for a names-only taxonomy
    text_field: str = "text"
    label_field: str | None = None
    label_map: dict = field(default_factory=dict)
    difficulty_field: str | None = None
    difficulty_map: dict = field(default_factory=dict)
    split_key: str | None = None  # sets reading the same rows share their split (names-only rows)
    described: bool = False  # the names-only taxonomy described by the model first (strategies/describe.py)
    exemplified: bool = False  # the model writes examples for the categories that have none first
    cap: int = 100  # at most this many dev rows (1.5x as many test rows), a seeded subsample


INFOBENCH_DOMAINS = {"Natural Sciences": "natural_sciences", "Social Sciences": "social_sciences",
                     "Business and Economics": "business_economics", "Engineering and Technology": "engineering_technology",
                     "Arts": "arts", "Lifestyle and Leisure": "lifestyle_leisure", "Office and Work": "office_work"}
JUSTEVAL_TASKS = {"info-seek": "info_seek", "role-play": "role_play"}
MATH_LEVELS = {"1": "easy", "2": "easy", "3": "medium", "4": "hard", "5": "hard"}
ARENA_NAMES = "names:coding,math,creative_writing"
DIFFICULTY_CAP = 300  # the difficulty sets: at 100 dev rows their Spearmans moved by up to 0.3 from test (session 8)
TOPIC_NAMES = "names:lifestyle,stem,humanities,ethics,nature,finance,medical,malicious"

SETS = {s.name: s for s in [
    ViewSet("arena-hard", "arena_hard_v2_questions.jsonl", "arena_hard.yaml", "prompt", "subcategory"),
    ViewSet("arena-hard-names", "arena_hard_v2_questions.jsonl", ARENA_NAMES, "prompt", "subcategory", split_key="arena-hard"),
    ViewSet("selfinstruct-domains", "selfinstruct_user_oriented.jsonl", "selfinstruct_domains.yaml", "instruction", "motivation_app"),
    ViewSet("infobench", "infobench.jsonl", "infobench_domains.yaml", "text", "domain", INFOBENCH_DOMAINS,
            "difficulty", cap=DIFFICULTY_CAP),
    ViewSet("justeval-tasks", "just_eval_gpt4_tags.jsonl", "justeval_tasks.yaml", "text", "task_types", JUSTEVAL_TASKS,
            "difficulty", cap=DIFFICULTY_CAP),
    ViewSet("justeval-topics", "just_eval_gpt4_tags.jsonl", "justeval_topics.yaml", "text", "topics",
            split_key="justeval-tasks"),
    ViewSet("justeval-topics-names", "just_eval_gpt4_tags.jsonl", TOPIC_NAMES, "text", "topics",
            split_key="justeval-tasks"),
    ViewSet("arena-hard-described", "arena_hard_v2_questions.jsonl", ARENA_NAMES, "prompt", "subcategory",
            split_key="arena-hard", described=True),
    ViewSet("justeval-topics-described", "just_eval_gpt4_tags.jsonl", TOPIC_NAMES, "text", "topics",
            split_key="justeval-tasks", described=True),
    ViewSet("infobench-exemplified", "infobench.jsonl", "infobench_domains.yaml", "text", "domain", INFOBENCH_DOMAINS,
            split_key="infobench", exemplified=True),
    ViewSet("justeval-tasks-exemplified", "just_eval_gpt4_tags.jsonl", "justeval_tasks.yaml", "text", "task_types",
            JUSTEVAL_TASKS, split_key="justeval-tasks", exemplified=True),
    ViewSet("justeval-topics-exemplified", "just_eval_gpt4_tags.jsonl", "justeval_topics.yaml", "text", "topics",
            split_key="justeval-tasks", exemplified=True),
    ViewSet("math", "math_test.jsonl", "arena_hard.yaml", "text", None, {}, "level", MATH_LEVELS, cap=DIFFICULTY_CAP),
]}


def taxonomy_for(spec: ViewSet) -> Taxonomy:
    if spec.taxonomy.startswith("names:"):
        return parse_taxonomy_list(spec.taxonomy[len("names:"):])
    return load_taxonomy_file(HERE / "taxonomies" / spec.taxonomy)


def read_rows(spec: ViewSet, data_dir: Path) -> list[dict]:
    """Every row with text: {row, text, labels (a list; empty when the row has none), difficulty}."""
    if spec.name == "selfinstruct-domains":
        from .labelers import SETS as LABELER_SETS
        from .labelers import load_set

        return [{"row": r.row, "text": r.text, "labels": [r.label], "difficulty": None}
                for r in load_set(LABELER_SETS["selfinstruct-domains"], data_dir)]
    rows = []
    with (data_dir / spec.file).open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            text = record.get(spec.text_field)
            if not isinstance(text, str) or not text.strip():
                continue
            raw = record.get(spec.label_field) if spec.label_field else None
            raw = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
            labels = [spec.label_map.get(str(x), str(x)) for x in raw]
            difficulty = record.get(spec.difficulty_field) if spec.difficulty_field else None
            if difficulty is not None:
                difficulty = spec.difficulty_map.get(str(difficulty), str(difficulty).lower())
            rows.append({"row": i, "text": text, "labels": labels, "difficulty": difficulty,
                         **({"level": record["level"]} if "level" in record else {})})
    return rows


def split_rows(spec: ViewSet, rows: list[dict], which: str, seed: int = 0) -> list[dict]:
    """The fixed dev or test part (sha256 of the set and row number, one in three is dev), at most
    `spec.cap` dev rows (1.5x as many test rows) by a seeded draw; sets with the same split key get the same rows.
    "pool" is every row with exactly one label, uncapped: what bench/calibration.py draws mixtures of
    known composition from (it keeps its own dev/test split inside the pool)."""
    key = spec.split_key or spec.name
    if which == "pool":
        return [r for r in rows if len(r["labels"]) == 1]

    def is_dev(row: dict) -> bool:
        return int(hashlib.sha256(f"{key}:{row['row']}".encode()).hexdigest(), 16) % DEV_SHARE == 0

    part = [r for r in rows if is_dev(r) == (which == "dev")]
    cap = spec.cap if which == "dev" else spec.cap * 3 // 2
    if len(part) > cap:
        part = sorted(random.Random(f"{key}:{which}:{seed}").sample(part, cap), key=lambda r: r["row"])
    return part


def say(message: str) -> None:
    print(f"[views {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def llm_views(engine, taxonomy: Taxonomy, texts: list[str], batch_size: int, max_sample_tokens: int = 1536,
              prompt: str = PROMPT_VERSION) -> list[dict]:
    """The product's label request for each text, answered with top-k logprobs; what it says."""
    from offline_cov.data.readers import Sample
    from offline_cov.generation import generate_parsed
    from offline_cov.labelers.base import LabelSettings
    from offline_cov.labelers.llm import LLMLabeler, choice_distribution

    settings = LabelSettings(batch_size=batch_size, max_sample_tokens=max_sample_tokens)
    labeler = LLMLabeler(engine, taxonomy, settings, top_logprobs=TOP_LOGPROBS, prompt=prompt)
    out = []
    for at in range(0, len(texts), batch_size):
        chunk = texts[at: at + batch_size]
        built = [labeler.request(Sample(i, (("user", t),))) for i, t in enumerate(chunk)]
        started = time.perf_counter()
        outcomes = generate_parsed(engine, [r for r, _ in built], labeler.parse)
        seconds = time.perf_counter() - started
        for (request, cut), o in zip(built, outcomes):
            label = o.value
            out.append({
                "primary": label.categories[0] if label else None,
                "also": list(label.categories[1:]) if label else [],
                "difficulty": label.difficulty if label else None,
                "p_category": choice_distribution(o.result, "primary", taxonomy.names),
                "p_difficulty": choice_distribution(o.result, "difficulty", DIFFICULTIES),
                "finish_reason": o.result.finish_reason, "retried": o.retried, "output_tokens": o.output_tokens,
                "prompt_tokens": engine.count_tokens(request.messages[0]["content"]) + engine.count_tokens(request.messages[1]["content"]),
                "truncated": cut, "batch_s": round(seconds, 2), "batch_n": len(chunk),
            })
        say(f"  LLM {min(at + batch_size, len(texts))}/{len(texts)} ({len(chunk) / seconds:.2f} samples/s)")
    return out


def vector_views(taxonomy: Taxonomy, texts: list[str]) -> list[dict]:
    """MiniLM and SmolLM2-hidden-state cosines to each category (the two views `fused` adds)."""
    from offline_cov.labelers.difficulty import difficulty_features, difficulty_from_text
    from offline_cov.labelers.fused import FUSED_ENCODER_MODEL, FusedLabeler

    fused = FusedLabeler(taxonomy, model=FUSED_ENCODER_MODEL)
    embed, hidden = fused.embed.scores(texts), fused.llm_scores(texts)
    return [{"embed": [round(float(x), 5) for x in e], "hidden": [round(float(x), 5) for x in h],
             "rule": difficulty_from_text(t), "features": difficulty_features(t)}
            for t, e, h in zip(texts, embed, hidden)]


def check_views(engine, taxonomy: Taxonomy, texts: list[str], batch_size: int, max_sample_tokens: int,
                check_prompt: str = CHECK_PROMPT_VERSION, candidates: list[list[int]] | None = None) -> list[list]:
    """The product's yes/no check for each text (`CategoryCheck.probabilities`, with the `check_prompt`
    prompt) of every category, or of each text's `candidates`: P(yes) per category in taxonomy order,
    None where an answer failed or a category was not asked."""
    from offline_cov.labelers.check import CategoryCheck

    check = CategoryCheck(engine, taxonomy, max_sample_tokens, prompt=check_prompt)
    out = []
    for at in range(0, len(texts), batch_size):
        started = time.perf_counter()
        chunk = check.probabilities(texts[at: at + batch_size], candidates and candidates[at: at + batch_size])
        out += [[None if row.get(j) is None else round(row[j], 5) for j in range(len(taxonomy.names))] for row in chunk]
        say(f"  check {min(at + batch_size, len(texts))}/{len(texts)} ({len(chunk) / (time.perf_counter() - started):.2f} samples/s)")
    return out


def add_checks(spec: ViewSet, path: Path, data_dir: Path, engine, batch_size: int, max_sample_tokens: int,
               check_prompt: str = CHECK_PROMPT_VERSION, top_k: int | None = None) -> None:
    """Add the yes/no check to a views file collected without it (its rows and content-free inputs): of
    every category, or (`top_k`) of each row's top_k likeliest by the other two experts at the check
    labeler's fused weight, as the product asks them (the content-free inputs: every category)."""
    from offline_cov.strategies.describe import with_written

    payload = json.loads(path.read_text())
    known = {r["row"]: r["check"] for other in sorted(path.parent.parent.glob(f"*/{spec.name}.json")) if other != path
             for r in json.loads(other.read_text())["rows"] if "check" in r}
    for row in payload["rows"]:  # rows another split of this folder already checked (same model, cut, taxonomy)
        if "check" not in row and row["row"] in known:
            row["check"] = known[row["row"]]
    missing = [r for r in payload["rows"] if "check" not in r]
    if not missing and "check" in payload["content_free"]:
        return
    taxonomy = with_written(taxonomy_for(spec), payload.get("described") or {})
    assert taxonomy.names == payload["taxonomy"]
    texts = {r["row"]: r["text"] for r in read_rows(spec, data_dir)}
    started = time.perf_counter()
    candidates = product_candidates(payload, missing, top_k) if top_k else None
    checks = check_views(engine, taxonomy, [texts[r["row"]] for r in missing], batch_size, max_sample_tokens,
                         check_prompt, candidates)
    for row, check in zip(missing, checks):
        row["check"] = check
    if "check" not in payload["content_free"]:
        payload["content_free"]["check"] = check_views(engine, taxonomy, CONTENT_FREE, batch_size, max_sample_tokens,
                                                       check_prompt)
    payload["check_prompt"] = check_prompt
    if top_k:
        payload["check_top_k"] = top_k
    payload["check_s"] = round(payload.get("check_s", 0) + time.perf_counter() - started, 1)
    payload.setdefault("check_machine", common.machine_info())
    path.write_text(json.dumps(payload), encoding="utf-8")
    say(f"{spec.name}: the check added in {payload['check_s']:.0f} s -> {path}")


def product_candidates(payload: dict, rows: list[dict], top_k: int) -> list[list[int]]:
    """Each row's top_k categories by the LLM's and the prototypes' scores at the fused weight of the
    payload's check labeler: the ones the product's check asks (`EnsembleLabeler.check_scores`)."""
    from offline_cov.labelers.ensemble import check_candidates

    from .choose import checked_labeler, fused_probs, llm_probs

    weight = checked_labeler(payload).fused_weight
    return [check_candidates(llm_probs(r, payload["taxonomy"]), fused_probs(r), weight, top_k) for r in rows]


UNNAMED_PROMPT = "label-v1"  # the product's prompt when the first views were collected: their folders name none


def views_folder(model: str, max_sample_tokens: int, prompt: str = PROMPT_VERSION, cap: int | None = None,
                 check_prompt: str = CHECK_PROMPT_VERSION) -> str:
    """Where a model's views go: its name, the sample cut when it is not 1536 tokens (the tables'
    setting), the label prompt when it is not `label-v1` (so a folder's name keeps meaning the
    prompt it was collected with), the check's prompt when it is not `check-v1`, and a row cap when
    one was given."""
    return (model + ("" if max_sample_tokens == 1536 else f"@cut{max_sample_tokens}")
            + ("" if prompt == UNNAMED_PROMPT else f"+{prompt}")
            + ("" if check_prompt == CHECK_PROMPT_VERSION else f"+{check_prompt}") + ("" if cap is None else f"~cap{cap}"))


CPU_DEFAULT_MODEL = "qwen2.5-coder-1.5b"
CPU_DEFAULT_VIEWS = views_folder(CPU_DEFAULT_MODEL, CPU_SAMPLE_TOKENS)  # the CPU default's model, cut and prompt


def collected_rows(folder: Path, set_name: str) -> dict[int, dict]:
    """The views of `set_name` already in any split file of `folder` (same model and cut), by row number."""
    found = {}
    for path in sorted(folder.glob(f"*/{set_name}.json")):
        found.update({r["row"]: r for r in json.loads(path.read_text())["rows"]})
    return found


def collect(spec: ViewSet, split: str, data_dir: Path, engine, batch_size: int, max_sample_tokens: int = 1536,
            prompt: str = PROMPT_VERSION, cap: int | None = None, check: bool = True,
            check_prompt: str = CHECK_PROMPT_VERSION, check_top_k: int | None = None) -> Path:
    """One set's views file for `split`; without `check`, the yes/no check is left for a later run to add.
    Another `check_prompt` than check-v1 gets a folder of its own, whose other views are copied from
    check-v1's folder (collected there first, without its check, when missing); `check_top_k` asks
    that check only each row's likeliest categories, as the product does (a test split's views)."""
    if check_prompt != CHECK_PROMPT_VERSION:
        return with_other_check(spec, split, data_dir, engine, batch_size, max_sample_tokens, prompt, cap, check,
                                check_prompt, check_top_k)
    folder = OUT / views_folder(engine.model_name, max_sample_tokens, prompt, cap)
    path = folder / split / f"{spec.name}.json"
    if path.exists():
        say(f"{spec.name} {split}: already collected ({path})")
        if check:
            add_checks(spec, path, data_dir, engine, batch_size, max_sample_tokens)
        return path
    taxonomy, described = taxonomy_for(spec), None
    if spec.described or spec.exemplified:
        from offline_cov.strategies.describe import describe_taxonomy

        taxonomy, described = describe_taxonomy(engine, taxonomy, examples_too=spec.exemplified)
        say(f"{spec.name}: the model described {len(described)} of {len(taxonomy.names)} categories")
    rows = split_rows(spec if cap is None else replace(spec, cap=cap), read_rows(spec, data_dir), split)
    known = collected_rows(folder, spec.name)
    todo = [r for r in rows if r["row"] not in known]
    say(f"{spec.name} {split}: {len(rows)} rows ({len(rows) - len(todo)} already read in another split), "
        f"taxonomy {taxonomy.names}")
    texts = [r["text"] for r in todo]
    started = time.perf_counter()
    vectors = vector_views(taxonomy, texts + CONTENT_FREE)  # one load of the two encoders for both
    vectors, free_vectors = vectors[:len(texts)], vectors[len(texts):]
    vector_s = time.perf_counter() - started
    started = time.perf_counter()
    llm = llm_views(engine, taxonomy, texts, batch_size, max_sample_tokens, prompt) if texts else []
    llm_s = time.perf_counter() - started
    started = time.perf_counter()
    checks = check_views(engine, taxonomy, texts, batch_size, max_sample_tokens) if texts and check else [None] * len(texts)
    check_s = time.perf_counter() - started
    free = {"texts": CONTENT_FREE, "vectors": free_vectors,
            "llm": llm_views(engine, taxonomy, CONTENT_FREE, batch_size, max_sample_tokens, prompt)}
    if check:
        free["check"] = check_views(engine, taxonomy, CONTENT_FREE, batch_size, max_sample_tokens)
    new = {r["row"]: {**{k: v for k, v in r.items() if k != "text"}, "chars": len(r["text"]), **vec, "llm": lv,
                      **({"check": ck} if check else {})}
           for r, vec, lv, ck in zip(todo, vectors, llm, checks)}
    payload = {"set": spec.name, "split": split, "taxonomy": taxonomy.names, "spec": spec.taxonomy, "described": described,
               "model": engine.model_name, "prompt": prompt, "engine": engine.info(), "vector_s": round(vector_s, 1), "llm_s": round(llm_s, 1),
               "check_s": round(check_s, 1),
               "machine": common.machine_info(), "reused_rows": len(rows) - len(todo),
               "content_free": free,
               "rows": [new.get(r["row"]) or known[r["row"]] for r in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")
    say(f"{spec.name} {split}: done in {llm_s:.0f} s LLM + {check_s:.0f} s check + {vector_s:.0f} s vectors -> {path}")
    if check:
        add_checks(spec, path, data_dir, engine, batch_size, max_sample_tokens)  # rows reused from a file without them
    return path


def with_other_check(spec: ViewSet, split: str, data_dir: Path, engine, batch_size: int, max_sample_tokens: int,
                     prompt: str, cap: int | None, check: bool, check_prompt: str, top_k: int | None = None) -> Path:
    """`collect` for a check prompt other than check-v1: the label and vector views of check-v1's folder
    without its check, then (with `check`) this prompt's check added."""
    folder = OUT / views_folder(engine.model_name, max_sample_tokens, prompt, cap, check_prompt)
    path = folder / split / f"{spec.name}.json"
    if not path.exists():
        base = collect(spec, split, data_dir, engine, batch_size, max_sample_tokens, prompt, cap, check=False)
        payload = without_check(json.loads(base.read_text()))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**payload, "check_prompt": check_prompt}), encoding="utf-8")
    if check:
        add_checks(spec, path, data_dir, engine, batch_size, max_sample_tokens, check_prompt, top_k)
    return path


def without_check(payload: dict) -> dict:
    """A views payload with its yes/no check (rows, content-free inputs, timing) left out."""
    drop = ("check_s", "check_machine", "check_prompt")
    return {**{k: v for k, v in payload.items() if k not in drop},
            "content_free": {k: v for k, v in payload["content_free"].items() if k != "check"},
            "rows": [{k: v for k, v in r.items() if k != "check"} for r in payload["rows"]]}


def complete(path: Path, check: bool = True) -> bool:
    """A views file collected with every view, the yes/no check included unless `check` is False."""
    if not path.exists():
        return False
    return not check or has_check(json.loads(path.read_text()))


def has_check(payload: dict) -> bool:
    """Whether a set's views hold the yes/no check for every row and the content-free inputs (`--no-check` leaves it out)."""
    return "check" in payload.get("content_free", {}) and all("check" in r for r in payload["rows"])


def open_engine(model: str):
    from offline_cov.engines.vllm_engine import VllmEngine
    from offline_cov.registry import load_registry

    return VllmEngine(load_registry().get(model))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["dev", "test", "pool"], required=True,
                   help="pool: every single-label row, for bench/calibration.py's mixtures")
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated, from: " + ", ".join(SETS))
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", default=CPU_DEFAULT_MODEL)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-sample-tokens", type=int, default=CPU_SAMPLE_TOKENS,
                   help="the sample cut, by default the CPU default's (views go to <model>@cut<N>/ unless N is 1536)")
    p.add_argument("--prompt", default=PROMPT_VERSION,
                   help=f"comma-separated label prompts, from: {', '.join(LABEL_PROMPTS)} (others go to <model>+<prompt>/)")
    p.add_argument("--cap", type=int, help="at most this many dev rows a set (1.5x test), for every set (folder ~cap<N>)")
    p.add_argument("--check-prompt", default=CHECK_PROMPT_VERSION, choices=list(CHECK_PROMPTS),
                   help="the yes/no check's prompt; others than check-v1 go to <folder>+<check prompt>/, their "
                        "other views copied from check-v1's folder")
    p.add_argument("--check-top-k", type=int,
                   help="with --check-prompt: ask the check only each row's k likeliest categories by the other experts, "
                        "as the product does (bench.choose then scores no every-category column)")
    p.add_argument("--no-check", action="store_true",
                   help="leave out the yes/no check (most of the time on a CPU without AMX); a later run without it adds it")
    args = p.parse_args(argv)
    wanted, prompts = [SETS[n] for n in args.sets.split(",")], args.prompt.split(",")
    unknown = [x for x in prompts if x not in LABEL_PROMPTS]
    if unknown:
        p.error(f"unknown --prompt {unknown}; choose from {', '.join(LABEL_PROMPTS)}")
    todo = [(s, x) for x in prompts for s in wanted
            if not complete(OUT / views_folder(args.model, args.max_sample_tokens, x, args.cap, args.check_prompt)
                            / args.split / f"{s.name}.json", check=not args.no_check)]
    if not todo:
        say("every set already collected")
        return
    started = time.perf_counter()
    engine = open_engine(args.model)
    say(f"engine up in {time.perf_counter() - started:.0f} s")
    try:
        for spec, prompt in todo:
            collect(spec, args.split, args.data_dir, engine, args.batch_size, args.max_sample_tokens, prompt, args.cap,
                    check=not args.no_check, check_prompt=args.check_prompt, check_top_k=args.check_top_k)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
