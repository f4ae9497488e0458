"""Names-only taxonomies described once by the model (strategies/describe.py): deterministic parts."""

from __future__ import annotations

import json

from offline_cov.engines.fake import FakeEngine
from offline_cov.prompts import describe_schema, exemplify_schema
from offline_cov.strategies.describe import describe_taxonomy, needs_description
from offline_cov.taxonomy import Category, Taxonomy, parse_taxonomy_list


def answer(description: str, examples: list[str]) -> str:
    return json.dumps({"description": description, "examples": examples})


def test_only_bare_categories_are_asked_for_and_filled_in():
    taxonomy = Taxonomy(categories=[Category(name="math"), Category(name="code", description="programs and scripts"),
                                    Category(name="writing")])
    assert needs_description(taxonomy) and not needs_description(Taxonomy(categories=taxonomy.categories[1:2]))
    engine = FakeEngine(responses=[answer("Arithmetic and proofs.", ["Add 2 and 3.", "Prove that 7 is prime.", "Solve x+1=2."]),
                                   answer("Stories and essays.", ["Write a poem about rain.", "Draft an essay.", "Tell a story."])])
    described, written = describe_taxonomy(engine, taxonomy)
    assert [r.messages[1]["content"].splitlines()[0] for r in engine.requests] == ["Category: math", "Category: writing"]
    assert "The other categories: code, writing" in engine.requests[0].messages[1]["content"]
    assert engine.requests[0].schema == describe_schema()
    assert described.names == ["math", "code", "writing"]
    assert described.categories[0].description == "Arithmetic and proofs." and len(described.categories[0].examples) == 3
    assert described.categories[1] == taxonomy.categories[1]  # the user's own description is kept
    assert set(written) == {"math", "writing"} and not needs_description(described)


def test_with_examples_too_described_categories_get_examples_and_keep_their_description():
    taxonomy = Taxonomy(categories=[Category(name="math"), Category(name="code", description="programs and scripts"),
                                    Category(name="writing", description="prose", examples=["Write a haiku about tea."])])
    assert not needs_description(Taxonomy(categories=taxonomy.categories[1:]))
    assert needs_description(Taxonomy(categories=taxonomy.categories[1:]), examples_too=True)
    engine = FakeEngine(responses=[answer("Arithmetic and proofs.", ["Add 2 and 3.", "Prove that 7 is prime.", "Solve x+1=2."]),
                                   json.dumps({"examples": ["Fix this bug in my loop.", "'Write a sort in Go.'", "Fix this bug in my loop."]})])
    described, written = describe_taxonomy(engine, taxonomy, examples_too=True)
    asked = [r.messages[1]["content"] for r in engine.requests]
    assert asked[0].startswith("Category: math\nThe other categories:")
    assert asked[1].startswith("Category: code\nDescription: programs and scripts\n")
    assert engine.requests[1].schema == exemplify_schema() and "description" not in exemplify_schema()["properties"]
    code = described.categories[1]
    assert code.description == "programs and scripts"  # the user's words, not the model's
    assert code.examples == ["Fix this bug in my loop.", "Write a sort in Go."]  # quotes and the repeat dropped
    assert described.categories[2] == taxonomy.categories[2]  # it had examples: not asked
    assert set(written) == {"math", "code"} and not needs_description(described, examples_too=True)


def test_a_category_the_model_cannot_describe_stays_bare():
    taxonomy = parse_taxonomy_list("math,code")
    # the batch asks math then code; math's unusable answer is asked again, and is unusable again
    engine = FakeEngine(responses=["not json", answer("Programs.", ["Fix this bug.", "Write a sort.", "Explain a regex."]),
                                   '{"description": 3}'])
    described, written = describe_taxonomy(engine, taxonomy)
    assert list(written) == ["code"] and described.categories[0] == taxonomy.categories[0]
    assert described.categories[1].examples == ["Fix this bug.", "Write a sort.", "Explain a regex."]


