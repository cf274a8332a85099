"""Numba's ``njit``, with an on-disk cache that cannot break mixeff.

``@njit(cache=True)`` raises ``RuntimeError: cannot cache function ...: no locator
available`` when the module is imported if no cache directory is writable
(``NUMBA_CACHE_DIR`` read-only or on a missing path, the package in a read-only
site-packages, no writable home), and lets ``OSError`` out of the first call when writing
the cache fails (a full disk). mixeff's kernels are decorated through :func:`njit`, which
then compiles them in memory for the process, with one :class:`RuntimeWarning`, instead.
A cache entry that cannot be read back (damaged by another program) is compiled again.

Numba writes each cache file to a temporary name and renames it (``os.replace``), so an
interrupted compilation (``KeyboardInterrupt``) leaves at most a stray ``*.tmp.*`` file,
never a half-written entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numba

__all__ = ["njit"]

_warned = False


def _warn(err: BaseException) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"Numba cannot use its on-disk cache for mixeff's kernels ({type(err).__name__}: "
        f"{err}); they are compiled in memory for this process (set NUMBA_CACHE_DIR to a "
        "writable directory to keep them between runs)", RuntimeWarning, stacklevel=3)


def _guard_cache(disp: Any) -> None:
    """Make a dispatcher's cache failures fall back to in-memory compilation."""
    cache = getattr(disp, "_cache", None)
    save = getattr(cache, "save_overload", None)
    load = getattr(cache, "load_overload", None)
    if save is None or load is None:  # pragma: no cover - numba internals changed
        return

    def save_overload(sig, data):
        try:
            save(sig, data)
        except OSError as err:   # full disk, read-only after the check, quota...
            _warn(err)
            disable = getattr(cache, "disable", None)
            if disable is not None:
                disable()

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as err:  # an unreadable entry: compile again
            _warn(err)
            return None

    cache.save_overload = save_overload
    cache.load_overload = load_overload


def njit(*args: Any, **kwargs: Any) -> Callable:
    """``numba.njit`` (used as ``@njit(...)``) whose ``cache=True`` never fails."""
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        return njit()(args[0])

    def decorate(fn: Callable) -> Callable:
        if not kwargs.get("cache"):
            return numba.njit(*args, **kwargs)(fn)
        try:
            disp = numba.njit(*args, **kwargs)(fn)
        except RuntimeError as err:   # no writable cache location at all
            if "cannot cache" not in str(err):
                raise
            _warn(err)
            return numba.njit(*args, **{**kwargs, "cache": False})(fn)
        _guard_cache(disp)
        return disp

    return decorate
