"""Satterthwaite's degrees of freedom for t and F tests, as lmerTest computes them.

The variance parameters are ``varpar = (theta, sigma)``. lmerTest writes the deviance as
a function of them with ``beta`` profiled out,

    dev(theta, sigma) = log|L|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)
                        [REML: + log|R_X|^2 - p log(2 pi sigma^2)],

takes its Hessian ``H`` by Richardson-extrapolated differences, and uses ``A = 2 H^+``
(pseudo-inverse over the eigenvalues above 1e-8) as the asymptotic covariance of varpar.
The Jacobian ``J`` of ``vcov(beta) = sigma^2 (R_X' R_X)^{-1}`` with respect to varpar is
taken the same way. For a contrast ``l``: ``df = 2 (l'Vl)^2 / (g' A g)``, ``g_i = l' J_i l``.
All evaluations go through the fast core (:class:`~mixeff._objective.LmmObjective`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy import stats

from . import _numderiv

__all__ = ["SatterthwaiteInfo", "satterthwaite_info", "contest_1d", "contest_md"]

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass
class SatterthwaiteInfo:
    """What every Satterthwaite test of one fit shares.

    Attributes
    ----------
    varpar
        ``(theta, sigma)`` at the optimum.
    vcov_beta
        Covariance matrix of the fixed effects (p x p).
    vcov_varpar
        ``A = 2 H^+``, asymptotic covariance of varpar.
    jacobian
        ``J`` with ``J[:, :, i] = d vcov(beta) / d varpar_i`` (p x p x len(varpar)).
    hessian
        ``H``, the Hessian of the deviance in varpar.
    warnings
        Notes such as a Hessian that is not positive definite (as lmerTest warns).
    """

    varpar: np.ndarray
    vcov_beta: np.ndarray
    vcov_varpar: np.ndarray
    jacobian: np.ndarray
    hessian: np.ndarray
    warnings: list[str]


class _ThetaCache:
    """Evaluate the core at most once per theta (sigma moves need no refactorisation)."""

    def __init__(self, objective):
        self.obj = objective
        self.key: bytes | None = None
        self.val: tuple[float, float, float, np.ndarray] | None = None

    def __call__(self, theta: np.ndarray):
        k = np.asarray(theta, dtype=float).tobytes()
        if k != self.key:
            s = self.obj.solve(theta)
            p = s.RX.shape[0]
            RXinv = sla.solve_triangular(s.RX, np.eye(p)) if p else np.zeros((0, 0))
            self.key = k
            self.val = (s.ldL2, s.ldRX2, s.r2, RXinv @ RXinv.T)
        return self.val


def satterthwaite_info(fit, method: str = "stencil") -> SatterthwaiteInfo:
    """Hessian, varpar covariance and vcov(beta) Jacobian of a fit (lmerTest's recipe).

    Parameters
    ----------
    fit
        The fitted model.
    method
        ``"stencil"`` (default): derivatives in theta of the deviance's pieces, shared
        with the convergence checks (:func:`mixeff._derivs.derivatives`: one
        central-difference stencil of ``2 k^2 + 1`` evaluations for up to three theta,
        forward differences of the pieces' analytic gradients for more), ``sigma`` parts
        analytic. ``"richardson"``:
        numDeriv's Richardson scheme on the deviance in ``(theta, sigma)``, as lmerTest
        computes it (about five times the evaluations; equal to it to ~1e-7).
    """
    if method == "stencil":
        return _info_from_stencil(fit)
    if method != "richardson":
        raise ValueError("method must be 'stencil' or 'richardson'")
    obj = fit._obj
    reml = fit.reml
    n, p = fit.blocks.n, fit.blocks.p
    cache = _ThetaCache(obj)

    def deviance(vp: np.ndarray) -> float:
        theta, sigma = vp[:-1], vp[-1]
        s2 = sigma * sigma
        ldL2, ldRX2, r2, _ = cache(theta)
        dev = ldL2 + r2 / s2 + n * (_LOG2PI + np.log(s2))
        if reml:
            dev += ldRX2 - p * (_LOG2PI + np.log(s2))
        return dev

    def covbeta(vp: np.ndarray) -> np.ndarray:
        return vp[-1] ** 2 * cache(vp[:-1])[3]

    varpar = np.concatenate([fit.theta, [fit.sigma]])
    H = _numderiv.hessian(deviance, varpar)
    J = _numderiv.jacobian(covbeta, varpar)
    # restore the core's state at the optimum
    obj.solve(fit.theta)
    return _finish(varpar, covbeta(varpar), H, J)


def _info_from_stencil(fit) -> SatterthwaiteInfo:
    from ._derivs import derivatives

    d = fit.optsum.derivs
    if d is None or not np.array_equal(d.theta, fit.theta):
        d = derivatives(fit._obj, fit.theta)
        fit.optsum.derivs = d
    n, p = fit.blocks.n, fit.blocks.p
    nu = (n - p) if fit.reml else n
    sigma = fit.sigma
    s2 = sigma * sigma
    r2 = d.value[2]
    k = fit.theta.size
    w = np.array([1.0, 1.0 if fit.reml else 0.0, 1.0 / s2])
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = np.tensordot(w, d.hess, axes=1)
    H[:k, k] = H[k, :k] = -2.0 * d.grad[2] / sigma**3
    H[k, k] = 6.0 * r2 / sigma**4 - 2.0 * nu / s2
    J = np.concatenate([s2 * d.dC, (2.0 * sigma * d.C)[:, :, None]], axis=2)
    varpar = np.concatenate([fit.theta, [sigma]])
    return _finish(varpar, s2 * d.C, H, J)


def _finish(varpar, vcov_beta, H, J) -> SatterthwaiteInfo:
    H = 0.5 * (H + H.T)
    ev, vec = np.linalg.eigh(H)
    tol = 1e-8
    warnings = []
    if np.any(ev < -tol):
        warnings.append("Model may not have converged with "
                        f"{int(np.sum(ev < -tol))} eigenvalue(s) of the Hessian below -1e-8")
    pos = ev > tol
    A = 2.0 * (vec[:, pos] / ev[pos]) @ vec[:, pos].T
    return SatterthwaiteInfo(varpar, vcov_beta, A, J, H, warnings)


def _qform(x: np.ndarray, M: np.ndarray) -> float:
    return float(x @ M @ x)


def contest_1d(info: SatterthwaiteInfo, beta: np.ndarray, l: np.ndarray) -> dict:
    """t test of one contrast ``l' beta = 0``: estimate, SE, df, t, p (lmerTest's contest1D)."""
    l = np.asarray(l, dtype=float)
    var = _qform(l, info.vcov_beta)
    grad = np.array([_qform(l, info.jacobian[:, :, i]) for i in range(info.jacobian.shape[2])])
    denom = _qform(grad, info.vcov_varpar)
    df = 2.0 * var**2 / denom if denom > 0 else np.nan
    est = float(l @ beta)
    se = float(np.sqrt(var))
    t = est / se if se > 0 else np.nan
    pval = 2.0 * stats.t.sf(abs(t), df) if np.isfinite(df) else np.nan
    return {"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": pval}


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F statistic from the df of its eigen-directions."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


def contest_md(info: SatterthwaiteInfo, beta: np.ndarray, L: np.ndarray,
               sigma: float) -> dict:
    """F test of ``L beta = 0`` (lmerTest's contestMD): Sum Sq, Mean Sq, NumDF, DenDF, F, p.

    ``L V L'`` is eigen-decomposed; each direction with a positive eigenvalue gives a t
    statistic and Satterthwaite df ``nu_m``; ``F`` is the mean of the squared t's and
    the denominator df combines the ``nu_m``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    VL = L @ info.vcov_beta @ L.T
    d, P = np.linalg.eigh(VL)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    tol = max(np.finfo(float).eps ** 0.5 * d[0], 0.0) if d.size else 0.0
    pos = d > tol
    q = int(np.sum(pos))
    if q == 0:
        return {"Sum Sq": np.nan, "Mean Sq": np.nan, "NumDF": 0, "DenDF": np.nan,
                "F value": np.nan, "Pr(>F)": np.nan}
    PtL = (P.T @ L)[:q]
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)
    nu = np.empty(q)
    for m in range(q):
        g = np.array([_qform(PtL[m], info.jacobian[:, :, i])
                      for i in range(info.jacobian.shape[2])])
        nu[m] = 2.0 * d[m] ** 2 / _qform(g, info.vcov_varpar)
    ddf = fstat_ddf(nu)
    ms = F * sigma**2
    return {"Sum Sq": ms * q, "Mean Sq": ms, "NumDF": q, "DenDF": ddf, "F value": F,
            "Pr(>F)": float(stats.f.sf(F, q, ddf))}
