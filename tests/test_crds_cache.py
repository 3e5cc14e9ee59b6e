"""The local CRDS cache and the bestrefs wrapper, checked with the real crds library.

Reference and raw files are tiny hand-made FITS files (crds reads headers only); the
expected selections below follow from their headers and dates, worked out by hand.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from acsprov import refs
from acsprov.errors import AcsprovError, BadInputError, ReferenceFileError
from acsprov.keywords import REFERENCE_KEYWORDS
from acsprov.simulate import crds_cache
from acsprov.simulate.crds_cache import ACS_REFTYPES, build_crds_cache

CRDS_EXE = Path(sys.executable).with_name("crds")

# name -> (FILETYPE, extra primary keywords, kind); USEAFTER defaults to 2002.
REFS = {
    "t1_ccd.fits": ("CCD PARAMETERS", {}, "table"),
    "t1_osc.fits": ("OVERSCAN", {}, "table"),
    "t1_bpx.fits": ("BAD PIXELS", {}, "table"),
    "t1_crr.fits": ("COSMIC RAY REJECTION", {}, "table"),
    "t1_imp.fits": ("IMAGE PHOTOMETRY TABLE", {}, "table"),
    "t1_cte.fits": ("PIXCTE", {}, "table"),
    "t1_bia.fits": ("BIAS", {"CCDAMP": "ANY", "CCDGAIN": 2.0, "APERTURE": "ANY_FULL"}, "raw"),
    "t1_drk.fits": ("DARK", {"CCDAMP": "ANY", "CCDGAIN": -1}, "image"),
    "t2_drk.fits": ("DARK", {"CCDAMP": "ANY", "CCDGAIN": -1,
                             "USEAFTER": "Jan 01 2017 00:00:00"}, "image"),
    "t1_dkc.fits": ("CTEDARK", {"CCDAMP": "ANY", "CCDGAIN": 2.0}, "image"),
    "f606w_pfl.fits": ("PIXEL-TO-PIXEL FLAT", {"CCDAMP": "ANY", "FILTER1": "F606W",
                                               "FILTER2": "CLEAR2L", "OBSTYPE": "IMAGING",
                                               "FW1OFFST": 0, "FW2OFFST": 0,
                                               "FWSOFFST": 0}, "image"),
    "f814w_pfl.fits": ("PIXEL-TO-PIXEL FLAT", {"CCDAMP": "ANY", "FILTER1": "CLEAR1L",
                                               "FILTER2": "F814W", "OBSTYPE": "IMAGING"},
                       "image"),
    "t1_sat.fits": ("FULL-WELL SATURATION LEVEL MAP", {"CCDAMP": "N/A"}, "raw"),
    "t1_snk.fits": ("SINK PIXELS", {}, "raw"),
}


def make_ref(path: Path, filetype: str, extra: dict, kind: str) -> Path:
    """A tiny ACS/WFC reference file whose primary header carries its CRDS keywords."""
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr.update({"INSTRUME": "ACS", "DETECTOR": "WFC", "FILETYPE": filetype,
                "USEAFTER": "Jan 01 2002 00:00:00", "PEDIGREE": "INFLIGHT 01/01/2002 01/01/2003",
                "DESCRIP": "test reference file"})
    hdr.update(extra)
    if kind == "table":
        ext = fits.BinTableHDU.from_columns([fits.Column(name="CCDCHIP", format="J",
                                                         array=np.array([1, 2]))])
    else:
        ext = fits.ImageHDU(np.zeros((4, 5), np.float32), name="SCI")
        ext.header["LTV1"] = 24.0 if kind == "raw" else 0.0
        ext.header["LTV2"] = 0.0
    fits.HDUList([primary, ext]).writeto(path)
    return path


def make_raw(path: Path, **keywords: object) -> Path:
    """A tiny WFC raw file, post-SM4, with every keyword the CRDS rules read."""
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr.update({"INSTRUME": "ACS", "DETECTOR": "WFC", "ROOTNAME": path.name[:9],
                "DATE-OBS": "2017-09-04", "TIME-OBS": "06:00:00", "CCDAMP": "A",
                "CCDGAIN": 2.0, "APERTURE": "WFC1A-2K", "FILTER1": "F606W",
                "FILTER2": "CLEAR2L", "OBSTYPE": "IMAGING", "FLASHCUR": "OFF",
                "SHUTRPOS": "A", "FW1OFFST": 0, "FW2OFFST": 0, "FWSOFFST": 0})
    for switch in ("DQICORR", "BLEVCORR", "BIASCORR", "PCTECORR", "DARKCORR", "FLATCORR",
                   "PHOTCORR", "SINKCORR", "DRIZCORR"):
        hdr[switch] = "PERFORM"
    for switch in ("ATODCORR", "FLSHCORR", "CRCORR", "RPTCORR", "EXPSCORR", "SHADCORR",
                   "GLINCORR", "LFLGCORR"):
        hdr[switch] = "OMIT"
    for key in REFERENCE_KEYWORDS:
        hdr[key] = "N/A"
    for key, value in keywords.items():
        if value is None:
            del hdr[key]
        else:
            hdr[key] = value
    sci = fits.ImageHDU(np.zeros((6, 8), np.uint16), name="SCI")
    sci.header.update({"CCDCHIP": 1, "LTV1": 24.0, "LTV2": 20.0})
    fits.HDUList([primary, sci]).writeto(path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def refdir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refs")
    for name, (filetype, extra, kind) in REFS.items():
        make_ref(out / name, filetype, extra, kind)
    return out


@pytest.fixture(scope="module")
def cache(refdir, tmp_path_factory):
    root = tmp_path_factory.mktemp("crds") / "cache"
    return build_crds_cache(root, sorted(refdir.glob("*.fits")))


# ---------------------------------------------------------------------------------------
# the cache


def test_cache_layout_and_names(cache, refdir):
    root = cache.cache
    assert cache.name == "hst_9001.pmap"
    assert (root / "config/hst/ref_cache_subdir_mode").read_text().strip() == "flat"
    info = ast.literal_eval((root / "config/hst/server_config").read_text())
    assert info["operational_context"] == "hst_9001.pmap"
    assert info["observatory"] == "hst"
    assert info["bad_files_list"] == []
    assert info["force_remote_mode"] == 0
    # references are flat in references/hst/ with unchanged content
    for name in REFS:
        assert sha256(root / "references/hst" / name) == sha256(refdir / name)
    assert cache.references["darkfile"] == ("t1_drk.fits", "t2_drk.fits")
    assert cache.rmaps["biasfile"] == "hst_acs_biasfile_9001.rmap"
    assert "atodtab" not in cache.rmaps
    imap = (cache.mappings_dir / "hst_acs_9001.imap").read_text()
    assert "'atodtab' : 'N/A'," in imap
    assert "'biasfile' : 'hst_acs_biasfile_9001.rmap'," in imap
    assert "'ACS' : 'hst_acs_9001.imap'," in (cache.mappings_dir / cache.pmap).read_text()


def test_rmap_header_fields_and_rows(cache):
    text = (cache.mappings_dir / "hst_acs_biasfile_9001.rmap").read_text()
    namespace: dict = {}
    header_src = text.split("selector =")[0]
    exec(header_src, namespace)  # the header is a plain dict literal
    header = namespace["header"]
    for key in ("observatory", "instrument", "filekind", "derived_from", "mapping", "name",
                "parkey", "sha1sum", "suffix", "text_descr", "classes", "rmap_relevance"):
        assert key in header, key
    assert header["name"] == "hst_acs_biasfile_9001.rmap"
    assert header["classes"] == ("Match", "UseAfter")
    assert header["hooks"]["precondition_header"] == "precondition_header_acs_biasfile_v3"
    assert header["parkey"][1] == ("DATE-OBS", "TIME-OBS")
    # APERTURE='ANY_FULL' expands to aperture names and wildcards NAXISn/RAW_LTVn
    assert "'WFC1A-2K'" in text or "|WFC1A-2K|" in text
    assert "'*', '*', '*', '*', 'N/A', 'N/A', 'N/A') : UseAfter({" in text
    assert "'2002-01-01 00:00:00' : 't1_bia.fits'," in text
    dark = (cache.mappings_dir / "hst_acs_darkfile_9001.rmap").read_text()
    assert "'2017-01-01 00:00:00' : 't2_drk.fits'," in dark


def test_mapping_checksums_verify_with_crds(cache, tmp_path):
    from crds.core import exceptions as crexc
    from crds.core import rmap

    loaded = rmap.load_mapping(cache.pmap, path=str(cache.mappings_dir))
    assert loaded.get_imap("ACS").get_rmap("pfltfile").reference_names() == [
        "f606w_pfl.fits", "f814w_pfl.fits"]
    # tampering with one selection breaks its sha1sum
    copy = tmp_path / "maps"
    shutil.copytree(cache.mappings_dir, copy)
    rmap_path = copy / "hst_acs_darkfile_9001.rmap"
    rmap_path.write_text(rmap_path.read_text().replace("t2_drk.fits", "t3_drk.fits"))
    with pytest.raises(crexc.ChecksumError):  # sub-mappings load lazily
        rmap.load_mapping(cache.pmap, path=str(copy)).get_imap("ACS").get_rmap("darkfile")
    with pytest.raises(refs.CrdsError, match="sha1sum mismatch"):
        refs.load_context(copy, cache.pmap)


def test_crds_certify_accepts_the_context(cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(refs.crds_environment(cache.cache))
    proc = subprocess.run([str(CRDS_EXE), "certify", cache.pmap], cwd=cache.mappings_dir,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "0 errors" in out


def test_rebuild_is_idempotent(cache, refdir):
    before = {p.name: p.read_bytes() for p in cache.cache.rglob("*") if p.is_file()}
    again = build_crds_cache(cache.cache, sorted(refdir.glob("*.fits")))
    after = {p.name: p.read_bytes() for p in cache.cache.rglob("*") if p.is_file()}
    assert again == cache
    assert after == before


def test_new_serial_adds_a_reference(refdir, tmp_path):
    from crds.core import rmap

    root = tmp_path / "cache"
    first = build_crds_cache(root, sorted(refdir.glob("*.fits")), link=False)
    extra = make_ref(tmp_path / "t3_drk.fits", "DARK",
                     {"CCDAMP": "ANY", "CCDGAIN": -1, "USEAFTER": "Jun 01 2017 00:00:00"},
                     "image")
    second = build_crds_cache(root, [*sorted(refdir.glob("*.fits")), extra],
                              context_serial=9002, link=False)
    assert second.name == "hst_9002.pmap"
    assert second.references["darkfile"] == ("t1_drk.fits", "t2_drk.fits", "t3_drk.fits")
    assert refs.operational_context(root) == "hst_9002.pmap"
    assert refs.crds_environment(root)["CRDS_CONTEXT"] == "hst_9002.pmap"
    assert all(p.is_file() for p in first.mapping_paths())  # the old context stays
    header = {"INSTRUME": "ACS", "DETECTOR": "WFC", "CCDAMP": "A", "CCDGAIN": "2.0",
              "DARKCORR": "PERFORM", "DATE-OBS": "2017-09-04", "TIME-OBS": "06:00:00"}
    for pmap, expected in (("hst_9001.pmap", "t2_drk.fits"), ("hst_9002.pmap", "t3_drk.fits")):
        ctx = rmap.load_mapping(pmap, path=str(root / "mappings/hst"))
        best = ctx.get_best_references(header, include=["darkfile"])
        assert best["darkfile"] == expected
    info = ast.literal_eval((root / "config/hst/server_config").read_text())
    assert [row[1] for row in info["context_history"]] == ["hst_9002.pmap", "hst_9001.pmap"]


def test_reftype_table_agrees_with_crds_specs():
    import crds.hst.acs as acs_hooks
    from crds.hst import acs_v3

    specs = json.loads(resources.files("crds.hst").joinpath("specs/combined_specs.json")
                       .read_text())["acs"]
    for kind, rule in ACS_REFTYPES.items():
        spec = specs[kind]
        assert rule.suffix == spec["suffix"], kind
        assert rule.text_descr == spec["text_descr"], kind
        assert rule.filetype == spec["filetype"].upper(), kind
        assert rule.rmap_relevance == spec["rmap_relevance"], kind
        assert rule.reffile_switch == spec["reffile_switch"].upper(), kind
        assert rule.reffile_required == spec["reffile_required"].upper(), kind
        parkey = spec["parkey"]
        parkey = parkey[0] if parkey and isinstance(parkey[0], list) else parkey
        if kind == "biasfile":
            # crds 14 matches biases on RAW_LTVn (acs_v3) rather than the spec's LTVn
            assert rule.parkeys == acs_v3.BIASFILE_PARKEYS
            for name in rule.hooks.values():
                assert callable(getattr(acs_hooks, name))
        else:
            assert list(rule.parkeys) == list(parkey), kind
        assert {k.upper() for k in spec.get("extra_keys") or ()} == set(rule.extra_keys), kind
        assert dict(spec.get("parkey_relevance") or {}) == dict(rule.parkey_relevance), kind


# ---------------------------------------------------------------------------------------
# bestrefs

EXPECTED_2017_F606W = {
    "BPIXTAB": "jref$t1_bpx.fits", "CCDTAB": "jref$t1_ccd.fits", "OSCNTAB": "jref$t1_osc.fits",
    "BIASFILE": "jref$t1_bia.fits", "DARKFILE": "jref$t2_drk.fits",
    "DRKCFILE": "jref$t1_dkc.fits", "PFLTFILE": "jref$f606w_pfl.fits",
    "SATUFILE": "jref$t1_sat.fits", "SNKCFILE": "jref$t1_snk.fits",
    "IMPHTTAB": "jref$t1_imp.fits", "PCTETAB": "jref$t1_cte.fits",
    "CRREJTAB": "N/A",  # CRCORR and RPTCORR are OMIT
    "ATODTAB": "N/A", "FLSHFILE": "N/A", "SHADFILE": "N/A", "IDCTAB": "N/A",
}
EXPECTED_2016_F814W = dict(EXPECTED_2017_F606W, DARKFILE="jref$t1_drk.fits",
                           PFLTFILE="jref$f814w_pfl.fits", CRREJTAB="jref$t1_crr.fits")


def test_bestrefs_fills_blanked_keywords(cache, refdir, tmp_path):
    raw1 = make_raw(tmp_path / "jtst01a1q_raw.fits")
    raw2 = make_raw(tmp_path / "jtst01a2q_raw.fits", FILTER1="CLEAR1L", FILTER2="F814W",
                    CRCORR="PERFORM", BIASFILE=None, PFLTFILE=None,
                    **{"DATE-OBS": "2016-03-01"})
    env = refs.crds_environment(cache.cache)
    result = refs.bestrefs([raw1, raw2], env=env)

    assert result.context == "hst_9001.pmap"
    assert result.updated
    assert result.crds_version.startswith(refs.crds_version())
    assert result.commands == (("crds", "bestrefs", "--files", raw1.name, raw2.name,
                                "--update-bestrefs"),)
    for raw, expected in ((raw1, EXPECTED_2017_F606W), (raw2, EXPECTED_2016_F814W)):
        hdr = fits.getheader(raw)
        assert {k: hdr[k] for k in expected} == expected, raw.name
        assert hdr["CRDS_CTX"] == "hst_9001.pmap"
        record = result.for_file(raw)
        for keyword, value in expected.items():
            assert record.selected[keyword] == value
            if value != "N/A":
                assert record.sha256[keyword] == sha256(refdir / value[len("jref$"):])
            else:
                assert keyword not in record.sha256
    changes1 = {c.keyword: (c.old, c.new) for c in result.for_file(raw1).changes}
    assert changes1["BIASFILE"] == ("N/A", "jref$t1_bia.fits")
    assert "ATODTAB" not in changes1  # N/A before and after
    changes2 = {c.keyword: (c.old, c.new) for c in result.for_file(raw2).changes}
    assert changes2["PFLTFILE"] == (None, "jref$f814w_pfl.fits")
    assert result.references["t2_drk.fits"] == sha256(refdir / "t2_drk.fits")
    assert all(record.warnings == () for record in result.files)
    assert not list(tmp_path.glob(".acsprov-bestrefs-*"))  # staging area removed


def test_bestrefs_without_update_leaves_file(cache, tmp_path):
    raw = make_raw(tmp_path / "jtst02a1q_raw.fits")
    # each filter exists in some flat, but no flat has both: crds says N/A, silently
    odd = make_raw(tmp_path / "jtst02a2q_raw.fits", FILTER1="F606W", FILTER2="F814W")
    # an internal exposure needs no flat: a natural N/A, not worth a warning
    internal = make_raw(tmp_path / "jtst02a3q_raw.fits", OBSTYPE="INTERNAL")
    digests = [sha256(raw), sha256(odd)]
    result = refs.bestrefs([raw, odd, internal], env=refs.crds_environment(cache.cache),
                           update=False)
    assert [sha256(raw), sha256(odd)] == digests
    assert result.for_file(internal).selected["PFLTFILE"] == "N/A"
    assert result.for_file(internal).warnings == ()
    assert not result.updated
    assert result.for_file(raw).selected["DARKFILE"] == "jref$t2_drk.fits"
    assert result.for_file(raw).warnings == ()
    assert result.for_file(odd).selected["PFLTFILE"] == "N/A"
    assert result.for_file(odd).warnings == (
        "PFLTFILE is N/A although FLATCORR=PERFORM: no PFLTFILE of hst_9001.pmap matches "
        "jtst02a2q_raw.fits",)


def test_handbook_command_in_a_shell(cache, tmp_path):
    """`eval "$(acsprov env)"` then the handbook's command, verbatim, in the raw directory."""
    raw = make_raw(tmp_path / "jtst03a1q_raw.fits")
    env_file = tmp_path / "env.sh"
    env_file.write_text(refs.export_lines(refs.crds_environment(cache.cache)) + "\n")
    script = f'eval "$(cat {env_file})" && crds bestrefs --files *raw.fits --update-bestrefs'
    path_env = {"PATH": f"{CRDS_EXE.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=path_env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hdr = fits.getheader(raw)
    assert {k: hdr[k] for k in EXPECTED_2017_F606W} == EXPECTED_2017_F606W
    jref = refs.crds_environment(cache.cache)["jref"]
    assert jref.endswith("/")
    assert refs.resolve_jref(hdr["BIASFILE"], jref=jref, relative_to=tmp_path).is_file()


def test_bestrefs_failure_leaves_file_untouched(cache, tmp_path):
    raw = make_raw(tmp_path / "jtst04a1q_raw.fits", FILTER1="F550M")  # no such flat
    digest = sha256(raw)
    with pytest.raises(refs.CrdsError, match="PFLTFILE") as info:
        refs.bestrefs([raw], env=refs.crds_environment(cache.cache))
    assert len(str(info.value).splitlines()) == 1
    assert sha256(raw) == digest  # crds wrote the other types into a copy only
    assert not list(tmp_path.glob(".acsprov-bestrefs-*"))


def test_bestrefs_input_errors(cache, tmp_path):
    env = refs.crds_environment(cache.cache)
    with pytest.raises(BadInputError, match="no such file"):
        refs.bestrefs([tmp_path / "missing_raw.fits"], env=env)
    bad = tmp_path / "junk_raw.fits"
    bad.write_text("not fits")
    with pytest.raises(BadInputError, match="not a readable FITS"):
        refs.bestrefs([bad], env=env)
    with pytest.raises(BadInputError, match="CRDS_CONTEXT"):
        refs.bestrefs([make_raw(tmp_path / "jtst05a1q_raw.fits")],
                      env={"CRDS_PATH": env["CRDS_PATH"], "jref": env["jref"]})


# ---------------------------------------------------------------------------------------
# environment and jref$ names


def test_environment_and_export_lines(cache, tmp_path):
    env = refs.crds_environment(cache.cache)
    assert env["CRDS_PATH"] == str(cache.cache)
    assert env["CRDS_MODE"] == "local"
    assert env["CRDS_OBSERVATORY"] == "hst"
    assert "serverless" in env["CRDS_SERVER_URL"]
    assert env["CRDS_CONTEXT"] == "hst_9001.pmap"
    assert env["jref"] == str(cache.cache / "references" / "hst") + "/"
    lines = refs.export_lines({"A_B": "x y'z", "jref": "/r/"})
    proc = subprocess.run(["bash", "-c", lines + '\nprintf "%s|%s" "$A_B" "$jref"'],
                          capture_output=True, text=True, check=True)
    assert proc.stdout == "x y'z|/r/"
    with pytest.raises(BadInputError, match="shell variable"):
        refs.export_lines({"A-B": "1"})
    with pytest.raises(ReferenceFileError, match="not a CRDS cache"):
        refs.crds_environment(tmp_path)
    with pytest.raises(ReferenceFileError, match="no context"):
        refs.crds_environment(cache.cache, context="hst_0042.pmap")


def test_resolve_jref(tmp_path):
    assert refs.resolve_jref("jref$a_bia.fits", jref=tmp_path, relative_to="/x") == (
        tmp_path / "a_bia.fits")
    assert refs.resolve_jref("JREF$a_bia.fits", jref=tmp_path, relative_to="/x") == (
        tmp_path / "a_bia.fits")
    assert refs.resolve_jref("my_drk.fits", jref=tmp_path, relative_to="/data") == Path(
        "/data/my_drk.fits")
    assert refs.resolve_jref("/abs/my_drk.fits", jref=tmp_path, relative_to="/data") == Path(
        "/abs/my_drk.fits")
    for value in ("N/A", " ", "none"):
        with pytest.raises(ReferenceFileError, match="names no file"):
            refs.resolve_jref(value, jref=tmp_path, relative_to=tmp_path)
    with pytest.raises(ReferenceFileError, match="iref"):
        refs.resolve_jref("iref$x_drk.fits", jref=tmp_path, relative_to=tmp_path)


# ---------------------------------------------------------------------------------------
# builder errors


def _one(tmp_path: Path, name: str, filetype: str, extra: dict, kind: str = "image") -> Path:
    return make_ref(tmp_path / name, filetype, extra, kind)


@pytest.mark.parametrize(
    ("name", "filetype", "extra", "message"),
    [
        ("x_bia.fits", "BIAS", {"CCDAMP": "ANY", "CCDGAIN": 2.0}, "APERTURE"),
        ("x_drk.fits", "BIAS", {"CCDAMP": "ANY", "CCDGAIN": 2.0}, "FILETYPE"),
        ("x_xyz.fits", "DARK", {}, "suffix _xyz"),
        ("X_drk.fits", "DARK", {"CCDAMP": "ANY", "CCDGAIN": 2.0}, "lower case"),
        ("x_drk.fits", "DARK", {"CCDAMP": "ANY", "CCDGAIN": 3.0}, "CCDGAIN"),
        ("x_drk.fits", "DARK", {"CCDAMP": "ANY", "CCDGAIN": 2.0, "INSTRUME": "WFC3"},
         "INSTRUME"),
    ],
)
def test_bad_reference_files_are_refused(tmp_path, name, filetype, extra, message):
    ref = _one(tmp_path, name, filetype, extra)
    with pytest.raises(ReferenceFileError, match=message) as info:
        build_crds_cache(tmp_path / "cache", [ref])
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "cache" / "config").exists()


