"""Compare two coverage reports: what moved, which gaps closed, whether balance improved."""

from __future__ import annotations

from .contract import CoverageReport
from .render import balance_reading, md_cell


def _delta(before: float | None, after: float | None) -> float:
    return round((after or 0.0) - (before or 0.0), 4)


def _spelling(before: CoverageReport, after: CoverageReport):
    """A category's name as the comparison shows it: names are matched as a taxonomy's are (`Code` in
    one report and `code` in the other are one category; `taxonomy.name_key`), and spelled as the
    later report spells them."""
    from ..taxonomy import name_key

    spelled = {name_key(c.name): c.name for c in before.categories}
    spelled.update({name_key(c.name): c.name for c in after.categories})
    return lambda name: spelled.get(name_key(name), name)


def _respelled(shares: dict[str, float] | None, spell) -> dict[str, float] | None:
    return None if shares is None else {spell(name): share for name, share in shares.items()}


def compare_reports(before: CoverageReport, after: CoverageReport, corrected_before: dict[str, float] | None = None,
                    corrected_after: dict[str, float] | None = None,
                    balances: tuple[float | None, float | None] = (None, None), labeling: list[str] | None = None) -> dict:
    """Per-category share change, gaps closed/opened, over-representation resolved/new, balance change.

    A share is None in a report that lacks the category; its delta counts it as 0.
    A gap counts as closed only when the category is still reported and no longer a gap.
    `corrected_*`: a calibrated run's corrected shares (its metadata's), on which its gaps and
    over-representation were decided; given for either side, every category also gets the shares
    the calls were decided on (`decided_before`, `decided_after`, `decided_delta`), and `balances`
    (each side's balance on its corrected shares, None for the labels' own) give `decided_balance`.
    `labeling`: how the two runs labeled differently (`labeling_differences`), kept as `labeled_differently`.
    """
    spell = _spelling(before, after)
    old = {spell(c.name): c.share_percent for c in before.categories}
    new = {spell(c.name): c.share_percent for c in after.categories}
    corrected_before, corrected_after = _respelled(corrected_before, spell), _respelled(corrected_after, spell)
    names = list(old) + [n for n in new if n not in old]
    decided = {}
    if corrected_before or corrected_after:
        decided = _decided(names, (corrected_before or old, corrected_after or new),
                           (bool(corrected_before), bool(corrected_after)))
        first = balances[0] if corrected_before and balances[0] is not None else before.balance_score
        second = balances[1] if corrected_after and balances[1] is not None else after.balance_score
        decided["decided_balance"] = {"before": first, "after": second, "delta": _delta(first, second)}
    old_gaps = [spell(g.category) for g in before.gaps]
    new_gaps = [spell(g.category) for g in after.gaps]
    old_over = [spell(o.category) for o in before.over_represented]
    new_over = [spell(o.category) for o in after.over_represented]
    return {
        "total_samples": {"before": before.total_samples_analyzed, "after": after.total_samples_analyzed},
        "categories": [
            {"name": n, "before": old.get(n), "after": new.get(n), "delta": _delta(old.get(n), new.get(n))}
            for n in names
        ],
        "categories_added": [n for n in new if n not in old],
        "categories_removed": [n for n in old if n not in new],
        "gaps": {
            "closed": [n for n in old_gaps if n not in new_gaps and n in new],
            "opened": [n for n in new_gaps if n not in old_gaps],
            "still_open": [n for n in old_gaps if n in new_gaps],
        },
        "over_represented": {
            "resolved": [n for n in old_over if n not in new_over and n in new],
            "new": [n for n in new_over if n not in old_over],
            "still": [n for n in old_over if n in new_over],
        },
        "balance": {
            "before": before.balance_score,
            "after": after.balance_score,
            "delta": _delta(before.balance_score, after.balance_score),
        },
        **decided,
        **({"labeled_differently": labeling} if labeling else {}),
    }


def labeling_differences(before: dict | None, after: dict | None) -> list[str]:
    """How two runs labeled their samples differently, by their run metadata: the labeler and its version,
    the model that read the samples, the label prompt, how much of a sample was read, and the
    descriptions of the categories both have. Each moves shares with the data unchanged (on the bundled
    example `fused` put 13 samples of 120 in reasoning where `ensemble` put 25: bench/README.md, session
    15), and the default labeler differs by machine (AMX or not, GPU or not). Empty where either run has
    no metadata; a fact one run does not have (the model of a labeler that reads no LLM) is not compared."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    found = [f"{what} {was}, then {now}" for what, fact in LABELING_FACTS
             if None not in (was := fact(before), now := fact(after)) and was != now]
    redescribed = _redescribed(before, after)
    return found + ([f"descriptions of {', '.join(redescribed)}"] if redescribed else [])


def _labeler(meta: dict):
    info = meta.get("labeler")
    if not isinstance(info, dict):
        return info
    version = info.get("version")
    return f"{info.get('labeler')} ({version})" if version else info.get("labeler")


def _prompt(meta: dict):
    """The label prompt's version, where an LLM read the samples (the metadata names one either way)."""
    return meta.get("prompt_version") if meta.get("model") else None


