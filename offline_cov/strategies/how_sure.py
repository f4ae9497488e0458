"""How sure a run's shares are: corrected with the user's calibration rows, or widened by the labeler's
measured error when there are none (`report/calibration.py` holds the arithmetic)."""

from __future__ import annotations

from ..data.calibration import CalibrationRow, load_calibration
from ..data.readers import Sample
from ..errors import InputError
from ..labelers.base import LabelRun
from ..labelers.measured import for_model, percent_span
from ..report.calibration import (
    HARD_METHOD,
    MIN_ROWS_PER_CATEGORY,
    REVIEW_METHOD,
    REVIEW_METHOD_HARD,
    SHARE_ERROR_FACTOR,
    SMALL_CALIBRATION_ROWS,
    SOFT_METHOD,
    Correction,
    correct_shares,
    correct_shares_reviewed,
    correct_shares_soft,
    error_interval,
    error_margin,
    shares_of_every_sample,
)
from ..report.contract import DIFFICULTIES, CoverageReport
from ..report.decisions import call_decisions
from ..report.tally import LabelStore, SampleLabel, Tally, balance_score, snippet, wilson_interval
from ..taxonomy import Taxonomy

REVIEW_NEXT = "Before acting on the gaps, run `offline-cov review` and `analyze --calibration`."


def uncalibrated_caveat(measured: dict) -> str:
    """What the bench measured of the report's gap calls for this labeler and model without a review
    (`gaps_without_review` of its `measured` entry), or that it measured nothing for them."""
    gaps = measured.get("gaps_without_review")
    if not gaps:
        default = _cpu_default_gaps()
        return ("Without a review of these labels, a category the data lacks can still get a share, and how many "
                f"real gaps the report names was not measured for {measured.get('labeler', 'this labeler')} with "
                f"this model (the CPU default named {percent_span(default['real_gaps_named_percent'])}% of them on the "
                f"bench's public sets; bench/README.md, bench.decisions). {REVIEW_NEXT}")
    named = percent_span(gaps["real_gaps_named_percent"])
    after = percent_span(gaps["after_200_label_review_percent"])
    absent = gaps.get("absent_category_share_percent")
    who = measured.get("labeler", "this labeler") + (f" ({measured['model']})" if measured.get("model") else "")
    spill = f"an absent category still got up to {percent_span(absent)}% of the labels, and " if absent else ""
    return (f"Without a review of these labels, a category the data lacks can still get a share: on the bench's "
            f"public sets, with {who}, {spill}the report named only {named}% of the real gaps (after a "
            f"200-label review, {after}%; bench/README.md, {gaps['bench_run']}). {REVIEW_NEXT}")


def _cpu_default_gaps() -> dict:
    """The CPU default labeler's measured gap figures (its first `measured` entry: the default model's)."""
    from ..labelers import CPU_DEFAULT_LABELER, get_labeler_class

    return get_labeler_class(CPU_DEFAULT_LABELER).measured[0]["gaps_without_review"]


def decided_shares(run, taxonomy: Taxonomy, tally: Tally, labels: LabelStore, labeler) -> tuple[dict[str, float] | None, dict]:
    """(shares to decide gaps on, or None for the raw ones; the metadata block that says how sure)."""
    if run.opts.calibration is None:
        return None, {}
    return calibrated(run.opts.calibration, taxonomy, run.plan.stream(), tally, labels, run.opts.seed, run.warnings,
                      lambda texts: _label_texts(texts, labeler or run.open_labeler(taxonomy)))


