"""Every input format and sample shape, and the errors bad input gets."""

import json
import re

import pytest

from offline_cov.data.readers import FieldSpec, Sample, draw_sample, read_samples, scan_dataset
from offline_cov.errors import InputError


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_alpaca_joins_instruction_and_input(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Summarize", "input": "Long text", "output": "Short"}])
    read = read_samples(f)
    assert read.shape == "alpaca"
    assert read.samples[0].turns == (("user", "Summarize\n\nLong text"), ("assistant", "Short"))


def test_sharegpt_keeps_every_turn(tmp_path):
    conv = [{"from": "system", "value": "Be brief"}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
            {"from": "human", "value": "Add 2+2"}, {"from": "gpt", "value": "4"}]
    f = write_jsonl(tmp_path / "s.jsonl", [{"conversations": conv}])
    sample = read_samples(f).samples[0]
    assert [r for r, _ in sample.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert sample.instruction == "Hi" and "USER: Add 2+2" in sample.render()


def test_openai_messages_with_content_parts(tmp_path):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Write a poem"}]}, {"role": "assistant", "content": "Roses"}]
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"messages": msgs}]))
    read = read_samples(f)
    assert read.shape == "messages" and read.samples[0].turns == (("user", "Write a poem"), ("assistant", "Roses"))


@pytest.mark.parametrize(
    "row, instruction, response",
    [
        ({"prompt": "P", "response": "R"}, "P", "R"),
        ({"prompt": "P", "completion": "C"}, "P", "C"),
        ({"question": "Q", "answer": "A"}, "Q", "A"),
        ({"instruction": "only"}, "only", ""),
        ({"prompt": "only prompt"}, "only prompt", ""),
    ],
)
def test_pair_shapes(tmp_path, row, instruction, response):
    sample = read_samples(write_jsonl(tmp_path / "p.jsonl", [row])).samples[0]
    assert (sample.instruction, sample.response) == (instruction, response)


def test_field_overrides(tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [{"ask": "Translate this", "reply": "Done", "prompt": "ignored"}])
    sample = read_samples(f, FieldSpec("ask", "reply")).samples[0]
    assert sample.turns == (("user", "Translate this"), ("assistant", "Done"))


def test_a_response_field_no_record_has_is_an_error(tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Translate this", "reply": "Done"}, {"prompt": "Sum 2 and 2"}])
    with pytest.raises(InputError, match="no record has a response in the field 'nope'"):
        scan_dataset(f, FieldSpec("prompt", "nope"))
    assert scan_dataset(f, FieldSpec("prompt", "reply")).count == 2  # one record without it is fine


def test_csv_and_parquet(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('question,answer\n"What is 2+2?",4\n"Name a color",blue\n', encoding="utf-8")
    assert [s.instruction for s in read_samples(csv_file).samples] == ["What is 2+2?", "Name a color"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["a", "b"], "response": ["x", "y"]}), tmp_path / "d.parquet")
    assert [s.response for s in read_samples(tmp_path / "d.parquet").samples] == ["x", "y"]
    assert scan_dataset(csv_file).encoding == "utf-8-sig" and scan_dataset(tmp_path / "d.parquet").encoding == ""


def test_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"instruction": ["one", "two", "three"], "output": ["1", "2", "3"]})
    ds.save_to_disk(str(tmp_path / "saved"))
    assert [s.instruction for s in read_samples(tmp_path / "saved").samples] == ["one", "two", "three"]
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert len(read_samples(tmp_path / "dd").samples) == 3
    assert len(read_samples(tmp_path / "dd" / "test").samples) == 1  # another split: its folder

    from offline_cov.data.readers import hf_split_note

    note = hf_split_note(tmp_path / "dd")
    assert note == (f"{tmp_path / 'dd'} holds the splits train, test: only 'train' was read; to analyze another, "
                    f"pass its folder ({tmp_path / 'dd' / 'test'})")
    assert hf_split_note(tmp_path / "saved") is None
    from offline_cov.data.plan import DatasetPlan
    from offline_cov.options import AnalyzeOptions
    from offline_cov.run import sample_warnings

    assert note in sample_warnings(DatasetPlan.of(tmp_path / "dd", AnalyzeOptions()))  # the run's warnings
    assert not any("splits" in w for w in sample_warnings(DatasetPlan.of(tmp_path / "saved", AnalyzeOptions())))


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "state.json").write_text("{"), "state.json: not a saved-dataset file (JSONDecodeError"),
    (lambda d: (d / "state.json").write_text('{"_data_files": 3}'), "state.json: '_data_files' is not a list"),
    (lambda d: [f.unlink() for f in d.glob("*.arrow")], ".arrow: cannot read the Arrow file"),
    (lambda d: [f.write_text("garbage") for f in d.glob("*.arrow")], ".arrow: cannot read the Arrow file"),
])
def test_a_broken_saved_dataset_folder_names_the_file(tmp_path, damage, words):
    """A damaged save_to_disk folder once ended in a JSONDecodeError or pyarrow traceback."""
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"instruction": ["one", "two"]}).save_to_disk(str(tmp_path / "saved"))
    damage(tmp_path / "saved")
    with pytest.raises(InputError, match="save the dataset again") as err:
        read_samples(tmp_path / "saved")
    assert words in str(err.value)


