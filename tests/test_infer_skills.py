"""Taxonomy inference's top-up: vocabulary skills that shown samples are nearer to than to any
proposed category are added to the model's proposal (`strategies.infer.skills_wanted`)."""

import numpy as np
import pytest

from offline_cov.strategies.infer import SKILL_TOP_UP_SAMPLES, SKILL_VOCABULARY, skills_wanted
from offline_cov.taxonomy import Category

PROPOSED = [Category(name=n, description=f"{n} things") for n in ("language", "mathematics", "history", "science", "writing")]


def nearest_to(choices: list[str]):
    """Similarities under which shown sample i is nearest the category named choices[i]."""
    def scores(taxonomy, texts):
        assert len(texts) == len(choices)
        matrix = np.zeros((len(texts), len(taxonomy.names)))
        for i, name in enumerate(choices):
            matrix[i, taxonomy.names.index(name)] = 1.0
        return matrix
    return scores


def test_skills_with_enough_nearest_samples_are_added_most_first():
    choices = ["coding"] * 4 + ["translation"] * SKILL_TOP_UP_SAMPLES + ["roleplay"] * (SKILL_TOP_UP_SAMPLES - 1)
    choices += ["history"] * (30 - len(choices))
    added = skills_wanted(PROPOSED, [f"s{i}" for i in range(30)], nearest_to(choices))
    assert [c.name for c in added] == ["coding", "translation"]  # roleplay: one sample short
    assert added[0].description == dict(SKILL_VOCABULARY)["coding"]


def test_no_more_skills_than_the_taxonomy_has_room_for():
    skills = [n for n, _ in SKILL_VOCABULARY][:8]
    choices = [n for n in skills for _ in range(SKILL_TOP_UP_SAMPLES)] + ["history"] * 6
    added = skills_wanted(PROPOSED, [f"s{i}" for i in range(len(choices))], nearest_to(choices))
    assert len(added) == 10 - len(PROPOSED)  # 30 shown: at most 10 categories
    small = skills_wanted(PROPOSED, [f"s{i}" for i in range(15)], nearest_to(choices[:15]))
    assert small == []  # 15 shown: at most 5 categories, the proposal's own


def test_a_skill_already_proposed_is_not_added_again():
    proposed = [*PROPOSED[:4], Category(name="coding", description="code")]
    choices = ["coding"] * 10 + ["history"] * 20
    assert skills_wanted(proposed, [f"s{i}" for i in range(30)], nearest_to(choices)) == []


BUNDLED_PROPOSAL = [  # the 1.5B's proposal for the bundled example's 40 shown samples (session 35)
    ("language", "Language-related topics like vocabulary, grammar, and sentence structure."),
    ("mathematics", "Mathematical concepts like numbers, operations, and proofs."),
    ("history", "Historical events, figures, and periods."),
    ("science", "Scientific discoveries, experiments, and theories."),
    ("writing", "Writing skills like grammar, sentence structure, and style."),
]


@pytest.mark.engine  # MiniLM
def test_minilm_gives_the_bundled_examples_code_samples_a_skill_the_proposal_left_out():
    """The 1.5B's proposal for the bundled example (session 33-35) names no category for its code."""
    from conftest import EXAMPLE

    from offline_cov.data.readers import read_samples
    from offline_cov.prompts import INFER_MAX_SAMPLES, INFER_SNIPPET_CHARS
    from offline_cov.report.tally import snippet
    from offline_cov.strategies.infer import spread

    proposed = [Category(name=n, description=d) for n, d in BUNDLED_PROPOSAL]
    shown = [snippet(s.instruction, INFER_SNIPPET_CHARS) for s in spread(read_samples(EXAMPLE).samples, INFER_MAX_SAMPLES)]
    added = [c.name for c in skills_wanted(proposed, shown)]
    assert "coding" in added and len(added) <= 5
