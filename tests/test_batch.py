"""Campaigns on Dask: targets, resuming, failures, a killed worker, the work directory lock.

The campaigns run the real command (``acsprov batch`` / ``acsprov reprocess``) as
separate processes on small simulated HRC recipes, with a real local Dask cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from astropy.io import fits

from acsprov.batch import Target, parse_target, read_targets
from acsprov.errors import BadInputError, DatasetError
from acsprov.provenance.query import verify

ACSPROV = str(Path(sys.executable).parent / "acsprov")

HRCPAIR = """
name: hrcpair
title: HRC repeat pair, calibrated as an association
source: simulate
datasets: [j8is01020]
runs:
  - name: pair
    steps:
      - copy: {files: [j8is01020_asn.fits, j8is01j2q_raw.fits, j8is01j3q_raw.fits]}
      - calacs: {input: j8is01020_asn.fits}
"""

# the association's second member is never copied: calacs must refuse it
BROKEN = """
name: broken
source: simulate
datasets: [j8is01020]
runs:
  - name: r
    steps:
      - copy: {files: [j8is01020_asn.fits, j8is01j2q_raw.fits]}
      - calacs: {input: j8is01020_asn.fits}
"""


@pytest.fixture
def campaign_env(tmp_path, crds_cache, monkeypatch):
    """Recipes hrcpair and broken, and an environment for acsprov processes."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "hrcpair.yaml").write_text(HRCPAIR)
    (recipes / "broken.yaml").write_text(BROKEN)
    monkeypatch.setenv("ACSPROV_RECIPES", str(recipes))
    env = dict(os.environ, ACSPROV_RECIPES=str(recipes), ACSPROV_CRDS_PATH=str(crds_cache),
               ACSPROV_ENGINE="native", ACSPROV_OFFLINE="1")
    return env


def _batch(env, workdir, *targets, workers=2):
    return subprocess.run([ACSPROV, "batch", *targets, "--workers", str(workers),
                           "--workdir", str(workdir), "--no-progress"],
                          env=env, capture_output=True, text=True, check=False, timeout=600)


def _summary(workdir: Path) -> dict[str, dict]:
    data = json.loads((workdir / "campaign.json").read_text())
    return {d["name"]: d for d in data["datasets"]}


def test_targets_name_a_recipe_and_an_optional_seed(tmp_path):
    assert parse_target("j8is01merged") == Target("j8is01merged", None)
    assert parse_target(" J8IS01MERGED@17 ") == Target("j8is01merged", 17)
    assert Target("j8is01merged", 17).name == "j8is01merged@17"
    with pytest.raises(BadInputError, match="seed after '@' must be a whole number"):
        parse_target("j8is01merged@-1")
    with pytest.raises(DatasetError, match="unknown dataset 'nosuch'"):
        parse_target("nosuch@3")
    listing = tmp_path / "list.txt"
    listing.write_text("# campaign\nj8is01merged@1\n\nj8is01merged@2  # second\nj8is01merged@1\n")
    assert read_targets(["jd5702jpq"], listing) == [
        Target("jd5702jpq"), Target("j8is01merged", 1), Target("j8is01merged", 2)]
    with pytest.raises(BadInputError, match="no dataset given"):
        read_targets([], None)


def test_seed_variants_are_other_simulated_data(tmp_path, crds_cache, campaign_env):
    from acsprov.reprocess import reprocess

    a = reprocess("hrcpair", workdir=tmp_path / "w", crds_path=crds_cache, seed=3,
                  datalad=False, say=lambda m: None)
    assert a.root.name == "hrcpair@3"
    assert a.obtained[0].origin == "acsprov.simulate seed=3"
    doc = json.loads(a.document.read_text())
    obtain = next(x for x in doc["activity"].values() if x["prov:label"].startswith("obtain"))
    assert obtain["acsprov:command"] == (
        "acsprov simulate j8is01020 --out cal_fits --seed 3")
    other = tmp_path / "default"
    reprocess("hrcpair", workdir=other, crds_path=crds_cache, datalad=False,
              say=lambda m: None)
    raw = "cal_fits/j8is01j2q_raw.fits"
    assert fits.getdata(a.root / raw).tolist() != fits.getdata(other / "hrcpair" / raw).tolist()


