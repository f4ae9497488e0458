"""Read SFT datasets in any common file format and sample shape into `Sample`s."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import random
import re
import sys
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path

from ..errors import InputError
from ..json_keys import TWICE, DuplicateKey, unique_keys

ROLE_ALIASES = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
    "model": "assistant", "system": "system", "developer": "system", "tool": "tool", "function": "tool",
}
INSTRUCTION_KEYS = ("instruction", "prompt", "question", "query", "input", "text")
RESPONSE_KEYS = ("output", "response", "completion", "answer", "chosen")
READ_COLUMNS = {*INSTRUCTION_KEYS, *RESPONSE_KEYS, "conversations", "messages", "conversation"}
ENCODING_HINT = "if the file is not UTF-8, pass --encoding (for example --encoding latin-1 or --encoding utf-16)"
DECODE_CHUNK = 1 << 20
COMPRESSED = {b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd",
              b"PK\x03\x04": "zip"}


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

    def for_labeler(self) -> Sample:
        """The sample as labelers read it: without its system turns, unless it has nothing else. A
        system prompt comes first and is often the same in every sample of a chat dataset; read, it
        filled the tokens a labeler reads (the user's request was cut away) and every sample got the
        same label. The label cache keys on this sample's content, so a chat sample and the same
        turns without the system prompt share a label."""
        kept = tuple(turn for turn in self.turns if turn[0] != "system")
        return self if len(kept) == len(self.turns) or not kept else Sample(self.index, kept)

    def render(self) -> str:
        """The sample as plain text, every turn kept."""
        if len(self.turns) == 1:
            return self.turns[0][1]
        return "\n".join(f"{role.upper()}: {text}" for role, text in self.turns)

    def content_hash(self) -> str:
        """sha256 of `json.dumps(self.turns)`, computed a chunk at a time (a long text is never copied whole)."""
        return self._sha256().hexdigest()

    def digest64(self) -> int:
        """The first 8 bytes of the content hash, as an int: the key duplicates are counted by."""
        return int.from_bytes(self._sha256().digest()[:8], "big")

    def _sha256(self):
        h = hashlib.sha256(b"[")
        for i, (role, text) in enumerate(self.turns):
            h.update(b", [" if i else b"[")
            _hash_json_string(h, role)
            h.update(b", ")
            _hash_json_string(h, text)
            h.update(b"]")
        h.update(b"]")
        return h


HASH_CHUNK = 1 << 18


def _hash_json_string(h, text: str) -> None:
    """Feed `h` the bytes json.dumps writes for `text` (ASCII, escaped), HASH_CHUNK characters at a time.
    Chunks may split anywhere: json escapes each code point on its own."""
    h.update(b'"')
    for start in range(0, len(text), HASH_CHUNK):
        h.update(encode_basestring_ascii(text[start : start + HASH_CHUNK])[1:-1].encode("ascii"))
    h.update(b'"')


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

    def read_columns(self) -> set[str]:
        """The columns a reader with these fields may read: its own (READ_COLUMNS) and the ones named here."""
        return READ_COLUMNS | {name for name in (self.instruction, self.response) if name}


# ---------------------------------------------------------------- records


TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")


def iter_records(
    path: Path, encoding: str = "utf-8", read: Collection[str] = READ_COLUMNS
) -> Iterator[tuple[str, int | None, object]]:
    """Yield (location kind, number, record) for every record of a dataset file or folder; `read` is the
    columns a CSV header may not name twice (FieldSpec.read_columns)."""
    if path.is_dir():
        yield from _iter_hf_saved(path)
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(path, encoding)
    elif suffix == ".json":
        yield from _iter_json(path, encoding)
    elif suffix == ".csv":
        yield from _iter_csv(path, encoding, read)
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise InputError(path, f"unknown file type {suffix!r}; use .json, .jsonl, .csv, .parquet or a saved HF dataset folder")


def detect_codec(path: Path, encoding: str = "utf-8") -> str:
    """The codec to decode `path` with; unknown names are an InputError.

    With the default UTF-8, the file's first bytes decide: a UTF-8, UTF-16 or UTF-32 byte-order mark,
    or (no mark) the NUL bytes an ASCII first character has in UTF-16/32 (json.detect_encoding).
    UTF-16 or UTF-32 without a byte-order mark (which Python's stream decoder refuses) is read in the
    byte order those NUL bytes show, little-endian when they show none."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(path, f"unknown encoding {encoding!r}") from None
    if name not in ("utf-8", "utf-16", "utf-32"):
        return encoding
    try:
        head = _head(path, 4)
    except OSError as exc:
        raise _os_error(path, exc) from None
    found = json.detect_encoding(head)
    if name == "utf-8":
        return "utf-8-sig" if found == "utf-8" else found
    if found == name:  # the byte-order mark is there
        return encoding
    return found if found.startswith(name + "-") else name + "-le"


def _os_error(path: Path, exc: OSError) -> InputError:
    return InputError(path, f"cannot read the file ({exc.strerror or exc})")


def _decode_error(path: Path, encoding: str, codec: str) -> InputError:
    """Where the first undecodable byte is: found by a second, chunked pass over the bytes (a
    compressed file is named as such: no encoding reads it)."""
    head = _head(path, max(map(len, COMPRESSED)))
    packed = next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), None)
    if packed:
        return InputError(path, f"this is a {packed}-compressed file, not text: decompress it first and give the "
                                "file it holds")
    skip = len(codecs.BOM_UTF8) if codec == "utf-8-sig" and head.startswith(codecs.BOM_UTF8) else 0
    decoder = codecs.getincrementaldecoder("utf-8" if skip else codec)("strict")
    offset, line, byte = skip, 1, None
    with path.open("rb") as handle:
        handle.seek(skip)
        while byte is None:
            chunk = handle.read(DECODE_CHUNK)
            state = decoder.getstate()
            pending = len(state[0])
            try:
                line += decoder.decode(chunk, final=not chunk).count("\n")
            except UnicodeError as exc:
                byte = offset - pending + getattr(exc, "start", 0)
                decoder.setstate(state)
                try:
                    line += decoder.decode(chunk[: max(getattr(exc, "start", 0) - pending, 0)]).count("\n")
                except UnicodeError:
                    pass
            if not chunk:
                break
            offset += len(chunk)
    used = codec.replace("-sig", "")
    guessed = " (guessed from the file's first bytes)" if used.lower() != encoding.lower().replace("_", "-") else ""
    at = f" at byte {byte}" if byte is not None else ""
    return InputError(path, f"not valid {used} text{at}{guessed}; {ENCODING_HINT}", line=line if byte is not None else None)


