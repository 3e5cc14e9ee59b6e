"""The image set (SCI, ERR, DQ of one chip) that every calacs step works on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

__all__ = ["ImSet"]


@dataclass(frozen=True)
class ImSet:
    """One chip's science, error and data-quality arrays with their headers.

    The step functions return a new ImSet (:meth:`evolve`) and leave their argument
    as it was; their ``*_inplace`` twins (what calacs's stages call) write into the
    arrays of the ImSet they are given, which must not be used afterwards.

    Parameters
    ----------
    sci, err : numpy.ndarray
        Science and error arrays (float32 once calibration has started).
    dq : numpy.ndarray
        Data-quality flags (uint16/int16 bit mask).
    hdr : astropy.io.fits.Header
        The SCI extension header (CCDCHIP, LTV1/LTV2, ...).
    extver : int
        EXTVER of the imset in the file (1-based).
    err_hdr, dq_hdr : astropy.io.fits.Header
        The ERR and DQ extension headers (BUNIT, LTV1/LTV2, statistics...).
    """

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    hdr: fits.Header = field(default_factory=fits.Header)
    extver: int = 1
    err_hdr: fits.Header = field(default_factory=fits.Header)
    dq_hdr: fits.Header = field(default_factory=fits.Header)

    def evolve(self, **changes: object) -> ImSet:
        """Return a copy with `changes` applied; headers are copied, never shared."""
        for name in ("hdr", "err_hdr", "dq_hdr"):
            if name not in changes:
                changes[name] = getattr(self, name).copy()
        return dataclasses.replace(self, **changes)

    def copy(self) -> ImSet:
        """A copy with arrays and headers of its own."""
        return self.evolve(sci=self.sci.copy(), err=self.err.copy(), dq=self.dq.copy())

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(ny, nx)`` of the arrays."""
        return self.sci.shape  # type: ignore[return-value]

    @property
    def chip(self) -> int:
        """CCDCHIP of the SCI header (calacs default 1)."""
        return int(self.hdr.get("CCDCHIP", 1))
