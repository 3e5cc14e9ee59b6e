"""The archive's calibrated ``_flt`` products of simulated exposures.

MAST serves, beside the raw data, the ``_flt.fits`` files its pipeline made.  The
simulator makes them from its truth, not by running a calibration engine, so that
acsprov's own calibrations can be compared with an independent answer: the raw DN
minus the superbias, times the gain, with the post-SM4 bias shift and cross-talk
undone (truth.remove_bias_shift, as calacs models them), minus each amplifier's true
bias level and, for post-SM4 full frames (which calacs destripes), the true bias
stripes, trimmed to the science pixels, minus the superdark the archive used, divided
by the pixel flat.  Subarrays keep their stripes, as calacs leaves them (the
handbook's Example 5 removes them with acs_destripe_plus).  ERR is the Poisson and
read noise of that signal through the flat; DQ carries the bad-pixel table, hot
pixels of the superdark (16), sink pixels (1024, post-SM4 WFC), full-well (256) and
A-to-D (2048) saturation and, for CR-SPLIT and repeat associations, the cosmic rays
the archive's rejection found (8192).  Headers are the raw ones with the switches of
calacs's ACSCCD and ACS2D steps set to COMPLETE (:data:`FLT_SWITCHES`), the archival
reference files, DARKTIME with the post-SM4 overhead, photometry keywords in each SCI
header (as calacs writes them), a CAL_VER naming the pipeline of the time and
``SIMULATE = T``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from acsprov.simulate import truth
from acsprov.simulate.datasets import DatasetSpec, calibration_switches
from acsprov.simulate.exposure import (
    CR_FLAG_SIGMA,
    ChipTruth,
    SimulatedExposure,
    exposure_darktime,
    filter_key,
)
from acsprov.simulate.geometry import (
    ChipLayout,
    amp_of_columns,
    amp_readout_at_top,
    physical_slices,
    readout_view,
    science_slices,
    window_slices,
)
from acsprov.simulate.reffiles import (
    BIAS_ERR_DN,
    DARK_ERR,
    FLAT_ERR,
    HOT_PIXEL_THRESHOLD,
    recipe_parameters,
    references_for,
    sink_map,
    write_fits_atomic,
)

__all__ = ["DQ", "FLT_SWITCHES", "archival_cal_ver", "destriped", "make_flt", "photmode",
           "write_flt"]

#: ACS data-quality bits used by the simulated products.
DQ = {
    "bad_pixel": 4,
    "hot_pixel": 16,
    "bias_structure": 128,
    "saturated": 256,
    "sink": 1024,
    "atod_saturated": 2048,
    "cosmic_ray": 8192,
}
SDQFLAGS = 31743

# Representative CALACS versions of the archive's pipeline over the years.
_CAL_VERSIONS = (
    (52275.0, "4.1.1 (02-Oct-2002)"),
    (54466.0, "4.6.4 (02-Apr-2008)"),
    (57388.0, "9.0.0 (06-Jun-2016)"),
    (57754.0, "9.1.0 (20-Jan-2017)"),
)


def archival_cal_ver(mjd: float) -> str:
    """CAL_VER of the pipeline that processed data taken at `mjd` when they arrived."""
    version = _CAL_VERSIONS[0][1]
    for start, name in _CAL_VERSIONS:
        if mjd >= start:
            version = name
    return version


def photmode(spec: DatasetSpec, expstart: float | None = None) -> str:
    """PHOTMODE keyword as calacs builds it (CLEAR filters dropped; WFC1 for WFC).

    Parameters
    ----------
    spec : DatasetSpec
    expstart : float, optional
        EXPSTART (MJD) of the exposure; default the dataset's first exposure.
    """
    parts = ["ACS", "WFC1" if spec.detector == "WFC" else spec.detector]
    parts += [f for f in (spec.filter1, spec.filter2) if not f.startswith("CLEAR")]
    mjd = spec.expstart if expstart is None else expstart
    return " ".join(parts) + f" MJD#{mjd:.4f}"


#: Switches calacs sets to COMPLETE in an ``_flt`` (ACSCCD and ACS2D steps); CRCORR,
#: RPTCORR (ACSREJ, whose product is the ``_crj``), PCTECORR (ACSCTE, the ``_flc``)
#: and DRIZCORR (AstroDrizzle) keep their raw values.
FLT_SWITCHES = ("DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "FLSHCORR", "EXPSCORR",
                "SHADCORR", "DARKCORR", "FLATCORR", "PHOTCORR", "SINKCORR", "GLINCORR",
                "LFLGCORR")


def destriped(spec: DatasetSpec) -> bool:
    """True if calacs removes the bias stripes of `spec` (post-SM4 WFC full frames)."""
    return spec.detector == "WFC" and spec.post_sm4 and not spec.subarray


def _reffile(refs: dict[str, str], keyword: str) -> str | None:
    value = refs[keyword]
    return None if value == "N/A" else value.split("$", 1)[-1]


#: Rows worked on at a time where a full-size float64 temporary would otherwise be made.
_BAND = 256


def _sink_flags(e_raw: np.ndarray, chip: ChipLayout, epoch: float, seed: int) -> np.ndarray:
    """Sink-pixel flags of calacs's SINKCORR rule, on a raw-geometry image (electrons)."""
    smap = sink_map(chip, epoch, seed=seed)
    flags = (smap < 0).astype(bool)
    ys, xs = np.nonzero(smap < -1)
    if ys.size == 0:
        return flags
    at_sink = e_raw[ys, xs]
    step = -1 if amp_readout_at_top(chip) else 1
    going = np.ones(ys.size, bool)
    k = 1
    while going.any():
        yk = ys + k * step
        inside = (yk >= 0) & (yk < chip.ny)
        going &= inside
        yk = np.where(inside, yk, 0)
        thresh = smap[yk, xs]
        going &= (thresh > 0) & (thresh > at_sink)
        flags[yk[going], xs[going]] = True
        k += 1
    return flags