def test_a_broken_dataset_dict_json_names_the_file(tmp_path):
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text("nope")
    with pytest.raises(InputError, match=r"dataset_dict.json: not a saved-dataset file"):
        read_samples(tmp_path / "dd")


def test_a_turn_whose_text_is_not_text_names_the_turn(tmp_path):
    """The error once named the field 'content' alone, not which turn (the role's error says messages[1].role)."""
    f = write_jsonl(tmp_path / "t.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 5}]},
                                           {"conversations": [{"from": "human", "value": ["x"]}]}])
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert "line 1, field 'messages[1].content': expected text, found int" in str(err.value)
    f = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "human", "value": ["x"]}]}])
    with pytest.raises(InputError, match=r"line 1, field 'conversations\[0\].value': expected text, found list"):
        read_samples(f)


def test_malformed_lines_name_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "ok"}\n{"prompt": oops}\n{"prompt": "fine"}\n{broken\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_samples(f)
    text = str(err.value)
    assert "2 bad record(s)" in text and "line 2" in text and "line 4" in text and "--skip-bad-lines" in text
    read = read_samples(f, skip_bad_lines=True)
    assert [s.instruction for s in read.samples] == ["ok", "fine"]
    assert len(read.skipped) == 2 and "line 4" in read.skipped[1]
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"prompt": "ok"}\n{"prompt": "cut off here\n', encoding="utf-8")  # was "Invalid control character"
    with pytest.raises(InputError, match="line 2: malformed JSON \\(Unterminated string starting at column 12\\)"):
        read_samples(cut)


def test_a_key_given_twice_in_a_jsonl_record_is_refused_with_its_line_and_field(tmp_path):
    """json.loads keeps the last of two values for one key: the second instruction was read without a word."""
    f = tmp_path / "d.jsonl"
    f.write_text('{"instruction": "a", "output": "x"}\n{"instruction": "a", "instruction": "b", "output": "x"}\n'
                 '{"messages": [{"role": "user", "content": "hi", "content": "ho"}]}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_samples(f)
    text = str(err.value)
    assert "2 bad record(s)" in text
    assert f"{f}, line 2, field 'instruction': the key appears twice in one object" in text
    assert f"{f}, line 3, field 'content': the key appears twice" in text and "keep one" in text
    assert [s.instruction for s in read_samples(f, skip_bad_lines=True).samples] == ["a"]


@pytest.mark.parametrize("wrap", ["{}", '{{"data": {}}}'])
def test_a_key_given_twice_in_a_json_array_record_names_the_record_and_field(tmp_path, wrap):
    """As in JSONL, each record with a key given twice is a bad record (skipped with --skip-bad-lines)."""
    f = tmp_path / "d.json"
    rows = ('[{"instruction": "a", "output": "x"},\n {"instruction": "b", "output": "x", "output": "y"},\n'
            ' {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "role": "user", "content": "ho"}]}]')
    f.write_text(wrap.format(rows), encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_samples(f)
    text = str(err.value)
    assert f"{f} (record 2), field 'output': the key appears twice" in text
    assert f"{f} (record 3), field 'role': the key appears twice" in text
    assert [s.instruction for s in read_samples(f, skip_bad_lines=True).samples] == ["a"]


def test_a_key_given_twice_around_a_json_files_records_is_refused(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('{"data": [{"instruction": "a"}],\n "data": [{"instruction": "b"}]}', encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{f}, field 'data': the key appears twice in one object")):
        read_samples(f)


def test_wrong_type_and_empty_instruction(tmp_path):
    f = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "fine"}, {"prompt": 42}, {"prompt": "   "}])
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert "line 2, field 'prompt': expected text, found int" in str(err.value)
    assert "line 3, field 'prompt': the instruction is empty" in str(err.value)


def test_no_instruction_field(tmp_path):
    f = write_jsonl(tmp_path / "n.jsonl", [{"foo": "x", "bar": "y"}])
    with pytest.raises(InputError, match="no instruction field found .*bar, foo.*--instruction-field"):
        read_samples(f)


def test_wrong_encoding_says_what_to_do(tmp_path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes('{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"line 2.*--encoding"):
        read_samples(f)
    assert read_samples(f, encoding="latin-1").samples[1].instruction == "café"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_a_compressed_file_is_named_as_such_not_sent_to_another_encoding(tmp_path, suffix):
    """A gzip'd file named .jsonl was told to try --encoding latin-1, which cannot help."""
    import gzip

    f = tmp_path / f"data{suffix}"
    f.write_bytes(gzip.compress(b'{"prompt": "hello"}\n' * 50))
    with pytest.raises(InputError, match="gzip-compressed file, not text: decompress it first") as err:
        read_samples(f)
    assert "--encoding" not in str(err.value)


def test_empty_file_and_missing_file(tmp_path):
    for name in ("e.jsonl", "e.json"):  # an empty .json said "malformed JSON (Expecting value, column 1)"
        (tmp_path / name).write_text(" \n")
        with pytest.raises(InputError, match="the dataset holds no samples"):
            read_samples(tmp_path / name)
    (tmp_path / "n.json").write_text('[{"instruction": null, "output": "x"}]')
    with pytest.raises(InputError, match="field 'instruction': the field is null"):
        read_samples(tmp_path / "n.json")
    with pytest.raises(InputError, match="no such file"):
        read_samples(tmp_path / "absent.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown file type"):
        read_samples(tmp_path / "x.txt")


def test_chat_layouts_users_bring_are_read(tmp_path):
    """OpenAI's `developer` role, ShareGPT turns written as role/content, and lmsys' `conversation` list
    were each refused on every line (audit, session 26)."""
    turns = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
             {"role": "assistant", "content": "4"}]
    want = (("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"))
    for key in ("messages", "conversations", "conversation"):
        read = read_samples(write_jsonl(tmp_path / f"{key}.jsonl", [{key: turns, "model": "x"}]))
        assert read.samples[0].turns == want, key
    plain = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    assert read_samples(write_jsonl(tmp_path / "m.jsonl", [{"messages": plain}])).samples[0].instruction == "Hi"


def test_a_field_of_chat_turns_named_as_the_instruction_says_to_leave_it_out(tmp_path):
    f = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "human", "value": "Hi"}]}])
    with pytest.raises(InputError, match="field 'conversations': this field holds chat turns .* without "
                                         "--instruction-field"):
        read_samples(f, FieldSpec("conversations"))
    with pytest.raises(InputError, match="--response-field names 'reply', but this file's records are chat turns"):
        read_samples(f, FieldSpec(None, "reply"))


