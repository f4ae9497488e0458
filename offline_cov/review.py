"""`offline-cov review`: a person checks a stratified random sample of the labels, which becomes the
calibration file that `analyze --calibration` corrects the shares with.

The sample is drawn per primary category (in proportion, at least `MIN_PER_CATEGORY` each where the
category has them and the size allows), in an order fixed by the seed, so a review stopped half way resumes where it
stopped: the calibration file is appended to answer by answer (a crash loses at most the answer
being typed), and the samples it already holds are not asked again.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .report.tally import SampleLabel
from .taxonomy import name_key

MIN_PER_CATEGORY = 5
EXPORT_COLUMNS = ("index", "copies", "proposed", "confidence", "category", "sample")
EXPORT_CHARS = 32000  # a sample's text in the exported CSV (spreadsheets hold 32,767 characters a cell)


@dataclass
class Answer:
    """What the reviewer said of one sample: its true category, or skipped, or stop."""

    category: str | None = None
    skipped: bool = False
    stop: bool = False


def load_labels(path: str | Path) -> list[SampleLabel]:
    """The labels file `analyze --labels` wrote."""
    labels = []
    for line, text in _lines(Path(path)):
        try:
            labels.append(_label(json.loads(text)))
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON, a missing key, a value of the wrong type
            raise InputError(path, f"not a labels line written by `analyze --labels` ({exc})", line=line) from None
    return labels


def _label(row) -> SampleLabel:
    """One labels line, its index an integer and its categories a non-empty list of names."""
    label = SampleLabel.from_json(row)
    if not isinstance(label.index, int) or isinstance(label.index, bool):
        raise TypeError(f"index {label.index!r} is not an integer")
    if not isinstance(row["categories"], list) or not label.categories or not all(isinstance(c, str) for c in label.categories):
        raise TypeError(f"categories {row['categories']!r} is not a non-empty list of names")
    return label


def _lines(path: Path):
    """(line number, text) of each non-blank line of a UTF-8 file; undecodable bytes are an InputError."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    yield line, text
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file: is it the file `offline-cov` wrote?") from None


def check_categories(labels: list[SampleLabel], names: list[str], path: str | Path) -> None:
    """Every category the labels name is one of the taxonomy's, or an InputError: the taxonomy is not the run's."""
    known = {name_key(n) for n in names}
    for lab in labels:
        unknown = [c for c in lab.categories if name_key(c) not in known]
        if unknown:
            raise InputError(path, f"sample {lab.index} is labeled {unknown[0]!r}, which is not a category of the "
                                   f"taxonomy given ({', '.join(names)}); give the run's taxonomy, e.g. --metadata "
                                   "with its *.meta.json")


def check_found(wanted: set[int], texts: dict[int, str], data: str | Path, path: str | Path) -> None:
    """Every sample to review is in the dataset, or an InputError: the labels are another dataset's."""
    missing = sorted(wanted - texts.keys())
    if missing:
        raise InputError(data, f"no sample {missing[0]} ({len(missing)} of the samples drawn from {path} are "
                               "missing): is this the dataset analyze labeled, read with the same --instruction-field, "
                               "--response-field and --encoding?")


