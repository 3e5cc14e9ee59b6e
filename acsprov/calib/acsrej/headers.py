"""ACSREJ's headers: member checks, rootnames and the ``_crj_tmp`` primary header."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from astropy.io import fits

from acsprov.calib.acsrej.params import CrRejParams
from acsprov.calib.acsrej.reject import RejectResult
from acsprov.calib.fitsio import hstio_float
from acsprov.calib.imset import ImSet
from acsprov.calib.reffiles import RefFile
from acsprov.calib.steps import State, put_keyword, ref_history, update_switch
from acsprov.errors import BadInputError

__all__ = ["crj_headers", "find_root"]


# --------------------------------------------------------------------------- headers
_ROOT_SUFFIXES = (
    "_raw",
    "_asn",
    "_crj",
    "_crj_tmp",
    "_blv",
    "_blv_tmp",
    "_flt",
    "_sfl",
    "_dth",
    ".fit",
)


def find_root(filename: str) -> str:
    """Rootname of a product file name as calacs derives it (``FindAsnRoot``).

    The name is cut at the first of ``_raw, _asn, _crj, _crj_tmp, _blv, _blv_tmp,
    _flt, _sfl, _dth, .fit`` that occurs in it, so ``x_crc_tmp.fits`` gives
    ``x_crc_tmp`` (calacs's ``_crc`` ROOTNAME).

    Examples
    --------
    >>> find_root("jsyn01011_crj_tmp.fits"), find_root("jsyn01011_crc_tmp.fits")
    ('jsyn01011', 'jsyn01011_crc_tmp')
    """
    name = os.path.basename(str(filename))
    for suffix in _ROOT_SUFFIXES:
        pos = name.find(suffix)
        if pos >= 0:
            return name[:pos]
    return name


def _check_members(phdrs: Sequence[fits.Header], exptimes: np.ndarray, names: Sequence[str]):
    """Header checks of calacs (``acsrej_check``); returns (cum. DARKTIME, cum. FLASHDUR)."""
    first = phdrs[0]
    for key in ("CCDAMP", "DETECTOR", "IMAGETYP"):
        if key not in first:
            raise BadInputError(f"{names[0]} has no {key} keyword")
    gains = [float(first.get(f"ATODGN{a}", 0.0)) for a in "ABCD"]
    if not any(g > 0 for g in gains):
        raise BadInputError(f"All ATODGN values in {names[0]} are 0; run ACSCCD first")
    ccdamp0 = str(first["CCDAMP"]).strip()
    flash0 = None
    darktime = np.float32(0)
    flashdur = np.float32(0)
    for k, (phdr, name) in enumerate(zip(phdrs, names, strict=True)):
        if "CCDAMP" not in phdr:
            raise BadInputError(f"{name} has no CCDAMP keyword")
        if str(phdr["CCDAMP"]).strip().upper() != ccdamp0.upper():
            raise BadInputError(
                f"{name} uses CCDAMP={str(phdr['CCDAMP']).strip()}, expected {ccdamp0}"
            )
        darktime = np.float32(darktime + np.float32(phdr.get("DARKTIME", 0.0)))
        if "FLSHCORR" not in phdr:
            raise BadInputError(f"{name} has no FLSHCORR keyword")
        perform = str(phdr["FLSHCORR"]).strip().upper() == "PERFORM"
        flash = None
        if perform:
            if "FLASHCUR" not in phdr:
                raise BadInputError(f"{name} has no FLASHCUR keyword")
            dur = np.float32(phdr.get("FLASHDUR", 0.0))
            flashdur = np.float32(flashdur + dur)
            level = np.float32(dur / exptimes[k]) if exptimes[k] else np.float32(np.inf)
            flash = (str(phdr["FLASHCUR"]).strip().upper(), level)
        if k == 0:
            flash0 = (perform, flash)
        elif (perform, flash) != flash0:
            raise BadInputError(
                f"{name} has different FLSHCORR/FLASHCUR/flash level (FLASHDUR/EXPTIME) "
                f"from {names[0]}; exposures flashed differently cannot be combined"
            )
    return darktime, flashdur


def crj_headers(
    phdrs: Sequence[fits.Header],
    result: RejectResult,
    params: CrRejParams,
    *,
    output_name: str,
    mtype: str = "",
    crrejtab: str = "",
    shadfile: RefFile | None = None,
) -> tuple[fits.Header, tuple[ImSet, ...]]:
    """Primary header and imset headers of the ``_crj_tmp``, as ACSREJ writes them.

    Starts from the primary header of the first exposure with EXPTIME > 0 and sets
    EXPTIME/TEXPTIME (sum), EXPSTART (earliest), EXPEND (latest), DARKTIME and
    FLASHDUR (sums; FLASHDUR only of exposures with FLSHCORR = PERFORM), SKYSUM and
    REJ_RATE (first chip), the CRREJTAB parameters (INITGUES, SKYSUB, CRSIGMAS, MEANEXP,
    CRRADIUS, CRTHRESH, SCALENSE, BADINPDQ, CRMASK), CRCORR = COMPLETE, FILENAME,
    ROOTNAME, ASN_MTYP (if `mtype`), and EXPNAME in every extension header.  With
    `shadfile`, SHADCORR = COMPLETE and HISTORY records naming the shading file.

    Parameters
    ----------
    phdrs : sequence of astropy.io.fits.Header
        Primary headers of the exposures, in input order.
    result : RejectResult
        From :func:`reject_cosmic_rays`.
    params : CrRejParams
        The parameters used.
    output_name : str
        File name of the product (``<root>_crj_tmp.fits``).
    mtype : str
        ASN_MTYP of the product (e.g. ``PROD-CRJ``); blank keeps the input's.
    crrejtab : str
        Value for the CRREJTAB keyword (blank keeps the input's).
    shadfile : RefFile, optional
        The SHADFILE applied during the combination (SHADCORR performed).

    Returns
    -------
    (astropy.io.fits.Header, tuple of ImSet)
    """
    names = [str(h.get("FILENAME", f"exposure {k + 1}")).strip() for k, h in enumerate(phdrs)]
    exptimes = np.asarray([np.float32(h.get("EXPTIME", 0.0)) for h in phdrs], np.float32)
    darktime, flashdur = _check_members(phdrs, exptimes, names)
    first_good = int(np.argmax(exptimes > 0)) if (exptimes > 0).any() else 0
    phdr = phdrs[first_good].copy()
    info = result.info
    exptot = hstio_float(info["exptot"])
    put_keyword(phdr, "TEXPTIME", exptot)
    put_keyword(phdr, "EXPTIME", exptot)
    put_keyword(phdr, "EXPSTART", (
        min(float(h.get("EXPSTART", 0.0)) for h in phdrs),
        "computed exposure start time (Modified Julian Date)",
    ))
    put_keyword(phdr, "EXPEND", (
        max(float(h.get("EXPEND", 0.0)) for h in phdrs),
        "computed exposure end time (Modified Julian Date)",
    ))
    put_keyword(phdr, "SKYSUM", (hstio_float(info["skysum"][0]), "Total sky level (electrons)"))
    put_keyword(phdr, "REJ_RATE",
                (hstio_float(info["rej_rate"]), "Cosmic ray impact rate (pixels/sec)"))
    put_keyword(phdr, "FLASHDUR", (hstio_float(flashdur), "Cumulative exposure time in seconds"))
    put_keyword(phdr, "DARKTIME", (hstio_float(darktime), "Cumulative dark time in seconds"))
    if shadfile is not None and update_switch(phdr, "SHADCORR", State.PERFORM):
        ref_history(phdr, shadfile)
    if crrejtab:
        put_keyword(phdr, "CRREJTAB", crrejtab)
    put_keyword(phdr, "INITGUES", info["initgues"])
    put_keyword(phdr, "SKYSUB", params.skysub)
    put_keyword(phdr, "CRSIGMAS", params.crsigmas)
    put_keyword(phdr, "MEANEXP", hstio_float(info["meanexp"]))
    put_keyword(phdr, "CRRADIUS", hstio_float(params.crradius))
    put_keyword(phdr, "CRTHRESH", hstio_float(params.crthresh))
    put_keyword(phdr, "SCALENSE", hstio_float(params.scalense))
    put_keyword(phdr, "BADINPDQ", int(params.badinpdq))
    put_keyword(phdr, "CRMASK", bool(params.crmask))
    put_keyword(phdr, "NEXTEND", int(phdrs[0].get("NEXTEND", 3 * len(result.combined))))
    put_keyword(phdr, "CRCORR", "COMPLETE")
    root = find_root(output_name)
    put_keyword(phdr, "FILENAME", os.path.basename(output_name))
    if mtype:
        put_keyword(phdr, "ASN_MTYP", (mtype.upper(), "Role of the Exposure in the Association"))
    put_keyword(phdr, "ROOTNAME", (root.upper(), "Rootname of the observation set"))
    imsets = []
    for imset in result.combined:
        out = imset.evolve()
        for hdr in (out.hdr, out.err_hdr, out.dq_hdr):
            put_keyword(hdr, "EXPNAME", (root, "9 character exposure identifier"))
        imsets.append(out)
    return phdr, tuple(imsets)
