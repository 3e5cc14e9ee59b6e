"""Association tables: reading, normalising, refusing hostile member names."""

from __future__ import annotations

import pytest
from helpers import make_asn

from acsprov.asn import read_asn, validate_rootname
from acsprov.errors import BadInputError


def test_read_crsplit_association(tmp_path):
    path = make_asn(
        tmp_path / "jd1y04010_asn.fits",
        [("JD1Y04RLQ", "EXP-CRJ", True), ("JD1Y04RNQ", "EXP-CRJ", True),
         ("JD1Y04011", "PROD-CRJ", True)],
    )
    asn = read_asn(path)
    assert asn.asn_id == "jd1y04010"
    assert [m.name for m in asn.exposures] == ["jd1y04rlq", "jd1y04rnq"]
    assert [(m.name, m.kind) for m in asn.products] == [("jd1y04011", "CRJ")]


def test_handbook_example_3_quirks_are_accepted(tmp_path):
    # Example 3 adds the row ['J8IS01xx1', 'PROD_CRJ', 'yes'] exactly as printed.
    path = make_asn(
        tmp_path / "merged_asn.fits",
        [("J8IS01J2Q", "EXP-RPT", True), ("J8IS01J3Q", "EXP-RPT", True),
         ("J8IS01xx1", "PROD_CRJ", "yes")],
    )
    asn = read_asn(path)
    assert asn.products[0].name == "j8is01xx1"
    assert asn.products[0].memtype == "PROD-CRJ"
    assert asn.products[0].present is True


@pytest.mark.parametrize("memname", ["../x", "/etc/passwd", "a/b", "..", "", "x y"])
def test_hostile_memname_is_refused(tmp_path, memname):
    path = make_asn(tmp_path / "bad_asn.fits", [(memname, "EXP-CRJ", True)])
    with pytest.raises(BadInputError, match="is not a plain rootname"):
        read_asn(path)


def test_unknown_memtype_is_refused(tmp_path):
    path = make_asn(tmp_path / "bad_asn.fits", [("J8IS01J2Q", "EXPOSURE", True)])
    with pytest.raises(BadInputError, match="MEMTYPE 'EXPOSURE'"):
        read_asn(path)


def test_association_without_exposures_is_refused(tmp_path):
    path = make_asn(tmp_path / "bad_asn.fits", [("J8IS01021", "PROD-RPT", True)])
    with pytest.raises(BadInputError, match="lists no exposures"):
        read_asn(path)


def test_not_a_table_is_refused(tmp_path):
    path = tmp_path / "x_asn.fits"
    path.write_bytes(b"SIMPLE  = nonsense")
    with pytest.raises(BadInputError, match="not a readable association table"):
        read_asn(path)


def test_validate_rootname_lowercases():
    assert validate_rootname("JD1Y04RLQ") == "jd1y04rlq"
