"""Every input format and sample shape, and the errors bad input gets."""

import json

import pytest

from offline_cov.data.readers import FieldSpec, draw_sample, read_samples
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


def test_csv_and_parquet(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('question,answer\n"What is 2+2?",4\n"Name a color",blue\n', encoding="utf-8")
    assert [s.instruction for s in read_samples(csv_file).samples] == ["What is 2+2?", "Name a color"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["a", "b"], "response": ["x", "y"]}), tmp_path / "d.parquet")
    assert [s.response for s in read_samples(tmp_path / "d.parquet").samples] == ["x", "y"]


def test_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"instruction": ["one", "two", "three"], "output": ["1", "2", "3"]})
    ds.save_to_disk(str(tmp_path / "saved"))
    assert [s.instruction for s in read_samples(tmp_path / "saved").samples] == ["one", "two", "three"]
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert len(read_samples(tmp_path / "dd").samples) == 3


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


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(InputError, match="no samples"):
        read_samples(tmp_path / "e.jsonl")
    with pytest.raises(InputError, match="no such file"):
        read_samples(tmp_path / "absent.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown file type"):
        read_samples(tmp_path / "x.txt")


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
