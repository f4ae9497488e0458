"""`offline-cov review` writes the calibration file; `analyze --calibration` corrects the shares with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from offline_cov.cli import main
from offline_cov.errors import InputError
from offline_cov.report.contract import contract_violations
from offline_cov.report.tally import SampleLabel, balance_score
from offline_cov.review import parse_answer, stratified_sample

NAMES = ["math", "code", "writing"]


def labeled_run(tmp_path, fake_engines):
    """The bundled example analyzed with the fake engine: report, metadata and labels files."""
    from conftest import EXAMPLE

    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", ",".join(NAMES),
                                       "-o", str(out), "--labels", str(tmp_path / "l.jsonl"), "-q"])
    assert result.exit_code == 0, result.output
    return EXAMPLE, out, tmp_path / "l.jsonl"


def test_parse_answer():
    assert parse_answer("", "code", NAMES).category == "code"
    assert parse_answer(" 3 ", "code", NAMES).category == "writing"
    assert parse_answer("s", "code", NAMES).skipped and parse_answer("Q", "code", NAMES).stop
    assert parse_answer("4", "code", NAMES) is None and parse_answer("maths", "code", NAMES) is None
    assert parse_answer(" Writing ", "code", NAMES).category == "writing"  # a category typed by name


def test_the_sample_is_stratified_seeded_and_floors_rare_categories():
    labels = [SampleLabel(i, ("math",), "easy") for i in range(90)] + [SampleLabel(90 + i, ("code",), "easy") for i in range(10)]
    picked = stratified_sample(labels, 20, seed=3)
    assert len(picked) == 20 and picked == stratified_sample(labels, 20, seed=3)
    assert len(stratified_sample(labels, 7, seed=0)) == 7 and len(stratified_sample(labels, 500, seed=0)) == 100
    assert sum(lab.categories[0] == "code" for lab in picked) >= 5
    assert len({lab.index for lab in picked}) == 20


def test_review_walks_saves_and_resumes(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calibration.jsonl"
    args = ["review", str(data), "--labels", str(labels), "--metadata", str(report.with_suffix(".meta.json")),
            "-o", str(calib), "-n", "6", "--seed", "1"]
    first = CliRunner().invoke(main, args, input="\n2\nwhat\ns\nq\n")
    assert first.exit_code == 0, first.output
    assert "proposed:" in first.output and "1=math  2=code  3=writing" in first.output
    assert "not understood: 'what'" in first.output
    assert "3 answer(s) saved (1 skipped)" in first.output and "3 left: run the same command to resume" in first.output
    rows = [json.loads(line) for line in calib.read_text().splitlines()]
    assert len(rows) == 3
    assert rows[0]["category"] == rows[0]["proposed"]  # Enter accepted the proposal
    assert rows[1]["category"] == "code" and rows[2]["skipped"] is True
    again = CliRunner().invoke(main, args, input="1\n1\n1\n")
    assert again.exit_code == 0 and "3 answer(s) saved" in again.output and "to resume" not in again.output
    assert f"--calibration {calib}" in again.output  # finished: the next step is named
    rows = [json.loads(line) for line in calib.read_text().splitlines()]
    assert len(rows) == 6 and len({r["index"] for r in rows}) == 6  # resumed: nothing asked twice
    done = CliRunner().invoke(main, args, input="")
    assert done.exit_code == 0 and "0 answer(s)" not in done.output and "proposed:" not in done.output
    assert "all 6 sampled labels are already in" in done.output and "a larger -n" in done.output


def test_a_copy_drawn_twice_is_asked_once_and_answered_the_same(tmp_path, fake_engines):
    """4 texts, each 5 times: a review of 12 draws copies; each text is asked once and its copies get
    the same answer, said aloud, each on its own row (every drawn sample keeps its row)."""
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"task number {i % 4}", "response": "ok"}) for i in range(20)))
    labels, report = tmp_path / "l.jsonl", tmp_path / "r.json"
    first = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", ",".join(NAMES),
                                      "-o", str(report), "--labels", str(labels), "-q"])
    assert first.exit_code == 0, first.output
    calib = tmp_path / "c.jsonl"
    result = CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES),
                                       "-o", str(calib), "-n", "12", "--seed", "2"], input="2\n" * 12)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in calib.read_text().splitlines()]
    assert len(rows) == 12 and len({r["index"] for r in rows}) == 12 and {r["category"] for r in rows} == {"code"}
    asked = result.output.count("proposed:")
    assert asked == 4 and result.output.count("answered the same") == 8
    resumed = tmp_path / "resumed.jsonl"
    args = ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES), "-o", str(resumed),
            "-n", "12", "--seed", "2"]
    stopped = CliRunner().invoke(main, args, input="2\nq\n")  # one text answered, then stop
    assert stopped.exit_code == 0 and stopped.output.count("proposed:") == 2
    again = CliRunner().invoke(main, args, input="2\n" * 12)  # a later sitting: that text's copies are not asked
    assert again.exit_code == 0, again.output
    both = stopped.output + again.output  # the q was asked a second text, answered in the later sitting
    assert again.output.count("proposed:") == 3 and both.count("answered the same") == 8
    assert [json.loads(line) for line in resumed.read_text().splitlines()] == rows


def test_an_exported_text_drawn_twice_is_one_row_whose_answer_counts_for_each_copy(tmp_path, fake_engines):
    """4 texts, each 5 times: `review --export` wrote each of the 12 drawn copies as its own row, so a
    person labeled one text up to 5 times (and could answer its copies differently). It writes one row
    per text, its other drawn copies in the `copies` column, and `analyze --calibration` gives each copy
    the row's answer: the 12 drawn samples, as the terminal review writes them."""
    import csv

    from offline_cov.report.calibration import REVIEW_METHOD, REVIEW_METHOD_HARD
    from offline_cov.review import EXPORT_COLUMNS

    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"task number {i % 4}", "response": "ok"}) for i in range(20)))
    labels, report, export = tmp_path / "l.jsonl", tmp_path / "r.json", tmp_path / "review.csv"
    common = ["analyze", str(data), "--engine", "vllm", "--taxonomy", ",".join(NAMES), "-q"]
    assert CliRunner().invoke(main, common + ["-o", str(report), "--labels", str(labels)]).exit_code == 0
    result = CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES),
                                       "--export", str(export), "-n", "12", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert f"12 samples written to {export} as 4 rows (a text drawn more than once is one row" in result.output
    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    drawn = [int(i) for r in rows for i in [r["index"], *r["copies"].split()]]
    assert len(rows) == 4 and len({r["sample"] for r in rows}) == 4 and len(set(drawn)) == 12
    for r in rows:
        r["category"] = "code"
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(main, common + ["--calibration", str(export), "-o", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "c.meta.json").read_text())["calibration"]
    assert block["method"] in (REVIEW_METHOD, REVIEW_METHOD_HARD) and block["rows"] == block["matched"] == 12


