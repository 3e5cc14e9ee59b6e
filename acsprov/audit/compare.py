"""FITS-aware comparison of two ACS products, with tolerances per extension.

Composed from astropy's own diff classes (:class:`~astropy.io.fits.HeaderDiff`,
:class:`~astropy.io.fits.ImageDataDiff`, :class:`~astropy.io.fits.HDUDiff`) rather than
subclassing them: headers are compared with the keywords that legitimately change
ignored, images with the tolerance of their extension (``SCI``, ``ERR``, ``DQ``), and
every differing image is summarised by numbers a person can act on: how many pixels
are outside the tolerance, where (the bounding box, in FITS pixel coordinates), by
how much, and which DQ bits appeared or vanished.  Small previews of each image and
of its differences are kept for the report's pictures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import BadInputError
from ..keywords import REFERENCE_KEYWORDS, SWITCHES

__all__ = [
    "DEFAULT_TOLERANCES",
    "VOLATILE_KEYWORDS",
    "ExtensionDiff",
    "ProductDiff",
    "Tolerance",
    "compare_products",
    "parse_tolerance",
]

#: Keywords that legitimately differ between two runs of the same calibration: file
#: dates, the provenance pointers (a re-run is a different run) and HISTORY.
VOLATILE_KEYWORDS: tuple[str, ...] = (
    "DATE", "IRAF-TLM", "PROVRUN", "PROVACT", "PROVDOC", "HISTORY", "CHECKSUM", "DATASUM",
)

#: Relative tolerance of floating-point header values (written with 8 digits or 17).
HEADER_RTOL = 1e-6
#: Largest side of an image preview, in pixels.
PREVIEW_SIZE = 384
#: Side of the full-resolution cut-out around the differing region.
ZOOM_SIZE = 48


@dataclass(frozen=True)
class Tolerance:
    """Pixels ``a`` and ``b`` agree when ``|a - b| <= atol + rtol * |b|``."""

    rtol: float = 0.0
    atol: float = 0.0


#: Defaults: floating-point extensions to a part in a million, DQ exactly.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "SCI": Tolerance(1e-6, 0.0),
    "ERR": Tolerance(1e-6, 0.0),
    "DQ": Tolerance(0.0, 0.0),
}


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """Parse ``EXT=RTOL,ATOL`` (as typed on the command line), e.g. ``SCI=1e-5,0.01``."""
    name, sep, values = text.partition("=")
    parts = values.split(",")
    try:
        if not sep or not name.strip() or len(parts) != 2:
            raise ValueError
        rtol, atol = (float(p) for p in parts)
        if rtol < 0 or atol < 0 or not np.isfinite([rtol, atol]).all():
            raise ValueError
    except ValueError:
        raise BadInputError(
            f"tolerance {text!r} is not EXT=RTOL,ATOL with two non-negative numbers, "
            "e.g. SCI=1e-5,0.01"
        ) from None
    return name.strip().upper(), Tolerance(rtol, atol)


@dataclass
class ExtensionDiff:
    """One image extension of two products compared."""

    extname: str
    extver: int
    shape: tuple[int, ...]
    tolerance: Tolerance
    n_pixels: int = 0
    n_outside: int = 0
    """Pixels outside the tolerance (for DQ: pixels whose flags changed)."""
    max_abs_diff: float | None = 0.0
    """Largest |b - a| (None for DQ, whose values are flags: see dq_set, dq_cleared)."""
    max_rel_diff: float | None = 0.0
    bbox: dict[str, int] | None = None
    """Region of the differing pixels, FITS convention: 1-based, inclusive (x is the column)."""
    peak: dict[str, int] | None = None
    """Pixel with the largest difference (FITS x, y)."""
    dq_set: dict[str, int] = field(default_factory=dict)
    """DQ bit -> pixels where it is set in the second file only."""
    dq_cleared: dict[str, int] = field(default_factory=dict)
    """DQ bit -> pixels where it is set in the first file only."""
    stats_a: dict[str, float] = field(default_factory=dict)
    stats_b: dict[str, float] = field(default_factory=dict)
    stats_diff: dict[str, float] = field(default_factory=dict)
    header_differences: list[dict[str, Any]] = field(default_factory=list)
    preview: np.ndarray | None = field(default=None, repr=False)
    """Downsampled first image (for pictures)."""
    delta_preview: np.ndarray | None = field(default=None, repr=False)
    """Downsampled b - a, keeping the largest difference of each block."""
    zoom: np.ndarray | None = field(default=None, repr=False)
    """Full-resolution b - a around the peak difference."""
    zoom_origin: tuple[int, int] = (0, 0)
    preview_step: int = 1

    @property
    def identical(self) -> bool:
        """No pixel outside the tolerance and no header difference."""
        return self.n_outside == 0 and not self.header_differences

    @property
    def fraction_outside(self) -> float:
        return self.n_outside / self.n_pixels if self.n_pixels else 0.0

    @property
    def label(self) -> str:
        return f"{self.extname},{self.extver}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no arrays)."""
        out = {k: v for k, v in asdict(self).items()
               if k not in ("preview", "delta_preview", "zoom", "zoom_origin", "preview_step")}
        out["shape"] = list(self.shape)
        out["identical"] = self.identical
        out["fraction_outside"] = self.fraction_outside
        return out


