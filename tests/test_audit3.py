"""Calibration workflow audit (spreadsheet-filled exports, duplicate rows, reviews of other labels): each test
failed before its fix."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from offline_cov.cli import main
from offline_cov.data.calibration import load_calibration
from offline_cov.errors import InputError
from offline_cov.taxonomy import parse_taxonomy_list

TAXONOMY = parse_taxonomy_list("math,code,writing")


def csv_file(tmp_path, text: str, name="review.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("header", ["index,proposed,Category,sample", "index,proposed,category ,sample",
                                    "Index, Proposed, CATEGORY ,sample"])
def test_a_csv_header_retyped_in_a_spreadsheet_is_read(tmp_path, header):
    """A header cell typed 'Category' (or 'category ') made every filled row look unreviewed: 'no answered rows'."""
    path = csv_file(tmp_path, f"{header}\r\n3,math,code,What is 2+2?\r\n")
    (row,) = load_calibration(path, TAXONOMY)
    assert (row.index, row.category, row.proposed) == (3, "code", "math")


def test_a_csv_index_a_spreadsheet_shows_as_12_0_is_read(tmp_path):
    """An index column formatted as a number with decimals ('12.0') was refused: "'12.0' is not a sample index"."""
    path = csv_file(tmp_path, "index,proposed,category\r\n12.0,math,code\r\n 7 ,math,math\r\n")
    assert [row.index for row in load_calibration(path, TAXONOMY)] == [12, 7]
    path = csv_file(tmp_path, "index,proposed,category\r\n12.5,math,code\r\n")
    with pytest.raises(InputError, match="line 2, field 'index': '12.5' is not a sample index"):
        load_calibration(path, TAXONOMY)



@pytest.mark.parametrize("header, name, first, second", [
    ("index,category,proposed,category", "category", 2, 4),
    ("index,Category,proposed,category ", "category", 2, 4),  # one column once its name is trimmed and casefolded
    ("index,category,Index", "index", 1, 3),
    ("text,category,proposed,text", "text", 1, 4),
])
def test_a_csv_header_naming_a_column_it_reads_twice_is_refused(tmp_path, header, name, first, second):
    """Two 'category' columns: the last one was read, silently, as the dataset reader once did (its check,
    readers._check_header, now refuses calibration files too). Columns it does not read may repeat."""
    path = csv_file(tmp_path, f"{header}\r\n3,code,math,writing\r\n")
    with pytest.raises(InputError, match=f"line 1: the header names the column '{name}' twice "
                                         f"\\(columns {first} and {second}\\); rename one"):
        load_calibration(path, TAXONOMY)
    for header in ("index,category,notes,notes", "index,category,,"):
        path = csv_file(tmp_path, f"{header}\r\n3,code,a,b\r\n")
        assert [(row.index, row.category) for row in load_calibration(path, TAXONOMY)] == [(3, "code")]


@pytest.mark.parametrize("again, first", [("11,,math,code", 2), ("11,,math,writing", 2), (",What is 2+2?,,code", 3)])
def test_a_sample_named_twice_is_refused_with_both_lines(tmp_path, again, first):
    """A row pasted twice counted twice in the correction, and two answers for one sample were both used, silently."""
    path = csv_file(tmp_path, f"index,text,proposed,category\r\n11,,math,code\r\n,What is 2+2?,,math\r\n{again}\r\n")
    with pytest.raises(InputError, match=f"line 4: names the same sample as line {first}; keep one row"):
        load_calibration(path, TAXONOMY)


def test_a_csv_saved_in_a_windows_encoding_says_how_to_save_it(tmp_path):
    """Excel's plain 'CSV (Comma delimited)' is cp1252: the error said only 'not UTF-8 text (invalid start byte)'."""
    path = csv_file(tmp_path, "index,proposed,category,sample\r\n3,math,code,caf\u00e9 menu\r\n", encoding="cp1252")
    with pytest.raises(InputError, match="not UTF-8 text .*save it as CSV UTF-8"):
        load_calibration(path, TAXONOMY)


def test_a_csv_saved_as_utf16_is_read_and_a_workbook_is_named(tmp_path):
    """A spreadsheet's 'Unicode text' (UTF-16, tab-separated) and a workbook given as is were both told to
    convert from cp1252, the wrong source encoding and the wrong format (audit, session 26)."""
    text = "index\tproposed\tcategory\tsample\r\n3\tmath\tcode\tcaf\u00e9 menu\r\n"
    path = csv_file(tmp_path, text, name="unicode.csv", encoding="utf-16")
    (row,) = load_calibration(path, TAXONOMY)
    assert (row.index, row.category) == (3, "code")
    book = tmp_path / "review.xlsx"
    book.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="spreadsheet workbook .*save the sheet as CSV UTF-8") as caught:
        load_calibration(book, TAXONOMY)
    assert "cp1252" not in str(caught.value)


@pytest.mark.parametrize("header, says", [
    ("index,true category", "has no 'category' column (its columns: index, true category)"),
    ("row,category", "has no 'index' or 'text' column (its columns: row, category)"),
])
def test_a_csv_without_the_columns_it_needs_says_so_once(tmp_path, header, says):
    """A header without a 'category' column was reported as 'line 2, field 'category': missing the true
    category', as if one row had left it empty (audit, session 26)."""
    path = csv_file(tmp_path, f"{header}\r\n3,code\r\n")
    with pytest.raises(InputError, match=re.escape(f"line 1: {says}")):
        load_calibration(path, TAXONOMY)


def test_a_review_of_other_labels_says_why_it_did_not_get_the_reviews_correction(tmp_path):
    """Reviewed rows whose shown label is not this run's (labels of an earlier run) silently got the EM
    correction instead of the review's: only the metadata's method said so."""
    from conftest import EXAMPLE

    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math,code,writing",
              "--cache", str(tmp_path / "c.sqlite"), "-q"]
    labels = tmp_path / "l.jsonl"
    assert CliRunner().invoke(main, common + ["-o", str(tmp_path / "r.json"), "--labels", str(labels)]).exit_code == 0
    rows = [{"index": lab["index"], "proposed": lab["categories"][0], "category": lab["categories"][0]}
            for lab in map(json.loads, labels.read_text().splitlines()[:30])]
    rows[1]["proposed"] = next(n for n in ("math", "code") if n != rows[1]["proposed"])
    calib = tmp_path / "cal.jsonl"
    calib.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, common + ["--calibration", str(calib), "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    warnings = " ".join(json.loads((tmp_path / "m.meta.json").read_text())["warnings"])
    assert f"1 calibration row(s) ({calib}, line 2) were shown a label this run did not give" in warnings
    assert "offline-cov review" in warnings


@pytest.mark.parametrize("name", ["review.csv", "review.tsv"])
def test_a_tab_separated_calibration_file_is_read(tmp_path, name):
    """A spreadsheet's tab-separated save: a .csv one said 'missing the true category', a .tsv one 'invalid JSON'."""
    path = csv_file(tmp_path, "index\tproposed\tcategory\tsample\r\n3\tmath\tcode\t\"Add 2, then 3\"\r\n", name=name)
    (row,) = load_calibration(path, TAXONOMY)
    assert (row.index, row.category, row.proposed) == (3, "code", "math")
