"""Raw-image layouts of the ACS CCDs: where science pixels, prescan and overscan lie.

Conventions (those of real ACS raw files):

* WFC full frame: two imsets.  EXTVER 1 is WFC2 (CCDCHIP=2, amplifiers C | D along a
  row), EXTVER 2 is WFC1 (CCDCHIP=1, amplifiers A | B).  Each raw chip is
  4144 x 2068: 24 physical prescan columns | 2048 columns of the left amplifier |
  2048 of the right amplifier | 24 prescan columns.  The 20 virtual-overscan rows
  are read after the last physical row, i.e. at the end away from the amplifiers:
  on top of WFC2 (whose amplifiers are at the bottom, LTV2=0) and at the bottom of
  WFC1 (amplifiers at the top, LTV2=20).  LTV1=24.
* HRC: one imset 1062 x 1044 (CCDCHIP=1, amplifier C): 19 overscan columns on each
  side of the 1024 science columns, 20 virtual-overscan rows on top; LTV1=19, LTV2=0.
* WFC subarrays after the Cycle 24 flight-software change (October 2016).  What we
  found: the new apertures WFC1A/1B/2C/2D-2K, -1K and -512 are each read through
  one amplifier and sit in the corner of the chip nearest that amplifier; they carry
  the 24 physical prescan columns of that amplifier (on the left for amps A and C,
  on the right for B and D, the ends of the serial register), and only the -2K
  ones also carry the 20 virtual-overscan rows (hstcal ``dobiasshift.c``: "the
  *-1K and *-512 subarrays do not have virtual overscan"; calacs identifies them by
  APERTURE and takes their overscan layout from OSCNTAB rows matched on NX/NY,
  ``findover.c``).  The handbook calls WFC1B-1K "a 1024 x 2048 pix subarray": 1024
  rows of 2048 columns, which with the prescan gives a 2072 x 1024 raw image with
  science columns 1-2048 and prescan 2049-2072, CCDAMP='B', CCDCHIP=1,
  LTV1=-2048 (its first science column is physical column 2049) and LTV2=-1024 (its
  rows are physical rows 1025-2048, next to amplifier B at the top of WFC1).
  NUMCOLS/NUMROWS in CRDS's sense are NAXIS1/NAXIS2 = 2072/1024.  The -512
  subarrays are 536 x 512 by the same rule.  We did not find a real WFC1B-1K
  header to confirm LTV2; the values above follow from those rules.

Every layout is a window into the full raw chip, so the raw-geometry truth of a full
frame (superbias, full-well map, sink pixels) can be cut for a subarray, and the
trimmed-geometry truth (dark, flat) cut by its physical offsets.  All functions here
are pure; slices are 0-based numpy slices, OSCNTAB values are 1-based as calacs reads
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acsprov.errors import BadInputError

__all__ = [
    "HRC_FULL",
    "WFC_FULL",
    "ChipLayout",
    "RawLayout",
    "amp_columns",
    "amp_of_columns",
    "amp_on_right",
    "amp_readout_at_top",
    "embed",
    "full_chip",
    "oscntab_row",
    "overscan_slices",
    "physical_slices",
    "raw_layout",
    "readout_view",
    "science_slices",
    "trim",
    "window_slices",
]

WFC_NX, WFC_NY = 4096, 2048  # trimmed chip
WFC_PRESCAN, WFC_VIRTUAL = 24, 20
WFC_NX_RAW, WFC_NY_RAW = WFC_NX + 2 * WFC_PRESCAN, WFC_NY + WFC_VIRTUAL  # 4144 x 2068

HRC_NX, HRC_NY = 1024, 1024
HRC_OVERSCAN, HRC_VIRTUAL = 19, 20
HRC_NX_RAW, HRC_NY_RAW = HRC_NX + 2 * HRC_OVERSCAN, HRC_NY + HRC_VIRTUAL  # 1062 x 1044


@dataclass(frozen=True)
class ChipLayout:
    """Where things are in one raw imset.

    A layout is a window (``row0``, ``col0``, ``ny``, ``nx``) into the *full* raw chip
    of its detector; the full chip itself is the window at (0, 0).

    Parameters
    ----------
    detector : str
        ``WFC`` or ``HRC``.
    extver : int
        EXTVER of the imset in the raw file.
    ccdchip : int
        CCDCHIP keyword (WFC1=1, WFC2=2; HRC=1).
    amps : str
        Amplifiers along a raw row, left to right (``CD``, ``AB``, ``C``, ``B``).
    ny, nx : int
        Raw array shape.
    row0, col0 : int
        Position of this window's first pixel in the full raw chip (0-based).
    """

    detector: str
    extver: int
    ccdchip: int
    amps: str
    ny: int
    nx: int
    row0: int = 0
    col0: int = 0

    # -- full-chip constants -------------------------------------------------------
    @property
    def _full(self) -> tuple[int, int, int, int]:
        """(science row start, science col start, ny_sci, nx_sci) in the full raw chip."""
        if self.detector == "WFC":
            y0 = WFC_VIRTUAL if self.ccdchip == 1 else 0
            return y0, WFC_PRESCAN, WFC_NY, WFC_NX
        return 0, HRC_OVERSCAN, HRC_NY, HRC_NX

    @property
    def shape(self) -> tuple[int, int]:
        """Raw array shape ``(ny, nx)``."""
        return self.ny, self.nx

    @property
    def sci_y0(self) -> int:
        """First science row of this window (0-based, raw array)."""
        fy0 = self._full[0]
        return max(fy0 - self.row0, 0)

    @property
    def sci_x0(self) -> int:
        """First science column of this window (0-based, raw array)."""
        fx0 = self._full[1]
        return max(fx0 - self.col0, 0)

    @property
    def ny_sci(self) -> int:
        """Number of science rows."""
        fy0, _, fny, _ = self._full
        lo = max(fy0, self.row0)
        hi = min(fy0 + fny, self.row0 + self.ny)
        return max(hi - lo, 0)

    @property
    def nx_sci(self) -> int:
        """Number of science columns."""
        _, fx0, _, fnx = self._full
        lo = max(fx0, self.col0)
        hi = min(fx0 + fnx, self.col0 + self.nx)
        return max(hi - lo, 0)

    @property
    def ltv1(self) -> float:
        """LTV1: offset from physical (trimmed full-chip) to image x coordinates."""
        return float(self._full[1] - self.col0)

    @property
    def ltv2(self) -> float:
        """LTV2: offset from physical to image y coordinates."""
        return float(self._full[0] - self.row0)

    @property
    def phys_x0(self) -> int:
        """0-based column of the first science pixel in the trimmed full chip."""
        return self.sci_x0 + self.col0 - self._full[1]

    @property
    def phys_y0(self) -> int:
        """0-based row of the first science pixel in the trimmed full chip."""
        return self.sci_y0 + self.row0 - self._full[0]

    @property
    def is_full_chip(self) -> bool:
        """True if the window is the whole raw chip."""
        full = full_chip(self.detector, self.ccdchip)
        return (self.ny, self.nx, self.row0, self.col0) == (full.ny, full.nx, 0, 0)


@dataclass(frozen=True)
class RawLayout:
    """The imsets of one raw file.

    Parameters
    ----------
    name : str
        Layout name (the aperture family: ``WFC``, ``HRC``, ``WFC1B-1K``...).
    detector : str
        ``WFC`` or ``HRC``.
    ccdamp : str
        CCDAMP keyword.
    subarray : bool
        SUBARRAY keyword.
    chips : tuple of ChipLayout
        Imsets in EXTVER order.
    """

    name: str
    detector: str
    ccdamp: str
    subarray: bool
    chips: tuple[ChipLayout, ...]

    @property
    def nimsets(self) -> int:
        """Number of SCI/ERR/DQ imsets."""
        return len(self.chips)


def full_chip(detector: str, ccdchip: int, extver: int | None = None) -> ChipLayout:
    """Layout of a full raw chip.

    Parameters
    ----------
    detector : {'WFC', 'HRC'}
    ccdchip : int
        1 or 2 for WFC, 1 for HRC.
    extver : int, optional
        EXTVER to give the imset (default: its full-frame position).

    Returns
    -------
    ChipLayout
    """
    if detector == "WFC":
        if ccdchip not in (1, 2):
            raise BadInputError(f"WFC has no CCDCHIP={ccdchip}: expected 1 or 2")
        amps = "AB" if ccdchip == 1 else "CD"
        ev = extver if extver is not None else (2 if ccdchip == 1 else 1)
        return ChipLayout("WFC", ev, ccdchip, amps, WFC_NY_RAW, WFC_NX_RAW)
    if detector == "HRC":
        return ChipLayout("HRC", extver or 1, 1, "C", HRC_NY_RAW, HRC_NX_RAW)
    raise BadInputError(f"DETECTOR={detector!r} has no CCD layout: expected WFC or HRC")


WFC_FULL = RawLayout("WFC", "WFC", "ABCD", False, (full_chip("WFC", 2), full_chip("WFC", 1)))
HRC_FULL = RawLayout("HRC", "HRC", "C", False, (full_chip("HRC", 1),))

# Rows of science (plus, for -2K, the virtual overscan) of the new-style subarrays.
_SUB_ROWS = {"2K": WFC_NY, "1K": 1024, "512": 512}
_SUB_COLS = {"2K": WFC_NX // 2, "1K": WFC_NX // 2, "512": 512}


def _wfc_subarray(aperture: str) -> RawLayout:
    """Layout of a Cycle 24+ WFC subarray aperture such as ``WFC1B-1K``."""
    try:
        chip_amp, size = aperture[3:].split("-")
        ccdchip, amp = int(chip_amp[0]), chip_amp[1]
        nrows, ncols = _SUB_ROWS[size], _SUB_COLS[size]
    except (ValueError, KeyError, IndexError):
        raise BadInputError(
            f"APERTURE={aperture!r} is not a supported WFC subarray "
            "(WFC1A/1B/2C/2D-2K, -1K or -512)"
        ) from None
    if (ccdchip, amp) not in ((1, "A"), (1, "B"), (2, "C"), (2, "D")):
        raise BadInputError(f"APERTURE={aperture!r}: amplifier {amp} is not on WFC{ccdchip}")
    nx = ncols + WFC_PRESCAN
    left = amp in "AC"
    col0 = 0 if left else WFC_NX_RAW - nx
    if size == "2K":
        ny, row0 = WFC_NY_RAW, 0
    elif ccdchip == 1:  # amplifiers at the top of WFC1: the last physical rows
        ny, row0 = nrows, WFC_NY_RAW - nrows
    else:  # amplifiers at the bottom of WFC2: the first physical rows
        ny, row0 = nrows, 0
    chip = ChipLayout("WFC", 1, ccdchip, amp, ny, nx, row0, col0)
    return RawLayout(aperture, "WFC", amp, True, (chip,))


def raw_layout(detector: str, aperture: str = "", *, subarray: bool = False) -> RawLayout:
    """Raw layout of an exposure from its DETECTOR, APERTURE and SUBARRAY keywords.

    Parameters
    ----------
    detector : {'WFC', 'HRC'}
    aperture : str
        APERTURE keyword; only used for subarrays.
    subarray : bool
        SUBARRAY keyword.

    Returns
    -------
    RawLayout

    Raises
    ------
    BadInputError
        For SBC, unknown detectors, HRC subarrays and unsupported WFC subarrays.

    Examples
    --------
    >>> lay = raw_layout("WFC", "WFC1B-1K", subarray=True)
    >>> lay.chips[0].shape, lay.chips[0].ltv1, lay.chips[0].ltv2
    ((1024, 2072), -2048.0, -1024.0)
    """
    if detector == "WFC":
        return _wfc_subarray(aperture) if subarray else WFC_FULL
    if detector == "HRC":
        if subarray:
            raise BadInputError(f"APERTURE={aperture!r}: HRC subarrays are not simulated")
        return HRC_FULL
    raise BadInputError(f"DETECTOR={detector!r} is not a CCD: expected WFC or HRC")


def science_slices(chip: ChipLayout) -> tuple[slice, slice]:
    """(rows, columns) of the science region in the raw array of `chip`.

    Examples
    --------
    >>> science_slices(WFC_FULL.chips[1])
    (slice(20, 2068, None), slice(24, 4120, None))
    """
    return (
        slice(chip.sci_y0, chip.sci_y0 + chip.ny_sci),
        slice(chip.sci_x0, chip.sci_x0 + chip.nx_sci),
    )


def physical_slices(chip: ChipLayout) -> tuple[slice, slice]:
    """(rows, columns) of `chip`'s science region within the trimmed full chip."""
    return (
        slice(chip.phys_y0, chip.phys_y0 + chip.ny_sci),
        slice(chip.phys_x0, chip.phys_x0 + chip.nx_sci),
    )


