"""`python -m offline_cov.cli`: the same command as the `offline-cov` script.

It runs `offline_cov.cli.script` as the main module, as the script runs its own file. vLLM starts its
engine with multiprocessing's spawn, whose children import the main module first unless it is named
`__main__`; importing it imports this package, which asks Linux to stop them when the run dies
(`offline_cov.children.die_with_parent`) and quiets vLLM's import-time lines (`common.quiet_vllm_imports`).
Run from here instead, a run killed with kill -9 left vLLM's engine running, holding gigabytes.
"""

import runpy

runpy.run_module("offline_cov.cli.script", run_name="__main__", alter_sys=True)