def test_conflicts_are_refused(tmp_path, refdir):
    drk = {"CCDAMP": "ANY", "CCDGAIN": -1}
    a = _one(tmp_path, "a_drk.fits", "DARK", drk)
    b = _one(tmp_path, "b_drk.fits", "DARK", drk)
    with pytest.raises(ReferenceFileError, match="same DARKFILE case"):
        build_crds_cache(tmp_path / "c1", [a, b])
    with pytest.raises(ReferenceFileError, match="no reference files"):
        build_crds_cache(tmp_path / "c1", [])
    with pytest.raises(ReferenceFileError, match="no such reference file"):
        build_crds_cache(tmp_path / "c1", [tmp_path / "gone_drk.fits"])
    with pytest.raises(ReferenceFileError, match="context_serial"):
        build_crds_cache(tmp_path / "c1", [a], context_serial=0)
    # same serial, other rules -> refused; same name, other content -> refused
    build_crds_cache(tmp_path / "c2", [a])
    with pytest.raises(ReferenceFileError, match="another context_serial"):
        build_crds_cache(tmp_path / "c2", [a, refdir / "t1_ccd.fits"])
    assert not (tmp_path / "c2/mappings/hst/hst_acs_ccdtab_9001.rmap").exists()
    assert not (tmp_path / "c2/references/hst/t1_ccd.fits").exists()  # nothing written
    other = tmp_path / "other"
    other.mkdir()
    a2 = _one(other, "a_drk.fits", "DARK", {"CCDAMP": "ANY", "CCDGAIN": 2.0})
    with pytest.raises(ReferenceFileError, match="immutable"):
        build_crds_cache(tmp_path / "c2", [a2], context_serial=9002)


