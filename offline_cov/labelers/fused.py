"""The fused labeler: the embedding and the LLM both read every sample; their votes are added.

Two views of each sample and of each category's texts (its card and examples, as in `embed`):

- the packaged MiniLM sentence embedding (`embed.MiniLMEncoder`),
- the LLM's own reading of the text: the mean of its final-layer hidden states over the text's
  tokens (`LLMEncoder`), centred on the mean vector of the category texts, so the direction
  every text shares does not swamp the cosine. The LLM is the models.yaml model the vllm engine
  would run; it is not asked to generate anything.

In each view a category's prototype is built as in `embed.prototypes`, and a sample's cosine
similarities to the prototypes are standardised across the categories (z-scores); the sample
gets the category with the largest `MiniLM z + FUSED_LLM_WEIGHT * LLM z`. Difficulty follows the
shared rubric's rule (`difficulty.difficulty_from_text`).

Why this combination: on the dev splits of bench/labelers.py (SmolLM2-135M) the LLM's generated
labels were near chance (0.33 and 0.17), but its hidden states held what the embedding missed
(nearest prototype on them alone: 0.77 on Arena-Hard, 0.53 on self-instruct domains); added to
MiniLM's at weight 0.5 they beat MiniLM alone on both dev sets. bench/README.md has the study
(`python -m bench.hidden`) and the test-split result. vLLM's pooling runner (`runner="pooling"`,
mean pooling) gives the same vectors (cosine > 0.99999 on 40 Arena-Hard prompts) at the same
speed on a CPU, after a 17 s start and with worker processes; transformers is used here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..data.readers import Sample
from ..report.tally import SampleLabel
from ..taxonomy import Taxonomy
from .base import LabelSettings
from .embed import (
    EMBED_MAX_TOKENS,
    EmbedLabeler,
    category_texts,
    embedding_identity,
    mean_pooled,
    nearest_labels,
    prototypes,
    unit_rows,
)
from .measured import gaps_named
from .measured import on_test as measured_on_test

FUSED_LLM_WEIGHT = 0.5  # from the dev splits: 0.25 / 0.5 / 1.0 gave 0.660 / 0.710 / 0.730 (Arena-Hard), 0.671 / 0.671 / 0.633 (self-instruct)
LLM_MAX_TOKENS = 320  # the LLM reads this many tokens of a sample (MiniLM reads 256)
LLM_BATCH = 16
FUSED_VERSION = "fused-v1"
# The LLM whose hidden states are the second view: the one every weight and temperature here was
# chosen with. It is fixed, not the run's model: a 1.5B model's states through transformers on a
# CPU cost ~10x SmolLM2's, and were never measured for this.
FUSED_ENCODER_MODEL = "smollm2-135m"
# Confidence = softmax(temperature x fused scores) of the chosen category. The temperature minimised
# the negative log-likelihood of the true category on both dev splits of bench/calibration.py.
FUSED_TEMPERATURE = 0.891


def encoder_dtype(device: str) -> str:
    """The dtype the LLM reads text in on `device`: bfloat16 on a GPU and on a CPU with bfloat16
    instructions (AVX-512 BF16, AMX, Arm BF16: `registry.cpu_dtype`), float32 on other CPUs (torch only
    emulates bfloat16 there), on CPU flags that cannot be read and with $OFFLINE_COV_CPU_TUNING=0.
    Hidden states are pooled in float32 either way (`embed.mean_pooled`).

    bench/encoder_dtype.py, dev rows of seven sets, a 2-core EPYC with AVX-512 BF16: bfloat16 read them in
    0.51-0.56x float32's time, moved 12 of 880 `fused` labels (mean accuracy 0.551 vs 0.548) and none of
    170 `ensemble-lite` labels (bench/README.md)."""
    from ..registry import cpu_dtype, cpu_flags, cpu_tuning_on

    if device != "cpu":
        return "bfloat16"
    flags = cpu_flags()
    return cpu_dtype("bfloat16", flags) if cpu_tuning_on() and flags is not None else "float32"


class LLMEncoder:
    """Mean-pooled final-layer hidden states of a causal LM (HF weights), on the CPU or a GPU."""

    def __init__(self, path: str | Path, model_name: str, device: str | None = None, dtype: str | None = None):
        from ..extras import require

        require("torch", "transformers", extra="cpu")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or encoder_dtype(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(path, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        self.model_name = model_name

    def encode(self, texts: list[str], batch_size: int = LLM_BATCH):
        """A (len(texts), hidden size) float32 numpy array; texts are cut at LLM_MAX_TOKENS tokens and
        batched by padded length (`embed.same_shape_batches`), so a text's vector is the same in any
        batch, shard or resumed run."""
        return mean_pooled(self.model, self.tokenizer, texts, self.device, LLM_MAX_TOKENS, batch_size)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))


@lru_cache(maxsize=2)
def load_llm_encoder(model: str | None = None) -> LLMEncoder:
    """The LLM encoder for a models.yaml name (default: this machine's), loaded once per process."""
    from ..home import go_offline
    from ..registry import load_registry, resolve_weights

    go_offline()
    spec = load_registry().get(model)
    return LLMEncoder(resolve_weights(spec), spec.name)


def centred_prototypes(vectors, groups: list[list[str]]):
    """(centre, prototypes) from the LLM vectors of the category texts: the centre is their mean,
    subtracted before the prototypes are built (and from every sample before it is compared)."""
    centre = vectors.mean(axis=0)
    return centre, prototypes(vectors - centre, groups)


def zscores(scores):
    """Each row standardised across its columns (a constant row becomes zeros)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    return centred / (scores.std(axis=1, keepdims=True) + 1e-9)


def fused_scores(embed_scores, llm_scores, weight: float = FUSED_LLM_WEIGHT):
    """The two views' cosines (texts x categories) standardised per text and added, the LLM's at `weight`."""
    return zscores(embed_scores) + weight * zscores(llm_scores)


class FusedLabeler:
    """MiniLM and LLM-hidden-state prototypes, added."""

    name = "fused"
    measured = (measured_on_test({
        "arena-hard": 0.687, "arena-hard-names": 0.533, "selfinstruct-domains": 0.687, "infobench": 0.44,
        "justeval-tasks": 0.518, "justeval-topics": 0.533, "justeval-topics-names": 0.413,
    }, model="smollm2-135m", gaps=gaps_named((0, 22), (98, 100))),)  # bench/choose.py, test split (the report's intervals use the lowest)
    writes_labels = False
    needs_engine = False
    reads_llm = True
    reading_model = FUSED_ENCODER_MODEL  # the metadata's `model`, whatever the run's model is

    temperature = FUSED_TEMPERATURE

    @classmethod
    def cache_identity(cls, llm_identity: str) -> str:
        """The dtype SmolLM2 reads in (`encoder_dtype`) is not in it, as the vLLM engine's float32 on a CPU
        without bfloat16 is not in its own: the labels differ at near-ties only (12 of 880 dev labels of
        `fused`), and shards of one run on CPUs of both kinds still merge."""
        knobs = {"version": FUSED_VERSION, "llm_weight": FUSED_LLM_WEIGHT, "llm_tokens": LLM_MAX_TOKENS,
                 "confidence": f"softmax x{FUSED_TEMPERATURE}"}
        return embedding_identity(cls.name, knobs, llm_identity)

    @classmethod
    def open(cls, taxonomy: Taxonomy, settings: LabelSettings, handle) -> FusedLabeler:
        """The LLM that reads is FUSED_ENCODER_MODEL, loaded here through transformers (no engine is opened)."""
        return cls(taxonomy, settings, model=FUSED_ENCODER_MODEL)

    def __init__(self, taxonomy: Taxonomy, settings=None, model: str | None = None,
                 embed: EmbedLabeler | None = None, llm: LLMEncoder | None = None,
                 weight: float = FUSED_LLM_WEIGHT):
        self.taxonomy, self.weight = taxonomy, weight
        self.embed = embed or EmbedLabeler(taxonomy, settings)
        self.llm = llm or load_llm_encoder(model)
        self.settings = self.embed.settings
        self.sample_budget = min(EMBED_MAX_TOKENS, LLM_MAX_TOKENS)
        groups = category_texts(taxonomy)
        self.centre, self.prototypes = centred_prototypes(self.llm.encode([t for g in groups for t in g]), groups)

    def llm_scores(self, texts: list[str]):
        """Cosine similarity of each text's centred LLM vector to each category's LLM prototype."""
        return unit_rows(self.llm.encode(texts) - self.centre) @ self.prototypes.T

    def scores(self, texts: list[str]):
        """The fused score of each text for each category: shape (texts, categories)."""
        return fused_scores(self.embed.scores(texts), self.llm_scores(texts), self.weight)

    def truncates(self, text: str) -> bool:
        return self.embed.truncates(text) or self.llm.count_tokens(text) > LLM_MAX_TOKENS

    def label_batch(self, samples: list[Sample], run) -> list[SampleLabel]:
        return nearest_labels(self, samples, run)

    def info(self) -> dict:
        return {"labeler": "fused", "llm_weight": self.weight, "llm": self.llm.model_name, "llm_device": self.llm.device,
                "llm_dtype": self.llm.dtype,
                "llm_pooling": "mean of final hidden states, centred on the category texts",
                "embed": self.embed.info(), "difficulty": "length/constraint rule"}
