"""calacs's top level for the native engine: one raw exposure or a whole association.

:func:`run_native` does what ``calacs.e`` does with a ``_raw.fits`` or ``_asn.fits``
file, using the native tasks (:func:`~acsprov.calib.acsccd.run_acsccd`,
:func:`~acsprov.calib.acscte.run_acscte`, :func:`~acsprov.calib.acsrej.run_acsrej`,
:func:`~acsprov.calib.acs2d.run_acs2d`):

* every exposure present in the table (MEMPRSNT) goes through ACSCCD into a
  ``_blv_tmp`` file and, with PCTECORR=PERFORM, through ACSCTE into a ``_blc_tmp``;
* exposures sharing a position (``EXP-CRJ``, ``EXP-RPT``, ``EXP-CR<n>``...) whose
  CRCORR or RPTCORR is PERFORM are combined by ACSREJ into the ``_crj_tmp``
  (``_crc_tmp``), which ACS2D turns into the ``_crj`` (``_crc``), with the
  product's ``_spt``; ACSREJ flags the pixels it rejected with DQ 8192 in the
  members' temporary files;
* ACS2D then makes every member's ``_flt`` (from the ``_blv_tmp``, with the 8192
  flags) and ``_flc`` (from the ``_blc_tmp``, subtracting the DRKCFILE);
* a ``PROD-DTH`` row gets its ``_spt`` and the table is rewritten as calacs does
  (MEMPRSNT of the products made set true, ``ASN_PROD = T``); without one the
  association trailer says "No DTH product name specified. No product created.";
* one ``.tra`` trailer per exposure, per product and per association;
* the temporary files are deleted unless ``temp_files``.

calacs's rules are kept where they change products: the switches and reference
files of a position's *first* exposure are used for all its exposures (as
calacs's reference list is built from that header), CRCORR and RPTCORR must agree
between the table and the headers, and the members' ``_flt`` files are always written
(calacs 10.5 writes them whatever EXPSCORR says).  Unlike calacs, everything that
can be checked is checked before anything is written (inputs present, switches,
reference files, products not already there), and a failure removes what the run
had written, so a failed run leaves no partial products.

The result (:class:`NativeResult`) lists the products, every reference file read,
and the temporary files with their sha256 taken before deletion, so provenance can
show ``raw -> _blv_tmp -> _crj_tmp -> _crj`` even though the intermediates are gone.

:func:`run_single` runs ACSCCD then ACS2D on one raw exposure and writes its ``_flt``
and ``.tra``, as ``calacs.e`` does for a single exposure without CTE correction.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from acsprov.asn import Member, read_asn
from acsprov.calib.acs2d import run_acs2d
from acsprov.calib.acsccd import run_acsccd
from acsprov.calib.fitsio import (
    Exposure,
    atomic_path,
    read_exposure,
    write_exposure,
    write_exposure_kept,
)
from acsprov.calib.memory import map_large_arrays
from acsprov.calib.reffiles import RefFile, inspect_ref, ref_name_given
from acsprov.calib.steps import ExposureKeys, header_switch
from acsprov.calib.trailer import Trailer
from acsprov.calib.version import ENGINE, ENGINE_NAME, ENGINE_VERSION
from acsprov.errors import BadInputError, NotImplementedYetError, ReferenceFileError
from acsprov.fitsutil import BackgroundSha256, set_empty_primary_bitpix, sha256sum
from acsprov.provenance.stamp import apply_stamp

__all__ = [
    "ENGINE_NAME",
    "ENGINE_VERSION",
    "CteFunction",
    "Intermediate",
    "NativeResult",
    "SingleResult",
    "planned_outputs",
    "run_native",
    "run_single",
]


#: ACSCTE as a function of the ``_blv_tmp`` and ``_blc_tmp`` paths (see
#: :func:`acsprov.calib.acscte.run_acscte`): it writes the ``_blc_tmp`` and returns a
#: dict whose optional ``"trailer"`` holds its messages (list of lines) and
#: ``"references"`` maps keywords to a path or to a dict with a ``"path"``.
CteFunction = Callable[..., Mapping[str, Any]]
_log = logging.getLogger("acsprov.calib")
_CCD_SWITCHES = ("DQICORR", "ATODCORR", "BIASCORR", "BLEVCORR")
_2D_SWITCHES = ("GLINCORR", "LFLGCORR", "DARKCORR", "FLSHCORR", "FLATCORR", "SHADCORR",
                "PHOTCORR")
_SWITCHES = (*_CCD_SWITCHES, "PCTECORR", "SINKCORR", *_2D_SWITCHES, "CRCORR", "RPTCORR",
             "EXPSCORR")
_FLATS = ("PFLTFILE", "DFLTFILE", "LFLTFILE")


#: Reference images, made for one detector (calacs's CheckDetector); tables select
#: their rows by DETECTOR instead.
_DETECTOR_IMAGES = frozenset({"BIASFILE", "BIACFILE", "DARKFILE", "DRKCFILE", "FLSHFILE",
                              "PFLTFILE", "DFLTFILE", "LFLTFILE", "SHADFILE", "SATUFILE",
                              "SNKCFILE"})
_TIMESTAMP = re.compile(r"^\d{13}-I-{15} ")


# =========================================================================== results
@dataclass(frozen=True)
class Intermediate:
    """A temporary file calacs makes on the way to its products.

    Attributes
    ----------
    path : pathlib.Path
        The file (``<root>_blv_tmp.fits``, ``_blc_tmp``, ``_crj_tmp``, ``_crc_tmp``).
    sha256 : str
        Checksum of its final content (after ACSREJ flagged rejected pixels in it),
        taken before it was deleted.
    role : str
        ``"blv_tmp"``, ``"blc_tmp"``, ``"crj_tmp"`` or ``"crc_tmp"``.
    derived_from : tuple of pathlib.Path
        The files it was made from (a raw file, a ``_blv_tmp``, the members' temporaries).
    deleted : bool
        True if it no longer exists (calacs deletes temporaries unless asked not to).
    """

    path: Path
    sha256: str
    role: str
    derived_from: tuple[Path, ...]
    deleted: bool


@dataclass
class NativeResult:
    """What :func:`run_native` did.

    Attributes
    ----------
    products : list of pathlib.Path
        Files written: ``_flt``, ``_flc``, ``_crj``, ``_crc``, products' ``_spt``,
        ``.tra`` trailers, and the association table if it was rewritten.
    intermediates : list of Intermediate
        The temporary files, in the order they were made.
    references : dict
        Every reference file read, keyword -> path (``DRKCFILE`` for the dark of
        the ``_flc``/``_crc``, ``CRREJTAB`` for ACSREJ, ``PCTETAB`` for ACSCTE).
    derivations : list of (pathlib.Path, tuple of pathlib.Path)
        For each product, the inputs or intermediates it was made from.
    inputs : list of pathlib.Path
        The input file and the raw files read.
    """

    products: list[Path] = field(default_factory=list)
    intermediates: list[Intermediate] = field(default_factory=list)
    references: dict[str, Path] = field(default_factory=dict)
    derivations: list[tuple[Path, tuple[Path, ...]]] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    checksums: dict[Path, str] = field(default_factory=dict)
    """sha256 of the products written in the background (computed there, for provenance)."""


# =========================================================================== the plan
@dataclass
class _Exposure:
    """One exposure to calibrate and the files calacs names after it."""

    root: str
    memtype: str
    raw: Path
    phdr: fits.Header
    posid: int

    def file(self, suffix: str) -> Path:
        return self.raw.with_name(f"{self.root}{suffix}")


@dataclass
class _Position:
    """A calacs sub-product: the exposures of one position and what is made of them."""

    posid: int
    members: list[_Exposure]
    name: str = ""          # product rootname (lower case), "" without a product row
    memtype: str = ""       # MEMTYPE of the product row, normalised
    row: int | None = None  # index of the product row in the table
    switches: dict[str, str] = field(default_factory=dict)
    combine: bool = False   # ACSREJ (CRCORR or RPTCORR)
    basic_ccd: bool = False
    basic_cte: bool = False
    basic_2d: bool = False
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def first(self) -> _Exposure:
        return self.members[0]

    def file(self, suffix: str) -> Path:
        return self.first.raw.with_name(f"{self.name}{suffix}")


@dataclass
class _Plan:
    """Everything decided before a file is written."""

    input: Path
    directory: Path
    single: bool
    detector: str
    asn_root: str = ""
    positions: list[_Position] = field(default_factory=list)
    crcorr: bool = False
    rptcorr: bool = False
    dth_name: str = ""
    dth_row: int | None = None
    rows: tuple[Member, ...] = ()
    warnings: list[str] = field(default_factory=list)
    switch_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def exposures(self) -> list[_Exposure]:
        return [m for p in self.positions for m in p.members]


def _switch(phdr: fits.Header, key: str, name: str) -> str:
    """A switch as calacs reads it: PERFORM, COMPLETE or OMIT (SKIPPED counts as OMIT)."""
    try:
        value = header_switch(phdr, key)
    except BadInputError as err:
        if key == "PCTECORR":  # calacs treats an unreadable PCTECORR as OMIT
            return "OMIT"
        raise BadInputError(f"{name}: {err}") from None
    return value if value in ("PERFORM", "COMPLETE") else "OMIT"


def _root_of(path: Path) -> str:
    """calacs's rootname of a file name: cut at ``_raw``, ``_asn`` and the like."""
    from acsprov.calib.acsrej import find_root

    return find_root(path.name)


def _read_phdr(path: Path, what: str) -> fits.Header:
    try:
        return fits.getheader(path, 0)
    except FileNotFoundError:
        raise BadInputError(f"{what}: {path.name} not found in {path.parent}") from None
    except (OSError, ValueError) as err:
        raise BadInputError(f"{what}: cannot read {path.name}: {err}") from None


def _detector(phdr: fits.Header, name: str) -> str:
    instrume = str(phdr.get("INSTRUME", "")).strip().upper()
    if not instrume.startswith("ACS"):
        raise BadInputError(f"{name} is not an ACS file (INSTRUME = {instrume!r})")
    det = str(phdr.get("DETECTOR", "")).strip().upper()
    if det not in ("WFC", "HRC", "SBC"):
        raise BadInputError(f"DETECTOR = {det!r} in {name} is invalid; expected WFC, HRC or SBC")
    return det


def _posids(rows: Sequence[Member], poslen: int) -> list[int]:
    """calacs's position of each table row (0 for PROD-DTH; -1 for an absent exposure)."""
    out = []
    posid = 0
    defid = 1
    for m in rows:
        if m.memtype == "PROD-DTH":
            posid = 0
        else:
            word = m.kind
            if word in ("CRJ", "RPT"):
                posid = 1
            elif m.present or m.is_product:
                if len(word) > poslen and word[poslen].isalnum():
                    digits = re.match(r"\d*", word[poslen:]).group()  # type: ignore[union-attr]
                    posid = int(digits) if digits else 0
                else:
                    posid = defid
                    defid += 1
        out.append(posid if (m.present or m.is_product) else -1)
    return out


def _plan_asn(path: Path) -> _Plan:
    asn = read_asn(path)
    phdr = _read_phdr(path, "association")
    detector = _detector(phdr, path.name)
    with fits.open(path, memmap=False) as hdul:
        raw_types = tuple(str(v).strip() for v in hdul[1].data["MEMTYPE"])
    plan = _Plan(input=path, directory=path.parent, single=False, detector=detector,
                 asn_root=_root_of(path), rows=asn.rows)
    for i, t in enumerate(raw_types, start=1):
        if "_" in t:
            plan.warnings.append(f"MEMTYPE {t} in row {i} was INVALID and needs to be corrected.")
    poslen = 3  # the position number follows 'CR'/'RP' or a 3-letter kind
    for m in asn.rows:  # the first CR or RP row decides, as in calacs
        if m.kind.startswith("CR"):
            plan.crcorr, poslen = True, 2
            break
        if m.kind.startswith("RP"):
            plan.rptcorr, poslen = True, 2
            break
    posids = _posids(asn.rows, poslen)
    positions: dict[int, _Position] = {}
    for index, (m, posid) in enumerate(zip(asn.rows, posids, strict=True)):
        if m.memtype == "PROD-DTH":
            plan.dth_name, plan.dth_row = m.name, index
            continue
        if m.is_product:
            pos = positions.setdefault(posid, _Position(posid, []))
            pos.name, pos.memtype, pos.row = m.name, m.memtype, index
            continue
        if posid < 0:
            plan.warnings.append(f'Member "{m.name}" is not present')
            continue
        raw = path.parent / f"{m.name}_raw.fits"
        if not raw.is_file():
            raise BadInputError(
                f"{path.name}: member {m.name.upper()} is marked present (MEMPRSNT) but "
                f"{raw.name} is not in {path.parent}; add the file or set MEMPRSNT to F"
            )
        mphdr = _read_phdr(raw, f"{path.name} member {m.name.upper()}")
        positions.setdefault(posid, _Position(posid, [])).members.append(
            _Exposure(m.name, m.memtype, raw, mphdr, posid))
    plan.positions = [positions[k] for k in sorted(positions) if positions[k].members]
    if not plan.positions:
        raise BadInputError(f"{path.name}: no exposure of the association is present")
    for pos in plan.positions:
        if not pos.name and any(m.memtype == "EXP-DTH" for m in pos.members):
            pos.name = pos.first.root
    return plan


def _plan_single(path: Path) -> _Plan:
    phdr = _read_phdr(path, "calacs input")
    detector = _detector(phdr, path.name)
    root = _root_of(path)
    exp = _Exposure(root, str(phdr.get("ASN_MTYP", "")).strip().upper(), path, phdr, 1)
    plan = _Plan(input=path, directory=path.parent, single=True, detector=detector,
                 asn_root=root)
    plan.positions = [_Position(1, [exp])]
    return plan


def _decide(plan: _Plan) -> None:
    """Switches, combination and reference names of each position (calacs's rules)."""
    mama = plan.detector == "SBC"
    for number, pos in enumerate(plan.positions):
        first = pos.first
        name = first.raw.name
        sw = {k: _switch(first.phdr, k, name) for k in _SWITCHES}
        sw.update(plan.switch_overrides)
        pos.switches = sw
        if sw["CRCORR"] == "PERFORM" and sw["RPTCORR"] == "PERFORM":
            raise BadInputError(f"{name}: RPTCORR and CRCORR are both PERFORM; set one to OMIT")
        nimages = len(pos.members)
        sci_cr = "PERFORM" if plan.crcorr else "OMIT"
        sci_rpt = "PERFORM" if plan.rptcorr else "OMIT"
        if sw["CRCORR"] == "PERFORM":
            sci_cr = "PERFORM"
            if mama or nimages < 2:
                reason = "detector is MAMA" if mama else "there's only one image"
                plan.warnings.append(f"CRCORR will be omitted because {reason}.")
                sci_cr = "OMIT"
        if sw["RPTCORR"] == "PERFORM":
            sci_rpt = "PERFORM"
            if nimages < 2:
                plan.warnings.append("RPTCORR will be omitted because there's only one image.")
                sci_rpt = "OMIT"
        consistent = ((sci_cr == "PERFORM") == plan.crcorr
                      and (sci_rpt == "PERFORM") == plan.rptcorr)
        if number == 0 and not consistent:  # calacs checks the first exposure only
            raise BadInputError(
                f"{plan.input.name}: CRCORR/RPTCORR of {name} ({sw['CRCORR']}/{sw['RPTCORR']}"
                f", {nimages} exposure(s)) are not consistent with the association's "
                f"MEMTYPEs ({'CR-SPLIT' if plan.crcorr else 'RPT' if plan.rptcorr else 'no'}"
                " combination); calacs refuses this"
            )
        pos.combine = sci_cr == "PERFORM" or sci_rpt == "PERFORM"
        pos.basic_ccd = not mama and any(sw[k] == "PERFORM" for k in _CCD_SWITCHES)
        pos.basic_cte = sw["PCTECORR"] == "PERFORM"
        pos.basic_2d = any(sw[k] == "PERFORM" for k in _2D_SWITCHES) or (
            mama and sw["DQICORR"] == "PERFORM")
        if not (pos.basic_ccd or pos.basic_cte or pos.basic_2d or pos.combine):
            raise BadInputError(f"{name}: no calibration switch is PERFORM; nothing to do")
        if pos.combine and mama:
            raise NotImplementedYetError(
                f"{plan.input.name}: RPTCORR of SBC exposures (ACSSUM) is not available in "
                "the native engine"
            )
        if pos.combine and not pos.name:
            raise BadInputError(
                f"{plan.input.name}: position {pos.posid} combines {nimages} exposures but "
                "the table has no PROD-CRJ/PROD-RPT row naming the product"
            )
        if pos.basic_cte and mama:
            raise BadInputError(f"{name}: PCTECORR = PERFORM, but the SBC has no CTE correction")
        pos.overrides = _reference_names(first.phdr, sw, pos, mama)


def _reference_names(phdr: fits.Header, sw: Mapping[str, str], pos: _Position,
                     mama: bool) -> dict[str, str]:
    """The references calacs takes from a position's first header, keyword -> name."""
    wanted: list[str] = [] if mama else ["CCDTAB"]
    on = {k for k, v in sw.items() if v == "PERFORM"}
    if "DQICORR" in on:
        wanted.append("BPIXTAB")
    if on & {"GLINCORR", "LFLGCORR"}:
        wanted.append("MLINTAB")
    if pos.combine and "CRCORR" in on:
        wanted.append("CRREJTAB")
    for switch, keys in (("ATODCORR", ("ATODTAB",)), ("BIASCORR", ("BIASFILE",)),
                         ("PCTECORR", ("PCTETAB",)), ("DARKCORR", ("DARKFILE",)),
                         ("FLSHCORR", ("FLSHFILE",)), ("FLATCORR", _FLATS),
                         ("SHADCORR", ("SHADFILE",)), ("BLEVCORR", ("OSCNTAB",)),
                         ("PHOTCORR", ("IMPHTTAB",))):
        if switch in on:
            wanted.extend(keys)
    if {"DARKCORR", "PCTECORR"} <= on:
        wanted.append("DRKCFILE")
    return {k: str(phdr[k]).strip() for k in wanted if k in phdr}


def _check_references(plan: _Plan) -> None:
    """Raise naming every reference file that is needed and missing (calacs RefExist),
    or made for another detector (calacs CheckDetector)."""
    missing: list[str] = []
    foreign: list[str] = []

    def check_detector(ref: RefFile) -> None:
        if (ref.exists and ref.keyword in _DETECTOR_IMAGES and ref.detector
                and ref.detector != plan.detector):
            foreign.append(f"{ref.keyword} {ref.name!r} is a {ref.detector} file")

    for pos in plan.positions:
        first = pos.first
        flats_absent = 0
        for key, name in pos.overrides.items():
            ref = inspect_ref(key, name, input_dir=plan.directory)
            if ref.exists:
                check_detector(ref)
                continue
            if not ref_name_given(name):
                if key == "BPIXTAB" and plan.detector != "SBC":
                    continue
                if key in _FLATS:
                    flats_absent += 1
                    continue
            missing.append(_missing(ref))
        if pos.switches.get("FLATCORR") == "PERFORM" and flats_absent == len(
            [k for k in _FLATS if k in pos.overrides]
        ) and flats_absent:
            missing.append("PFLTFILE, DFLTFILE and LFLTFILE are all blank")
        # references ACSCCD and ACSREJ read from each exposure's own header
        for exp in pos.members:
            keys = []
            if pos.basic_ccd and pos.switches["BIASCORR"] == "PERFORM":
                keys.append("SATUFILE")
            if pos.basic_ccd and _switch(exp.phdr, "SINKCORR", exp.raw.name) == "PERFORM":
                keys.append("SNKCFILE")
            if exp is first and pos.combine and "CRREJTAB" not in pos.overrides:
                keys.append("CRREJTAB")
            for key in keys:
                ref = inspect_ref(key, str(exp.phdr.get(key, "")), input_dir=plan.directory)
                check_detector(ref)
                if not ref.exists:
                    missing.append(_missing(ref) + f" (needed by {exp.raw.name})")
    if missing:
        unique = list(dict.fromkeys(missing))
        raise ReferenceFileError(
            f"{plan.input.name}: missing reference file(s): {'; '.join(unique)}"
        )
    if foreign:
        unique = list(dict.fromkeys(foreign))
        raise ReferenceFileError(
            f"{plan.input.name}: reference file(s) for another detector than "
            f"{plan.detector}: {'; '.join(unique)}"
        )


def _missing(ref: RefFile) -> str:
    where = f" ({ref.path})" if ref.path is not None else ""
    return f"{ref.keyword} {ref.name or 'N/A'!r} not found or can't open{where}"


def _outputs(plan: _Plan) -> list[Path]:
    """FITS files the run would write (calacs refuses to overwrite them)."""
    out = []
    for pos in plan.positions:
        for exp in pos.members:
            for suffix in ("_blv_tmp.fits", "_flt.fits"):
                out.append(exp.file(suffix))
            if pos.basic_cte:
                out += [exp.file("_blc_tmp.fits"), exp.file("_flc.fits")]
        if pos.combine:
            out += [pos.file("_crj_tmp.fits"), pos.file("_crj.fits"), pos.file("_spt.fits")]
            if pos.basic_cte:
                out += [pos.file("_crc_tmp.fits"), pos.file("_crc.fits")]
    if plan.dth_name:
        out.append(plan.directory / f"{plan.dth_name}_spt.fits")
    if plan.detector == "SBC":
        out = [p for p in out if not p.name.endswith("_blv_tmp.fits")]
    return out


def planned_outputs(input_path: str | os.PathLike[str]) -> list[Path]:
    """The FITS files :func:`run_native` would write for `input_path` (existing or not)."""
    return _outputs(_make_plan(Path(input_path), check_existing=False))


def _make_plan(path: Path, switch_overrides: Mapping[str, str] | None = None, *,
               check_existing: bool = True, overwrite: bool = False) -> _Plan:
    name = path.name.lower()
    if name.endswith("_asn.fits"):
        plan = _plan_asn(path)
    elif name.endswith("_raw.fits"):
        plan = _plan_single(path)
    else:
        raise BadInputError(f"{path.name}: calacs takes a _raw.fits or _asn.fits file")
    plan.switch_overrides = dict(switch_overrides or {})
    _decide(plan)
    if not check_existing:
        return plan
    _check_references(plan)
    existing = [p for p in _outputs(plan) if p.exists()]
    if existing and overwrite:
        for old in existing:
            old.unlink()
        existing = []
    if existing:
        raise BadInputError(
            f"output file(s) {', '.join(p.name for p in existing)} already exist in "
            f"{plan.directory}; "
            "remove them first (calacs does not overwrite)"
        )
    return plan


# =========================================================================== the run
@dataclass
class _Run:
    """Mutable state of one run: trailers, what was written, the result."""

    plan: _Plan
    temp_files: bool
    verbose: bool
    echo: bool
    nthreads: int | None
    cte: CteFunction | None
    after_ccd: Callable[[Path], None] | None = None
    result: NativeResult = field(default_factory=NativeResult)
    written: list[Path] = field(default_factory=list)
    temporaries: dict[Path, tuple[str, tuple[Path, ...]]] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)
    #: files the next task reads, as :func:`write_exposure_kept` gave them back
    kept: dict[Path, Exposure] = field(default_factory=dict)
    retired: dict[Path, Future[Intermediate]] = field(default_factory=dict)
    hasher: ThreadPoolExecutor | None = None
    writer: ThreadPoolExecutor | None = None
    pending: Future[Path] | None = None
    preface: Trailer | None = None
    sections: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def trailer(self) -> Trailer:
        return Trailer(version=ENGINE, echo=self.echo)

    def keep(self, key: tuple[str, str], trl: Trailer | list[str]) -> None:
        lines = trl.lines if isinstance(trl, Trailer) else list(trl)
        self.sections.setdefault(key, []).extend(lines)

    def section(self, *keys: tuple[str, str]) -> list[str]:
        return [line for k in keys for line in self.sections.get(k, [])]

    def product(self, path: Path, derived_from: Sequence[Path]) -> None:
        if path not in self.result.products:
            self.result.products.append(path)
        self.result.derivations.append((path, tuple(derived_from)))

    def temporary(self, path: Path, role: str, derived_from: Sequence[Path]) -> None:
        self.written.append(path)
        self.temporaries[path] = (role, tuple(derived_from))

    def retire(self, *paths: Path) -> None:
        """Checksum temporary files nothing will change any more (then delete them).

        The work is done in a background thread (hashlib releases the GIL), so it
        overlaps with the next calibration step.  A file hashed as it was written
        (:attr:`digests`) is not read again.
        """
        for path in paths:
            if path in self.temporaries and path not in self.retired:
                if self.hasher is None:
                    self.hasher = ThreadPoolExecutor(1, thread_name_prefix="acsprov-sha256")
                role, derived = self.temporaries[path]
                self.retired[path] = self.hasher.submit(
                    _checksum, path, role, derived, delete=not self.temp_files,
                    digest=self.digests.get(path))

    def flush(self) -> None:
        """Wait for the product being written in the background; raise its error."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def settle(self) -> None:
        """Wait for every background write and checksum; never raises."""
        for pool in (self.writer, self.hasher):
            if pool is not None:
                pool.shutdown(wait=True)
        self.writer = self.hasher = None

    def reference(self, keyword: str, path: Path | str | None) -> None:
        if path:
            self.result.references.setdefault(keyword.upper(), Path(path))


def _record_refs(run: _Run, exposure: Exposure, task: str, *, cte_dark: bool = False) -> None:
    """Note the reference files a task read (from its step plans)."""
    plans = exposure.extra.get(task, {}).get("plans", {})
    for plan in plans.values():
        if plan.state.omitted:
            continue
        for key, ref in plan.refs.items():
            if ref.exists and ref.path is not None:
                run.reference("DRKCFILE" if cte_dark and key == "DARKFILE" else key, ref.path)


def _write_final(run: _Run, exposure: Exposure, path: Path, derived_from: Sequence[Path]) -> None:
    """Write a product in the background while the next step runs (one at a time)."""
    run.written.append(path)
    run.flush()  # bounds memory: at most one product waits to be written
    if run.writer is None:
        run.writer = ThreadPoolExecutor(1, thread_name_prefix="acsprov-write")
    # the provenance stamp is a context variable: write in this thread's context
    context = contextvars.copy_context()
    held = [exposure]  # the product's arrays are let go once written, before the checksum
    del exposure

    def write_and_hash() -> Path:
        digest = BackgroundSha256()  # for provenance: hashed as written, not read back
        try:
            write_exposure(held.pop(), path, stamp=True, digest=digest)
        finally:
            checksum = digest.hexdigest()  # (and its thread ends, even after an error)
        run.result.checksums[path] = checksum
        return path

    run.pending = run.writer.submit(context.run, write_and_hash)
    run.product(path, derived_from)


def _copy_fits(src: Path, dst: Path, *, stamp: bool) -> None:
    """calacs's CopyFFile: copy a FITS file and set FILENAME in the copy."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        with fits.open(tmp, mode="update") as hdul:
            hdul[0].header["FILENAME"] = dst.name
            if stamp:
                apply_stamp(hdul[0].header)