@pytest.mark.parametrize("row, says", [
    ("3,7 x,math,,code,t", "line 2, field 'copies': '7 x' is not a list of sample indices"),
    ("3,4,math,,code,t\r\n4,,math,,code,u", "line 3: names the same sample as line 2"),
])
def test_an_exported_rows_copies_are_read_as_sample_indices_or_refused(tmp_path, row, says):
    """A row's `copies` are whole numbers (a spreadsheet's 7.0 too); anything else, or copies without the
    row's index, is an error naming the field, and a copy named again by a row of its own counts twice."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "review.csv"
    header = "index,copies,proposed,confidence,category,sample\r\n"
    path.write_text(header + "3,7.0 9,math,,code,t\r\n", encoding="utf-8")
    taxonomy = parse_taxonomy_list("math,code")
    assert [(r.index, r.category, r.proposed) for r in load_calibration(path, taxonomy)] == [
        (3, "code", "math"), (7, "code", "math"), (9, "code", "math")]
    path.write_text(header + row + "\r\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(says)):
        load_calibration(path, taxonomy)
    path.write_text("index,copies,category,text\r\n,7,code,What is 2+2?\r\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape("line 2, field 'copies': names copies but no index")):
        load_calibration(path, taxonomy)

def test_review_on_input_that_ends_stops_cleanly_and_writes_nothing_it_was_not_given(tmp_path, fake_engines):
    """Piped or empty input (not a terminal): it ended with 'Aborted!', exit 1, after '0 answer(s) saved to'
    a file it did not create."""
    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calibration.jsonl"
    args = ["review", str(data), "--labels", str(labels), "--metadata", str(report.with_suffix(".meta.json")),
            "-o", str(calib), "-n", "6", "--seed", "1"]
    empty = CliRunner().invoke(main, args, input="")
    assert empty.exit_code == 0 and "Aborted" not in empty.output, empty.output
    assert f"no answer given, nothing written to {calib}" in empty.output and "--export FILE.csv" in empty.output
    assert not calib.exists()
    piped = CliRunner().invoke(main, args, input="9\n\n2\n")  # out of range, then two answers, then the end
    assert piped.exit_code == 0 and "not understood: '9' (Enter, 1-3, a category's name, s or q)" in piped.output
    assert "2 answer(s) saved to" in piped.output and len(calib.read_text().splitlines()) == 2


def test_a_failed_write_mid_review_says_the_earlier_answers_are_kept(tmp_path, fake_engines, monkeypatch):
    """The disk filling up on the third answer: the first two are on disk, and the message says so."""
    import offline_cov.review as rv

    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calibration.jsonl"
    real, calls = rv.append_answer, []

    def fills_up(path, label, answer):
        calls.append(label.index)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        real(path, label, answer)

    monkeypatch.setattr(rv, "append_answer", fills_up)
    result = CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES),
                                       "-o", str(calib), "-n", "6"], input="\n\n\n\n")
    assert result.exit_code == 1, result.output
    assert f"2 answer(s) given before this one are saved in {calib}" in result.output
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert len(calib.read_text().splitlines()) == 2


def test_review_refuses_to_write_over_its_inputs(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    before = labels.read_bytes()
    result = CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", "math,code,writing",
                                       "-o", str(labels)])
    assert result.exit_code == 2 and "would destroy it" in result.output
    assert labels.read_bytes() == before


@pytest.mark.parametrize("labels, words", [
    (b"\xff\xfe\x00garbage\n", "labels.jsonl: not a UTF-8 text file"),
    (b'{"index": 0, "categories": [], "difficulty": "easy"}\n', "line 1: not a labels line"),
    (b'{"index": 0, "categories": "math", "difficulty": "easy"}\n', "categories 'math' is not a non-empty list"),
    (b'{"index": "abc", "categories": ["math"], "difficulty": "easy"}\n', "index 'abc' is not an integer"),
])
def test_a_bad_labels_file_is_an_error_naming_file_and_line(tmp_path, labels, words):
    """These once gave a traceback (bytes, no category) or were read wrong ("math" as the categories m, a, t, h)."""
    (tmp_path / "labels.jsonl").write_bytes(labels)
    (tmp_path / "d.jsonl").write_text('{"instruction": "x"}\n')
    result = CliRunner().invoke(main, ["review", str(tmp_path / "d.jsonl"), "--labels", str(tmp_path / "labels.jsonl"),
                                       "--taxonomy", "math,code", "-o", str(tmp_path / "c.jsonl")], input="q\n")
    assert result.exit_code == 1 and words in result.output and result.exception is not None
    assert not isinstance(result.exception, (IndexError, UnicodeDecodeError))


def test_a_binary_calibration_file_to_resume_is_an_error(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    (tmp_path / "c.jsonl").write_bytes(b"\xff\xfe\n")
    result = CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES),
                                       "-o", str(tmp_path / "c.jsonl")], input="q\n")
    assert result.exit_code == 1 and "c.jsonl: not a UTF-8 text file" in result.output


def write_calibration(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def analyze_calibrated(tmp_path, data, rows, *options) -> tuple[dict, Path, Path]:
    """`analyze --calibration` on the fake engine with these calibration rows: (its metadata, the
    report's path, the calibration file's path)."""
    calib = write_calibration(tmp_path / "calib.jsonl", rows)
    out = tmp_path / "c.json"
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", ",".join(NAMES),
                                       "--calibration", str(calib), *options, "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_suffix(".meta.json").read_text()), out, calib


def test_analyze_with_calibration_corrects_shares_and_decides_gaps_on_them(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    labeled = [json.loads(line) for line in labels.read_text().splitlines()]
    # a reviewer says every sample the labeler called 'writing' is really 'math' (all but the last 10 samples)
    rows = [{"index": lab["index"], "category": "math" if lab["categories"][0] == "writing" else lab["categories"][0]}
            for lab in labeled][:-10]
    meta, out, _ = analyze_calibrated(tmp_path, data, rows)
    block = meta["calibration"]
    assert block["matched"] == 110 and block["calibration_rows"] == 110
    assert block["corrected_share_percent"]["math"] > block["raw_share_percent"]["math"]
    assert block["trustworthy"] is False  # nothing is truly writing: no calibration row tells its errors
    assert "corrected_balance_score" not in block
    assert "fewer than 5 calibration rows truly in writing" in block["not_trustworthy_because"][0]
    assert "gaps and over-representation use the raw shares" in " ".join(meta["warnings"])
    # not trusted: the intervals and the calls are the raw shares', not the correction's
    assert meta["share_intervals"]["ci95"] != block["corrected_ci95"]
    assert meta["share_intervals"]["basis"].startswith("sampling interval")
    raw = json.loads(report.read_text())
    assert json.loads(out.read_text())["gaps"] == raw["gaps"]  # not trusted: decided on the raw shares


def test_calibration_rows_for_every_sample_give_the_counted_shares_trusted(tmp_path, fake_engines):
    """Every labeled sample reviewed: nothing is left to estimate, whatever each category's row count
    (it was refused as 'fewer than 5 calibration rows truly in writing')."""
    from offline_cov.report.calibration import EVERY_SAMPLE_METHOD

    data, report, labels = labeled_run(tmp_path, fake_engines)
    labeled = [json.loads(line) for line in labels.read_text().splitlines()]
    rows = [{"index": lab["index"], "category": "math" if lab["categories"][0] == "writing" else lab["categories"][0]}
            for lab in labeled]
    block = analyze_calibrated(tmp_path, data, rows)[0]["calibration"]
    assert block["trustworthy"] is True and block["method"] == EVERY_SAMPLE_METHOD
    truth = {n: 100 * sum(r["category"] == n for r in rows) / len(rows) for n in NAMES}
    assert block["corrected_share_percent"] == {n: round(v, 2) for n, v in truth.items()}
    assert block["corrected_share_percent"].get("writing", 0) == 0
    assert all(low == high for low, high in block["corrected_ci95"].values())
    same = analyze_calibrated(tmp_path, data, [{"index": lab["index"], "category": lab["categories"][0]}
                                               for lab in labeled])[0]["calibration"]
    assert same["corrected_share_percent"] == same["raw_share_percent"]  # every label confirmed: nothing moves
    primary = {n: sum(lab["categories"][0] == n for lab in labeled) for n in NAMES}
    uniform = {n: 100 / len(NAMES) for n in NAMES}
    assert same["corrected_balance_score"] == balance_score(primary, uniform)  # the counts', not rounded shares'


def test_a_trusted_calibration_moves_the_gaps(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    labeled = [json.loads(line) for line in labels.read_text().splitlines()]
    rows = [{"index": lab["index"], "category": lab["categories"][0]} for lab in labeled]
    rows.append({"index": 9999, "category": NAMES[0]})  # a sample this run did not label: left out, its line named
    meta, out, calib = analyze_calibrated(tmp_path, data, rows, "--gap-threshold", "34")  # the labeler is always right
    block = meta["calibration"]
    assert block["trustworthy"] is True and block["accuracy_on_calibration"] == 1.0
    assert f"1 calibration row(s) name a sample this run did not label ({calib}, line 121)" in " ".join(meta["warnings"])
    calls = meta["share_intervals"]["calls"]
    assert set(calls) == {"gaps", "over_represented"} and set(calls["gaps"]) == {"clear", "crossing", "possible"}
    from offline_cov.report.contract import CoverageReport

    parsed = CoverageReport.model_validate_json(out.read_text())
    assert contract_violations(parsed, NAMES, gap_threshold=34, decided_shares=block["corrected_share_percent"]) == []
    assert "calibration-corrected shares" in parsed.decision_basis


@pytest.mark.parametrize("row, words", [
    ({"index": 1}, "line 1, field 'category': missing the true category"),
    ({"index": 1, "category": "cooking"}, "'cooking' is not a category of the taxonomy"),
    ({"category": "math"}, "give the sample's index (from the labels file) or its text"),
    ({"index": "x", "category": "math"}, "field 'index': 'x' is not a sample index"),
    ({"index": True, "category": "math"}, "field 'index': True is not a sample index"),  # was read as index 1
    ({"index": 1.7, "category": "math"}, "field 'index': 1.7 is not a sample index"),  # was read as index 1
])
def test_bad_calibration_rows_name_the_line_and_field(tmp_path, row, words):
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = write_calibration(tmp_path / "c.jsonl", [row])
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_calibration(path, parse_taxonomy_list(",".join(NAMES)))


def test_a_calibration_row_giving_a_key_twice_is_refused(tmp_path):
    """json.loads kept the last category of a row that gave two: the answer read was a guess."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "c.jsonl"
    path.write_text('{"index": 0, "category": "math"}\n{"index": 1, "category": "math", "category": "code"}\n')
    with pytest.raises(InputError, match=re.escape(f"{path}, line 2, field 'category': the key appears twice")):
        load_calibration(path, parse_taxonomy_list(",".join(NAMES)))


