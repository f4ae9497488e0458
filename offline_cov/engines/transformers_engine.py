"""transformers engine: for machines where vLLM cannot be installed. Outlines constrains decoding."""

from __future__ import annotations

from ..extras import require
from ..home import go_offline
from ..registry import ModelSpec, cpu_run_dtype, dtype_change, model_identity, resolve_weights
from . import GenRequest, GenResult, TokenBudget, json_schema_type

OUTLINES_BACKEND = "outlines_core"


class TransformersEngine(TokenBudget):
    """An HF model on torch, generating one request at a time under an Outlines logits processor."""

    name = "transformers"

    def __init__(self, spec: ModelSpec, seed: int = 0):
        require("transformers", "torch", extra="transformers")
        go_offline()
        import outlines
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(seed)
        self.model_name = spec.name
        self.identity = model_identity(self.name, spec)
        self.max_model_len = spec.vllm.max_model_len
        path = resolve_weights(spec)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
        dtype = cpu_run_dtype(spec.vllm.dtype)  # float32 where this CPU has no bfloat16 instructions
        self.cpu_runtime = dtype_change(spec.vllm.dtype, dtype)
        hf_model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=spec.trust_remote_code, dtype=dtype)
        hf_model.eval()
        self.model = outlines.from_transformers(hf_model, self.tokenizer)
        self._generators: dict[str, object] = {}

    def _generator(self, schema: dict | None):
        import json

        import outlines

        key = json.dumps(schema, sort_keys=True) if schema is not None else ""
        if key not in self._generators:
            output_type = json_schema_type(schema) if schema is not None else None
            backend = OUTLINES_BACKEND if schema is not None else None
            self._generators[key] = outlines.Generator(self.model, output_type, backend=backend)
        return self._generators[key]

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Greedy decoding, one request at a time; a cut-off answer is reported as 'length'."""
        from outlines.inputs import Chat

        results = []
        for request in requests:
            generator = self._generator(request.schema)
            try:
                text = generator(Chat(request.messages), max_new_tokens=request.max_tokens, do_sample=False)
            except Exception as exc:  # a failed request is recorded, never raised past the batch
                results.append(GenResult("", "error", 0, {"error": str(exc)}))
                continue
            n = self.count_tokens(text)
            results.append(GenResult(text, "length" if n >= request.max_tokens else "stop", n))
        return results

    def info(self) -> dict:
        import importlib.metadata as md

        return {
            "engine": "transformers",
            "transformers_version": md.version("transformers"),
            "torch_version": md.version("torch"),
            "outlines_version": md.version("outlines"),
            "structured_output_backend": f"outlines ({OUTLINES_BACKEND})",
            "device": "cpu",
            **({"cpu_runtime": self.cpu_runtime} if self.cpu_runtime else {}),
        }

    def close(self) -> None:
        self.model = None
        self._generators.clear()