def _ccd_stage(run: _Run, pos: _Position, exp: _Exposure) -> None:
    """ACSCCD (or a copy of the raw file) into the _blv_tmp, then ACSCTE."""
    plan = run.plan
    blv = exp.file("_blv_tmp.fits")
    sw = pos.switches
    if run.verbose:
        first = ([f"CALACS: processing posid = {pos.posid}",
                  "CALACS: Got reference file information"] if exp is pos.first else [])
        run.keep((exp.root, "ccd"), [*first, "CALACS: Processing switches set..."])
    if pos.basic_ccd:
        trl = run.trailer()
        # no name holds the raw exposure: ACSCCD works in place on its arrays
        product = run_acsccd(read_exposure(exp.raw), trailer=trl,
                             requested={k: sw[k] for k in _CCD_SWITCHES},
                             overrides=pos.overrides, input_dir=plan.directory,
                             output_name=blv.name, nthreads=run.nthreads,
                             overwrite_input=True)
        run.keep((exp.root, "ccd"), trl)
        _record_refs(run, product, "acsccd")
        run.temporary(blv, "blv_tmp", (exp.raw,))
        if pos.combine or run.after_ccd is not None:  # ACSREJ or the hook changes the file
            write_exposure(product, blv)
        else:  # hashed for provenance as written, on another core, not read again
            digest = BackgroundSha256()
            try:
                if pos.basic_2d and not pos.basic_cte:  # ACS2D goes on from memory
                    run.kept[blv] = write_exposure_kept(product, blv, digest=digest)
                else:
                    write_exposure(product, blv, digest=digest)
            finally:
                checksum = digest.hexdigest()  # (and its thread ends, even after an error)
            run.digests[blv] = checksum
        del product
    else:
        run.temporary(blv, "blv_tmp", (exp.raw,))
        _copy_fits(exp.raw, blv, stamp=False)
    if run.after_ccd is not None:
        run.after_ccd(blv)
    if pos.basic_cte:
        blc = exp.file("_blc_tmp.fits")
        cte = run.cte or _default_cte()
        run.temporary(blc, "blc_tmp", (blv,))
        info = cte(blv, blc, nthreads=run.nthreads, progress=None)  # a bar on a terminal only
        lines = list(info.get("trailer", []) or [])
        run.keep((exp.root, "cte"), lines)
        if run.echo:
            for line in lines:
                _log.info(line)
        for key, ref in dict(info.get("references", {}) or {}).items():
            run.reference(key, ref.get("path") if isinstance(ref, Mapping) else ref)


