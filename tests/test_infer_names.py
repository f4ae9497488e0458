"""An inferred category as the model's answer gives it: a snake_case name, repeats dropped, and a
description the schema's cap cut mid-word cut back to its last whole word
(`strategies.infer.distinct_categories`)."""

from offline_cov.prompts import INFERRED_DESCRIPTION_CHARS, inferred_category_schema
from offline_cov.strategies.infer import distinct_categories, whole_words


def test_a_description_at_the_cap_ends_at_a_whole_word_and_says_it_was_cut():
    text = "This category focuses on analyzing and evaluating the quality of instruction-tuning data for models"
    got = distinct_categories([{"name": "Quality Checks", "description": text[:INFERRED_DESCRIPTION_CHARS]},
                               {"name": "short", "description": "  Stories and poems.  "}])
    assert text[:INFERRED_DESCRIPTION_CHARS].endswith("instruction-tun")  # as the grammar would have stopped it
    assert [(c.name, c.description) for c in got] == [
        ("quality_checks", "This category focuses on analyzing and evaluating the quality of..."),
        ("short", "Stories and poems.")]


def test_the_punctuation_before_the_cut_word_goes_and_one_long_word_is_kept():
    assert whole_words("Emails, letters, reports, rewriting, summaries, " + "x" * 40, 80) == (
        "Emails, letters, reports, rewriting, summaries...")
    assert whole_words("y" * 80, 80) == "y" * 80


def test_repeats_of_a_name_are_dropped():
    got = distinct_categories([{"name": "Math", "description": "1"}, {"name": "math", "description": "2"}])
    assert [(c.name, c.description) for c in got] == [("math", "1")]


def test_the_cap_is_the_schema_s():
    assert inferred_category_schema()["properties"]["description"]["maxLength"] == INFERRED_DESCRIPTION_CHARS
