"""The ACS datasets of the ACS Data Handbook's recalibration examples (section 3.5.2).

acsprov cannot reach MAST, so its simulator reproduces, deterministically, what a MAST
download of each of these datasets holds: the association table, the ``_raw`` and
``_spt`` files of every member and the archive's calibrated ``_flt`` products.  This
module is the catalogue of those datasets; it holds facts only (no arrays, no I/O).

``jd1y04010`` (Examples 1 and 2)
    CAL/ACS program 14398 (Cycle 23, PI Chiaberge), which monitors the WFC charge
    transfer efficiency on an outer field of the globular cluster 47 Tucanae (NGC 104)
    through the narrow-band F502N filter.  One CR-SPLIT=2 pointing: members JD1Y04RLQ
    and JD1Y04RNQ (MEMTYPE ``EXP-CRJ``) and the cosmic-ray-rejected product JD1Y04011
    (``PROD-CRJ``).  Full-frame WFC, gain 2, taken in mid-2016 (post-SM4), so the
    archive runs the pixel-based CTE correction (``PCTECORR=PERFORM``).
``j8is01020`` and ``j8is01040`` (Example 3)
    CAL/ACS program 9662 (Cycle 11): the HRC with both CLEAR filters on 47 Tuc.  Each
    association holds two 1 s repeated exposures (``EXP-RPT``, ``NRPTEXP=2``) and their
    repeat-combined product (``PROD-RPT``).  As for CR-SPLIT associations, the product
    rootname is the association name with its last digit set to 1 (J8IS01021,
    J8IS01041); the handbook example merges both tables into one.
``j8e654010`` (Example 4)
    GO program 9425 (GOODS), visit 54: the Chandra Deep Field South through F606W, a
    2-point line dither of two 480 s exposures J8E654C0Q and J8E654C4Q with the
    dither-combined product J8E654010 (``PROD-DTH``).  Pre-SM4 (late 2002), gain 1.
``jd5702jpq`` (Example 5)
    A single WFC1B-1K subarray exposure of the 47 Tuc calibration field taken in
    2017, after the October 2016 flight-software change that gave subarrays physical
    prescan columns, so that acs_destripe_plus can destripe and CTE-correct it.  The
    archive leaves ``PCTECORR=OMIT`` and ``PCTETAB``/``DRKCFILE`` blank (``N/A``) for
    subarrays; Example 5 fills them in by hand.

Exposure times, dates and pointings not printed in the handbook are plausible values
chosen for the simulation, not the archive's.
"""

from __future__ import annotations

from dataclasses import dataclass

from acsprov.errors import DatasetError

__all__ = [
    "DATASETS",
    "DEFAULT_SEED",
    "SM4_MJD",
    "SWITCH_KEYWORDS",
    "DatasetSpec",
    "MemberSpec",
    "calibration_switches",
    "get_dataset",
]

#: Seed of every simulated file unless another is given.
DEFAULT_SEED: int = 1729

#: EXPSTART (MJD) after which data are post-SM4 (calacs's SM4MJD).
SM4_MJD: float = 54962.0

#: EXPSTART (MJD) from which WFC subarrays carry physical prescan (flight software
#: change of Cycle 24, October 2016).
CYCLE24_SUBARRAY_MJD: float = 57662.0