def _default_cte() -> CteFunction:
    try:
        from acsprov.calib.acscte import run_acscte
    except ImportError as err:
        raise NotImplementedYetError(
            f"PCTECORR=PERFORM needs ACSCTE, which cannot be loaded here ({err}); "
            "set PCTECORR to OMIT"
        ) from err
    return run_acscte


def _twod_stage(run: _Run, pos: _Position, src: Path, dst: Path, key: tuple[str, str],
                derived_from: Sequence[Path], *, cte_dark: bool) -> None:
    """ACS2D from a temporary file into a product (or a copy without 2-D steps)."""
    sw = pos.switches
    mama = run.plan.detector == "SBC"
    if not pos.basic_2d:
        run.written.append(dst)
        _copy_fits(src, dst, stamp=True)
        run.retire(src)
        run.product(dst, derived_from)
        return
    requested = {k: sw[k] for k in _2D_SWITCHES}
    requested["DQICORR"] = sw["DQICORR"] if mama or sw["DQICORR"] != "PERFORM" else "OMIT"
    overrides = dict(pos.overrides)
    if cte_dark and "DRKCFILE" in overrides:
        overrides["DARKFILE"] = overrides["DRKCFILE"]
    trl = run.trailer()
    # no name holds the input: ACS2D works in place on its arrays
    product = run_acs2d(_read_last_time(run, src), trailer=trl, requested=requested,
                        overrides=overrides, input_dir=run.plan.directory,
                        output_name=dst.name, nthreads=run.nthreads, overwrite_input=True)
    run.keep(key, trl)
    _record_refs(run, product, "acs2d", cte_dark=cte_dark)
    _write_final(run, product, dst, derived_from)


