"""Domain errors. The CLI turns each into a clear message and a non-zero exit."""

from __future__ import annotations

from collections.abc import Iterable


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


def validation_problems(exc, known: Iterable[str] = ()) -> list[str]:
    """Each problem in a pydantic ValidationError, as "field.path: message"; an unknown key gets a
    "did you mean" from `known` (the field names the file may use)."""
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")  # a validator's own words need no prefix
        line = f"{'.'.join(str(p) for p in err['loc'])}: {message}"
        if err["type"] == "extra_forbidden" and err["loc"]:
            line = f"{'.'.join(str(p) for p in err['loc'])}: unknown key{did_you_mean(str(err['loc'][-1]), known)}"
        problems.append(line)
    return problems


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known word, or '; allowed: ...' when none is close."""
    import difflib

    known = sorted(set(known))
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; allowed: {', '.join(known)}" if known else ""
