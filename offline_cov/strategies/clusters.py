"""Taxonomy inference by groups of similar samples (`infer_taxonomy(method="clusters...")`, measured in
bench.infer and not shipped, bench/README.md): spherical k-means over the samples' unit embedding
vectors, the number of groups chosen by the mean silhouette (pure numpy and seeded, so the same
samples always give the same groups), then the model names each group from its central samples."""

from __future__ import annotations

from ..data.readers import Sample
from ..engines import Engine, GenRequest
from ..generation import generate_parsed, json_object
from ..labelers.llm import leaves_room
from ..prompts import (
    INFER_MAX_TOKENS,
    INFER_SNIPPET_CHARS,
    MIN_INFERRED,
    group_messages,
    group_schema,
    inferred_at_most,
    inferred_category_schema,
    one_group_messages,
)
from ..report.tally import snippet
from ..taxonomy import Category, slugify

CLUSTER_SEED = 0
CLUSTER_RESTARTS = 4
CLUSTER_ITERATIONS = 60


def kmeans(vectors, k: int, seed: int = CLUSTER_SEED):
    """The lowest-cost of CLUSTER_RESTARTS spherical k-means runs (k-means++ starts): (each row's group,
    the groups' unit centroids). Cost: the summed cosine distance of each row to its centroid."""
    import numpy as np

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(CLUSTER_RESTARTS):
        assign, centroids = _lloyd(vectors, _plus_plus(vectors, k, rng))
        cost = float((1 - (vectors * centroids[assign]).sum(axis=1)).sum())
        if best is None or cost < best[0]:
            best = (cost, assign, centroids)
    return best[1], best[2]


def _plus_plus(vectors, k: int, rng):
    """k starting centroids, each next one drawn with probability in proportion to a row's cosine
    distance to the nearest one drawn so far."""
    import numpy as np

    chosen = [int(rng.integers(len(vectors)))]
    for _ in range(k - 1):
        distance = np.clip(1 - (vectors @ vectors[chosen].T).max(axis=1), 0, None)
        total = distance.sum()
        chosen.append(int(rng.choice(len(vectors), p=distance / total)) if total > 0 else int(rng.integers(len(vectors))))
    return vectors[chosen].copy()


def _lloyd(vectors, centroids):
    """Assign each row to its most similar centroid and move each centroid to its rows' mean direction,
    until nothing moves; a group left empty restarts at the row farthest from its own centroid."""
    import numpy as np

    assign = None
    for _ in range(CLUSTER_ITERATIONS):
        sims = vectors @ centroids.T
        new = sims.argmax(axis=1)
        if assign is not None and (new == assign).all():
            break
        assign = new
        for j in range(len(centroids)):
            members = vectors[assign == j]
            if len(members):
                mean = members.mean(axis=0)
                centroids[j] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            else:
                far = int(sims[np.arange(len(vectors)), assign].argmin())
                centroids[j], assign[far] = vectors[far], j
    return assign, centroids


def silhouette(vectors, assign) -> float:
    """The mean silhouette of the grouping under cosine distance (a row alone in its group counts 0):
    near 1 when groups are tight and apart, near 0 when they overlap."""
    import numpy as np

    distance = 1 - vectors @ vectors.T
    labels = np.unique(assign)
    if len(labels) < 2:
        return 0.0
    means = np.stack([distance[:, assign == g].mean(axis=1) for g in labels], axis=1)
    sizes = np.array([(assign == g).sum() for g in labels])
    own = np.searchsorted(labels, assign)
    n_own = sizes[own]
    a = means[np.arange(len(assign)), own] * n_own / np.maximum(n_own - 1, 1)  # self left out
    means[np.arange(len(assign)), own] = np.inf
    b = means.min(axis=1)
    score = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(score.mean())


def grouped(vectors, smallest: int, largest: int):
    """The k-means grouping with the best mean silhouette for k from `smallest` to `largest`
    (the smaller k on ties): (each row's group, the unit centroids). Needs more rows than `smallest`."""
    if len(vectors) <= smallest:
        raise ValueError(f"{len(vectors)} rows cannot make more than one group each of {smallest} groups")
    best = None
    for k in range(smallest, min(largest, len(vectors) - 1) + 1):
        assign, centroids = kmeans(vectors, k)
        score = silhouette(vectors, assign)
        if best is None or score > best[0] + 1e-9:
            best = (score, assign, centroids)
    return best[1], best[2]