def window_slices(chip: ChipLayout) -> tuple[slice, slice]:
    """(rows, columns) of `chip`'s raw window within the full raw chip."""
    return slice(chip.row0, chip.row0 + chip.ny), slice(chip.col0, chip.col0 + chip.nx)


def overscan_slices(chip: ChipLayout) -> dict[str, tuple[slice, slice]]:
    """Overscan regions of `chip` in its raw array.

    Returns
    -------
    dict
        ``leading`` (prescan columns before the science columns), ``trailing`` (after
        them) and ``virtual`` (virtual-overscan rows, over the science columns); a
        region the layout lacks is absent.
    """
    rows, cols = science_slices(chip)
    out: dict[str, tuple[slice, slice]] = {}
    all_rows = slice(0, chip.ny)
    if cols.start > 0:
        out["leading"] = (all_rows, slice(0, cols.start))
    if cols.stop < chip.nx:
        out["trailing"] = (all_rows, slice(cols.stop, chip.nx))
    if rows.start > 0:
        out["virtual"] = (slice(0, rows.start), cols)
    elif rows.stop < chip.ny:
        out["virtual"] = (slice(rows.stop, chip.ny), cols)
    return out


def amp_columns(chip: ChipLayout) -> dict[str, slice]:
    """Raw columns read through each amplifier (prescan included).

    Examples
    --------
    >>> amp_columns(WFC_FULL.chips[0])
    {'C': slice(0, 2072, None), 'D': slice(2072, 4144, None)}
    """
    if len(chip.amps) == 1:
        return {chip.amps: slice(0, chip.nx)}
    half = chip.nx // 2
    return {chip.amps[0]: slice(0, half), chip.amps[1]: slice(half, chip.nx)}


