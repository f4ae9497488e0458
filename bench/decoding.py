"""Decoding settings of the vLLM labeler side by side, on the DEV split only.

Three settings of one model (default: the packaged Qwen2.5-Coder-1.5B):
  full/ws-forbidden   the product's prompt and {"primary","difficulty","also"} schema, xgrammar with
                      disable_any_whitespace (the engine's default when this was written)
  full/ws-allowed     the same, whitespace between JSON tokens allowed
  category/ws-allowed a one-field {"category": enum} schema (the product's prompt without the difficulty
                      rubric, asking for "category"), whitespace allowed; its answers also carry the
                      logprobs of the chosen category (`--logprobs K`), for a calibration table

vLLM takes the whitespace setting once per LLM, so the run builds two LLMs, one after the other
(the first is closed before the second). Samples are truncated as the product's Labeler does;
a failed answer is retried once as the product does (twice the tokens when cut off).

Example (about 20 minutes on a 2-core CPU):
  HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=2 .venv/bin/python -m bench.decoding --limit 150
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from offline_cov.metrics import label_metrics
from offline_cov.taxonomy import Taxonomy, load_taxonomy_file

from . import common
from .data import subsample
from .labelers import DEFAULT_DATA, HERE, SETS, load_set, split

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
SETTINGS = ("full/ws-forbidden", "full/ws-allowed", "category/ws-allowed")
FAILED = "(failed)"


def say(message: str) -> None:
    print(f"[decoding {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- what the machine does meanwhile


class Watch:
    """Samples the 1-minute load average and the RSS of this process and its children every few seconds."""

    def __init__(self, every: float = 5.0):
        self.every, self.loads, self.peak_rss_mib = every, [], 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.loads.append(os.getloadavg()[0])
            self.peak_rss_mib = max(self.peak_rss_mib, tree_rss_mib())
            self._stop.wait(self.every)

    def summary(self) -> dict:
        loads = self.loads or [os.getloadavg()[0]]
        return {"load1_min": round(min(loads), 2), "load1_mean": round(sum(loads) / len(loads), 2),
                "load1_max": round(max(loads), 2), "load_samples": len(loads),
                "peak_rss_mib_this_process_and_children": round(self.peak_rss_mib)}


def tree_rss_mib() -> float:
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        me = psutil.Process()
        procs = [me] + me.children(recursive=True)
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20
    except psutil.Error:
        return 0.0


# ---------------------------------------------------------------- prompts and parsing


def category_schema(taxonomy: Taxonomy) -> dict:
    return {"type": "object", "properties": {"category": {"type": "string", "enum": taxonomy.names}},
            "required": ["category"], "additionalProperties": False}


def category_system_prompt(taxonomy: Taxonomy) -> str:
    """The product's labeling prompt with the difficulty rubric dropped and one answer field."""
    from offline_cov.prompts import DIFFICULTY_RUBRIC, label_system_prompt

    text = label_system_prompt(taxonomy).replace(f"{DIFFICULTY_RUBRIC}\n\n", "")
    start = text.index("Answer in JSON.")
    return text[:start] + 'Answer in JSON. "category": the single category that fits the sample best.'


def category_messages(taxonomy: Taxonomy, cut_text: str) -> list[dict]:
    from offline_cov.prompts import escape_sample

    return [{"role": "system", "content": category_system_prompt(taxonomy)},
            {"role": "user", "content": f"<sample>\n{escape_sample(cut_text)}\n</sample>"}]


def parse_category(taxonomy: Taxonomy, text: str) -> str | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    value = data.get("category") if isinstance(data, dict) else None
    return taxonomy.canonical(value) if isinstance(value, str) else None


# ---------------------------------------------------------------- generation


def generate(engine, requests, logprobs: int | None = None) -> list[dict]:
    """Like VllmEngine.generate, keeping token ids and (with `logprobs`) the top-k logprobs of each token."""
    params = []
    for r in requests:
        p = engine._sampling_params(r)
        if logprobs:
            p.logprobs = logprobs
        params.append(p)
    outputs = engine.llm.chat([r.messages for r in requests], params, use_tqdm=False)
    results = []
    for out in outputs:
        c = out.outputs[0] if out.outputs else None
        if c is None:
            results.append({"text": "", "finish_reason": "error", "token_ids": [], "logprobs": None})
            continue
        results.append({"text": c.text, "finish_reason": c.finish_reason or "error",
                        "token_ids": list(c.token_ids), "logprobs": c.logprobs})
    return results


