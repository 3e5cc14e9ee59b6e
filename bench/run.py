"""acsprov benchmarks: wall time and peak memory of each action, as JSON.

Each benchmark runs in a fresh child process so that its peak resident memory is its
own (``ru_maxrss`` of the child).  Results go to ``<out>/<name>.json`` and a summary
to ``<out>/summary.json``; ratios are computed within one run, on one machine.

Usage: ``python bench/run.py --out bench/results [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCHMARKS: dict[str, Callable[[Path], dict]] = {}


def benchmark(func: Callable[[Path], dict]) -> Callable[[Path], dict]:
    """Register a benchmark; it gets a scratch directory and returns extra fields."""
    BENCHMARKS[func.__name__] = func
    return func


@benchmark
def simulate_wfc_association(scratch: Path) -> dict:
    """Simulate jd1y04010 (two WFC full frames, archive products)."""
    from acsprov.simulate import simulate_dataset

    files = simulate_dataset("jd1y04010", scratch)
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


@benchmark
def build_local_crds(scratch: Path) -> dict:
    """Write every reference file and the CRDS context around them."""
    from acsprov.environment import ensure_local_crds

    cache = ensure_local_crds(scratch / "crds_cache", say=lambda m: None)
    refs = list((cache / "references" / "hst").iterdir())
    return {"reference_files": len(refs), "bytes": sum(p.stat().st_size for p in refs)}


@benchmark
def bestrefs_hrc_pair(scratch: Path) -> dict:
    """`crds bestrefs --update-bestrefs` on two HRC raw files (cache prepared untimed)."""
    from acsprov import refs
    from acsprov.environment import tool_environment

    cache, raws = _prepared(scratch)
    start = time.perf_counter()
    refs.bestrefs(raws, env=tool_environment(cache), update=True)
    return {"timed_seconds": time.perf_counter() - start}


def _prepared(scratch: Path) -> tuple[Path, list[Path]]:
    from acsprov.environment import ensure_local_crds
    from acsprov.simulate import simulate_dataset

    cache = ensure_local_crds(scratch / "crds_cache", say=lambda m: None)
    files = simulate_dataset("j8is01020", scratch / "data")
    return cache, [p for p in files if p.name.endswith("_raw.fits")]


def _child(name: str, scratch: str, queue: mp.Queue) -> None:
    start = time.perf_counter()
    extra = BENCHMARKS[name](Path(scratch))
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": wall, "peak_rss_mb": peak_kib / 1024.0, **extra})


def run(name: str) -> dict:
    """Run one benchmark in a child process; return its result record."""
    scratch = tempfile.mkdtemp(prefix=f"acsprov-bench-{name}-")
    try:
        ctx = mp.get_context("spawn")
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(name, scratch, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            return {"name": name, "status": "error", "exitcode": proc.exitcode}
        return {"name": name, "status": "ok", **queue.get()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "calacs.e": shutil.which("calacs.e"),
    }
    results = []
    for name in args.only or BENCHMARKS:
        record = run(name)
        results.append(record)
        seconds = record.get("seconds")
        shown = f"{seconds:8.2f} s" if seconds is not None else "   error"
        print(f"{name:32s} {shown}  peak {record.get('peak_rss_mb', 0):7.0f} MB")
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    summary = {"machine": machine, "results": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
