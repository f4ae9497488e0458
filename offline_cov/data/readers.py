"""Read SFT datasets in any common file format and sample shape into `Sample`s."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

ROLE_ALIASES = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
    "model": "assistant", "system": "system", "tool": "tool", "function": "tool",
}
INSTRUCTION_KEYS = ("instruction", "prompt", "question", "query", "input", "text")
RESPONSE_KEYS = ("output", "response", "completion", "answer", "chosen")
ENCODING_HINT = "if the file is not UTF-8, pass --encoding (for example --encoding latin-1)"


@dataclass(frozen=True)
class Sample:
    """One SFT sample: its position in the file and its turns as (role, text)."""

    index: int
    turns: tuple[tuple[str, str], ...]

    @property
    def instruction(self) -> str:
        return next((t for r, t in self.turns if r == "user"), self.turns[0][1])

    @property
    def response(self) -> str:
        return next((t for r, t in self.turns if r == "assistant"), "")

    def render(self) -> str:
        """The sample as plain text, every turn kept, for the labeler."""
        if len(self.turns) == 1:
            return self.turns[0][1]
        return "\n".join(f"{role.upper()}: {text}" for role, text in self.turns)

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.turns).encode("utf-8")).hexdigest()


@dataclass
class ReadResult:
    """Samples read from a file, with the lines skipped as bad (when allowed)."""

    samples: list[Sample]
    skipped: list[str] = field(default_factory=list)
    shape: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """Which fields hold the instruction and response (overrides from the CLI)."""

    instruction: str | None = None
    response: str | None = None


# ---------------------------------------------------------------- records


def iter_records(path: Path, encoding: str = "utf-8") -> Iterator[tuple[str, int | None, object]]:
    """Yield (location kind, number, record) for every record of a dataset file or folder."""
    if path.is_dir():
        yield from _iter_hf_saved(path)
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(path, encoding)
    elif suffix == ".json":
        yield from _iter_json(path, encoding)
    elif suffix == ".csv":
        yield from _iter_csv(path, encoding)
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise InputError(path, f"unknown file type {suffix!r}; use .json, .jsonl, .csv, .parquet or a saved HF dataset folder")


def _codec(path: Path, encoding: str) -> str:
    """The codec name to decode with (UTF-8 files may start with a BOM); unknown names are an InputError."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(path, f"unknown encoding {encoding!r}") from None
    return "utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding


def _decode_error(path: Path, encoding: str, byte: int, line: int) -> InputError:
    return InputError(path, f"not valid {encoding} text at byte {byte}; {ENCODING_HINT}", line=line)


