"""Synthetic ACS reference files, in the formats calacs, CRDS and stwcs read.

:func:`reference_catalog` lists every reference file the simulated datasets need
(WFC and HRC, plus the SBC MLINTAB): its name, reference type, USEAFTER date, the
selection keywords written in its primary header and the matching values a CRDS
rmap would hold for it.  :func:`write_reference_files` writes them into a ``jref``
directory; the data come from :mod:`acsprov.simulate.truth`, so the simulated raw
data and the archive products agree with them.  :func:`references_for` gives the
reference keywords the archive's pipeline would write into a dataset's headers.

Format facts the files follow (learned from calacs's reference-file readers):

* Every primary header has INSTRUME, DETECTOR, FILETYPE (CRDS's name of the type),
  USEAFTER, PEDIGREE ``INFLIGHT dd/mm/yyyy dd/mm/yyyy``, DESCRIP and a COMMENT
  saying the file is synthetic.
* Images are SCI/ERR/DQ imsets per chip, ordered like the science data (WFC2 first),
  each SCI header carrying CCDCHIP, LTV1/LTV2 and LTM1_1/LTM2_2; error and quality
  arrays without structure are written as constant extensions (no data, NPIX1,
  NPIX2, PIXVALUE), which calacs expands.  BIASFILE, SATUFILE and SNKCFILE have raw
  geometry (LTV1=24); DARKFILE, DRKCFILE, PFLTFILE, FLSHFILE and SHADFILE are trimmed.
* CCDTAB rows match CCDAMP exactly, CCDCHIP, CCDGAIN, BINAXIS1/2 and CCDOFSTA-D.
  AMPX (first column of a line's second amplifier) is in trimmed pixels, calacs adding
  a positive LTV1: 2048 for WFC rows, 0 for rows of a readout through B or D alone
  (all its columns are then the "second" amplifier's) and for HRC; AMPY is 0.
* OSCNTAB rows match CCDAMP, CCDCHIP, BINX/BINY and the raw NX/NY, coordinates
  1-based.  A one-amplifier readout lists its overscan in BIASSECTA even when it is
  at the end of the line (WFC1B-1K: 2049-2072), and WFC rows declare no virtual
  overscan for a bias-drift fit (VX/VY = 0), which calacs would fit across both
  amplifiers of a chip (see :func:`acsprov.simulate.geometry.oscntab_row`).
* BIASFILE selection: the post-SM4 WFC superbias says CCDAMP='ANY' and
  APERTURE='ANY_FULL', which CRDS expands to every amplifier setting and aperture
  with wildcard NAXISn/RAW_LTVn, so ``crds bestrefs --files`` gives subarrays (whose
  raw files hold no RAW_LTVn) the full-frame bias, which calacs cuts by LTV1/LTV2.
* CRREJTAB: INITGUES is 'minimum' for CRSPLIT=2 (the median of two exposures is their
  mean, which keeps half of every cosmic ray) and 'median' above.
* The PCTETAB is a generation-3 table (CTE_NAME ``Par/Serial PixelCTE 2023``): one
  parallel then four serial (amps A, B, C, D) sets of QPROF, SCLBYCOL, RPROF, CPROF.
* IDCTAB, NPOLFILE and D2IMFILE carry what stwcs.updatewcs reads (NORDER, rows by
  DETCHIP/DIRECTION/FILTER1/FILTER2 with CX/CY coefficients; DX/DY lookup grids per
  CCDCHIP).

Three names come from the ACS Data Handbook and are kept: ``6641828tj_bia.fits`` (the
WFC full-frame gain-2 superbias of 2016), ``8ch1518tj_cte.fits`` (the PCTETAB) and
``9362018jj_dkc.fits`` (a WFC CTE-corrected dark).  The other names imitate CRDS's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.errors import ReferenceFileError
from acsprov.simulate import truth
from acsprov.simulate.datasets import DEFAULT_SEED, SM4_MJD, DatasetSpec, calibration_switches
from acsprov.simulate.geometry import (
    HRC_FULL,
    WFC_FULL,
    ChipLayout,
    RawLayout,
    full_chip,
    oscntab_row,
    physical_slices,
    raw_layout,
    window_slices,
)

__all__ = [
    "BIAS_ERR_DN",
    "DARK_ERR",
    "FLAT_ERR",
    "HOT_PIXEL_THRESHOLD",
    "REFERENCE_KEYWORDS",
    "RefFileInfo",
    "build_reference",
    "find_reference",
    "recipe_parameters",
    "reference_catalog",
    "references_for",
    "sink_map",
    "write_fits_atomic",
    "write_reference_files",
]

#: Reference-file keywords of an ACS raw primary header, in archive order.
REFERENCE_KEYWORDS: tuple[str, ...] = (
    "BPIXTAB", "CCDTAB", "ATODTAB", "OSCNTAB", "BIASFILE", "FLSHFILE", "CRREJTAB",
    "SHADFILE", "PCTETAB", "DRKCFILE", "DARKFILE", "PFLTFILE", "DFLTFILE", "LFLTFILE",
    "CFLTFILE", "SPOTTAB", "IMPHTTAB", "IDCTAB", "DGEOFILE", "MDRIZTAB", "NPOLFILE",
    "D2IMFILE", "SNKCFILE", "SATUFILE", "MLINTAB",
)

_FILETYPE = {
    "atodtab": "ANALOG-TO-DIGITAL",
    "biasfile": "BIAS",
    "bpixtab": "BAD PIXELS",
    "ccdtab": "CCD PARAMETERS",
    "crrejtab": "COSMIC RAY REJECTION",
    "d2imfile": "WFC D2I FILE",
    "darkfile": "DARK",
    "drkcfile": "CTEDARK",
    "flshfile": "POST FLASH",
    "idctab": "DISTORTION COEFFICIENTS",
    "imphttab": "IMAGE PHOTOMETRY TABLE",
    "mdriztab": "MULTIDRIZZLE PARAMETERS",
    "mlintab": "LINEARITY",
    "npolfile": "DXY GRID",
    "oscntab": "OVERSCAN",
    "pctetab": "PIXCTE",
    "pfltfile": "PIXEL-TO-PIXEL FLAT",
    "satufile": "FULL-WELL SATURATION LEVEL MAP",
    "shadfile": "SHUTTER SHADING",
    "snkcfile": "SINK PIXELS",
}

_WFC_AMPS_ANY = "A|ABCD|AD|B|BC|C|D"
#: What crds's substitution rules make of a WFC bias with APERTURE='ANY_FULL' and a
#: USEAFTER before 2016-09-25: every full-frame and subarray aperture (its NAXISn and
#: RAW_LTVn become wildcards), so that calacs cuts the full-frame bias to the readout.
_WFC_ANY_FULL = (
    "NONE|WFC|WFC-FIX|WFC1|WFC1-CTE|WFC1-FIX|WFC1-IRAMP|WFC1-MRAMP|WFC2|WFC2-FIX|"
    "WFC2-MRAMP|WFC2-ORAMP|WFCENTER|WFC1A-512|WFC1B-512|WFC2C-512|WFC2D-512|WFC1A-1K|"
    "WFC1B-1K|WFC2C-1K|WFC2D-1K|WFC1A-2K|WFC1B-2K|WFC2C-2K|WFC2D-2K"
)
_SYNTHETIC = "Synthetic file from the acsprov ACS simulator; not real ACS data."


@dataclass(frozen=True)
class RefFileInfo:
    """One reference file of the simulated ``jref`` directory.

    Parameters
    ----------
    filename : str
        Base name, CRDS-like (``6641828tj_bia.fits``).
    reftype : str
        Lower-case header keyword naming the type (``biasfile``), as CRDS's HST
        ``filekind``.
    detector : str
        ``WFC``, ``HRC`` or ``SBC``.
    useafter : str
        USEAFTER as ``YYYY-MM-DD HH:MM:SS`` (CRDS rmap form).
    descrip : str
        DESCRIP keyword.
    pedigree : str
        PEDIGREE keyword.
    header : dict
        Selection keywords as written in the file's primary header.
    selection : dict
        Values a CRDS rmap would match this file with, keyed by the *dataset*
        parameter names of the rmap (``CCDAMP``, ``NAXIS1``...), as strings; ``|``
        separates alternatives and ``N/A`` matches anything.
    """

    filename: str
    reftype: str
    detector: str
    useafter: str
    descrip: str
    pedigree: str
    header: Mapping[str, str | int | float] = field(default_factory=dict)
    selection: Mapping[str, str] = field(default_factory=dict)

    @property
    def keyword(self) -> str:
        """Upper-case header keyword (``BIASFILE``)."""
        return self.reftype.upper()

    @property
    def suffix(self) -> str:
        """CRDS/CDBS suffix of the name (``bia``)."""
        return self.filename.split("_")[1].split(".")[0]

    @property
    def useafter_header(self) -> str:
        """USEAFTER in header form (``Jul 15 2016 00:00:00``)."""
        return datetime.strptime(self.useafter, "%Y-%m-%d %H:%M:%S").strftime(
            "%b %d %Y %H:%M:%S"
        )

    @property
    def useafter_mjd(self) -> float:
        """USEAFTER as MJD."""
        dt = datetime.strptime(self.useafter, "%Y-%m-%d %H:%M:%S")
        return (dt - datetime(1858, 11, 17)).total_seconds() / 86400.0


@dataclass(frozen=True)
class _Recipe:
    info: RefFileInfo
    build: Callable[..., fits.HDUList]
    params: Mapping[str, object]


# ------------------------------------------------------------------------------------
# HDU helpers
def write_fits_atomic(hdul: fits.HDUList, path: Path) -> Path:
    """Write `hdul` to `path` through a temporary file and an atomic rename.

    No checksum or date is added, so equal contents give byte-identical files.

    Returns
    -------
    pathlib.Path
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        hdul.writeto(tmp, overwrite=True, output_verify="exception")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _primary(info: RefFileInfo, nextend: int, *, seed: int | None,
             extra: Mapping[str, object] | None = None) -> fits.PrimaryHDU:
    p = fits.PrimaryHDU()
    h = p.header
    h["NEXTEND"] = (nextend, "number of extensions")
    h["TELESCOP"] = ("HST", "telescope used to acquire data")
    h["INSTRUME"] = ("ACS", "identifier for instrument used to acquire data")
    h["DETECTOR"] = (info.detector, "detector in use: WFC, HRC, or SBC")
    h["FILENAME"] = (info.filename, "name of file")
    h["FILETYPE"] = (_FILETYPE[info.reftype], "type of data found in data file")
    for key, value in info.header.items():
        h[key] = value
    for key, value in (extra or {}).items():
        h[key] = value
    h["USEAFTER"] = (info.useafter_header, "use for observations taken after this date")
    h["PEDIGREE"] = (info.pedigree, "source of reference data")
    h["DESCRIP"] = info.descrip[:67]
    h["COMMENT"] = _SYNTHETIC
    if seed is not None:
        h["HISTORY"] = f"Made by acsprov.simulate.reffiles with seed {seed}."
    return p


