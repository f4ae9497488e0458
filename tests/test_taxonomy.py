"""Taxonomies from the command line and from files, and the errors bad ones get."""

import pytest

from offline_cov.errors import TaxonomyError
from offline_cov.taxonomy import load_taxonomy_file, parse_taxonomy_list


def test_list_with_and_without_targets():
    tax = parse_taxonomy_list("Math, code ,writing")
    assert tax.names == ["Math", "code", "writing"]
    assert tax.targets() == pytest.approx({"Math": 100 / 3, "code": 100 / 3, "writing": 100 / 3})
    assert tax.canonical("MATH") == "Math" and tax.canonical("poetry") is None
    assert parse_taxonomy_list("a=30,b=70").targets() == {"a": 30.0, "b": 70.0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("math,,code", "name is empty"),
        ("math,Math", "appears twice"),
        ("a=-10,b=110", "must be 0-100"),
        ("a=30,b=30", "sum to 60"),
        ("a=30,b", "missing for"),
        ("a=x,b=3", "not a number"),
        (",".join(f"c{i}" for i in range(51)), "more than a coverage report can use"),
        ("a\tb,c", "holds a line break, tab or other control character"),
        ("a,\u200b,c", "name is empty"),  # invisible: a zero-width space alone
        ("caf\u00e9,cafe\u0301", "appears twice"),  # one name, composed and decomposed
        ("\uff4d\uff41\uff54\uff48,math", "appears twice"),  # full-width letters
    ],
)
def test_bad_lists(text, message):
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy_list(text)


def test_yaml_file_with_descriptions_examples_and_targets(tmp_path):
    f = tmp_path / "tax.yaml"
    f.write_text(
        "categories:\n"
        "  - name: math\n    description: numbers\n    target_share: 40\n    examples: ['What is 2+2?']\n"
        "  - name: code\n    target_share: 60\n"
    )
    tax = load_taxonomy_file(f)
    assert tax.names == ["math", "code"] and tax.categories[0].examples == ["What is 2+2?"]
    assert tax.targets() == {"math": 40.0, "code": 60.0}


def test_json_list_and_mapping_forms(tmp_path):
    (tmp_path / "t.json").write_text('["a", "b"]')
    assert load_taxonomy_file(tmp_path / "t.json").names == ["a", "b"]
    (tmp_path / "m.yaml").write_text("math: {description: numbers}\ncode:\n")
    assert load_taxonomy_file(tmp_path / "m.yaml").names == ["math", "code"]


def test_bad_files_name_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("categories:\n  - name: a\n  - name: [unclosed\n")
    with pytest.raises(TaxonomyError, match="bad.yaml, line"):
        load_taxonomy_file(f)
    f.write_text("categories:\n  - name: a\n    target_share: lots\n")
    with pytest.raises(TaxonomyError, match="target_share"):
        load_taxonomy_file(f)
    f.write_text("categories:\n  - name: a\n  - name: A\n")
    with pytest.raises(TaxonomyError, match="appears twice"):
        load_taxonomy_file(f)


def test_example_taxonomy_loads():
    from conftest import EXAMPLE_TAXONOMY

    tax = load_taxonomy_file(EXAMPLE_TAXONOMY)
    assert len(tax.names) == 5 and sum(tax.targets().values()) == pytest.approx(100)


@pytest.mark.parametrize("text", ["math: 30\ncode: 70\n", "math: numbers\ncode: programs\n",
                                  "categories:\n  math: 30\n  code: 70\n"])
def test_mapping_to_a_bare_value_is_an_error_not_dropped(tmp_path, text):
    """`math: 30` once loaded as `math` with no target (uniform shares), the 30 silently lost."""
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(TaxonomyError, match="t.yaml: category 'math' maps to"):
        load_taxonomy_file(f)


def test_target_shares_given_as_fractions_are_told_to_be_percentages():
    from offline_cov.errors import TaxonomyError

    with pytest.raises(TaxonomyError, match=r"sum to 1, not 100 \(shares are percentages: 30 for 30%, not 0.3\)"):
        parse_taxonomy_list("math=0.3,code=0.7")


def test_a_one_category_taxonomy_is_refused():
    from offline_cov.errors import TaxonomyError

    with pytest.raises(TaxonomyError, match=r"has only 'math'; give at least two \(every sample would fall in one\)"):
        parse_taxonomy_list("math")


@pytest.mark.parametrize("name, text, message", [
    ("t.json", '{"math": {"target_share": 50}, "code": {"target_share": 20}, "math": {"target_share": 80}}',
     "key 'math' appears twice"),
    ("t.yaml", "math: {target_share: 50}\ncode: {target_share: 20}\nmath: {target_share: 30}\n",
     "line 3: key 'math' appears twice"),
    ("t.yaml", "- name: math\n  description: numbers\n  description: sums\n", "key 'description' appears twice"),
    ("t.yaml", '- name: "code\\n- math: sums"\n- name: writing\n', "holds a line break"),
])
def test_a_key_given_twice_or_a_name_over_two_lines_is_refused(tmp_path, name, text, message):
    """A repeated key was merged without a word (the last one kept); a newline in a name wrote a
    category line of its own into the label prompt (taxonomy audit)."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TaxonomyError, match=message):
        load_taxonomy_file(path)


@pytest.mark.parametrize("text, words", [("- yes\n- no\n", "category 1 was read as True"),
                                         ("- math\n- 1\n", "category 2 was read as 1, not a name")])
def test_a_name_yaml_reads_as_a_value_is_told_to_be_quoted(tmp_path, text, words):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError, match=f"{words}.*put the name in quotes"):
        load_taxonomy_file(path)


def test_a_taxonomy_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors save UTF-8 with a BOM; JSON's parser refused it ('Unexpected UTF-8 BOM')."""
    for suffix, text in ((".json", '{"categories": [{"name": "math"}, {"name": "code"}]}'),
                         (".yaml", "categories:\n  - name: math\n  - name: code\n")):
        path = tmp_path / f"t{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert load_taxonomy_file(path).names == ["math", "code"], suffix


def test_a_yes_or_no_target_is_refused_not_read_as_one_percent(tmp_path):
    """YAML's `target_share: true` was accepted as a 1% target (audit, session 26)."""
    path = tmp_path / "t.yaml"
    path.write_text("categories:\n  - name: math\n    target_share: true\n  - name: code\n    target_share: 99\n")
    with pytest.raises(TaxonomyError, match=r"categories\.0\.target_share: true is not a share; give a number of "
                                            r"percent \(0-100\)$"):
        load_taxonomy_file(path)


def test_canonical_matches_any_spelling_of_a_name():
    """A label in NFD or in full-width letters is the taxonomy's name (`name_key`), spelled as the taxonomy
    spells it; canonical compared `strip().casefold()` only, so `cafe\u0301` was no category."""
    tax = parse_taxonomy_list("caf\u00e9,math")
    assert tax.canonical("cafe\u0301") == "caf\u00e9"
    assert tax.canonical(" CAFE\u0301 ") == "caf\u00e9"
    assert tax.canonical("\uff4d\uff41\uff54\uff48") == "math"
    assert tax.canonical("tea") is None
