"""offline-cov: what an SFT dataset covers and lacks, labeled by a local model."""

from .errors import (
    InputError,
    ModelUnavailableError,
    OfflineCovError,
    TaxonomyError,
    UnknownModelError,
)
from .version import __version__

__all__ = [
    "__version__",
    "InputError",
    "ModelUnavailableError",
    "OfflineCovError",
    "TaxonomyError",
    "UnknownModelError",
    "analyze",
]


def analyze(*args, **kwargs):
    """Analyze a dataset's coverage; see offline_cov.pipeline.analyze."""
    from .pipeline import analyze as _analyze

    return _analyze(*args, **kwargs)