def calibrated(path, taxonomy: Taxonomy, samples, tally: Tally, labels: LabelStore, seed: int, warnings: list[str],
               label_texts=None) -> tuple[dict[str, float] | None, dict]:
    """The calibration file at `path` read and its rows matched to `labels` (`calibration_labels`, over
    `samples`): the corrected shares when the correction can be trusted, and the `calibration` block;
    what went wrong goes to `warnings`. `analyze` (`decided_shares`) and `merge` both call it."""
    rows = load_calibration(path, taxonomy)
    matched, unmatched = calibration_labels(rows, samples, labels, label_texts)
    names = taxonomy.names
    if unmatched:
        warnings.append(f"{len(unmatched)} calibration row(s) name a sample this run did not label "
                        f"({path}, line {_line_list(unmatched)}); left out")
    if not matched:
        warnings.append("no calibration row could be matched to a label; shares are not corrected")
        return None, {"calibration": {"file": str(path), "rows": len(rows), "matched": 0}}
    _check_each_sample_once(path, matched)
    warnings.extend(_outside_rows(path, matched))
    warnings.extend(_shown_other_labels(path, matched))
    correction = correction_of(tally, labels, matched, names, seed)
    block = {"file": str(path), "rows": len(rows), "matched": len(matched), **correction.to_json()}
    if not correction.trustworthy:
        warnings.append("the calibration-corrected shares are not trustworthy ("
                        + "; ".join(correction.reasons) + "); gaps and over-representation use the raw shares; "
                        + _to_apply_it(correction))
        return None, {"calibration": block}
    warnings.extend(_thin_warning(correction) + _small_warning(correction))
    block["corrected_balance_score"] = balance_score(correction.fractions or correction.corrected, taxonomy.targets())
    return correction.corrected, {"calibration": block}


def _small_warning(correction: Correction) -> list[str]:
    """A warning for an EM correction from fewer than SMALL_CALIBRATION_ROWS rows: what the bench measured there."""
    if correction.method not in (HARD_METHOD, SOFT_METHOD) or correction.calibration_rows >= SMALL_CALIBRATION_ROWS:
        return []
    return [f"the correction rests on {correction.calibration_rows} calibration rows: on the bench's public sets, "
            f"corrections from 20-30 rows came to 0.80-1.01 of the raw shares' error and their 95% intervals held "
            f"the true share in only 86-90% of cases (at {SMALL_CALIBRATION_ROWS} rows: 0.69-0.79 and 91-93%; "
            "100-300 rows is the intended size; bench/README.md)"]


def _thin_warning(correction: Correction) -> list[str]:
    """A warning naming the categories whose corrected share rests on a handful of calibration rows
    (`Correction.thin_that_matters`): the correction is applied, but their intervals are wide."""
    thin = correction.thin_that_matters()
    if not thin:
        return []
    each = "; ".join(f"{n}: {correction.rows_per_category.get(n, 0)} row(s), corrected {correction.corrected[n]:g}% "
                     f"(95% interval {correction.ci95[n][0]:g}-{correction.ci95[n][1]:g}%)" for n in thin)
    return [f"the corrected shares of {len(thin)} category(ies) rest on fewer than {MIN_ROWS_PER_CATEGORY} calibration "
            f"rows truly in them ({each}); the correction is applied with those wide intervals; calibration rows "
            f"truly in {', '.join(thin)} would narrow them"]


def _check_each_sample_once(path, matched: list[tuple[CalibrationRow, SampleLabel]]) -> None:
    """Refuse two rows that name one sample of the data, one by index and one by its text (the file's
    own check sees only two indexes or two texts): it would count twice in the correction."""
    seen: dict[int, int] = {}
    for row, lab in matched:
        if lab.index >= 0 and lab.index in seen:
            raise InputError(path, f"names the same sample as line {seen[lab.index]} (one by index, one by its "
                                   "text); keep one row per sample", line=row.line)
        seen.setdefault(lab.index, row.line)


def _outside_rows(path, matched: list[tuple[CalibrationRow, SampleLabel]]) -> list[str]:
    """A warning for rows by text that match no sample's instruction exactly: labeled on their own, as
    texts from outside the data; a row meant for a sample here whose text differs (a space, a capital)
    is one of them."""
    outside = [row for row, lab in matched if lab.index < 0]
    if not outside:
        return []
    return [f"{len(outside)} calibration row(s) by text match no sample's instruction exactly ({path}, line "
            f"{_line_list(outside)}): they were labeled on their own as texts from outside the data; if they are "
            "samples of this data, copy their text exactly (spaces and capitals count) or name them by index"]