def _chip_header(chip: ChipLayout, *, raw_geometry: bool, bunit: str) -> dict[str, object]:
    ltv1 = chip.ltv1 if raw_geometry else 0.0
    ltv2 = chip.ltv2 if raw_geometry else 0.0
    return {"CCDCHIP": chip.ccdchip, "BUNIT": bunit, "LTV1": ltv1, "LTV2": ltv2,
            "LTM1_1": 1.0, "LTM2_2": 1.0}


def _image(name: str, extver: int, data: np.ndarray, hdr: Mapping[str, object]) -> fits.ImageHDU:
    h = fits.ImageHDU(data=data, name=name)
    h.header["EXTVER"] = extver
    for k, v in hdr.items():
        h.header[k] = v
    return h


def _constant(name: str, extver: int, shape: tuple[int, int], value: float,
              hdr: Mapping[str, object]) -> fits.ImageHDU:
    h = fits.ImageHDU(name=name)
    h.header["EXTVER"] = extver
    h.header["NPIX1"] = (shape[1], "length of constant array axis 1")
    h.header["NPIX2"] = (shape[0], "length of constant array axis 2")
    h.header["PIXVALUE"] = (value, "values of pixels in constant array")
    for k, v in hdr.items():
        h.header[k] = v
    return h


def _table(columns: list[fits.Column], name: str | None = None,
           extra: Mapping[str, object] | None = None) -> fits.BinTableHDU:
    t = fits.BinTableHDU.from_columns(columns, name=name)
    if name is not None:
        t.header["EXTVER"] = 1
    for k, v in (extra or {}).items():
        t.header[k] = v
    return t


def _col(name: str, fmt: str, values: Iterable[object]) -> fits.Column:
    return fits.Column(name=name, format=fmt, array=np.array(list(values)))


# ------------------------------------------------------------------------------------
# image builders
def _imset_file(info: RefFileInfo, seed: int, layout: RawLayout, *, raw_geometry: bool,
                bunit: str, sci: Callable[[ChipLayout], np.ndarray],
                err: float | Callable[[ChipLayout], np.ndarray] = 0.0,
                dq: Callable[[ChipLayout], np.ndarray] | None = None,
                sci_only: bool = False) -> fits.HDUList:
    per = 1 if sci_only else 3
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for chip in layout.chips:
        hdr = _chip_header(chip, raw_geometry=raw_geometry, bunit=bunit)
        data = sci(chip)
        hdus.append(_image("SCI", chip.extver, data, hdr))
        if sci_only:
            continue
        if callable(err):
            hdus.append(_image("ERR", chip.extver, err(chip), hdr))
        else:
            hdus.append(_constant("ERR", chip.extver, data.shape, float(err), hdr))
        dq_hdr = {**hdr, "BUNIT": "UNITLESS"}
        if dq is None:
            hdus.append(_constant("DQ", chip.extver, data.shape, 0, dq_hdr))
        else:
            hdus.append(_image("DQ", chip.extver, dq(chip), dq_hdr))
    prim = _primary(info, per * layout.nimsets, seed=seed)
    return fits.HDUList([prim, *hdus])


def _raw_cut(full: np.ndarray, chip: ChipLayout) -> np.ndarray:
    return np.ascontiguousarray(full[window_slices(chip)], dtype=np.float32)


def _trim_cut(full: np.ndarray, chip: ChipLayout) -> np.ndarray:
    return np.ascontiguousarray(full[physical_slices(chip)], dtype=np.float32)


#: Constant ERR (DN) of the simulated superbias files.
BIAS_ERR_DN = 0.1


def _build_bias(info: RefFileInfo, seed: int, *, layout: RawLayout) -> fits.HDUList:
    return _imset_file(
        info, seed, layout, raw_geometry=True, bunit="COUNTS", err=BIAS_ERR_DN,
        sci=lambda c: _raw_cut(truth.superbias(c.detector, c.ccdchip, seed=seed), c),
    )


def _build_satu(info: RefFileInfo, seed: int, *, layout: RawLayout) -> fits.HDUList:
    return _imset_file(
        info, seed, layout, raw_geometry=True, bunit="ELECTRONS",
        sci=lambda c: _raw_cut(truth.full_well(c.detector, c.ccdchip, seed=seed), c),
    )


#: Constant ERR of the simulated superdarks (e-/s) and pixel flats.
DARK_ERR = 2.0e-4
FLAT_ERR = 0.002

#: Dark rates above this (e-/s) are flagged hot (DQ 16) in superdarks.
HOT_PIXEL_THRESHOLD = 0.08


def _build_dark(info: RefFileInfo, seed: int, *, layout: RawLayout, epoch: float,
                cte_corrected: bool = False) -> fits.HDUList:
    cache: dict[int, np.ndarray] = {}

    def rate(c: ChipLayout) -> np.ndarray:
        if c.ccdchip not in cache:
            d = truth.dark_rate(c.detector, c.ccdchip, epoch, seed=seed)
            if cte_corrected:
                # A CTE-corrected dark puts the trailed charge back into hot pixels.
                d = d + np.float32(0.02) * np.maximum(d - np.float32(0.05), np.float32(0.0))
            cache[c.ccdchip] = _trim_cut(d, c)
        return cache[c.ccdchip]

    def dq(c: ChipLayout) -> np.ndarray:
        return np.where(rate(c) > HOT_PIXEL_THRESHOLD, 16, 0).astype(np.int16)

    return _imset_file(info, seed, layout, raw_geometry=False, bunit="ELECTRONS/S",
                       sci=rate, err=DARK_ERR, dq=dq)