def _chip_products(exposure: SimulatedExposure, ct: ChipTruth, refs: dict[str, str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    spec, seed, chip = exposure.spec, exposure.seed, ct.chip
    det = spec.detector
    switches = calibration_switches(spec)
    amps = amp_of_columns(chip)
    gain = np.array([truth.readout_gain(det, a, spec.ccdgain) for a in amps])
    superbias = truth.superbias(det, chip.ccdchip, seed=seed)[window_slices(chip)]
    e_raw = ct.raw.astype(np.float64)
    e_raw -= superbias
    e_raw *= gain[None, :]
    if ct.bias_shift:  # as calacs undoes it, from the amplifier's magic square
        for amp in chip.amps:
            view = readout_view(e_raw, chip, amp)
            square = truth.magic_square_mean(view)
            level = square if square is not None else (
                ct.bias_dn[amp] * truth.readout_gain(det, amp, spec.ccdgain))
            view[:] = truth.remove_bias_shift(view, amp, level=level)
    e_raw -= (np.array([ct.bias_dn[a] for a in amps]) * gain)[None, :]
    if ct.crosstalk:  # a band of rows at a time: no second full-size float64 array
        for r0 in range(0, e_raw.shape[0], _BAND):
            band = e_raw[r0:r0 + _BAND]
            band += truth.CROSSTALK * band[:, ::-1]
    if destriped(spec):
        e_raw -= ct.stripes
    e_raw = e_raw.astype(np.float32)
    rows, cols = science_slices(chip)
    prow, pcol = physical_slices(chip)
    e = e_raw[rows, cols]
    darkname = _reffile(refs, "DARKFILE")
    epoch = float(recipe_parameters(darkname)["epoch"]) if darkname else spec.expstart
    dark = truth.dark_rate(det, chip.ccdchip, epoch, seed=seed)[prow, pcol]
    flat = truth.pixel_flat(det, chip.ccdchip, filter_key(spec), seed=seed)[prow, pcol]
    darktime = exposure_darktime(spec)
    # (float32 throughout; the same operations in the same order, fewer full-size
    # temporaries)
    signal = e - dark * np.float32(darktime)
    sci = signal / flat
    rn = np.array([truth.read_noise(det, a) for a in amps])[cols]
    var0 = (rn**2 + (gain[cols] * BIAS_ERR_DN) ** 2).astype(np.float32)
    # as calacs propagates it: read noise, superbias and Poisson noise, plus the
    # superdark's ERR, then through the flat with the flat's own ERR
    err = np.clip(e, 0.0, None)
    err += var0[None, :]
    err += np.float32((DARK_ERR * darktime) ** 2)
    signal *= np.float32(FLAT_ERR)
    signal /= flat
    err += np.square(signal, out=signal)
    del signal
    np.sqrt(err, out=err)
    err /= flat

    dq = np.zeros(e.shape, np.int16)
    for bp in truth.bad_pixels(det, chip.ccdchip, seed=seed):
        x0, y0 = bp.pix1 - 1 - pcol.start, bp.pix2 - 1 - prow.start
        if bp.axis == 2:
            ys, xs = slice(max(y0, 0), max(y0 + bp.length, 0)), slice(max(x0, 0), max(x0 + 1, 0))
        else:
            ys, xs = slice(max(y0, 0), max(y0 + 1, 0)), slice(max(x0, 0), max(x0 + bp.length, 0))
        dq[ys, xs] |= bp.value
    full_well = truth.full_well(det, chip.ccdchip, seed=seed)[window_slices(chip)][rows, cols]
    dq[e > full_well] |= DQ["saturated"]
    dq[ct.raw[rows, cols] >= 65535] |= DQ["atod_saturated"]
    dq[dark > HOT_PIXEL_THRESHOLD] |= DQ["hot_pixel"]
    snkname = _reffile(refs, "SNKCFILE")
    if snkname and switches["SINKCORR"] == "PERFORM":
        snk_epoch = float(recipe_parameters(snkname)["epoch"])
        dq[_sink_flags(e_raw, chip, snk_epoch, seed)[rows, cols]] |= DQ["sink"]
    if spec.is_association and (switches["CRCORR"] == "PERFORM"
                                or switches["RPTCORR"] == "PERFORM"):
        for r0 in range(0, e.shape[0], _BAND):  # float64 a band of rows at a time
            band, cr = e[r0:r0 + _BAND], ct.cosmic_rays[r0:r0 + _BAND]
            noise = np.sqrt(np.clip(band - cr, 0.0, None) + rn[None, :] ** 2)
            dq[r0:r0 + _BAND][cr > CR_FLAG_SIGMA * noise] |= DQ["cosmic_ray"]

    cold = dark <= HOT_PIXEL_THRESHOLD  # calacs averages the dark over unflagged pixels
    stats = {
        # mean bias level subtracted, electrons
        "MEANBLEV": float(np.mean([ct.bias_dn[a] * truth.readout_gain(det, a, spec.ccdgain)
                                   for a in chip.amps])),
        "MEANDARK": float(np.mean(dark[cold], dtype=np.float64) * darktime),
    }
    return sci.astype(np.float32, copy=False), err.astype(np.float32, copy=False), dq, stats


def _stat_keywords(h: fits.Header, sci: np.ndarray, err: np.ndarray, dq: np.ndarray) -> None:
    good = (dq & SDQFLAGS) == 0
    h["NGOODPIX"] = (int(good.sum()), "number of good pixels")
    h["SDQFLAGS"] = (SDQFLAGS, "serious data quality flags")
    if good.any():
        s, n = sci[good], err[good]
        n[~(n > 0)] = np.inf
        snr = np.divide(s, n, out=n)  # s / where(n > 0, n, inf), in n's memory
        h["GOODMIN"] = (float(s.min()), "minimum value of good pixels")
        h["GOODMAX"] = (float(s.max()), "maximum value of good pixels")
        h["GOODMEAN"] = (float(s.mean(dtype=np.float64)), "mean value of good pixels")
        h["SNRMIN"] = (float(snr.min()), "minimum signal to noise of good pixels")
        h["SNRMAX"] = (float(snr.max()), "maximum signal to noise of good pixels")
        h["SNRMEAN"] = (float(snr.mean(dtype=np.float64)), "mean value of signal to noise")


def make_flt(exposure: SimulatedExposure) -> fits.HDUList:
    """The archive's ``_flt.fits`` of a simulated exposure.

    Parameters
    ----------
    exposure : SimulatedExposure
        From :func:`acsprov.simulate.raw.simulate_exposure`.

    Returns
    -------
    astropy.io.fits.HDUList
        Primary plus SCI/ERR/DQ per chip (EXTVER order of the raw file), trimmed to
        the science pixels, SCI and ERR in electrons (float32), DQ int16.
    """
    spec = exposure.spec
    refs = references_for(spec)
    ph = exposure.primary.copy()
    ph["FILENAME"] = f"{exposure.rootname}_flt.fits"
    for key, value in calibration_switches(spec).items():
        if value == "PERFORM" and key in FLT_SWITCHES:
            ph[key] = "COMPLETE"
    ph["DARKTIME"] = (exposure_darktime(spec), "dark current exposure time (seconds)")
    amps_read = spec.ccdamp
    for amp in "ABCD":
        on = amp in amps_read
        ph[f"ATODGN{amp}"] = (truth.readout_gain(spec.detector, amp, spec.ccdgain) if on else 0.0,
                              f"calibrated gain for amplifier {amp}")
        ph[f"READNSE{amp}"] = (truth.read_noise(spec.detector, amp) if on else 0.0,
                               f"calibrated read noise for amplifier {amp}")
    filt = filter_key(spec)
    photflam, photplam, photbw = truth.photometry(spec.detector, filt, exposure.member.expstart)
    phot = {
        "PHOTMODE": (photmode(spec, exposure.member.expstart), "observation configuration"),
        "PHOTFLAM": (photflam, "inverse sensitivity, ergs/cm2/Ang/electron"),
        "PHOTZPT": (-21.1, "ST magnitude zero point"),
        "PHOTPLAM": (photplam, "Pivot wavelength (Angstroms)"),
        "PHOTBW": (photbw, "RMS bandwidth of filter plus detector"),
    }
    ph["CAL_VER"] = (archival_cal_ver(spec.expstart), "CALACS code version")
    ph["HISTORY"] = ("Archive product simulated from the truth of the acsprov simulator, "
                     "not made by running calacs.")
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for ct, raw_sci in zip(exposure.chips, exposure.sci_headers, strict=True):
        # only this chip's truth arrays in memory while its products are made (about
        # 160 MB a WFC chip), not also the other chip's: made again, the same values
        truth.clear_caches()
        sci, err, dq, stats = _chip_products(exposure, ct, refs)
        rows, cols = science_slices(ct.chip)
        h = raw_sci.copy()
        h["BUNIT"] = "ELECTRONS"
        h["LTV1"] = ct.chip.ltv1 - cols.start
        h["LTV2"] = ct.chip.ltv2 - rows.start
        h["CRPIX1"] = raw_sci["CRPIX1"] - cols.start
        h["CRPIX2"] = raw_sci["CRPIX2"] - rows.start
        h["SIZAXIS1"] = sci.shape[1]
        h["SIZAXIS2"] = sci.shape[0]
        h["MEANDARK"] = (stats["MEANDARK"], "average of the dark values subtracted")
        h["MEANBLEV"] = (stats["MEANBLEV"], "average of all bias levels subtracted (e-)")
        for key, card in phot.items():  # calacs writes them to each SCI header
            h[key] = card
        _stat_keywords(h, sci, err, dq)
        aux = {k: h[k] for k in ("ROOTNAME", "CCDCHIP", "LTV1", "LTV2", "LTM1_1", "LTM2_2",
                                 "WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1",
                                 "CTYPE2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "ORIENTAT")}
        sci_hdu = fits.ImageHDU(data=sci, header=h, name="SCI")
        err_hdu = fits.ImageHDU(data=err, name="ERR")
        dq_hdu = fits.ImageHDU(data=dq, name="DQ")
        for hdu, bunit in ((err_hdu, "ELECTRONS"), (dq_hdu, "UNITLESS")):
            hdu.header["EXTVER"] = ct.chip.extver
            hdu.header["INHERIT"] = True
            hdu.header["BUNIT"] = bunit
            for k, v in aux.items():
                hdu.header[k] = v
        hdus += [sci_hdu, err_hdu, dq_hdu]
    return fits.HDUList([fits.PrimaryHDU(header=ph), *hdus])


def write_flt(exposure: SimulatedExposure, path: Path) -> Path:
    """Write :func:`make_flt` of `exposure` atomically to `path`."""
    return write_fits_atomic(make_flt(exposure), path)