def _read_last_time(run: _Run, src: Path) -> Exposure:
    """Read a file nothing reads or changes afterwards (or take it as it was written,
    :attr:`_Run.kept`); a temporary is then hashed (and deleted) in the background
    while the step that read it runs."""
    exposure = run.kept.pop(src, None) or read_exposure(src)
    run.retire(src)
    return exposure


def _reject(run: _Run, pos: _Position, inputs: list[Path], output: Path, key: str) -> dict:
    """ACSREJ on the members' temporaries, with its trailer section and the _spt."""
    from acsprov.calib.acsrej import run_acsrej

    plan = run.plan
    mtype = pos.memtype
    if plan.input.name[:9] == output.name[:9]:  # a product named like the table itself
        mtype = next((m.memtype for m in plan.rows if m.memtype == "PROD-DTH"), "")
    trl = run.trailer()
    if run.verbose:
        trl.message(f"CALACS: Now process position {pos.posid} from product 0")
    trl.begin("ACSREJ")
    trl.timestamp("ACSREJ version started")
    trl.message("\n")
    trl.switch("CRCORR", "PERFORM")
    run.temporary(output, key, tuple(inputs))
    crrejtab = pos.overrides.get("CRREJTAB")
    table = None
    if crrejtab:
        table = inspect_ref("CRREJTAB", crrejtab, input_dir=plan.directory).path
    run.flush()  # the product being written lets go of its arrays before ACSREJ reads
    # ACS2D goes on from the product as written, hashed for provenance as written
    keep = pos.basic_2d
    info = run_acsrej(inputs, output, crrejtab=table, mtype=mtype, nthreads=run.nthreads,
                      keep=keep)
    if keep:
        run.kept[output] = info.pop("product")
        run.digests[output] = info.pop("sha256")
    name = crrejtab or str(pos.first.phdr.get("CRREJTAB", "")).strip()
    trl.switch("SHADCORR", pos.switches.get("SHADCORR", "OMIT"))
    trl.message(f"CRREJTAB {name}\n")
    for line in info.get("messages", []):
        trl.message(line)
    if info.get("crrejtab"):
        run.reference("CRREJTAB", info["crrejtab"])
    spt = _product_spt(run, inputs, output, trl, mtype=mtype.lower())
    if spt is not None:
        trl.message(f"Created output SPT rootname {spt.name}...")
    trl.switch("CRCORR", "COMPLETE")
    trl.message("\n")
    trl.end("ACSREJ")
    trl.timestamp("ACSREJ complete")
    run.keep((pos.name, key), trl)
    return info