def _build_pflt(info: RefFileInfo, seed: int, *, layout: RawLayout, filt: str) -> fits.HDUList:
    return _imset_file(
        info, seed, layout, raw_geometry=False, bunit="UNITLESS", err=FLAT_ERR,
        sci=lambda c: _trim_cut(truth.pixel_flat(c.detector, c.ccdchip, filt, seed=seed), c),
    )


def _build_flash(info: RefFileInfo, seed: int, *, layout: RawLayout) -> fits.HDUList:
    return _imset_file(
        info, seed, layout, raw_geometry=False, bunit="ELECTRONS/S", err=0.01,
        sci=lambda c: _trim_cut(truth.flash_rate(c.detector, c.ccdchip, seed=seed), c),
    )


def _build_shad(info: RefFileInfo, seed: int, *, layout: RawLayout) -> fits.HDUList:
    return _imset_file(
        info, seed, layout, raw_geometry=False, bunit="SECONDS", err=0.0,
        sci=lambda c: _trim_cut(truth.shading(c.detector, c.ccdchip), c),
    )


def sink_map(chip: ChipLayout, epoch: float, *, seed: int) -> np.ndarray:
    """SNKCFILE image of `chip` (raw geometry) listing the sinks born before `epoch`.

    A sink pixel holds minus the MJD it appeared (< -1), the pixel just downstream
    (towards the amplifier) holds -1 and the pixels upstream hold the threshold
    (electrons) below which the sink's own value makes them depressed.
    """
    whole = full_chip(chip.detector, chip.ccdchip)
    full = np.zeros(whole.shape, np.float32)
    sinks = truth.sink_pixels(chip.detector, chip.ccdchip, seed=seed).before(epoch)
    if sinks.x.size:
        y0, x0 = whole.sci_y0, whole.sci_x0
        step = -1 if chip.ccdchip == 1 else 1  # upstream is away from the amplifier
        ys = sinks.y + y0
        xs = sinks.x + x0
        full[ys - step, xs] = -1.0
        for k in range(1, int(sinks.trail.max()) + 1):
            sel = sinks.trail >= k
            thresh = (sinks.depth[sel] * (1.5 - 0.1 * k)).astype(np.float32)
            yy, xx = ys[sel] + k * step, xs[sel]
            full[yy, xx] = np.where(full[yy, xx] < 0, full[yy, xx], thresh)
        full[ys, xs] = -np.floor(sinks.birth).astype(np.float32)
    return _raw_cut(full, chip)


def _build_snkc(info: RefFileInfo, seed: int, *, layout: RawLayout, epoch: float) -> fits.HDUList:
    return _imset_file(info, seed, layout, raw_geometry=True, bunit="UNITLESS",
                       sci=lambda c: sink_map(c, epoch, seed=seed), sci_only=True)


# ------------------------------------------------------------------------------------
# table builders
_CCD_GAINS = {"WFC": (0.5, 1.0, 1.4, 2.0, 4.0, 8.0), "HRC": (1.0, 2.0, 4.0, 8.0)}
_CCD_AMPS = {
    "WFC": (("ABCD", (1, 2)), ("A", (1,)), ("B", (1,)), ("C", (2,)), ("D", (2,)),
            ("AD", (1, 2)), ("BC", (1, 2))),
    "HRC": (("A", (1,)), ("B", (1,)), ("C", (1,)), ("D", (1,)), ("ABCD", (1,)),
            ("AD", (1,)), ("BC", (1,))),
}
#: CCDOFSTA-D of every simulated readout (and of every CCDTAB row).
CCD_OFFSET = 3


def _build_ccdtab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    rows = []
    amps = "ABCD"
    # AMPX/AMPY are in trimmed (science-pixel) coordinates: calacs adds a positive
    # LTV1/LTV2 to find the first raw column/line of the second amplifier.  A WFC
    # line has two amplifiers and a WFC chip one amplifier row, so AMPY is 0; HRC's
    # single amplifier C gets AMPX = AMPY = 0.
    full = WFC_FULL.chips[0] if detector == "WFC" else HRC_FULL.chips[0]
    ampx = full.nx_sci // 2 if detector == "WFC" else 0
    ampy = 0
    ovrh = truth.ccd_overheads(detector)
    for ccdamp, chips in _CCD_AMPS[detector]:
        # the columns left of AMPX belong to the chip's left-hand amplifier (A or C);
        # a readout through the right-hand one alone (B or D) starts it at column 0.
        row_ampx = 0 if ccdamp in ("B", "D") else ampx
        for chip in chips:
            for gain in _CCD_GAINS[detector]:
                rows.append((
                    ccdamp, chip, gain, 1, 1, *([CCD_OFFSET] * 4),
                    *[truth.bias_level(detector, a, gain) for a in amps],
                    *[truth.readout_gain(detector, a, gain) for a in amps],
                    *[truth.read_noise(detector, a) for a in amps],
                    row_ampx, ampy, 65535, truth.saturation_level(detector), *ovrh,
                    info.pedigree, f"{detector} CCD parameters, synthetic",
                ))
    names = ["CCDAMP", "CCDCHIP", "CCDGAIN", "BINAXIS1", "BINAXIS2", "CCDOFSTA", "CCDOFSTB",
             "CCDOFSTC", "CCDOFSTD", "CCDBIASA", "CCDBIASB", "CCDBIASC", "CCDBIASD",
             "ATODGNA", "ATODGNB", "ATODGNC", "ATODGND", "READNSEA", "READNSEB", "READNSEC",
             "READNSED", "AMPX", "AMPY", "ATODSAT", "SATURATE", "OVRHFLS", "OVRHUFLS",
             "PEDIGREE", "DESCRIP"]
    fmts = ["4A", "J", "E", "J", "J", "J", "J", "J", "J"] + ["E"] * 12 + \
        ["J", "J", "J", "E", "E", "E", "67A", "67A"]
    cols = [_col(n, f, (r[i] for r in rows)) for i, (n, f) in enumerate(zip(names, fmts,
                                                                              strict=True))]
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


def _oscn_layouts(detector: str) -> list[tuple[RawLayout, ChipLayout]]:
    if detector == "HRC":
        return [(HRC_FULL, HRC_FULL.chips[0])]
    out = [(WFC_FULL, c) for c in WFC_FULL.chips]
    for size in ("2K", "1K", "512"):
        for chipamp in ("1A", "1B", "2C", "2D"):
            lay = raw_layout("WFC", f"WFC{chipamp}-{size}", subarray=True)
            out.append((lay, lay.chips[0]))
    return out


def _build_oscntab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    # WFC rows declare no virtual overscan: calacs would fit one bias drift across
    # both amplifiers of a chip, whose bias levels differ (see oscntab_row)
    rows = [oscntab_row(chip, lay.ccdamp, drift=detector == "HRC")
            for lay, chip in _oscn_layouts(detector)]
    names = list(rows[0])
    cols = [_col(n, "4A" if n == "CCDAMP" else "J", (r[n] for r in rows)) for n in names]
    cols += [_col("DESCRIP", "67A", (f"{detector} {r['NX']}x{r['NY']} amp {r['CCDAMP']}"
                                     for r in rows))]
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


def _build_bpixtab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    chips = (1, 2) if detector == "WFC" else (1,)
    rows = []
    for chip in chips:
        for bp in truth.bad_pixels(detector, chip, seed=seed):
            rows.append(("N/A", chip, -999.0, bp.pix1, bp.pix2, bp.length, bp.axis, bp.value))
    names = ["CCDAMP", "CCDCHIP", "CCDGAIN", "PIX1", "PIX2", "LENGTH", "AXIS", "VALUE"]
    fmts = ["4A", "J", "E", "J", "J", "J", "J", "I"]
    cols = [_col(n, f, (r[i] for r in rows)) for i, (n, f) in enumerate(zip(names, fmts,
                                                                              strict=True))]
    ny, nx = truth.trimmed_shape(detector)
    table = _table(cols, extra={"SIZAXIS1": nx, "SIZAXIS2": ny})
    return fits.HDUList([_primary(info, 1, seed=seed), table])


