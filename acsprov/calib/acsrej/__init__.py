"""ACSREJ: cosmic-ray rejection of CR-SPLIT and repeated CCD exposures (CRCORR, RPTCORR).

calacs combines the ``_blv_tmp`` (or ``_blc_tmp``) files of an association's members
into one ``_crj_tmp`` (``_crc_tmp``) with its task ACSREJ; ACS2D then turns that into
the ``_crj`` (``_crc``).  All arrays are in electrons.  For every chip:

1. **Sky** (CRREJTAB column SKYSUB): ``none`` gives 0; ``mode`` gives, for each
   exposure, the mode of a histogram of its pixels with DQ = 0, interpolated with a
   parabola through the peak bin.  Bins are 1 e- wide (wider when the range would need
   more than 10000 bins); the range runs from the minimum of the first exposure's
   pixels free of BADINPDQ bits to twice their mean minus that minimum.
2. **Initial guess** (INITGUES): per pixel, the median (``med``) or minimum (``min``)
   of the count rates ``(SCI - sky) / EXPTIME`` of the exposures whose DQ has none of
   the BADINPDQ bits.
3. **Iterations**, one per CRSIGMAS value ``s``.  A pixel of exposure ``k`` (exposure
   time ``t``) is a hit if its rate differs from the current guess ``g`` by more than
   ``(rate - g)^2 > s^2 (ERR^2 + (SCALENSE/100 * max(g t, 0))^2) / t^2``.  Pixels
   within CRRADIUS of a hit are rejected too (*spill*) when
   ``(rate - g)^2 > CRTHRESH^2 s^2 ERR^2 / t^2``.  The new guess is the mean rate of the
   pixels left, weighted by exposure time.
4. **Output**: SCI = guess x total exposure time + total sky; ERR =
   total time / accepted time x sqrt(sum of the accepted ERR^2) (SCI = total sky and
   ERR = 0 where no exposure is accepted); DQ = OR of the input DQ without bits 2 and
   8192, plus 8192 (DATAREJECT) where every exposure was rejected.  With CRMASK, bit
   8192 is set in each member's DQ where that exposure was rejected, cleared elsewhere.

calacs's behaviour is reproduced in the details that change results (see
:func:`reject_cosmic_rays`, Notes).

The package holds one module per concern: :mod:`.params` (the CRREJTAB row and
CRSIGMAS), :mod:`.sky`, :mod:`.reject` (initial guess, iterations, combination, CR
masks; numba kernels with numpy twins, ``use_kernel=False``), :mod:`.shading` (the
shutter shading correction), :mod:`.headers` (member checks, the ``_crj_tmp``
header) and :mod:`.task` (:func:`run_acsrej`: files in, files out).  The names
below are the task's public API; import them from here.
"""

from __future__ import annotations

from acsprov.calib.acsrej.headers import crj_headers, find_root
from acsprov.calib.acsrej.params import (
    MAX_FILES,
    MAX_ITER,
    CrRejParamError,
    CrRejParams,
    parse_crsigmas,
    read_crrejtab,
    select_crrej_row,
)
from acsprov.calib.acsrej.reject import (
    CRFLAG,
    RejectResult,
    flag_rejected,
    initial_guess,
    reject_cosmic_rays,
)
from acsprov.calib.acsrej.shading import (
    inverse_exposure_times,
    shade_combined,
    shading_divisor,
    shading_threshold_rows,
)
from acsprov.calib.acsrej.sky import sky_levels
from acsprov.calib.acsrej.task import run_acsrej

__all__ = [
    "CRFLAG",
    "MAX_FILES",
    "MAX_ITER",
    "CrRejParamError",
    "CrRejParams",
    "RejectResult",
    "crj_headers",
    "find_root",
    "flag_rejected",
    "initial_guess",
    "inverse_exposure_times",
    "parse_crsigmas",
    "read_crrejtab",
    "reject_cosmic_rays",
    "run_acsrej",
    "select_crrej_row",
    "shade_combined",
    "shading_divisor",
    "shading_threshold_rows",
    "sky_levels",
]
