"""The two chips of an exposure worked on concurrently give what one after the other gives."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from test_calib_ccd import NX, NY, TRIMX, TRIMY2, _image, write_tiny_hrc

from acsprov.calib.acs2d import run_acs2d
from acsprov.calib.acsccd import run_acsccd
from acsprov.calib.chips import map_chips, parallel_chips
from acsprov.calib.fitsio import read_exposure
from acsprov.calib.trailer import Trailer


def _timeless(trl: Trailer) -> list[str]:
    """Trailer lines with the clock times taken out."""
    out = []
    for line in trl.lines:
        line = re.sub(r"^\d{13}-I-+ ", "TIME ", line)
        line = re.sub(r"\d\d:\d\d:\d\d UTC", "HH:MM:SS UTC", line)
        out.append(re.sub(r"\d\d-\w{3}-\d{4}", "DD-MMM-YYYY", line))
    return out


def write_two_chips(d: Path, **kw) -> Path:
    """The tiny exposure of :func:`write_tiny_hrc` with a second, brighter imset."""
    path = write_tiny_hrc(d, **kw)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[0].header["NEXTEND"] = 6
    for h in hdus[1:4]:
        h = h.copy()
        h.header["EXTVER"] = 2
        if h.name == "SCI":
            data = h.data.astype(np.int64)
            data[: NY - TRIMY2, TRIMX : NX - TRIMX] += np.arange(NX - 2 * TRIMX) * 7
            data[2, 3] = 0
            h.data = data.astype(np.uint16)
        hdus.append(h)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _calibrate(raw: Path, nthreads: int | None, overwrite: bool = False
               ) -> tuple[list, Trailer]:
    trl = Trailer()
    blv = run_acsccd(read_exposure(raw), trailer=trl, input_dir=raw.parent,
                     output_name="jtiny01q_blv_tmp.fits", nthreads=nthreads)
    flt = run_acs2d(blv, trailer=trl, requested={"DQICORR": "OMIT"}, input_dir=raw.parent,
                    output_name="jtiny01q_flt.fits", nthreads=nthreads,
                    overwrite_input=overwrite)
    return [flt.phdr, *flt.imsets], trl


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("flash", [False, True])
def test_two_chips_in_parallel_are_bit_identical_to_serial(tmp_path, flash, overwrite):
    kw = {}
    if flash:  # FLSHCORR without a flash: IGNORED from the first imset on
        _image(tmp_path / "fls.fits", "FLASH", np.full((NY - TRIMY2, NX - 2 * TRIMX), 0.5))
        kw = {"switches": {"FLSHCORR": "PERFORM"}, "refs": {"FLSHFILE": "fls.fits"}}
    raw = write_two_chips(tmp_path, **kw)
    serial, serial_trl = _calibrate(raw, 1)
    parallel, parallel_trl = _calibrate(raw, None, overwrite)
    assert _timeless(parallel_trl) == _timeless(serial_trl)
    assert "Full-well saturation flagging being performed for imset 2." in serial_trl.lines
    assert (serial_trl.lines.count("FLSHCORR SKIPPED") == 1) == flash  # for imset 2
    assert parallel[0] == serial[0]
    assert len(parallel) == 3
    for a, b in zip(parallel[1:], serial[1:], strict=True):
        for name in ("sci", "err", "dq"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
        assert a.hdr == b.hdr and a.err_hdr == b.err_hdr and a.dq_hdr == b.dq_hdr
    assert not np.array_equal(parallel[1].sci, parallel[2].sci)


def test_map_chips_runs_the_chips_on_two_threads_and_keeps_their_order():
    threads = []
    barrier = threading.Barrier(2, timeout=10)

    def work(i: int, item: str, log: Trailer) -> str:
        threads.append(threading.get_ident())
        barrier.wait()  # both chips are under way at once
        log.message(f"chip {item}")
        return item * 2

    trl = Trailer()
    assert map_chips(work, ["a", "b"], trl, parallel=True) == ["aa", "bb"]
    assert trl.lines == ["chip a", "chip b"]
    assert len(set(threads)) == 2


def test_map_chips_raises_the_first_failure_after_the_messages_before_it():
    def work(i: int, item: int, log: Trailer) -> int:
        log.message(f"chip {i}")
        if i == 1:
            raise ValueError("chip 1 failed")
        return i

    trl = Trailer()
    with pytest.raises(ValueError, match="chip 1 failed"):
        map_chips(work, [0, 1, 2], trl, parallel=True)
    assert trl.lines == ["chip 0", "chip 1"]


def test_serial_when_one_thread_or_one_chip():
    assert parallel_chips(None, 2) and parallel_chips(2, 2)
    assert not parallel_chips(1, 2) and not parallel_chips(None, 1)
    threads = set()
    map_chips(lambda i, item, log: threads.add(threading.get_ident()), [0, 1], Trailer(),
              parallel=False)
    assert threads == {threading.get_ident()}


def test_large_arrays_are_mapped_on_their_own_on_glibc():
    import ctypes
    import sys

    from acsprov.calib.memory import map_large_arrays

    done = map_large_arrays()
    glibc = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert done == glibc
    a = np.ones(8 << 20, np.uint8)  # the calculations are the same
    assert int(a.sum()) == 8 << 20


_FREED_HEAP = """
import numpy as np
from acsprov.calib.memory import release_free_memory

def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

first = np.ones(16 << 18, np.float32)  # a mapped 16 MB block, freed: glibc's threshold
del first                               # rises, so the next 4 MB arrays come from the heap
arrays = [np.ones(4 << 18, np.float32) for _ in range(60)]
top = np.ones(1 << 18, np.float32)      # heap memory above them keeps the heap from shrinking
del arrays
print(rss(), release_free_memory(), rss())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_freed_heap_memory_is_given_back():
    import ctypes
    import subprocess
    import sys

    if not hasattr(ctypes.CDLL(None), "malloc_trim"):
        from acsprov.calib.memory import release_free_memory

        assert release_free_memory() is False  # nothing to call: nothing claimed
        return
    out = subprocess.run([sys.executable, "-c", _FREED_HEAP], capture_output=True, text=True,
                         check=True).stdout.split()
    held, released, after = int(out[0]), out[1], int(out[2])
    assert released == "True"
    assert held - after > 150  # of the 240 MB freed, held resident until the trim
