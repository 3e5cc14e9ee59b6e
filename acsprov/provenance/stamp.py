"""The pointer back from a product to its provenance, written into its primary header.

While a recorded activity runs, :func:`current_stamp` holds the keywords that every
FITS product it writes must carry: ``PROVRUN`` (the run), ``PROVACT`` (the activity
that made the file), ``PROVDOC`` (sha256 of the run's PROV document as it stood when
the activity began, i.e. the recorded history of the product's inputs; every version of
the document is kept in the dataset's git history) and HISTORY lines naming the
actions of the run so far.  Writers call :func:`apply_stamp` on the primary header just
before writing, so no product is ever rewritten only to be stamped.

This module imports nothing heavy, so the calibration engine can use it freely.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

from astropy.io import fits

__all__ = ["RUN_IDENTITY_CARDS", "Stamp", "apply_stamp", "current_stamp", "stamping"]

#: The only header cards in which a product re-made by ``datalad rerun`` differs from
#: the recorded one: they name the run, the activity and the PROV document that made
#: this very file, and a re-execution is another run and activity, recorded in another
#: document.  Besides them, the HISTORY line ``acsprov: <action> (<PROVACT>)`` naming
#: the activity that made the file carries the same activity identifier.
RUN_IDENTITY_CARDS = ("PROVRUN", "PROVACT", "PROVDOC")


@dataclass(frozen=True)
class Stamp:
    """Keywords pointing a product back at its provenance."""

    run_id: str
    activity_id: str
    document_sha256: str
    history: tuple[str, ...] = field(default_factory=tuple)


_CURRENT: contextvars.ContextVar[Stamp | None] = contextvars.ContextVar(
    "acsprov_stamp", default=None
)


def current_stamp() -> Stamp | None:
    """The stamp of the activity running now, or None outside recorded activities."""
    return _CURRENT.get()


@contextlib.contextmanager
def stamping(stamp: Stamp) -> Iterator[Stamp]:
    """Make `stamp` current for the duration of the block."""
    token = _CURRENT.set(stamp)
    try:
        yield stamp
    finally:
        _CURRENT.reset(token)


def apply_stamp(header: fits.Header, stamp: Stamp | None = None) -> fits.Header:
    """Add the provenance keywords of `stamp` (default: the current one) to `header`.

    Returns the header, changed in place; without a stamp it is returned unchanged.
    """
    stamp = stamp or current_stamp()
    if stamp is None:
        return header
    header["PROVRUN"] = (stamp.run_id, "acsprov provenance run id")
    header["PROVACT"] = (stamp.activity_id, "acsprov PROV activity")
    header["PROVDOC"] = stamp.document_sha256  # 64 hex digits leave no room for a comment
    for line in stamp.history:
        header.add_history(f"acsprov: {line}")
    return header
