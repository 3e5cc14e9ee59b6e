"""The per-chip work of a step, on two threads when the exposure has two chips.

A WFC exposure has two independent chips; most of a step's time is spent in numba
kernels (compiled ``nogil``) and whole-array numpy operations, which release the
GIL, and in reading the chip's reference data.  :func:`map_chips` runs a function
for each chip, the first on the calling thread and the second on a shared worker
thread, and returns the results in chip order.  Trailer messages a chip's work
writes go to a :class:`ChipLog` of its own, which the caller replays into the
trailer in chip order, so the trailer reads as in a serial run; numbers are the
same bit for bit because each chip's arithmetic is unchanged.

The worker thread is started on first use and then reused.  With ``nthreads=1``
(calacs ``-1``) or a single chip, everything runs on the calling thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from acsprov.calib.trailer import Trailer

__all__ = ["ChipLog", "map_chips", "one_chip_at_a_time", "parallel_chips", "run_jobs"]

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    """The shared worker thread (the calling thread is the other one), made once."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="acsprov-chip")
        return _pool


_temporaries = threading.RLock()


@contextmanager
def one_chip_at_a_time() -> Iterator[None]:
    """Hold while a chip's work has full-size arrays of its own alive for a short while
    (a reference read for one step, temporaries).

    The chips worked on concurrently then do those parts one after the other, so two
    chips' are never alive at once: a lower peak of memory for little time lost (the
    rest of their work still overlaps).  Reentrant within a thread.
    """
    with _temporaries:
        yield


def parallel_chips(nthreads: int | None, nchips: int) -> bool:
    """Whether `nchips` chips are to be worked on concurrently with `nthreads` threads.

    Parameters
    ----------
    nthreads : int or None
        Threads the run may use (None: no limit).
    nchips : int
        Number of image sets of the exposure.
    """
    return nchips > 1 and (nthreads is None or nthreads > 1)


def map_chips(fn: Callable[[int, T, Trailer], R], items: Sequence[T], trl: Trailer, *,
              parallel: bool) -> list[R]:
    """``[fn(0, items[0], log), fn(1, items[1], log), ...]``, concurrently if `parallel`.

    Parameters
    ----------
    fn : callable
        Work for one chip, called with its index, its item and the trailer to write
        its messages to.  It must not change anything another chip's call reads.
    items : sequence
        One item per chip.
    trl : Trailer
        The task's trailer.  Serially, `fn` writes to it directly; in parallel each
        chip writes to a :class:`ChipLog`, replayed into `trl` in chip order.
    parallel : bool
        Run the first item on the calling thread and the others on the worker
        thread (see :func:`parallel_chips`); otherwise one after the other.

    Returns
    -------
    list
        The results, in the order of `items`.

    Raises
    ------
    Exception
        The error of the first item (in order) that failed, once all have finished;
        the messages of the items before it and its own are in `trl`, as in a serial
        run.
    """
    if not parallel or len(items) < 2:
        return [fn(i, item, trl) for i, item in enumerate(items)]
    logs = [ChipLog(version=trl.version) for _ in items]
    pool = _worker()
    futures: list[Future[R]] = [pool.submit(fn, i, items[i], logs[i])
                                for i in range(1, len(items))]
    try:
        first = fn(0, items[0], logs[0])
    except BaseException:
        wait(futures)
        logs[0].replay(trl)
        raise
    wait(futures)
    logs[0].replay(trl)
    results = [first]
    for log, future in zip(logs[1:], futures, strict=True):
        log.replay(trl)
        results.append(future.result())
    return results


def run_jobs(jobs: Sequence[Callable[[], R]], *, parallel: bool) -> list[R]:
    """``[job() for job in jobs]``, the first on the calling thread and the others on
    the worker thread if `parallel` (:func:`map_chips` for work that writes no
    trailer: halves of an array's rows, two files).
    """
    return map_chips(lambda _i, job, _log: job(), jobs, Trailer(), parallel=parallel)


@dataclass
class ChipLog(Trailer):
    """Trailer messages of one chip's work, kept to be replayed in chip order.

    Every :class:`~acsprov.calib.trailer.Trailer` method can be used; the whole
    messages are kept (time stamps carry the time they were made).
    """

    texts: list[str] = field(default_factory=list)

    def message(self, text: str = "") -> None:
        """Keep a message (may contain newlines)."""
        self.texts.append(text)

    def replay(self, trl: Trailer) -> None:
        """Write the kept messages into `trl`, in order, and forget them."""
        for text in self.texts:
            trl.message(text)
        self.texts.clear()