@dataclass
class ProductDiff:
    """Two versions of one product compared (``a``: recorded or archive; ``b``: new)."""

    name: str
    a: Path
    b: Path
    header_differences: list[dict[str, Any]] = field(default_factory=list)
    """Primary-header keywords that differ (volatile keywords ignored)."""
    extensions: list[ExtensionDiff] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    """Extensions present in only one file, and non-image extensions that differ."""

    @property
    def identical(self) -> bool:
        return (not self.header_differences and not self.structure
                and all(e.identical for e in self.extensions))

    @property
    def switch_differences(self) -> list[dict[str, Any]]:
        return [d for d in self.header_differences if d["keyword"] in SWITCHES]

    @property
    def reference_differences(self) -> list[dict[str, Any]]:
        return [d for d in self.header_differences if d["keyword"] in REFERENCE_KEYWORDS]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "identical": self.identical,
            "header_differences": self.header_differences,
            "switch_differences": self.switch_differences,
            "reference_differences": self.reference_differences,
            "structure": self.structure,
            "extensions": [e.as_dict() for e in self.extensions],
        }


def compare_products(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    name: str | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    ignore_keywords: Sequence[str] = VOLATILE_KEYWORDS,
) -> ProductDiff:
    """Compare two FITS products extension by extension.

    Parameters
    ----------
    a, b : path-like
        The reference version (recorded, or the archive's) and the new one.
    name : str, optional
        How to call the product in reports (default: the name of `a`).
    tolerances : mapping, optional
        Extension name -> :class:`Tolerance`; missing names use
        :data:`DEFAULT_TOLERANCES`, or exact equality for other extensions.
    ignore_keywords : sequence of str
        Header keywords not compared (wildcards as in astropy's ``FITSDiff``).

    Raises
    ------
    BadInputError
        If either file cannot be read as FITS.
    """
    tol = {**DEFAULT_TOLERANCES, **{k.upper(): v for k, v in (tolerances or {}).items()}}
    a, b = Path(a), Path(b)
    diff = ProductDiff(name=name or a.name, a=a, b=b)
    try:
        with fits.open(a, memmap=False) as ha, fits.open(b, memmap=False) as hb:
            diff.header_differences = _header_differences(ha[0].header, hb[0].header,
                                                          ignore_keywords)
            _compare_extensions(diff, ha, hb, tol, ignore_keywords)
    except (OSError, ValueError, TypeError) as err:
        raise BadInputError(f"cannot compare {a} with {b}: {err}".splitlines()[0]) from err
    return diff


def _key(hdu: fits.hdu.base.ExtensionHDU, index: int) -> tuple[str, int]:
    return (str(hdu.header.get("EXTNAME", f"HDU{index}")).strip().upper(),
            int(hdu.header.get("EXTVER", 1) or 1))