def _head(path: Path, n: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(n)


def _iter_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line: decoded first, then split, one line at a time.

    Lines are split on "\n" only: JSON strings may hold U+2028 or U+0085, which str.splitlines would
    break on. A byte-order mark opening the file is dropped."""
    codec = detect_codec(path, encoding)
    try:
        with path.open("r", encoding=codec, errors="strict", newline="\n") as handle:
            for lineno, text in enumerate(handle, start=1):
                if lineno == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield lineno, text
    except UnicodeError:  # UnicodeDecodeError, or the UTF-16/32 decoders' own complaints
        raise _decode_error(path, encoding, codec) from None
    except OSError as exc:
        raise _os_error(path, exc) from None


def _parse_json(text: str, hook=unique_keys):
    """json.loads with `hook` as object_pairs_hook, every way it can fail turned into (None, (message,
    line, field))."""
    try:
        return json.loads(text, object_pairs_hook=hook), None
    except DuplicateKey as exc:
        return None, (TWICE, None, str(exc.key))
    except json.JSONDecodeError as exc:
        where = f" column {exc.colno}" if exc.msg.endswith(" at") else f", column {exc.colno}"
        return None, (f"malformed JSON ({exc.msg}{where})", exc.lineno, None)
    except RecursionError:
        return None, ("malformed JSON (nested too deeply)", None, None)
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return None, (f"malformed JSON ({_short(str(exc), 80)})", None, None)


def _iter_jsonl(path: Path, encoding: str):
    for lineno, line in _iter_lines(path, encoding):
        if not line or line.isspace():
            continue
        record, problem = _parse_json(line)
        if problem is not None:  # a line cut mid-string: "Unterminated string", not "Invalid control character"
            problem = _parse_json(line.rstrip("\r\n"))[1] or problem
        yield "line", lineno, record if problem is None else InputError(path, problem[0], line=lineno, field=problem[2])


class _KeyTwice(dict):
    """An object of a JSON array file that names `key` twice: kept (the rest of the file parses) so
    that its record, not the whole file, is the bad one."""

    key: str = ""


def _marking_key_twice(found: list) -> Callable[[list[tuple]], dict]:
    """An object_pairs_hook that reads an object naming a key twice as a _KeyTwice, appended to `found`."""
    def hook(pairs: list[tuple]) -> dict:
        try:
            return unique_keys(pairs)
        except DuplicateKey as exc:
            found.append(marked := _KeyTwice(pairs))
            marked.key = exc.key
            return marked
    return hook


def _key_twice_in(value) -> str | None:
    """The key of an object in `value` (read with _marking_key_twice) that names one twice, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _KeyTwice):
            return item.key
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _iter_json(path: Path, encoding: str):
    """A JSON array is parsed whole (the format allows nothing else); use JSONL or Parquet for big data."""
    codec = detect_codec(path, encoding)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _os_error(path, exc) from None
    try:
        text = raw.decode(codec)
    except UnicodeError:  # UnicodeDecodeError, or the UTF-16/32 decoders' own complaints
        raise _decode_error(path, encoding, codec) from None
    del raw
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():  # as an empty JSONL, CSV or Parquet file
        return
    twice: list[_KeyTwice] = []
    data, problem = _parse_json(text, _marking_key_twice(twice))
    if problem is not None:
        if "\n{" in text and re.match(r"\s*\{", text):
            del text
            yield from _iter_jsonl(path, encoding)
            return
        raise InputError(path, problem[0], line=problem[1])
    del text
    if isinstance(data, _KeyTwice):
        raise InputError(path, TWICE, field=data.key)
    if isinstance(data, dict):
        chosen = next((k for k in ("data", "train", "rows") if k in data), None)
        if note := _splits_note(path, data, chosen):
            yield "note", None, note
        data = data.get(chosen) if chosen else None
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON array of samples (or an object with a 'data' array)")
    for i, record in enumerate(data):
        if twice and (key := _key_twice_in(record)) is not None:
            record = InputError(f"{path} (record {i + 1})", TWICE, field=key)
        yield "record", i + 1, record


