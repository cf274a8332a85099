"""Memory budget: what a factorisation path will allocate, and what the process may use.

Before the objective allocates its factor, the bytes it needs are estimated and compared
with the memory available (:func:`available_memory`) or the ``memory_limit=`` the user
gave. The estimates:

* **dense Schur path** (:class:`~mixeff._schur.DenseSchurCholesky`): the ``q2 x q2``
  Schur complement (factored in place) and, for the analytic gradient, its inverse, i.e.
  ``2 x 8 q2^2`` bytes (q2 = random effects outside the first term).
* **CHOLMOD path**: the number of entries of the factor ``L`` predicted from the pattern
  and the fill-reducing ordering of the symbolic analysis (:func:`factor_entries`, a
  row-subtree count of ``P M P'`` in ``O(nnz(L))`` steps, stopped as soon as it passes
  the budget), times :data:`CHOLMOD_BYTES_PER_ENTRY`.
* **Kenward-Roger**: its dense ``q x q`` matrices (:data:`KR_DENSE_COPIES` of them).

Available memory is the smallest of ``MemAvailable`` (``/proc/meminfo``), the free part
of the cgroup's ``memory.max``, and the free part of the address-space and data-segment
limits (``RLIMIT_AS``, ``RLIMIT_DATA``) given the process's current size.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ._errors import DataError
from ._jit import njit

__all__ = ["available_memory", "factor_entries", "format_bytes", "parse_memory_limit",
           "fits", "schur_bytes", "cholmod_bytes", "memory_error"]

CHOLMOD_BYTES_PER_ENTRY = 52
"""Peak bytes per entry of L on the CHOLMOD path: CHOLMOD's factor (8 per value plus
row indices, and a supernodal factor's padding), the LL' copy read by the selected inverse
(values and indices), the selected inverse itself (8) and its int64 index arrays.
Measured: 43 and 50 bytes of peak-memory growth per predicted entry in fits of crossed
designs with 2 and 4.5 million entries."""

SCHUR_DENSE_COPIES = 2
"""``q2 x q2`` double arrays the dense Schur path keeps: the factor and its inverse."""

KR_DENSE_COPIES = 6
"""``q x q`` double arrays Kenward-Roger's dense algebra holds at once (M's factor,
``N = I - P A``, ``S = A N``, its symmetrised copy, ``S F``, temporaries)."""

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
          "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def format_bytes(n: float) -> str:
    """``n`` bytes as a short text (``"12.8 GB"``, binary units)."""
    n = float(n)
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def parse_memory_limit(value) -> int | None:
    """``memory_limit=``: None (detect), a number of bytes, or a text like ``"8GB"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"memory_limit must be a number of bytes or a text such as '8GB', "
                        f"not {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not np.isfinite(value) and value > 0:
            return None   # inf: no limit
        if not value > 0:
            raise DataError(f"memory_limit must be positive, not {value!r}")
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            n = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if n > 0:
                return int(n)
    raise DataError(f"memory_limit must be a number of bytes or a text such as '8GB' or "
                    f"'500 MB', not {value!r}")


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            top = fh.read().strip()
        if top == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as fh:
            cur = int(fh.read().strip())
        return max(int(top) - cur, 0)
    except (OSError, ValueError):
        return None


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rlimit_available() -> tuple[int, str] | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    best = None
    for name, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        lim = getattr(resource, name, None)
        if lim is None:
            continue
        soft, _ = resource.getrlimit(lim)
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        used = _status_kb(field) or 0
        free = max(int(soft) - used, 0)
        if best is None or free < best[0]:
            best = (free, f"the {name} limit of {format_bytes(soft)}")
    return best


def available_memory() -> tuple[int | None, str]:
    """The bytes this process can still allocate, and where the figure comes from.

    Returns
    -------
    (int or None, str)
        None when nothing could be read (then no check is made).
    """
    cands: list[tuple[int, str]] = []
    v = _meminfo_available()
    if v is not None:
        cands.append((v, "the memory available on this machine"))
    v = _cgroup_available()
    if v is not None:
        cands.append((v, "the memory left in this process's cgroup (memory.max)"))
    r = _rlimit_available()
    if r is not None:
        cands.append(r)
    if not cands:
        return None, "unknown"
    return min(cands, key=lambda c: c[0])


