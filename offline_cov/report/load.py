"""Read a report.json and its run metadata back, with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from ..errors import InputError, validation_problems
from .contract import CoverageReport
from .metadata import check_shape


def _read_json(path: str | Path, what: str):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the {what} ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg}); pass the {what} that `offline-cov analyze` wrote",
                         line=exc.lineno) from None


def load_report(path: str | Path) -> CoverageReport:
    """A report.json, validated against the contract."""
    data = _read_json(path, "report")
    if isinstance(data, dict) and isinstance(data.get("tool"), dict) and data["tool"].get("name") == "offline-cov":
        raise InputError(path, "this is a run's metadata, not its report: pass the report.json written beside it")
    if not isinstance(data, dict):
        raise InputError(path, f"not a coverage report: a JSON {type(data).__name__} where the report is an object "
                               "with 'categories', 'total_samples_analyzed', ...")
    try:
        report = CoverageReport.model_validate(data)
    except ValidationError as exc:
        raise InputError(path, f"not a coverage report: {'; '.join(validation_problems(exc))}") from None
    _check_names_once(report, path)
    return report


def _check_names_once(report: CoverageReport, path) -> None:
    """Refuse a report that names a category twice (in any case or Unicode spelling): its rows could
    not be told apart when it is rendered or compared."""
    from ..taxonomy import named_twice

    if twice := named_twice([c.name for c in report.categories]):
        raise InputError(path, f"not a coverage report: {twice}", field="categories")


def load_metadata(path: str | Path) -> dict:
    """A run-metadata file (*.meta.json); it must hold a JSON object."""
    data = _read_json(path, "run metadata")
    if not isinstance(data, dict):
        raise InputError(path, "run metadata must be a JSON object")
    check_shape(data, path)
    return data


def default_metadata_path(report_path: str | Path) -> Path | None:
    """REPORT.meta.json beside the report, when it exists (where `analyze` writes it)."""
    candidate = Path(report_path).with_suffix(".meta.json")
    return candidate if candidate.is_file() else None


def metadata_taxonomy(metadata: dict | None) -> dict:
    """Run metadata's `taxonomy` block ({} where it has none, or one edited into another shape)."""
    taxonomy = (metadata or {}).get("taxonomy")
    return taxonomy if isinstance(taxonomy, dict) else {}


def category_descriptions(metadata: dict | None) -> dict[str, str]:
    """Category descriptions from run metadata's taxonomy: `descriptions` {name: text} or `categories` [{name, description}]."""
    taxonomy = metadata_taxonomy(metadata)
    descriptions, categories = taxonomy.get("descriptions"), taxonomy.get("categories")
    found = dict(descriptions) if isinstance(descriptions, dict) else {}
    for item in categories if isinstance(categories, list) else []:
        if isinstance(item, dict) and item.get("name") and item.get("description"):
            found.setdefault(item["name"], item["description"])
    return {str(k): str(v) for k, v in found.items() if v}


def metadata_mismatch(report: CoverageReport, metadata: dict) -> str | None:
    """Why `metadata` is not the run metadata of `report` (its categories, sample count or category counts
    differ), else None.
    Metadata that names neither (written by hand) is taken as it is."""
    names = metadata_taxonomy(metadata).get("names")
    if names is not None and sorted(names) != sorted(c.name for c in report.categories):
        return f"its categories ({', '.join(names)}) are not the report's ({', '.join(c.name for c in report.categories)})"
    analyzed = (metadata.get("samples") or {}).get("analyzed") if isinstance(metadata.get("samples"), dict) else None
    if analyzed is not None and analyzed != report.total_samples_analyzed:
        return f"it is of a run of {analyzed} samples, the report of {report.total_samples_analyzed}"
    counts = metadata.get("category_counts")
    if isinstance(counts, dict) and counts != report.counts():
        return "its category counts are not the report's"
    return None