def _splits_note(path: Path, data: dict, chosen: str | None) -> str | None:
    """A warning for a JSON object holding several lists of records (splits, say): which one was read."""
    chosen_rows = data.get(chosen) if chosen else None
    if not (isinstance(chosen_rows, list) and chosen_rows and isinstance(chosen_rows[0], dict)):
        return None
    fields = set(chosen_rows[0])  # another list is a split when its records have the chosen one's fields
    lists = [str(k) for k, v in data.items()
             if isinstance(v, list) and v and isinstance(v[0], dict) and set(v[0]) == fields]
    if len(lists) < 2:
        return None
    return (f"{path} holds several lists of records ({', '.join(lists)}): only {chosen!r} was read; to analyze "
            "another, save it as a file of its own (a JSON array or JSONL)")


# A quoted CSV field may span lines; one still open this many lines on is taken for a stray quote.
MAX_ROW_LINES = 10_000


def _raise_csv_field_limit() -> None:
    """Let CSV fields be any size: the limit is a C long, so sys.maxsize where that fits (not on Windows)."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


class _RowOpen(Exception):
    """A quoted CSV field still open MAX_ROW_LINES lines after it began."""


class _LineSource:
    """The lines fed to the CSV parser, remembering those of the row being parsed so that a row a stray
    quote ran on can be read again from its second line."""

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self._lines, self._back = lines, deque()
        self.row: list[tuple[int, str]] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if len(self.row) >= MAX_ROW_LINES:
            raise _RowOpen
        item = self._back.popleft() if self._back else next(self._lines)
        self.row.append(item)
        return item[1]

    def read_again(self, lines: list[tuple[int, str]]) -> None:
        self._back.extendleft(reversed(lines))


def _check_header(path: Path, header: list[str], line: int, read: Collection[str] = READ_COLUMNS) -> None:
    """Refuse a header naming a column of `read` twice (two `instruction` columns, say): a row's value
    under that name would be the last column's, silently. Other repeated names (blank trailing columns,
    two `notes`) are left alone. The dataset reader's columns by default; a dataset read with
    --instruction-field or --response-field adds those (FieldSpec.read_columns), a calibration file
    gives its own."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen and name in read:
            raise InputError(path, f"the header names the column {name!r} twice (columns {seen[name]} and {number}); "
                                   "rename one", line=line)
        seen.setdefault(name, number)


