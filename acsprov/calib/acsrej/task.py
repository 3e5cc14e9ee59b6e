"""The ACSREJ task: :func:`run_acsrej` reads the members, combines them and writes the
``_crj_tmp`` (``_crc_tmp``), and the members' DQ masks when CRMASK is set."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.calib import fitsio
from acsprov.calib.acsrej.headers import _check_members, crj_headers
from acsprov.calib.acsrej.params import CrRejParams, read_crrejtab, select_crrej_row
from acsprov.calib.acsrej.reject import (
    RejectResult,
    _dq16,
    _match_chips,
    _sum32,
    flag_rejected,
    reject_cosmic_rays,
)
from acsprov.calib.chips import map_chips, parallel_chips, run_jobs
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import RefFile, inspect_ref, read_shading, resolve_ref_path
from acsprov.calib.steps import header_switch
from acsprov.calib.trailer import Trailer
from acsprov.errors import BadInputError, ReferenceFileError
from acsprov.fitsutil import BackgroundSha256

__all__ = ["run_acsrej"]


# --------------------------------------------------------------------------- driver
#: Bit 8192 changes of one member imset: ``(extver, flat pixel indices, new DQ values)``.
DqUpdate = tuple[int, np.ndarray, np.ndarray]


def member_dq_update(imset: ImSet, crmask: np.ndarray) -> DqUpdate | None:
    """The pixels of a member's DQ that ACSREJ's mask changes (CRMASK = yes), and their
    new values (:func:`~acsprov.calib.acsrej.flag_rejected`); None if none change.

    Cosmic rays hit few pixels, so this is far smaller than the DQ array it was
    computed from, which need not be kept until the members are updated.
    """
    new = flag_rejected(imset, crmask).dq.reshape(-1)
    changed = np.flatnonzero(new != _dq16(imset.dq).reshape(-1))
    if not changed.size:
        return None
    return imset.extver, changed, new[changed]


def _write_member_dq(path: Path, updates: Sequence[DqUpdate | None]) -> None:
    """Set/clear bit 8192 in the DQ extensions of a member file, in place.

    `updates` are :func:`member_dq_update` results for the member's imsets; only
    changed pixels are written (through a memory map), so the rest of the file is left
    as it is.
    """
    updates = [u for u in updates if u is not None]
    if not updates:
        return
    with fits.open(path, mode="update", memmap=True) as hdul:
        for extver, changed, values in updates:
            hdu = hdul["DQ", extver]
            if hdu.data is None:  # constant extension (NPIX1/NPIX2/PIXVALUE): write an array
                hdr = hdu.header.copy()
                shape = fitsio.image_shape(hdr)
                new = np.full(shape, hdr["PIXVALUE"], np.uint16).reshape(-1)
                new[changed] = values
                for key in ("NPIX1", "NPIX2", "PIXVALUE"):
                    hdr.remove(key, ignore_missing=True)
                index = hdul.index_of(("DQ", extver))
                hdul[index] = fits.ImageHDU(new.reshape(shape).view(np.int16), hdr, name="DQ")
                hdul[index].ver = extver
                continue
            data = hdu.data.reshape(-1)
            data[changed] = values.view(np.int16) if data.dtype.kind == "i" else values


def _write_members_dq(paths: Sequence[Path], updates: Sequence[Sequence[DqUpdate | None]]
                      ) -> None:
    """:func:`_write_member_dq` of every member, in order."""
    for path, member_updates in zip(paths, updates, strict=True):
        _write_member_dq(path, member_updates)


def _headers_only(exposure: fitsio.Exposure) -> fitsio.Exposure:
    """`exposure` with every array replaced by read-only zeros of its shape and type
    that take no memory: the headers, shapes and chips stay."""
    def nothing(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.zeros((), a.dtype), a.shape)

    return exposure.evolve(imsets=tuple(
        im.evolve(sci=nothing(im.sci), err=nothing(im.err), dq=nothing(im.dq))
        for im in exposure.imsets))


def _read_native(path: Path, head: ImSet,
                 out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> ImSet:
    """The imset of `path` with `head`'s EXTVER, read whole into native arrays (`out`'s,
    if given)."""
    with fits.open(path, memmap=True, lazy_load_hdus=True, do_not_scale_image_data=True) as hdul:
        return fitsio.read_imset(hdul, head.extver, path=path, native=True, out=out)


def _read_chip(paths: Sequence[Path], exposures: Sequence[fitsio.Exposure],
               idx: Sequence[int], *, parallel: bool = False) -> list[ImSet]:
    """Imset ``idx[k]`` of every member read from its file, SCI/ERR/DQ as planes of one
    3-D array per kind (so :func:`reject_cosmic_rays` stacks them without a copy).

    `exposures` give the headers.  Imsets of different shapes are read as they are
    (:func:`reject_cosmic_rays` reports it).  With `parallel`, two members are read
    at a time (each into its own planes; reading and byte swapping release the GIL).
    """
    heads = [exposures[k].imsets[i] for k, i in enumerate(idx)]
    shape = heads[0].shape
    if any(im.shape != shape for im in heads):
        natives = [_read_native(path, head) for path, head in zip(paths, heads, strict=True)]
        return [head.evolve(sci=native.sci, err=native.err, dq=native.dq)
                for head, native in zip(heads, natives, strict=True)]
    n = len(heads)
    stacks = {"sci": np.empty((n, *shape), np.float32), "err": np.empty((n, *shape), np.float32),
              "dq": np.empty((n, *shape), np.uint16)}
    planes = [tuple(stacks[name][k] for name in ("sci", "err", "dq")) for k in range(n)]
    map_chips(lambda k, path, _log: _read_native(path, heads[k], planes[k]), paths,
              Trailer(), parallel=parallel)
    return [head.evolve(sci=sci, err=err, dq=dq)
            for head, (sci, err, dq) in zip(heads, planes, strict=True)]


def _reject_by_chip(paths: Sequence[Path], exposures: Sequence[fitsio.Exposure],
                    exptimes: Sequence[float], params: CrRejParams, *, imagetyp: str,
                    shading: Sequence[np.ndarray] | None, use_kernel: bool,
                    nthreads: int | None = None,
                    ) -> tuple[RejectResult, list[list[DqUpdate | None]]]:
    """:func:`reject_cosmic_rays` of the members, one chip at a time.

    Only one chip of every member is in memory at once: the imsets of `exposures`
    (:func:`_headers_only`) give the headers, each chip's pixels are read from the
    files when it is combined.  The result is the one of all chips at once, with the
    :func:`member_dq_update` of each member imset when CRMASK is yes (None for an
    imset not combined, or without a change).
    """
    members = [list(e.imsets) for e in exposures]
    try:
        order = _match_chips(members)
    except BadInputError:
        order = []
    if len(members) < 2 or not order:  # reject_cosmic_rays says what is wrong
        members = [list(fitsio.read_exposure(p).imsets) for p in paths]
        whole = reject_cosmic_rays(members, exptimes, params, imagetyp=imagetyp,
                                   shading=shading, use_kernel=use_kernel)
        flag = params.crmask and whole.info["performed"]
        return whole, [[member_dq_update(im, mask) if flag else None
                         for im, mask in zip(m, masks, strict=True)]
                        for m, masks in zip(members, whole.crmasks, strict=True)]
    parts = []
    crmasks = [[np.zeros(im.shape, bool) for im in m] for m in members]
    updates: list[list[DqUpdate | None]] = [[None] * len(m) for m in members]
    for e, idx in enumerate(order):
        chip = _read_chip(paths, exposures, idx, parallel=parallel_chips(nthreads, len(paths)))
        these = [list(m) for m in members]
        for k, i in enumerate(idx):
            these[k][i] = chip[k]
        part = reject_cosmic_rays(these, exptimes, params, imagetyp=imagetyp, shading=shading,
                                  use_kernel=use_kernel, chips=(e,),
                                  parallel=nthreads is None or nthreads > 1)
        for k, i in enumerate(idx):
            crmasks[k][i] = part.crmasks[k][i]
            if params.crmask and part.info["performed"]:
                updates[k][i] = member_dq_update(chip[k], crmasks[k][i])
        del chip, these  # this chip's members: only the changes to their DQ are kept
        parts.append(part)
    info = dict(parts[0].info)
    for key in ("sky", "skysum", "nrej"):
        info[key] = tuple(p.info[key][0] for p in parts)
    info["warnings"] = tuple(dict.fromkeys(w for p in parts for w in p.info["warnings"]))
    return RejectResult(
        combined=tuple(p.combined[0] for p in parts),
        crmasks=tuple(tuple(m) for m in crmasks),
        info=info,
    ), updates


def run_acsrej(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    crrejtab: str | os.PathLike[str] | None = None,
    params: CrRejParams | None = None,
    mtype: str = "",
    update_members: bool = True,
    overwrite: bool = False,
    use_kernel: bool = True,
    nthreads: int | None = None,
    keep: bool = False,
) -> dict:
    """ACSREJ on files: combine ``_blv_tmp`` (``_blc_tmp``) members into a ``_crj_tmp``.

    Parameters
    ----------
    inputs : sequence of path-like
        The members' ``_blv_tmp`` files, in association order.
    output : path-like
        The ``_crj_tmp`` (or ``_crc_tmp``) file to write.
    crrejtab : path-like, optional
        CRREJTAB to use; default: the first input's CRREJTAB keyword (``jref$``
        expanded).
    params : CrRejParams, optional
        Parameters to use instead of a table row.
    mtype : str
        ASN_MTYP of the product (e.g. ``PROD-CRJ``).
    update_members : bool
        If CRMASK is true, write bit 8192 into the members' DQ in place, as calacs does.
    overwrite : bool
        Replace `output` if it exists (calacs refuses).
    use_kernel : bool
        Use the numba kernels.
    nthreads : int or None
        Threads it may use (None: no limit); with more than one, two members' chips
        are read at a time and each chip's rejection works on two halves of its rows
        at once.
    keep : bool
        Also give the product as a task reading `output` would find it
        (:func:`~acsprov.calib.fitsio.write_exposure_kept`), and its sha256 as written.

    Returns
    -------
    dict
        ``output`` (path), ``crrejtab`` (path or None), ``params``, ``info`` (see
        :class:`RejectResult`), ``members_updated`` (paths), ``messages`` (trailer
        lines as calacs prints them); with `keep`, ``product`` (Exposure) and
        ``sha256`` of `output`.

    Raises
    ------
    BadInputError
        Unreadable or inconsistent inputs (CCDAMP, post-flash, missing keywords), or
        `output` exists.
    ReferenceFileError
        CRREJTAB missing, unreadable, or without a matching row.
    NotImplementedYetError
        SHADCORR = PERFORM with a binned SHADFILE.

    Notes
    -----
    With SHADCORR = PERFORM in the first input and a SHADFILE whose PEDIGREE is not
    DUMMY, the shutter shading is corrected during the combination (see
    :func:`reject_cosmic_rays`) and the product has SHADCORR = COMPLETE.
    """
    paths = [Path(p) for p in inputs]
    output = Path(output)
    if output.exists() and not overwrite:
        raise BadInputError(f"output {output.name} already exists; remove it or use overwrite")
    # headers only; the pixels are read one chip at a time by _reject_by_chip
    exposures = [_headers_only(fitsio.read_exposure(p, native=False)) for p in paths]
    phdrs = [e.phdr for e in exposures]
    for p, h in zip(paths, phdrs, strict=True):
        if "FILENAME" not in h:
            h["FILENAME"] = p.name
    exptimes = [float(np.float32(h.get("EXPTIME", 0.0))) for h in phdrs]
    nimgs = len(paths)
    table_name = ""
    table_path: Path | None = None
    if params is None:
        if crrejtab is None:
            table_name = str(phdrs[0].get("CRREJTAB", "")).strip()
            if not table_name or table_name.upper() == "N/A":
                raise ReferenceFileError(f"{paths[0].name} names no CRREJTAB")
            table_path = resolve_ref_path(table_name, input_dir=paths[0].parent)
        else:
            table_path = Path(crrejtab)
            table_name = str(crrejtab)
        if not table_path.exists():
            raise ReferenceFileError(f"CRREJTAB {table_name} not found")
        mean = np.float32(_sum32(exptimes) / np.float32(nimgs))
        params = select_crrej_row(read_crrejtab(table_path), nimgs, float(mean))
    names = [p.name for p in paths]
    _check_members(phdrs, np.asarray(exptimes, np.float32), names)
    shadfile = _shading_ref(phdrs[0], paths[0].parent)
    shading = None
    if shadfile is not None:
        shad_path = shadfile.require()
        shading = [
            read_shading(shad_path, im.chip, im.hdr, im.shape, name=shadfile.name).sci
            for im in exposures[0].imsets
        ]
    imagetyp = str(phdrs[0].get("IMAGETYP", "")).strip()
    result, dq_updates = _reject_by_chip(paths, exposures, exptimes, params,
                                         imagetyp=imagetyp, shading=shading,
                                         use_kernel=use_kernel, nthreads=nthreads)
    phdr, imsets = crj_headers(
        phdrs, result, params, output_name=output.name, mtype=mtype, shadfile=shadfile
    )
    update = params.crmask and update_members and result.info["performed"]
    written: dict = {}

    def write_product() -> None:
        product = fitsio.Exposure(phdr=phdr, imsets=imsets)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            if not keep:
                fitsio.write_exposure(product, output)
                return
            digest = BackgroundSha256()
            try:
                written["product"] = fitsio.write_exposure_kept(product, output, digest=digest)
            finally:
                written["sha256"] = digest.hexdigest()  # (its thread ends, even after an error)

    # the members' DQ are updated while the product is written (different files)
    jobs = [write_product]
    if update:
        jobs.append(functools.partial(_write_members_dq, paths, dq_updates))
    run_jobs(jobs, parallel=nthreads is None or nthreads > 1)
    del jobs
    updated = list(paths) if update else []
    del dq_updates
    messages = _messages(paths, exposures, params, result, table_name)
    return {
        "output": output,
        "crrejtab": table_path,
        "params": params,
        "info": result.info,
        "members_updated": updated,
        "messages": messages,
        **written,
    }


def _shading_ref(phdr: fits.Header, input_dir: Path) -> RefFile | None:
    """The SHADFILE to apply (SHADCORR = PERFORM, PEDIGREE not DUMMY), else None."""
    if header_switch(phdr, "SHADCORR") != "PERFORM":
        return None
    ref = inspect_ref("SHADFILE", phdr.get("SHADFILE"), input_dir=input_dir)
    return None if ref.dummy else ref


def _messages(paths, exposures, params: CrRejParams, result: RejectResult, table: str):
    """The verbose lines calacs prints for each chip."""
    info = result.info
    order = _match_chips([e.imsets for e in exposures])
    lines = []
    for e, idx in enumerate(order):
        lines += [
            f" number of images = {len(paths)}",
            f" CRREJ ref table used: {table}",
            f" initial guess method: {info['initgues']}",
            f" total exposure time = {info['exptot']:0.1f}",
            f" sigmas used: {params.crsigmas}",
            f" sky subtraction used: {params.skysub}",
            f" rejection radius = {params.crradius:0.1f}",
            f" propagation threshold = {params.crthresh:0.1f}",
            f" scale noise = {params.scalense:0.1f}%",
            f" input bad bits value = {params.badinpdq}",
            f" reset crmask = {'YES' if params.crmask else 'NO'}",
        ]
        for k, i in enumerate(idx):
            extver = exposures[k].imsets[i].extver
            lines.append(
                f"sky of '{paths[k].name}[sci,{extver}]' is {info['sky'][e][k]:0.3f} electrons"
            )
    lines += [f"Warning    {w}" for w in info["warnings"]]
    return lines