def _shown_other_labels(path, matched: list[tuple[CalibrationRow, SampleLabel]]) -> list[str]:
    """A warning when reviewed rows were shown a label this run did not give (a review of another run's
    labels): they are not a review of this run, so they get the EM correction, not the review's."""
    other = [row for row, lab in matched if row.proposed is not None and row.proposed != lab.categories[0]]
    if not other:
        return []
    return [f"{len(other)} calibration row(s) ({path}, line {_line_list(other)}) were shown a label this run did not give "
            "(a review of another run's labels): the rows are not a review of this run, so they got the EM "
            "correction instead of the review's; for the review's, run offline-cov review on this run's "
            "--labels file with a new -o"]


def _line_list(rows: list[CalibrationRow], shown: int = 10) -> str:
    """The rows' line numbers for a warning: the first `shown`, then an ellipsis."""
    return ", ".join(str(row.line) for row in rows[:shown]) + (", ..." if len(rows) > shown else "")


def _to_apply_it(correction: Correction) -> str:
    """The next step for a correction that was not applied: more rows of the same review, or a review."""
    if correction.method in (REVIEW_METHOD, REVIEW_METHOD_HARD):
        return (f"to apply it, review more rows of those labels until each has {MIN_ROWS_PER_CATEGORY} or more: "
                "rerun offline-cov review with a larger -n (it extends the review), or fill in more rows of an "
                "exported CSV")
    return ("to apply it, add calibration rows truly in the categories named above, or review this run's labels "
            "with offline-cov review (rows drawn within each label; its correction needs no confusion matrix)")


def correction_of(tally: Tally, labels: LabelStore, matched: list[tuple[CalibrationRow, SampleLabel]],
                  names: list[str], seed: int) -> Correction:
    """A review of this run's labels gets the stratified correction (`correct_shares_reviewed`);
    other rows the soft EM correction when the labeler gave every sample (and every calibration row)
    its probabilities, else the hard-label one (bench/calibration.py measured all three)."""
    pairs = [(row.category, lab.categories[0]) for row, lab in matched]
    if {lab.index for _, lab in matched} == {lab.index for lab in labels}:
        return shares_of_every_sample(tally.primary_counts(), pairs, names)
    rows = labels.probability_rows()
    given = [lab.probabilities for _, lab in matched]
    soft = rows is not None and all(p is not None and len(p) == rows.shape[1] for p in given)
    if is_review_of(matched):
        return correct_shares_reviewed(tally.primary_counts(), pairs, names, rows if soft else None,
                                       given if soft else None, seed=seed)
    if soft:
        return correct_shares_soft(tally.primary_counts(), pairs, rows, given, names, seed=seed)
    return correct_shares(tally.primary_counts(), pairs, names, seed=seed)


def is_review_of(matched: list[tuple[CalibrationRow, SampleLabel]]) -> bool:
    """Whether the rows are `offline-cov review`'s sample of these labels: every row names a sample by
    index and the label it was shown is the one this run gave (so the rows are random within each label)."""
    return bool(matched) and all(row.index is not None and row.proposed == lab.categories[0] for row, lab in matched)


def calibration_labels(rows: list[CalibrationRow], samples, labels, label_texts=None) -> tuple[list, list]:
    """(calibration row, the labeler's label) for every row that can be matched, and the rows that could not.
    A row names its sample by index, or by text matched against `samples`' instructions; `label_texts`
    labels the texts that are not among them (None: they stay unmatched)."""
    texts = {r.text for r in rows if r.text is not None}
    index_of = {s.instruction: s.index for s in samples if s.instruction in texts} if texts else {}
    wanted = {r.index for r in rows if r.index is not None} | set(index_of.values())
    known = {lab.index: lab for lab in labels if lab.index in wanted}
    missing = [t for t in texts if t not in index_of]
    own = label_texts(missing) if missing and label_texts is not None else {}
    matched, unmatched = [], []
    for row in rows:
        label = known.get(row.index) if row.index is not None else known.get(index_of.get(row.text), own.get(row.text))
        if label is None:
            unmatched.append(row)
        else:
            matched.append((row, label))
    return matched, unmatched


