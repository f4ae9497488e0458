"""Taxonomy inference by groups of similar samples: the k-means and silhouette arithmetic, and what the
naming request shows and how its answer becomes categories."""

import json

import numpy as np
import pytest

from offline_cov.engines import GenResult
from offline_cov.strategies.clusters import central, grouped, kmeans, silhouette


def blobs(k: int, per: int, spread: float = 0.05, dim: int = 16, seed: int = 1):
    """`k` tight groups of `per` unit vectors around random directions, shuffled; with each row's group."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    truth = rng.permutation(np.repeat(np.arange(k), per))
    vectors = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True) + spread * rng.normal(size=(k * per, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), truth


def same_partition(a, b) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_finds_separated_groups_and_the_silhouette_picks_their_number():
    vectors, truth = blobs(6, 8)
    assign, centroids = grouped(vectors, 5, 10)
    assert len(centroids) == 6 and same_partition(assign, truth)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1)
    again, _ = grouped(vectors, 5, 10)
    assert (again == assign).all()  # seeded: the same samples give the same groups


def test_silhouette_matches_its_definition_row_by_row():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(23, 5))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assign = np.array([0] * 9 + [1] * 7 + [2] * 6 + [3])  # group 3 has one row: it counts 0
    distance = 1 - vectors @ vectors.T
    scores = []
    for i in range(len(vectors)):
        own = [j for j in range(len(vectors)) if assign[j] == assign[i] and j != i]
        if not own:
            scores.append(0.0)
            continue
        a = distance[i, own].mean()
        b = min(distance[i, assign == g].mean() for g in set(assign.tolist()) if g != assign[i])
        scores.append((b - a) / max(a, b))
    assert silhouette(vectors, assign) == pytest.approx(np.mean(scores))
    assert silhouette(vectors, np.zeros(23, dtype=int)) == 0.0


def test_kmeans_keeps_every_group_and_central_rows_come_nearest_first():
    vectors, _ = blobs(3, 4)
    assign, centroids = kmeans(vectors, 7)  # more groups than the data has: none is left empty
    assert sorted(set(assign.tolist())) == list(range(7))
    for g in range(7):
        rows = central(vectors, assign, centroids, g, 10)
        assert sorted(rows) == sorted(np.flatnonzero(assign == g).tolist())
        sims = [float(vectors[i] @ centroids[g]) for i in rows]
        assert all(a >= b - 1e-9 for a, b in zip(sims, sims[1:]))  # a row's own dot product can differ in the last bit
    assert len(central(vectors, assign, centroids, 0, 1)) == 1


def test_groups_named_alike_become_one_category_with_the_most_samples_first():
    from offline_cov.strategies.clusters import merged_categories

    items = [{"name": "Python Code", "description": "code "}, {"name": "math", "description": "sums"},
             {"name": "python_code", "description": "other"}, {"name": "", "description": "unnamed"}]
    groups = [["def f", "class A"], ["1+1"], ["import os"], ["?"]]
    merged = merged_categories(items, groups, sizes=[3, 10, 9, 40], examples=3)
    assert [(c.name, c.description, c.examples) for c in merged] == [
        ("python_code", "code", ["def f", "class A", "import os"]), ("math", "sums", ["1+1"])]
    assert all(c.examples == [] for c in merged_categories(items, groups, [3, 10, 9, 40], examples=0))


class NamingEngine:
    """A fake engine for the naming request: answers one category per group asked, from `names` in turn."""

    def __init__(self, names: list[str], max_model_len: int = 8192):
        from offline_cov.engines.fake import FakeEngine

        self.fake, self.names, self.max_model_len = FakeEngine(max_model_len=max_model_len), names, max_model_len
        self.requests = []

    def count_tokens(self, text: str) -> int:
        return self.fake.count_tokens(text)

    def generate(self, requests):
        start, self.requests = len(self.requests), self.requests + list(requests)
        if "name" in requests[0].schema["properties"]:  # clusters-each: a request a group
            return [GenResult(json.dumps({"name": self.names[(start + i) % len(self.names)], "description": "one group"}),
                              "stop", 5) for i in range(len(requests))]
        if "categories" not in requests[0].schema["properties"]:
            return self.fake.generate(requests)  # the vote's requests: any valid answer
        k = requests[0].schema["properties"]["categories"]["minItems"]
        answer = {"categories": [{"name": self.names[i % len(self.names)], "description": f"group {i + 1}"} for i in range(k)]}
        return [GenResult(json.dumps(answer), "stop", 10)]


TOPICS = {
    "sql": "Write a SQL query that returns the {} from the orders table.",
    "poem": "Write a short poem about {} in the autumn rain.",
    "math": "Solve for x: {} x + 3 = 12, and show each algebra step.",
    "cooking": "Give me a recipe for {} soup with fresh vegetables.",
    "travel": "Plan a three-day trip to {} on a small budget.",
    "chess": "Explain the chess opening named after {} and its main line.",
}


def topic_samples(per: int = 4):
    from offline_cov.data.readers import Sample

    words = ["alpha", "bravo", "carrot", "delta", "echo", "falcon"][:per]
    texts = [template.format(w) for template in TOPICS.values() for w in words]
    return [Sample(i, (("user", t),)) for i, t in enumerate(texts)]


def test_inference_by_clusters_names_each_group_from_its_central_samples():
    from offline_cov.strategies.clusters import GROUP_SHOWN
    from offline_cov.strategies.infer import infer_taxonomy

    engine = NamingEngine(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
    taxonomy = infer_taxonomy(engine, topic_samples(), method="clusters+examples")
    assert taxonomy.inferred and taxonomy.inferred_by == "clusters" and 5 <= len(taxonomy.names) <= 10
    (request,) = engine.requests
    asked = request.messages[1]["content"]
    assert asked.startswith("Group 1 (") and f"Group {len(taxonomy.names)} (" in asked
    assert asked.count("\n- ") <= GROUP_SHOWN * len(taxonomy.names)
    assert all(1 <= len(c.examples) <= 3 and all(e in asked for e in c.examples) for c in taxonomy.categories)
    plain = infer_taxonomy(NamingEngine(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]), topic_samples(), method="clusters")
    assert plain.names == taxonomy.names and all(c.examples == [] for c in plain.categories)


def test_inference_by_clusters_falls_back_to_the_proposal_when_names_repeat_or_samples_are_few():
    from offline_cov.strategies.clusters import CLUSTER_MIN_SAMPLES
    from offline_cov.strategies.infer import infer_taxonomy

    repeated = NamingEngine(["same", "same", "other"])  # fewer than 5 distinct names: the proposal instead
    taxonomy = infer_taxonomy(repeated, topic_samples(), method="clusters")
    assert taxonomy.inferred_by in ("proposal", "vote") and len(repeated.requests) >= 2
    assert repeated.requests[1].messages[1]["content"].startswith("Samples:")
    few = NamingEngine(["a", "b", "c", "d", "e"])
    infer_taxonomy(few, topic_samples()[: CLUSTER_MIN_SAMPLES - 1], method="clusters")
    assert not few.requests[0].messages[1]["content"].startswith("Group 1")


def test_the_naming_request_shows_fewer_samples_a_group_until_it_fits_the_models_context():
    from offline_cov.strategies.infer import INFER_MAX_TOKENS, infer_taxonomy

    room = 220
    engine = NamingEngine(list("abcdefghij"), max_model_len=INFER_MAX_TOKENS + 48 + room)
    infer_taxonomy(engine, topic_samples(6), method="clusters")
    asked = engine.requests[0].messages
    assert sum(engine.count_tokens(m["content"]) for m in asked) <= room
    assert asked[1]["content"].count("\n- ") < 6 * 5


def test_inference_by_clusters_each_names_every_group_in_a_request_of_its_own():
    from offline_cov.strategies.infer import infer_taxonomy

    engine = NamingEngine(["a", "b", "c", "a", "d", "e", "f", "g", "h", "i"])
    taxonomy = infer_taxonomy(engine, topic_samples(), method="clusters-each+examples")
    groups = len(engine.requests)
    assert groups >= 5 and all(r.messages[1]["content"].startswith("Samples:\n- ") for r in engine.requests)
    assert taxonomy.inferred_by == "clusters" and len(taxonomy.names) == groups - 1  # "a" named two groups
    assert all(1 <= len(c.examples) <= 3 for c in taxonomy.categories)
    assert len(taxonomy.categories[taxonomy.names.index("a")].examples) == 3