def test_campaign_reports_failures_skips_verified_and_redoes_changed(tmp_path, campaign_env):
    work = tmp_path / "work"
    first = _batch(campaign_env, work, "hrcpair@1", "broken", "hrcpair@2")
    assert first.returncode == 8, first.stderr
    assert "Traceback" not in first.stderr and "CommClosedError" not in first.stderr
    assert first.stderr.strip().splitlines()[-1].startswith(
        "acsprov: error: 1 of 3 datasets failed (first: broken:")
    runs = _summary(work)
    assert [runs[n]["status"] for n in ("hrcpair@1", "broken", "hrcpair@2")] == [
        "ok", "error", "ok"]
    assert "j8is01j3q_raw.fits" in runs["broken"]["error"]
    assert "Traceback (most recent call last)" in runs["broken"]["traceback"]
    assert runs["hrcpair@1"]["products"] == [
        "pair/j8is01021_crj.fits", "pair/j8is01j2q_flt.fits", "pair/j8is01j3q_flt.fits"]
    assert runs["hrcpair@1"]["verification"].startswith("verified:")
    page = (work / "campaign.html").read_text()
    assert "broken" in page and "traceback" in page and "hrcpair@2" in page
    for name in ("hrcpair@1", "hrcpair@2"):
        verify(work / name)

    # a product changed behind acsprov's back no longer verifies: that dataset is redone
    product = work / "hrcpair@2" / "pair" / "j8is01j3q_flt.fits"
    product.unlink()  # an annexed file is a link: replace it by other content
    product.write_bytes(b"not the product")
    second = _batch(campaign_env, work, "hrcpair@1", "broken", "hrcpair@2")
    assert second.returncode == 8
    runs = _summary(work)
    assert runs["hrcpair@1"]["status"] == "skipped"
    assert runs["hrcpair@2"]["status"] == "ok"
    assert runs["broken"]["status"] == "error"
    verify(work / "hrcpair@2")
    assert fits.getheader(product)["FILENAME"].strip() == "j8is01j3q_flt.fits"