def _iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, read one line at a time.

    Lines are split on newline bytes only: JSON strings may hold U+2028 or U+0085, which text-mode
    line splitting would break on."""
    first, offset = _codec(path, encoding), 0
    rest = first.replace("-sig", "")  # a byte-order mark can only open the file
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(first if lineno == 1 else rest)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, encoding, offset + exc.start, lineno) from None
            offset += len(raw)
            yield lineno, text


def _iter_jsonl(path: Path, encoding: str):
    for lineno, line in _iter_lines(path, encoding):
        if not line.strip():
            continue
        try:
            yield "line", lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield "line", lineno, InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=lineno)


def _iter_json(path: Path, encoding: str):
    """A JSON array is parsed whole (the format allows nothing else); use JSONL or Parquet for big data."""
    raw = path.read_bytes()
    try:
        text = raw.decode(_codec(path, encoding))
    except UnicodeDecodeError as exc:
        raise _decode_error(path, encoding, exc.start, raw[: exc.start].count(b"\n") + 1) from None
    del raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if "\n{" in text.strip() and text.lstrip().startswith("{"):
            yield from _iter_jsonl(path, encoding)
            return
        raise InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=exc.lineno) from None
    del text
    if isinstance(data, dict):
        data = data.get("data", data.get("train", data.get("rows")))
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON array of samples (or an object with a 'data' array)")
    for i, record in enumerate(data):
        yield "record", i + 1, record


def _iter_csv(path: Path, encoding: str):
    lines = (text for _, text in _iter_lines(path, encoding))
    reader = csv.DictReader(lines)
    for row in reader:
        yield "line", reader.line_num, row


ARROW_BATCH_ROWS = 1024


def _iter_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=ARROW_BATCH_ROWS)
        n = 0
        for batch in batches:
            for record in batch.to_pylist():
                n += 1
                yield "record", n, record
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"cannot read Parquet ({exc})") from None


def _iter_hf_saved(path: Path):
    import pyarrow as pa

    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        split = "train" if "train" in splits else splits[0]
        path = path / split
    state_file = path / "state.json"
    if not state_file.exists():
        raise InputError(path, "a folder must be a dataset saved with Dataset.save_to_disk (no state.json found)")
    n = 0
    for item in json.loads(state_file.read_text())["_data_files"]:
        with pa.memory_map(str(path / item["filename"])) as source:
            for batch in pa.ipc.open_stream(source):
                for record in batch.to_pylist():
                    n += 1
                    yield "record", n, record


# ---------------------------------------------------------------- shapes


def detect_shape(record: dict, fields: FieldSpec) -> str:
    """Name the sample shape of a record: sharegpt, messages, alpaca, pair or custom."""
    if fields.instruction:
        return "custom"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if isinstance(record.get("messages"), list):
        return "messages"
    if "instruction" in record:
        return "alpaca"
    if any(k in record for k in INSTRUCTION_KEYS):
        return "pair"
    return ""


def record_to_turns(record: dict, shape: str, fields: FieldSpec, place: dict) -> tuple[tuple[str, str], ...]:
    """Turn one record into (role, text) turns, raising InputError naming the bad field."""
    if shape == "sharegpt":
        return _chat_turns(record["conversations"], "from", "value", "conversations", place)
    if shape == "messages":
        return _chat_turns(record["messages"], "role", "content", "messages", place)
    if shape == "alpaca":
        text = _text(record, "instruction", place)
        extra = _text(record, "input", place, required=False)
        user = f"{text}\n\n{extra}" if extra else text
        return _with_response(user, record, fields.response or "output", place)
    if shape == "custom":
        return _with_response(_text(record, fields.instruction, place), record, fields.response, place)
    key = next(k for k in INSTRUCTION_KEYS if k in record)
    response_key = fields.response or next((k for k in RESPONSE_KEYS if k in record and k != key), None)
    return _with_response(_text(record, key, place), record, response_key, place)


def _with_response(user: str, record: dict, response_key: str | None, place: dict):
    response = _text(record, response_key, place, required=False) if response_key else ""
    return (("user", user), ("assistant", response)) if response else (("user", user),)


def _text(record: dict, key: str, place: dict, required: bool = True) -> str:
    if key not in record or record[key] is None:
        if required:
            raise InputError(message="the field is missing", field=key, **place)
        return ""
    value = record[key]
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        value = "".join(str(p.get("text", "")) for p in value)
    if not isinstance(value, str):
        raise InputError(message=f"expected text, found {type(value).__name__}", field=key, **place)
    if required and not value.strip():
        raise InputError(message="the instruction is empty", field=key, **place)
    return value.strip()


def _chat_turns(messages: list, role_key: str, text_key: str, field_name: str, place: dict):
    turns = []
    for i, msg in enumerate(messages):
        where = f"{field_name}[{i}]"
        if not isinstance(msg, dict):
            raise InputError(message=f"expected an object, found {type(msg).__name__}", field=where, **place)
        role = ROLE_ALIASES.get(str(msg.get(role_key, "")).lower())
        if role is None:
            raise InputError(message=f"unknown role {msg.get(role_key)!r}", field=f"{where}.{role_key}", **place)
        text = _text(msg, text_key, {**place}, required=False)
        if text:
            turns.append((role, text))
    if not any(role == "user" for role, _ in turns):
        raise InputError(message="no user turn with text", field=field_name, **place)
    return tuple(turns)


# ---------------------------------------------------------------- reading


MAX_SHOWN_ERRORS = 5


@dataclass
class DatasetScan:
    """What a first pass over a dataset found: how many good samples, their shape, what was skipped."""

    path: Path
    count: int = 0
    shape: str = ""
    skipped: list[str] = field(default_factory=list)


def iter_samples(
    path: str | Path,
    fields: FieldSpec = FieldSpec(),
    *,
    encoding: str = "utf-8",
    on_bad=None,
    state: DatasetScan | None = None,
) -> Iterator[Sample]:
    """Yield the dataset's samples one at a time, holding none of the others in memory.

    A bad record is handed to `on_bad(InputError)` and skipped; without `on_bad` it raises.
    `state.shape` receives the sample shape found in the first good record."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    state, index = state or DatasetScan(path), 0
    for kind, number, record in iter_records(path, encoding):
        place = {"path": path, "line": number} if kind == "line" else {"path": f"{path} (record {number})"}
        try:
            turns = _record_turns(record, state, fields, place)
        except InputError as exc:
            if on_bad is None:
                raise
            on_bad(exc)
            continue
        yield Sample(index=index, turns=turns)
        index += 1


