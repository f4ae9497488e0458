"""offline-cov's bench: labeling and coverage accuracy against labeled data, and speed.

Run `python -m bench.accuracy -h` and `python -m bench.speed -h`; see bench/README.md.
"""