def _wait_for(predicate, timeout=180.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _holder_pid(root: Path) -> int | None:
    """The pid in a work directory's lock file once its run has recorded an action."""
    try:
        text = (root / ".acsprov.lock").read_text().split()
    except OSError:
        return None
    if len(text) < 2 or not list((root / "prov").glob("*.json")):
        return None
    return int(text[1])


def test_killed_worker_task_is_retried_and_every_product_verifies(tmp_path, campaign_env):
    work = tmp_path / "work"
    names = ["hrcpair@11", "hrcpair@12", "hrcpair@13"]
    proc = subprocess.Popen([ACSPROV, "batch", *names, "--workers", "2", "--workdir",
                             str(work), "--no-progress"], env=campaign_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _wait_for(lambda: _holder_pid(work / names[0]), what="a running task")
        assert victim != proc.pid
        os.kill(victim, signal.SIGKILL)  # the worker process, in the middle of its task
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    runs = _summary(work)
    assert all(runs[n]["status"] == "ok" for n in names), runs
    assert runs[names[0]]["pid"] != victim  # done again by another worker process
    for name in names:
        root = work / name
        verify(root)
        assert not [p for p in root.rglob(".*.tmp") if ".git" not in p.parts]
        for rel in runs[name]["products"]:
            with fits.open(root / rel) as hdul:
                hdul.verify("exception")
                assert hdul["SCI", 1].data.shape == (1024, 1024)


def test_two_processes_on_one_work_directory(tmp_path, campaign_env):
    work = tmp_path / "work"
    command = [ACSPROV, "reprocess", "hrcpair", "--workdir", str(work)]
    first = subprocess.Popen(command, env=campaign_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        holder = _wait_for(lambda: _holder_pid(work / "hrcpair"), what="the first run")
        assert holder == first.pid
        second = subprocess.run(command, env=campaign_env, capture_output=True, text=True,
                                check=False, timeout=120)
        assert second.returncode == 9
        assert second.stderr.count("\n") == 1
        assert "is in use by another acsprov process (pid" in second.stderr
        assert "Traceback" not in second.stderr
        # the first one dies without cleaning up: its lock must not outlive it
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    third = subprocess.run(command, env=campaign_env, capture_output=True, text=True,
                           check=False, timeout=300)
    assert third.returncode == 0, third.stderr
    verify(work / "hrcpair")


def test_run_killed_before_its_commit_is_recorded_and_redone(tmp_path, crds_cache,
                                                             campaign_env):
    """A run killed between writing its PROV document and committing it: the next
    attempt commits that record and the dataset verifies again."""
    from acsprov.batch import run_dataset
    from acsprov.provenance.query import ProvenanceMismatchError, documents

    work = tmp_path / "work"
    first = run_dataset(Target("hrcpair", 4), work, crds_cache)
    assert first.status == "ok", first.traceback
    root = work / "hrcpair@4"
    document = documents(root)[-1]
    data = json.loads(document.read_text())
    data["activity"]["acsprov:half-recorded"] = {"acsprov:status": "ok"}
    document.write_text(json.dumps(data))  # written, never committed
    with pytest.raises(ProvenanceMismatchError, match="edited after it was recorded"):
        verify(root)
    again = run_dataset(Target("hrcpair", 4), work, crds_cache)
    assert again.status == "ok", again.traceback
    assert again.document != first.document
    verify(root)
    log = subprocess.run(["git", "-C", str(root), "log", "--format=%s"], capture_output=True,
                         text=True, check=True).stdout
    assert "acsprov: PROV record of an interrupted run" in log
    assert run_dataset(Target("hrcpair", 4), work, crds_cache).status == "skipped"


def test_campaign_on_a_running_scheduler(tmp_path, campaign_env):
    """--scheduler ADDRESS: the tasks run on the workers of an existing Dask cluster."""
    bindir = Path(sys.executable).parent
    info = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([str(bindir / "dask"), "scheduler", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(info)],
                                 env=campaign_env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_for(info.exists, timeout=60, what="the scheduler")
        address = _wait_for(lambda: json.loads(info.read_text() or "{}").get("address"),
                            timeout=60, what="the scheduler address")
        worker = subprocess.Popen([str(bindir / "dask"), "worker", address, "--nthreads", "1",
                                   "--no-dashboard", "--name", "remote-1"],
                                  env=campaign_env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        work = tmp_path / "work"
        proc = subprocess.run([ACSPROV, "batch", "hrcpair@21", "--scheduler", address,
                               "--workdir", str(work), "--no-progress"], env=campaign_env,
                              capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 0, proc.stderr
        data = json.loads((work / "campaign.json").read_text())
        assert data["campaign"]["scheduler"] == address
        (run,) = data["datasets"]
        assert run["status"] == "ok" and run["worker"].startswith("tcp://")
        # the task ran in the worker we started (its nanny's child process)
        assert run["pid"] in {worker.pid} | {
            c.pid for c in psutil.Process(worker.pid).children(recursive=True)}
        verify(work / "hrcpair@21")
    finally:
        for proc in (worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_second_campaign_in_one_work_directory_is_refused(tmp_path, campaign_env):
    from acsprov.lock import work_lock

    work = tmp_path / "work"
    with work_lock(work):  # a campaign running there
        proc = _batch(campaign_env, work, "hrcpair@1")
    assert proc.returncode == 9
    assert proc.stderr.count("\n") == 1 and "is in use by another acsprov process" in proc.stderr
    assert not (work / "hrcpair@1").exists()


def test_leftovers_of_a_killed_writer_are_removed_but_not_in_git(tmp_path):
    from acsprov.recovery import remove_leftovers

    half = tmp_path / "example3" / ".j8is01j2q_flt.fits.k2j4d9.tmp"
    annex = tmp_path / ".git" / "annex" / ".pack.tmp"
    product = tmp_path / "example3" / "j8is01j2q_flt.fits"
    for path in (half, annex, product):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert remove_leftovers(tmp_path) == [half]
    assert annex.exists() and product.exists() and not half.exists()


@pytest.mark.browser
def test_campaign_page_accumulates_and_links_everything(tmp_path, campaign_env):
    """Two batch commands on one work directory: one page lists both datasets, each
    with links to its products, PROV document, lineage page and archive audit report."""
    import re
    from urllib.parse import unquote

    from helpers import browse

    work = tmp_path / "work"
    for target in ("hrcpair@31", "hrcpair@32"):
        proc = _batch(campaign_env, work, target, workers=1)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr and "CommClosedError" not in proc.stderr
    runs = _summary(work)
    assert set(runs) == {"hrcpair@31", "hrcpair@32"}  # the first command's dataset stays
    for name, run in runs.items():
        assert run["status"] == "ok" and run["simulated"] is True
        assert run["lineage"] == "prov/lineage.html"
        assert run["audit"] == f"reports/{name}/audit.html"
        assert "SIMULATED data" in run["audit_summary"]
    data = json.loads((work / "campaign.json").read_text())
    assert data["campaign"]["earlier_datasets"] == 1
    page = work / "campaign.html"
    links = {unquote(h) for h in re.findall(r'href="([^"]+)"', page.read_text())}
    for name, run in runs.items():
        expected = {f"{name}/{p}" for p in run["products"]} | {
            f"{name}/{run['document']}", f"{name}/prov/lineage.html", run["audit"]}
        assert expected <= links, expected - links
    assert all((work / link).is_file() for link in links)  # no dead ends
    dom, pixels = browse(page, tmp_path, size=(1500, 700), name="campaign")
    assert "SIMULATED DATA" in dom and "from earlier commands" in dom
    for text in ("hrcpair@31", "hrcpair@32", "PROV document", "lineage", "audit report",
                 "pair/j8is01021_crj.fits"):
        assert text in dom
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
