"""The processes a run starts die with it: vLLM's engine core and workers (spawned by
multiprocessing), and the `analyze` commands a bench runs.

Ctrl-C and normal exits already stop them; a run killed with kill -9 (a batch system's hard stop,
the OOM killer, pkill) left them running, holding gigabytes. Linux kills a process whose parent dies
when the process asked for it (PR_SET_PDEATHSIG); elsewhere nothing is done.
"""

from __future__ import annotations

import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a process that multiprocessing spawned, ask to be killed when the parent dies. Called on
    import by the modules a spawned child imports first, the parent's main module and what it imports
    (the `offline-cov` script through `offline_cov.cli`, a bench through `bench.common`), while the
    child is still "inheriting" its parent's state; anywhere else it does nothing."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        ask_to_die_with_parent()


def ask_to_die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (also a `preexec_fn` for a command)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):
        return
