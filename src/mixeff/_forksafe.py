"""Fits in processes forked from a process that has fitted (``multiprocessing``'s "fork").

GNU OpenMP (libgomp) is not fork-safe. CHOLMOD's supernodal factorisation runs OpenMP
parallel loops with a fixed thread count (a ``num_threads`` clause, so neither
``omp_set_num_threads`` nor threadpoolctl limits it), and Numba's ``omp`` threading layer
runs the Schur path's parallel elimination on the same runtime. The OpenMP thread pool
belongs to the thread that started it; after ``fork()`` the child has only the forking
thread, whose pool still lists the parent's worker threads, and the next parallel region
on that thread waits for them forever (measured: a child's fit hung in
``cholmod_super_numeric`` after the parent's fit on the CHOLMOD path). Numba's ``omp``
layer instead terminates the child (``Terminating: fork() called from a process already
using GNU OpenMP, this is unsafe``) on its next parallel kernel.

What this module does in a forked child:

* CHOLMOD's numeric factorisations called from the forking thread run on a helper
  thread started in the child (:func:`call_openmp`). A new thread has no OpenMP pool, so
  libgomp starts a fresh one for it; other threads of the child are new as well and call
  CHOLMOD directly.
* Numba's parallel kernels are not used (:func:`numba_parallel_ok` is False) when the
  parent had started Numba's ``omp`` threading layer: the Schur path's elimination runs
  its serial sweep (same result).

The handler is registered with :func:`os.register_at_fork` when the modules that use
OpenMP are imported (nothing is done for processes started by "spawn" or "forkserver",
which are fresh interpreters).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["call_openmp", "in_forked_child", "numba_parallel_ok"]

T = TypeVar("T")

_forked = False             # this process was forked from one that imported this module
_fork_thread: int | None = None   # the thread that called fork() (the child's only one)
_numba_omp_stale = False    # the parent had started Numba's GNU OpenMP layer
_helper: _Helper | None = None
_helper_lock = threading.Lock()


class _Helper:
    """One daemon thread that runs calls handed to it, one at a time."""

    def __init__(self) -> None:
        import queue

        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="mixeff-openmp", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            fn, args, box, done = self._q.get()
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            done.set()

    def call(self, fn: Callable[..., T], args: tuple) -> T:
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._q.put((fn, args, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value


def _after_fork_in_child() -> None:
    global _forked, _fork_thread, _helper, _helper_lock, _numba_omp_stale
    _forked = True
    _fork_thread = threading.get_ident()
    _helper = None                      # the parent's helper thread is not in the child
    _helper_lock = threading.Lock()
    _numba_omp_stale = _numba_omp_stale or _numba_omp_started()


def _numba_omp_started() -> bool:
    """Whether Numba's threading layer is started and is its (GNU) OpenMP one."""
    import sys

    par = sys.modules.get("numba.np.ufunc.parallel")
    if par is None or not getattr(par, "_is_initialized", False):
        return False
    try:
        return par.threading_layer() == "omp"
    except Exception:  # pragma: no cover - numba internals changed: be safe
        return True


def in_forked_child() -> bool:
    """Whether this process was forked from a process that had imported mixeff's kernels."""
    return _forked


def numba_parallel_ok() -> bool:
    """False in a forked child whose parent had started Numba's OpenMP threading layer."""
    return not _numba_omp_stale


def call_openmp(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, run where an OpenMP parallel region cannot hang.

    Directly, except on the forking thread of a forked child: there on a helper thread of
    the child (started on first use, kept for later calls), whose OpenMP pool is new.
    Exceptions are raised in the caller.
    """
    global _helper
    if not _forked or threading.get_ident() != _fork_thread:
        return fn(*args)
    if _helper is None:
        with _helper_lock:
            if _helper is None:
                _helper = _Helper()
    return _helper.call(fn, args)


os.register_at_fork(after_in_child=_after_fork_in_child)
