"""ACSCCD: the CCD steps of calacs (``acsccd.e``), shell and arithmetic.

DQICORR, ATODCORR, BIASCORR, BLEVCORR (overscan, post-SM4 bias shift, cross-talk
and destriping), DARKTIME, full-well saturation, gain and ERR initialisation,
SINKCORR and the overscan trim, in calacs's ``DoCCD`` order:

* :mod:`.task`: :func:`run_acsccd`, :data:`CCD_STEPS` and the shells of every step
  but BLEVCORR (switch logic, reference files, trailer and header updates);
* :mod:`.blevcorr`: BLEVCORR whole, its shell and its arithmetic;
* :mod:`.pixels`: the arithmetic of the other steps, as pure functions of imsets;
* :mod:`.context`: the state the step shells pass along.

The names below are the task's public API; import them from here.
"""

from __future__ import annotations

from acsprov.calib.acsccd.blevcorr import (
    apply_crosstalk,
    apply_crosstalk_inplace,
    bias_shift,
    bias_shift_inplace,
    destripe,
    destripe_inplace,
    subtract_overscan,
    trim_overscan,
)
from acsprov.calib.acsccd.pixels import (
    ATODSAT,
    SATPIXEL,
    SINKPIXEL,
    AmpGeometry,
    amp_geometry,
    darktime,
    flag_bad_pixels,
    flag_full_well,
    flag_full_well_inplace,
    flag_sinks,
    flag_sinks_inplace,
    init_noise,
    init_noise_inplace,
    subtract_bias,
    subtract_bias_inplace,
    to_electrons,
    to_electrons_inplace,
)
from acsprov.calib.acsccd.task import CCD_STEPS, run_acsccd

__all__ = [
    "ATODSAT",
    "CCD_STEPS",
    "SATPIXEL",
    "SINKPIXEL",
    "AmpGeometry",
    "amp_geometry",
    "apply_crosstalk",
    "apply_crosstalk_inplace",
    "bias_shift",
    "bias_shift_inplace",
    "darktime",
    "destripe",
    "destripe_inplace",
    "flag_bad_pixels",
    "flag_full_well",
    "flag_full_well_inplace",
    "flag_sinks",
    "flag_sinks_inplace",
    "init_noise",
    "init_noise_inplace",
    "run_acsccd",
    "subtract_bias",
    "subtract_bias_inplace",
    "subtract_overscan",
    "to_electrons",
    "to_electrons_inplace",
    "trim_overscan",
]