def stratified_sample(labels: list[SampleLabel], size: int, seed: int) -> list[SampleLabel]:
    """`size` labels drawn per primary category (in proportion, a floor each), shuffled by the seed; each
    category's draw is the first of its seeded order, so a larger `size` keeps the smaller one's picks."""
    rng = random.Random(seed)
    by_cat: dict[str, list[SampleLabel]] = {}
    for lab in sorted(labels, key=lambda lab: lab.index):
        by_cat.setdefault(lab.categories[0], []).append(lab)
    size = min(size, len(labels))
    floor = max(1, min(MIN_PER_CATEGORY, size // len(by_cat))) if by_cat else 0
    take = {c: min(len(v), floor) for c, v in by_cat.items()}
    left = size - sum(take.values())
    share = {c: left * len(v) / len(labels) for c, v in by_cat.items()}
    for c, v in by_cat.items():
        take[c] = min(len(v), take[c] + int(share[c]))
    order = sorted(by_cat, key=lambda c: (-(share[c] % 1), c))  # what is left, by largest remainder
    while sum(take.values()) < size:
        for c in order:
            if sum(take.values()) < size and take[c] < len(by_cat[c]):
                take[c] += 1
    picked = [lab for c, v in sorted(by_cat.items()) for lab in _in_seeded_order(v, seed, c)[:take[c]]]
    rng.shuffle(picked)
    return picked[:size]


def _in_seeded_order(labels: list[SampleLabel], seed: int, category: str) -> list[SampleLabel]:
    """A category's labels in an order fixed by the seed and the category alone, so that a larger sample
    takes the same first ones: rerunning `review` with a larger -n extends the review already on disk."""
    order = list(labels)
    random.Random(f"{seed}:{category}").shuffle(order)
    return order


def read_answers(path: str | Path) -> list[dict]:
    """The rows of a calibration file `review` is resuming, in order (none before it exists); a line
    `review` did not write (a labels file's, another JSONL's) is refused: not ours to append to."""
    path, rows = Path(path), []
    if not path.exists():
        return rows
    for line, text in _lines(path):
        try:
            row = json.loads(text)
            if "category" not in row:  # a labels file (categories, plural) or another JSONL
                raise KeyError("category")
            int(row["index"])  # a list or a string holding "category" fails here too
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise InputError(path, "not a calibration line written by `offline-cov review`", line=line) from None
        rows.append(row)
    return rows


def done_answers(rows: list[dict]) -> dict[int, str | None]:
    """The samples the calibration file already holds (answered or skipped), each with the label it was
    shown (None where the file does not say): a resumed review skips them."""
    return {int(row["index"]): row.get("proposed") if isinstance(row.get("proposed"), str) else None for row in rows}


def answered_categories(rows: list[dict]) -> dict[int, str]:
    """The category each sample in the calibration file was given (skipped ones left out), the first
    answer where one was given twice: a resumed review answers a copy of one of them the same."""
    answered: dict[int, str] = {}
    for row in rows:
        if isinstance(row.get("category"), str) and not row.get("skipped"):
            answered.setdefault(int(row["index"]), row["category"])
    return answered


def check_same_labels(done: dict[int, str | None], labels: list[SampleLabel], path, labels_path) -> None:
    """Refuse to resume a calibration file begun on other labels: its answers and the new ones would not
    be one review of one run (`analyze --calibration` would then fall back from the review's correction)."""
    given = {lab.index: lab.categories[0] for lab in labels}
    for index, shown in done.items():
        if shown is not None and given.get(index) != shown:
            now = f"labels it {given[index]}" if index in given else "does not hold it"
            raise InputError(path, f"holds answers to another run's labels (sample {index} was shown as {shown}; "
                                   f"{labels_path} {now}): give a new -o file, or resume with the labels it began with")


def parse_answer(text: str, proposed: str, names: list[str]) -> Answer | None:
    """Enter: the proposed label is right; a number or a category's name (any case): that category;
    s: skip; q: stop. None: not understood."""
    text = text.strip().lower()
    if text == "":
        return Answer(category=proposed)
    if text == "s":
        return Answer(skipped=True)
    if text == "q":
        return Answer(stop=True)
    if text.isdigit() and 1 <= int(text) <= len(names):
        return Answer(category=names[int(text) - 1])
    return next((Answer(category=name) for name in names if name.lower() == text), None)


def append_answer(path: str | Path, label: SampleLabel, answer: Answer) -> None:
    """One line of the calibration file, flushed to disk before the next sample is shown."""
    row = {"index": label.index, "category": answer.category, "proposed": label.categories[0]}
    if answer.skipped:
        row["skipped"] = True
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def spreadsheet_text(text: str) -> str:
    """A sample's text as a spreadsheet shows it rather than runs it: one opening with = + - @ (a
    formula to Excel and LibreOffice, `=HYPERLINK(...)` in a dataset) gets a leading apostrophe. The
    `sample` column is for reading only; rows are matched by `index`."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_sample(path: str | Path, todo: list[SampleLabel], texts: dict[int, str]) -> int:
    """The sample to review as a CSV for a spreadsheet: the proposed label and an empty `category` a
    person fills in (left empty: not reviewed, and `--calibration` leaves the row out), one row per
    text (`one_row_per_text`). Never written over an existing file, which may hold answers. Returns
    the number of rows written."""
    import csv

    path = Path(path)
    if path.exists():
        raise InputError(path, "exists and may hold answers: choose another name, or delete it to export afresh")
    with path.open("x", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        groups = one_row_per_text(todo, texts)
        for label, *copies in groups:
            text = texts.get(label.index, "(not in the dataset)")
            text = text if len(text) <= EXPORT_CHARS else text[:EXPORT_CHARS] + " [...]"
            confidence = "" if label.confidence is None else f"{label.confidence:.2f}"
            writer.writerow([label.index, " ".join(str(c.index) for c in copies), label.categories[0], confidence,
                             "", spreadsheet_text(text)])
    return len(groups)


def one_row_per_text(todo: list[SampleLabel], texts: dict[int, str]) -> list[list[SampleLabel]]:
    """The drawn labels grouped by exact text and proposed label, in the order each was first drawn: a
    copy drawn twice is one row of the export, as the terminal review asks it once. Its other samples go
    in the `copies` column, and `analyze --calibration` gives each the row's answer, so every drawn sample
    keeps its place in the review. Copies labeled differently stay apart (each row is a review of its label)."""
    groups: dict[tuple, list[SampleLabel]] = {}
    for label in todo:
        groups.setdefault((texts.get(label.index, label.index), label.categories[0]), []).append(label)
    return list(groups.values())
