"""Exceptions raised by acsprov.

Every failure a user can cause (bad input, a missing reference file, an unknown
dataset) is an :class:`AcsprovError`.  The command line prints its message on one
line and exits non-zero; nothing else is ever shown as a traceback.  Each subclass
also inherits the builtin exception it refines, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "AcsprovError",
    "BadInputError",
    "DatasetError",
    "MissingFileError",
    "NotImplementedYetError",
    "RecipeError",
    "ReferenceFileError",
    "SourceError",
    "UnsafePathError",
    "WriteError",
]


class AcsprovError(Exception):
    """Base class of every error acsprov reports to a user."""

    exit_code = 1


class BadInputError(AcsprovError, ValueError):
    """An input file is not what acsprov can process (truncated, wrong instrument...)."""

    exit_code = 2


class MissingFileError(BadInputError, FileNotFoundError):
    """An input file or executable does not exist.

    A :class:`FileNotFoundError` (so an ``OSError``, as acstools raises for a missing
    input) and a :class:`BadInputError` (one line on the command line).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetError(AcsprovError, LookupError):
    """An unknown dataset name, or a dataset whose files are inconsistent."""

    exit_code = 2


class RecipeError(AcsprovError, ValueError):
    """A dataset recipe is malformed (unknown step, switch or value)."""

    exit_code = 2


class ReferenceFileError(AcsprovError, FileNotFoundError):
    """A reference file is missing, unreadable or does not fit the science data."""

    exit_code = 3


class SourceError(AcsprovError, OSError):
    """Data could not be obtained from the archive or the simulator."""

    exit_code = 4


class NotImplementedYetError(AcsprovError, NotImplementedError):
    """A recipe step that a later version of acsprov will implement."""

    exit_code = 5


class WriteError(AcsprovError, OSError):
    """A file could not be written (disk full, file size limit, quota).

    Writes are atomic, so the file it would have replaced is left as it was.
    """

    exit_code = 10


class UnsafePathError(AcsprovError, PermissionError):
    """A path from a recipe, PROV document, bundle or work directory points outside the
    directory it belongs to, or is a link acsprov will not follow."""

    exit_code = 11
