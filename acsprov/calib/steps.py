"""The switch and reference-file shell around the calacs steps (no arithmetic here).

calacs decides for each step, from the primary header:

* the step runs only if its switch is ``PERFORM``;
* a header ``COMPLETE`` turns it off, except for DQICORR and PHOTCORR, which may
  run again;
* every reference file it names must exist (an error otherwise), and a reference
  whose PEDIGREE starts with ``DUMMY`` skips the step (switch ``SKIPPED``);
* after the step the switch becomes ``COMPLETE`` and HISTORY records name the
  reference files with their PEDIGREE and DESCRIP.

Each task declares its steps as :class:`Step` tuples beside its code
(:data:`acsprov.calib.acsccd.CCD_STEPS`, :data:`acsprov.calib.acs2d.TWOD_STEPS`);
:func:`plan_steps` applies the rules above and :func:`record_step` writes the header
side.  The task shells also share what calacs reads once per exposure
(:class:`ExposureKeys`, ``getACSKeys``), the CCDTAB check and row, the trailer's
reference lines, and reference images cut to the science array (:func:`cut_ref`).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.calib.fitsio import hstio_float
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import (
    AMPS,
    CcdParams,
    RefFile,
    corner,
    inspect_ref,
    read_ccdtab,
    read_ref_cut,
)
from acsprov.calib.trailer import Trailer
from acsprov.errors import BadInputError, ReferenceFileError

__all__ = [
    "ExposureKeys",
    "State",
    "Step",
    "StepPlan",
    "add_history",
    "ccd_history",
    "ccd_params",
    "check_ccdtab",
    "cut_ref",
    "f32",
    "header_switch",
    "log_refinfo",
    "plan_step",
    "plan_steps",
    "put_ccd_keywords",
    "put_keyword",
    "record_step",
    "ref_history",
    "same_size",
    "sdqflags",
    "update_switch",
]


class State(enum.Enum):
    """Internal state of a step (calacs ``OMIT``, ``PERFORM``, ``DUMMY``, ``IGNORED``)."""

    OMIT = "OMIT"
    PERFORM = "PERFORM"
    DUMMY = "DUMMY"  # a DUMMY reference: header switch becomes SKIPPED
    IGNORED = "IGNORED"  # not done for another reason: header switch becomes SKIPPED

    @property
    def omitted(self) -> bool:
        """True if the step was not even attempted (calacs ``OmitStep``)."""
        return self is State.OMIT

    @property
    def shown(self) -> str:
        """The value calacs prints for this state (``PrSwitch``)."""
        return "SKIPPED" if self in (State.DUMMY, State.IGNORED) else self.value


@dataclass(frozen=True)
class Step:
    """Declaration of one calacs switch.

    Parameters
    ----------
    switch : str
        Header keyword, e.g. ``"BIASCORR"``.
    task : str
        ``"ACSCCD"`` or ``"ACS2D"``.
    reftypes : tuple of str
        Reference keywords the step reads, in calacs order.
    repeatable : bool
        True if a header ``COMPLETE`` does not turn the step off.
    optional : tuple of str
        References that may be blank or ``N/A``.
    dummy_skips : tuple of str or None
        References whose DUMMY pedigree skips the step (default: all `reftypes`).
    any_of : bool
        True if the step runs when any one of its references is usable (FLATCORR).
    """

    switch: str
    task: str
    reftypes: tuple[str, ...] = ()
    repeatable: bool = False
    optional: tuple[str, ...] = ()
    dummy_skips: tuple[str, ...] | None = None
    any_of: bool = False

    @property
    def skipping_refs(self) -> tuple[str, ...]:
        """References whose DUMMY pedigree skips the step."""
        return self.reftypes if self.dummy_skips is None else self.dummy_skips


_VALID = ("PERFORM", "COMPLETE", "SKIPPED", "OMIT")


def header_switch(phdr: fits.Header, keyword: str) -> str:
    """Value of a calibration switch (upper case); ``OMIT`` if absent.

    Raises
    ------
    BadInputError
        If the value is not PERFORM, COMPLETE, SKIPPED or OMIT.
    """
    if keyword not in phdr:
        return "OMIT"
    value = str(phdr[keyword]).strip().upper()
    if value not in _VALID:
        raise BadInputError(f"keyword {keyword} = {phdr[keyword]!r} is invalid; expected one "
                            f"of {', '.join(_VALID)}")
    return value


@dataclass(frozen=True)
class StepPlan:
    """What the shell decided for one step of one exposure."""

    step: Step
    state: State
    refs: Mapping[str, RefFile] = field(default_factory=dict)
    header_value: str = "OMIT"
    missing: tuple[RefFile, ...] = ()
    reason: str = ""

    @property
    def switch(self) -> str:
        """The switch keyword."""
        return self.step.switch

    @property
    def perform(self) -> bool:
        """True if the step is to be applied."""
        return self.state is State.PERFORM

    def usable(self, keyword: str) -> RefFile | None:
        """The reference named by `keyword` if it exists and is not DUMMY."""
        ref = self.refs.get(keyword)
        if ref is None or not ref.exists or ref.dummy:
            return None
        return ref

    def with_state(self, state: State, reason: str = "") -> StepPlan:
        """A copy with another state."""
        return StepPlan(self.step, state, self.refs, self.header_value, self.missing,
                        reason or self.reason)


def plan_step(
    step: Step,
    phdr: fits.Header,
    *,
    input_dir: str | os.PathLike[str] = ".",
    requested: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> StepPlan:
    """Decide whether `step` runs, and find its reference files.

    Parameters
    ----------
    step : Step
        The declaration.
    phdr : astropy.io.fits.Header
        Primary header of the exposure.
    input_dir : path-like
        Directory for reference names without a path.
    requested : str or None
        Switch value passed down by calacs (e.g. ACS2D gets DQICORR=OMIT after
        ACSCCD did it); default: the header value.
    overrides : mapping, optional
        ``{"BIASFILE": "other_bia.fits"}``: names used instead of the header's.

    Returns
    -------
    StepPlan
    """
    value = header_switch(phdr, step.switch)
    asked = (requested or value).upper()
    if asked != "PERFORM":
        return StepPlan(step, State.OMIT, header_value=value, reason=f"{step.switch}={asked}")
    if value == "COMPLETE" and not step.repeatable:
        return StepPlan(step, State.OMIT, header_value=value, reason="already COMPLETE")
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    refs: dict[str, RefFile] = {}
    missing: list[RefFile] = []
    for key in step.reftypes:
        name = overrides.get(key, phdr.get(key, ""))
        ref = inspect_ref(key, str(name), input_dir=input_dir)
        refs[key] = ref
        if not ref.exists and (ref.given or key not in step.optional):
            missing.append(ref)
    state = State.PERFORM
    if step.any_of:
        given = [refs[k] for k in step.reftypes if refs[k].given]
        if not given:
            raise ReferenceFileError(
                f"{step.switch}=PERFORM but {', '.join(step.reftypes[:3])} are all blank"
            )
        if all(r.dummy for r in given if r.exists) and any(r.exists for r in given):
            state = State.DUMMY
    elif any(refs[k].dummy for k in step.skipping_refs if k in refs):
        state = State.DUMMY
    return StepPlan(step, state, refs, value, tuple(missing))


def plan_steps(
    steps: Iterable[Step],
    phdr: fits.Header,
    *,
    input_dir: str | os.PathLike[str] = ".",
    requested: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, StepPlan]:
    """Plan several steps; raise if any reference file that is needed is missing.

    Raises
    ------
    ReferenceFileError
        Naming the first missing file (keyword and name), as calacs reports
        ``CAL_FILE_MISSING`` after checking all steps.
    """
    requested = requested or {}
    plans = {
        s.switch: plan_step(s, phdr, input_dir=input_dir, requested=requested.get(s.switch),
                            overrides=overrides)
        for s in steps
    }
    for plan in plans.values():
        if plan.missing:
            ref = plan.missing[0]
            where = f" ({ref.path})" if ref.path is not None else ""
            raise ReferenceFileError(
                f"{ref.keyword} {ref.name or 'N/A'!r} not found or can't open{where}; "
                f"needed by {plan.switch}=PERFORM"
            )
    return plans


# --------------------------------------------------------------------------- history
def add_history(phdr: fits.Header, text: str) -> None:
    """Append one HISTORY record at the very end of the header, as HSTIO does (astropy's
    ``add_history`` would put it after the last HISTORY record, above newer keywords)."""
    phdr.append(fits.Card("HISTORY", text), bottom=True)


def update_switch(phdr: fits.Header, switch: str, state: State) -> bool:
    """Set the header switch after a step (calacs ``UpdateSwitch``).

    PERFORM becomes COMPLETE; DUMMY and IGNORED become SKIPPED; each adds one
    HISTORY record.  Returns True if reference files should be logged.
    """
    if state is State.PERFORM:
        phdr[switch] = "COMPLETE"
        add_history(phdr, f"{switch} complete ...")
        return True
    if state is State.DUMMY:
        phdr[switch] = "SKIPPED"
        add_history(phdr, f"{switch} skipped due to dummy reference file ...")
        return True
    if state is State.IGNORED:
        phdr[switch] = "SKIPPED"
        add_history(phdr, f"{switch} not performed ...")
        return True
    return False


def ref_history(
    phdr: fits.Header, ref: RefFile, *, table: bool = False, descrip2: str = ""
) -> None:
    """HISTORY records naming a reference file, its PEDIGREE and DESCRIP."""
    kind = "table" if table else "image"
    add_history(phdr, f"  reference {kind} {ref.name}")
    if ref.pedigree:
        add_history(phdr, f"    {ref.pedigree}")
    if ref.descrip:
        add_history(phdr, f"    {ref.descrip}")
    if table and descrip2:
        add_history(phdr, f"    {descrip2}")


def record_step(
    phdr: fits.Header,
    plan: StepPlan,
    *,
    refs: Iterable[str] | None = None,
    table: bool = False,
    descrip2: str = "",
    state: State | None = None,
) -> None:
    """Write the switch value and HISTORY for a step that was not omitted.

    Parameters
    ----------
    phdr : astropy.io.fits.Header
        Primary header to update.
    plan : StepPlan
        The step's plan.
    refs : iterable of str, optional
        Reference keywords to log (default: those given in the plan).
    table : bool
        True if the references are tables (``reference table`` wording).
    descrip2 : str
        DESCRIP of the table row used, for tables.
    state : State, optional
        Final state if it differs from the plan (e.g. IGNORED).
    """
    final = state or plan.state
    if final.omitted:
        return
    if not update_switch(phdr, plan.switch, final):
        return
    keys = list(refs) if refs is not None else [k for k, r in plan.refs.items() if r.given]
    for key in keys:
        ref = plan.refs.get(key)
        if ref is not None and ref.given:
            ref_history(phdr, ref, table=table, descrip2=descrip2)


# --------------------------------------------------------------------- shared by the task shells
def f32(x: float) -> float:
    """`x` rounded to float32 (as calacs holds it), as a Python float."""
    return float(np.float32(x))


@dataclass(frozen=True)
class ExposureKeys:
    """Primary-header values calacs reads once per exposure (``getACSKeys``)."""

    rootname: str
    detector: str
    aperture: str
    obstype: str
    jwrotype: str
    filter1: str
    filter2: str
    exptime: float
    expstart: float
    subarray: bool
    ccdamp: str
    ccdgain: float
    ccdofst: tuple[int, int, int, int]
    flashdur: float
    flashsta: str
    darktime: float
    targname: str
    lrfwave: float
    nimsets: int

    @classmethod
    def from_header(cls, phdr: fits.Header, name: str = "input") -> ExposureKeys:
        """Read and check the keys.

        Raises
        ------
        BadInputError
            For a missing ROOTNAME/DETECTOR/EXPTIME/EXPSTART, an unknown DETECTOR,
            a negative EXPTIME, or a CCDAMP with letters other than ABCD.
        """
        for key in ("ROOTNAME", "DETECTOR", "EXPTIME", "EXPSTART"):
            if key not in phdr:
                raise BadInputError(f"keyword {key} missing from the primary header of {name}")
        det = str(phdr["DETECTOR"]).strip().upper()
        if det not in ("WFC", "HRC", "SBC"):
            raise BadInputError(
                f"DETECTOR = {det!r} in {name} is invalid; expected WFC, HRC or SBC"
            )
        exptime = float(phdr["EXPTIME"])
        if exptime < 0:
            raise BadInputError(f"EXPTIME = {exptime} in {name} is invalid; must be >= 0")
        ccdamp = str(phdr.get("CCDAMP", "")).strip().upper() if det != "SBC" else ""
        if det != "SBC":
            if "CCDAMP" not in phdr:
                raise BadInputError(f"keyword CCDAMP missing from the primary header of {name}")
            if not ccdamp or any(c not in AMPS for c in ccdamp):
                raise BadInputError(f"CCDAMP = {ccdamp!r} in {name} is invalid; must be in 'ABCD'")
        nextend = int(phdr.get("NEXTEND", 3))
        if nextend // 3 < 1:
            raise BadInputError(f"NEXTEND = {nextend} in {name}; must be at least 3")
        return cls(
            rootname=str(phdr["ROOTNAME"]).strip(),
            detector=det,
            aperture=str(phdr.get("APERTURE", "")).strip().upper(),
            obstype=str(phdr.get("OBSTYPE", "")).strip(),
            jwrotype=str(phdr.get("JWROTYPE", "")).strip().upper(),
            filter1=str(phdr.get("FILTER1", "")).strip(),
            filter2=str(phdr.get("FILTER2", "")).strip(),
            exptime=exptime,
            expstart=float(phdr["EXPSTART"]),
            subarray=bool(phdr.get("SUBARRAY", False)),
            ccdamp=ccdamp,
            ccdgain=f32(float(phdr.get("CCDGAIN", 1.0))) if det != "SBC" else 1.0,
            ccdofst=tuple(int(phdr.get(f"CCDOFST{a}", 3)) for a in AMPS),  # type: ignore[arg-type]
            # calacs reads these for the CCDs only (the MAMA keeps 0: no dark time)
            flashdur=f32(float(phdr.get("FLASHDUR", 0.0))) if det != "SBC" else 0.0,
            flashsta=str(phdr.get("FLASHSTA", "")).strip().upper() if det != "SBC" else "",
            darktime=float(phdr.get("DARKTIME", 0.0)) if det != "SBC" else 0.0,
            targname=str(phdr.get("TARGNAME", "")).strip(),
            lrfwave=f32(float(phdr.get("LRFWAVE", -1.0))),
            nimsets=nextend // 3,
        )


def check_ccdtab(phdr: fits.Header, input_dir: Path, overrides: Mapping[str, str]) -> RefFile:
    """The CCDTAB the header (or `overrides`) names; refuses a missing or DUMMY table."""
    name = overrides.get("CCDTAB", phdr.get("CCDTAB", ""))
    ref = inspect_ref("CCDTAB", str(name), input_dir=input_dir)
    if not ref.exists:
        raise ReferenceFileError(f"CCDTAB {ref.name or 'N/A'!r} not found or can't open")
    if ref.dummy:
        raise ReferenceFileError(f"CCDTAB {ref.name!r} is a dummy table (PEDIGREE={ref.pedigree})")
    return ref


def ccd_params(ref: RefFile, keys: ExposureKeys, imset: ImSet) -> CcdParams:
    """The CCDTAB row for `imset`'s chip, the exposure's amps and gain."""
    return read_ccdtab(ref.require(), ccdamp=keys.ccdamp, ccdgain=keys.ccdgain,
                       ccdchip=imset.chip, ccdofst=keys.ccdofst, nx=imset.shape[1])


def log_refinfo(trl: Trailer, label: str, ref: RefFile | None, descrip2: str = "") -> None:
    """Trailer lines naming `ref`, its PEDIGREE and DESCRIP (nothing for None)."""
    if ref is None:
        return
    trl.refinfo(label, ref.name, ref.pedigree, ref.descrip, descrip2)


def cut_ref(
    ref: RefFile, imset: ImSet, *, sci_only: bool = False, parallel: bool = False
) -> tuple[ImSet, tuple[int, int], bool]:
    """Reference imset for `imset`'s chip cut to it, its offset, and FindLine's same_size.

    Only the cut is read from the file (:func:`~acsprov.calib.reffiles.read_ref_cut`),
    on two threads if `parallel`.
    """
    cut, offset, full_shape = read_ref_cut(ref.require(), imset.chip, imset.hdr, imset.shape,
                                           keyword=ref.keyword, name=ref.name,
                                           sci_only=sci_only, parallel=parallel)
    return cut, offset, _same_size(cut.hdr, full_shape, imset)


def same_size(ref_full: ImSet, imset: ImSet) -> bool:
    """FindLine's same_size: the reference starts at the imset's corner and is as wide."""
    return _same_size(ref_full.hdr, ref_full.shape, imset)


def _same_size(ref_hdr: fits.Header, ref_shape: tuple[int, int], imset: ImSet) -> bool:
    return corner(ref_hdr) == corner(imset.hdr) and ref_shape[1] == imset.shape[1]


def sdqflags(imset: ImSet) -> int:
    """The imset's SDQFLAGS (16 bits; all set when absent)."""
    return int(imset.hdr.get("SDQFLAGS", 65535)) & 0xFFFF


def put_keyword(hdr: fits.Header, key: str, value: object) -> None:
    """Set `key` as HSTIO does (cfitsio's ``fits_update_key``): in place when the header
    has it, else as a new card at the very end, after any HISTORY or COMMENT records
    (where astropy's ``hdr[key] = value`` would put it above them).  `value` may be a
    ``(value, comment)`` pair."""
    if key in hdr:
        hdr[key] = value
    else:
        hdr.append((key, *value) if isinstance(value, tuple) else (key, value), bottom=True)


def put_ccd_keywords(phdr: fits.Header, params: CcdParams) -> None:
    """ATODGN* and READNSE* of the primary header from the CCDTAB row."""
    for i, a in enumerate(AMPS):
        put_keyword(phdr, f"ATODGN{a}", hstio_float(params.atodgain[i]))
    for i, a in enumerate(AMPS):
        put_keyword(phdr, f"READNSE{a}", hstio_float(params.readnoise[i]))


def ccd_history(phdr: fits.Header, ref: RefFile, params: CcdParams) -> None:
    """HISTORY records naming the CCDTAB and the row used."""
    add_history(phdr, "CCD parameters table: ")
    ref_history(phdr, ref, table=True, descrip2=params.descrip2)
