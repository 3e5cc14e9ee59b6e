"""What a person meets: the per-user CRDS cache, messages that lead somewhere, reused
simulated data, stwcs messages once, and reports and pages that tell the truth."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import browse, make_raw
from test_audit import PRODUCT, _tamper_copy

from acsprov.audit.compare import ProductDiff
from acsprov.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- one CRDS cache per user ------------------------------------------------------------
def test_default_cache_is_per_user_not_per_directory(monkeypatch, tmp_path):
    from acsprov.environment import default_crds_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_crds_path() == tmp_path / "xdg" / "acsprov" / "crds_cache"
    assert default_crds_path(Path("elsewhere")) == default_crds_path()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_crds_path() == tmp_path / "home" / ".cache" / "acsprov" / "crds_cache"
    monkeypatch.setenv("ACSPROV_CRDS_PATH", str(tmp_path / "mine"))
    assert default_crds_path() == tmp_path / "mine"


def test_env_from_any_directory_uses_the_one_cache(crds_cache, tmp_path, monkeypatch, capsys):
    for where in (tmp_path / "a", tmp_path / "b" / "c"):
        where.mkdir(parents=True)
        monkeypatch.chdir(where)
        code, out, err = _run(capsys, "env")
        assert code == 0, err
        assert f"export CRDS_PATH={crds_cache}" in out
        assert err == ""  # nothing built: the user's cache is there already
        assert list(where.iterdir()) == []  # no work/crds_cache of its own


def test_cache_build_says_what_happens_and_how_long(crds_cache, tmp_path, monkeypatch):
    """The messages name the place, the size, that it is once per user, and the time
    it really took (measured, not promised)."""
    import acsprov.simulate.crds_cache as builder
    from acsprov.environment import cache_is_complete, ensure_local_crds

    def link_session_cache(staging: Path) -> None:  # the real build, already done once
        for part in crds_cache.iterdir():
            (staging / part.name).symlink_to(part)

    monkeypatch.setattr(builder, "build_simulated_cache", link_session_cache)
    said: list[str] = []
    cache = ensure_local_crds(tmp_path / "user" / "crds_cache", say=said.append)
    assert cache_is_complete(cache)
    assert said[0].startswith(f"building the local CRDS cache in {cache}: ")
    assert "once per user" in said[0] and "860 MB" in said[0]
    assert "about a minute" not in " ".join(said)
    assert said[-1].startswith("local CRDS cache ready in ") and said[-1].endswith(" s")
    assert "about a minute" not in (ROOT / "README.md").read_text()


def test_make_test_announces_chromium_and_offers_to_skip():
    makefile = (ROOT / "Makefile").read_text()
    install = makefile.index("apt-get install -y chromium")
    announce = makefile.index("installing Debian's chromium now with apt-get")
    assert announce < install and "480 MB" in makefile[announce:install]
    assert "NO_CHROMIUM=1" in makefile[announce:install]
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "test", "NO_CHROMIUM=1"],
                         capture_output=True, text=True, check=True).stdout
    assert 'pytest -m "not browser"' in dry and "apt-get" not in dry


# -- messages that lead somewhere ------------------------------------------------------------
def test_reprocess_of_name_at_seed_points_to_batch(capsys, tmp_path):
    code, _, err = _run(capsys, "reprocess", "j8is01merged@2", "--workdir", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "acsprov batch j8is01merged@2" in err
    assert not list(tmp_path.iterdir())


def test_calacs_on_a_directory_says_it_is_one(capsys, tmp_path):
    code, _, err = _run(capsys, "calacs", str(tmp_path))
    assert code != 0 and err.count("\n") == 1
    assert f"{tmp_path} is a directory" in err
    assert "not found" not in err


def test_set_header_that_changes_nothing_says_so(capsys, tmp_path):
    raw = make_raw(tmp_path / "x_raw.fits")
    before = raw.read_bytes()
    code, out, _ = _run(capsys, "set-header", str(raw), "PCTECORR=PERFORM")
    assert code == 0
    assert "x_raw.fits: unchanged (PCTECORR is already 'PERFORM')" in out
    assert raw.read_bytes() == before


def test_stwcs_messages_are_printed_once(capsys):
    from stwcs import updatewcs  # noqa: F401  (creates stwcs's loggers and their handlers)

    from acsprov.actions.updatewcs import stwcs_messages_once

    logger = logging.getLogger("stwcs.wcsutil.headerlet")
    own, root = io.StringIO(), io.StringIO()
    own_handler, root_handler = logging.StreamHandler(own), logging.StreamHandler(root)
    logger.addHandler(own_handler)
    logging.getLogger().addHandler(root_handler)
    try:
        logger.warning("one message")  # as it was: through both handlers
        assert own.getvalue().count("one message") == 1
        assert root.getvalue().count("one message") == 1
        capsys.readouterr()
        with stwcs_messages_once():
            logger.warning("another message")
            for _ in range(2):  # as stwcs.distortion.mutil prints it, once per reading
                print("- IDCTAB: Distortion model from row 3 for chip 1 : F606W")
            print("a second line")
        assert own.getvalue().count("another message") == 1
        assert "another message" not in root.getvalue()
        assert logger.propagate  # restored afterwards
        assert capsys.readouterr().out == (
            "- IDCTAB: Distortion model from row 3 for chip 1 : F606W\na second line\n")
    finally:
        logger.removeHandler(own_handler)
        logging.getLogger().removeHandler(root_handler)


# -- simulated data made once ------------------------------------------------------------
def test_simulated_data_are_reused_when_unchanged(tmp_path):
    from acsprov.fitsutil import sha256sum
    from acsprov.sources import obtain

    first = obtain("j8is01020", tmp_path, source="simulate", say=lambda m: None, seed=5)
    shas = {p.name: sha256sum(p) for p in first.files}
    stamps = {p.name: p.stat().st_mtime_ns for p in first.files}
    said: list[str] = []
    again = obtain("j8is01020", tmp_path, source="simulate", say=said.append, seed=5,
                   reuse=shas)
    assert "reusing the 7 files simulated earlier" in said[0] and "not real data" in said[0]
    assert {p.name: p.stat().st_mtime_ns for p in again.files} == stamps  # not rewritten
    assert again.origin == first.origin == "acsprov.simulate seed=5"
    # one file changed since: everything is had again (from the per-user cache the
    # first call filled), and comes out as recorded
    victim = tmp_path / "j8is01j2q_raw.fits"
    victim.write_bytes(b"changed")
    said.clear()
    third = obtain("j8is01020", tmp_path, source="simulate", say=said.append, seed=5,
                   reuse=shas)
    assert said[0].startswith("SIMULATED j8is01020 (seed 5): copied from the per-user cache")
    assert third.reused == "cache" and third.cache_key.startswith("j8is01020-s5-")
    assert {p.name: sha256sum(p) for p in third.files} == shas


def test_a_rerun_reuses_what_the_record_says_was_simulated(recorded_hrc_run):
    from acsprov.fitsutil import sha256sum
    from acsprov.reprocess import earlier_simulation

    root = recorded_hrc_run.root
    files = earlier_simulation(root, "j8is01020", None)
    assert "j8is01j2q_raw.fits" in files and len(files) == 7
    assert all(sha256sum(root / "cal_fits" / n) == sha for n, sha in files.items())
    assert earlier_simulation(root, "j8is01020", 3) == {}  # another seed: other data


# -- audit reports ----------------------------------------------------------------------
def _product(name: str, *keywords: tuple[str, str, str]) -> ProductDiff:
    return ProductDiff(name=name, a=Path("a"), b=Path("b"), header_differences=[
        {"keyword": k, "a": a, "b": b} for k, a, b in keywords])


def test_archive_summary_gives_each_product_its_own_switches_in_good_grammar():
    from acsprov.audit import AuditResult

    example1 = _product("example1/jd1y04rlq_flt.fits", ("BIASFILE", "jref$x_bia.fits",
                                                        "mybias.fits"))
    example2 = _product("example2/jd1y04rlq_flt.fits",
                        ("BIASFILE", "jref$x_bia.fits", "mybias.fits"),
                        ("PCTECORR", "PERFORM", "OMIT"))
    result = AuditResult(kind="archive", target="w", products=[example1, example2])
    text = result.summary()
    assert text.startswith("archive audit: 2 of 2 _flt products differ from the archive")
    assert ("example1/jd1y04rlq_flt.fits: BIASFILE=mybias.fits (archive jref$x_bia.fits);"
            in text)
    assert ("example2/jd1y04rlq_flt.fits: PCTECORR=OMIT (archive PERFORM), "
            "BIASFILE=mybias.fits" in text)
    one = AuditResult(kind="archive", target="w", products=[example1, _product("x")])
    assert one.summary().startswith("archive audit: 1 of 2 _flt products differs from")
    same = AuditResult(kind="archive", target="w", products=[_product("x"), _product("y")])
    assert same.summary() == "archive audit: all 2 _flt products match the archive"


def test_archive_report_keeps_sci_dq_apart_and_flags_simulated_data(recorded_hrc_run,
                                                                      tmp_path):
    from acsprov.audit import audit_archive
    from acsprov.audit.report import write_report

    result = audit_archive(recorded_hrc_run.root, say=lambda m: None)
    html_path, json_path = write_report(result, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["simulated"] == [PRODUCT]
    assert "SIMULATED data" in data["summary"]
    (product,) = data["products"]
    ext = {e["extname"]: e for e in product["extensions"]}
    assert ext["DQ"]["max_abs_diff"] is None  # flags, not numbers
    assert ext["SCI"]["max_abs_diff"] > 0 and ext["SCI"]["max_abs_diff"] < 100
    lost = sum(ext["DQ"]["dq_cleared"].values()) + sum(ext["DQ"]["dq_set"].values())
    assert lost >= ext["DQ"]["n_outside"] > 0
    page = html_path.read_text()
    assert "SIMULATED DATA" in page and "flags gained" not in page.split("<main>")[0]
    overview = page.split("class='overview'")[1].split("</table>")[0]
    assert f"max |Δ| {ext['SCI']['max_abs_diff']:.4g}" in overview
    assert "px changed" in overview and "8192" not in overview.split("DQ flags")[0]


@pytest.mark.browser
def test_one_pixel_difference_is_findable_in_the_audit_report(recorded_hrc_run, crds_cache,
                                                             tmp_path):
    from acsprov.audit import audit_run
    from acsprov.audit.report import write_report

    copy = _tamper_copy(recorded_hrc_run.root, tmp_path)
    result = audit_run(copy, crds_path=crds_cache, say=lambda m: None)
    html_path, _ = write_report(result, tmp_path / "report")
    dom, pixels = browse(html_path, tmp_path, size=(1400, 1500), name="audit-one-pixel")
    assert "NOT REPRODUCED" in dom and "SIMULATED DATA" in dom
    assert "x=301, y=501" in dom  # the largest difference, named in its table
    assert "1 px outside tolerance in x 301–301, y 501–501" in dom
    # the difference map rings the pixel in green (#00b050): visible at any scale
    green = np.all(np.abs(pixels.astype(int) - (0, 176, 80)) < 40, axis=2)
    assert green.sum() > 30
    ys, xs = np.nonzero(green)
    assert np.ptp(xs) < 200 and np.ptp(ys) < 200  # one ring (and its label), not scattered
    # the banner across the top is red: not reproduced
    banner = pixels[110:190, 120:1280].reshape(-1, 3).astype(int)
    assert ((banner[:, 0] > 150) & (banner[:, 1] < 120) & (banner[:, 2] < 120)).mean() > 0.5


# -- the lineage page -------------------------------------------------------------------
@pytest.mark.browser
def test_lineage_page_reads_left_to_right_for_people(recorded_hrc_run, tmp_path):
    root = recorded_hrc_run.root
    page = root / "prov" / "lineage.html"
    tracked = subprocess.run(["git", "-C", str(root), "ls-files", "prov/lineage.html"],
                             capture_output=True, text=True, check=True).stdout
    assert tracked.strip() == "prov/lineage.html"  # committed with the run
    dom, pixels = browse(page, tmp_path, size=(1600, 900), name="lineage")
    assert "Run directory example/" in dom and "SIMULATED DATA" in dom
    for legend in ("archive file", "header edit: before → after", "reference file from CRDS",
                   "reference file the user supplied", "calibration engine"):
        assert legend in dom
    section = dom[dom.index('class="product"'):]
    chain = [section.index(s) for s in ("cal_fits/j8is01j2q_raw.fits", ">copy<",
                                        ">bestrefs<", ">set_header<", ">calacs<", ">Product<")]
    assert chain == sorted(chain)  # left to right, in the order the actions ran
    assert "BIASFILE jref$m9i1742aj_bia.fits → mybias.fits" in section
    assert "BIASFILE = example/mybias.fits" in section and "user-supplied" in section
    assert "calacs 10.5.0" in section  # the engine, with its version
    assert 'href="../example/j8is01j2q_flt.fits"' in section
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_lineage_page_escapes_what_it_shows(recorded_hrc_run, tmp_path):
    from acsprov.provenance.lineage_page import template

    text = template("lineage.html.j2").render(name="<script>x</script>", groups=[],
                                              simulated=False, documents=[])
    assert "<script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    code = main(["prov", "lineage", str(recorded_hrc_run.root), "--out",
                 str(tmp_path / "l.html")])
    assert code == 0 and "example/j8is01j2q_flt.fits" in (tmp_path / "l.html").read_text()


def test_readme_names_the_commands_a_new_user_runs():
    readme = (ROOT / "README.md").read_text()
    assert ". .venv/bin/activate" in readme
    assert readme.index("make reprocess DATASET=jd1y04010") < readme.index(
        ". .venv/bin/activate") < readme.index("acsprov prov show work/jd1y04010/")
