"""Markdown tables of bench results."""

from __future__ import annotations

from .common import machine_line, md_table


def header(payload: dict, title: str) -> list[str]:
    engine = payload.get("engine") or {}
    versions = ", ".join(f"{k} {v}" for k, v in payload.get("versions", {}).items())
    return [
        f"## {title}",
        "",
        f"- when: {payload.get('when')}",
        f"- machine: {machine_line(payload['machine'])}",
        f"- model: `{payload.get('model')}`; engine: {engine.get('engine')} "
        f"(structured output: {engine.get('structured_output_backend')}, device {engine.get('device')})",
        f"- versions: {versions}",
    ]


def _label_row(name: str, run: dict) -> list:
    m = run["metrics"]
    return [name, m["n"], m["labeled"], m["accuracy"], m["macro_f1"], m["kappa"], m["any_category_hit_rate"]]


def labeling_section(payload: dict) -> list[str]:
    local, baseline, data = payload["labeling"], payload["baseline"], payload["data"]
    lines = ["", f"### Labeling: `{data['path'].split('/')[-1]}`, label field `{data['label_field']}`, "
             f"{local['metrics']['n']} rows (seed {data['seed']})", ""]
    rows = [_label_row(f"local `{local['model']}`", local)]
    if baseline.get("available"):
        rows.append(_label_row(f"frontier `{baseline['model']}`", baseline))
    lines.append(md_table(["labels by", "n", "labeled", "accuracy", "macro-F1", "kappa", "true in any label"], rows))
    if baseline.get("available"):
        agree = baseline["agreement_with_local"]
        lines += ["", f"Local vs frontier: agree on {agree['accuracy']:.3f} of {agree['n_both_labeled']} "
                      f"samples both labeled (kappa {agree['kappa']:.3f})."]
        if baseline.get("note"):
            lines.append(f"Note: {baseline['note']}.")
    else:
        lines += ["", baseline.get("reason", "Frontier baseline: not available.")]
    lines += ["", "Per category (local):", ""]
    per = local["metrics"]["per_category"]
    lines.append(md_table(["category", "precision", "recall", "F1", "support"],
                          [[n, s["precision"], s["recall"], s["f1"], s["support"]] for n, s in per.items()]))
    lines += ["", "Confusion (rows: true, columns: predicted by the local model):", ""]
    conf = local["metrics"]["confusion"]
    cols = list(next(iter(conf.values())).keys()) if conf else []
    lines.append(md_table(["true \\ predicted", *cols], [[t, *[r[c] for c in cols]] for t, r in conf.items()]))
    diff = local["metrics"].get("difficulty")
    if diff:
        lines += ["", f"Difficulty agreement (local, n={diff['n']}): accuracy {diff['accuracy']:.3f}, "
                      f"kappa {diff['kappa']:.3f}, within one step {diff['within_one_step']:.3f}."]
    return lines


def _shares(report: dict) -> str:
    return " / ".join(f"{c['share_percent']:g}" for c in report["categories"])


def coverage_section(payload: dict) -> list[str]:
    runs = payload["coverage"]
    if not runs:
        return []
    lines = ["", f"### Coverage: mixtures of known composition (shares in %, order {' / '.join(payload['taxonomy'])})", ""]
    rows = []
    for r in runs:
        if r["status"] != "ok":
            rows.append([r["mixture"], r["strategy"], _shares(r["true_report"]), r["status"], "", "", "", "", "", r["error"][:80]])
            continue
        e = r["errors"]
        rows.append([
            r["mixture"], r["strategy"], _shares(r["true_report"]), _shares(r["report"]),
            e["share_mae_pp"], e["share_max_abs_pp"],
            f"{e['gaps']['precision']:.2f} / {e['gaps']['recall']:.2f}",
            f"{e['over_represented']['precision']:.2f} / {e['over_represented']['recall']:.2f}",
            f"{e['balance_true']:.2f} / {e['balance_predicted']:.2f}",
            f"{r['analyzed']} analyzed, {r['seconds']} s",
        ])
    lines.append(md_table(
        ["mixture", "strategy", "true shares", "reported shares", "MAE pp", "max pp",
         "gaps P / R", "over-rep. P / R", "balance true / reported", "notes"], rows))
    return lines


def accuracy_markdown(payload: dict) -> str:
    lines = header(payload, "Accuracy bench")
    lines += labeling_section(payload)
    lines += coverage_section(payload)
    return "\n".join(lines)


def speed_markdown(payload: dict) -> str:
    lines = header(payload, "Speed bench")
    lines += ["", f"{payload['n_samples']} samples from `{payload['data'].split('/')[-1]}`, "
                  f"taxonomy {', '.join(payload['taxonomy'])}; max {payload['max_tokens']} output tokens per label.", ""]
    rows = [[r["name"], r["samples"], r["seconds"], r["samples_per_s"], r["output_tokens"], r["output_tokens_per_s"],
             r.get("valid_labels", "")] for r in payload["runs"]]
    lines.append(md_table(["run", "samples", "seconds", "samples/s", "output tokens", "output tokens/s",
                           "valid labels"], rows))
    if payload.get("ratios"):
        lines += ["", "Ratios:", ""]
        lines += [f"- {name}: {value:.2f}x" if isinstance(value, float) else f"- {name}: {value}"
                  for name, value in payload["ratios"].items()]
    if payload.get("notes"):
        lines += ["", *[f"Note: {n}" for n in payload["notes"]]]
    return "\n".join(lines)