def _spt_of(path: Path) -> Path:
    """calacs's SPT name of a data file: ``<root>_spt.fits`` for known suffixes."""
    name = path.name
    for suffix in ("_blv_tmp", "_crj_tmp", "_flt", "_crj", "_dth", "_sfl"):
        pos = name.find(suffix)
        if pos >= 0:
            return path.with_name(name[:pos] + "_spt.fits")
    stem = name[:-5] if name.endswith(".fits") else name
    return path.with_name(stem + "_spt.fits")


def _product_spt(run: _Run, inputs: Sequence[Path], output: Path, trl: Trailer, *,
                 mtype: str) -> Path | None:
    """The product's ``_spt`` file: the first input SPT's primary header and all UDLs."""
    target = _spt_of(output)
    sources = []
    for path in inputs:
        spt = _spt_of(path)
        if spt.is_file():
            sources.append(spt)
        else:
            trl.warn(f'Can\'t find input file "{spt.name}"')
    if not sources or target.exists():
        return None
    root = target.name[: -len("_spt.fits")]
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    with fits.open(sources[0], memmap=False) as first:
        primary = fits.PrimaryHDU(header=first[0].header.copy())
    primary.header["FILENAME"] = target.name
    primary.header["ASN_MTYP"] = (mtype, "Role of the Exposure in the Association")
    primary.header["ROOTNAME"] = root.upper()
    primary.header["OBSERVTN"] = root.upper()[6:9]
    primary.header["NEXTEND"] = len(inputs)
    apply_stamp(primary.header)
    extver = 0
    for src in sources:
        with fits.open(src, memmap=False) as hdul:
            for hdu in hdul[1:]:
                if hdu.name != "UDL":
                    continue
                extver += 1
                data = None if hdu.data is None else np.array(hdu.data, dtype=np.int16)
                new = fits.ImageHDU(data, hdu.header.copy(), name="UDL")
                new.ver = extver
                hdus.append(new)
    run.written.append(target)
    with atomic_path(target) as tmp:
        fits.HDUList([primary, *hdus]).writeto(tmp, overwrite=True, output_verify="silentfix")
        set_empty_primary_bitpix(tmp, 16)  # as calacs writes it
    run.product(target, tuple(sources))
    return target


