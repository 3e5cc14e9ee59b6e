"""The native calacs engine: ACSCCD, ACSCTE, ACS2D and ACSREJ in numpy/numba.

Each calacs step is a pure function of arrays in the module named after its task
(:mod:`.ccd`, :mod:`.cte`, :mod:`.twod`, :mod:`.rej`); reading and writing FITS files
happens only at the edges (:mod:`.fitsio`), and reference-file lookup in
:mod:`.reffiles`.
"""