def _build_atodtab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    # calacs replaces each raw DN by ATOD[DN]; the simulated converters are linear.
    nelem = 65536
    identity = np.arange(nelem, dtype=np.float32)
    amps = ("ABCD", "A", "B", "C", "D") if detector == "WFC" else ("C", "A", "B", "D")
    rows = [(a, -999, g) for a in amps for g in (1.0, 2.0)]
    cols = [
        _col("CCDAMP", "4A", (r[0] for r in rows)),
        _col("CCDCHIP", "J", (r[1] for r in rows)),
        _col("CCDGAIN", "E", (r[2] for r in rows)),
        _col("REF_KEY", "8A", ("CCDGAIN" for _ in rows)),
        _col("REF_KEY_VALUE", "D", (r[2] for r in rows)),
        _col("NELEM", "J", (nelem for _ in rows)),
        fits.Column(name="ATOD", format=f"{nelem}E", array=np.tile(identity, (len(rows), 1))),
        _col("PEDIGREE", "67A", (info.pedigree for _ in rows)),
        _col("DESCRIP", "67A", ("linear A-to-D conversion" for _ in rows)),
    ]
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


def _build_crrejtab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    scalense = 30.0 if detector == "WFC" else 0.0
    # The initial guess of two exposures must be their minimum: their "median" is
    # their mean, which keeps half of every cosmic ray, and with SCALENSE noise on
    # top of it acsrej then finds almost none of a CR-SPLIT=2 pair.
    rows = [(n, meanexp, "6,5,4", "mode", 2.1, 0.5555, "minimum" if n <= 2 else "median",
             scalense, 39, True)
            for n in (1, 2, 3, 4, 5, 6) for meanexp in (100.0, 100000.0)]
    names = ["CRSPLIT", "MEANEXP", "CRSIGMAS", "SKYSUB", "CRRADIUS", "CRTHRESH", "INITGUES",
             "SCALENSE", "BADINPDQ", "CRMASK"]
    fmts = ["J", "E", "20A", "4A", "E", "E", "8A", "E", "I", "L"]
    cols = [_col(n, f, (r[i] for r in rows)) for i, (n, f) in enumerate(zip(names, fmts,
                                                                              strict=True))]
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


_PHOT_FILTERS = {"WFC": ("F502N", "F606W", "F814W"), "HRC": ("CLEAR",)}
_IMP_MJDS = np.array([52334.0, 53000.0, 54000.0, 54962.0, 56000.0, 57000.0, 58000.0,
                      59000.0, 60000.0, 61000.0])


def _obsmode(camera: str, filt: str) -> str:
    base = f"acs,{camera}"
    return base if filt == "CLEAR" else f"{base},{filt.lower()}"