def _combine(run: _Run, pos: _Position) -> None:
    """ACSREJ -> _crj_tmp -> ACS2D -> _crj (and the same for the CTE-corrected files)."""
    blvs = [m.file("_blv_tmp.fits") for m in pos.members]
    crj_tmp, crj = pos.file("_crj_tmp.fits"), pos.file("_crj.fits")
    _reject(run, pos, blvs, crj_tmp, "crj_tmp")
    _twod_stage(run, pos, crj_tmp, crj, (pos.name, "crj"), (crj_tmp,), cte_dark=False)
    if pos.basic_cte:
        blcs = [m.file("_blc_tmp.fits") for m in pos.members]
        crc_tmp, crc = pos.file("_crc_tmp.fits"), pos.file("_crc.fits")
        _reject(run, pos, blcs, crc_tmp, "crc_tmp")
        _twod_stage(run, pos, crc_tmp, crc, (pos.name, "crc"), (crc_tmp,), cte_dark=True)


def _finish_member(run: _Run, pos: _Position, exp: _Exposure) -> None:
    """ACS2D of one exposure: the _flt from the _blv_tmp, the _flc from the _blc_tmp."""
    mama = run.plan.detector == "SBC"
    src = exp.raw if mama else exp.file("_blv_tmp.fits")
    rejected = (pos.file("_crj_tmp.fits"),) if pos.combine else ()
    _twod_stage(run, pos, src, exp.file("_flt.fits"), (exp.root, "flt"),
                (src, *rejected), cte_dark=False)
    if pos.basic_cte:
        blc = exp.file("_blc_tmp.fits")
        rejected = (pos.file("_crc_tmp.fits"),) if pos.combine else ()
        _twod_stage(run, pos, blc, exp.file("_flc.fits"), (exp.root, "flc"),
                    (blc, *rejected), cte_dark=True)


def _checksum(path: Path, role: str, derived: tuple[Path, ...], *, delete: bool,
              digest: str | None = None) -> Intermediate:
    """The provenance record of a temporary file: its sha256 (`digest`, if it was hashed
    as it was written), and whether it was deleted."""
    digest = digest or sha256sum(path)
    if delete:
        path.unlink()
    return Intermediate(path, digest, role, derived, deleted=not path.exists())


def _release_temporaries(run: _Run) -> None:
    """Checksum (and delete) every temporary file, recorded in the order they were made."""
    run.retire(*run.temporaries)
    run.settle()
    run.result.intermediates = [run.retired[p].result() for p in run.temporaries]


# --------------------------------------------------------------------------- trailers
def _preface(run: _Run) -> Trailer:
    plan = run.plan
    trl = run.trailer()
    trl.begin("CALACS")
    trl.timestamp("CALACS started")
    trl.message("\n")
    trl.filename("input", plan.input.name)
    if plan.single:
        trl.message(f"Processing SINGLE image {plan.input.name}...")
        trl.message("LoadAsn:  Processing SINGLE exposure")
    else:
        trl.message("Processing FULL ASN table...")
        trl.message("LoadAsn:  Processing FULL Association")
    for text in plan.warnings:
        if text.startswith("MEMTYPE"):
            trl.warn(text)
    trl.message("")
    nmembers = len(plan.rows) - sum(1 for m in plan.rows if not m.present and not m.is_product)
    nsub = len(plan.positions)
    trl.message(f"NUMBER of MEMBERS in TABLE: {max(nmembers, 1)}  PRODUCTS: 1  "
                f"SUB-PRODUCTS: {nsub}")
    if plan.single:
        trl.message(f"Exposure-- Processing SINGLE Exposure {plan.input.name}")
    else:
        dth = plan.dth_name
        trl.message(f"Product-- Member   1: {dth}  Product: {1 if dth else 0:2d}  "
                    f"Type: {'prod-dth' if dth else ''}")
        for j, pos in enumerate(plan.positions, start=1):
            trl.message(f"Sub-Product-- Member {j:3d}: {pos.name}  Posn: {pos.posid:2d}  "
                        f"Type: {(pos.memtype or pos.first.memtype).lower()}")
            for k, exp in enumerate(pos.members, start=1):
                trl.message(f"Exposure-- Member {k:3d}: {exp.root}  Type: {exp.memtype.lower()}")
    trl.message("")
    for text in plan.warnings:
        if not text.startswith("MEMTYPE"):
            trl.warn(text)
    if run.verbose:
        det = {"WFC": 1, "HRC": 2, "SBC": 3}[plan.detector]
        trl.message(f"CALACS: Detector ACS, type {det}")
        if plan.detector != "SBC":
            trl.message("CALACS: processing a CCD product\nCALACS: processing CCD product 0")
        else:
            trl.message("Starting to process MAMA data now...")
    return trl


def _render(lines: Sequence[str], time_stamps: bool) -> str:
    if not time_stamps:
        lines = [line for line in lines if not _TIMESTAMP.match(line)]
    return "\n".join(lines) + "\n"


def _closing(run: _Run, plan: _Plan, dth: Trailer | None) -> list[str]:
    trl = run.trailer()
    if dth is not None:
        trl.lines.extend(dth.lines)
    if run.verbose:
        trl.message("CALACS: Finished processing product")
    trl.message("\n")
    trl.end("CALACS")
    trl.timestamp("CALACS completed", plan.exposures[-1].root)
    trl.message(f"CALACS completion for {plan.input.name}")
    return trl.lines


def _write_trailers(run: _Run, time_stamps: bool, dth: Trailer | None) -> None:
    """One trailer per exposure, per combined product and per association."""
    plan = run.plan
    assert run.preface is not None
    preface = run.preface.lines
    texts: dict[Path, tuple[list[str], tuple[Path, ...]]] = {}
    for pos in plan.positions:
        for exp in pos.members:
            texts[exp.file(".tra")] = (preface + run.section(
                (exp.root, "ccd"), (exp.root, "cte"), (exp.root, "flt"), (exp.root, "flc")),
                (exp.raw,))
        if pos.combine:
            body = [line for exp in pos.members
                    for line in run.section((exp.root, "ccd"), (exp.root, "cte"))]
            texts[pos.file(".tra")] = (preface + body + run.section(
                (pos.name, "crj_tmp"), (pos.name, "crj"), (pos.name, "crc_tmp"),
                (pos.name, "crc")), tuple(e.raw for e in pos.members))
    if plan.single:
        only = plan.exposures[0].file(".tra")
        lines, raws = texts[only]
        texts[only] = (lines + _closing(run, plan, None), raws)
    else:
        body = []
        for pos in plan.positions:
            names = [pos.file(".tra")] if pos.combine else [e.file(".tra") for e in pos.members]
            for name in names:
                body += texts[name][0]
        texts[plan.directory / f"{plan.asn_root}.tra"] = (
            body + _closing(run, plan, dth), (plan.input,))
    for path, (lines, derived) in texts.items():
        run.written.append(path)
        with atomic_path(path) as tmp:
            tmp.write_text(_render(lines, time_stamps))
        run.product(path, derived)


