"""Small hand-made ACS files for unit tests (not the simulator's, which is tested itself)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.headers import REFERENCE_KEYWORDS, SWITCHES


def make_raw(path: Path, *, shape: tuple[int, int] = (6, 8), **keywords: object) -> Path:
    """Write a tiny raw-like ACS file: primary header with switches, one SCI/ERR/DQ imset."""
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["INSTRUME"] = "ACS"
    hdr["DETECTOR"] = "HRC"
    hdr["ROOTNAME"] = path.name.split("_")[0]
    for switch in SWITCHES:
        hdr[switch] = "PERFORM"
    for key in REFERENCE_KEYWORDS:
        hdr[key] = "N/A"
    for key, value in keywords.items():
        hdr[key] = value
    sci = np.arange(shape[0] * shape[1], dtype=np.uint16).reshape(shape)
    hdus = [primary, fits.ImageHDU(sci, name="SCI")]
    hdus.append(fits.ImageHDU(np.zeros(shape, np.float32), name="ERR"))
    hdus.append(fits.ImageHDU(np.zeros(shape, np.int16), name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return path


def make_asn(path: Path, rows: Iterable[tuple[str, str, object]], **keywords: object) -> Path:
    """Write an association table with the given (MEMNAME, MEMTYPE, MEMPRSNT) rows."""
    rows = list(rows)
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = "ACS"
    primary.header["ASN_ID"] = path.name.split("_")[0].upper()
    for key, value in keywords.items():
        primary.header[key] = value
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="MEMNAME", format="14A", array=[r[0] for r in rows]),
            fits.Column(name="MEMTYPE", format="14A", array=[r[1] for r in rows]),
            fits.Column(name="MEMPRSNT", format="L", array=[bool(r[2]) for r in rows]),
        ],
        name="ASN",
    )
    fits.HDUList([primary, table]).writeto(path)
    return path


def primary(path: Path) -> Mapping[str, object]:
    """The primary header of `path` as a plain dict."""
    return dict(fits.getheader(path, 0))