def test_a_csv_skipped_column_of_false_keeps_the_row(tmp_path):
    """Every CSV value is text, and "false" or "0" once counted as skipped: the rows were dropped."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "c.csv"
    path.write_text("index,category,skipped\n0,math,false\n1,code,0\n2,code,\n3,math,true\n4,math,1\n")
    rows = load_calibration(path, parse_taxonomy_list(",".join(NAMES)))
    assert [(r.index, r.category) for r in rows] == [(0, "math"), (1, "code"), (2, "code")]


def test_a_csv_calibration_row_with_a_long_text_is_read(tmp_path):
    """A text over csv's default 131072-character field limit was a traceback (_csv.Error)."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "c.csv"
    path.write_text('text,category\n"' + "x" * 200_000 + '",math\n')
    rows = load_calibration(path, parse_taxonomy_list(",".join(NAMES)))
    assert len(rows) == 1 and len(rows[0].text) == 200_000


class Terminal:
    """A tmux session running one shell command, typed into and read as a person would."""

    def __init__(self, name: str, command: str):
        import subprocess

        self.run, self.name = subprocess.run, name[:40]
        self.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", command], check=True)

    def screen(self) -> str:
        """The pane's text, lines the terminal wrapped joined again (-J): where a long path puts the wrap
        inside a word, the test still reads the word."""
        return self.run(["tmux", "capture-pane", "-p", "-J", "-S", "-5000", "-t", self.name], capture_output=True,
                        text=True).stdout

    def wait_for(self, text: str, seconds: float = 30) -> str:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in (shown := self.screen()):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_closed(self, seconds: float = 20) -> None:
        import time

        deadline = time.monotonic() + seconds
        while self.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, self.screen()
            time.sleep(0.2)

    def close(self) -> None:
        self.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def review_command(data, labels, calib) -> str:
    import shlex
    import sys

    script = str(Path(sys.executable).parent / "offline-cov")
    return " ".join(shlex.quote(a) for a in [script, "review", str(data), "--labels", str(labels), "--taxonomy",
                                             ",".join(NAMES), "-o", str(calib), "-n", "5"])