def _label_texts(texts: list[str], labeler) -> dict[str, SampleLabel]:
    """The labeler's labels of texts that are not in the dataset."""
    samples = [Sample(-1 - i, (("user", t),)) for i, t in enumerate(texts)]
    found = {lab.index: lab for lab in labeler.label_batch(samples, LabelRun())}
    return {t: found[s.index] for t, s in zip(texts, samples) if s.index in found}


def share_intervals(run, report: CoverageReport, calibration: dict, taxonomy: Taxonomy) -> dict:
    """Each share's 95% interval and what it rests on (`intervals_of`), for this run's labeler."""
    return intervals_of(report, calibration, taxonomy, run.opts.thresholds, measured_accuracy(run))


def intervals_of(report: CoverageReport, calibration: dict, taxonomy: Taxonomy, thresholds, measured: dict) -> dict:
    """Each share's 95% interval and what it rests on (the calibration's bootstrap, else the sampling
    interval widened by the labeler's accuracy as measured on the bench's public labeled sets), and
    where the report's gap and over-representation calls stand against them (`with_calls`)."""
    block = calibration.get("calibration", {})
    if block.get("corrected_ci95") and block.get("trustworthy"):
        block = calibrated_intervals(block, widened_intervals(report, measured))
    else:
        block = widened_intervals(report, measured)
    return with_calls(block, report, taxonomy, thresholds)


def calibrated_intervals(calibration: dict, widened: dict) -> dict:
    """A trusted correction's bootstrap intervals, except, for the EM corrections, a category without a
    single calibration row truly in it: the bootstrap never draws one, so its interval would say nothing
    of the labeler's errors there; it keeps the interval without calibration (`widened`) instead. (A
    review counts its rows per label: a label without rows has no samples, and the other labels' rows
    tell its true share.)"""
    em = calibration.get("method") not in (REVIEW_METHOD, REVIEW_METHOD_HARD)
    rows = (calibration.get("calibration_rows_per_category") or {}) if em else {}
    unseen = [n for n, count in rows.items() if count == 0]
    ci95 = {n: widened["ci95"][n] if n in unseen and n in widened["ci95"] else v
            for n, v in calibration["corrected_ci95"].items()}
    basis = "calibration: bootstrap over the calibration rows and the labels (95%)"
    if unseen:
        basis += (f"; {', '.join(unseen)}, with no calibration row truly in it, keeps the interval without "
                  f"calibration ({widened['basis']})")
    return {"basis": basis, "ci95": ci95, "trustworthy": True}


def with_calls(block: dict, report: CoverageReport, taxonomy: Taxonomy, thresholds) -> dict:
    """`block` with `calls`: the report's gaps and over-represented categories split into those whose whole
    95% interval is past the line (clear) and those whose interval crosses it (crossing), and the categories
    it does not call whose interval crosses the line (possible); `report/decisions.py` says what each means."""
    shares = {c.name: c.share_percent for c in report.categories}
    targets = {name: round(t, 2) for name, t in taxonomy.targets().items()}
    calls = call_decisions(shares, block.get("ci95") or {}, targets, thresholds.gap, thresholds.over,
                           gaps_by_share=not taxonomy.inferred, called_gaps={g.category for g in report.gaps},
                           called_over={o.category for o in report.over_represented})
    return {**block, "calls": calls}


def widened_intervals(report: CoverageReport, measured: dict) -> dict:
    """Each share's sampling interval widened by `error_margin` of the lowest accuracy in `measured`
    (what the bench measured for the run's labeler and model; the sampling interval alone when it has none)."""
    total = report.total_samples_analyzed
    low, factor, margin = margin_of(measured)
    basis = (f"sampling interval widened by {margin:g} points each way: {factor:g} x (1 - the labeler's "
             f"lowest accuracy on the bench's public sets, {low:g}), {_margin_held(measured)} (bench/README.md)"
             if low is not None else "sampling interval only: this labeler's accuracy was not measured with this model")
    return {"basis": basis, "labeler_measured": measured, "margin_points": margin, "caveat": uncalibrated_caveat(measured),
            "ci95": {c.name: list(error_interval(c.count, total, margin)) for c in report.categories}}


