"""Fuzzing the readers and the taxonomy loader: no input makes them raise anything but the project's
own errors (OfflineCovError). Deterministic (derandomize) and bounded (max_examples, deadline)."""

import csv
import io
import json
import os
from datetime import timedelta

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from offline_cov.data.readers import FieldSpec, iter_samples, scan_dataset  # noqa: E402
from offline_cov.errors import OfflineCovError  # noqa: E402
from offline_cov.taxonomy import load_taxonomy_file, parse_taxonomy_list  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=timedelta(seconds=5),  # per example: catches a hang or a quadratic blow-up, not a busy machine
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SUFFIXES = (".jsonl", ".json", ".csv")
ENCODINGS = ("utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1")

# Keys the readers look for, so that random records often reach the shape code and not only its errors.
KEYS = st.sampled_from(
    ["instruction", "input", "output", "prompt", "response", "question", "answer", "text", "conversations",
     "messages", "from", "value", "role", "content", "type", "data", "train", "rows"]
) | st.text(max_size=6)
ROLES = st.sampled_from(["human", "gpt", "user", "assistant", "system", "robot", "", "tool"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | ROLES
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=24)


def tokens(pieces, max_size):
    """Text made of the given pieces (characters or words), to hit the parsers' special cases often."""
    return st.lists(st.sampled_from(pieces), max_size=max_size).map("".join)


CELLS = tokens(list('ab ,"\n\r\t\\é\u2028\x00') + ["prompt", "response"], 10)


def read_everything(path, encoding="utf-8", fields=None):
    """Every way the pipeline reads a file; only OfflineCovError may come out."""
    fields = fields or FieldSpec()
    for skip in (False, True):
        try:
            scan = scan_dataset(path, fields, encoding=encoding, skip_bad_lines=skip)
        except OfflineCovError:
            scan = None
        if scan is not None:
            assert 0 <= scan.duplicates < scan.count
            bad = []
            samples = list(iter_samples(path, fields, encoding=encoding, on_bad=bad.append))
            assert len(samples) == scan.count and [s.index for s in samples] == list(range(scan.count))
            assert all(isinstance(s.instruction, str) and s.instruction for s in samples)
            assert (len(bad) == len(scan.skipped)) if skip else not bad
    try:
        for _ in iter_samples(path, fields, encoding=encoding):
            pass
    except OfflineCovError:
        pass


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES), encoding=st.sampled_from(ENCODINGS))
@example(data=b"\xff\xfe\x00\x00", suffix=".jsonl", encoding="utf-8")
@example(data=b'"' + b"[" * 5000, suffix=".json", encoding="utf-8")
@example(data=b"1" * 5000, suffix=".jsonl", encoding="utf-8")
@example(data=b"a\rb\r", suffix=".csv", encoding="utf-8")
def test_random_bytes(folder, data, suffix, encoding):
    path = folder / f"bytes{suffix}"
    path.write_bytes(data)
    read_everything(path, encoding)


@FUZZ
@given(records=st.lists(JSON, max_size=6), layout=st.sampled_from(["jsonl", "array", "data", "value"]),
       noise=st.text(max_size=8), encoding=st.sampled_from(ENCODINGS[:4]))
def test_random_json(folder, records, layout, noise, encoding):
    if layout == "jsonl":
        text, suffix = "\n".join(json.dumps(r) for r in records) + "\n" + noise, ".jsonl"
    elif layout == "array":
        text, suffix = json.dumps(records) + noise, ".json"
    elif layout == "data":
        text, suffix = json.dumps({"data": records}), ".json"
    else:
        text, suffix = json.dumps(records[0] if records else None), ".json"
    path = folder / f"json{suffix}"
    path.write_bytes(text.encode(encoding, "surrogatepass"))
    read_everything(path, encoding)


@FUZZ
@given(header=st.lists(CELLS, min_size=1, max_size=3), rows=st.lists(st.lists(CELLS, max_size=4), max_size=8),
       quoted=st.booleans(), field=st.sampled_from([None, "prompt", "a"]))
@example(header=["prompt", "response"], rows=[["a", "b"], ['"c', "d"], ["e", "f"]], quoted=False, field=None)
def test_random_csv(folder, header, rows, quoted, field):
    path = folder / "rows.csv"
    if quoted:  # what a CSV writer produces: every quote and newline escaped
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *rows])
        text = buffer.getvalue()
    else:  # hand-made CSV: stray quotes, bare newlines, ragged rows
        text = "\n".join(",".join(row) for row in [header, *rows])
    path.write_text(text, encoding="utf-8", newline="")
    read_everything(path, fields=FieldSpec(field) if field else FieldSpec())


# ---------------------------------------------------------------- taxonomy

TAXONOMY_VALUES = st.recursive(
    SCALARS | st.sampled_from(["name", "description", "target_share", "examples", "categories"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["name", "description", "target_share", "examples", "categories", "math", "code"]) | st.text(max_size=5), inner, max_size=4),
    max_leaves=16,
)
YAML_TEXT = tokens(list("ab:-,[]{}&*!|>'\"#%@` \n\t?=.0123456789") + ["2001-13-01", "!!binary", "1e999", "categories", "target_share"], 40)


@FUZZ
@given(text=YAML_TEXT | st.text(max_size=40), suffix=st.sampled_from([".yaml", ".yml", ".json"]))
@example(text="a: 2001-13-01\n", suffix=".yaml")
@example(text="1" * 5000, suffix=".json")
@example(text="[" * 5000, suffix=".json")
@example(text="[" * 5000, suffix=".yaml")
def test_taxonomy_file_text(folder, text, suffix):
    path = folder / f"taxonomy{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_taxonomy_file(path)
    except OfflineCovError:
        pass


@FUZZ
@given(value=TAXONOMY_VALUES, as_json=st.booleans())
def test_taxonomy_file_structures(folder, value, as_json):
    yaml = pytest.importorskip("yaml")
    path = folder / ("structured.json" if as_json else "structured.yaml")
    path.write_text(json.dumps(value) if as_json else yaml.safe_dump(value), encoding="utf-8")
    try:
        load_taxonomy_file(path)
    except OfflineCovError:
        pass


@FUZZ
@given(text=tokens(list("ab =,.-+0123456789eE\t\n") + ["nan", "inf", "math"], 30) | st.text(max_size=20))
def test_taxonomy_list(text):
    try:
        parse_taxonomy_list(text)
    except OfflineCovError:
        pass
