"""Accuracy metrics for labels and coverage reports. Pure functions of their arguments, no I/O.

Labels are plain strings. A sample the model failed to label is best passed as a
prediction outside the label set (the bench uses `FAILED`), so it counts as wrong
everywhere and shows as its own column of the confusion matrix.

Conventions where a ratio has no denominator: precision of a category never
predicted is 0 (as scikit-learn's `zero_division=0`); for sets (gaps,
over-represented) an empty prediction claims nothing false, so its precision is 1,
and recall is 1 only when there was nothing to find.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

FAILED = "(failed)"


def _check_pair(y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")


def _labels(y_true: Sequence[str], y_pred: Sequence[str], labels: Iterable[str] | None) -> list[str]:
    return list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))


def _ratio(num: float, den: float, empty: float = 0.0) -> float:
    return num / den if den else empty


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Share of predictions equal to the truth; 0 for no samples."""
    _check_pair(y_true, y_pred)
    return _ratio(sum(t == p for t, p in zip(y_true, y_pred)), len(y_true))


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Iterable[str] | None = None
) -> dict[str, dict[str, int]]:
    """`matrix[true][predicted]` counts. Predicted values outside `labels` get their own columns."""
    _check_pair(y_true, y_pred)
    rows = _labels(y_true, y_pred, labels)
    cols = rows + sorted(set(y_pred) - set(rows))
    matrix = {t: {p: 0 for p in cols} for t in rows + sorted(set(y_true) - set(rows))}
    for t, p in zip(y_true, y_pred):
        matrix[t][p] += 1
    return matrix


def per_category(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Iterable[str] | None = None
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support (true count) of each label."""
    _check_pair(y_true, y_pred)
    out = {}
    for label in _labels(y_true, y_pred, labels):
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred))
        predicted = sum(p == label for p in y_pred)
        support = sum(t == label for t in y_true)
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        out[label] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": support,
        }
    return out


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Iterable[str] | None = None) -> float:
    """Unweighted mean of the per-label F1 over `labels` (default: every label seen)."""
    stats = per_category(y_true, y_pred, labels)
    return _ratio(sum(s["f1"] for s in stats.values()), len(stats))


def cohen_kappa(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Agreement beyond chance: (p_o - p_e) / (1 - p_e). 1 = perfect, 0 = chance level.

    When chance agreement is already 1 (both raters always give the same single
    label) kappa is undefined; it is returned as 1.0 if they agree, else 0.0.
    """
    _check_pair(y_true, y_pred)
    n = len(y_true)
    if n == 0:
        return 0.0
    observed = accuracy(y_true, y_pred)
    true_counts, pred_counts = Counter(y_true), Counter(y_pred)
    expected = sum(true_counts[k] * pred_counts[k] for k in true_counts) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def label_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Iterable[str] | None = None) -> dict:
    """All label metrics at once, as the bench records them."""
    labels = _labels(y_true, y_pred, labels)
    return {
        "n": len(y_true),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, labels),
        "kappa": cohen_kappa(y_true, y_pred),
        "per_category": per_category(y_true, y_pred, labels),
        "confusion": confusion_matrix(y_true, y_pred, labels),
    }


# ---------------------------------------------------------------- coverage reports


def _as_dict(report) -> dict:
    return report.model_dump() if hasattr(report, "model_dump") else report


def shares(report) -> dict[str, float]:
    """share_percent by category name."""
    return {c["name"]: c["share_percent"] for c in _as_dict(report)["categories"]}


def share_errors(true_report, pred_report) -> dict[str, float]:
    """Predicted minus true share, in percentage points, for every category of either report."""
    true, pred = shares(true_report), shares(pred_report)
    return {name: pred.get(name, 0.0) - true.get(name, 0.0) for name in dict.fromkeys([*true, *pred])}


def set_agreement(true: Iterable[str], pred: Iterable[str]) -> dict[str, float]:
    """Precision and recall of a predicted set of names against the true set (see module doc)."""
    true, pred = set(true), set(pred)
    hits = len(true & pred)
    return {
        "precision": _ratio(hits, len(pred), empty=1.0),
        "recall": _ratio(hits, len(true), empty=1.0),
    }


def _names(report, key: str) -> list[str]:
    return [item["category"] for item in _as_dict(report)[key]]


def coverage_errors(true_report, pred_report) -> dict:
    """How far a predicted report is from the true one: shares, gaps, over-represented, balance."""
    errors = share_errors(true_report, pred_report)
    absolute = [abs(e) for e in errors.values()]
    true_d, pred_d = _as_dict(true_report), _as_dict(pred_report)
    return {
        "share_error_pp": errors,
        "share_mae_pp": _ratio(sum(absolute), len(absolute)),
        "share_max_abs_pp": max(absolute, default=0.0),
        "gaps": {
            "true": _names(true_d, "gaps"), "predicted": _names(pred_d, "gaps"),
            **set_agreement(_names(true_d, "gaps"), _names(pred_d, "gaps")),
        },
        "over_represented": {
            "true": _names(true_d, "over_represented"), "predicted": _names(pred_d, "over_represented"),
            **set_agreement(_names(true_d, "over_represented"), _names(pred_d, "over_represented")),
        },
        "balance_true": true_d["balance_score"],
        "balance_predicted": pred_d["balance_score"],
        "balance_error": pred_d["balance_score"] - true_d["balance_score"],
    }