def amp_of_columns(chip: ChipLayout) -> np.ndarray:
    """Amplifier letter of every raw column of `chip` (array of 1-character str)."""
    out = np.empty(chip.nx, dtype="<U1")
    for amp, cols in amp_columns(chip).items():
        out[cols] = amp
    return out


def amp_readout_at_top(chip: ChipLayout) -> bool:
    """True if `chip`'s amplifiers sit at the top of its raw array.

    Virtual-overscan rows are clocked out after the last physical row, so they lie at
    the end away from the amplifiers: WFC1's amplifiers A and B are at the top of its
    raw image, WFC2's C and D and HRC's C at the bottom.
    """
    return chip.detector == "WFC" and chip.ccdchip == 1


def amp_on_right(chip: ChipLayout, amp: str) -> bool:
    """True if `amp` reads `chip`'s raw lines from their right-hand end.

    Of a two-amplifier chip the second amplifier (B on WFC1, D on WFC2) reads the
    right half; a single-amplifier WFC readout through B or D sits at the right-hand
    end of its chip (its prescan follows the science columns); HRC's C is on the left.
    """
    if len(chip.amps) == 2:
        return chip.amps.index(amp) == 1
    return chip.detector == "WFC" and amp in "BD"


def readout_view(raw: np.ndarray, chip: ChipLayout, amp: str) -> np.ndarray:
    """View of the columns `amp` reads, in the order it reads them.

    Element ``[i, k]`` is the ``k``-th pixel of the ``i``-th line the amplifier
    shifted out: the view is flipped vertically for amplifiers at the top of the raw
    array and horizontally for amplifiers at the right-hand end, so that
    ``view.ravel()`` is the time sequence of the amplifier's output (without the
    pause between lines).  Writing into the view writes into `raw`.

    Examples
    --------
    >>> chip = WFC_FULL.chips[1]  # WFC1, amplifiers A and B at the top
    >>> raw = np.zeros(chip.shape)
    >>> readout_view(raw, chip, "B")[0, 0] = 1.0
    >>> bool(raw[-1, -1])
    True
    """
    if raw.shape != chip.shape:
        raise BadInputError(f"array of shape {raw.shape} is not a raw {chip.shape} imset")
    view = raw[:, amp_columns(chip)[amp]]
    if amp_readout_at_top(chip):
        view = view[::-1]
    if amp_on_right(chip, amp):
        view = view[:, ::-1]
    return view


