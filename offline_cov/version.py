"""The package version, apart from `__init__` so that any module can name it without a cycle."""

__version__ = "0.1.0"