needs_tmux = pytest.mark.skipif(__import__("shutil").which("tmux") is None,
                                reason="tmux not installed (apt-get install -y tmux)")


@needs_tmux
def test_review_in_a_real_terminal(tmp_path, fake_engines):
    """The review command in tmux, typed into as a person would: accept, correct, stop."""
    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calib.jsonl"
    terminal = Terminal(f"review-{tmp_path.name}", review_command(data, labels, calib))
    try:
        terminal.wait_for("(1 of 5)")
        terminal.keys("Enter")
        terminal.wait_for("(2 of 5)")
        terminal.keys("3", "Enter")
        terminal.wait_for("(3 of 5)")
        terminal.keys("q", "Enter")
        terminal.wait_closed()
    finally:
        terminal.close()
    rows = [json.loads(line) for line in calib.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["category"] == rows[0]["proposed"] and rows[1]["category"] == "writing"


@needs_tmux
def test_ctrl_c_in_a_real_terminal_keeps_the_answers_and_exits_130(tmp_path, fake_engines):
    """Ctrl-C after one answer: the answer is on disk, the command says so and how to resume, exit 130."""
    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calib.jsonl"
    terminal = Terminal(f"ctrlc-{tmp_path.name}", f"{review_command(data, labels, calib)}; echo EXIT=$?; sleep 60")
    try:
        terminal.wait_for("(1 of 5)")
        terminal.keys("Enter")
        terminal.wait_for("(2 of 5)")
        terminal.keys("C-c")
        shown = terminal.wait_for("EXIT=")
    finally:
        terminal.close()
    assert "EXIT=130" in shown and "Traceback" not in shown, shown
    assert f"1 answer(s) saved to {calib}; 4 left: run the same command to resume" in " ".join(shown.split()), shown
    assert len(calib.read_text().splitlines()) == 1


def test_calibration_rows_by_text_match_the_data_or_are_labeled_on_their_own(tmp_path, fake_engines):
    from offline_cov.data.readers import read_samples

    data, report, labels = labeled_run(tmp_path, fake_engines)
    samples = read_samples(data).samples[:30]
    rows = [{"text": s.instruction, "category": "math"} for s in samples]
    rows.append({"text": "A sample that is not in the dataset at all, about prime numbers.", "category": "math"})
    meta, _, calib = analyze_calibrated(tmp_path, data, rows)
    block = meta["calibration"]
    assert block["rows"] == 31 and block["matched"] == 31  # 30 found in the data, 1 labeled on its own
    assert any(w.startswith(f"1 calibration row(s) by text match no sample's instruction exactly ({calib}, line 31)")
               for w in meta["warnings"])


def test_two_calibration_rows_naming_one_sample_by_index_and_by_text_are_refused(tmp_path, fake_engines):
    from offline_cov.data.readers import read_samples

    data, report, labels = labeled_run(tmp_path, fake_engines)
    first = read_samples(data).samples[0]
    rows = [{"index": first.index, "category": "math"}, {"text": first.instruction, "category": "code"}]
    calib = write_calibration(tmp_path / "calib.jsonl", rows)
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", ",".join(NAMES),
                                       "--calibration", str(calib), "-o", str(tmp_path / "c.json"), "-q"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{calib}, line 2: names the same sample as line 1 (one by index, one by its text)" in result.output
    assert not (tmp_path / "c.json").exists()


def test_a_labeler_with_probabilities_gets_the_soft_correction(tmp_path):
    """`embed` gives every sample its probability of every category (labels file and cache): the
    calibration recalibrates them (the soft method), and a reviewer who moves every 'writing' sample
    to 'math' moves the corrected math share up and the writing share down."""
    from conftest import EXAMPLE

    labels_path, out = tmp_path / "l.jsonl", tmp_path / "r.json"
    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite"), "-q"]
    first = CliRunner().invoke(main, common + ["-o", str(out), "--labels", str(labels_path)])
    assert first.exit_code == 0, first.output
    labeled = [json.loads(line) for line in labels_path.read_text().splitlines()]
    for lab in labeled:
        probs = lab["probabilities"]
        assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert NAMES[max(range(3), key=probs.__getitem__)] == lab["categories"][0]
        assert max(probs) == pytest.approx(lab["confidence"], abs=1e-4)
    rows = [{"index": lab["index"], "category": "math" if lab["categories"][0] == "writing" else lab["categories"][0]}
            for lab in labeled][:-10]  # not every sample: every one would be counted, not estimated
    calib = write_calibration(tmp_path / "calib.jsonl", rows)
    moved = tmp_path / "m.json"
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(moved)])
    assert result.exit_code == 0, result.output
    block = json.loads(moved.with_suffix(".meta.json").read_text())["calibration"]
    assert block["method"].startswith("per-sample probabilities recalibrated")
    assert block["corrected_share_percent"]["math"] > block["raw_share_percent"]["math"]
    assert block["corrected_share_percent"]["writing"] < block["raw_share_percent"]["writing"]
    assert json.loads(moved.with_suffix(".meta.json").read_text())["cache"]["hits"] == 120  # the cache kept them


