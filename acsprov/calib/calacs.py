"""The native calacs tasks ACSCCD and ACS2D, and :func:`run_single` for one exposure.

:func:`run_acsccd` and :func:`run_acs2d` work on in-memory
:class:`~acsprov.calib.fitsio.Exposure` objects, in the order and with the switch
logic of hstcal's ``DoCCD`` and ``Do2D``: the shell (:mod:`.steps`) decides which
steps run and finds their reference files, :mod:`.reffiles` reads and cuts them, and
the arithmetic is in :mod:`.ccd` and :mod:`.twod`.  :func:`run_single` reads a raw
file, runs both, and writes the ``_flt`` and ``.tra`` as calacs does for a single
exposure without CTE correction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

import acsprov
from acsprov.calib import ccd, twod
from acsprov.calib.fitsio import Exposure, hstio_float, read_exposure, write_exposure
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import (
    AMPS,
    CcdParams,
    MamaLinearity,
    OverscanRegion,
    RefFile,
    ShapeMismatchError,
    chip_extver,
    corner,
    cut_reference,
    inspect_ref,
    read_bpixtab,
    read_ccdtab,
    read_imphttab,
    read_mlintab,
    read_oscntab,
    read_ref_imset,
    read_shading,
    reference_offset,
)
from acsprov.calib.steps import (
    CCD_STEPS,
    TWOD_STEPS,
    State,
    StepPlan,
    add_history,
    plan_steps,
    record_step,
    ref_history,
    update_switch,
)
from acsprov.calib.trailer import Trailer
from acsprov.errors import BadInputError, NotImplementedYetError, ReferenceFileError

__all__ = [
    "CAL_VER",
    "ExposureKeys",
    "SingleResult",
    "run_acs2d",
    "run_acsccd",
    "run_native",
    "run_single",
]

#: Value written to CAL_VER (the calacs version whose behaviour is reproduced).
CAL_VER = f"acsprov {acsprov.__version__} (calacs 10.5.0)"
ENGINE = f"{CAL_VER} native"


def _f32(x: float) -> float:
    return float(np.float32(x))


# --------------------------------------------------------------------------- header keys
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
            ccdgain=_f32(float(phdr.get("CCDGAIN", 1.0))) if det != "SBC" else 1.0,
            ccdofst=tuple(int(phdr.get(f"CCDOFST{a}", 3)) for a in AMPS),  # type: ignore[arg-type]
            # calacs reads these for the CCDs only (the MAMA keeps 0: no dark time)
            flashdur=_f32(float(phdr.get("FLASHDUR", 0.0))) if det != "SBC" else 0.0,
            flashsta=str(phdr.get("FLASHSTA", "")).strip().upper() if det != "SBC" else "",
            darktime=float(phdr.get("DARKTIME", 0.0)) if det != "SBC" else 0.0,
            targname=str(phdr.get("TARGNAME", "")).strip(),
            lrfwave=_f32(float(phdr.get("LRFWAVE", -1.0))),
            nimsets=nextend // 3,
        )


def _sdqflags(imset: ImSet) -> int:
    return int(imset.hdr.get("SDQFLAGS", 65535)) & 0xFFFF


def _check_ccdtab(phdr: fits.Header, input_dir: Path, overrides: Mapping[str, str]) -> RefFile:
    name = overrides.get("CCDTAB", phdr.get("CCDTAB", ""))
    ref = inspect_ref("CCDTAB", str(name), input_dir=input_dir)
    if not ref.exists:
        raise ReferenceFileError(f"CCDTAB {ref.name or 'N/A'!r} not found or can't open")
    if ref.dummy:
        raise ReferenceFileError(f"CCDTAB {ref.name!r} is a dummy table (PEDIGREE={ref.pedigree})")
    return ref


def _ccd_params(ref: RefFile, keys: ExposureKeys, imset: ImSet) -> CcdParams:
    return read_ccdtab(ref.require(), ccdamp=keys.ccdamp, ccdgain=keys.ccdgain,
                       ccdchip=imset.chip, ccdofst=keys.ccdofst, nx=imset.shape[1])


def _put_ccd_keywords(phdr: fits.Header, params: CcdParams) -> None:
    for i, a in enumerate(AMPS):
        phdr[f"ATODGN{a}"] = hstio_float(params.atodgain[i])
    for i, a in enumerate(AMPS):
        phdr[f"READNSE{a}"] = hstio_float(params.readnoise[i])


def _ccd_history(phdr: fits.Header, ref: RefFile, params: CcdParams) -> None:
    add_history(phdr, "CCD parameters table: ")
    ref_history(phdr, ref, table=True, descrip2=params.descrip2)


def _log_refinfo(trl: Trailer, label: str, ref: RefFile | None, descrip2: str = "") -> None:
    if ref is None:
        return
    trl.refinfo(label, ref.name, ref.pedigree, ref.descrip, descrip2)


def _cut(
    ref: RefFile, imset: ImSet, *, sci_only: bool = False
) -> tuple[ImSet, tuple[int, int], bool]:
    """Reference imset for `imset`'s chip cut to it, its offset, and FindLine's same_size."""
    path = ref.require()
    full = read_ref_imset(path, imset.chip, keyword=ref.keyword, sci_only=sci_only)
    offset = reference_offset(full.hdr, full.shape, imset.hdr, imset.shape,
                              keyword=ref.keyword, name=ref.name)
    cut = cut_reference(full, imset.hdr, imset.shape, keyword=ref.keyword, name=ref.name)
    return cut, offset, _same_size(full, imset)


def _same_size(ref_full: ImSet, imset: ImSet) -> bool:
    return corner(ref_full.hdr) == corner(imset.hdr) and ref_full.shape[1] == imset.shape[1]


# --------------------------------------------------------------------------- ACSCCD
@dataclass
class _CcdContext:
    keys: ExposureKeys
    phdr: fits.Header
    imsets: list[ImSet]
    params: list[CcdParams]
    overscan: list[OverscanRegion | None]
    plans: dict[str, StepPlan]
    trl: Trailer
    blev: dict[str, float] = field(default_factory=dict)


def run_acsccd(
    exposure: Exposure,
    *,
    trailer: Trailer | None = None,
    requested: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    output_name: str = "",
) -> Exposure:
    """ACSCCD on a raw exposure: the ``_blv_tmp`` product, in memory.

    Parameters
    ----------
    exposure : Exposure
        The raw file (SCI in DN).
    trailer : Trailer, optional
        Receives the step messages.
    requested : mapping, optional
        Switch values passed down by calacs (default: the header's).
    overrides : mapping, optional
        Reference names to use instead of the header's, by keyword.
    input_dir : path-like, optional
        Directory for relative reference names (default: the raw file's).
    output_name : str
        Output name written to FILENAME.

    Returns
    -------
    Exposure
        Calibrated in electrons, trimmed when BLEVCORR was completed.

    Raises
    ------
    BadInputError
        For MAMA data, bad header values, or no switch to perform.
    ReferenceFileError
        For a missing or unusable reference file, or no matching table row.
    """
    trl = trailer if trailer is not None else Trailer(version=ENGINE)
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    name = exposure.path.name if exposure.path else "input"
    keys = ExposureKeys.from_header(exposure.phdr, name)
    if keys.detector == "SBC":
        raise BadInputError(f"{name}: ACSCCD cannot process MAMA (SBC) data")
    if input_dir is None:
        input_dir = exposure.path.parent if exposure.path else Path(".")
    input_dir = Path(input_dir)
    phdr = exposure.phdr.copy()
    trl.begin("ACSCCD")
    trl.timestamp("ACSCCD started")
    trl.filename("input", name)
    trl.filename("output", output_name)
    trl.message(f"APERTURE {keys.aperture}\nFILTER1 {keys.filter1}\nFILTER2 {keys.filter2}\n"
                f"DETECTOR {keys.detector}")
    ccdref = _check_ccdtab(phdr, input_dir, overrides)
    oscn = inspect_ref("OSCNTAB", str(overrides.get("OSCNTAB", phdr.get("OSCNTAB", ""))),
                       input_dir=input_dir)
    if oscn.given and not oscn.exists:
        raise ReferenceFileError(f"OSCNTAB {oscn.name!r} not found or can't open")
    plans = plan_steps(CCD_STEPS, phdr, input_dir=input_dir, requested=requested,
                       overrides=overrides)
    if oscn.dummy:
        plans["BLEVCORR"] = plans["BLEVCORR"].with_state(State.DUMMY, "OSCNTAB is DUMMY")
    if not any(p.perform for p in plans.values()):
        trl.warn("No calibration switch was set to PERFORM,\n"
                 "            or all reference files had PEDIGREE = DUMMY.")
        raise BadInputError(
            f"{name}: no ACSCCD switch is PERFORM, or all their references are DUMMY"
        )
    trl.timestamp("Begin processing", keys.rootname)
    imsets = list(exposure.imsets)
    params = [_ccd_params(ccdref, keys, im) for im in imsets]
    overscans = []
    for im in imsets:
        region = None
        if oscn.exists:
            region = read_oscntab(oscn.path, ccdamp=keys.ccdamp, ccdchip=im.chip, binx=1, biny=1,
                                  nx=im.shape[1], ny=im.shape[0])
        if region is None:
            trl.warn("Could not find appropriate row from OSCNTAB.")
        else:
            trl.message(f"Found trim values of: x({region.trimx[0]},{region.trimx[1]}) "
                        f"y({region.trimy[0]},{region.trimy[1]})")
        overscans.append(region)
    _put_ccd_keywords(phdr, params[0])
    trl.message("")
    _log_refinfo(trl, "CCDTAB", ccdref, params[0].descrip2)
    _ccd_history(phdr, ccdref, params[0])
    ctx = _CcdContext(keys, phdr, imsets, params, overscans, plans, trl)
    _ccd_dqicorr(ctx)
    _ccd_biascorr(ctx)
    for i, im in enumerate(ctx.imsets):
        geom = ccd.amp_geometry(keys.detector, im.chip, params[i], im.hdr, im.shape)
        ctx.imsets[i], _ = ccd.to_electrons(im, geom)
    trimmed, done, driftcorr = _ccd_blevcorr(ctx)
    final, offset = ccd.darktime(keys.darktime, params[0], expstart=keys.expstart,
                                 subarray=keys.subarray, aperture=keys.aperture,
                                 flashdur=keys.flashdur, flashsta=keys.flashsta)
    if not keys.subarray:
        trl.message(f"Full Frame adjusted Darktime: {final:f}")
    elif final != _f32(keys.darktime):
        trl.message(
            f"Supported Subarray adjusted Darktime: {final:f} for aperture: {keys.aperture}"
        )
    trl.message(f"DARKTIME from SCI header: {_f32(keys.darktime):f}  Offset from CCDTAB: "
                f"{offset:f}  Final DARKTIME: {final:f}")
    phdr["DARKTIME"] = hstio_float(final)
    _ccd_full_well(ctx)
    _ccd_noise(ctx)
    _ccd_sinkcorr(ctx)
    phdr["CAL_VER"] = (CAL_VER, "version number and date")
    if output_name:
        phdr["FILENAME"] = (os.path.basename(output_name), "name of file")
    out = []
    for i, im in enumerate(ctx.imsets):
        region = overscans[i]
        if trimmed[i] and region is not None:
            trl.message(f"Writing out image with trimx = {region.trimx[0]},{region.trimx[1]}, "
                        f"trimy = {region.trimy[0]},{region.trimy[1]}\nOutputting chip {im.chip}")
            im, _ = ccd.trim_overscan(im, region)
        else:
            trl.message(f"Writing out FULL image with overscan regions\nOutputting chip {im.chip}")
        out.append(im)
        trl.timestamp("Output written to disk", keys.rootname)
    if "BIASLEVA" in phdr:
        for a in AMPS:
            if ctx.blev.get(a, 0.0) != 0.0:
                phdr[f"BIASLEV{a}"] = (hstio_float(ctx.blev[a]), "mean of amp's bias level")
    else:
        trl.message("  NO bias level keywords found to be updated.\n"
                    "  Reporting values in trailer file only!")
    trl.message("\n")
    trl.end("ACSCCD")
    trl.timestamp("ACSCCD completed", keys.rootname)
    extra = dict(exposure.extra)
    extra["acsccd"] = {"blev": dict(ctx.blev), "done": done, "driftcorr": driftcorr,
                       "plans": plans}
    return Exposure(phdr=phdr, imsets=tuple(out), path=None, extra=extra)


def _ccd_dqicorr(ctx: _CcdContext) -> None:
    plan, trl, keys = ctx.plans["DQICORR"], ctx.trl, ctx.keys
    trl.message("\n")
    trl.switch("DQICORR", plan.state.shown)
    bpix = plan.refs.get("BPIXTAB")
    if not plan.state.omitted:
        _log_refinfo(trl, "DQITAB", bpix)
    if plan.state in (State.PERFORM, State.DUMMY):
        for i, im in enumerate(ctx.imsets):
            rows = None
            if plan.state is State.PERFORM and bpix is not None and bpix.exists:
                rows = read_bpixtab(bpix.require(), ccdamp=keys.ccdamp, ccdgain=keys.ccdgain,
                                    ccdchip=im.chip)
                if len(rows) == 0:
                    trl.warn("No rows from BPIXTAB applied to DQ array.")
                    trl.message("Inserting single-pixel DQ place-holder at (1,1).")
            ctx.imsets[i], _ = ccd.flag_bad_pixels(im, rows, atodsat=ctx.params[i].atodsat)
    trl.switch("DQICORR", "COMPLETE")
    trl.timestamp("DQICORR complete", keys.rootname)
    if plan.state.omitted:
        return
    if bpix is not None and bpix.exists:
        flag = State.DUMMY if bpix.dummy else State.PERFORM
    else:
        flag = State.PERFORM
    if update_switch(ctx.phdr, "DQICORR", flag):
        add_history(ctx.phdr, "  values checked for saturation")
        if bpix is not None and bpix.exists:
            add_history(ctx.phdr, "  DQ array initialized ...")
            ref_history(ctx.phdr, bpix, table=True)


def _ccd_biascorr(ctx: _CcdContext) -> None:
    plan, trl = ctx.plans["BIASCORR"], ctx.trl
    trl.message("\n")
    trl.switch("BIASCORR", plan.state.shown)
    bias = plan.refs.get("BIASFILE")
    if not plan.state.omitted:
        _log_refinfo(trl, "BIASFILE", bias)
    if plan.perform:
        assert bias is not None
        for i, im in enumerate(ctx.imsets):
            cut, (x0, y0), same = _cut(bias, im)
            trl.message(f"Ratio of (1,1) with offset =({x0},{y0})")
            trl.message(f"BIAS image and input are {'the same' if same else 'NOT the same'} size")
            ctx.imsets[i], _ = ccd.subtract_bias(im, cut)
    trl.switch("BIASCORR", "COMPLETE")
    trl.timestamp("BIASCORR complete", ctx.keys.rootname)
    record_step(ctx.phdr, plan, refs=("BIASFILE",))


def _bias_shift_supported(keys: ExposureKeys, region: OverscanRegion | None) -> bool:
    return (
        keys.subarray
        and region is not None
        and region.virtual
        and keys.aperture in ccd.BIAS_SHIFT_APERTURES
    )


def _ccd_blevcorr(ctx: _CcdContext) -> tuple[list[bool], bool, bool]:
    plan, trl, keys = ctx.plans["BLEVCORR"], ctx.trl, ctx.keys
    n = len(ctx.imsets)
    trimmed = [False] * n
    done = False
    driftcorr = False
    trl.message("\n")
    trl.switch("BLEVCORR", plan.state.shown)
    if not plan.state.omitted:
        oscn = plan.refs.get("OSCNTAB")
        _log_refinfo(trl, "OSCNTAB", oscn)
    if plan.perform:
        post_sm4_wfc = keys.detector == "WFC" and keys.expstart >= ccd.SM4MJD
        if post_sm4_wfc and not keys.subarray:
            done, trimmed = _blev_full_frame(ctx)
        elif post_sm4_wfc and _bias_shift_supported(keys, ctx.overscan[0]) and (
            keys.jwrotype == "DS_INT" and keys.ccdgain == 2.0
        ):
            trl.message("This subarray data is supported for the bias shift correction.")
            trl.switch("BLEVCORR", "PERFORM")
            trl.message("Performing bias-shift correction for subarray data.")
            done = ctx.overscan[0] is not None
            (im,), info = ccd.bias_shift([ctx.imsets[0]], subarray_amp=keys.ccdamp)
            ctx.imsets[0] = im
            for a in info["blev"]:
                trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                            f"{info['before'][a]:0.4f} electrons (before correction).")
                trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                            f"{info['after'][a]:0.4f} electrons (after correction).")
                ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
            trimmed[0] = True
            trl.switch("BLEVCORR", "COMPLETE")
        else:
            if post_sm4_wfc:
                if keys.subarray and _bias_shift_supported(keys, ctx.overscan[0]):
                    trl.message("This subarray data is supported for the bias shift correction.")
                trl.message("WFC readout is not a supported subarray or type/gain not set as "
                            "needed for new bias level algorithm for subarray data.")
                trl.message("Data to be processed with original bias level algorithm.")
            for i, im in enumerate(ctx.imsets):
                out, info = ccd.subtract_overscan(
                    im, ctx.overscan[i], ctx.params[i], detector=keys.detector,
                    ccdamp=keys.ccdamp, sdqflags=_sdqflags(im),
                )
                ctx.imsets[i] = out
                done = info["overscan"]
                driftcorr = info["driftcorr"]
                if not info["overscan"]:
                    trl.warn("Overscan region is too small to do BLEVCORR;")
                    trl.message("Default bias level from CCDTAB was subtracted.")
                else:
                    trl.message("Bias level from overscan has been subtracted;\n"
                                f"     mean of bias levels subtracted was "
                                f"{info['meanblev']:.6g} electrons.")
                for a, value in info["blev"].items():
                    if value != 0.0:
                        trl.message(f"     bias level of {value:.6g} electrons was subtracted "
                                    f"for AMP {a}.")
                        ctx.blev[a] = value
                trimmed[i] = True
            trl.switch("BLEVCORR", "COMPLETE")
        trl.timestamp("BLEVCORR complete", keys.rootname)
    if not plan.state.omitted:
        ctx.phdr["BLEVCORR"] = "COMPLETE"
        if done:
            add_history(ctx.phdr, "BLEVCORR complete; bias level from overscan was subtracted.")
        else:
            add_history(ctx.phdr, "BLEVCORR complete, but default bias level was subtracted.")
        if driftcorr:
            add_history(ctx.phdr, "BLEVCORR includes correction for drift along lines.")
        else:
            add_history(ctx.phdr, "BLEVCORR does not include correction for drift along lines.")
        add_history(ctx.phdr, "  Overscan region table: ")
        oscn = plan.refs.get("OSCNTAB")
        if oscn is not None:
            ref_history(ctx.phdr, oscn, table=True)
    return trimmed, done, driftcorr


def _blev_full_frame(ctx: _CcdContext) -> tuple[bool, list[bool]]:
    trl, keys = ctx.trl, ctx.keys
    n = len(ctx.imsets)
    if n != 2 or ctx.overscan[0] is None or ctx.overscan[1] is None:
        trl.message("Overscan missing, no destriping or bias level subtraction possible for "
                    "full frame data.")
        return False, [False] * n
    trl.switch("BLEVCORR", "PERFORM")
    if keys.jwrotype == "DS_INT" and keys.ccdgain == 2.0:
        trl.message("Performing bias-shift and cross talk corrections for full frame data.")
        pair, info = ccd.bias_shift(ctx.imsets)
        for a in AMPS:
            trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                        f"{info['before'][a]:0.4f} electrons (before correction).")
            trl.message(f"Bias shift correcting for bias level in Amp {a} of "
                        f"{info['after'][a]:0.4f} electrons (after correction).")
            ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
        ctx.imsets = [ccd.apply_crosstalk(im)[0] for im in pair]
    else:
        trl.message("WFC readout type/gain not set as needed, no bias shift nor cross talk "
                    "correction done for full frame data.")
    trl.message("Performing stripe removal and bias level subtraction for full frame data.")
    (chip2, chip1), info = ccd.destripe(ctx.imsets[0], ctx.imsets[1])
    ctx.imsets = [chip2, chip1]
    for a in AMPS:
        trl.message(
            f"     bias level of {info['blev'][a]:.6g} electrons was subtracted for AMP {a}."
        )
        ctx.blev[a] = ctx.blev.get(a, 0.0) + info["blev"][a]
    add_history(ctx.phdr, f"DESTRIPE: number of rows fixed per amp: {info['rows_fixed']}")
    add_history(ctx.phdr, f"DESTRIPE: number of rows skipped per amp: {info['rows_skipped']}")
    trl.switch("BLEVCORR", "COMPLETE")
    return True, [True] * n


def _ccd_full_well(ctx: _CcdContext) -> None:
    bias_plan = ctx.plans["BIASCORR"]
    blev_plan = ctx.plans["BLEVCORR"]
    for i, im in enumerate(ctx.imsets):
        if not (bias_plan.perform and blev_plan.perform):
            ctx.trl.warn(f"\nNo Full-well saturation flagging being performed for imset {i + 1}.\n")
            continue
        ctx.trl.message(f"\nFull-well saturation flagging being performed for imset {i + 1}.\n")
        satu = bias_plan.refs["SATUFILE"]
        full = read_ref_imset(satu.require(), im.chip, keyword="SATUFILE")
        same = _same_size(full, im)
        offset = (0, 0)
        if not same:
            sx, sy = corner(im.hdr)
            rx, ry = corner(full.hdr)
            offset = (sx - rx, sy - ry)
            region = ctx.overscan[i]
            tx = sum(region.trimx) if region else 0
            ty = sum(region.trimy) if region else 0
            ny, nx = im.shape
            rny, rnx = full.shape
            if (offset[0] < 0 or offset[1] < 0 or offset[0] + nx - tx > rnx
                    or offset[1] + ny - ty > rny):
                raise ShapeMismatchError(
                    f"SATUFILE {satu.name}: a {rny}x{rnx} image does not cover the science "
                    f"array at offset {offset}"
                )
        kind = "Full-frame" if same else "Subarray"
        ctx.trl.message(f"{kind} full-well saturation image flagging step being performed.")
        ctx.imsets[i], _ = ccd.flag_full_well(im, np.asarray(full.sci, np.float32),
                                              ctx.overscan[i], offset=offset, full_frame=same)
        ctx.trl.message(f"{kind} full-well saturation image flagging step done.")


def _ccd_noise(ctx: _CcdContext) -> None:
    keys = ctx.keys
    for i, im in enumerate(ctx.imsets):
        geom = ccd.amp_geometry(keys.detector, im.chip, ctx.params[i], im.hdr, im.shape)
        ctx.imsets[i], _ = ccd.init_noise(im, geom, bias_exposure=keys.targname.startswith("BIAS"))
    add_history(ctx.phdr, "Uncertainty array initialized.")
    p = ctx.params[0]
    rn = ",".join(f"{v:.5g}" for v in p.readnoise if v > 0)
    gn = ",".join(f"{v:.5g}" for v in p.atodgain if v > 0)
    bl = ",".join(f"{b * g:.5g}" for b, g in zip(p.ccdbias, p.atodgain, strict=True) if b > 0)
    ctx.trl.message(f"\n    Uncertainty array initialized,\n    readnoise ={rn}\n    gain ={gn}\n"
                    f"   default bias levels ={bl}")
    ctx.trl.timestamp("Uncertainty array initialized", keys.rootname)


def _ccd_sinkcorr(ctx: _CcdContext) -> None:
    plan, trl = ctx.plans["SINKCORR"], ctx.trl
    trl.message("\n")
    trl.switch("SINKCORR", plan.state.shown)
    sink = plan.refs.get("SNKCFILE")
    if not plan.state.omitted:
        _log_refinfo(trl, "SNKCFILE", sink)
    if plan.perform:
        assert sink is not None
        path = sink.require()
        for i, im in enumerate(ctx.imsets):
            extver = chip_extver(path, im.chip, keyword="SNKCFILE", sci_only=True)
            cut, (x0, y0), same = _cut(sink, im, sci_only=True)
            trl.message(f"Ratio of (1,1) with offset =({x0},{y0})")
            trl.message(f"SINK image and input are {'the same' if same else 'NOT the same'} size")
            ctx.imsets[i], info = ccd.flag_sinks(im, cut.sci, bottom_up=extver == 1)
            trl.message(f"Sink pixels flagged = {info['n_flagged']}")
        trl.switch("SINKCORR", "COMPLETE")
        trl.timestamp("SINKCORR complete", ctx.keys.rootname)
    record_step(ctx.phdr, plan, refs=("SNKCFILE",))


# --------------------------------------------------------------------------- ACS2D
def _sanity_2d(keys: ExposureKeys, requested: dict[str, str]) -> None:
    if keys.detector != "SBC":
        requested["GLINCORR"] = "OMIT"
        requested["LFLGCORR"] = "OMIT"
    else:
        requested["SHADCORR"] = "OMIT"
        requested["FLSHCORR"] = "OMIT"


def run_acs2d(
    exposure: Exposure,
    *,
    trailer: Trailer | None = None,
    requested: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    output_name: str = "",
) -> Exposure:
    """ACS2D on an overscan-trimmed exposure (a ``_blv_tmp``): the ``_flt``, in memory.

    Parameters are as for :func:`run_acsccd`; `requested` carries the switch values
    calacs passes down (it turns DQICORR off after ACSCCD did it).

    Raises
    ------
    BadInputError
        If a CCD image has BLEVCORR not COMPLETE or still has its overscan, if an
        SBC image lacks GLOBRATE, or if no switch is PERFORM.
    ReferenceFileError
        For a missing or unusable reference file, or no matching table row.
    NotImplementedYetError
        For coronagraphic spot flats (CFLTFILE) and binned shading files.
    """
    trl = trailer if trailer is not None else Trailer(version=ENGINE)
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    name = exposure.path.name if exposure.path else "input"
    keys = ExposureKeys.from_header(exposure.phdr, name)
    mama = keys.detector == "SBC"
    if input_dir is None:
        input_dir = exposure.path.parent if exposure.path else Path(".")
    input_dir = Path(input_dir)
    req = {k.upper(): str(v).upper() for k, v in (requested or {}).items()}
    _sanity_2d(keys, req)
    trl.begin("ACS2D")
    trl.timestamp("ACS2D started")
    trl.filename("input", name)
    trl.filename("output", output_name)
    trl.message(f"APERTURE {keys.aperture}\nFILTER1 {keys.filter1}\nFILTER2 {keys.filter2}\n"
                f"DETECTOR {keys.detector}")
    base_phdr = exposure.phdr
    plans = plan_steps(TWOD_STEPS, base_phdr, input_dir=input_dir, requested=req,
                       overrides=overrides)
    ccdref = None if mama else _check_ccdtab(base_phdr, input_dir, overrides)
    lin = _mama_linearity(plans, keys) if mama else None
    if mama and plans["DQICORR"].perform and not plans["DQICORR"].refs["BPIXTAB"].exists:
        ref = plans["DQICORR"].refs["BPIXTAB"]
        raise ReferenceFileError(f"BPIXTAB {ref.name or 'N/A'!r} not found or can't open; "
                                 "the MAMA needs one for DQICORR=PERFORM")
    if plans["FLSHCORR"].perform:
        flsh = plans["FLSHCORR"].refs["FLSHFILE"].require()
        with fits.open(flsh, memmap=True, lazy_load_hdus=True) as hdul:
            hdr = hdul["SCI", 1].header
            if float(hdr.get("LTV1", 0.0)) != 0 or float(hdr.get("LTV2", 0.0)) != 0:
                raise ShapeMismatchError(
                    f"FLSHFILE {flsh.name} has untrimmed overscans (LTV1/LTV2 != 0)"
                )
    flat_plan = plans["FLATCORR"]
    if flat_plan.perform and flat_plan.refs["CFLTFILE"].given:
        raise NotImplementedYetError("FLATCORR with a coronagraphic spot flat (CFLTFILE) is not "
                                     "available in the native engine")
    if not any(p.perform for p in plans.values()):
        trl.warn("No calibration switch was set to PERFORM,")
        trl.warn("  or all reference files had PEDIGREE = DUMMY.")
        raise BadInputError(
            f"{name}: no ACS2D switch is PERFORM, or all their references are DUMMY"
        )
    trl.timestamp("Begin processing", keys.rootname)
    trl.message(f"Processing {len(exposure.imsets)} IMSETs...")
    states = {k: p.state for k, p in plans.items()}
    out_phdr = base_phdr.copy()
    out_imsets = []
    for im in exposure.imsets:
        phdr = base_phdr.copy()
        trl.message("\n")
        trl.message(f"Imset {im.extver}  Begin {Trailer._now('%H:%M:%S UTC')}")
        im = _do2d(im, phdr, keys, plans, states, ccdref, trl, output_name, lin)
        out_imsets.append(im)
        trl.message(f"Imset {im.extver}  End {Trailer._now('%H:%M:%S UTC')}")
        if im.extver == exposure.imsets[0].extver:
            out_phdr = phdr
    trl.message("\n")
    trl.end("ACS2D")
    trl.timestamp("ACS2D completed", keys.rootname)
    extra = dict(exposure.extra)
    extra["acs2d"] = {"plans": plans}
    return Exposure(phdr=out_phdr, imsets=tuple(out_imsets), path=None, extra=extra)


@dataclass
class _TwoDContext:
    """State of ACS2D for one imset; `states` persists across imsets, as in calacs."""

    im: ImSet
    phdr: fits.Header
    keys: ExposureKeys
    plans: dict[str, StepPlan]
    states: dict[str, State]
    trl: Trailer
    sdq: int

    @property
    def first(self) -> bool:
        return self.im.extver == 1

    def open_step(self, switch: str, labels: tuple[str, ...]) -> StepPlan:
        """Print the switch and (for the first imset) its reference files."""
        plan = self.plans[switch]
        self.trl.message("\n")
        self.trl.switch(switch, self.states[switch].shown)
        if self.first and not self.states[switch].omitted:
            for key in labels:
                ref = plan.refs.get(key)
                if ref is not None and ref.given:
                    _log_refinfo(self.trl, "DQITAB" if key == "BPIXTAB" else key, ref)
        return plan

    def record(self, switch: str, refs: tuple[str, ...], *, table: bool = False) -> None:
        if self.first:
            record_step(self.phdr, self.plans[switch], refs=refs, table=table,
                        state=self.states[switch])


def _do2d(im: ImSet, phdr: fits.Header, keys: ExposureKeys, plans: dict[str, StepPlan],
          states: dict[str, State], ccdref: RefFile | None, trl: Trailer, output_name: str,
          lin: MamaLinearity | None = None) -> ImSet:
    trl.timestamp("Input read into memory", keys.rootname)
    if ccdref is None:  # MAMA: no overscan, gain 1
        params = _MAMA_PARAMS
        if "GLOBRATE" not in im.hdr:
            raise BadInputError(f"keyword GLOBRATE missing from SCI,{im.extver} of the SBC input")
    else:
        if str(phdr.get("BLEVCORR", "")).strip().upper() != "COMPLETE" or (
            float(im.hdr.get("LTV1", 0.0)) > 0 or float(im.hdr.get("LTV2", 0.0)) > 0
        ):
            trl.error("Overscan region not trimmed.  Please perform BLEVCORR.")
            raise BadInputError("ACS2D needs an overscan-trimmed image with BLEVCORR = COMPLETE")
        params = _ccd_params(ccdref, keys, im)
        _put_ccd_keywords(phdr, params)
        trl.message("\n")
        _log_refinfo(trl, "CCDTAB", ccdref, params.descrip2)
        if im.extver == 1:
            _ccd_history(phdr, ccdref, params)
    ctx = _TwoDContext(im, phdr, keys, plans, states, trl, _sdqflags(im))
    _2d_dqicorr(ctx, params)
    _2d_nonlinearity(ctx, lin)
    _2d_electrons_and_noise(ctx, params)
    _2d_darkcorr(ctx)
    _2d_flshcorr(ctx)
    _2d_flatcorr(ctx)
    _2d_shadcorr(ctx)
    _2d_photcorr(ctx)
    ctx.im, _ = twod.image_statistics(ctx.im, ctx.sdq)
    trl.timestamp("Image statistics computed", keys.rootname)
    if ctx.first:
        phdr["CAL_VER"] = (CAL_VER, "version number and date")
        if output_name:
            phdr["FILENAME"] = (os.path.basename(output_name), "name of file")
    if str(phdr.get("EXPSCORR", "")).strip().upper() == "PERFORM":
        update_switch(phdr, "EXPSCORR", State.PERFORM)
    trl.timestamp("Output written to disk", keys.rootname)
    return ctx.im


def _2d_dqicorr(ctx: _TwoDContext, params: CcdParams) -> None:
    plan = ctx.open_step("DQICORR", ("BPIXTAB",))
    state = ctx.states["DQICORR"]
    bpix = plan.refs.get("BPIXTAB")
    if state in (State.PERFORM, State.DUMMY):
        rows = None
        if state is State.PERFORM and bpix is not None and bpix.exists:
            rows = read_bpixtab(bpix.require(), ccdamp=ctx.keys.ccdamp, ccdgain=ctx.keys.ccdgain,
                                ccdchip=ctx.im.chip)
        ctx.im, _ = ccd.flag_bad_pixels(ctx.im, rows, atodsat=params.atodsat,
                                        saturation=ctx.keys.detector != "SBC")
        ctx.trl.switch("DQICORR", "COMPLETE")
    if ctx.first and not state.omitted:
        flag = State.DUMMY if (bpix is not None and bpix.exists and bpix.dummy) else State.PERFORM
        if update_switch(ctx.phdr, "DQICORR", flag):
            if ctx.keys.detector != "SBC":
                add_history(ctx.phdr, "  values checked for saturation")
            if bpix is not None and bpix.exists:
                add_history(ctx.phdr, "  DQ array initialized ...")
                ref_history(ctx.phdr, bpix, table=True)


def _2d_nonlinearity(ctx: _TwoDContext, lin: MamaLinearity | None) -> None:
    glin, lflg = ctx.states["GLINCORR"], ctx.states["LFLGCORR"]
    if ctx.keys.detector == "SBC":
        ctx.trl.message("\n")
        ctx.trl.switch("GLINCORR", glin.shown)
        ctx.trl.switch("LFLGCORR", lflg.shown)
    mlin = ctx.plans["GLINCORR"].refs.get("MLINTAB") or ctx.plans["LFLGCORR"].refs.get("MLINTAB")
    if (not glin.omitted or not lflg.omitted) and ctx.first and mlin is not None:
        _log_refinfo(ctx.trl, "MLINTAB", mlin, lin.descrip2 if lin else "")
    if State.PERFORM in (glin, lflg) and lin is not None:
        ctx.im, _ = twod.correct_nonlinearity(
            ctx.im, lin, globrate=float(ctx.im.hdr.get("GLOBRATE", 0.0)),
            exptime=ctx.keys.exptime, glincorr=glin is State.PERFORM,
            lflgcorr=lflg is State.PERFORM,
        )
        for switch, state in (("GLINCORR", glin), ("LFLGCORR", lflg)):
            if state is State.PERFORM:
                ctx.trl.switch(switch, "COMPLETE")
    if ctx.first and (not glin.omitted or not lflg.omitted):
        logged = [update_switch(ctx.phdr, sw, st) for sw, st in
                  (("GLINCORR", glin), ("LFLGCORR", lflg)) if not st.omitted]
        if any(logged) and mlin is not None:
            ref_history(ctx.phdr, mlin, table=True, descrip2=lin.descrip2 if lin else "")


def _mama_linearity(plans: dict[str, StepPlan], keys: ExposureKeys) -> MamaLinearity | None:
    """Read the MLINTAB row when GLINCORR or LFLGCORR runs; a DUMMY row skips both."""
    wanted = [k for k in ("GLINCORR", "LFLGCORR") if plans[k].perform]
    if not wanted:
        return None
    ref = plans[wanted[0]].refs["MLINTAB"]
    lin = read_mlintab(ref.require(), detector=keys.detector)
    if lin.dummy:
        for k in wanted:
            plans[k] = plans[k].with_state(State.DUMMY, "MLINTAB row is DUMMY")
    return lin


#: Stand-in CCD parameters for the MAMA: one region, gain 1, no read noise.
_MAMA_PARAMS = CcdParams(atodgain=(0.0,) * 4, readnoise=(0.0,) * 4, ccdbias=(0.0,) * 4,
                         ampx=0, ampy=0, atodsat=0, saturate=0.0, ovrhfls=0.0,
                         ovrhufls=0.0, row=0)


def _2d_electrons_and_noise(ctx: _TwoDContext, params: CcdParams) -> None:
    im, keys = ctx.im, ctx.keys
    if not str(im.hdr.get("BUNIT", "")).upper().startswith("ELECTR"):
        geom = ccd.amp_geometry(keys.detector, im.chip, params, im.hdr, im.shape)
        im, _ = ccd.to_electrons(im, geom)
    if not np.any(im.err != 0):
        geom = ccd.amp_geometry(keys.detector, im.chip, params, im.hdr, im.shape)
        im, _ = ccd.init_noise(im, geom, bias_exposure=keys.targname.startswith("BIAS"),
                               mama=keys.detector == "SBC")
        if ctx.first:
            add_history(ctx.phdr, "Uncertainty array initialized.")
        ctx.trl.message("         Uncertainty array initialized,")
    ctx.im = im


def _2d_darkcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("DARKCORR", ("DARKFILE",))
    if ctx.states["DARKCORR"] is State.PERFORM:
        dark = plan.refs["DARKFILE"]
        darktime = _f32(ctx.keys.darktime)
        ctx.trl.message(f"Darktime from header {darktime:f}")
        cut, (x0, y0), _ = _cut(dark, ctx.im)
        extver = chip_extver(dark.require(), ctx.im.chip, keyword="DARKFILE")
        ctx.trl.message(f"Performing dark subtraction on chip {ctx.im.chip} in imset {extver}")
        ctx.trl.message(f"Image has an offset of {x0},{y0}")
        ctx.im, info = twod.subtract_dark(ctx.im, cut, darktime=darktime, sdqflags=ctx.sdq)
        ctx.trl.message(f"Mean of dark image (MEANDARK) = {info['meandark']:g}")
        ctx.trl.switch("DARKCORR", "COMPLETE")
        ctx.trl.timestamp("DARKCORR complete", ctx.keys.rootname)
    ctx.record("DARKCORR", ("DARKFILE",))


def _2d_flshcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("FLSHCORR", ("FLSHFILE",))
    if ctx.states["FLSHCORR"] is State.PERFORM:
        if ctx.keys.flashdur <= 0.0:
            msg = "Post-flash exposure was 0 seconds. FLSHCORR not performed."
            ctx.trl.warn(msg)
            add_history(ctx.phdr, msg)
            ctx.states["FLSHCORR"] = State.IGNORED
            ctx.im.hdr["MEANFLSH"] = (0.0, "mean of post-flash values subtracted")
        else:
            if ctx.keys.flashsta == "ABORTED":
                msg = "Post-flash STATUS was ABORTED. Post-flash may be compromised."
                ctx.trl.warn(msg)
                add_history(ctx.phdr, msg)
            cut, _, _ = _cut(plan.refs["FLSHFILE"], ctx.im)
            ctx.im, info = twod.subtract_flash(ctx.im, cut, flashdur=ctx.keys.flashdur,
                                               sdqflags=ctx.sdq)
            ctx.trl.message(f"Mean of post-flash image (MEANFLSH) = {info['meanflash']:g}")
            ctx.trl.switch("FLSHCORR", "COMPLETE")
    ctx.record("FLSHCORR", ("FLSHFILE",))


def _2d_flatcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("FLATCORR", ("PFLTFILE", "DFLTFILE", "LFLTFILE"))
    if ctx.states["FLATCORR"] is State.PERFORM:
        for key in ("PFLTFILE", "DFLTFILE"):
            ref = plan.usable(key)
            if ref is None:
                continue
            cut, (x0, y0), _ = _cut(ref, ctx.im)
            ctx.trl.message(f"ratio of flat/input = 1,1 offset by {x0},{y0}")
            ctx.im, _ = twod.divide_flat(ctx.im, cut)
        lflt = plan.usable("LFLTFILE")
        if lflt is not None:
            ctx.im, _ = twod.divide_flat(ctx.im, _expand_lflat(lflt, ctx.im))
        ctx.trl.switch("FLATCORR", "COMPLETE")
        ctx.trl.timestamp("FLATCORR complete", ctx.keys.rootname)
        ctx.im.hdr["BUNIT"] = "ELECTRONS"
        ctx.im.err_hdr["BUNIT"] = "ELECTRONS"
    ctx.record("FLATCORR", ("PFLTFILE", "DFLTFILE", "LFLTFILE"))


def _2d_shadcorr(ctx: _TwoDContext) -> None:
    plan = ctx.open_step("SHADCORR", ("SHADFILE",))
    if ctx.states["SHADCORR"] is State.PERFORM:
        shad = plan.refs["SHADFILE"]
        if ctx.keys.exptime <= 0:
            ctx.trl.warn("EXPTIME must be positive if SHADCORR = PERFORM.")
            ctx.states["SHADCORR"] = State.IGNORED
        else:
            cut = read_shading(shad.require(), ctx.im.chip, ctx.im.hdr, ctx.im.shape,
                               name=shad.name)
            ncombine = max(int(ctx.im.hdr.get("NCOMBINE", 1)), 1)
            ctx.im, _ = twod.correct_shading(ctx.im, cut, exptime=ctx.keys.exptime,
                                             ncombine=ncombine)
            ctx.trl.switch("SHADCORR", "COMPLETE")
    ctx.record("SHADCORR", ("SHADFILE",))


def _2d_photcorr(ctx: _TwoDContext) -> None:
    plan = ctx.plans["PHOTCORR"]
    ctx.trl.message("\n")
    ctx.trl.switch("PHOTCORR", ctx.states["PHOTCORR"].shown)
    keys = ctx.keys
    mode = twod.photmode(detector=keys.detector, filter1=keys.filter1, filter2=keys.filter2,
                         expstart=keys.expstart, obstype=keys.obstype, lrfwave=keys.lrfwave)
    ctx.trl.message(f"Keyword PHOTMODE built as: {mode}")
    phot = None
    perform = ctx.states["PHOTCORR"] is State.PERFORM
    if perform:
        phot = read_imphttab(plan.refs["IMPHTTAB"].require(), mode)
        ctx.trl.message(f"Created SYNPHOT obsmode of: {mode.lower().replace(' ', ',')}")
        ctx.trl.message(f"Computed PHOTFLAM value of {phot.photflam:g}")
    ctx.im, info = twod.set_photometry(ctx.im, phot, mode)
    if perform:
        if info["skipped"]:
            ctx.trl.warn("IMPHTTAB extrapolation not supported, PHOTCORR skipped.")
            ctx.states["PHOTCORR"] = State.IGNORED
            ctx.trl.switch("PHOTCORR", "SKIPPED")
        else:
            _log_refinfo(ctx.trl, "IMPHTTAB", plan.refs["IMPHTTAB"])
            ctx.trl.switch("PHOTCORR", "COMPLETE")
            ctx.trl.timestamp("PHOTCORR complete", keys.rootname)
    ctx.record("PHOTCORR", ("IMPHTTAB",), table=True)


def _expand_lflat(ref: RefFile, im: ImSet) -> ImSet:
    """LFLTFILE: a binned low-order flat expanded by pixel replication to the science array."""
    full = read_ref_imset(ref.require(), im.chip, keyword=ref.keyword)
    ltm1 = float(full.hdr.get("LTM1_1", 1.0))
    ltm2 = float(full.hdr.get("LTM2_2", 1.0))
    bx, by = round(1.0 / ltm1), round(1.0 / ltm2)
    sci = np.repeat(np.repeat(np.asarray(full.sci, np.float32), by, axis=0), bx, axis=1)
    err = np.repeat(np.repeat(np.asarray(full.err, np.float32), by, axis=0), bx, axis=1)
    dq = np.repeat(np.repeat(np.asarray(full.dq, np.uint16), by, axis=0), bx, axis=1)
    ny, nx = im.shape
    sx, sy = corner(im.hdr)
    if sci.shape[0] < sy + ny or sci.shape[1] < sx + nx or sx < 0 or sy < 0:
        raise ShapeMismatchError(f"LFLTFILE {ref.name} does not cover the science array")
    sl = (slice(sy, sy + ny), slice(sx, sx + nx))
    return ImSet(sci[sl], err[sl], dq[sl])


# --------------------------------------------------------------------------- calacs
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


_CCD_SWITCHES = ("DQICORR", "ATODCORR", "BIASCORR", "BLEVCORR")
_2D_SWITCHES = ("GLINCORR", "LFLGCORR", "DARKCORR", "FLSHCORR", "FLATCORR", "SHADCORR", "PHOTCORR")


def _switch_value(phdr: fits.Header, key: str) -> str:
    value = str(phdr.get(key, "OMIT")).strip().upper()
    return "PERFORM" if value == "PERFORM" else "OMIT"


def _root_of(path: Path) -> str:
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
    root = _root_of(raw_path)
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
                         overrides=overrides, input_dir=input_dir, output_name=blv_name)
        del raw  # free the raw arrays before ACS2D
        ccd_plans = blv.extra["acsccd"]["plans"]
        references.extend(r for p in ccd_plans.values() if not p.state.omitted
                          for r in p.refs.values() if r.exists)
    else:
        blv = raw
    req2d = {k: sw[k] for k in _2D_SWITCHES}
    req2d["DQICORR"] = sw["DQICORR"] if mama or sw["DQICORR"] != "PERFORM" else "OMIT"
    if basic_2d:
        flt = run_acs2d(blv.evolve(path=raw_path.with_name(blv_name)), trailer=trl,
                        requested=req2d, overrides=overrides, input_dir=input_dir,
                        output_name=flt_path.name)
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


def run_native(input_path: str | os.PathLike[str], **options: object) -> object:
    """Calibrate a raw file or an association: see :func:`acsprov.calib.pipeline.run_native`.

    Kept here for callers that import it from this module; the association logic
    (ACSCTE, ACSREJ, trailers, table rewrite) lives in :mod:`acsprov.calib.pipeline`.
    """
    from acsprov.calib.pipeline import run_native as _run_native

    return _run_native(input_path, **options)  # type: ignore[arg-type]
