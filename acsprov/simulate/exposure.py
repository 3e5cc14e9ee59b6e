"""A simulated exposure: its truth per chip, and what its raw and archive files share.

:mod:`acsprov.simulate.raw` makes :class:`SimulatedExposure` objects and
:mod:`acsprov.simulate.archive` turns them into ``_flt`` products; both import the
definitions here, so that neither needs the other at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from acsprov.simulate import truth
from acsprov.simulate.datasets import SM4_MJD, DatasetSpec, MemberSpec
from acsprov.simulate.geometry import ChipLayout, RawLayout

__all__ = ["CR_FLAG_SIGMA", "ChipTruth", "SimulatedExposure", "exposure_darktime", "filter_key"]


#: Cosmic-ray deposits larger than this many sigma of the local noise are the ones
#: the archive's CR rejection flags (DQ 8192).
CR_FLAG_SIGMA = 4.0


#: The WCS keywords every extension of a raw imset carries.
_WCS_KEYS = ("WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2", "CD1_1",
             "CD1_2", "CD2_1", "CD2_2", "ORIENTAT")


def filter_key(spec: DatasetSpec) -> str:
    """The first non-CLEAR filter of `spec` (``CLEAR`` if both are clear)."""
    for f in (spec.filter1, spec.filter2):
        if not f.startswith("CLEAR"):
            return f
    return "CLEAR"


def exposure_darktime(spec: DatasetSpec) -> float:
    """Seconds of dark current in an exposure: EXPTIME, plus after SM4 the unflashed
    overhead (CCDTAB OVRHUFLS) that calacs adds to DARKTIME."""
    overhead = truth.ccd_overheads(spec.detector)[1] if spec.expstart >= SM4_MJD else 0.0
    return spec.exptime + overhead


@dataclass(frozen=True)
class ChipTruth:
    """What the simulator knows about one simulated imset.

    Attributes
    ----------
    chip : ChipLayout
        The imset's layout.
    raw : numpy.ndarray
        The raw DN image (uint16, raw geometry).
    bias_dn : dict
        True bias level (DN) of each amplifier in this readout.
    stripes : numpy.ndarray
        Bias stripes (electrons, raw geometry, float32; zeros when there are none).
    cosmic_rays : numpy.ndarray
        Cosmic-ray charge (electrons) over the science region.
    bias_shift : bool
        Whether the signal-dependent bias shift of the post-SM4 electronics is in
        the raw data (:func:`acsprov.simulate.truth.add_bias_shift`).
    crosstalk : bool
        Whether amplifier cross-talk is in the raw data.
    """

    chip: ChipLayout
    raw: np.ndarray
    bias_dn: Mapping[str, float]
    stripes: np.ndarray
    cosmic_rays: np.ndarray
    bias_shift: bool = False
    crosstalk: bool = False


@dataclass(frozen=True)
class SimulatedExposure:
    """One simulated exposure: its raw imsets, headers and truth.

    Attributes
    ----------
    spec, member : DatasetSpec, MemberSpec
    layout : RawLayout
    chips : tuple of ChipTruth
        In EXTVER order.
    primary : astropy.io.fits.Header
        Raw primary header.
    sci_headers : tuple of astropy.io.fits.Header
        Raw SCI extension headers (without data keywords).
    seed : int
    """

    spec: DatasetSpec
    member: MemberSpec
    layout: RawLayout
    chips: tuple[ChipTruth, ...]
    primary: fits.Header
    sci_headers: tuple[fits.Header, ...]
    seed: int

    @property
    def rootname(self) -> str:
        """Lower-case rootname."""
        return self.member.root

    def raw_hdulist(self) -> fits.HDUList:
        """The ``_raw.fits`` file as an HDUList."""
        hdus: list[fits.hdu.base.ExtensionHDU] = []
        for ct, sci_hdr in zip(self.chips, self.sci_headers, strict=True):
            sci = fits.ImageHDU(data=ct.raw, header=sci_hdr.copy())
            hdus.append(sci)
            for name, bunit in (("ERR", "COUNTS"), ("DQ", "UNITLESS")):
                h = fits.ImageHDU(name=name)
                h.header["EXTVER"] = ct.chip.extver
                h.header["ROOTNAME"] = self.rootname
                h.header["INHERIT"] = True
                h.header["NPIX1"] = (ct.chip.nx, "length of constant array axis 1")
                h.header["NPIX2"] = (ct.chip.ny, "length of constant array axis 2")
                h.header["PIXVALUE"] = (0.0 if name == "ERR" else 0, "values of pixels")
                h.header["BUNIT"] = bunit
                for key in ("CCDCHIP", "LTV1", "LTV2", "LTM1_1", "LTM2_2", *_WCS_KEYS):
                    h.header[key] = (sci_hdr[key], sci_hdr.comments[key])
                hdus.append(h)
        return fits.HDUList([fits.PrimaryHDU(header=self.primary.copy()), *hdus])
