"""Hostile recipes, links and PROV documents; leftovers of killed runs; file modes.

Each test is a defect a user could hit, reproduced from the user's side: a recipe or
document written to do harm, a lock file that is a link, a work directory left by a
process that was killed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HRC_RECIPE

from acsprov.cli import main
from acsprov.fitsutil import sha256sum

ACSPROV = str(Path(sys.executable).parent / "acsprov")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("acsprov: error: "), err
    return err


# -- hostile recipes -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["/tmp/acsprov-victim", "../victim", "crds_cache", "a/b"])
def test_a_recipe_name_is_a_plain_name(name, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(HRC_RECIPE.replace("name: hrcbias", f"name: {json.dumps(name)}"))
    assert main(["reprocess", str(recipe), "--workdir", str(tmp_path / "work")]) == 2
    assert "is not a plain directory name" in _one_line_error(capsys)
    assert (victim / "precious.txt").read_text() == "mine"
    assert not (tmp_path / "work" / "crds_cache").exists()


@pytest.mark.parametrize("run", ["prov", "cal_fits", "../x", "/abs"])
def test_a_run_cannot_take_the_dataset_s_own_directories(run, tmp_path, capsys):
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(HRC_RECIPE.replace("name: example", f"name: {json.dumps(run)}"))
    assert main(["reprocess", str(recipe), "--workdir", str(tmp_path / "work")]) == 2
    err = _one_line_error(capsys)
    assert "is reserved" in err or "is not a plain name" in err
    assert not (tmp_path / "work").exists()  # refused before anything was made


@pytest.mark.parametrize("options, message", [
    ("{engine: fast}", "calacs option engine='fast' must be one of auto, native, hstcal"),
    ("{nthreads: -3}", "calacs option nthreads=-3 must be a whole number"),
    ("{verbose: maybe}", "calacs option verbose='maybe' must be true or false"),
])
def test_a_bad_calacs_option_is_refused_before_the_run_directory_is_cleared(
        options, message, recorded_hrc_run, tmp_path, capsys):
    copy = tmp_path / "work" / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    before = {p: sha256sum(p) for p in sorted((copy / "example").iterdir())}
    recipe = tmp_path / "hrcbias.yaml"
    recipe.write_text(HRC_RECIPE.replace("options: {engine: native}", f"options: {options}"))
    assert main(["reprocess", str(recipe), "--workdir", str(tmp_path / "work")]) == 2
    assert message in _one_line_error(capsys)
    assert {p: sha256sum(p) for p in sorted((copy / "example").iterdir())} == before


def test_a_run_directory_that_is_a_link_is_not_followed(tmp_path, crds_cache):
    """A dataset whose run directory is a link elsewhere: starting the run afresh
    removes the link, never what it points at."""
    from acsprov.provenance import Recorder

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    rec = Recorder(tmp_path / "ds", name="t")
    (rec.root / "example").symlink_to(outside)
    rec.clear_directory(rec.root / "example", message="afresh")
    assert not os.path.lexists(rec.root / "example")
    assert (outside / "precious.txt").read_text() == "mine"


# -- locks and links --------------------------------------------------------------------
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys):
    from acsprov.lock import LOCK_NAME

    victim = tmp_path / "victim.txt"
    victim.write_text("do not truncate me\n")
    work = tmp_path / "work" / "hrcbias"
    work.mkdir(parents=True)
    (work / LOCK_NAME).symlink_to(victim)
    recipe = tmp_path / "hrcbias.yaml"
    recipe.write_text(HRC_RECIPE)
    code = main(["reprocess", str(recipe), "--workdir", str(tmp_path / "work"),
                 "--source", "simulate"])
    assert code == 11
    assert "is a symbolic link" in _one_line_error(capsys)
    assert victim.read_text() == "do not truncate me\n"


# -- doctored PROV documents ----------------------------------------------------------------
def _doctor(root: Path, edit) -> Path:
    document = sorted((root / "prov").glob("*.json"))[-1]
    doc = json.loads(document.read_text())
    edit(doc)
    document.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return document


def _point_outside(doc: dict) -> None:
    for activity in doc["activity"].values():
        if activity.get("acsprov:cwd") == "example":
            activity["acsprov:cwd"] = "../../outside"


def test_audit_refuses_a_doctored_document_before_it_runs_anything(
        recorded_hrc_run, crds_cache, tmp_path, capsys):
    copy = tmp_path / "copy" / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    _doctor(copy, _point_outside)
    code = main(["audit", str(copy), "--crds-path", str(crds_cache),
                 "--report", str(tmp_path / "report")])
    assert code == 6
    assert "the PROV document was edited after it was recorded" in _one_line_error(capsys)
    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "report").exists()


def test_audit_confines_paths_of_a_document_even_with_a_forged_record(
        recorded_hrc_run, crds_cache, tmp_path, capsys):
    """Whoever can rewrite the dataset's history can make the document pass the chain
    check; its paths still never lead the audit out of its scratch copy."""
    copy = tmp_path / "copy" / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    document = _doctor(copy, _point_outside)
    rel = document.relative_to(copy).as_posix()
    record = json.dumps({"prov": rel, "prov_sha256": sha256sum(document)})
    _git(copy, "add", rel)
    _git(copy, "commit", "-q", "-m", f"laundered\n\nacsprov-record: {record}")
    scratch = tmp_path / "scratch"
    code = main(["audit", str(copy), "--crds-path", str(crds_cache),
                 "--report", str(tmp_path / "report")])
    assert code == 11
    assert "outside the work directory" in _one_line_error(capsys)
    assert not (tmp_path / "outside").exists() and not scratch.exists()


# -- evidence that cannot be laundered ------------------------------------------------------
@pytest.fixture
def edited(recorded_hrc_run, tmp_path):
    copy = tmp_path / "copy" / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    return copy


def test_a_deleted_and_saved_product_fails_verify(edited, capsys):
    (edited / "example" / "j8is01j2q_flt.fits").unlink()
    _git(edited, "add", "-A")
    _git(edited, "commit", "-q", "-m", "datalad save")
    assert main(["prov", "verify", str(edited)]) == 6
    assert "example/j8is01j2q_flt.fits: recorded but missing" in _one_line_error(capsys)


def test_a_rewritten_checksum_saved_by_hand_fails_verify(edited, capsys):
    product = edited / "example" / "j8is01j2q.tra"
    old = sha256sum(product)
    product.write_text(product.read_text() + "edited\n")
    _doctor(edited, lambda doc: [e.update({"acsprov:sha256": sha256sum(product)})
                                 for e in doc["entity"].values()
                                 if e.get("acsprov:sha256") == old])
    _git(edited, "add", "-A")
    _git(edited, "commit", "-q", "-m", "datalad save")
    assert main(["prov", "verify", str(edited)]) == 6
    assert "the PROV document was edited after it was recorded" in _one_line_error(capsys)


# -- file modes -------------------------------------------------------------------------
def test_set_header_keeps_a_private_file_private(tmp_path, capsys):
    from helpers import make_raw

    raw = make_raw(tmp_path / "j8is01j2q_raw.fits")
    raw.chmod(0o600)
    assert main(["set-header", str(raw), "DARKCORR=OMIT"]) == 0
    assert raw.stat().st_mode & 0o777 == 0o600


def test_set_header_refuses_a_read_only_file(tmp_path, capsys):
    from helpers import make_raw

    raw = make_raw(tmp_path / "j8is01j2q_raw.fits")
    raw.chmod(0o444)
    before = sha256sum(raw)
    assert main(["set-header", str(raw), "DARKCORR=OMIT"]) == 2
    assert "read-only (mode 444)" in _one_line_error(capsys)
    assert sha256sum(raw) == before and raw.stat().st_mode & 0o777 == 0o444


# -- leftovers of killed processes ------------------------------------------------------------
def test_a_git_lock_is_removed_only_when_no_live_process_holds_it(tmp_path):
    from acsprov.provenance import Recorder
    from acsprov.recovery import remove_stale_git_locks

    rec = Recorder(tmp_path / "ds", name="t")
    lock = rec.root / ".git" / "index.lock"
    with open(lock, "w") as held:  # a live git writing the index
        assert remove_stale_git_locks(rec.root) == []
        assert lock.exists()
        held.write("x")
    assert remove_stale_git_locks(rec.root) == [lock]  # its holder is gone
    assert not lock.exists()
    _git(rec.root, "status")


def test_a_stale_index_lock_no_longer_blocks_every_later_run(recorded_hrc_run, crds_cache,
                                                              tmp_path):
    copy = tmp_path / "work" / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    (copy / ".git" / "index.lock").write_text("")  # a commit killed with SIGKILL
    recipe = tmp_path / "hrcbias.yaml"
    recipe.write_text(HRC_RECIPE)
    proc = subprocess.run([ACSPROV, "reprocess", str(recipe), "--workdir",
                           str(tmp_path / "work")], capture_output=True, text=True,
                          env={**os.environ, "ACSPROV_CRDS_PATH": str(crds_cache)},
                          check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "removed .git/index.lock, left by an interrupted run" in proc.stdout
    assert main(["prov", "verify", str(copy)]) == 0


def test_a_killed_calacs_s_temporary_does_not_block_the_next(tmp_path, crds_cache, capsys,
                                                            monkeypatch):
    from acsprov.environment import tool_environment
    from acsprov.simulate import simulate_dataset

    simulate_dataset("j8is01020", tmp_path, products=False)
    raw = tmp_path / "j8is01j2q_raw.fits"
    leftover = tmp_path / "j8is01j2q_blv_tmp.fits"
    shutil.copyfile(raw, leftover)  # what a calacs killed after its first stage leaves
    monkeypatch.setenv("ACSPROV_CRDS_PATH", str(crds_cache))
    for key, value in tool_environment(crds_cache).items():
        monkeypatch.setenv(key, value)
    assert main(["calacs", "--engine", "native", str(raw)]) == 0
    assert (tmp_path / "j8is01j2q_flt.fits").is_file() and not leftover.exists()


def test_bestrefs_staging_of_a_killed_run_is_removed(recorded_hrc_run, tmp_path):
    from acsprov.recovery import remove_leftovers

    copy = tmp_path / "hrcbias"
    shutil.copytree(recorded_hrc_run.root, copy, symlinks=True)
    staging = copy / "example" / ".acsprov-bestrefs-x1y2z3"
    staging.mkdir()
    (staging / "j8is01j2q_raw.fits").write_bytes(b"half")
    outside = tmp_path / "keep"
    outside.mkdir()
    (copy / "example" / ".acsprov-bestrefs-link").symlink_to(outside)
    removed = remove_leftovers(copy)
    assert staging in removed and not staging.exists()
    assert outside.is_dir()  # a link is never followed


def test_a_killed_crds_cache_build_leaks_nothing(tmp_path, crds_cache, monkeypatch):
    """The next build removes the staging directory a killed build left beside it."""
    from acsprov.environment import cache_is_complete, ensure_local_crds
    from acsprov.simulate import crds_cache as builder

    stale = tmp_path / ".crds_cache.k1ll3d"
    (stale / "references").mkdir(parents=True)
    (stale / "references" / "big.fits").write_bytes(b"\0" * 100_000)

    def build(staging):  # the session's cache stands in for the simulator's output
        shutil.rmtree(staging)
        shutil.copytree(crds_cache, staging, copy_function=os.link)

    monkeypatch.setattr(builder, "build_simulated_cache", build)
    cache = ensure_local_crds(tmp_path / "crds_cache", say=lambda m: None)
    assert cache_is_complete(cache)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".crds_cache.lock", "crds_cache"]


# -- the recorder's own attributes ----------------------------------------------------------
def test_an_action_s_notes_cannot_overwrite_its_recorded_parameters(tmp_path):
    from acsprov.provenance import Recorder

    rec = Recorder(tmp_path / "ds", name="t", datalad=False)
    with pytest.raises(ValueError, match="'parameters' is the recorder's own"), \
            rec.activity("destripe", params={"file": "x_raw.fits", "cte": True}) as act:
        act.note(parameters={"stat": "pmode1"})
    doc = json.loads(rec.document_path.read_text())
    (activity,) = doc["activity"].values()
    assert json.loads(activity["acsprov:parameters"]) == {"cte": True, "file": "x_raw.fits"}


def test_a_prov_directory_that_is_a_link_is_refused(tmp_path, capsys):
    """A handed-over work directory whose prov/ leads elsewhere: no document is
    written there."""
    from helpers import make_raw

    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "prov").symlink_to(outside)
    raw = make_raw(work / "j8is01j2q_raw.fits")
    assert main(["set-header", str(raw), "DARKCORR=OMIT"]) == 11
    assert "is a symbolic link" in _one_line_error(capsys)
    assert list(outside.iterdir()) == []
