"""`python -m offline_cov.cli`: the same command as the `offline-cov` script."""

from . import main

main(prog_name="offline-cov")
