"""Richardson-extrapolated finite differences, as R's numDeriv (which lmerTest uses).

Matching lmerTest's Satterthwaite degrees of freedom to many digits needs the same
difference scheme: steps ``h = |d x| + eps * (|x| < zero_tol)``, ``r = 4`` rounds, each
halving ``h``, and Richardson's extrapolation ``(4^m a_{k+1} - a_k) / (4^m - 1)``.
``jacobian`` uses ``d = 1e-4`` and ``hessian`` (numDeriv's ``genD``) ``d = 0.1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["hessian", "jacobian"]

_ZERO_TOL = float(np.sqrt(np.finfo(float).eps / 7e-7))


def _steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _extrapolate(a: np.ndarray) -> np.ndarray:
    """Richardson extrapolation over the first axis (``r`` successive halvings)."""
    r = a.shape[0]
    for m in range(1, r):
        a = (a[1 : r - m + 1] * 4.0**m - a[: r - m]) / (4.0**m - 1.0)
    return a[0]


def jacobian(func: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, eps: float = 1e-4,
             d: float = 1e-4, r: int = 4, v: float = 2.0) -> np.ndarray:
    """Jacobian of a vector (or array) valued ``func`` at ``x``.

    Returns an array of shape ``func(x).shape + (len(x),)``.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    h = _steps(x, d, eps)
    cols = []
    for i in range(n):
        a = []
        hi = h[i]
        for _ in range(r):
            e = np.zeros(n)
            e[i] = hi
            a.append((np.asarray(func(x + e)) - np.asarray(func(x - e))) / (2 * hi))
            hi = hi / v
        cols.append(_extrapolate(np.array(a)))
    return np.stack(cols, axis=-1)


def hessian(func: Callable[[np.ndarray], float], x: np.ndarray, *, eps: float = 1e-4,
            d: float = 0.1, r: int = 4) -> np.ndarray:
    """Hessian of a scalar ``func`` at ``x`` (numDeriv's ``genD`` scheme, ``v = 2``)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    f0 = float(func(x))
    h0 = _steps(x, d, eps)
    hdiag = np.empty(n)
    H = np.empty((n, n))
    for i in range(n):
        h = h0.copy()
        a = np.empty(r)
        for k in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            a[k] = (float(func(x + e)) - 2 * f0 + float(func(x - e))) / h[i] ** 2
            h = h / 2
        hdiag[i] = _extrapolate(a)
        H[i, i] = hdiag[i]
    for i in range(n):
        for j in range(i):
            h = h0.copy()
            a = np.empty(r)
            for k in range(r):
                e = np.zeros(n)
                e[i] = h[i]
                e[j] = h[j]
                a[k] = (float(func(x + e)) - 2 * f0 + float(func(x - e))
                        - hdiag[i] * h[i] ** 2 - hdiag[j] * h[j] ** 2) / (2 * h[i] * h[j])
                h = h / 2
            H[i, j] = H[j, i] = _extrapolate(a)
    return H