def _iter_csv(path: Path, encoding: str, read: Collection[str] = READ_COLUMNS):
    """Rows as {header: value}, each numbered by the line it starts on.

    Parsed with strict quoting, so that a quote that does not close where a field ends is an error
    rather than a field that silently swallows the following lines. A row of one line that strict
    parsing rejects (`"a"b,c`) is read leniently, as the csv module always has. A row of several
    lines that fails (a stray or unterminated quote) is a bad record named by the line the quote
    opened on, and the lines after it are read again as rows of their own."""
    _raise_csv_field_limit()
    source = _LineSource(_iter_lines(path, encoding))
    reader = csv.reader(source, strict=True)
    header = None
    while True:
        source.row = []
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RowOpen) as exc:
            lines = source.row
            if not lines:
                return
            if len(lines) == 1 and "unexpected end of data" in str(exc):
                yield "line", lines[0][0], InputError(
                    path, "a quoted field opened on this line is never closed (the file ends inside it): a stray quote? "
                    '(a quote inside a quoted field is written ""), or a file cut off?', line=lines[0][0])
                continue
            if len(lines) == 1:
                row = _lenient_row(lines[0][1])
                if isinstance(row, str):
                    yield "line", lines[0][0], InputError(path, row, line=lines[0][0])
                    continue
            else:
                first, last = lines[0][0], lines[-1][0]
                if isinstance(exc, _RowOpen):
                    why = f"is still open {MAX_ROW_LINES} lines later (line {last})"
                elif "unexpected end of data" in str(exc):
                    why = f"is never closed (the file ends inside it, at line {last})"
                else:
                    why = f"closes in the middle of a field at line {last} ({exc})"
                yield "line", first, InputError(
                    path,
                    f'a quoted field opened on this line {why}: a stray quote? (a quote inside a quoted field is written ""); '
                    f"lines {first + 1}-{last} are read again as rows of their own",
                    line=first,
                )
                source.read_again(lines[1:])
                continue
        start = source.row[0][0] if source.row else 0
        if not row:
            continue
        if header is None:
            _check_header(path, row, start, read)
            header = row
            continue
        if len(row) > len(header) and any(v.strip() for v in row[len(header):]):
            yield "line", start, InputError(
                path, f"{len(row)} fields, but the header has {len(header)} (a comma in an unquoted field?)", line=start
            )
            continue
        record = dict(zip(header, row))
        for name in header[len(row):]:
            record.setdefault(name, None)
        yield "line", start, record


def _lenient_row(line: str) -> list[str] | str:
    """One line parsed with the csv module's forgiving quoting, or the reason it cannot be."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        if "new-line character" in str(exc):
            return "a carriage return inside an unquoted field (old Mac line endings?); save the file with \\n line endings"
        return f"not valid CSV ({exc})"


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


HF_SAVED_HINT = "save the dataset again with save_to_disk, or export it to JSONL or Parquet"


def _hf_split(splits: list) -> str:
    """The split a saved DatasetDict is read from: train, else its first."""
    return "train" if "train" in splits else str(splits[0])


def hf_split_note(path: str | Path) -> str | None:
    """A warning for a saved DatasetDict of several splits: which one was read, and how to read another."""
    path = Path(path)
    try:
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(splits, list) or len(splits) < 2:
        return None
    read = _hf_split(splits)
    other = next(str(s) for s in splits if str(s) != read)
    return (f"{path} holds the splits {', '.join(map(str, splits))}: only {read!r} was read; to analyze another, "
            f"pass its folder ({path / other})")


def _iter_hf_saved(path: Path):
    if (path / "dataset_dict.json").exists():
        splits = _hf_json(path / "dataset_dict.json", "splits")
        if not isinstance(splits, list) or not splits:
            raise InputError(path / "dataset_dict.json", f"'splits' lists no split; {HF_SAVED_HINT}")
        path = path / _hf_split(splits)
    state_file = path / "state.json"
    if not state_file.exists():
        raise InputError(path, "a folder must be a dataset saved with Dataset.save_to_disk (no state.json found)")
    files = _hf_json(state_file, "_data_files")
    if not isinstance(files, list):
        raise InputError(state_file, f"'_data_files' is not a list of files; {HF_SAVED_HINT}")
    n = 0
    for item in files:
        name = item.get("filename") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InputError(state_file, f"an entry of '_data_files' names no file; {HF_SAVED_HINT}")
        for record in _iter_arrow_stream(path / name):
            n += 1
            yield "record", n, record


def _hf_json(path: Path, key: str):
    """`key` of a saved dataset's JSON file, or an InputError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))[key]
    except OSError as exc:
        raise _os_error(path, exc) from None
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, bad UTF-8, no such key, not an object
        raise InputError(path, f"not a saved-dataset file ({type(exc).__name__}: {exc}); {HF_SAVED_HINT}") from None


