"""The label prompt and the bench's variants of it (deterministic text, no model)."""

from offline_cov.prompts import LABEL_PROMPTS, PROMPT_VERSION, label_messages, label_system_prompt
from offline_cov.taxonomy import Category, Taxonomy

TAXONOMY = Taxonomy(categories=[
    Category(name="math", description="numbers and proofs", examples=["Prove that 2 is prime."]),
    Category(name="code", description="programs", examples=["Write a sort in C."]),
])


def test_the_product_asks_with_its_own_prompt_by_default():
    messages = label_messages(TAXONOMY, "What is 2 + 2?")
    assert messages[0]["content"] == label_system_prompt(TAXONOMY) == LABEL_PROMPTS[PROMPT_VERSION](TAXONOMY)
    assert messages[1]["content"] == "<sample>\nWhat is 2 + 2?\n</sample>"


def test_every_variant_names_every_category_and_differs_from_the_product_prompt():
    product = label_system_prompt(TAXONOMY)
    for name, build in LABEL_PROMPTS.items():
        text = build(TAXONOMY)
        assert "- math: numbers and proofs" in text and "- code: programs" in text, name
        assert "<sample>" in text and "JSON" in text, name
        assert (text == product) == (name == PROMPT_VERSION), name
        assert label_messages(TAXONOMY, "x", name)[0]["content"] == text


def test_the_no_examples_variant_drops_only_the_examples():
    full, bare = LABEL_PROMPTS["label-v1"](TAXONOMY), LABEL_PROMPTS["label-no-examples"](TAXONOMY)
    assert "Prove that 2 is prime." in full and "example:" not in bare
    assert bare == full.replace('\n    example: "Prove that 2 is prime."', "").replace('\n    example: "Write a sort in C."', "")


def test_the_short_variant_is_shorter_and_keeps_the_examples():
    short = LABEL_PROMPTS["label-short"](TAXONOMY)
    assert len(short) < len(LABEL_PROMPTS["label-v1"](TAXONOMY)) * 0.8
    assert "Prove that 2 is prime." in short and "rubric" not in short


def test_the_product_prompt_is_the_short_one_with_how_to_choose():
    from offline_cov.prompts import DECIDE_HINT

    product, short = label_system_prompt(TAXONOMY), LABEL_PROMPTS["label-short"](TAXONOMY)
    assert PROMPT_VERSION == "label-v2" and DECIDE_HINT in product and DECIDE_HINT not in short
    assert product.replace(DECIDE_HINT, "") == short
    assert LABEL_PROMPTS["label-decide"](TAXONOMY).replace(DECIDE_HINT, "") == LABEL_PROMPTS["label-v1"](TAXONOMY)


def test_a_small_dataset_is_asked_for_fewer_categories_so_each_can_hold_several_samples():
    from offline_cov.prompts import infer_messages, infer_schema

    for shown, most, words in ((10, 5, "Propose 5 topic"), (20, 6, "Propose between 5 and 6 topic"),
                               (40, 10, "Propose between 5 and 10 topic")):
        assert infer_schema(shown)["properties"]["categories"]["maxItems"] == most
        assert words in infer_messages(["a sample"] * shown)[0]["content"]


def test_the_tags_of_the_shown_samples_go_beside_them_and_are_counted_most_frequent_first():
    from offline_cov.prompts import infer_messages, tag_counts

    system, user = infer_messages(["sort a list", "solve x + 1 = 2", "reverse a string"], ["coding", "math", "coding"])
    assert "every tag must fit one of your categories" in system["content"]
    assert '1. "sort a list" [coding]' in user["content"] and '2. "solve x + 1 = 2" [math]' in user["content"]
    assert user["content"].endswith("Tags, by how many samples have each: coding (2), math (1)")
    assert tag_counts(["b", None, "a", "a", "b", "c"]) == "b (2), a (2), c (1)"
    plain_system, plain_user = infer_messages(["sort a list"])
    assert "tag" not in plain_system["content"] and plain_user["content"] == 'Samples:\n1. "sort a list"'


def test_shown_samples_keep_their_own_script_in_the_inference_request():
    from offline_cov.prompts import infer_messages

    assert '1. "キャラクターとして振る舞って"' in infer_messages(["キャラクターとして振る舞って"])[1]["content"]