def _build_imphttab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    nmax = _IMP_MJDS.size
    # calacs names both WFC chips WFC1 in PHOTMODE; other tools ask for WFC2 too
    modes = [(cam, f) for cam in (("wfc1", "wfc2") if detector == "WFC" else ("hrc",))
             for f in _PHOT_FILTERS[detector]]
    ext = []
    for index, key in enumerate(("PHOTFLAM", "PHOTPLAM", "PHOTBW")):
        obsmodes, datacols, values, nelem, par_names, par_values, par_data = \
            [], [], [], [], [], [], []
        for camera, filt in modes:
            table = np.array([truth.photometry(detector, filt, m)[index] for m in _IMP_MJDS])
            # time-dependent row
            obsmodes.append(_obsmode(camera, filt) + ",mjd#")
            datacols.append(key + "1")
            values.append(0.0)
            nelem.append(nmax)
            par_names.append("mjd#")
            par_values.append(_IMP_MJDS)
            par_data.append(table)
            # constant row, at the mid-mission value
            obsmodes.append(_obsmode(camera, filt))
            datacols.append(key)
            values.append(float(table[nmax // 2]))
            nelem.append(0)
            par_names.append("")
            par_values.append(np.zeros(nmax))
            par_data.append(np.zeros(nmax))
        cols = [
            _col("OBSMODE", "40A", obsmodes),
            _col("DATACOL", "12A", datacols),
            _col(key, "D", values),
            _col("PEDIGREE", "30A", (info.pedigree for _ in obsmodes)),
            _col("DESCRIP", "67A", ("synthetic throughput" for _ in obsmodes)),
            _col("NELEM1", "J", nelem),
            _col("PAR1NAMES", "12A", par_names),
            fits.Column(name="PAR1VALUES", format=f"{nmax}D", array=np.array(par_values)),
            fits.Column(name=key + "1", format=f"{nmax}D", array=np.array(par_data)),
        ]
        ext.append(_table(cols, name=key))
    prim = _primary(info, 3, seed=None, extra={
        "PARNUM": 1, "PHOTZPT": -21.1, "DBTABLE": "IMPHTTAB", "SYNSWVER": "synthetic",
        "GRAPHTAB": "N/A", "COMPTAB": "N/A", "ORIGIN": "acsprov simulator",
    })
    return fits.HDUList([prim, *ext])


# geometric distortion ---------------------------------------------------------------
# (chip, V2REF, V3REF, XREF, YREF, SCALE, linear coefficients CX10, CX11, CY10, CY11)
_IDC_CHIPS = {
    "WFC": ((1, 263.0, 198.0, 2048.0, 1024.0, 0.05, -0.002181, 0.0499524, 0.0499524, 0.002181),
            (2, 259.0, 302.0, 2048.0, 1024.0, 0.05, -0.002181, 0.0499524, 0.0499524, 0.002181)),
    "HRC": ((1, 206.4, 471.4, 512.0, 512.0, 0.025, 0.00215, 0.02834, 0.02483, 0.00077),),
}
_IDC_NORDER = 4


def _build_idctab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    rng = truth.rng_for(seed, "idc", detector)
    filters = {"WFC": (("F502N", "CLEAR2L"), ("F606W", "CLEAR2L"), ("F814W", "CLEAR1L"),
                       ("CLEAR1L", "CLEAR2L")),
               "HRC": (("CLEAR1S", "CLEAR2S"),)}[detector]
    coeff_names = [(i, j) for i in range(1, _IDC_NORDER + 1) for j in range(i + 1)]
    # The simulated scene has no geometric distortion: higher-order terms are kept
    # small enough that a 2.5-pixel dither maps to the same pixel shift within
    # 0.01 pixel everywhere on a chip, so AstroDrizzle aligns dithered exposures.
    higher = {(i, j): rng.normal(0.0, 10.0 ** (-7.5 - 3.5 * (i - 2)), 2)
              for i, j in coeff_names if i >= 2}
    rows = []
    for chip, v2, v3, xref, yref, scale, cx10, cx11, cy10, cy11 in _IDC_CHIPS[detector]:
        for f1, f2 in filters:
            for direction in ("FORWARD", "INVERSE"):
                cx = {(1, 0): cx10, (1, 1): cx11}
                cy = {(1, 0): cy10, (1, 1): cy11}
                for key, (hx, hy) in higher.items():
                    cx[key], cy[key] = hx, hy
                if direction == "INVERSE":  # inverse of the linear part only
                    det = cx11 * cy10 - cx10 * cy11
                    cx = {(1, 0): -cx10 / det * scale**2, (1, 1): cy10 / det * scale**2}
                    cy = {(1, 0): cx11 / det * scale**2, (1, 1): -cy11 / det * scale**2}
                rows.append((chip, direction, f1, f2, v2, v3, xref, yref, scale, cx, cy))
    nx, ny = (4096, 2048) if detector == "WFC" else (1024, 1024)
    cols = [
        _col("DETCHIP", "J", (r[0] for r in rows)),
        _col("DIRECTION", "8A", (r[1] for r in rows)),
        _col("FILTER1", "8A", (r[2] for r in rows)),
        _col("FILTER2", "8A", (r[3] for r in rows)),
        _col("XSIZE", "J", (nx for _ in rows)),
        _col("YSIZE", "J", (ny for _ in rows)),
        _col("XREF", "D", (r[6] for r in rows)),
        _col("YREF", "D", (r[7] for r in rows)),
        _col("V2REF", "D", (r[4] for r in rows)),
        _col("V3REF", "D", (r[5] for r in rows)),
        _col("SCALE", "D", (r[8] for r in rows)),
        _col("THETA", "D", (0.0 for _ in rows)),
    ]
    for i, j in coeff_names:
        cols.append(_col(f"CX{i}{j}", "D", (r[9].get((i, j), 0.0) for r in rows)))
    for i, j in coeff_names:
        cols.append(_col(f"CY{i}{j}", "D", (r[10].get((i, j), 0.0) for r in rows)))
    extra: dict[str, object] = {"NORDER": _IDC_NORDER, "PARITY": 1}
    if detector == "WFC":
        # linear time-dependent skew of the WFC distortion (decimal-year origin)
        extra.update({"TDDORDER": 1, "TDD_DATE": 2004.5, "TDD_A0": 0.05, "TDD_A1": 0.01,
                      "TDD_B0": -0.02, "TDD_B1": -0.005})
    return fits.HDUList([_primary(info, 1, seed=seed, extra=extra), _table(cols)])


def _lookup_ext(name: str, extver: int, chip: int, data: np.ndarray, cdelt: float,
                extra: Mapping[str, object] | None = None) -> fits.ImageHDU:
    h = fits.ImageHDU(data=data.astype(np.float32), name=name)
    h.header["EXTVER"] = extver
    h.header["CCDCHIP"] = chip
    for axis in (1, 2):
        h.header[f"CRPIX{axis}"] = 0.0
        h.header[f"CRVAL{axis}"] = 0.0
        h.header[f"CDELT{axis}"] = cdelt
    for k, v in (extra or {}).items():
        h.header[k] = v
    return h


def _build_npol(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    rng = truth.rng_for(seed, "npol", detector)
    chips = (1, 2) if detector == "WFC" else (1,)
    ny, nx = truth.trimmed_shape(detector)
    step = 64.0 if detector == "WFC" else 32.0
    gy, gx = int(ny / step) + 1, int(nx / step) + 1
    yy, xx = np.mgrid[0:gy, 0:gx] / np.array([gy - 1.0, gx - 1.0])[:, None, None]
    hdus = []
    for extver, chip in enumerate(chips, start=1):
        for name in ("DX", "DY"):
            a, b, c = rng.normal(0.0, 0.03, 3)
            grid = a * np.sin(np.pi * xx) + b * np.cos(np.pi * yy) + c * xx * yy
            hdus.append(_lookup_ext(name, extver, chip, grid, step))
    prim = _primary(info, len(hdus), seed=seed)
    return fits.HDUList([prim, *hdus])


def _build_d2im(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    rng = truth.rng_for(seed, "d2im", detector)
    _, nx = truth.trimmed_shape(detector)
    hdus = []
    for extver, chip in enumerate((1, 2), start=1):
        # column-width (pixel-grid) irregularities, repeating every 68 columns
        x = np.arange(nx)
        dx = 0.06 * np.sin(2 * np.pi * x / 68.0) + rng.normal(0.0, 0.005, nx)
        hdus.append(_lookup_ext("DX", extver, chip, dx[None, :], 1.0,
                                {"AXISCORR": 1}))
    prim = _primary(info, len(hdus), seed=seed, extra={"AXISCORR": 1})
    return fits.HDUList([prim, *hdus])


_MDRIZ_COLUMNS = (
    ("FILTER", "20A", "ANY"), ("STEPSIZE", "J", 10), ("RESETBITS", "J", 4096),
    ("SKYSUB", "L", True), ("SKYMETHOD", "20A", "localmin"), ("SKYSTAT", "10A", "median"),
    ("SKYLOWER", "E", -100.0), ("SKYUPPER", "E", 0.0), ("SKYCLIP", "J", 5),
    ("SKYLSIGMA", "E", 4.0), ("SKYUSIGMA", "E", 4.0), ("DRIZ_SEPARATE", "L", True),
    ("DRIZ_SEP_KERNEL", "20A", "turbo"), ("DRIZ_SEP_PIXFRAC", "E", 1.0),
    ("DRIZ_SEP_FILLVAL", "20A", "INDEF"), ("DRIZ_SEP_BITS", "J", 336),
    ("MEDIAN", "L", True), ("COMBINE_TYPE", "20A", "minmed"), ("COMBINE_NSIGMA", "20A", "4 3"),
    ("COMBINE_NLOW", "J", 0), ("COMBINE_NHIGH", "J", 0), ("COMBINE_GROW", "J", 1),
    ("BLOT", "L", True), ("DRIZ_CR", "L", True), ("DRIZ_CR_SNR", "20A", "3.5 3.0"),
    ("DRIZ_CR_SCALE", "20A", "1.2 0.7"), ("DRIZ_CR_CORR", "L", False),
    ("DRIZ_COMBINE", "L", True), ("FINAL_WHT_TYPE", "20A", "EXP"),
    ("FINAL_KERNEL", "20A", "square"), ("FINAL_PIXFRAC", "E", 1.0),
    ("FINAL_FILLVAL", "20A", "INDEF"), ("FINAL_BITS", "J", 336), ("FINAL_UNITS", "20A", "cps"),
)


def _build_mdriztab(info: RefFileInfo, seed: int, *, detector: str) -> fits.HDUList:
    numimages = (1, 2, 3, 4, 5, 10)
    cols = [_col("NUMIMAGES", "J", numimages)]
    for name, fmt, value in _MDRIZ_COLUMNS:
        vals = [value] * len(numimages)
        if name == "COMBINE_TYPE":
            vals = ["minmed" if n < 4 else "median" for n in numimages]
        if name in ("DRIZ_CR", "MEDIAN", "BLOT", "DRIZ_SEPARATE"):
            vals = [n > 1 for n in numimages]
        if name == "COMBINE_NHIGH":
            vals = [0 if n < 4 else 1 for n in numimages]
        cols.append(_col(name, fmt, vals))
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


def _build_mlintab(info: RefFileInfo, seed: int) -> fits.HDUList:
    cols = [
        _col("DETECTOR", "8A", ["SBC"]),
        _col("GLOBAL_LIMIT", "D", [200000.0]),
        _col("LOCAL_LIMIT", "D", [50.0]),
        _col("TAU", "D", [3.0e-7]),
        _col("EXPAND", "E", [1.0]),
        _col("PEDIGREE", "67A", [info.pedigree]),
        _col("DESCRIP", "67A", ["SBC MAMA linearity limits, synthetic"]),
    ]
    return fits.HDUList([_primary(info, 1, seed=None), _table(cols)])


# PCTETAB (generation 3) --------------------------------------------------------------
_CTE_TRAPS = 9999
_CTE_COLUMNS = 8192
_CTE_LENGTH = 60


def _build_pctetab(info: RefFileInfo, seed: int) -> fits.HDUList:
    rng = truth.rng_for(seed, "pctetab")
    prim = _primary(info, 20, seed=seed, extra={
        "CTE_NAME": ("Par/Serial PixelCTE 2023", "name of CTE algorithm"),
        "CTE_VER": ("3.0", "version of CTE algorithm"),
        "PCTERNOI": (4.25, "read noise amplitude for clipping"),
        "PCTENSMD": (0, "read noise mitigation algorithm"),
        "PCTETRSH": (-10.0, "over-subtraction threshold"),
        "FIXROCR": (1, "fix readout cosmic rays"),
    })
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    # set 1 is the parallel model, sets 2-5 the serial models of amps A, B, C, D
    for extver, (ntrap, density) in enumerate(
        [(72, 1.0), (18, 0.14), (18, 0.11), (18, 0.17), (18, 0.12)], start=1
    ):
        w = np.arange(1, _CTE_TRAPS + 1, dtype=np.int32)
        q = np.full(_CTE_TRAPS, 999999.0)
        q[:ntrap] = np.sort(np.round(np.logspace(0.0, 5.0, ntrap)
                                     * rng.uniform(0.9, 1.1, ntrap), 2))
        d = np.zeros(_CTE_TRAPS)
        d[:ntrap] = density * 0.45 * np.linspace(1.0, 0.55, ntrap)
        qprof = _table([fits.Column(name="W", format="J", array=w),
                        fits.Column(name="QLEV_Q", format="D", array=q),
                        fits.Column(name="DPDE_W", format="D", array=d)], name="QPROF",
                       extra={"EXTVER": extver, "CTEDATE0": (52334.86, "ACS installation (MJD)"),
                              "CTEDATE1": (57710.0, "reference date of the model (MJD)"),
                              "PCTETLEN": (_CTE_LENGTH, "maximum length of CTE trails"),
                              "PCTENFOR": (5, "forward-modelling iterations"),
                              "PCTENPAR": (7, "parallel transfer iterations")})
        iz = np.arange(_CTE_COLUMNS, dtype=np.int32)
        ramp = 1.0 + 0.05 * np.sin(2 * np.pi * iz / _CTE_COLUMNS)
        sclbycol = _table([fits.Column(name="IZ", format="J", array=iz)] + [
            fits.Column(name=f"SENS_{level:04d}", format="D", array=ramp * (level / 2048.0))
            for level in (512, 1024, 1536, 2048)], name="SCLBYCOL", extra={"EXTVER": extver})
        t = np.arange(1, _CTE_LENGTH + 1, dtype=np.float64)[:, None]
        width = np.linspace(1.5, 9.0, _CTE_TRAPS)[None, :]
        rprof = np.exp(-(t - 1.0) / width)
        rprof /= rprof.sum(axis=0, keepdims=True)
        cprof = np.clip(1.0 - np.cumsum(rprof, axis=0), 0.0, None)
        hdus += [qprof, sclbycol,
                 _image("RPROF", extver, rprof.astype(np.float32), {}),
                 _image("CPROF", extver, cprof.astype(np.float32), {})]
    return fits.HDUList([prim, *hdus])


# ------------------------------------------------------------------------------------
# the catalogue
def _ped(start: str, end: str) -> str:
    return f"INFLIGHT {start} {end}"


def _bias_selection(layout: RawLayout, gain: str, aperture: str) -> dict[str, str]:
    chip = layout.chips[0]
    return {"DETECTOR": layout.detector, "CCDAMP": layout.ccdamp, "CCDGAIN": gain,
            "APERTURE": aperture, "NAXIS1": str(chip.nx), "NAXIS2": str(chip.ny),
            "NUMCOLS": str(chip.nx), "NUMROWS": str(chip.ny),
            "LTV1": str(chip.ltv1), "LTV2": str(chip.ltv2),
            "XCORNER": "N/A", "YCORNER": "N/A", "CCDCHIP": "N/A"}


def _any_full_bias(gain: float) -> tuple[dict[str, object], dict[str, str]]:
    """Header and selection of a full-frame WFC bias that serves every readout."""
    header = {**_bias_header(WFC_FULL, gain, "ANY_FULL"), "CCDAMP": "ANY"}
    selection = {**_bias_selection(WFC_FULL, str(gain), _WFC_ANY_FULL),
                 "CCDAMP": _WFC_AMPS_ANY}
    for key in ("NAXIS1", "NAXIS2", "NUMCOLS", "NUMROWS", "LTV1", "LTV2"):
        selection[key] = "N/A"
    return header, selection


def _bias_header(layout: RawLayout, gain: float, aperture: str) -> dict[str, object]:
    chip = layout.chips[0]
    return {"CCDAMP": layout.ccdamp, "CCDGAIN": gain, "BINAXIS1": 1, "BINAXIS2": 1,
            "APERTURE": aperture, "NUMCOLS": chip.nx, "NUMROWS": chip.ny,
            "LTV1": chip.ltv1, "LTV2": chip.ltv2, "XCORNER": 0, "YCORNER": 0,
            "CCDCHIP": chip.ccdchip if layout.subarray else -999}


def _det(detector: str) -> dict[str, str]:
    return {"DETECTOR": detector}


def _recipes() -> tuple[_Recipe, ...]:
    launch = "2002-03-01 00:00:00"
    r: list[_Recipe] = []

    def add(filename: str, reftype: str, det: str, useafter: str, descrip: str,
            pedigree: str, build: Callable[..., fits.HDUList],
            header: Mapping[str, object] | None = None,
            selection: Mapping[str, str] | None = None, **params: object) -> None:
        sel = _det(det) if selection is None else selection
        info = RefFileInfo(filename, reftype, det, useafter, descrip, pedigree,
                           dict(header or {}), dict(sel))
        r.append(_Recipe(info, build, params))

    # ---------------- WFC
    add("4bb1536aj_ccd.fits", "ccdtab", "WFC", launch, "WFC CCD parameters",
        _ped("01/03/2002", "31/12/2017"), _build_ccdtab, detector="WFC")
    add("17717071j_osc.fits", "oscntab", "WFC", launch,
        "WFC overscan regions: full frame and Cycle 24 2K/1K/512 subarrays",
        _ped("01/03/2002", "31/12/2017"), _build_oscntab, detector="WFC")
    add("5241541mj_bpx.fits", "bpixtab", "WFC", launch, "WFC bad pixel table",
        _ped("01/03/2002", "31/12/2017"), _build_bpixtab, detector="WFC")
    add("kcb1734hj_a2d.fits", "atodtab", "WFC", launch, "WFC analog-to-digital conversion",
        _ped("01/03/2002", "01/03/2002"), _build_atodtab, detector="WFC")
    add("n4e12510j_bia.fits", "biasfile", "WFC", "2002-10-01 00:00:00",
        "WFC full-frame gain 1 superbias, pre-SM4", _ped("01/10/2002", "31/10/2002"),
        _build_bias, header=_bias_header(WFC_FULL, 1.0, "N/A"),
        selection=_bias_selection(WFC_FULL, "1.0", "N/A"), layout=WFC_FULL)
    # A post-SM4 superbias is delivered with CCDAMP='ANY', APERTURE='ANY_FULL': CRDS
    # selects it for full frames and subarrays alike (crds bestrefs --files cannot
    # select a subarray-specific bias: raw headers carry no RAW_LTVn), and calacs
    # cuts it to the subarray by LTV1/LTV2 ("Ratio of (1,1) with offset").
    bias2_header, bias2_selection = _any_full_bias(2.0)
    add("6641828tj_bia.fits", "biasfile", "WFC", "2016-07-15 00:00:00",
        "WFC full-frame gain 2 superbias, all apertures", _ped("15/07/2016", "29/07/2016"),
        _build_bias, header=bias2_header, selection=bias2_selection, layout=WFC_FULL)
    add("1ce1655lj_sat.fits", "satufile", "WFC", launch, "WFC full-well saturation map",
        _ped("01/03/2002", "31/12/2017"), _build_satu,
        header={"CCDAMP": "ANY"}, selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY},
        layout=WFC_FULL)
    add("n5c1433jj_drk.fits", "darkfile", "WFC", "2002-10-15 00:00:00",
        "WFC superdark, pre-SM4", _ped("15/10/2002", "31/10/2002"), _build_dark,
        header={"CCDAMP": "ANY", "CCDGAIN": -1.0},
        selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY, "CCDGAIN": "1.0|2.0|4.0|8.0"},
        layout=WFC_FULL, epoch=52562.0)
    add("66k1505jj_drk.fits", "darkfile", "WFC", "2016-07-15 00:00:00",
        "WFC superdark, post-SM4", _ped("15/07/2016", "29/07/2016"), _build_dark,
        header={"CCDAMP": "ANY", "CCDGAIN": -1.0},
        selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY, "CCDGAIN": "0.5|1.0|1.4|2.0"},
        layout=WFC_FULL, epoch=57584.0)
    add("9362018jj_dkc.fits", "drkcfile", "WFC", "2016-07-15 00:00:00",
        "WFC CTE-corrected superdark, post-SM4", _ped("15/07/2016", "29/07/2016"),
        _build_dark, header={"CCDAMP": "ANY", "CCDGAIN": -1.0},
        selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY, "CCDGAIN": "0.5|1.0|1.4|2.0"},
        layout=WFC_FULL, epoch=57584.0, cte_corrected=True)
    for name, filt in (("4cl1715lj_pfl.fits", "F502N"), ("2ck1709oj_pfl.fits", "F606W")):
        add(name, "pfltfile", "WFC", launch, f"WFC {filt} pixel-to-pixel flat",
            _ped("01/03/2002", "31/12/2016"), _build_pflt,
            header={"CCDAMP": "ANY", "CCDGAIN": -1.0, "FILTER1": filt, "FILTER2": "CLEAR2L",
                    "OBSTYPE": "IMAGING", "FW1OFFST": 0, "FW2OFFST": 0, "FWSOFFST": 0},
            selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY, "FILTER1": filt,
                       "FILTER2": "CLEAR2L", "OBSTYPE": "IMAGING", "FW1OFFST": "N/A",
                       "FW2OFFST": "N/A", "FWSOFFST": "N/A"},
            layout=WFC_FULL, filt=filt)
    add("1bj1551fj_fls.fits", "flshfile", "WFC", "2012-11-08 00:00:00",
        "WFC post-flash, LOW current, shutter A", _ped("08/11/2012", "31/12/2016"),
        _build_flash, header={"CCDAMP": "ANY", "CCDGAIN": 2.0, "FLASHCUR": "LOW",
                              "SHUTRPOS": "A"},
        selection={"DETECTOR": "WFC", "CCDAMP": _WFC_AMPS_ANY, "CCDGAIN": "2.0",
                   "FLASHCUR": "LOW", "SHUTRPOS": "A|B"}, layout=WFC_FULL)
    add("kcb1734ij_shd.fits", "shadfile", "WFC", launch, "WFC shutter shading",
        _ped("01/03/2002", "01/03/2002"), _build_shad, layout=WFC_FULL)
    add("n4e1230aj_crr.fits", "crrejtab", "WFC", launch, "WFC cosmic-ray rejection parameters",
        _ped("01/03/2002", "01/03/2002"), _build_crrejtab, detector="WFC")
    add("8ch1518tj_cte.fits", "pctetab", "WFC", launch,
        "WFC parallel and serial pixel-based CTE model", _ped("01/03/2002", "31/12/2023"),
        _build_pctetab)
    add("4af1533ij_imp.fits", "imphttab", "WFC", launch, "WFC photometry keyword table",
        _ped("01/03/2002", "31/12/2024"), _build_imphttab, detector="WFC")
    add("0461802ej_idc.fits", "idctab", "WFC", launch, "WFC distortion coefficients",
        _ped("01/03/2002", "31/12/2016"), _build_idctab, detector="WFC")
    add("02c1450rj_npl.fits", "npolfile", "WFC", launch, "WFC non-polynomial distortion",
        _ped("01/03/2002", "31/12/2016"), _build_npol,
        header={"FILTER1": "ANY", "FILTER2": "ANY", "OBSTYPE": "IMAGING"},
        selection={"DETECTOR": "WFC", "FILTER1": "F502N|F606W|F814W|CLEAR1L",
                   "FILTER2": "CLEAR2L|CLEAR1L"}, detector="WFC")
    add("02c1450oj_d2i.fits", "d2imfile", "WFC", launch, "WFC column-width correction",
        _ped("01/03/2002", "31/12/2016"), _build_d2im, selection={}, detector="WFC")
    add("3ci1555sj_mdz.fits", "mdriztab", "WFC", launch, "WFC AstroDrizzle parameters",
        _ped("01/03/2002", "01/03/2002"), _build_mdriztab, detector="WFC")
    add("2bj1546mj_snk.fits", "snkcfile", "WFC", "2009-05-14 00:00:00",
        "WFC sink pixel map", _ped("14/05/2009", "30/07/2016"), _build_snkc,
        layout=WFC_FULL, epoch=57600.0)
    # ---------------- HRC
    add("o1q1519bj_ccd.fits", "ccdtab", "HRC", launch, "HRC CCD parameters",
        _ped("01/03/2002", "31/01/2007"), _build_ccdtab, detector="HRC")
    add("o1q1519cj_osc.fits", "oscntab", "HRC", launch, "HRC overscan regions",
        _ped("01/03/2002", "31/01/2007"), _build_oscntab, detector="HRC")
    add("m8r09169j_bpx.fits", "bpixtab", "HRC", launch, "HRC bad pixel table",
        _ped("01/03/2002", "31/01/2007"), _build_bpixtab, detector="HRC")
    add("o1q1519dj_a2d.fits", "atodtab", "HRC", launch, "HRC analog-to-digital conversion",
        _ped("01/03/2002", "01/03/2002"), _build_atodtab, detector="HRC")
    add("m9i1742aj_bia.fits", "biasfile", "HRC", "2002-11-01 00:00:00",
        "HRC amp C gain 2 superbias", _ped("01/11/2002", "30/11/2002"), _build_bias,
        header=_bias_header(HRC_FULL, 2.0, "N/A"),
        selection=_bias_selection(HRC_FULL, "2.0", "N/A"), layout=HRC_FULL)
    add("m9i1742bj_sat.fits", "satufile", "HRC", launch, "HRC full-well saturation map",
        _ped("01/03/2002", "31/01/2007"), _build_satu, header={"CCDAMP": "ANY"},
        selection={"DETECTOR": "HRC", "CCDAMP": "A|ABCD|AD|B|BC|C|D"}, layout=HRC_FULL)
    add("mbq1541aj_drk.fits", "darkfile", "HRC", "2002-11-15 00:00:00", "HRC superdark",
        _ped("15/11/2002", "30/11/2002"), _build_dark,
        header={"CCDAMP": "ANY", "CCDGAIN": -1.0},
        selection={"DETECTOR": "HRC", "CCDAMP": "A|ABCD|AD|B|BC|C|D",
                   "CCDGAIN": "1.0|2.0|4.0|8.0"}, layout=HRC_FULL, epoch=52593.0)
    add("mbj1658ej_pfl.fits", "pfltfile", "HRC", launch, "HRC clear pixel-to-pixel flat",
        _ped("01/03/2002", "31/01/2007"), _build_pflt,
        header={"CCDAMP": "ANY", "CCDGAIN": -1.0, "FILTER1": "CLEAR1S", "FILTER2": "CLEAR2S",
                "OBSTYPE": "IMAGING", "FW1OFFST": 0, "FW2OFFST": 0, "FWSOFFST": 0},
        selection={"DETECTOR": "HRC", "CCDAMP": "A|ABCD|AD|B|BC|C|D", "FILTER1": "CLEAR1S",
                   "FILTER2": "CLEAR2S", "OBSTYPE": "IMAGING", "FW1OFFST": "N/A",
                   "FW2OFFST": "N/A", "FWSOFFST": "N/A"},
        layout=HRC_FULL, filt="CLEAR")
    add("mbj1658fj_fls.fits", "flshfile", "HRC", launch, "HRC post-flash, LOW current",
        _ped("01/03/2002", "31/01/2007"), _build_flash,
        header={"CCDAMP": "ANY", "CCDGAIN": 2.0, "FLASHCUR": "LOW", "SHUTRPOS": "A"},
        selection={"DETECTOR": "HRC", "CCDAMP": "A|ABCD|AD|B|BC|C|D", "CCDGAIN": "2.0",
                   "FLASHCUR": "LOW", "SHUTRPOS": "A|B"}, layout=HRC_FULL)
    add("mbj1658gj_shd.fits", "shadfile", "HRC", launch, "HRC shutter shading",
        _ped("01/03/2002", "01/03/2002"), _build_shad, layout=HRC_FULL)
    add("m8c1616bj_crr.fits", "crrejtab", "HRC", launch, "HRC cosmic-ray rejection parameters",
        _ped("01/03/2002", "01/03/2002"), _build_crrejtab, detector="HRC")
    add("o1q1519ej_imp.fits", "imphttab", "HRC", launch, "HRC photometry keyword table",
        _ped("01/03/2002", "31/01/2007"), _build_imphttab, detector="HRC")
    add("o1q1519fj_idc.fits", "idctab", "HRC", launch, "HRC distortion coefficients",
        _ped("01/03/2002", "31/01/2007"), _build_idctab, detector="HRC")
    add("o1q1519gj_npl.fits", "npolfile", "HRC", launch, "HRC non-polynomial distortion",
        _ped("01/03/2002", "31/01/2007"), _build_npol,
        header={"FILTER1": "CLEAR1S", "FILTER2": "CLEAR2S", "OBSTYPE": "IMAGING"},
        selection={"DETECTOR": "HRC", "FILTER1": "CLEAR1S", "FILTER2": "CLEAR2S"},
        detector="HRC")
    add("o1q1519hj_mdz.fits", "mdriztab", "HRC", launch, "HRC AstroDrizzle parameters",
        _ped("01/03/2002", "01/03/2002"), _build_mdriztab, detector="HRC")
    # ---------------- SBC (no dataset needs it; MLINTAB only applies to the MAMA)
    add("k8c1609bj_lin.fits", "mlintab", "SBC", launch, "SBC MAMA linearity table",
        _ped("01/03/2002", "01/03/2002"), _build_mlintab)
    return tuple(r)