def value_confidence(tokenizer, result: dict, value: str, top: int, names: list[str]) -> dict | None:
    """How sure the model was of the category it wrote.

    p: exp of the summed logprobs of the generated tokens that overlap the enum value in the answer
    (the probability of the path it took). p_mass: p plus, at the first of those tokens, the
    probability of the other top-k tokens that start the chosen value and no other name (other
    spellings of the same choice, e.g. 'cod' for 'coding', after which only that value can follow):
    a closer lower bound of P(category). Also the top-k tokens at that step."""
    ids, lps, text = result["token_ids"], result["logprobs"], result["text"]
    if not lps or not ids:
        return None
    try:
        colon = text.index(":", text.index('"category"'))
        start = text.index('"', colon + 1) + 1
    except ValueError:
        return None
    end = start + len(value)
    offsets = [len(tokenizer.decode(ids[:i])) for i in range(len(ids) + 1)]
    picked = [i for i in range(len(ids)) if offsets[i] < end and offsets[i + 1] > start]
    if not picked:
        return None
    logprob = sum(lps[i][ids[i]].logprob for i in picked)
    first = picked[0]
    ranked = sorted(lps[first].items(), key=lambda kv: kv[1].logprob, reverse=True)[:top]
    head = text[offsets[first]:start]  # what the first value token carries before the value (a quote, say)
    others = 0.0
    for tid, lp in ranked:
        piece = tokenizer.decode([tid])
        if tid == ids[first] or not piece.startswith(head) or len(piece) == len(head):
            continue
        piece = piece[len(head):]
        if [n for n in names if n.startswith(piece) or piece.startswith(n)] == [value]:
            others += math.exp(lp.logprob)
    p_path = math.exp(logprob)
    return {"p": p_path, "logprob": logprob, "p_mass": min(1.0, p_path + others),
            "value_tokens": [tokenizer.decode([ids[i]]) for i in picked],
            "first_token_index": first, "prefix": text[: offsets[first]],
            "top": [{"token": lp.decoded_token if lp.decoded_token is not None else tokenizer.decode([tid]),
                     "logprob": round(lp.logprob, 4)} for tid, lp in ranked]}


def run_setting(setting: str, engine, rows, taxonomy: Taxonomy, args) -> dict:
    """Label every row with one setting, retrying each failure once; predictions, metrics, speed."""
    from offline_cov.data.readers import Sample
    from offline_cov.engines import GenRequest, GenResult
    from offline_cov.generation import retry_request
    from offline_cov.labelers.base import LabelSettings
    from offline_cov.labelers.llm import LLMLabeler

    labeler = LLMLabeler(engine, taxonomy, LabelSettings(batch_size=args.batch_size))
    one_field = setting.startswith("category/")
    requests, truncated = [], 0
    for i, r in enumerate(rows):
        request, cut = labeler.request(Sample(i, (("user", r.text),)))
        truncated += cut
        if one_field:
            cut_text = engine.truncate(r.text, labeler.sample_budget)
            request = GenRequest(category_messages(taxonomy, cut_text), category_schema(taxonomy),
                                 labeler.settings.max_tokens)
        requests.append(request)

    def parse(i: int, res: dict) -> str | None:
        if res["finish_reason"] != "stop":
            return None
        if one_field:
            return parse_category(taxonomy, res["text"])
        label = labeler.parse(i, GenResult(res["text"], res["finish_reason"], len(res["token_ids"])))
        return label.categories[0] if label else None

    want_lp = args.logprobs if one_field and args.logprobs else None
    started = time.perf_counter()
    results = []
    for at in range(0, len(requests), args.batch_size):
        results += generate(engine, requests[at : at + args.batch_size], want_lp)
    first_pass = [parse(i, res) for i, res in enumerate(results)]
    retry_idx = [i for i, p in enumerate(first_pass) if p is None]
    final = list(first_pass)
    finish = [res["finish_reason"] for res in results]
    if retry_idx:
        again = [retry_request(requests[i], GenResult(results[i]["text"], results[i]["finish_reason"]))
                 for i in retry_idx]
        for i, res in zip(retry_idx, generate(engine, again, want_lp)):
            final[i], finish[i] = parse(i, res), res["finish_reason"]
            results[i] = res
    seconds = time.perf_counter() - started

    preds = [p or FAILED for p in final]
    truth = [r.label for r in rows]
    metrics = label_metrics(truth, preds, taxonomy.names)
    samples = []
    for i, (r, res) in enumerate(zip(rows, results)):
        s = {"row": r.row, "true": r.label, "predicted": preds[i], "finish_reason": finish[i],
             "first_pass_failed": first_pass[i] is None, "output_tokens": len(res["token_ids"]), "text": res["text"]}
        if want_lp and final[i]:
            s["confidence"] = value_confidence(engine.tokenizer, res, final[i], args.logprobs, taxonomy.names)
        samples.append(s)
    return {"setting": setting, "n": len(rows), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "kappa": metrics["kappa"], "failed": preds.count(FAILED), "first_pass_failed": len(retry_idx),
            "finish_reasons": dict(Counter(finish)), "truncated": truncated, "label_s": round(seconds, 2),
            "samples_per_s": len(rows) / seconds if seconds else None,
            "output_tokens_mean": sum(s["output_tokens"] for s in samples) / max(len(samples), 1),
            "confusion": metrics["confusion"], "samples": samples,
            "calibration": calibration(samples) if want_lp else None,
            "calibration_mass": calibration(samples, "p_mass") if want_lp else None}