def trim(raw: np.ndarray, chip: ChipLayout) -> np.ndarray:
    """Science region of a raw array (a view).

    Raises
    ------
    BadInputError
        If `raw` does not have `chip`'s raw shape.
    """
    if raw.shape != chip.shape:
        raise BadInputError(f"array of shape {raw.shape} is not a raw {chip.shape} imset")
    return raw[science_slices(chip)]


def embed(sci: np.ndarray, chip: ChipLayout, fill: float = 0.0) -> np.ndarray:
    """Place a science-region array into a new raw-shaped array filled with `fill`."""
    rows, cols = science_slices(chip)
    if sci.shape != (rows.stop - rows.start, cols.stop - cols.start):
        raise BadInputError(
            f"array of shape {sci.shape} is not the {chip.ny_sci} x {chip.nx_sci} "
            "science region"
        )
    out = np.full(chip.shape, fill, dtype=np.result_type(sci.dtype, np.float32))
    out[rows, cols] = sci
    return out


def oscntab_row(chip: ChipLayout, ccdamp: str, *, drift: bool = True) -> dict[str, int | str]:
    """OSCNTAB values (1-based raw coordinates) describing `chip`'s overscan.

    Parameters
    ----------
    chip : ChipLayout
    ccdamp : str
        The CCDAMP the row should match (``ABCD`` for full frames).
    drift : bool
        Declare the virtual overscan (VX1-VY2) so that calacs fits a bias drift along
        the lines to it.  calacs fits one drift line per row of the table and applies
        it to every amplifier of the chip, so a WFC row, whose two amplifiers have
        different bias levels, must leave it out (all four 0); the virtual overscan
        is still recognised from TRIMY1/TRIMY2 = 20.

    Returns
    -------
    dict
        CCDAMP, CCDCHIP, BINX, BINY, NX, NY, TRIMX1, TRIMX2, TRIMY1, TRIMY2, VX1, VX2,
        VY1, VY2, BIASSECTA1, BIASSECTA2, BIASSECTB1, BIASSECTB2.  Missing regions
        are 0.

    Notes
    -----
    With two amplifiers on a line, BIASSECTA is the overscan at the start of the raw
    line (left amplifier) and BIASSECTB the one at its end.  A single-amplifier
    readout has one physical overscan, that of its own amplifier, and calacs reads a
    single amplifier's bias level from BIASSECTA unless BIASSECTA2 is exactly 1 (with
    BIASSECTA2 = 0 it would read no pixel at all and fall back on the CCDTAB level):
    such a row lists its overscan in BIASSECTA whichever end of the line it is on,
    e.g. columns 2049-2072 for WFC1B-1K.
    """
    rows, cols = science_slices(chip)
    ovs = overscan_slices(chip)
    row: dict[str, int | str] = {
        "CCDAMP": ccdamp,
        "CCDCHIP": chip.ccdchip,
        "BINX": 1,
        "BINY": 1,
        "NX": chip.nx,
        "NY": chip.ny,
        "TRIMX1": cols.start,
        "TRIMX2": chip.nx - cols.stop,
        "TRIMY1": rows.start,
        "TRIMY2": chip.ny - rows.stop,
        "VX1": 0,
        "VX2": 0,
        "VY1": 0,
        "VY2": 0,
        "BIASSECTA1": 0,
        "BIASSECTA2": 0,
        "BIASSECTB1": 0,
        "BIASSECTB2": 0,
    }
    if drift and "virtual" in ovs:
        vr, vc = ovs["virtual"]
        row.update(VX1=vc.start + 1, VX2=vc.stop, VY1=vr.start + 1, VY2=vr.stop)
    sections = []
    if "leading" in ovs:
        sections.append((1, ovs["leading"][1].stop))
    if "trailing" in ovs:
        tc = ovs["trailing"][1]
        sections.append((tc.start + 1, tc.stop))
    for name, (first, last) in zip("AB", sections, strict=False):
        row.update({f"BIASSECT{name}1": first, f"BIASSECT{name}2": last})
    return row