@pytest.mark.parametrize("row, fields, turns", [
    ({"problem": "What is 6*7?", "answer": 42}, FieldSpec("problem"), (("user", "What is 6*7?"),)),
    ({"prompt": "Write a poem", "chosen": [{"role": "assistant", "content": "Cats purr"}]}, FieldSpec(),
     (("user", "Write a poem"),)),
    ({"prompt": "Write a poem", "chosen": [{"role": "assistant", "content": "Cats purr"}]}, FieldSpec("prompt"),
     (("user", "Write a poem"),)),
    ({"prompt": "what is 2+2", "output": []}, FieldSpec(), (("user", "what is 2+2"),)),
    ({"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": [], "tool_calls": [{}]},
                   {"role": "assistant", "content": "42"}]}, FieldSpec(), (("user", "hi there"), ("assistant", "42"))),
    ({"prompt": "what is 2+2", "response": "4", "conversation": ["what is 2+2", "4"]}, FieldSpec(),
     (("user", "what is 2+2"), ("assistant", "4"))),
    ({"conversations": [{"role": "user", "value": "Hi"}, {"role": "assistant", "value": "Hello"}]}, FieldSpec(),
     (("user", "Hi"), ("assistant", "Hello"))),
])
def test_records_read_before_the_chat_layouts_are_read_the_same(tmp_path, row, fields, turns):
    """What session 26's first reader changes broke (a review of them): a response that is not text or
    is chat turns, an empty list, a `conversation` list beside the request, role/value turns."""
    assert read_samples(write_jsonl(tmp_path / "r.jsonl", [row]), fields).samples[0].turns == turns