_RECIPES = _recipes()


def reference_catalog() -> list[RefFileInfo]:
    """Every reference file the simulator writes, in writing order.

    Returns
    -------
    list of RefFileInfo

    Examples
    --------
    >>> [i.reftype for i in reference_catalog() if i.filename == "6641828tj_bia.fits"]
    ['biasfile']
    """
    return [rec.info for rec in _RECIPES]


def _recipe(filename: str) -> _Recipe:
    for rec in _RECIPES:
        if rec.info.filename == filename:
            return rec
    raise ReferenceFileError(f"{filename} is not a simulated reference file")


def recipe_parameters(filename: str) -> Mapping[str, object]:
    """How the simulator makes `filename` (e.g. the ``epoch`` MJD of a superdark).

    Raises
    ------
    ReferenceFileError
        If `filename` is not in :func:`reference_catalog`.
    """
    return dict(_recipe(filename).params)


def build_reference(filename: str, *, seed: int = DEFAULT_SEED) -> fits.HDUList:
    """Build one reference file in memory (no I/O).

    Raises
    ------
    ReferenceFileError
        If `filename` is not in :func:`reference_catalog`.
    """
    rec = _recipe(filename)
    return rec.build(rec.info, seed, **rec.params)


def write_reference_files(
    refdir: Path,
    *,
    seed: int = DEFAULT_SEED,
    detectors: Iterable[str] | None = None,
    reftypes: Iterable[str] | None = None,
) -> list[Path]:
    """Write the simulated reference files into `refdir` (a ``jref`` directory).

    Parameters
    ----------
    refdir : pathlib.Path
        Output directory, created if needed.
    seed : int
        Simulation seed; the same seed always gives byte-identical files.
    detectors : iterable of str, optional
        Only the files of these detectors (``WFC``, ``HRC``, ``SBC``); default all.
    reftypes : iterable of str, optional
        Only these reference types (``biasfile``...); default all.

    Returns
    -------
    list of pathlib.Path
        The files written, in catalogue order.
    """
    dets = {d.upper() for d in detectors} if detectors is not None else None
    types = {t.lower() for t in reftypes} if reftypes is not None else None
    out = []
    for rec in _RECIPES:
        if dets is not None and rec.info.detector not in dets:
            continue
        if types is not None and rec.info.reftype not in types:
            continue
        hdul = rec.build(rec.info, seed, **rec.params)
        out.append(write_fits_atomic(hdul, Path(refdir) / rec.info.filename))
    return out