@dataclass(frozen=True)
class MemberSpec:
    """One exposure of a dataset.

    Parameters
    ----------
    rootname : str
        Upper-case 9-character rootname as in the association table (``JD1Y04RLQ``).
    memtype : str
        MEMTYPE of the exposure in its association (``EXP-CRJ``, ``EXP-RPT``,
        ``EXP-DTH``), or ``""`` for an exposure that belongs to no association.
    expstart : float
        Exposure start, MJD (UTC).
    dither : tuple of float
        Pointing offset of this exposure, in WFC/HRC pixels along (x, y) of the
        first imset, relative to the dataset's reference pointing.
    """

    rootname: str
    memtype: str
    expstart: float
    dither: tuple[float, float] = (0.0, 0.0)

    @property
    def root(self) -> str:
        """Lower-case rootname, as in file names (``jd1y04rlq``)."""
        return self.rootname.lower()


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of the handbook: an association or a single exposure.

    Parameters
    ----------
    name : str
        Lower-case dataset name: the association id, or the rootname of a single
        exposure.
    description : str
        One line saying what the data are.
    detector : {'WFC', 'HRC'}
        ACS detector.
    aperture : str
        APERTURE keyword (``WFC``, ``HRC``, ``WFC1B-1K``...).
    ccdamp : str
        CCDAMP keyword: amplifiers read out (``ABCD`` for WFC full frames).
    ccdgain : float
        Commanded gain CCDGAIN (e-/DN, nominal).
    filter1, filter2 : str
        FILTER1 and FILTER2 keywords.
    exptime : float
        Exposure time of each member, seconds.
    members : tuple of MemberSpec
        Exposures, in association order.
    asn_id : str
        Upper-case association id, or ``NONE`` for a single exposure.
    product : str or None
        Upper-case rootname of the association's product, None for none.
    product_memtype : str
        MEMTYPE of the product row (``PROD-CRJ``, ``PROD-RPT``, ``PROD-DTH``).
    crsplit, nrptexp : int
        CRSPLIT and NRPTEXP keywords of the raw headers.
    targname, ra_targ, dec_targ : str, float, float
        Target name and coordinates (degrees, J2000).
    proposid : int
        HST proposal number.
    field : {'47TUC', 'CDFS'}
        Which simulated sky the simulator renders (crowded cluster or deep field).
    pa_v3 : float
        Position angle of the telescope V3 axis (degrees).
    subarray : bool
        SUBARRAY keyword.
    obstype : str
        OBSTYPE keyword.
    """

    name: str
    description: str
    detector: str
    aperture: str
    ccdamp: str
    ccdgain: float
    filter1: str
    filter2: str
    exptime: float
    members: tuple[MemberSpec, ...]
    asn_id: str
    product: str | None
    product_memtype: str
    crsplit: int
    nrptexp: int
    targname: str
    ra_targ: float
    dec_targ: float
    proposid: int
    field: str
    pa_v3: float
    subarray: bool = False
    obstype: str = "IMAGING"

    @property
    def expstart(self) -> float:
        """EXPSTART (MJD) of the first member."""
        return self.members[0].expstart

    @property
    def is_association(self) -> bool:
        """True if the dataset comes with an ``_asn.fits`` table."""
        return self.asn_id != "NONE"

    @property
    def post_sm4(self) -> bool:
        """True for data taken after Servicing Mission 4 (May 2009)."""
        return self.expstart >= SM4_MJD

    @property
    def rootnames(self) -> tuple[str, ...]:
        """Lower-case rootnames of the member exposures."""
        return tuple(m.root for m in self.members)

    @property
    def asn_filename(self) -> str | None:
        """Name of the association table, None for a single exposure."""
        return f"{self.asn_id.lower()}_asn.fits" if self.is_association else None


_TUC_RA, _TUC_DEC = 5.6551, -72.0702  # outer calibration field of 47 Tuc (NGC 104)
_CDFS_RA, _CDFS_DEC = 53.1226, -27.8056  # GOODS-South

DATASETS: dict[str, DatasetSpec] = {
    "jd1y04010": DatasetSpec(
        name="jd1y04010",
        description="WFC F502N CR-SPLIT=2 of 47 Tuc, CAL/ACS 14398 (Cycle 23)",
        detector="WFC",
        aperture="WFC",
        ccdamp="ABCD",
        ccdgain=2.0,
        filter1="F502N",
        filter2="CLEAR2L",
        exptime=400.0,
        members=(
            MemberSpec("JD1Y04RLQ", "EXP-CRJ", 57599.61832),
            MemberSpec("JD1Y04RNQ", "EXP-CRJ", 57599.62459),
        ),
        asn_id="JD1Y04010",
        product="JD1Y04011",
        product_memtype="PROD-CRJ",
        crsplit=2,
        nrptexp=1,
        targname="NGC104",
        ra_targ=_TUC_RA,
        dec_targ=_TUC_DEC,
        proposid=14398,
        field="47TUC",
        pa_v3=292.41,
    ),
    "j8is01020": DatasetSpec(
        name="j8is01020",
        description="HRC CLEAR 2 x 1 s repeat of 47 Tuc, CAL/ACS 9662 (Cycle 11)",
        detector="HRC",
        aperture="HRC",
        ccdamp="C",
        ccdgain=2.0,
        filter1="CLEAR1S",
        filter2="CLEAR2S",
        exptime=1.0,
        members=(
            MemberSpec("J8IS01J2Q", "EXP-RPT", 52618.41207),
            MemberSpec("J8IS01J3Q", "EXP-RPT", 52618.41280),
        ),
        asn_id="J8IS01020",
        product="J8IS01021",
        product_memtype="PROD-RPT",
        crsplit=1,
        nrptexp=2,
        targname="NGC104",
        ra_targ=_TUC_RA,
        dec_targ=_TUC_DEC,
        proposid=9662,
        field="47TUC",
        pa_v3=117.93,
    ),
    "j8is01040": DatasetSpec(
        name="j8is01040",
        description="HRC CLEAR 2 x 1 s repeat of 47 Tuc, CAL/ACS 9662 (Cycle 11)",
        detector="HRC",
        aperture="HRC",
        ccdamp="C",
        ccdgain=2.0,
        filter1="CLEAR1S",
        filter2="CLEAR2S",
        exptime=1.0,
        members=(
            MemberSpec("J8IS01J8Q", "EXP-RPT", 52618.41771),
            MemberSpec("J8IS01J9Q", "EXP-RPT", 52618.41844),
        ),
        asn_id="J8IS01040",
        product="J8IS01041",
        product_memtype="PROD-RPT",
        crsplit=1,
        nrptexp=2,
        targname="NGC104",
        ra_targ=_TUC_RA,
        dec_targ=_TUC_DEC,
        proposid=9662,
        field="47TUC",
        pa_v3=117.93,
    ),
    # The handbook's printed table shows MEMTYPE EXP-RPT for these two members, but
    # MAST association tables of dither patterns say EXP-DTH (with PROD-DTH for the
    # product, as the same printout shows); the simulator follows MAST.
    "j8e654010": DatasetSpec(
        name="j8e654010",
        description="WFC F606W 2-point line dither of CDF-South, GOODS GO 9425 visit 54",
        detector="WFC",
        aperture="WFC",
        ccdamp="ABCD",
        ccdgain=1.0,
        filter1="F606W",
        filter2="CLEAR2L",
        exptime=480.0,
        members=(
            MemberSpec("J8E654C0Q", "EXP-DTH", 52588.05712, (0.0, 0.0)),
            MemberSpec("J8E654C4Q", "EXP-DTH", 52588.06574, (2.5, 1.5)),
        ),
        asn_id="J8E654010",
        product="J8E654010",
        product_memtype="PROD-DTH",
        crsplit=1,
        nrptexp=1,
        targname="CDF-SOUTH",
        ra_targ=_CDFS_RA,
        dec_targ=_CDFS_DEC,
        proposid=9425,
        field="CDFS",
        pa_v3=43.52,
    ),
    # The handbook does not give the program of JD5702JPQ; 14949 stands for a
    # Cycle 24 CAL/ACS program.
    "jd5702jpq": DatasetSpec(
        name="jd5702jpq",
        description="WFC1B-1K subarray of 47 Tuc after the Cycle 24 subarray change",
        detector="WFC",
        aperture="WFC1B-1K",
        ccdamp="B",
        ccdgain=2.0,
        filter1="F606W",
        filter2="CLEAR2L",
        exptime=30.0,
        members=(MemberSpec("JD5702JPQ", "", 57797.29163),),
        asn_id="NONE",
        product=None,
        product_memtype="",
        crsplit=1,
        nrptexp=1,
        targname="NGC104",
        ra_targ=_TUC_RA,
        dec_targ=_TUC_DEC,
        proposid=14949,
        field="47TUC",
        pa_v3=21.80,
        subarray=True,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    """Return the catalogue entry of a dataset.

    Parameters
    ----------
    name : str
        Dataset name, any case (``jd1y04010``, ``JD5702JPQ``).

    Returns
    -------
    DatasetSpec

    Raises
    ------
    DatasetError
        If the simulator does not know the dataset.

    Examples
    --------
    >>> get_dataset("JD1Y04010").product
    'JD1Y04011'
    """
    key = name.strip().lower()
    try:
        return DATASETS[key]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(
            f"unknown dataset {name!r}: the simulator knows {known}"
        ) from None


#: Calibration switches of an ACS raw primary header (Handbook Table 3.7 order).
SWITCH_KEYWORDS: tuple[str, ...] = (
    "DQICORR", "ATODCORR", "BLEVCORR", "BIASCORR", "FLSHCORR", "CRCORR", "EXPSCORR",
    "SHADCORR", "PCTECORR", "DARKCORR", "FLATCORR", "PHOTCORR", "RPTCORR", "DRIZCORR",
    "SINKCORR", "GLINCORR", "LFLGCORR",
)


def calibration_switches(spec: DatasetSpec) -> dict[str, str]:
    """Switch values the archive writes into the raw headers of `spec`.

    CRCORR is PERFORM for CR-SPLIT data and RPTCORR for repeats; the pixel-based CTE
    correction (PCTECORR) runs on post-SM4 WFC full frames only, never on subarrays
    or pre-SM4 data; sink pixels (SINKCORR) are flagged on post-SM4 WFC data; the
    non-linearity switches (GLINCORR, LFLGCORR) apply to the SBC MAMA only.

    Parameters
    ----------
    spec : DatasetSpec

    Returns
    -------
    dict
        Every keyword of :data:`SWITCH_KEYWORDS` mapped to ``PERFORM`` or ``OMIT``.

    Examples
    --------
    >>> calibration_switches(get_dataset("jd5702jpq"))["PCTECORR"]
    'OMIT'
    """
    wfc = spec.detector == "WFC"
    post = spec.post_sm4

    def on(cond: bool) -> str:
        return "PERFORM" if cond else "OMIT"

    values = {
        "DQICORR": on(True),
        "ATODCORR": on(False),
        "BLEVCORR": on(True),
        "BIASCORR": on(True),
        "FLSHCORR": on(False),
        "CRCORR": on(spec.crsplit > 1),
        "EXPSCORR": on(True),
        "SHADCORR": on(False),
        "PCTECORR": on(wfc and post and not spec.subarray),
        "DARKCORR": on(True),
        "FLATCORR": on(True),
        "PHOTCORR": on(True),
        "RPTCORR": on(spec.nrptexp > 1),
        "DRIZCORR": on(True),
        "SINKCORR": on(wfc and post),
        "GLINCORR": on(False),
        "LFLGCORR": on(False),
    }
    return {k: values[k] for k in SWITCH_KEYWORDS}
