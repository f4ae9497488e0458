"""The `offline-cov` command: a thin Click layer over the library.

`analyze.py` holds analyze, models and merge; `reports.py` render, compare, seeds; `review.py` review;
`common.py`
the options and error handling they share. Commands parse options, call the library, and turn its
errors into 'Error: ...' with exit status 1 (usage errors: 2).
"""

from __future__ import annotations

import click

from ..children import die_with_parent
from ..version import __version__
from .common import CONTEXT, quiet_vllm_imports

quiet_vllm_imports()
die_with_parent()


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="offline-cov")
def main():
    """What your SFT dataset covers and lacks, labeled by a local open-weights model.

    Nothing leaves the machine: no downloads, no telemetry.
    """


def _register_commands() -> None:
    from .analyze import analyze, merge, models
    from .reports import compare, render, seeds
    from .review import review

    for command in (analyze, models, merge, render, compare, seeds, review):
        main.add_command(command)


_register_commands()


if __name__ == "__main__":
    main()