# --------------------------------------------------------------------------- asn, DTH
def _dither(run: _Run) -> Trailer:
    """calacs's DTH step: the PROD-DTH _spt, or the warning that there is no such row."""
    plan = run.plan
    trl = run.trailer()
    if run.verbose:
        trl.message("CALACS: Building DTH products")
    if not plan.dth_name:
        trl.warn("No DTH product name specified. No product created.")
        return trl
    trl.begin("ACSDTH")
    trl.timestamp("ACSDTH started")
    trl.message("The task DrizzlePac needs to be run in order to generate\n"
                "a geometrically corrected, drizzle-combined product.\n"
                "See https://www.stsci.edu/scientific-community/software/drizzlepac "
                "for more details.")
    inputs = []
    for pos in plan.positions:
        if pos.combine:
            inputs.append(pos.file("_crj.fits"))
        else:
            inputs += [m.file("_flt.fits") for m in pos.members]
    spt = _product_spt(run, inputs, plan.directory / f"{plan.dth_name}_dth.fits", trl,
                       mtype="PROD-DTH")
    if spt is not None:
        trl.message(f"Created output SPT rootname {spt.name}...")
    trl.end("ACSDTH")
    return trl


def _rewrite_asn(run: _Run) -> None:
    """Set MEMPRSNT of the products made and ASN_PROD = T, as calacs does (atomically)."""
    plan = run.plan
    rows = [p.row for p in plan.positions if p.combine and p.row is not None]
    if plan.dth_name and plan.dth_row is not None:
        rows.append(plan.dth_row)
    if not rows:
        return
    path = plan.input
    run.written.append(path)
    with fits.open(path, memmap=False) as hdul, atomic_path(path) as tmp:
        for row in rows:
            hdul[1].data["MEMPRSNT"][row] = True
        hdul[0].header["ASN_PROD"] = True
        apply_stamp(hdul[0].header)
        hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
    made = [p.file("_crj.fits") for p in plan.positions if p.combine]
    run.product(path, (path, *made))


# =========================================================================== entry point
def run_native(
    input_path: str | os.PathLike[str],
    *,
    temp_files: bool = False,
    verbose: bool = False,
    quiet: bool = False,
    time_stamps: bool = False,
    nthreads: int | None = None,
    single_core: bool = False,
    cte: CteFunction | None = None,
    switches: Mapping[str, str] | None = None,
    after_ccd: Callable[[Path], None] | None = None,
    overwrite: bool = False,
) -> NativeResult:
    """Calibrate a ``_raw.fits`` or ``_asn.fits`` file as ``calacs.e`` does.

    Products are written beside the input, with calacs's names: ``<root>_flt.fits``
    (and ``_flc`` with PCTECORR=PERFORM) for every exposure, ``<product>_crj.fits``
    (``_crc``) and ``<product>_spt.fits`` for CR-SPLIT and repeated exposures, ``.tra``
    trailers for every exposure, product and association; the association table is
    rewritten when a product was made.  Reference names (``jref$...``) are resolved
    with the ``jref`` environment variable, relative names beside the input.

    Parameters
    ----------
    input_path : path-like
        A ``_raw.fits`` or ``_asn.fits`` file.
    temp_files : bool
        Keep the ``_blv_tmp``, ``_blc_tmp``, ``_crj_tmp`` and ``_crc_tmp`` files
        (calacs ``-s``).
    verbose : bool
        Add calacs's ``-v`` messages to the trailers and log every trailer line
        (logger ``acsprov.calib``, level INFO).
    quiet : bool
        Log nothing (calacs ``-q``); the trailers are the same.
    time_stamps : bool
        Keep the time-stamp lines in the trailers (calacs ``-t``).
    nthreads : int, optional
        Threads for ACSCTE (default: all).
    single_core : bool
        Use one thread (calacs ``-1``).
    cte : callable, optional
        ACSCTE to use (default :func:`acsprov.calib.acscte.run_acscte`); called as
        ``cte(blv_tmp, blc_tmp, nthreads=..., progress=False)``, see
        :data:`CteFunction`.
    switches : mapping, optional
        Switch values used instead of the raw headers' (``{"PCTECORR": "PERFORM"}``
        is what ``acs_destripe_plus`` does for subarrays).
    after_ccd : callable, optional
        Called with each ``_blv_tmp`` path once ACSCCD wrote it, before ACSCTE and
        ACS2D read it (``acs_destripe_plus`` destripes it there).
    overwrite : bool
        Replace existing products instead of refusing (what a re-run of a recorded
        action needs; calacs itself refuses).

    Returns
    -------
    NativeResult

    Raises
    ------
    BadInputError
        For an input that is not a readable ACS raw file or association, a member
        marked present whose raw file is missing, switches calacs refuses
        (CRCORR and RPTCORR both PERFORM, or inconsistent with the table's
        MEMTYPEs), nothing to do, or products that already exist.  Nothing is
        written.
    ReferenceFileError
        For missing reference files (all are named; nothing is written) or reference
        files that do not fit the data.
    NotImplementedYetError
        For what the native engine does not do (ACSSUM for SBC repeats,
        coronagraphic flats, binned shading files).

    Notes
    -----
    Any failure after the checks removes the files the run had written, so that no
    partial products are left; the input files are never changed before the run
    has succeeded (only the temporary files are updated by ACSREJ).

    Examples
    --------
    >>> result = run_native("j8is01020_asn.fits")          # doctest: +SKIP
    >>> [p.name for p in result.products if p.name.endswith("_crj.fits")]  # doctest: +SKIP
    ['j8is01021_crj.fits']
    """
    started = time.perf_counter()
    path = Path(input_path)
    if not path.is_file():
        raise BadInputError(f"Input file not found: {path}")
    plan = _make_plan(path, switches, overwrite=overwrite)
    if any(p.basic_cte for p in plan.positions):
        # the CTE correction's minutes hide what fresh pages cost; the heap's
        # high-water mark would add about 120 MB to the peak of a pair of frames
        map_large_arrays()
        if cte is None:
            cte = _default_cte()
    run = _Run(plan, temp_files, verbose, echo=verbose and not quiet,
               nthreads=1 if single_core else nthreads, cte=cte)
    run.after_ccd = after_ccd
    run.result.inputs = [plan.input] + ([] if plan.single else [e.raw for e in plan.exposures])
    try:
        _calibrate(run, time_stamps)
    except BaseException:
        run.settle()
        _undo(run)
        raise
    _log.debug("native calacs on %s: %.2f s", path.name, time.perf_counter() - started)
    return run.result


