"""The ACSCCD task: :func:`run_acsccd` in calacs's ``DoCCD`` order, and its step shells.

Order: DQICORR, BIASCORR, conversion to electrons, BLEVCORR
(:mod:`~acsprov.calib.acsccd.blevcorr`), DARKTIME, full-well saturation, ERR
initialisation, SINKCORR, trim.  :data:`CCD_STEPS` declares the switches and their
reference files; the shells here decide, log and record, and the arithmetic is in
:mod:`~acsprov.calib.acsccd.pixels`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from acsprov.calib.acsccd import pixels
from acsprov.calib.acsccd.blevcorr import do_blevcorr, trim_overscan
from acsprov.calib.acsccd.context import CcdContext
from acsprov.calib.chips import map_chips, parallel_chips
from acsprov.calib.fitsio import Exposure, hstio_float
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import (
    AMPS,
    ShapeMismatchError,
    corner,
    inspect_ref,
    read_bpixtab,
    read_oscntab,
    read_ref_imset,
)
from acsprov.calib.steps import (
    ExposureKeys,
    State,
    Step,
    add_history,
    ccd_history,
    ccd_params,
    check_ccdtab,
    cut_ref,
    f32,
    log_refinfo,
    plan_steps,
    put_ccd_keywords,
    record_step,
    ref_history,
    same_size,
    update_switch,
)
from acsprov.calib.trailer import Trailer
from acsprov.calib.version import CAL_VER, ENGINE
from acsprov.errors import BadInputError, ReferenceFileError

__all__ = ["CCD_STEPS", "run_acsccd"]


CCD_STEPS: tuple[Step, ...] = (
    Step("DQICORR", "ACSCCD", ("BPIXTAB",), repeatable=True, optional=("BPIXTAB",)),
    Step("ATODCORR", "ACSCCD", ("ATODTAB",)),
    Step("BLEVCORR", "ACSCCD", ("OSCNTAB",), optional=("OSCNTAB",), dummy_skips=()),
    Step("BIASCORR", "ACSCCD", ("BIASFILE", "SATUFILE"), dummy_skips=("BIASFILE",)),
    Step("SINKCORR", "ACSCCD", ("SNKCFILE",)),
)


def run_acsccd(
    exposure: Exposure,
    *,
    trailer: Trailer | None = None,
    requested: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    output_name: str = "",
    nthreads: int | None = None,
    overwrite_input: bool = False,
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
    nthreads : int, optional
        Threads the run may use: unless 1, the chips of a two-chip exposure are
        worked on concurrently (:mod:`acsprov.calib.chips`); the results and the
        trailer are the same.
    overwrite_input : bool
        Work in place on `exposure`'s arrays (no full-size copy of a chip is made);
        `exposure` must not be used afterwards.  Otherwise each imset is copied first
        and `exposure` is unchanged.

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
    ccdref = check_ccdtab(phdr, input_dir, overrides)
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
    if not overwrite_input:
        imsets = [im.copy() for im in imsets]
    extra = dict(exposure.extra)
    del exposure  # the steps work in place on the raw arrays, or replace them
    params = [ccd_params(ccdref, keys, im) for im in imsets]
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
    put_ccd_keywords(phdr, params[0])
    trl.message("")
    log_refinfo(trl, "CCDTAB", ccdref, params[0].descrip2)
    ccd_history(phdr, ccdref, params[0])
    ctx = CcdContext(keys, phdr, imsets, params, overscans, plans, trl,
                     parallel=parallel_chips(nthreads, len(imsets)))
    _ccd_dqicorr(ctx)
    _ccd_biascorr(ctx)

    def electrons(i: int, im: ImSet, log: Trailer) -> ImSet:
        geom = pixels.amp_geometry(keys.detector, im.chip, params[i], im.hdr, im.shape)
        return pixels.to_electrons_inplace(im, geom)[0]

    ctx.imsets = map_chips(electrons, ctx.imsets, trl, parallel=ctx.parallel)
    trimmed, done, driftcorr = do_blevcorr(ctx)
    final, offset = pixels.darktime(keys.darktime, params[0], expstart=keys.expstart,
                                 subarray=keys.subarray, aperture=keys.aperture,
                                 flashdur=keys.flashdur, flashsta=keys.flashsta)
    if not keys.subarray:
        trl.message(f"Full Frame adjusted Darktime: {final:f}")
    elif final != f32(keys.darktime):
        trl.message(
            f"Supported Subarray adjusted Darktime: {final:f} for aperture: {keys.aperture}"
        )
    trl.message(f"DARKTIME from SCI header: {f32(keys.darktime):f}  Offset from CCDTAB: "
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
            im, _ = trim_overscan(im, region)
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
    extra["acsccd"] = {"blev": dict(ctx.blev), "done": done, "driftcorr": driftcorr,
                       "plans": plans}
    return Exposure(phdr=phdr, imsets=tuple(out), path=None, extra=extra)


def _ccd_dqicorr(ctx: CcdContext) -> None:
    plan, trl, keys = ctx.plans["DQICORR"], ctx.trl, ctx.keys
    trl.message("\n")
    trl.switch("DQICORR", plan.state.shown)
    bpix = plan.refs.get("BPIXTAB")
    if not plan.state.omitted:
        log_refinfo(trl, "DQITAB", bpix)
    if plan.state in (State.PERFORM, State.DUMMY):
        for i, im in enumerate(ctx.imsets):
            rows = None
            if plan.state is State.PERFORM and bpix is not None and bpix.exists:
                rows = read_bpixtab(bpix.require(), ccdamp=keys.ccdamp, ccdgain=keys.ccdgain,
                                    ccdchip=im.chip)
                if len(rows) == 0:
                    trl.warn("No rows from BPIXTAB applied to DQ array.")
                    trl.message("Inserting single-pixel DQ place-holder at (1,1).")
            ctx.imsets[i], _ = pixels.flag_bad_pixels(im, rows, atodsat=ctx.params[i].atodsat)
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


def _ccd_biascorr(ctx: CcdContext) -> None:
    plan, trl = ctx.plans["BIASCORR"], ctx.trl
    trl.message("\n")
    trl.switch("BIASCORR", plan.state.shown)
    bias = plan.refs.get("BIASFILE")
    if not plan.state.omitted:
        log_refinfo(trl, "BIASFILE", bias)
    if plan.perform:
        assert bias is not None

        def one(i: int, im: ImSet, log: Trailer) -> ImSet:
            cut, (x0, y0), same = cut_ref(bias, im)
            log.message(f"Ratio of (1,1) with offset =({x0},{y0})")
            log.message(f"BIAS image and input are {'the same' if same else 'NOT the same'} size")
            return pixels.subtract_bias_inplace(im, cut)[0]

        ctx.imsets = map_chips(one, ctx.imsets, trl, parallel=ctx.parallel)
    trl.switch("BIASCORR", "COMPLETE")
    trl.timestamp("BIASCORR complete", ctx.keys.rootname)
    record_step(ctx.phdr, plan, refs=("BIASFILE",))


def _ccd_full_well(ctx: CcdContext) -> None:
    bias_plan = ctx.plans["BIASCORR"]
    blev_plan = ctx.plans["BLEVCORR"]
    if not (bias_plan.perform and blev_plan.perform):
        for i in range(len(ctx.imsets)):
            ctx.trl.warn(f"\nNo Full-well saturation flagging being performed for imset {i + 1}.\n")
        return

    def one(i: int, im: ImSet, log: Trailer) -> ImSet:
        log.message(f"\nFull-well saturation flagging being performed for imset {i + 1}.\n")
        satu = bias_plan.refs["SATUFILE"]
        full = read_ref_imset(satu.require(), im.chip, keyword="SATUFILE")
        same = same_size(full, im)
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
        log.message(f"{kind} full-well saturation image flagging step being performed.")
        # the SATUFILE's memory map: only the part compared is read
        out, _ = pixels.flag_full_well_inplace(im, full.sci, ctx.overscan[i], offset=offset,
                                               full_frame=same)
        log.message(f"{kind} full-well saturation image flagging step done.")
        return out

    ctx.imsets = map_chips(one, ctx.imsets, ctx.trl, parallel=ctx.parallel)


def _ccd_noise(ctx: CcdContext) -> None:
    keys = ctx.keys

    def one(i: int, im: ImSet, log: Trailer) -> ImSet:
        geom = pixels.amp_geometry(keys.detector, im.chip, ctx.params[i], im.hdr, im.shape)
        return pixels.init_noise_inplace(im, geom,
                                         bias_exposure=keys.targname.startswith("BIAS"))[0]

    ctx.imsets = map_chips(one, ctx.imsets, ctx.trl, parallel=ctx.parallel)
    add_history(ctx.phdr, "Uncertainty array initialized.")
    p = ctx.params[0]
    rn = ",".join(f"{v:.5g}" for v in p.readnoise if v > 0)
    gn = ",".join(f"{v:.5g}" for v in p.atodgain if v > 0)
    bl = ",".join(f"{b * g:.5g}" for b, g in zip(p.ccdbias, p.atodgain, strict=True) if b > 0)
    ctx.trl.message(f"\n    Uncertainty array initialized,\n    readnoise ={rn}\n    gain ={gn}\n"
                    f"   default bias levels ={bl}")
    ctx.trl.timestamp("Uncertainty array initialized", keys.rootname)


def _ccd_sinkcorr(ctx: CcdContext) -> None:
    plan, trl = ctx.plans["SINKCORR"], ctx.trl
    trl.message("\n")
    trl.switch("SINKCORR", plan.state.shown)
    sink = plan.refs.get("SNKCFILE")
    if not plan.state.omitted:
        log_refinfo(trl, "SNKCFILE", sink)
    if plan.perform:
        assert sink is not None
        sink.require()  # a missing file fails before either chip is worked on

        def one(i: int, im: ImSet, log: Trailer) -> ImSet:
            cut, (x0, y0), same = cut_ref(sink, im, sci_only=True)
            log.message(f"Ratio of (1,1) with offset =({x0},{y0})")
            log.message(f"SINK image and input are {'the same' if same else 'NOT the same'} size")
            out, info = pixels.flag_sinks_inplace(im, cut.sci, bottom_up=cut.extver == 1)
            log.message(f"Sink pixels flagged = {info['n_flagged']}")
            return out

        ctx.imsets = map_chips(one, ctx.imsets, trl, parallel=ctx.parallel)
        trl.switch("SINKCORR", "COMPLETE")
        trl.timestamp("SINKCORR complete", ctx.keys.rootname)
    record_step(ctx.phdr, plan, refs=("SNKCFILE",))