def test_errors_are_acsprov_errors():
    assert issubclass(refs.CrdsError, AcsprovError)
    assert crds_cache.reftype_of("q9520143j_bia.fits").keyword == "BIASFILE"


# ---------------------------------------------------------------------------------------
# the simulator's reference files


def _stand_in(info, rule, out: Path) -> Path:
    """A header-only copy of a simulated reference file (crds reads only headers)."""
    primary = fits.PrimaryHDU()
    primary.header.update({"INSTRUME": "ACS", "DETECTOR": info.detector,
                           "FILETYPE": rule.filetype, "USEAFTER": info.useafter_header,
                           "PEDIGREE": info.pedigree, "DESCRIP": info.descrip})
    primary.header.update(dict(info.header))
    fits.HDUList([primary, fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI")]).writeto(
        out / info.filename)
    return out / info.filename


@pytest.fixture(scope="module")
def simulated_context(tmp_path_factory):
    """A context over header-only copies of every simulated reference file."""
    reffiles = pytest.importorskip("acsprov.simulate.reffiles")
    out = tmp_path_factory.mktemp("simrefs")
    files = [_stand_in(info, ACS_REFTYPES[info.reftype], out)
             for info in reffiles.reference_catalog()]
    return build_crds_cache(out / "cache", files)


def test_simulator_catalog_selects_what_the_archive_wrote(simulated_context):
    """crds, with a context built from the simulator's reference headers, picks for each
    simulated dataset the references the simulated archive wrote into its headers."""
    from astropy.time import Time
    from crds.core import rmap, utils

    from acsprov.simulate import reffiles
    from acsprov.simulate.datasets import DATASETS, calibration_switches
    from acsprov.simulate.geometry import raw_layout

    ctx = simulated_context
    pmap = rmap.load_mapping(ctx.pmap, path=str(ctx.mappings_dir))
    for name, spec in DATASETS.items():
        chip = raw_layout(spec.detector, spec.aperture, subarray=spec.subarray).chips[0]
        date, time = Time(spec.expstart, format="mjd").iso.split()
        header = {"INSTRUME": "ACS", "DETECTOR": spec.detector, "CCDAMP": spec.ccdamp,
                  "CCDGAIN": spec.ccdgain, "APERTURE": spec.aperture,
                  "FILTER1": spec.filter1, "FILTER2": spec.filter2, "OBSTYPE": spec.obstype,
                  "FLASHCUR": "OFF", "SHUTRPOS": "A", "NAXIS1": chip.nx, "NAXIS2": chip.ny,
                  "LTV1": chip.ltv1, "LTV2": chip.ltv2, "CCDCHIP": chip.ccdchip,
                  "DATE-OBS": date, "TIME-OBS": time, **calibration_switches(spec)}
        header = utils.condition_header({k: str(v) for k, v in header.items()})
        for key in ("XCORNER", "YCORNER", "RAW_LTV1", "RAW_LTV2", "FW1OFFST", "FW2OFFST",
                    "FWSOFFST"):
            header.setdefault(key, "UNDEFINED")  # absent from raw files, as crds sees them
        best = pmap.get_best_references(header)
        for keyword, archive in reffiles.references_for(spec).items():
            if keyword.lower() not in best:
                continue  # a type our context does not know (DFLTFILE...)
            chosen = best[keyword.lower()]
            if chosen.upper() in ("N/A", "NOT FOUND N/A"):
                chosen = "N/A"
            elif not chosen.upper().startswith("NOT FOUND"):
                chosen = "jref$" + chosen
            assert chosen == archive, (name, keyword)
        if name == "jd5702jpq":  # WFC1B-1K: raw files hold no RAW_LTVn, yet a bias is
            # chosen: the full-frame superbias (APERTURE='ANY_FULL'), which calacs cuts
            assert best["biasfile"] == "6641828tj_bia.fits"
            assert reffiles.references_for(spec)["BIASFILE"] == "jref$6641828tj_bia.fits"


def test_bestrefs_on_the_simulated_subarray_selects_a_bias(simulated_context, tmp_path):
    """``crds bestrefs --files`` on the WFC1B-1K raw file, as Example 5 runs it after
    PCTECORR=PERFORM: every type it covers gets a file, BIASFILE the full-frame bias
    the archive header names, PCTETAB and DRKCFILE the CTE references."""
    from acsprov.simulate.datasets import get_dataset
    from acsprov.simulate.raw import simulate_exposure

    ctx = simulated_context
    spec = get_dataset("jd5702jpq")
    raw = simulate_exposure(spec, spec.members[0], seed=7).raw_hdulist()
    archive_bias = raw[0].header["BIASFILE"]
    raw[0].header["PCTECORR"] = "PERFORM"
    for key in ("BIASFILE", "PCTETAB", "DRKCFILE"):
        raw[0].header[key] = "N/A"
    path = tmp_path / "jd5702jpq_raw.fits"
    raw.writeto(path)
    result = refs.bestrefs([path], env=refs.crds_environment(ctx.cache))
    record = result.for_file(path)
    assert record.warnings == ()
    assert record.selected["BIASFILE"] == archive_bias == "jref$6641828tj_bia.fits"
    assert record.selected["PCTETAB"] == "jref$8ch1518tj_cte.fits"
    assert record.selected["DRKCFILE"] == "jref$9362018jj_dkc.fits"
    assert fits.getval(path, "BIASFILE") == archive_bias