def _compare_extensions(diff: ProductDiff, ha: fits.HDUList, hb: fits.HDUList,
                        tol: Mapping[str, Tolerance], ignore: Sequence[str]) -> None:
    by_key_a = {_key(h, i): h for i, h in enumerate(ha) if i}
    by_key_b = {_key(h, i): h for i, h in enumerate(hb) if i}
    for key in by_key_a.keys() - by_key_b.keys():
        diff.structure.append(f"{key[0]},{key[1]} only in the first file")
    for key in by_key_b.keys() - by_key_a.keys():
        diff.structure.append(f"{key[0]},{key[1]} only in the second file")
    for key in [k for k in by_key_a if k in by_key_b]:
        hdu_a, hdu_b = by_key_a[key], by_key_b[key]
        image = isinstance(hdu_a, fits.ImageHDU) and isinstance(hdu_b, fits.ImageHDU)
        if not image:
            other = fits.HDUDiff(hdu_a, hdu_b, ignore_keywords=list(ignore))
            if not other.identical:
                diff.structure.append(f"{key[0]},{key[1]} differs: "
                                      + " ".join(other.report().split())[:300])
            continue
        t = tol.get(key[0], Tolerance())
        ext = _image_diff(key, hdu_a, hdu_b, t)
        ext.header_differences = _header_differences(hdu_a.header, hdu_b.header, ignore)
        diff.extensions.append(ext)


def _header_differences(a: fits.Header, b: fits.Header,
                        ignore: Sequence[str]) -> list[dict[str, Any]]:
    """Keywords whose values differ or that one header lacks, via astropy's HeaderDiff."""
    hd = fits.HeaderDiff(a, b, ignore_keywords=list(ignore), ignore_comments=["*"],
                         ignore_blank_cards=True, rtol=HEADER_RTOL)
    out: list[dict[str, Any]] = []
    for keyword, pairs in hd.diff_keyword_values.items():
        for first, second in pairs:
            out.append({"keyword": keyword, "a": _plain(first), "b": _plain(second)})
    only_a, only_b = hd.diff_keywords if hd.diff_keywords else ([], [])
    out += [{"keyword": k, "a": _plain(a.get(k)), "b": None} for k in only_a]
    out += [{"keyword": k, "b": _plain(b.get(k)), "a": None} for k in only_b]
    return sorted(out, key=lambda d: d["keyword"])