def _iter_arrow_stream(path: Path):
    """The records of one Arrow stream file of a saved dataset; a missing or broken one is an InputError."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            for batch in pa.ipc.open_stream(source):
                yield from batch.to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"cannot read the Arrow file ({exc}); {HF_SAVED_HINT}") from None


# ---------------------------------------------------------------- shapes


def detect_shape(record: dict, fields: FieldSpec) -> str:
    """Name the sample shape of a record: sharegpt, messages, alpaca, pair, conversation or custom."""
    if fields.instruction:  # naming Alpaca's own field still reads its input and output
        return "alpaca" if fields.instruction == "instruction" and "instruction" in record else "custom"
    for shape in ("sharegpt", "messages"):
        if isinstance(record.get(CHAT_FIELDS[shape][0]), list):
            return shape
    if "instruction" in record:
        return "alpaca"
    if any(k in record for k in INSTRUCTION_KEYS):
        return "pair"
    turns = record.get("conversation")  # lmsys' layout, read only where nothing above names the request
    if isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns):
        return "conversation"
    return ""


# shape: (the list of turns, each turn's role key, its text key); a turn written the other way
# (role/content in ShareGPT, from/value in messages) is read too (`_turn_keys`)
CHAT_FIELDS = {"sharegpt": ("conversations", "from", "value"), "messages": ("messages", "role", "content"),
               "conversation": ("conversation", "role", "content")}


def record_to_turns(record: dict, shape: str, fields: FieldSpec, place: dict) -> tuple[tuple[str, str], ...]:
    """Turn one record into (role, text) turns, raising InputError naming the bad field.

    `shape` is the file's (found on its first good record); a record of another shape is bad."""
    if shape in CHAT_FIELDS:
        key, role_key, text_key = CHAT_FIELDS[shape]
        if key not in record:
            raise _other_shape(record, shape, fields, key, place)
        if not isinstance(record[key], list):
            raise InputError(message=f"expected a list of turns, found {type(record[key]).__name__}", field=key, **place)
        if fields.response:
            raise InputError(message=f"--response-field names {fields.response!r}, but this file's records are chat "
                                     "turns, whose assistant turns are the response: leave it out", **place)
        return _chat_turns(record[key], role_key, text_key, key, place)
    if shape == "alpaca" and "instruction" not in record:
        raise _other_shape(record, shape, fields, "instruction", place)
    if shape == "alpaca":  # the request may sit in `input` alone, with an empty instruction
        extra = _text(record, "input", place, required=False)
        text = _text(record, "instruction", place, required=not extra)
        user = f"{text}\n\n{extra}".strip()
        return _with_response(user, record, fields.response or "output", place)
    if shape == "custom":  # a response the user did not name is read only where it is text
        response_key = fields.response or next((k for k in RESPONSE_KEYS if isinstance(record.get(k), str)
                                                and k != fields.instruction), None)
        return _with_response(_text(record, fields.instruction, place), record, response_key, place)
    key = next((k for k in INSTRUCTION_KEYS if k in record), None)
    if key is None:
        raise _other_shape(record, shape, fields, None, place)
    response_key = fields.response or next((k for k in RESPONSE_KEYS if k in record and k != key), None)
    return _with_response(_text(record, key, place), record, response_key, place)


def _other_shape(record: dict, shape: str, fields: FieldSpec, key: str | None, place: dict) -> InputError:
    """A record without the field its file's shape needs (the shape changed mid-file, or a field is missing)."""
    own = detect_shape(record, FieldSpec())
    looks = f", this one looks like {own}" if own and own != shape else ""
    needs = "the field is missing" if key else f"no instruction field (none of {', '.join(INSTRUCTION_KEYS)})"
    return InputError(
        message=f"{needs}: the file's records are {shape} (found on its first record){looks}; its keys: {_keys(record)}",
        field=key,
        **place,
    )


def _keys(record: dict) -> str:
    """The record's keys for a message: at most 20, each cut short."""
    names = sorted(str(k) for k in record)
    shown = ", ".join(_short(k, 40) for k in names[:20])
    return (shown + f", ... ({len(names)} in all)" if len(names) > 20 else shown) or "none"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _with_response(user: str, record: dict, response_key: str | None, place: dict):
    response = _text(record, response_key, place, required=False) if response_key else ""
    return (("user", user), ("assistant", response)) if response else (("user", user),)


