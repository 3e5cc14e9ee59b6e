"""Calibration switches and reference-file keywords of ACS raw headers, and safe edits.

The switches are those of ACS Data Handbook Table 3.7; the reference-file keywords are
the ones calacs and CRDS read from the primary header.  :func:`set_header` is the one
way acsprov edits a raw header: it validates every keyword and value first, writes the
edited file atomically (so the user's file is either untouched or completely edited)
and returns a record of each change with the file's sha256 before and after.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from .errors import BadInputError, RecipeError
from .fitsutil import atomic_path, check_acs_file, check_writable, sha256sum

__all__ = [
    "REFERENCE_KEYWORDS",
    "SWITCHES",
    "SWITCH_REFERENCES",
    "SWITCH_VALUES",
    "HeaderChange",
    "HeaderEdit",
    "check_raw_header",
    "parse_assignment",
    "set_header",
    "validate_edits",
]

#: Calibration switches of Handbook Table 3.7, in calacs's processing order.
SWITCHES: tuple[str, ...] = (
    "DQICORR",
    "ATODCORR",
    "BLEVCORR",
    "BIASCORR",
    "FLSHCORR",
    "CRCORR",
    "EXPSCORR",
    "SHADCORR",
    "PCTECORR",
    "DARKCORR",
    "FLATCORR",
    "PHOTCORR",
    "RPTCORR",
    "DRIZCORR",
    "SINKCORR",
    "GLINCORR",
    "LFLGCORR",
)

#: Values a user may give a switch (calacs itself also writes SKIPPED).
SWITCH_VALUES: tuple[str, ...] = ("PERFORM", "OMIT", "COMPLETE", "SKIPPED")

#: Reference-file keywords of an ACS primary header.
REFERENCE_KEYWORDS: tuple[str, ...] = (
    "BPIXTAB",
    "CCDTAB",
    "ATODTAB",
    "OSCNTAB",
    "BIASFILE",
    "BIACFILE",
    "FLSHFILE",
    "CRREJTAB",
    "SHADFILE",
    "PCTETAB",
    "DRKCFILE",
    "DARKFILE",
    "PFLTFILE",
    "DFLTFILE",
    "LFLTFILE",
    "CFLTFILE",
    "SPOTTAB",
    "IMPHTTAB",
    "IDCTAB",
    "DGEOFILE",
    "MDRIZTAB",
    "NPOLFILE",
    "D2IMFILE",
    "SNKCFILE",
    "SATUFILE",
    "MLINTAB",
)

#: Reference-file keywords each switch makes calacs read (CCDTAB is always read).
SWITCH_REFERENCES: dict[str, tuple[str, ...]] = {
    "DQICORR": ("BPIXTAB",),
    "ATODCORR": ("ATODTAB",),
    "BLEVCORR": ("OSCNTAB",),
    "BIASCORR": ("BIASFILE", "SATUFILE"),
    "FLSHCORR": ("FLSHFILE",),
    "CRCORR": ("CRREJTAB",),
    "RPTCORR": ("CRREJTAB",),
    "SHADCORR": ("SHADFILE",),
    "PCTECORR": ("PCTETAB", "DRKCFILE", "BIACFILE"),
    "DARKCORR": ("DARKFILE",),
    "FLATCORR": ("PFLTFILE", "DFLTFILE", "LFLTFILE"),
    "PHOTCORR": ("IMPHTTAB",),
    "SINKCORR": ("SNKCFILE",),
    "GLINCORR": ("MLINTAB",),
    "LFLGCORR": ("MLINTAB",),
}

#: Keywords of a raw file calacs reads, by header and by the type their value must
#: have ("number", "integer", "logical" or "text"); a value of another type is refused
#: before calibration starts.
RAW_KEYWORD_TYPES: dict[str, dict[str, str]] = {
    "primary": {
        "EXPTIME": "number", "EXPSTART": "number", "EXPEND": "number", "DARKTIME": "number",
        "FLASHDUR": "number", "CCDGAIN": "number", "LRFWAVE": "number",
        "NEXTEND": "integer", "CRSPLIT": "integer", "NRPTEXP": "integer",
        "SUBARRAY": "logical",
        "INSTRUME": "text", "DETECTOR": "text", "CCDAMP": "text", "FILTER1": "text",
        "FILTER2": "text", "APERTURE": "text", "OBSTYPE": "text", "ROOTNAME": "text",
        "FLASHSTA": "text", "SDQFLAGS": "integer",
        **{key: "text" for key in (*SWITCHES, *REFERENCE_KEYWORDS)},
    },
    "SCI": {
        "LTV1": "number", "LTV2": "number", "LTM1_1": "number", "LTM2_2": "number",
        "CCDCHIP": "integer", "SIZAXIS1": "integer", "SIZAXIS2": "integer",
        "EXTVER": "integer", "BUNIT": "text",
    },
}


def _type_of(value: object) -> set[str]:
    if isinstance(value, bool):
        return {"logical"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    if isinstance(value, str):
        return {"text"}
    return set()


def check_raw_header(path: str | os.PathLike[str]) -> None:
    """Refuse a raw file whose calibration keywords have values of the wrong type.

    Raises
    ------
    BadInputError
        Naming the first keyword whose value is not of its type
        (:data:`RAW_KEYWORD_TYPES`), e.g. ``LTV1 = 'PERFORM'``.
    """
    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        headers = [("primary", hdul[0].header)] + [
            ("SCI", hdu.header) for hdu in hdul[1:] if hdu.name == "SCI"]
        for kind, header in headers:
            where = path.name if kind == "primary" else f"{path.name}[SCI,{header.get('EXTVER')}]"
            for key, wanted in RAW_KEYWORD_TYPES[kind].items():
                if key in header and wanted not in _type_of(header[key]):
                    raise BadInputError(f"{where}: {key} = {header[key]!r} is not "
                                        f"{'an' if wanted[0] in 'aeiou' else 'a'} {wanted}")


# A reference value: N/A, a jref$ name, or a plain file name (no directories, which
# calacs would resolve against the input's directory anyway).
_REF_VALUE = re.compile(r"^(N/A|jref\$[A-Za-z0-9_.\-]+|[A-Za-z0-9_.\-]+\.fits)$")


@dataclass(frozen=True)
class HeaderChange:
    """One keyword changed in one file's primary header."""

    keyword: str
    before: str | None
    after: str