def test_a_soft_correction_over_a_thin_category_is_applied_and_says_so(tmp_path):
    """Calibration rows (not a review) with only 3 rows truly writing, a category that holds well over
    5% of the labels: the soft correction is applied (report.calibration.SOFT_FEWEST_ROWS), and the
    warning, the metadata and the HTML name writing's 3 rows. With none, it is not trusted."""
    from conftest import EXAMPLE

    labels_path = tmp_path / "l.jsonl"
    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite")]
    first = CliRunner().invoke(main, common + ["-q", "-o", str(tmp_path / "r.json"), "--labels", str(labels_path)])
    assert first.exit_code == 0, first.output
    labeled = [json.loads(line) for line in labels_path.read_text().splitlines()]
    writing = [lab for lab in labeled if lab["categories"][0] == "writing"]
    assert len(writing) >= 0.05 * len(labeled)
    rows = [{"index": lab["index"], "category": lab["categories"][0]} for lab in labeled if lab not in writing][:60]
    calib = write_calibration(tmp_path / "calib.jsonl", rows + [{"index": lab["index"], "category": "writing"}
                                                                 for lab in writing[:3]])
    out = tmp_path / "t.json"
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(out), "--html", str(tmp_path / "t.html")])
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    block = meta["calibration"]
    assert block["trustworthy"] is True and "writing" in block["thin_categories"]
    assert block["calibration_rows_per_category"]["writing"] == 3
    assert "rest on fewer than 5 calibration rows truly in them (writing: 3 row(s)" in " ".join(result.output.split())
    assert "from only 3 calibration row(s) of it" in (tmp_path / "t.html").read_text()
    write_calibration(calib, rows)
    none = CliRunner().invoke(main, common + ["-q", "--calibration", str(calib), "-o", str(tmp_path / "n.json"),
                                              "--html", str(tmp_path / "n.html")])
    assert none.exit_code == 0, none.output
    meta = json.loads((tmp_path / "n.meta.json").read_text())
    block = meta["calibration"]
    assert block["trustworthy"] is False and block["not_trustworthy_because"] == ["no calibration rows truly in writing"]
    assert meta["share_intervals"]["basis"].startswith("sampling interval")  # not the untrusted bootstrap's
    page = (tmp_path / "n.html").read_text()
    assert "(not applied)" in page and "calibration row(s) of it" not in page