def calibration(samples: list[dict], key: str = "p") -> dict:
    """Accuracy by the probability of the chosen category (answers with a confidence only)."""
    scored = [(s["confidence"][key], s["predicted"] == s["true"]) for s in samples if s.get("confidence")]
    bins = [(0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 0.99), (0.99, 1.0000001)]
    out = {"n": len(scored), "bins": []}
    for lo, hi in bins:
        inside = [(p, ok) for p, ok in scored if lo <= p < hi]
        out["bins"].append({"p_from": lo, "p_to": min(hi, 1.0), "n": len(inside),
                            "mean_p": sum(p for p, _ in inside) / len(inside) if inside else None,
                            "accuracy": sum(ok for _, ok in inside) / len(inside) if inside else None})
    if scored:
        ordered = sorted(scored)
        half = len(ordered) // 2
        low, high = ordered[:half], ordered[half:]
        out["median_p"] = ordered[half][0]
        out["accuracy_below_median"] = sum(ok for _, ok in low) / len(low) if low else None
        out["accuracy_at_or_above_median"] = sum(ok for _, ok in high) / len(high) if high else None
        out["mean_p"] = sum(p for p, _ in scored) / len(scored)
        out["accuracy"] = sum(ok for _, ok in scored) / len(scored)
        out["brier"] = sum((p - ok) ** 2 for p, ok in scored) / len(scored)
    return out


def paired(runs: list[dict]) -> list[dict]:
    """Each setting against the previous one on the same rows: labels that differ, accuracy difference,
    exact McNemar p and bootstrap CI (bench.paired)."""
    from .paired import compare

    by = {r["setting"]: r for r in runs}
    out = []
    for a, b in (("full/ws-allowed", "full/ws-forbidden"), ("category/ws-allowed", "full/ws-allowed")):
        if a not in by or b not in by or [x["row"] for x in by[a]["samples"]] != [x["row"] for x in by[b]["samples"]]:
            continue
        truth = [x["true"] for x in by[a]["samples"]]
        pa, pb = [x["predicted"] for x in by[a]["samples"]], [x["predicted"] for x in by[b]["samples"]]
        out.append({"setting": a, "vs": b, "labels_differ": sum(x != y for x, y in zip(pa, pb)), **compare(truth, pa, pb)})
    return out


# ---------------------------------------------------------------- the run


def open_llm(args, allow_whitespace: bool):
    from offline_cov.engines.vllm_engine import VllmEngine
    from offline_cov.registry import load_registry

    started = time.perf_counter()
    engine = VllmEngine(load_registry().get(args.model), seed=args.seed, allow_whitespace=allow_whitespace)
    load_s = time.perf_counter() - started
    # One untimed request so that the first timed batch does not pay for warm-up.
    from offline_cov.engines import GenRequest

    engine.generate([GenRequest([{"role": "user", "content": "Say hi."}], None, 4)])
    runner = getattr(getattr(engine.llm.llm_engine, "vllm_config", None), "use_v2_model_runner", None)
    return engine, round(load_s, 1), runner