def _budget(meta: dict):
    budget = meta.get("sample_token_budget")
    return f"{budget} tokens" if budget is not None else None


LABELING_FACTS = (("labeler", _labeler), ("model", lambda meta: meta.get("model")), ("label prompt", _prompt),
                  ("samples read up to", _budget))


def _redescribed(before: dict, after: dict) -> list[str]:
    """The categories of both runs' taxonomies (matched as names are) whose descriptions differ, in the
    later run's order and spelling."""
    from ..taxonomy import name_key

    was, now = _descriptions(before), _descriptions(after)
    earlier = {name_key(n) for n in _taxonomy_names(before)}
    return [n for n in _taxonomy_names(after) if name_key(n) in earlier and was.get(name_key(n)) != now.get(name_key(n))]


def _descriptions(meta: dict) -> dict[str, str]:
    from ..taxonomy import name_key
    from .load import category_descriptions

    return {name_key(n): d for n, d in category_descriptions(meta).items()}


def _taxonomy_names(meta: dict) -> list[str]:
    from .load import metadata_taxonomy

    names = metadata_taxonomy(meta).get("names")
    return [str(n) for n in names] if isinstance(names, list) else []


def _decided(names: list[str], shares: tuple[dict, dict], corrected: tuple[bool, bool]) -> dict:
    """Each category's share the calls were decided on, before and after, and which shares those were."""
    was, now = ({n: side.get(n) for n in names} for side in shares)
    return {"decided_on": {side: "corrected" if c else "labeled" for side, c in zip(("before", "after"), corrected)},
            "decided": [{"name": n, "decided_before": was[n], "decided_after": now[n],
                         "decided_delta": _delta(was[n], now[n])} for n in names]}


def _shown_change(bal: dict) -> str:
    """The change between the two scores as shown (two decimals), so 0.93 -> 0.92 reads -0.01, not -0.00."""
    return f"{round(bal['after'], 2) - round(bal['before'], 2):+.2f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _names(names: list[str]) -> str:
    return ", ".join(md_cell(n) for n in names) or "none"


def compare_markdown(diff: dict) -> str:
    """The comparison as Markdown: a share table, then gaps, over-representation and balance."""
    bal, total = diff["balance"], diff["total_samples"]
    lines = [
        f"## Coverage change: {total['before']} -> {total['after']} samples",
        "",
        *_labeling_lines(diff),
        "| category | before % | after % | change |",
        "|---|---:|---:|---:|",
    ]
    for row in diff["categories"]:
        lines.append(
            f"| {md_cell(row['name'])} | {_share(row['before'])} | {_share(row['after'])} | {row['delta']:+.1f} |"
        )
    lines += _decided_lines(diff)
    gaps, over = diff["gaps"], diff["over_represented"]
    lines += [
        "",
        f"- Balance: {bal['before']:.2f} ({balance_reading(bal['before'])}) -> "
        f"{bal['after']:.2f} ({balance_reading(bal['after'])}), change {_shown_change(bal)}",
        f"- Gaps closed: {_names(gaps['closed'])}",
        f"- Gaps opened: {_names(gaps['opened'])}",
        f"- Gaps still open: {_names(gaps['still_open'])}",
        f"- Over-represented, resolved: {_names(over['resolved'])}",
        f"- Over-represented, new: {_names(over['new'])}",
        f"- Over-represented, still: {_names(over['still'])}",
    ]
    if diff["categories_added"] or diff["categories_removed"]:
        lines.append(
            f"- Categories added: {_names(diff['categories_added'])}; removed: {_names(diff['categories_removed'])}"
        )
    return "\n".join(lines) + "\n"


LABELED_DIFFERENTLY = ("the two reports were labeled differently ({}), so shares can move by the labeling alone, "
                       "the data unchanged; to compare the data, analyze both with the same --labeler, -m and taxonomy file")


def _labeling_lines(diff: dict) -> list[str]:
    """Where the two runs labeled differently: a note above the share table."""
    found = diff.get("labeled_differently")
    return [f"> Note: {md_cell(LABELED_DIFFERENTLY.format('; '.join(found)))}", ""] if found else []


def _decided_lines(diff: dict) -> list[str]:
    """Where a side was calibrated: the shares its gaps and over-representation were decided on."""
    if not diff.get("decided"):
        return []
    sides = diff["decided_on"]
    lines = ["", f"Gaps and over-representation were decided on the {sides['before']} shares before and the "
                 f"{sides['after']} shares after (calibration):", "",
             "| category | decided before % | decided after % | change |", "|---|---:|---:|---:|"]
    for row in diff["decided"]:
        lines.append(f"| {md_cell(row['name'])} | {_share(row['decided_before'])} | {_share(row['decided_after'])} | "
                     f"{row['decided_delta']:+.1f} |")
    bal = diff.get("decided_balance")
    if bal:
        lines += ["", f"Balance on the shares decided on: {bal['before']:.2f} ({balance_reading(bal['before'])}) -> "
                      f"{bal['after']:.2f} ({balance_reading(bal['after'])}), change {_shown_change(bal)}"]
    return lines