@dataclass(frozen=True)
class HeaderEdit:
    """The account of one :func:`set_header` call on one file."""

    path: Path
    sha256_before: str
    sha256_after: str
    changes: tuple[HeaderChange, ...] = field(default_factory=tuple)


def validate_edits(edits: Mapping[str, object], *, where: str = "header edit") -> dict[str, str]:
    """Check keywords and values of a header edit; return them upper-cased as strings.

    Switches take one of :data:`SWITCH_VALUES`; reference keywords take ``N/A``, a
    ``jref$name`` or a plain ``.fits`` file name.

    Raises
    ------
    RecipeError
        For an unknown keyword or a value the keyword cannot take.
    """
    clean: dict[str, str] = {}
    for key, value in edits.items():
        kw = str(key).strip().upper()
        text = str(value).strip()
        if kw in SWITCHES:
            if text.upper() not in SWITCH_VALUES:
                raise RecipeError(
                    f"{where}: {kw}={text!r} is not a switch value; "
                    f"use one of {', '.join(SWITCH_VALUES)}"
                )
            clean[kw] = text.upper()
        elif kw in REFERENCE_KEYWORDS:
            if not _REF_VALUE.match(text):
                raise RecipeError(
                    f"{where}: {kw}={text!r} is not a reference file name; "
                    "use N/A, jref$name.fits or a plain name.fits"
                )
            clean[kw] = text
        else:
            raise RecipeError(
                f"{where}: {kw} is not an ACS calibration switch or reference-file keyword"
            )
    return clean


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (as typed on the command line) into its two parts."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise RecipeError(f"{text!r} is not of the form KEY=VALUE")
    return key.strip().upper(), value.strip()


def set_header(path: str | os.PathLike[str], edits: Mapping[str, object]) -> HeaderEdit:
    """Set primary-header keywords of an ACS raw file, atomically.

    Parameters
    ----------
    path : path-like
        The raw file to edit.  If it is a symbolic link (a locked git-annex file),
        the link is replaced by an edited regular file: the annexed object itself
        is never written to.
    edits : mapping
        Keyword to new value; validated with :func:`validate_edits`.

    Returns
    -------
    HeaderEdit
        The changes made (keywords whose value did not change are not listed),
        and the file's sha256 before and after.
    """
    path = Path(path)
    clean = validate_edits(edits, where=str(path))
    check_writable(path)
    check_acs_file(path)
    before = sha256sum(path)
    with fits.open(path, memmap=False) as hdul:
        hdr = hdul[0].header
        changes = [
            HeaderChange(kw, None if hdr.get(kw) is None else str(hdr.get(kw)), value)
            for kw, value in clean.items()
            if hdr.get(kw) is None or str(hdr.get(kw)) != value
        ]
        if not changes:
            return HeaderEdit(path, before, before, ())
        for change in changes:
            hdr[change.keyword] = change.after
        with atomic_path(path) as tmp:
            try:
                hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
            except OSError as err:
                raise BadInputError(f"{path}: could not write the edited header ({err})") from err
    return HeaderEdit(path, before, sha256sum(path), tuple(changes))