def rerender(path: Path, out_dir: str | None) -> dict:
    """Add the paired comparisons to a saved run and write its Markdown again (no model runs)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    for s in payload["sets"]:
        s["paired"] = paired(s["runs"])
    payload["rerendered"] = f"paired comparisons computed from the saved predictions at {common.now_iso()}"
    text = markdown(payload)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    out = Path(out_dir) if out_dir else common.RESULTS_DIR
    if path.parent.resolve() == out.resolve():
        (out / "decoding-latest.json").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        (out / "decoding-latest.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return payload


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.from_json:
        return rerender(Path(args.from_json), args.out_dir)
    args.settings = [x for x in args.settings.split(",") if x]
    unknown = sorted(set(args.settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    args.limit = args.limit or None
    common.set_bench_env()
    sets = {}
    for name in [x for x in args.sets.split(",") if x]:
        bench_set = SETS[name]
        taxonomy = load_taxonomy_file(HERE / "taxonomies" / bench_set.taxonomy)
        every = split(load_set(bench_set, Path(args.data_dir)), name, "dev")
        sets[name] = (taxonomy, every, subsample(every, args.limit, args.seed))
    runs: dict[str, list] = {name: [] for name in sets}
    info, loads, model_runner = {}, {}, None
    with Watch() as watch:
        for allow, settings in ((False, ["full/ws-forbidden"]), (True, ["full/ws-allowed", "category/ws-allowed"])):
            settings = [s for s in settings if s in args.settings]
            if not settings:
                continue
            say(f"building the LLM, whitespace {'allowed' if allow else 'forbidden'}")
            engine, load_s, model_runner = open_llm(args, allow)
            loads[f"ws-{'allowed' if allow else 'forbidden'}"] = load_s
            info = engine.info()
            try:
                for setting in settings:
                    for name, (taxonomy, _, rows) in sets.items():
                        say(f"{setting} on {name}: {len(rows)} rows")
                        run = run_setting(setting, engine, rows, taxonomy, args)
                        run["load1_at_end"] = round(os.getloadavg()[0], 2)
                        say(f"  accuracy {run['accuracy']:.3f}, macro-F1 {run['macro_f1']:.3f}, failed {run['failed']}, "
                            f"{run['samples_per_s']:.2f} samples/s")
                        runs[name].append(run)
            finally:
                engine.close()
    payload = {"bench": "decoding", "when": common.now_iso(), "machine": common.machine_info(),
               "load_during_run": watch.summary(), "versions": common.versions(), "engine": info,
               "model": args.model, "v2_model_runner": model_runner, "split": "dev", "limit": args.limit,
               "seed": args.seed, "batch_size": args.batch_size, "logprobs": args.logprobs, "load_s": loads,
               "command": sys.argv,
               "sets": [{"set": name, "taxonomy": tax.names, "rows_in_dev": len(every), "rows": len(rows),
                         "true_mix": dict(Counter(r.label for r in rows)), "runs": runs[name],
                         "paired": paired(runs[name])}
                        for name, (tax, every, rows) in sets.items()]}
    text = markdown(payload)
    json_path, md_path = common.write_results("decoding", payload, text, args.out_dir)
    print(text)
    print(f"\nwrote {json_path} and {md_path}")
    return payload


def markdown(payload: dict) -> str:
    load = payload["load_during_run"]
    v = payload["versions"]
    lines = ["## Decoding settings side by side (dev split)", "",
             f"- when: {payload['when']}",
             f"- machine: {common.machine_line(payload['machine'])}",
             f"- load average (1 min) during the run: min {load['load1_min']}, mean {load['load1_mean']}, "
             f"max {load['load1_max']} ({load['load_samples']} samples); the machine was shared with other "
             "work, so speeds are as measured under that load",
             f"- peak RSS, this process and its children: {load['peak_rss_mib_this_process_and_children']} MiB",
             f"- model: `{payload['model']}` in vLLM {v.get('vllm-cpu') or v.get('vllm')} "
             f"(xgrammar {v.get('xgrammar')}, V2 model runner: {payload['v2_model_runner']}), "
             f"LLM builds: {payload['load_s']} s",
             "- split: `dev` only (sha256(set, row) % 3 == 0); "
             + (f"a seeded subsample of at most {payload['limit']} rows per set (seed {payload['seed']})"
                if payload["limit"] else "every dev row"),
             "- failed: no usable label after the one retry; samples/s: labeling wall time only "
             f"(batches of {payload['batch_size']}), the category setting also returns top-{payload['logprobs']} logprobs",
             ""]
    for s in payload["sets"]:
        lines += [f"### {s['set']} ({s['rows']} of {s['rows_in_dev']} dev rows; {', '.join(s['taxonomy'])})", ""]
        rows = [[r["setting"], r["n"], r["accuracy"], r["macro_f1"], r["failed"], r["first_pass_failed"],
                 round(r["output_tokens_mean"], 1), round(r["samples_per_s"], 2), r["load1_at_end"]] for r in s["runs"]]
        lines += [common.md_table(["setting", "n", "accuracy", "macro-F1", "failed", "failed 1st pass",
                                   "output tokens", "samples/s", "load1 at end"], rows), ""]
        if s.get("paired"):
            prow = [[p["setting"], p["vs"], p["labels_differ"], p["only_a_right"], p["only_b_right"], p["diff"],
                     f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]", p["mcnemar_p"]] for p in s["paired"]]
            lines += ["Paired, same rows:", "",
                      common.md_table(["setting", "vs", "labels differ", "only it right", "only vs right",
                                       "accuracy diff", "95% CI", "McNemar p"], prow), ""]
        for r in s["runs"]:
            cal = r.get("calibration")
            if not cal or not cal["n"]:
                continue
            lines += [f"Probability of the chosen category ({r['setting']}): {cal['n']} answers, "
                      f"mean p {cal['mean_p']:.3f}, accuracy {cal['accuracy']:.3f}, Brier {cal['brier']:.3f}; "
                      f"median p {cal['median_p']:.4f}: accuracy {cal['accuracy_below_median']:.3f} below it, "
                      f"{cal['accuracy_at_or_above_median']:.3f} at or above it", ""]
            brows = [[f"[{b['p_from']}, {b['p_to']})", b["n"], b["mean_p"] if b["mean_p"] is not None else "-",
                      b["accuracy"] if b["accuracy"] is not None else "-"] for b in cal["bins"]]
            lines += [common.md_table(["p of chosen category", "n", "mean p", "accuracy"], brows), ""]
            mass = r.get("calibration_mass")
            if mass and mass["n"]:
                lines += [f"With p_mass (other tokens that can only spell the same category added): mean "
                          f"{mass['mean_p']:.3f}, Brier {mass['brier']:.3f}; median {mass['median_p']:.4f}: accuracy "
                          f"{mass['accuracy_below_median']:.3f} below it, {mass['accuracy_at_or_above_median']:.3f} "
                          "at or above it", ""]
            shown = [x for x in r["samples"] if x.get("confidence")][:3]
            for x in shown:
                c = x["confidence"]
                tops = ", ".join(f"{t['token']!r} {t['logprob']}" for t in c["top"])
                lines.append(f"- row {x['row']} (true {x['true']}, chose {x['predicted']}, p {c['p']:.4f}): "
                             f"after {c['prefix']!r}, top tokens: {tops}")
            lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.decoding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="Folder of the public labeled sets")
    parser.add_argument("--sets", default=",".join(SETS), help=f"Comma-separated, from {', '.join(SETS)}")
    parser.add_argument("--limit", type=int, default=150, help="Seeded subsample of at most N dev rows per set (0: all)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="A models.yaml name")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"Comma-separated, from {', '.join(SETTINGS)}")
    parser.add_argument("--logprobs", type=int, default=5, help="Top-k logprobs for the category setting (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out-dir", default=None, help=f"Where results go (default {common.RESULTS_DIR})")
    parser.add_argument("--from-json", default=None,
                        help="Runs no model: add the paired comparisons to a saved decoding-*.json and rewrite its .md")
    return parser


if __name__ == "__main__":
    main()