def _plain(value: object) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def _image_diff(key: tuple[str, int], hdu_a: fits.ImageHDU, hdu_b: fits.ImageHDU,
                tol: Tolerance) -> ExtensionDiff:
    data_a, data_b = hdu_a.data, hdu_b.data
    shape_a = tuple(data_a.shape) if data_a is not None else ()
    ext = ExtensionDiff(key[0], key[1], shape_a, tol)
    if data_a is None or data_b is None or data_a.shape != data_b.shape:
        if (data_a is None) != (data_b is None) or shape_a != tuple(getattr(data_b, "shape", ())):
            ext.header_differences.append({"keyword": "(data shape)", "a": list(shape_a),
                                           "b": list(getattr(data_b, "shape", ()))})
        return ext
    astropy_diff = fits.ImageDataDiff(data_a, data_b, rtol=tol.rtol, atol=tol.atol,
                                      numdiffs=0)
    is_dq = key[0] == "DQ" or (np.issubdtype(data_a.dtype, np.integer) and key[0] != "SCI")
    a = np.asarray(data_a)
    b = np.asarray(data_b)
    ext.n_pixels = int(a.size)
    ext.stats_a, ext.stats_b = _stats(a), _stats(b)
    if is_dq:
        ia, ib = a.astype(np.int64), b.astype(np.int64)
        changed = ia != ib
        delta = np.where(changed, 1.0, 0.0).astype(np.float32)
        ext.dq_set, ext.dq_cleared = _bit_changes(ia, ib)
        magnitude = np.abs(ib - ia).astype(np.float64)
    else:
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        delta64 = fb - fa
        magnitude = np.abs(delta64)
        magnitude[~np.isfinite(magnitude)] = np.inf
        both_nan = np.isnan(fa) & np.isnan(fb)
        magnitude[both_nan] = 0.0
        changed = magnitude > tol.atol + tol.rtol * np.abs(fb)
        changed &= ~both_nan
        delta = np.nan_to_num(delta64, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(np.abs(fa) > 0, magnitude / np.abs(fa), np.where(magnitude > 0,
                                                                         np.inf, 0.0))
        finite_rel = rel[np.isfinite(rel)]
        ext.max_rel_diff = float(finite_rel.max()) if finite_rel.size else 0.0
        ext.stats_diff = _stats(delta64)
    # astropy's count is the verdict; the mask (same rule) locates the pixels
    ext.n_outside = int(astropy_diff.diff_total)
    if ext.n_outside and not changed.any():
        changed = magnitude > 0
    finite_mag = magnitude[np.isfinite(magnitude)]
    # DQ values are sets of flags: their difference is no number (see dq_set/dq_cleared)
    ext.max_abs_diff = None if is_dq else (float(finite_mag.max()) if finite_mag.size else 0.0)
    if is_dq:
        ext.max_rel_diff = None
    if ext.n_outside:
        rows, cols = np.nonzero(changed) if a.ndim == 2 else (np.zeros(1, int), np.nonzero(
            changed.ravel())[0])
        ext.bbox = {"x0": int(cols.min()) + 1, "x1": int(cols.max()) + 1,
                    "y0": int(rows.min()) + 1, "y1": int(rows.max()) + 1}
        scored = np.where(changed, np.where(np.isfinite(magnitude), magnitude, np.inf), -1.0)
        flat = int(np.argmax(scored))
        py, px = np.unravel_index(flat, a.shape) if a.ndim == 2 else (0, flat)
        ext.peak = {"x": int(px) + 1, "y": int(py) + 1}
        if a.ndim == 2:
            ext.zoom, ext.zoom_origin = _cutout(delta, int(py), int(px))
    if a.ndim == 2:
        ext.preview_step = max(1, int(np.ceil(max(a.shape) / PREVIEW_SIZE)))
        ext.preview = _block_reduce(np.nan_to_num(a.astype(np.float32)), ext.preview_step,
                                    mode="mean")
        ext.delta_preview = _block_reduce(delta, ext.preview_step, mode="extreme")
    return ext


def _stats(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if not finite.size:
        return {"mean": float("nan"), "median": float("nan"), "std": float("nan"),
                "min": float("nan"), "max": float("nan")}
    return {"mean": float(np.mean(finite)), "median": float(np.median(finite)),
            "std": float(np.std(finite)), "min": float(np.min(finite)),
            "max": float(np.max(finite))}


def _bit_changes(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    set_only, cleared = {}, {}
    gained, lost = b & ~a, a & ~b
    for bit in range(16):
        mask = 1 << bit
        n_set = int(np.count_nonzero(gained & mask))
        n_clear = int(np.count_nonzero(lost & mask))
        if n_set:
            set_only[str(mask)] = n_set
        if n_clear:
            cleared[str(mask)] = n_clear
    return set_only, cleared


def _block_reduce(image: np.ndarray, step: int, *, mode: str) -> np.ndarray:
    """Shrink `image` by `step` in each axis: block means, or the block value of largest
    magnitude (``extreme``), so that a single differing pixel stays visible."""
    if step == 1:
        return image.astype(np.float32)
    ny, nx = image.shape
    py, px = (-ny) % step, (-nx) % step
    padded = np.pad(image, ((0, py), (0, px)), mode="edge" if mode == "mean" else "constant")
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step)
    if mode == "mean":
        return blocks.mean(axis=(1, 3)).astype(np.float32)
    high, low = blocks.max(axis=(1, 3)), blocks.min(axis=(1, 3))
    return np.where(np.abs(high) >= np.abs(low), high, low).astype(np.float32)


def _cutout(delta: np.ndarray, y: int, x: int) -> tuple[np.ndarray, tuple[int, int]]:
    half = ZOOM_SIZE // 2
    y0 = min(max(0, y - half), max(0, delta.shape[0] - ZOOM_SIZE))
    x0 = min(max(0, x - half), max(0, delta.shape[1] - ZOOM_SIZE))
    return delta[y0:y0 + ZOOM_SIZE, x0:x0 + ZOOM_SIZE].copy(), (y0, x0)