def budget(memory_limit: int | None) -> tuple[int | None, str]:
    """``(bytes, source)`` a fit may use: the user's limit, else :func:`available_memory`."""
    if memory_limit is not None:
        return int(memory_limit), f"memory_limit={format_bytes(memory_limit)}"
    return available_memory()


SMALL = 1 << 26
"""Needs up to 64 MiB are taken to fit without reading the machine's figures (files in
/proc and the cgroup: ~14 us, a noticeable share of a small model's fit)."""


def fits(need: float, memory_limit: int | None) -> bool:
    """Whether ``need`` bytes fit in the budget (True when it cannot be known)."""
    if memory_limit is None and need <= SMALL:
        return True
    have, _ = budget(memory_limit)
    return have is None or need <= have


def memory_error(what: str, need: float, memory_limit: int | None, advice: str,
                 at_least: bool = False) -> DataError:
    """The :class:`~mixeff.DataError` for a path that does not fit in memory."""
    have, source = budget(memory_limit)
    have_txt = "unknown" if have is None else format_bytes(have)
    about = "more than" if at_least else "about"
    return DataError(f"not enough memory: {what} needs {about} {format_bytes(need)}, and "
                     f"{source} leaves {have_txt}. {advice}")


def schur_bytes(q2: int) -> float:
    """Bytes of the dense Schur path's ``q2 x q2`` arrays."""
    return SCHUR_DENSE_COPIES * 8.0 * float(q2) * float(q2)


def cholmod_bytes(entries: int) -> float:
    """Peak bytes of the CHOLMOD path for a factor with ``entries`` entries."""
    return CHOLMOD_BYTES_PER_ENTRY * float(entries)


@njit(cache=True)
def _row_subtree_count(indptr, indices, pinv, cap):  # pragma: no cover - numba
    """Entries of the Cholesky factor of ``P M P'`` (diagonal included), at most ~``cap``.

    ``indptr``/``indices``: CSC pattern of ``M`` (any triangle, or both); ``pinv[i]`` the
    position of row ``i`` in the permuted order. Row ``k`` of ``L`` is the union of the
    elimination-tree paths from each ``i < k`` with ``M'[k, i] != 0`` up to ``k``; the tree
    is built on the way (the parent of ``i`` is the first ``k`` that reaches it). Stops and
    returns a number above ``cap`` once the count passes it.
    """
    n = indptr.size - 1
    # the entries (k, i), i < k, of the permuted matrix, grouped by k (counting sort)
    cnt = np.zeros(n + 1, np.int64)
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            a = pinv[indices[p]]
            b = pinv[j]
            if a != b:
                cnt[max(a, b) + 1] += 1
    for k in range(n):
        cnt[k + 1] += cnt[k]
    nb = cnt[n]
    lows = np.empty(nb, np.int64)
    pos = cnt[:n].copy()
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            a = pinv[indices[p]]
            b = pinv[j]
            if a != b:
                k = max(a, b)
                lows[pos[k]] = min(a, b)
                pos[k] += 1
    parent = np.full(n, -1, np.int64)
    mark = np.full(n, -1, np.int64)
    total = n
    for k in range(n):
        mark[k] = k
        for p in range(cnt[k], cnt[k + 1]):
            i = lows[p]
            while mark[i] != k:
                mark[i] = k
                total += 1            # L[k, i] != 0
                if parent[i] == -1:
                    parent[i] = k
                    break
                i = parent[i]
        if total > cap:
            return total
    return total


def factor_entries(indptr: np.ndarray, indices: np.ndarray, perm: np.ndarray,
                   cap: float = np.inf) -> int:
    """Entries of the Cholesky factor of ``M[perm][:, perm]`` (diagonal included).

    Parameters
    ----------
    indptr, indices
        CSC pattern of the symmetric ``M`` (one triangle or both).
    perm
        The fill-reducing permutation (``L L' = M[perm][:, perm]``).
    cap
        Stop counting once past this number (the result is then some number above it).
    """
    perm = np.asarray(perm, dtype=np.int64)
    pinv = np.empty_like(perm)
    pinv[perm] = np.arange(perm.size, dtype=np.int64)
    capi = np.int64(min(float(cap), 9e18))
    return int(_row_subtree_count(np.asarray(indptr, np.int64), np.asarray(indices, np.int64),
                                  pinv, capi))