def margin_of(measured: dict) -> tuple[float | None, float, float]:
    """(lowest accuracy, factor, margin in points) of the no-calibration interval for a labeler's `measured`
    entry: the factor its own margin study chose where it has one (`interval_coverage`), else
    SHARE_ERROR_FACTOR (chosen on `ensemble`'s); no margin when its accuracy was never measured."""
    low = min(measured["accuracy"].values()) if measured.get("accuracy") else None
    factor = (measured.get("interval_coverage") or {}).get("factor", SHARE_ERROR_FACTOR)
    return low, factor, error_margin(low, factor)


def _margin_held(measured: dict) -> str:
    """How often the bench saw such an interval hold the true share: this labeler's own margin study
    where it has one, else the one the factor was chosen on (session 20's, `ensemble`'s)."""
    held = measured.get("interval_coverage")
    if not held:
        return ("a margin measured with ensemble, not with this labeler (it held 95% of the true shares on mixtures "
                "of the bench's dev rows and 91-99.8% on its test rows)")
    return (f"the margin that held {percent_span(held['dev_percent'])}% of the true shares on mixtures of the "
            f"bench's dev rows and {percent_span(held['test_percent'])}% on its test rows with this labeler")


def measured_accuracy(run) -> dict:
    """What the bench measured for this labeler (and model): which sets, which numbers, which run."""
    cls = run.labeler_cls
    return {"labeler": cls.name, **for_model(getattr(cls, "measured", ()), run.model_read(), cls.reads_llm)}


ONE_CLASS_SHARE = 0.8  # a difficulty mix with one class above this share is flagged
EXAMPLE_CHARS = 240  # characters of each example the HTML report lists per category


def mix_of(labels) -> tuple[dict, str | None]:
    """(the difficulty counts with the one-class flag, the warning a flagged mix of 20+ samples gets)."""
    from collections import Counter

    counts = Counter(label.difficulty for label in labels)
    total = sum(counts.values())
    top = max(counts, key=counts.get) if total else None
    flagged = bool(total) and counts[top] / total > ONE_CLASS_SHARE
    warning = None
    if flagged and total >= 20:
        warning = (f"{100 * counts[top] / total:.0f}% of samples were labeled {top}: a difficulty mix this "
                   "one-sided says little (bench/README.md measures each labeler's difficulty)")
    return {**{d: counts.get(d, 0) for d in DIFFICULTIES}, "one_class_over_80": flagged}, warning


def example_block(examples: dict, texts: dict[int, str]) -> dict:
    """Per category, its most and least confident samples with their confidence and a snippet (for the HTML)."""
    def rows(part):
        return [{"index": i, "confidence": c, "text": snippet(texts.get(i, ""), EXAMPLE_CHARS)} for i, c in part]

    return {name: {"most_confident": rows(e["most"]), "least_confident": rows(e["least"])} for name, e in examples.items()}


def example_texts(plan, tally: Tally) -> tuple[dict, dict[int, str]]:
    """(the tally's most and least confident samples per category, the instructions of those and of
    the representative examples), read from the dataset in one pass."""
    examples = tally.examples()
    wanted = set(tally.representatives().values()) | {i for e in examples.values() for part in e.values() for i, _ in part}
    return examples, plan.texts(wanted)


def sampling_intervals(plan, report: CoverageReport) -> dict:
    """`share_ci95`, each share's 95% Wilson interval, when only a sample of the file was analyzed."""
    if plan.analyzed >= plan.scan.count:
        return {}
    return {"share_ci95": {c.name: wilson_interval(c.count, report.total_samples_analyzed) for c in report.categories}}
