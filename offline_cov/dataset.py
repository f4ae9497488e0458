"""Read SFT datasets in any common file format and sample shape into `Sample`s."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

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


def _read_text(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, f"not valid {encoding} text at byte {exc.start}; {ENCODING_HINT}", line=line) from None
    except LookupError:
        raise InputError(path, f"unknown encoding {encoding!r}") from None


def _iter_jsonl(path: Path, encoding: str):
    # split on newlines only: JSON strings may hold U+2028 or U+0085, which splitlines() breaks on
    for lineno, line in enumerate(_read_text(path, encoding).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield "line", lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield "line", lineno, InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=lineno)


def _iter_json(path: Path, encoding: str):
    text = _read_text(path, encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if "\n{" in text.strip() and text.lstrip().startswith("{"):
            yield from _iter_jsonl(path, encoding)
            return
        raise InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=exc.lineno) from None
    if isinstance(data, dict):
        data = data.get("data", data.get("train", data.get("rows")))
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON array of samples (or an object with a 'data' array)")
    for i, record in enumerate(data):
        yield "record", i + 1, record


def _iter_csv(path: Path, encoding: str):
    import io

    reader = csv.DictReader(io.StringIO(_read_text(path, encoding), newline=""))
    for row in reader:
        yield "line", reader.line_num, row


def _iter_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(path, f"cannot read Parquet ({exc})") from None
    for i, record in enumerate(table.to_pylist()):
        yield "record", i + 1, record


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
            for record in pa.ipc.open_stream(source).read_all().to_pylist():
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


def read_samples(
    path: str | Path,
    fields: FieldSpec = FieldSpec(),
    *,
    encoding: str = "utf-8",
    skip_bad_lines: bool = False,
) -> ReadResult:
    """Read every sample of a dataset; bad records raise InputError unless skipped."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    result = ReadResult(samples=[])
    bad: list[InputError] = []
    for kind, number, record in iter_records(path, encoding):
        place = {"path": path, "line": number} if kind == "line" else {"path": f"{path} (record {number})"}
        try:
            turns = _record_turns(record, result, fields, place)
        except InputError as exc:
            bad.append(exc)
            continue
        result.samples.append(Sample(index=len(result.samples), turns=turns))
    _handle_bad(path, bad, result, skip_bad_lines)
    if not result.samples:
        raise InputError(path, "the dataset holds no samples" if not bad else "no readable samples")
    return result


def _record_turns(record, result: ReadResult, fields: FieldSpec, place: dict):
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


def _handle_bad(path: Path, bad: list[InputError], result: ReadResult, skip: bool) -> None:
    if not bad:
        return
    if not skip:
        shown = "\n  ".join(str(e) for e in bad[:5])
        more = f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(
            path, f"{len(bad)} bad record(s):\n  {shown}{more}\nFix them, or pass --skip-bad-lines to skip and report them"
        )
    result.skipped = [str(e) for e in bad]


def draw_sample(samples: list[Sample], n: int | None, seed: int = 0) -> list[Sample]:
    """A reproducible random sample of n samples (all of them when n is None or too large), in file order."""
    if n is None or n >= len(samples):
        return list(samples)
    picked = sorted(random.Random(seed).sample(range(len(samples)), n))
    return [samples[i] for i in picked]