def test_analyze_describes_a_names_only_taxonomy_once_and_labels_with_it(tmp_path, fake_engines, monkeypatch):
    """With --describe (the default outside this suite) the LLM labeler's prompt carries the
    model's descriptions; the metadata keeps them; a second run reads them from the label cache."""
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from offline_cov.cli import main

    base = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "math,code,writing", "--sample", "8", "-q"]
    args = base + ["--describe", "--cache", str(tmp_path / "c.sqlite")]
    first = CliRunner().invoke(main, args + ["-o", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    meta = json.loads((tmp_path / "a.meta.json").read_text())
    written = meta["taxonomy_described"]
    assert set(written) == {"math", "code", "writing"} and all(len(w["examples"]) == 3 for w in written.values())
    asked = [r for r in fake_engines[0].requests if r.messages[1]["content"].startswith("Category: ")]
    assert len(asked) == 3
    label_prompt = next(r for r in fake_engines[0].requests if r.messages[1]["content"].startswith("<sample>"))
    assert f"- math: {written['math']['description']}" in label_prompt.messages[0]["content"]
    again = CliRunner().invoke(main, args + ["-o", str(tmp_path / "b.json")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "b.meta.json").read_text())["taxonomy_described"] == written
    assert not any(r.messages[1]["content"].startswith("Category: ") for e in fake_engines[1:] for r in e.requests)
    off = CliRunner().invoke(main, base + ["--no-describe", "--no-cache", "-o", str(tmp_path / "c.json")])
    assert off.exit_code == 0, off.output
    assert "taxonomy_described" not in json.loads((tmp_path / "c.meta.json").read_text())


def test_distill_describes_a_names_only_taxonomy_for_its_embedding_and_its_llm(tmp_path, fake_engines):
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from offline_cov.cli import main

    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "math,code,writing", "--strategy", "distill",
            "--labeler", "llm", "--sample", "40", "--distill-size", "20", "--describe", "--no-cache", "-q", "-o", str(tmp_path / "d.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "d.meta.json").read_text())["taxonomy_described"]
    assert set(written) == {"math", "code", "writing"}
    label_prompt = next(r for r in fake_engines[0].requests if r.messages[1]["content"].startswith("<sample>"))
    assert f"- code: {written['code']['description']}" in label_prompt.messages[0]["content"]


def test_examples_are_cleaned_as_the_schema_asked():
    """Quotes around an example dropped, repeats and ones under 10 characters left out (the
    structured-output backend let such answers through; bench/README.md)."""
    taxonomy = parse_taxonomy_list("code,writing")
    taxonomy.categories[1].description = "stories and poems"  # described already: one request, for code
    engine = FakeEngine(responses=[answer("Programs.", ["'Write a sort in C.'", "Write a sort in C.", "]orm"])])
    described, _ = describe_taxonomy(engine, taxonomy)
    assert described.categories[0].examples == ["Write a sort in C."]


def test_an_example_holding_a_chat_turn_is_left_out_and_descriptions_are_kept_as_written():
    taxonomy = Taxonomy(categories=[Category(name="writing"), Category(name="code", description="Code. Examples include C")])
    engine = FakeEngine(responses=[
        answer("Stories and poems. Examples include: 'Write a", ["Write a short poem about rain.", "examplesHuman: Can you provide a prompt?orms",
                                                                 "Draft a wedding toast for my sister."]),
        json.dumps({"examples": ["Fix this bug in my loop.", "Write a sort in Go.", "Explain this regex to me."]})])
    described, _ = describe_taxonomy(engine, taxonomy, examples_too=True)
    assert described.categories[0].description == "Stories and poems. Examples include: 'Write a"  # as written
    assert described.categories[0].examples == ["Write a short poem about rain.", "Draft a wedding toast for my sister."]
    assert described.categories[1].description == "Code. Examples include C"  # the user's words are not edited


def test_card_describes_a_names_only_taxonomy_for_the_model_that_writes_the_report(tmp_path, fake_engines):
    """`--strategy card`: the model that writes the whole report reads the descriptions too (card uses
    no labeler, and refuses --labeler)."""
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from offline_cov.cli import main

    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", "math,code,writing", "--strategy", "card",
            "--sample", "12", "--describe", "--no-cache", "-q", "-o", str(tmp_path / "k.json")]
    fake_engines.fake_kwargs["max_model_len"] = 8192  # room for the card's 2,400-token answer
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "k.meta.json").read_text())["taxonomy_described"]
    assert set(written) == {"math", "code", "writing"}
    card_prompt = next(r for r in fake_engines[0].requests if "coverage of an instruction-tuning" in r.messages[0]["content"])
    assert f"- writing: {written['writing']['description']}" in card_prompt.messages[0]["content"]
    report = json.loads((tmp_path / "k.json").read_text())
    assert [c["name"] for c in report["categories"]] == ["math", "code", "writing"]