def central(vectors, assign, centroids, group: int, n: int) -> list[int]:
    """The indices of up to `n` rows of `group` nearest its centroid, nearest first."""
    import numpy as np

    members = np.flatnonzero(assign == group)
    order = np.argsort(-(vectors[members] @ centroids[group]), kind="stable")
    return [int(i) for i in members[order[:n]]]


CLUSTER_MIN_SAMPLES = 2 * MIN_INFERRED  # fewer samples than this: the proposal
GROUP_SHOWN = 5  # samples shown of each group, the nearest its centre
GROUP_EXAMPLES = 3  # of them kept as a category's examples ("clusters+examples")
GROUP_NAME_MAX_TOKENS = 120  # one group's name and description ("clusters-each")


def cluster_categories(engine: Engine, samples: list[Sample], examples: bool = False, each: bool = False) -> list[Category]:
    """Categories of groups of similar samples (`sample_groups`) as the model names them from each group's
    central samples, all in one request (with `each`, a request a group); groups it names alike become
    one category. With `examples`, each category keeps a few of those samples as its examples. None
    when there are fewer than CLUSTER_MIN_SAMPLES samples or the model's answer is unusable twice."""
    if len(samples) < CLUSTER_MIN_SAMPLES:
        return []
    groups, sizes = sample_groups(samples)
    if each:
        requests = [GenRequest(one_group_messages(shown), inferred_category_schema(), GROUP_NAME_MAX_TOKENS) for shown in groups]
        items = [o.value or {} for o in generate_parsed(engine, requests, lambda _, result: json_object(result))]
    else:
        groups = fitted_groups(engine, groups, sizes)
        request = GenRequest(group_messages(groups, sizes), group_schema(len(groups)), INFER_MAX_TOKENS)
        items = generate_parsed(engine, [request], lambda _, result: json_object(result)["categories"])[0].value or []
    return merged_categories(items, groups, sizes, GROUP_EXAMPLES if examples else 0)


def sample_groups(samples: list[Sample]) -> tuple[list[list[str]], list[int]]:
    """The samples' MiniLM embeddings grouped by k-means (5 to 10 groups, k by the best silhouette):
    each group's GROUP_SHOWN samples nearest its centre (as snippets), and its size."""
    import numpy as np

    from ..labelers.embed import load_encoder

    vectors = load_encoder().encode([s.instruction for s in samples])
    assign, centroids = grouped(vectors, MIN_INFERRED, inferred_at_most(len(samples)))
    groups = [[snippet(samples[i].instruction, INFER_SNIPPET_CHARS) for i in central(vectors, assign, centroids, g, GROUP_SHOWN)]
              for g in range(len(centroids))]
    return groups, [int(n) for n in np.bincount(assign, minlength=len(centroids))]


def fitted_groups(engine: Engine, groups: list[list[str]], sizes: list[int]) -> list[list[str]]:
    """The groups, each shown by fewer samples until the naming request leaves room for the answer
    (down to one a group)."""
    shown = max(len(g) for g in groups)
    while shown > 1 and not leaves_room(engine, group_messages([g[:shown] for g in groups], sizes), INFER_MAX_TOKENS):
        shown -= 1
    return [g[:shown] for g in groups]


def merged_categories(items: list[dict], groups: list[list[str]], sizes: list[int], examples: int) -> list[Category]:
    """One category per distinct snake_case name, the most samples first; a name given to several groups
    keeps its first description, and with `examples` > 0 the first samples shown of its groups."""
    described: dict[str, str] = {}
    members: dict[str, list[int]] = {}
    for g, item in enumerate(items[: len(groups)]):
        name = slugify(item.get("name", ""))
        if name:
            described.setdefault(name, item.get("description", "").strip())
            members.setdefault(name, []).append(g)
    order = sorted(members, key=lambda n: -sum(sizes[g] for g in members[n]))
    return [Category(name=n, description=described[n], examples=[s for g in members[n] for s in groups[g]][:examples])
            for n in order]
