"""Shared fixtures.  Tests never reach the real MAST or CRDS servers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import make_removable  # tests/ is on sys.path from here

# Tools installed with the Python packages (git-annex, crds, acsprov) are on PATH, as
# `make test` arranges; this makes a bare `pytest` from the venv behave the same.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def _removable_tmp_path(tmp_path):
    """Let pytest remove a passing test's tmp_path: git-annex write-protects its object
    directories, which ``shutil.rmtree`` cannot then empty."""
    yield
    make_removable(tmp_path)


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory):
    """The session's $XDG_CACHE_HOME: the user's cache directory, never the real one."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, cache_home):
    """Keep every test off the network: `auto` sources go straight to the simulator.

    The per-user local CRDS cache is the session's (built once, by the first test that
    needs it), not the one of the user running the tests.
    """
    monkeypatch.setenv("ACSPROV_OFFLINE", "1")
    monkeypatch.setenv("ACSPROV_MAST_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.delenv("ACSPROV_CRDS_PATH", raising=False)


@pytest.fixture(scope="session")
def crds_cache(cache_home):
    """The local CRDS cache with all simulated reference files, built once per session
    where acsprov looks for it by default (``$XDG_CACHE_HOME/acsprov/crds_cache``)."""
    from acsprov.environment import ensure_local_crds

    return ensure_local_crds(cache_home / "acsprov" / "crds_cache", say=lambda m: None)


#: One HRC exposure recalibrated with a user bias (Handbook Example 1's edits, on HRC):
#: small and quick, for audits and bundles.
HRC_RECIPE = """
name: hrcbias
title: "HRC exposure with mybias.fits, as Example 1 does on WFC"
source: simulate
datasets: [j8is01020]
runs:
  - name: example
    steps:
      - copy: {files: [j8is01j2q_raw.fits]}
      - bestrefs: {files: [j8is01j2q_raw.fits]}
      - copy_reference: {keyword: BIASFILE, header_of: j8is01j2q_raw.fits, to: mybias.fits}
      - set_header: {files: [j8is01j2q_raw.fits], set: {BIASFILE: mybias.fits}}
      - calacs: {input: j8is01j2q_raw.fits, options: {engine: native}}
"""


def _recorded(tmp_path_factory, crds_cache, text: str):
    """Run the recipe `text` in a new directory, recorded; return its result."""
    from acsprov.reprocess import reprocess

    top = tmp_path_factory.mktemp("recorded")
    recipe = top / "recipe.yaml"
    recipe.write_text(text)
    return reprocess(str(recipe), workdir=top / "work", crds_path=crds_cache,
                     say=lambda m: None)


@pytest.fixture(scope="session")
def recorded_hrc_run(tmp_path_factory, crds_cache):
    """A recorded recipe run (DataLad dataset + PROV) of :data:`HRC_RECIPE`; read only."""
    return _recorded(tmp_path_factory, crds_cache, HRC_RECIPE)


#: An HRC repeat association recalibrated with a user bias, as Handbook Example 2
#: does with a WFC CR-SPLIT pair: the members' _flt and the _crj, all with mybias.fits.
HRC_ASN_RECIPE = """
name: hrcasnbias
title: "HRC association with mybias.fits, as Example 2 does on WFC"
source: simulate
datasets: [j8is01020]
runs:
  - name: example2
    steps:
      - copy: {files: [j8is01020_asn.fits, "*_raw.fits"]}
      - bestrefs: {files: ["*_raw.fits"]}
      - copy_reference: {keyword: BIASFILE, header_of: j8is01j2q_raw.fits, to: mybias.fits}
      - set_header: {files: ["*_raw.fits"], set: {BIASFILE: mybias.fits}}
      - calacs: {input: j8is01020_asn.fits, options: {engine: native}}
"""


@pytest.fixture(scope="session")
def recorded_hrc_asn_run(tmp_path_factory, crds_cache):
    """A recorded run of :data:`HRC_ASN_RECIPE` (a _crj made with mybias.fits); read only."""
    return _recorded(tmp_path_factory, crds_cache, HRC_ASN_RECIPE)