# ------------------------------------------------------------------------------------
# what the archive pipeline selects
def _value_matches(pattern: str, value: str) -> bool:
    if pattern == "N/A":
        return True
    for alt in pattern.split("|"):
        try:
            if float(alt) == float(value):
                return True
        except ValueError:
            if alt.strip() == value.strip():
                return True
    return False


def find_reference(reftype: str, params: Mapping[str, str], expstart: float) -> RefFileInfo:
    """The catalogue's best reference of `reftype` for a dataset, CRDS-style.

    Among the files whose every selection value matches `params`, the one with the
    latest USEAFTER not after `expstart`.

    Parameters
    ----------
    reftype : str
        Lower-case reference type.
    params : mapping
        Dataset parameters (DETECTOR, CCDAMP, NAXIS1, ...), as strings.
    expstart : float
        Exposure start (MJD).

    Raises
    ------
    ReferenceFileError
        If no simulated file matches.
    """
    best: RefFileInfo | None = None
    for info in reference_catalog():
        if info.reftype != reftype or info.detector != params.get("DETECTOR"):
            continue
        if info.useafter_mjd > expstart:
            continue
        if not all(_value_matches(pat, params.get(key, "N/A"))
                   for key, pat in info.selection.items()):
            continue
        if best is None or info.useafter_mjd > best.useafter_mjd:
            best = info
    if best is None:
        raise ReferenceFileError(
            f"no simulated {reftype.upper()} matches {dict(params)} at MJD {expstart}"
        )
    return best