def _calibrate(run: _Run, time_stamps: bool) -> None:
    """Every stage of every position, then the trailers and the association table."""
    plan = run.plan
    run.preface = _preface(run)
    for pos in plan.positions:
        if "CCDTAB" in pos.overrides:
            ccdtab = inspect_ref("CCDTAB", pos.overrides["CCDTAB"], input_dir=plan.directory)
            run.reference("CCDTAB", ccdtab.path if ccdtab.exists else None)
        if plan.detector != "SBC":
            for exp in pos.members:
                _ccd_stage(run, pos, exp)
        if pos.combine:
            _combine(run, pos)
        for exp in pos.members:
            _finish_member(run, pos, exp)
    run.flush()
    dth = None if plan.single else _dither(run)
    _write_trailers(run, time_stamps, dth)
    if not plan.single:
        _rewrite_asn(run)
    _release_temporaries(run)


def _undo(run: _Run) -> None:
    """Remove what a failed run wrote (never the input files)."""
    keep = {run.plan.input, *(e.raw for e in run.plan.exposures)}
    for path in reversed(run.written):
        if path in keep:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:  # pragma: no cover - reported, not raised over the original
            _log.warning("could not remove %s after a failed run: %s", path, err)


# --------------------------------------------------------------------------- one exposure, no CTE
@dataclass(frozen=True)
class SingleResult:
    """What :func:`run_single` made.

    Attributes
    ----------
    flt : pathlib.Path
        The ``_flt`` file.
    trailer : pathlib.Path or None
        The ``.tra`` file.
    product : Exposure
        The ``_flt`` in memory.
    references : tuple of RefFile
        Every reference file the steps used (for provenance).
    """

    flt: Path
    trailer: Path | None
    product: Exposure
    references: tuple[RefFile, ...] = ()


def _switch_value(phdr: fits.Header, key: str) -> str:
    value = str(phdr.get(key, "OMIT")).strip().upper()
    return "PERFORM" if value == "PERFORM" else "OMIT"


def _single_root(path: Path) -> str:
    name = path.name
    for suffix in ("_raw.fits", "_raw.fits.gz", ".fits"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def run_single(
    raw_path: str | os.PathLike[str],
    *,
    outdir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, str] | None = None,
    overwrite: bool = False,
    write_trailer: bool = True,
    echo: bool = False,
) -> SingleResult:
    """Run ACSCCD then ACS2D on one raw exposure and write ``_flt`` and ``.tra``.

    This is what ``calacs.e rootname_raw.fits`` does for a single exposure when no
    CTE correction is made (PCTECORR is left as found in the header).  For the SBC
    (MAMA) only ACS2D runs, as in calacs.

    Parameters
    ----------
    raw_path : path-like
        The ``_raw.fits`` file.
    outdir : path-like, optional
        Directory for the products (default: beside the raw file).
    overrides : mapping, optional
        Reference file names to use instead of the header's, by keyword.
    overwrite : bool
        Replace existing products (calacs refuses).
    write_trailer : bool
        Write ``<root>.tra``.
    echo : bool
        Also log trailer messages (logger ``acsprov.calib``).

    Returns
    -------
    SingleResult

    Raises
    ------
    BadInputError
        For an unreadable raw file, invalid keywords, existing products, or nothing to do.
    ReferenceFileError
        For a missing, DUMMY (CCDTAB) or unfitting reference file, or no matching row.
    NotImplementedYetError
        For coronagraphic spot flats (CFLTFILE) and binned shading files.
    """
    raw_path = Path(raw_path)
    outdir = Path(outdir) if outdir is not None else raw_path.parent
    root = _single_root(raw_path)
    flt_path = outdir / f"{root}_flt.fits"
    tra_path = outdir / f"{root}.tra"
    if flt_path.exists() and not overwrite:
        raise BadInputError(f"output {flt_path.name} already exists in {outdir}; "
                            "remove it or pass overwrite=True")
    raw = read_exposure(raw_path)
    keys = ExposureKeys.from_header(raw.phdr, raw_path.name)
    trl = Trailer(version=ENGINE, echo=echo)
    trl.begin("CALACS")
    trl.timestamp("CALACS started")
    trl.message("\n")
    trl.filename("input", raw_path.name)
    trl.message(f"Processing SINGLE image {raw_path.name}...")
    trl.message(f"Exposure-- Processing SINGLE Exposure {raw_path.name}")
    sw = {k: _switch_value(raw.phdr, k) for k in (*_CCD_SWITCHES, *_2D_SWITCHES, "EXPSCORR")}
    mama = keys.detector == "SBC"
    # the MAMA has no ACSCCD: its DQICORR is done by ACS2D
    basic_ccd = not mama and any(sw[k] == "PERFORM" for k in _CCD_SWITCHES)
    basic_2d = any(sw[k] == "PERFORM" for k in (*_2D_SWITCHES, *(("DQICORR",) if mama else ())))
    basic_cte = _switch_value(raw.phdr, "PCTECORR") == "PERFORM"
    if not (basic_ccd or basic_2d or basic_cte):
        trl.warn("No calibration switch was set to PERFORM.")
        raise BadInputError(f"{raw_path.name}: no calibration switch is PERFORM")
    blv_name = f"{root}_blv_tmp.fits"
    input_dir = raw_path.parent
    references: list[RefFile] = []
    raw_phdr = raw.phdr
    if basic_ccd:
        blv = run_acsccd(raw, trailer=trl, requested={k: sw[k] for k in _CCD_SWITCHES},
                         overrides=overrides, input_dir=input_dir, output_name=blv_name,
                         overwrite_input=True)
        del raw  # free the raw arrays before ACS2D
        ccd_plans = blv.extra["acsccd"]["plans"]
        references.extend(r for p in ccd_plans.values() if not p.state.omitted
                          for r in p.refs.values() if r.exists)
    else:
        blv = raw
    req2d = {k: sw[k] for k in _2D_SWITCHES}
    req2d["DQICORR"] = sw["DQICORR"] if mama or sw["DQICORR"] != "PERFORM" else "OMIT"
    if basic_2d:
        # blv is not used again: ACS2D works in place on its arrays
        flt = run_acs2d(blv.evolve(path=raw_path.with_name(blv_name)), trailer=trl,
                        requested=req2d, overrides=overrides, input_dir=input_dir,
                        output_name=flt_path.name, overwrite_input=True)
        twod_plans = flt.extra["acs2d"]["plans"]
        references.extend(r for p in twod_plans.values() if not p.state.omitted
                          for r in p.refs.values() if r.exists)
    else:
        flt = blv.evolve()
        flt.phdr["FILENAME"] = (flt_path.name, "name of file")
    trl.message("Finished MAMA processing..." if mama else "Finished CCD processing...")
    trl.end("CALACS")
    trl.timestamp("CALACS completed", keys.rootname)
    ccdtab = inspect_ref("CCDTAB", str((overrides or {}).get("CCDTAB", raw_phdr.get("CCDTAB", ""))),
                         input_dir=input_dir)
    references.insert(0, ccdtab)
    outdir.mkdir(parents=True, exist_ok=True)
    write_exposure(flt, flt_path)
    tra = None
    if write_trailer:
        tra = trl.write(tra_path)
    seen: dict[str, RefFile] = {}
    for ref in references:
        seen.setdefault(ref.keyword, ref)
    return SingleResult(flt=flt_path, trailer=tra, product=flt, references=tuple(seen.values()))
