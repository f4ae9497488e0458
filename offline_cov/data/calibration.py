"""The calibration file: a small labeled sample of the user's own data (`--calibration FILE`).

One row per labeled sample, JSONL or CSV, with the true `category` and either the sample's
`index` in the dataset (as in the labels file) or its `text` (the instruction, matched exactly
against the dataset's instructions; a text that is not in the dataset is labeled on its own).
`offline-cov review` writes such a file (rows it marks `"skipped": true` are left out), or with `--export`
a CSV a person fills in (rows whose category is left empty are left out; a row's `copies`, the other drawn
samples with its exact text, get its answer too). Its rows also
carry the label `review` showed (`proposed`); rows that all match this run's labels are a review of
them, and get the stratified correction (report/calibration.py). 100-300
rows is the intended size.
"""

from __future__ import annotations

import csv
import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InputError
from ..json_keys import TWICE, DuplicateKey, unique_keys
from ..taxonomy import Taxonomy

READ_COLUMNS = ("category", "index", "text", "proposed", "skipped", "copies")  # a CSV header may name each once


@dataclass(frozen=True)
class CalibrationRow:
    """One row: where the sample is (its index, or its text) and its true category."""

    line: int
    category: str
    index: int | None = None
    text: str | None = None
    proposed: str | None = None  # the label `review` showed (its rows were drawn at random within each label)


def load_calibration(path: str | Path, taxonomy: Taxonomy) -> list[CalibrationRow]:
    """Every row of the file, checked: a category of the taxonomy, and an index or a text."""
    from .readers import detect_codec

    path = Path(path)
    try:
        raw = list(_records(path, detect_codec(path)))
    except OSError as exc:
        raise InputError(path, f"cannot read the calibration file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None
    rows = [row for line, record in raw if not _skipped(record.get("skipped")) and not _unreviewed(record)
            for row in _with_copies(path, line, record, _row(path, line, record, taxonomy))]
    _check_each_sample_once(path, rows)
    if not rows:
        raise InputError(path, "the calibration file has no answered rows; label some samples with `offline-cov "
                               "review` (or fill the category column of the CSV `review --export` wrote)")
    return rows


def _check_each_sample_once(path: Path, rows: list[CalibrationRow]) -> None:
    """Refuse a second row for a sample (by index, or by text): a pasted copy would count twice in the
    correction, and two answers for one sample cannot both be right."""
    seen: dict[object, int] = {}
    for row in rows:
        key = ("index", row.index) if row.index is not None else ("text", row.text)
        if key in seen:
            raise InputError(path, f"names the same sample as line {seen[key]}; keep one row per sample "
                                   "(delete one of the two, or the wrong answer)", line=row.line)
        seen[key] = row.line


def _not_text(path: Path, exc: UnicodeDecodeError) -> InputError:
    """What to do with a calibration file that is not UTF-8 (nor UTF-16/32 with its mark): a workbook
    saved as .xlsx is a zip of XML; anything else is most likely a spreadsheet's Windows-1252 CSV."""
    with path.open("rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            return InputError(path, "this is a spreadsheet workbook (or another zip file), not text: save the sheet "
                                    "as CSV UTF-8 and give that file")
    return InputError(path, f"not UTF-8 text ({exc.reason}); save it as CSV UTF-8 from the spreadsheet (or convert "
                            f"it: iconv -f cp1252 -t utf-8 {shlex.quote(str(path))} > fixed{path.suffix})")


def _records(path: Path, codec: str):
    if path.suffix.lower() in (".csv", ".tsv"):
        yield from _csv_records(path, codec)
        return
    with path.open(encoding=codec) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text, object_pairs_hook=unique_keys)
            except DuplicateKey as exc:
                raise InputError(path, TWICE, line=line, field=exc.key) from None
            except json.JSONDecodeError as exc:
                raise InputError(path, f"invalid JSON ({exc.msg})", line=line) from None
            if not isinstance(record, dict):
                raise InputError(path, "each line must be a JSON object with category and index or text", line=line)
            yield line, record