def _dataset_params(spec: DatasetSpec) -> dict[str, str]:
    layout = raw_layout(spec.detector, spec.aperture, subarray=spec.subarray)
    chip = layout.chips[0]
    return {
        "DETECTOR": spec.detector, "CCDAMP": spec.ccdamp, "CCDGAIN": str(spec.ccdgain),
        "APERTURE": spec.aperture if spec.expstart >= SM4_MJD else "N/A",
        "NAXIS1": str(chip.nx), "NAXIS2": str(chip.ny), "NUMCOLS": str(chip.nx),
        "NUMROWS": str(chip.ny), "LTV1": str(chip.ltv1), "LTV2": str(chip.ltv2),
        "FILTER1": spec.filter1, "FILTER2": spec.filter2, "OBSTYPE": spec.obstype,
        "FLASHCUR": "OFF", "SHUTRPOS": "A",
    }


#: Which switch makes each reference relevant (CRDS rmap_relevance, simplified).
_RELEVANCE: dict[str, Callable[[DatasetSpec, Mapping[str, str]], bool]] = {
    "bpixtab": lambda s, sw: sw["DQICORR"] != "OMIT",
    "ccdtab": lambda s, sw: True,
    "atodtab": lambda s, sw: sw["ATODCORR"] != "OMIT",
    "oscntab": lambda s, sw: True,
    "biasfile": lambda s, sw: sw["BIASCORR"] != "OMIT",
    "satufile": lambda s, sw: sw["BIASCORR"] != "OMIT",
    "flshfile": lambda s, sw: sw["FLSHCORR"] != "OMIT",
    "crrejtab": lambda s, sw: sw["CRCORR"] != "OMIT" or sw["RPTCORR"] != "OMIT",
    "shadfile": lambda s, sw: sw["SHADCORR"] != "OMIT",
    "pctetab": lambda s, sw: s.detector == "WFC" and sw["PCTECORR"] != "OMIT",
    "drkcfile": lambda s, sw: s.detector == "WFC" and sw["PCTECORR"] != "OMIT",
    "darkfile": lambda s, sw: sw["DARKCORR"] != "OMIT",
    "pfltfile": lambda s, sw: sw["FLATCORR"] != "OMIT",
    "imphttab": lambda s, sw: sw["PHOTCORR"] != "OMIT",
    "idctab": lambda s, sw: True,
    "mdriztab": lambda s, sw: sw["DRIZCORR"] != "OMIT",
    "npolfile": lambda s, sw: sw["DRIZCORR"] != "OMIT",
    "d2imfile": lambda s, sw: s.detector == "WFC" and sw["DRIZCORR"] != "OMIT",
    "snkcfile": lambda s, sw: s.detector == "WFC" and sw["SINKCORR"] != "OMIT",
}


def references_for(spec: DatasetSpec, *, prefix: str = "jref$") -> dict[str, str]:
    """Reference keywords the archive pipeline writes into `spec`'s raw headers.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset.
    prefix : str
        Directory prefix of the names (``jref$`` as in archive headers).

    Returns
    -------
    dict
        Every keyword of :data:`REFERENCE_KEYWORDS`, mapped to ``prefix + name`` or
        ``N/A`` where the reference does not apply (as the archive writes it).
    """
    switches = calibration_switches(spec)
    params = _dataset_params(spec)
    out = {}
    for keyword in REFERENCE_KEYWORDS:
        rule = _RELEVANCE.get(keyword.lower())
        if rule is None or not rule(spec, switches):
            out[keyword] = "N/A"
            continue
        info = find_reference(keyword.lower(), params, spec.expstart)
        out[keyword] = prefix + info.filename
    return out
