"""Domain errors. The CLI turns each into a clear message and a non-zero exit."""

from __future__ import annotations


class OfflineCovError(Exception):
    """Base class for every error offline-cov reports to the user."""


class InputError(OfflineCovError):
    """A dataset that cannot be read, with the place it went wrong."""

    def __init__(self, path, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class TaxonomyError(OfflineCovError):
    """A taxonomy that is empty, duplicated or has impossible targets."""


class ModelConfigError(OfflineCovError):
    """A models.yaml that does not validate."""


class UnknownModelError(OfflineCovError, KeyError):
    """A model name that models.yaml does not list."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelUnavailableError(OfflineCovError):
    """Weights that are not on this machine, or hardware the model needs."""


class MissingDependencyError(OfflineCovError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class GenerationError(OfflineCovError):
    """The engine could not produce a usable answer."""


def validation_problems(exc) -> list[str]:
    """Each problem in a pydantic ValidationError, as "field.path: message"."""
    return [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
