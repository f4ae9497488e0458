"""The command's main module under `python -m offline_cov.cli` (see `__main__`)."""

from offline_cov.cli import main

if __name__ == "__main__":
    main(prog_name="offline-cov")