def review_writing_as_math(tmp_path, analyze: list[str]) -> tuple[list[dict], Path]:
    """Runs `analyze` (arguments without -o) writing its labels, then a review of every other label
    that accepts each proposal except writing, which it corrects to math: (the rows, the calibration
    file)."""
    labels_path = tmp_path / "l.jsonl"
    result = CliRunner().invoke(main, analyze + ["-o", str(tmp_path / "r.json"), "--labels", str(labels_path)])
    assert result.exit_code == 0, result.output
    labeled = [json.loads(line) for line in labels_path.read_text().splitlines()]
    rows = [{"index": lab["index"], "proposed": lab["categories"][0],
             "category": "math" if lab["categories"][0] == "writing" else lab["categories"][0]} for lab in labeled[::2]]
    return rows, write_calibration(tmp_path / "calib.jsonl", rows)


def test_a_review_of_this_runs_labels_gets_the_stratified_correction(tmp_path):
    """Rows that `review` wrote for these labels (index, and the label it proposed is the one this run
    gave) are random within each label: the stratified correction runs. Once one row's proposal
    differs from the run's label (another labeling was reviewed), the EM correction runs instead."""
    from conftest import EXAMPLE

    from offline_cov.report.calibration import REVIEW_METHOD

    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite"), "-q"]
    rows, calib = review_writing_as_math(tmp_path, common)
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "m.meta.json").read_text())["calibration"]
    assert block["method"] == REVIEW_METHOD and block["condition_number"] is None
    assert block["corrected_share_percent"]["writing"] < 1.0 < 5.0 < block["raw_share_percent"]["writing"]  # all math
    assert block["corrected_share_percent"]["math"] > block["raw_share_percent"]["math"]
    uniform = {n: 100 / len(NAMES) for n in NAMES}
    # the correction's unrounded shares give it; the rounded ones in the block come within rounding
    assert block["corrected_balance_score"] == pytest.approx(balance_score(block["corrected_share_percent"], uniform),
                                                             abs=5e-4)
    assert block["corrected_balance_score"] != json.loads((tmp_path / "m.json").read_text())["balance_score"]
    rows[0]["proposed"] = next(n for n in NAMES if n != rows[0]["proposed"])
    write_calibration(calib, rows)
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "e.meta.json").read_text())["calibration"]
    assert block["method"].startswith("per-sample probabilities recalibrated")


def test_analyze_prints_review_commands_that_work_when_pasted(tmp_path, monkeypatch):
    """An uncalibrated run ends with the `review` command for its own files; pasted as printed (a user
    pressing Enter on every sample), then rerun with --calibration, the shares get the review's correction."""
    import shlex

    from conftest import EXAMPLE

    from offline_cov.report.calibration import EVERY_SAMPLE_METHOD

    monkeypatch.chdir(tmp_path)
    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES), "--cache", "c.sqlite"]
    first = CliRunner().invoke(main, common + ["-o", "r.json", "--labels", "l.jsonl"])
    assert first.exit_code == 0, first.output
    hint = next(line for line in first.output.splitlines() if line.startswith("to check the labels by hand: "))
    pasted = hint.split("to check the labels by hand: ", 1)[1].split(" (Enter accepts", 1)[0]
    assert pasted == (f"offline-cov review {shlex.quote(str(EXAMPLE))} --labels l.jsonl --metadata r.meta.json "
                      "-o calibration.jsonl")
    assert hint.endswith("then rerun this command with --calibration calibration.jsonl")
    reviewed = CliRunner().invoke(main, shlex.split(pasted)[1:], input="\n" * 200)
    assert reviewed.exit_code == 0, reviewed.output
    assert "120 answer(s) saved to calibration.jsonl" in reviewed.output
    again = CliRunner().invoke(main, common + ["-o", "c.json", "--calibration", "calibration.jsonl"])
    assert again.exit_code == 0, again.output
    # -n 200 on the 120-sample example reviews every sample: the counted shares, nothing estimated
    assert json.loads(Path("c.meta.json").read_text())["calibration"]["method"] == EVERY_SAMPLE_METHOD
    assert "to check the labels by hand" not in again.output  # calibrated: nothing to suggest