def scan_dataset(
    path: str | Path, fields: FieldSpec = FieldSpec(), *, encoding: str = "utf-8", skip_bad_lines: bool = False
) -> DatasetScan:
    """Check every record and count the samples, keeping no text: the first of two streaming passes.

    Bad records raise one InputError listing the first few (file, line, field) unless skipped."""
    scan, bad, errors = DatasetScan(Path(path)), [], 0

    def note(exc: InputError) -> None:
        nonlocal errors
        errors += 1
        if skip_bad_lines:
            scan.skipped.append(str(exc))
        elif len(bad) < MAX_SHOWN_ERRORS:
            bad.append(exc)

    for _ in iter_samples(path, fields, encoding=encoding, on_bad=note, state=scan):
        scan.count += 1
    if errors and not skip_bad_lines:
        shown = "\n  ".join(str(e) for e in bad)
        more = f"\n  ... and {errors - len(bad)} more" if errors > len(bad) else ""
        raise InputError(
            scan.path, f"{errors} bad record(s):\n  {shown}{more}\nFix them, or pass --skip-bad-lines to skip and report them"
        )
    if not scan.count:
        raise InputError(scan.path, "the dataset holds no samples" if not errors else "no readable samples")
    return scan


def read_samples(
    path: str | Path,
    fields: FieldSpec = FieldSpec(),
    *,
    encoding: str = "utf-8",
    skip_bad_lines: bool = False,
) -> ReadResult:
    """Read every sample of a dataset into memory (small data, tests); `analyze` streams instead."""
    scan = scan_dataset(path, fields, encoding=encoding, skip_bad_lines=skip_bad_lines)
    samples = list(iter_samples(path, fields, encoding=encoding, on_bad=lambda exc: None))
    return ReadResult(samples=samples, skipped=scan.skipped, shape=scan.shape)


def _record_turns(record, result: DatasetScan, fields: FieldSpec, place: dict):
    if isinstance(record, InputError):
        raise record
    if not isinstance(record, dict):
        raise InputError(message=f"expected an object, found {type(record).__name__}", **place)
    if not result.shape:
        result.shape = detect_shape(record, fields)
        if not result.shape:
            keys = ", ".join(sorted(record)) or "none"
            raise InputError(
                message=f"no instruction field found (keys: {keys}); name it with --instruction-field", **place
            )
    return record_to_turns(record, result.shape, fields, place)


def chosen_indices(count: int, n: int | None, seed: int = 0) -> set[int] | None:
    """The indices of a reproducible random sample of n of `count` samples; None means all of them."""
    if n is None or n >= count:
        return None
    return set(random.Random(seed).sample(range(count), n))


def draw_sample(samples: list[Sample], n: int | None, seed: int = 0) -> list[Sample]:
    """A reproducible random sample of n samples (all of them when n is None or too large), in file order."""
    chosen = chosen_indices(len(samples), n, seed)
    return list(samples) if chosen is None else [s for s in samples if s.index in chosen]