def _text(record: dict, key: str, place: dict, required: bool = True, name: str | None = None) -> str:
    """The text of `record[key]`; errors name the field as `name` (default: `key`)."""
    name = name or key
    if key not in record or record[key] is None:
        if required:
            raise InputError(message="the field is null" if key in record else "the field is missing", field=name, **place)
        return ""
    value = record[key]
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        if required and any(("role" in p or "from" in p) and "text" not in p for p in value):
            raise InputError(message="this field holds chat turns (a role and a text each), not one text; chat turns "
                                     "are read from a `messages`, `conversations` or `conversation` field, without "
                                     "--instruction-field", field=name, **place)
        value = "".join(str(p.get("text", "")) for p in value)
    if not isinstance(value, str):
        raise InputError(message=f"expected text, found {type(value).__name__}", field=name, **place)
    value = value.strip()
    if required and not value:
        raise InputError(message="the instruction is empty", field=name, **place)
    return value


def _turn_keys(msg: dict, role_key: str, text_key: str) -> tuple[str, str]:
    """The role and text keys of one turn: the shape's own, or where the turn lacks one, the other chat
    layout's (ShareGPT files written with role/content, the reverse, and mixes such as role/value)."""
    role = next((k for k in (role_key, "role", "from") if k in msg), role_key)
    text = next((k for k in (text_key, "content", "value") if k in msg), text_key)
    return role, text


def _chat_turns(messages: list, role_key: str, text_key: str, field_name: str, place: dict):
    turns = []
    for i, msg in enumerate(messages):
        where = f"{field_name}[{i}]"
        if not isinstance(msg, dict):
            raise InputError(message=f"expected an object, found {type(msg).__name__}", field=where, **place)
        role_of, text_of = _turn_keys(msg, role_key, text_key)
        role = ROLE_ALIASES.get(str(msg.get(role_of, "")).lower())
        if role is None:
            raise InputError(message=f"unknown role {_short(repr(msg.get(role_of)))}", field=f"{where}.{role_of}", **place)
        text = _text(msg, text_of, place, required=False, name=f"{where}.{text_of}")
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
    duplicates: int = 0  # samples whose content (Sample.content_hash) an earlier sample already had
    content_digest: str = ""  # sha256 over every sample's digest64 in file order: the dataset's content, for merge
    encoding: str = ""  # the codec the file was read with (detected from a byte-order mark, say)
    notes: list[str] = field(default_factory=list)  # what the reader found worth a warning (one split read of several)


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
    for kind, number, record in iter_records(path, encoding, fields.read_columns()):
        if kind == "note":  # something about the file as a whole, for the run's warnings
            state.notes.append(record)
            continue
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

    # 8-byte digests as ints in a set: about 70 bytes a sample (an int of 40 bytes plus its set slot)
    seen: set[int] = set()
    responses, whole = 0, hashlib.sha256()
    for sample in iter_samples(path, fields, encoding=encoding, on_bad=note, state=scan):
        scan.count += 1
        responses += any(role == "assistant" for role, _ in sample.turns)
        digest = sample.digest64()
        whole.update(digest.to_bytes(8, "big"))
        if digest in seen:
            scan.duplicates += 1
        else:
            seen.add(digest)
    del seen
    scan.content_digest = whole.hexdigest()
    if scan.path.is_file() and scan.path.suffix.lower() in TEXT_SUFFIXES:
        scan.encoding = detect_codec(scan.path, encoding)
    if errors and not skip_bad_lines:
        shown = "\n  ".join(str(e) for e in bad)
        more = f"\n  ... and {errors - len(bad)} more" if errors > len(bad) else ""
        raise InputError(
            scan.path, f"{errors} bad record(s):\n  {shown}{more}\nFix them, or pass --skip-bad-lines to skip and report them"
        )
    if not scan.count:
        raise InputError(scan.path, "the dataset holds no samples" if not errors else "no readable samples")
    if fields.response and not responses:
        raise InputError(scan.path, f"no record has a response in the field '{fields.response}' that --response-field "
                                    "names: check its spelling, or leave the option out")
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
            raise InputError(
                message=f"no instruction field found (keys: {_keys(record)}); name it with --instruction-field", **place
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