def test_the_review_hint_asks_for_labels_and_keeps_the_field_options():
    from types import SimpleNamespace

    from offline_cov.cli.analyze import review_hint
    from offline_cov.data.readers import FieldSpec
    from offline_cov.taxonomy import parse_taxonomy_list

    opts = SimpleNamespace(calibration=None, strategy="per-sample", shard=None, use_cache=True,
                           taxonomy=parse_taxonomy_list("math,code"), fields=FieldSpec("question", None), encoding="utf-8")
    hint = review_hint("my data.jsonl", opts, None, None)
    assert hint.startswith("to check the labels by hand: rerun this command with --labels labels.jsonl (the labels "
                           "come from the cache), then offline-cov review 'my data.jsonl' --labels labels.jsonl "
                           "--taxonomy math,code --instruction-field question -o calibration.jsonl")
    assert review_hint("d.jsonl", SimpleNamespace(**{**vars(opts), "use_cache": False}), "m.json", "l.jsonl").startswith(
        "to check the labels by hand: offline-cov review d.jsonl --labels l.jsonl --metadata m.json")
    inferred = parse_taxonomy_list("a,b").model_copy(update={"inferred": True})
    assert review_hint("d.jsonl", SimpleNamespace(**{**vars(opts), "taxonomy": inferred}), None, None) is None
    for change in ({"calibration": "c.jsonl"}, {"strategy": "distill"}, {"shard": (1, 2)}):
        assert review_hint("d.jsonl", SimpleNamespace(**{**vars(opts), **change}), "m.json", "l.jsonl") is None


def test_review_export_writes_a_csv_whose_filled_rows_are_a_review(tmp_path):
    """`review --export` writes the stratified sample as a CSV; the rows a person fills in (here every
    other one, writing corrected to math) are a review of the run's labels, the empty ones are left out,
    and a second export never writes over the file."""
    import csv

    from conftest import EXAMPLE

    from offline_cov.report.calibration import REVIEW_METHOD
    from offline_cov.review import EXPORT_COLUMNS

    labels_path, out, export = tmp_path / "l.jsonl", tmp_path / "r.json", tmp_path / "review.csv"
    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite"), "-q"]
    assert CliRunner().invoke(main, common + ["-o", str(out), "--labels", str(labels_path)]).exit_code == 0
    args = ["review", str(EXAMPLE), "--labels", str(labels_path), "--taxonomy", ",".join(NAMES), "-n", "60"]
    result = CliRunner().invoke(main, args + ["--export", str(export)])
    assert result.exit_code == 0, result.output
    assert f"60 samples written to {export}: fill its category column (one of math, code, writing" in result.output
    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == EXPORT_COLUMNS and len(rows) == 60 and not any(r["category"] for r in rows)
    labeled = {json.loads(line)["index"]: json.loads(line) for line in labels_path.read_text().splitlines()}
    assert all(labeled[int(r["index"])]["categories"][0] == r["proposed"] and r["sample"] for r in rows)
    for r in rows[::2]:
        r["category"] = "math" if r["proposed"] == "writing" else r["proposed"]
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    before = export.read_text(encoding="utf-8")
    again = CliRunner().invoke(main, args + ["--export", str(export)])
    assert again.exit_code == 1 and "exists and may hold answers" in again.output
    assert export.read_text(encoding="utf-8") == before
    result = CliRunner().invoke(main, common + ["--calibration", str(export), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "m.meta.json").read_text())["calibration"]
    assert block["method"] == REVIEW_METHOD and block["rows"] == block["matched"] == 30
    assert block["corrected_share_percent"]["writing"] < 5.0 < block["raw_share_percent"]["writing"]  # reviewed as math


def test_review_takes_out_or_export_not_both(tmp_path):
    from conftest import EXAMPLE

    base = ["review", str(EXAMPLE), "--labels", str(EXAMPLE), "--taxonomy", "a,b"]
    for extra in ([], ["-o", str(tmp_path / "c.jsonl"), "--export", str(tmp_path / "r.csv")]):
        result = CliRunner().invoke(main, base + extra)
        assert result.exit_code == 2 and "give -o/--out (review here) or --export" in result.output


def test_an_exported_csv_nobody_filled_in_is_an_error_saying_what_to_do(tmp_path):
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "review.csv"
    path.write_text("index,proposed,confidence,category,sample\n0,math,0.9,,What is 2+2?\n", encoding="utf-8")
    with pytest.raises(InputError, match="fill the category column"):
        load_calibration(path, parse_taxonomy_list("math,code"))
    path.write_text("index,category,sample\n0,,What is 2+2?\n", encoding="utf-8")  # not an export: still an error
    with pytest.raises(InputError, match="missing the true category"):
        load_calibration(path, parse_taxonomy_list("math,code"))