def test_naming_the_standard_instruction_field_keeps_the_rest_of_the_record(tmp_path):
    """`--instruction-field instruction` on Alpaca records dropped their input and output, and naming a
    pair's prompt dropped its response, silently (audit, session 26)."""
    alpaca = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Summarize", "input": "Long text", "output": "Short"}])
    assert read_samples(alpaca, FieldSpec("instruction")).samples[0].turns == read_samples(alpaca).samples[0].turns
    pair = write_jsonl(tmp_path / "p.jsonl", [{"ask": "Translate this", "response": "Done"}])
    assert read_samples(pair, FieldSpec("ask")).samples[0].turns == (("user", "Translate this"), ("assistant", "Done"))


def test_a_json_object_of_several_splits_reads_one_and_says_which(tmp_path):
    """{"train": [...], "test": [...]} read 'train' alone without a word (audit, session 26)."""
    f = tmp_path / "splits.json"
    f.write_text(json.dumps({"train": [{"prompt": "a"}, {"prompt": "b"}], "test": [{"prompt": "c"}], "name": "x"}))
    scan = scan_dataset(f)
    assert scan.count == 2 and scan.notes == [f"{f} holds several lists of records (train, test): only 'train' was "
                                              "read; to analyze another, save it as a file of its own (a JSON array "
                                              "or JSONL)"]
    f.write_text(json.dumps({"data": [{"prompt": "a"}], "meta": {"n": 1}, "labels": [{"x": 1}]}))
    assert scan_dataset(f).notes == []  # a list of other records is not a split


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path):
    """Two `instruction` columns: the last one was read, silently (audit, session 26). Empty names (a
    spreadsheet's trailing columns) may repeat."""
    f = tmp_path / "d.csv"
    f.write_text("instruction,output,instruction\nAdd 2 and 2,4,Write a poem\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: the header names the column 'instruction' twice \\(columns 1 and 3\\)"):
        read_samples(f)
    for header in ("instruction,output,,", "instruction,output,notes,notes"):  # columns it does not read
        f.write_text(f"{header}\nAdd 2 and 2,4,a,b\n", encoding="utf-8")
        assert read_samples(f).samples[0].turns == (("user", "Add 2 and 2"), ("assistant", "4"))



@pytest.mark.parametrize("header, fields, name, second", [
    ("ask,reply,ask", FieldSpec("ask"), "ask", 3),
    ("ask,reply,reply", FieldSpec("ask", "reply"), "reply", 3),
])
def test_a_csv_header_naming_a_field_the_user_named_twice_is_refused(tmp_path, header, fields, name, second):
    """Two columns named as --instruction-field or --response-field names: the last one was read, silently,
    as the header check knew only the reader's own column names. Columns nobody reads may repeat."""
    f = tmp_path / "d.csv"
    f.write_text(f"{header}\nAdd 2 and 2,4,Write a poem\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"line 1: the header names the column '{name}' twice "
                                         f"\\(columns {header.split(',').index(name) + 1} and {second}\\)"):
        read_samples(f, fields)
    f.write_text("ask,reply,notes,notes\nAdd 2 and 2,4,a,b\n", encoding="utf-8")
    assert read_samples(f, FieldSpec("ask", "reply")).samples[0].turns == (("user", "Add 2 and 2"), ("assistant", "4"))

