#!/usr/bin/env bash
# Run the whole test suite (unit tests and end-to-end tests on the real engines), offline.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_NO_USAGE_STATS=1
exec .venv/bin/python -m pytest --durations=25 "$@"