@pytest.mark.parametrize("suffix, text", [
    (".csv", "index,proposed,confidence,category,sample\r\n0,math,0.90,code,What is 2+2?\r\n"),
    (".jsonl", '{"index": 0, "category": "code"}\n'),
])
def test_a_calibration_file_saved_with_a_byte_order_mark_is_read(tmp_path, suffix, text):
    """Spreadsheets save "CSV UTF-8" with a byte order mark (and CRLF); the first column is still `index`."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / f"review{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (row,) = load_calibration(path, parse_taxonomy_list("math,code"))
    assert row.index == 0 and row.category == "code"


def test_a_semicolon_separated_calibration_csv_is_read(tmp_path):
    """A spreadsheet in a locale with a decimal comma saves the export with semicolons."""
    from offline_cov.data.calibration import load_calibration
    from offline_cov.taxonomy import parse_taxonomy_list

    path = tmp_path / "review.csv"
    path.write_text('index;proposed;confidence;category;sample\n3;math;0,90;code;"Add 2, then 3; print it"\n4;math;0,5;;x\n',
                    encoding="utf-8")
    (row,) = load_calibration(path, parse_taxonomy_list("math,code"))
    assert (row.index, row.category, row.proposed) == (3, "code", "math")


def test_the_summary_of_a_calibrated_run_shows_the_corrected_shares_its_calls_were_decided_on(tmp_path):
    from conftest import EXAMPLE

    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite")]
    _, calib = review_writing_as_math(tmp_path, common + ["-q"])
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    corrected = json.loads((tmp_path / "m.meta.json").read_text())["calibration"]["corrected_share_percent"]
    lines = result.output.splitlines()
    assert any(line.split() == ["category", "count", "share", "%", "corrected", "%"] for line in lines)
    row = next(line.split() for line in lines if line.startswith("writing "))
    assert float(row[3]) == round(corrected["writing"], 1) and float(row[2]) > 5.0 > float(row[3])
    assert any("(decided on the corrected shares)" in line for line in lines)
    plain = CliRunner().invoke(main, common + ["-o", str(tmp_path / "p.json")])
    assert "corrected" not in plain.output.split("report written")[0]


def test_review_refuses_to_resume_a_file_begun_on_other_labels(tmp_path, fake_engines):
    data, report, labels = labeled_run(tmp_path, fake_engines)
    calib = tmp_path / "calibration.jsonl"
    args = ["review", str(data), "--labels", str(labels), "--taxonomy", ",".join(NAMES), "-o", str(calib), "-n", "4"]
    assert CliRunner().invoke(main, args, input="\n\nq\n").exit_code == 0
    first = json.loads(calib.read_text().splitlines()[0])
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    for row in rows:  # the same samples labeled by another run: the first answered one got another label
        if row["index"] == first["index"]:
            row["categories"] = [next(n for n in NAMES if n != first["proposed"])]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = calib.read_text()
    result = CliRunner().invoke(main, [*args[:3], str(other), *args[4:]], input="\n\n")
    assert result.exit_code == 1 and "holds answers to another run's labels" in result.output
    assert f"sample {first['index']} was shown as {first['proposed']}" in result.output
    assert calib.read_text() == before
    again = CliRunner().invoke(main, args, input="\n\n")  # the labels it began with: resumes
    assert again.exit_code == 0 and "2 answer(s) saved" in again.output


def test_a_larger_sample_keeps_the_smaller_one_so_a_review_can_be_extended():
    labels = ([SampleLabel(i, ("math",), "easy") for i in range(300)] + [SampleLabel(300 + i, ("code",), "easy") for i in range(60)]
              + [SampleLabel(360 + i, ("writing",), "easy") for i in range(12)])
    for small, large in ((20, 40), (40, 200), (7, 8)):
        first = {lab.index for lab in stratified_sample(labels, small, seed=5)}
        assert first <= {lab.index for lab in stratified_sample(labels, large, seed=5)}, (small, large)
    assert {lab.index for lab in stratified_sample(labels, 40, seed=5)} != {lab.index for lab in stratified_sample(labels, 40, seed=6)}


def test_an_untrusted_calibration_says_what_would_make_it_apply(tmp_path):
    """Too few reviewed rows for a label: the warning names a larger -n for `review` (which extends the
    review). Rows that are not a review of this run (a proposal differs): it names `offline-cov review`."""
    from conftest import EXAMPLE

    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", ",".join(NAMES),
              "--cache", str(tmp_path / "c.sqlite")]
    rows, calib = review_writing_as_math(tmp_path, common + ["-q"])
    few = [row for row in rows if row["proposed"] == "writing"][:3] + [row for row in rows if row["proposed"] != "writing"]
    write_calibration(calib, few)
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "not trustworthy (fewer than 5 reviewed rows labeled writing)" in result.output
    assert "rerun offline-cov review with a larger -n" in result.output
    other = [dict(row, proposed=next(n for n in NAMES if n != row["proposed"])) for row in few[:4]]
    write_calibration(calib, other)
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    assert "not trustworthy (" in result.output and "review this run's labels with offline-cov review" in result.output


def test_an_exported_sample_that_opens_like_a_formula_is_shown_not_run():
    """A dataset sample `=HYPERLINK(...)` exported raw would run as a formula in a spreadsheet."""
    from offline_cov.review import spreadsheet_text

    assert spreadsheet_text('=HYPERLINK("http://x", "click")') == '\'=HYPERLINK("http://x", "click")'
    assert [spreadsheet_text(t)[0] for t in ("+1", "-x", "@SUM(A1)", "\tx")] == ["'"] * 4
    assert spreadsheet_text("Solve 2 + 2 = ?") == "Solve 2 + 2 = ?"


def test_labels_naming_a_category_in_another_unicode_form_belong_to_the_taxonomy():
    """A label written in NFD ("cafe" + combining accent) is the taxonomy's NFC "café", as name_key
    matches names everywhere else; a name the taxonomy lacks is still refused."""
    from offline_cov.review import check_categories

    check_categories([SampleLabel(0, ("cafe\u0301",), "easy")], ["caf\u00e9", "code"], "labels.jsonl")
    with pytest.raises(InputError, match="'tea'"):
        check_categories([SampleLabel(1, ("tea",), "easy")], ["caf\u00e9", "code"], "labels.jsonl")