def test_bad_chat_role(tmp_path):
    f = write_jsonl(tmp_path / "r.jsonl", [{"messages": [{"role": "robot", "content": "hi"}]}])
    with pytest.raises(InputError, match=r"field 'messages\[0\].role': unknown role 'robot'"):
        read_samples(f)


def test_draw_sample_is_reproducible(tmp_path):
    f = write_jsonl(tmp_path / "many.jsonl", [{"prompt": f"p{i}"} for i in range(100)])
    samples = read_samples(f).samples
    one, two = draw_sample(samples, 10, seed=3), draw_sample(samples, 10, seed=3)
    assert [s.index for s in one] == [s.index for s in two]
    assert [s.index for s in one] != [s.index for s in draw_sample(samples, 10, seed=4)]
    assert len(draw_sample(samples, None)) == 100 and len(draw_sample(samples, 500)) == 100


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps({"prompt": "one\u2028two\x85three"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_samples(f).samples[0].instruction == "one\u2028two\x85three"


# ---------------------------------------------------------------- encodings (UTF-16/32, byte-order marks)

ROWS = [{"prompt": "café", "response": "naïve"}, {"prompt": "日本", "response": "😀"}]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_utf16_and_utf32_with_or_without_bom(tmp_path, codec, suffix):
    if suffix == ".jsonl":
        text = "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n"
    elif suffix == ".json":
        text = json.dumps(ROWS, ensure_ascii=False)
    else:
        text = "prompt,response\r\ncafé,naïve\r\n日本,😀\r\n"
    f = tmp_path / f"d{suffix}"
    f.write_bytes(text.encode(codec))  # utf-16, utf-32 and utf-8-sig write a byte-order mark, the others none
    expected = [(("user", "café"), ("assistant", "naïve")), (("user", "日本"), ("assistant", "😀"))]
    assert [s.turns for s in read_samples(f, encoding=codec).samples] == expected
    # With the default --encoding utf-8 the byte-order mark, or the NUL bytes of an ASCII first
    # character, say which encoding the file is in.
    assert [s.turns for s in read_samples(f).samples] == expected
    assert scan_dataset(f).encoding == codec  # what it was read with, for the run's metadata
    if codec.endswith(("-le", "-be")):  # --encoding utf-16 / utf-32 on a file without a byte-order mark
        family = codec[:6]
        assert [s.turns for s in read_samples(f, encoding=family).samples] == expected


def test_bom_with_an_explicit_byte_order_is_dropped(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xff\xfe" + '{"prompt": "x"}\n'.encode("utf-16-le"))
    assert read_samples(f, encoding="utf-16-le").samples[0].instruction == "x"


def test_undecodable_utf16_names_byte_line_and_the_guessed_encoding(tmp_path):
    f = tmp_path / "cut.jsonl"
    f.write_bytes('{"prompt": "a"}\n{"prompt": "b"}\n'.encode("utf-16-le")[:-1])  # an odd number of bytes
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert str(err.value) == (
        f"{f}, line 2: not valid utf-16-le text at byte 62 (guessed from the file's first bytes); "
        "if the file is not UTF-8, pass --encoding (for example --encoding latin-1 or --encoding utf-16)"
    )


def test_decode_error_position_is_exact_past_the_first_chunk(tmp_path, monkeypatch):
    import offline_cov.data.readers as readers

    monkeypatch.setattr(readers, "DECODE_CHUNK", 7)  # the bad byte lies many chunks in, mid-sequence
    f = tmp_path / "late.jsonl"
    good = "".join(json.dumps({"prompt": f"é{i}"}, ensure_ascii=False) + "\n" for i in range(5)).encode()
    f.write_bytes(good + b'{"prompt": "\xe9"}\n')
    with pytest.raises(InputError, match=rf"line 6: not valid utf-8 text at byte {len(good) + 12};"):
        read_samples(f)


# ---------------------------------------------------------------- CSV fields of any size


def test_csv_field_over_the_csv_modules_128k_limit(tmp_path):
    f = tmp_path / "big.csv"
    f.write_text('prompt,response\n"' + "x" * 300_000 + '",short\n', encoding="utf-8")
    sample = read_samples(f).samples[0]
    assert sample.instruction == "x" * 300_000 and sample.response == "short"


# ---------------------------------------------------------------- a shape that changes mid-file


def test_shape_change_mid_file_is_a_bad_record_naming_its_line(tmp_path):
    rows = [{"instruction": f"i{n}", "output": "o"} for n in range(4)] + [{"conversations": [{"from": "human", "value": "hi"}]}]
    f = write_jsonl(tmp_path / "mixed.jsonl", rows)
    message = (
        f"{f}, line 5, field 'instruction': the field is missing: the file's records are alpaca (found on its first "
        "record), this one looks like sharegpt; its keys: conversations"
    )
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert f"1 bad record(s):\n  {message}\n" in str(err.value)
    read = read_samples(f, skip_bad_lines=True)
    assert [s.instruction for s in read.samples] == ["i0", "i1", "i2", "i3"] and read.skipped == [message]


@pytest.mark.parametrize(
    "first, later, words",
    [
        ({"prompt": "p"}, {"conversations": []},
         "line 2: no instruction field (none of instruction, prompt, question, query, input, text): the file's records "
         "are pair (found on its first record), this one looks like sharegpt; its keys: conversations"),
        ({"conversations": [{"from": "human", "value": "hi"}]}, {"prompt": "p"},
         "line 2, field 'conversations': the field is missing: the file's records are sharegpt (found on its first "
         "record), this one looks like pair; its keys: prompt"),
        ({"messages": [{"role": "user", "content": "hi"}]}, {"other": 1},
         "line 2, field 'messages': the field is missing: the file's records are messages (found on its first record); "
         "its keys: other"),
        ({"messages": [{"role": "user", "content": "hi"}]}, {"messages": None},
         "line 2, field 'messages': expected a list of turns, found NoneType"),
    ],
)
def test_missing_shape_field_is_a_bad_record_not_a_crash(tmp_path, first, later, words):
    f = write_jsonl(tmp_path / "m.jsonl", [first, later])
    with pytest.raises(InputError, match="1 bad record") as err:
        read_samples(f)
    assert words in str(err.value)
    assert len(read_samples(f, skip_bad_lines=True).samples) == 1


# ---------------------------------------------------------------- CSV rows a stray quote would merge


def rows_csv(tmp_path, lines):
    f = tmp_path / "rows.csv"
    f.write_text("prompt,response\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return f


def test_stray_quote_mid_file_names_the_line_it_opened_on(tmp_path):
    lines = [f"p{i},r{i}" for i in range(120)]
    lines[50] = '"p50,r50'  # opens a quoted field, closed by the quote on line 62
    lines[60] = 'p60,"r60"'
    f = rows_csv(tmp_path, lines)  # the header is line 1, so row i is on line i + 2
    message = (
        f"{f}, line 52: a quoted field opened on this line closes in the middle of a field at line 62 (',' expected "
        "after '\"'): a stray quote? (a quote inside a quoted field is written \"\"); lines 53-62 are read again as rows "
        "of their own"
    )
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert f"1 bad record(s):\n  {message}\n" in str(err.value)
    read = read_samples(f, skip_bad_lines=True)
    assert read.skipped == [message]
    assert [s.instruction for s in read.samples] == [f"p{i}" for i in range(120) if i != 50]
    assert read.samples[59].turns == (("user", "p60"), ("assistant", "r60"))


def test_unterminated_quote_runs_to_the_end_of_the_file(tmp_path):
    lines = [f"p{i},r{i}" for i in range(10)]
    lines[3] = '"p3,r3'
    f = rows_csv(tmp_path, lines)
    with pytest.raises(InputError, match=r"line 5: a quoted field opened on this line is never closed \(the file ends "
                                         r"inside it, at line 11\).*lines 6-11 are read again"):
        read_samples(f)
    assert len(read_samples(f, skip_bad_lines=True).samples) == 9


@pytest.mark.parametrize("last", ['"p9,r9', 'p9,"r9'])
def test_unterminated_quote_on_the_last_line_is_a_bad_record(tmp_path, last):
    """A quote opened on the file's last line was read leniently, as if closed: a cut-off row kept as a sample."""
    f = rows_csv(tmp_path, [f"p{i},r{i}" for i in range(9)] + [last])
    with pytest.raises(InputError, match=r"line 11: a quoted field opened on this line is never closed \(the file ends "
                                         r"inside it\)"):
        read_samples(f)
    assert len(read_samples(f, skip_bad_lines=True).samples) == 9


def test_quote_open_too_many_lines_is_given_up_on(tmp_path, monkeypatch):
    import offline_cov.data.readers as readers

    monkeypatch.setattr(readers, "MAX_ROW_LINES", 4)
    f = rows_csv(tmp_path, ['"p0,r0'] + [f"p{i},r{i}" for i in range(1, 10)] + ['p10,"r10"'])
    read = read_samples(f, skip_bad_lines=True)
    assert read.skipped == [
        f"{f}, line 2: a quoted field opened on this line is still open 4 lines later (line 5): a stray quote? "
        "(a quote inside a quoted field is written \"\"); lines 3-5 are read again as rows of their own"
    ]
    assert [s.instruction for s in read.samples] == [f"p{i}" for i in range(1, 11)]


def test_well_formed_and_sloppy_csv_still_read(tmp_path):
    f = rows_csv(tmp_path, ['"two\nlines, with a comma",ok', 'q,"a ""quoted"" word"', '"x"y,lenient', "a,b,", "c"])
    read = read_samples(f)
    assert [s.turns for s in read.samples] == [
        (("user", "two\nlines, with a comma"), ("assistant", "ok")),
        (("user", "q"), ("assistant", 'a "quoted" word')),
        (("user", "xy"), ("assistant", "lenient")),  # a quote closed mid-field on one line: read as the csv module does
        (("user", "a"), ("assistant", "b")),  # an empty trailing field is no extra field
        (("user", "c"),),
    ]


def test_csv_row_with_more_fields_than_the_header(tmp_path):
    f = rows_csv(tmp_path, ["a,b", "Hello, world,reply", "c,d"])
    with pytest.raises(InputError) as err:
        read_samples(f)
    assert f"{f}, line 3: 3 fields, but the header has 2 (a comma in an unquoted field?)" in str(err.value)


def test_csv_bare_carriage_returns(tmp_path):
    f = tmp_path / "mac.csv"
    f.write_bytes(b"prompt,response\ra,b\r")
    with pytest.raises(InputError, match=r"line 1: a carriage return inside an unquoted field \(old Mac line endings\?\)"):
        read_samples(f)


# ---------------------------------------------------------------- duplicates


def test_scan_counts_exact_duplicates(tmp_path):
    rows = [{"prompt": "a", "response": "1"}, {"prompt": "b"}, {"prompt": "a", "response": "1"},
            {"prompt": " a ", "response": "1"}, {"prompt": "a", "response": "2"}, {"prompt": "b"}]
    scan = scan_dataset(write_jsonl(tmp_path / "dup.jsonl", rows))
    assert (scan.count, scan.duplicates) == (6, 3)  # rows 3, 4 (same text once stripped) and 6


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_content_hash_is_the_sha256_of_the_json_turns(monkeypatch, chunk):
    import hashlib

    import offline_cov.data.readers as readers

    monkeypatch.setattr(readers, "HASH_CHUNK", chunk)
    for turns in [(("user", "plain"),), (("user", 'q "x"\n\t\\ é 日本 😀 \ud800 \x00'), ("assistant", "")),
                  (("system", "s"), ("user", "u"), ("assistant", "a" * 10))]:
        sample = Sample(0, turns)
        assert sample.content_hash() == hashlib.sha256(json.dumps(turns).encode("utf-8")).hexdigest()
        assert sample.digest64() == int(sample.content_hash()[:16], 16)


# ---------------------------------------------------------------- memory: one very long line


def test_one_long_jsonl_line_is_not_copied_over_and_over(tmp_path):
    import tracemalloc

    size = 10_000_000
    f = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "x" * size, "response": "y"}, {"prompt": "short"}])
    tracemalloc.start()
    try:
        scan = scan_dataset(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scan.count == 2
    # the line as read and its parsed text, with the reader's buffer: about 2.2 times the line (3.0 before)
    assert peak < 2.5 * size


def test_content_hash_of_a_long_text_holds_one_chunk(tmp_path):
    import tracemalloc

    sample = Sample(0, (("user", "é" * 10_000_000),))
    tracemalloc.start()
    try:
        sample.content_hash()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # json.dumps would build 60 MB of "\\u00e9" escapes, then 60 MB of bytes
