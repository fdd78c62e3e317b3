"""The project's exceptions: every user-facing failure is one of these, with a one-line message."""

from __future__ import annotations


class NassegError(Exception):
    """Base class of every error nasseg reports to a user (one line: what and where)."""


class GenotypeError(NassegError, ValueError):
    """A genotype document is malformed: bad JSON, unknown field or op, broken cell DAG, ..."""


class ModelNotFoundError(NassegError, KeyError):
    """No registered model has the given name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(NassegError):
    """A weight file is missing, corrupt, or belongs to another architecture."""


class InputSizeError(NassegError, ValueError):
    """A net cannot take the requested input size."""


class BuildError(NassegError):
    """A valid genotype that this version cannot build (an unknown timm encoder, say)."""