def _skipped(value) -> bool:
    """A row marked skipped: JSON true, or in a CSV the text true/yes/1 (a CSV's "false" or "0" is not)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return value is True


def _unreviewed(record: dict) -> bool:
    """A row `review --export` wrote whose category nobody filled in yet (it has the proposed label, no answer)."""
    category = record.get("category")
    return "proposed" in record and (category is None or (isinstance(category, str) and not category.strip()))


def _csv_records(path: Path, codec: str):
    """(line, row) of a CSV calibration file; texts of any length, a row csv cannot parse is an InputError.
    The header's most frequent separator of comma, semicolon and tab is the file's (spreadsheets in locales
    whose decimal mark is a comma save CSV with semicolons; a tab-separated save may be .csv or .tsv)."""
    from .readers import _check_header, _raise_csv_field_limit

    _raise_csv_field_limit()
    with path.open(encoding=codec, newline="") as handle:
        header = handle.readline()
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter=max(",;\t", key=header.count))
        try:
            _normalize_header(reader)
            _check_header(path, reader.fieldnames or [], 1, READ_COLUMNS)
            _check_columns(path, reader.fieldnames)
            yield from enumerate(reader, start=2)
        except csv.Error as exc:
            raise InputError(path, f"not valid CSV ({exc})", line=reader.line_num) from None


def _check_columns(path: Path, columns: list[str] | None) -> None:
    """Refuse a CSV whose header has no `category` column, or neither `index` nor `text`: each of its rows
    would otherwise be named "missing" one by one."""
    shown = ", ".join(columns or []) or "none"
    if "category" not in (columns or []):
        raise InputError(path, f"has no 'category' column (its columns: {shown}); name the column of true "
                               "categories 'category'", line=1)
    if "index" not in columns and "text" not in columns:
        raise InputError(path, f"has no 'index' or 'text' column (its columns: {shown}); name the column that "
                               "says which sample a row is 'index' (the labels file's) or 'text'", line=1)


def _normalize_header(reader: csv.DictReader) -> None:
    """Column names as the file means them: a header cell retyped in a spreadsheet ('Category', 'category ')
    still names the category column."""
    if reader.fieldnames:
        reader.fieldnames = [name.strip().casefold() for name in reader.fieldnames]


def _row(path: Path, line: int, record: dict, taxonomy: Taxonomy) -> CalibrationRow:
    given = record.get("category")
    if not isinstance(given, str) or not given.strip():
        raise InputError(path, "missing the true category", line=line, field="category")
    category = taxonomy.canonical(given)
    if category is None:
        raise InputError(path, f"{given!r} is not a category of the taxonomy ({', '.join(taxonomy.names)})",
                         line=line, field="category")
    index, text = record.get("index"), record.get("text")
    if index not in (None, ""):
        number = _sample_index(index)
        if number is None:
            raise InputError(path, f"{index!r} is not a sample index; give the whole number the labels file has "
                                   "for the sample", line=line, field="index")
        return CalibrationRow(line, category, index=number, proposed=_proposed(record, taxonomy))
    if isinstance(text, str) and text.strip():
        return CalibrationRow(line, category, text=text)
    raise InputError(path, "give the sample's index (from the labels file) or its text", line=line, field="index")


def _with_copies(path: Path, line: int, record: dict, row: CalibrationRow) -> list[CalibrationRow]:
    """The row, and one like it for each sample its `copies` names (`review --export` writes a text drawn
    more than once as one row, the other drawn samples in `copies`): the answer is each copy's."""
    copies = record.get("copies")
    if copies in (None, ""):
        return [row]
    parts = copies.split() if isinstance(copies, str) else copies if isinstance(copies, list) else [copies]
    numbers = [_sample_index(part) for part in parts]
    if None in numbers:
        raise InputError(path, f"{copies!r} is not a list of sample indices; leave the column as `review --export` "
                               "wrote it (whole numbers apart by spaces), or empty", line=line, field="copies")
    if row.index is None:
        raise InputError(path, "names copies but no index; give the row's index (from the labels file), or empty "
                               "the copies column", line=line, field="copies")
    return [row, *(replace(row, index=number) for number in numbers)]


def _sample_index(value) -> int | None:
    """The whole number `value` stands for (12, 12.0, or the text "12" or "12.0" a spreadsheet wrote), else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip()) if "." in value else int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _proposed(record: dict, taxonomy: Taxonomy) -> str | None:
    """The label `offline-cov review` proposed for the row (None in a file written some other way)."""
    given = record.get("proposed")
    return taxonomy.canonical(given) if isinstance(given, str) else None
