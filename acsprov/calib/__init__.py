"""The native calacs engine: calacs and its tasks ACSCCD, ACSCTE, ACS2D and ACSREJ.

One module (or package) per calacs task, named after hstcal's, each holding the
task's shell (switch logic, reference files, trailer and header updates) and its
arithmetic as pure functions of arrays:

* :mod:`.calacs`: calacs's top level (association logic, task order, temporaries,
  trailers; :func:`~.calacs.run_native`, :func:`~.calacs.run_single`);
* :mod:`.acsccd`: DQICORR, ATODCORR, BLEVCORR (:mod:`.acsccd.blevcorr`), BIASCORR,
  saturation, gain and noise, SINKCORR;
* :mod:`.acscte`: PCTECORR (numba kernels in :mod:`._cte_kernels`);
* :mod:`.acs2d`: DARKCORR, FLSHCORR, FLATCORR, SHADCORR, PHOTCORR,
  GLINCORR/LFLGCORR;
* :mod:`.acsrej`: CRCORR/RPTCORR, split by concern.

Shared by the tasks: :mod:`.steps` (switch logic and per-exposure keys),
:mod:`.reffiles` (reference lookup and reading), :mod:`.fitsio` (FITS files, the
only I/O), :mod:`.imset`, :mod:`.trailer`, :mod:`.version` (the engine's name),
:mod:`.chips` (a WFC exposure's two chips on two threads), :mod:`.halves` (one
chip's work in two halves when the other core is free), :mod:`.imarith` (image
set arithmetic) and :mod:`.kernels` (the numba kernels, compiled ahead of time by
``make install``, which runs :mod:`.warmup`).
Tasks import shared modules and never calacs; calacs imports the tasks.
"""
