"""Groups of similar samples, for taxonomy inference: spherical k-means over unit embedding vectors,
the number of groups chosen by the mean silhouette. Pure numpy and seeded, so the same samples
always give the same groups."""

from __future__ import annotations

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
