"""Confidence intervals for the parameters of a linear mixed model, as lme4's ``confint``.

Three methods, with lme4's parameter names (``.sig01``, ``.sig02``, ... for the standard
deviations and correlations of the random effects in theta order, ``.sigma`` for the
residual standard deviation, then the fixed effects):

``"Wald"``
    ``estimate +/- z * SE`` for the fixed effects; nothing for the variance parameters.

``"profile"``
    Likelihood-profile intervals. As lme4's ``profile()``, the profile is that of the ML
    deviance (a REML fit is refitted by ML first), on the scale of standard deviations,
    correlations and sigma, and for each fixed effect. ``zeta(x) = sign(x - x_hat) *
    sqrt(dev(x) - dev_min)``, where ``dev(x)`` is the deviance minimised over all other
    parameters with the profiled one held at ``x``; the interval is where zeta crosses
    ``-/+ qnorm((1 + level) / 2)``. lme4 evaluates zeta on a grid and interpolates with
    splines; here the crossings are found by root finding on the exact profile.

    Holding a variance parameter fixed is a reparametrisation of the fast objective
    (:class:`~mixeff._objective.LmmObjective`), optimised over theta with an analytic
    gradient:

    * sigma = c: ``log|L|^2 + r^2(theta) / c^2 + n log(2 pi c^2)``;
    * the SD of column j of a term = c: sigma is tied to theta by ``sigma = c / a_j``
      with ``a_j^2`` the squared norm of row j of the term's template, giving
      ``log|L|^2 + r^2 a_j^2 / c^2 + n log(2 pi c^2 / a_j^2)``;
    * a correlation = rho: sigma is profiled out (the usual ML objective), and row ``r``
      of the template is ``s * (rho * e + sqrt(1 - rho^2) * m)`` with ``e`` the unit
      direction of row ``c`` and ``m`` a unit vector orthogonal to it.

    The gradient needs ``d log|L|^2 / d theta`` and ``d r^2 / d theta`` separately;
    ``d r^2`` comes from the conditional modes (``-2 sum z_res,r u_c``) and ``d log|L|^2``
    is the ML gradient minus ``n d r^2 / r^2``.

    Holding a fixed effect ``beta_j = b`` moves ``b X_j`` into the offset; the blocks
    change algebraically (``Z'y - b Z'X_j``, ``X'y - b X'X_j``, ``y'y - 2 b X_j'y + b^2
    X_j'X_j`` and column j dropped), no pass over the rows.

``"boot"``
    Parametric bootstrap: responses are simulated from the fitted model (new random
    effects and residuals), the model is refitted to each by the same criterion and the
    percentile (or basic / normal) intervals of the replicates are reported. Only
    ``Z'Wy``, ``X'Wy`` and ``y'Wy`` change between replicates, so each refit reuses the
    fit's blocks.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.optimize as so
from scipy import stats

from . import _kernels as K

if TYPE_CHECKING:  # pragma: no cover
    from ._blocks import Blocks
    from ._fit import LmerFit
    from ._lambda import ReStructure
    from ._objective import LmmObjective

__all__ = ["Profiler", "bootstrap", "confint", "parameter_names", "simulate"]

_LOG2PI = float(np.log(2.0 * np.pi))


# --------------------------------------------------------------------------------------
# parameters on lme4's profile scale
# --------------------------------------------------------------------------------------


def parameter_names(fit: LmerFit) -> list[str]:
    """lme4's parameter names: ``.sig01``... (theta order), ``.sigma``, fixed effects."""
    nth = fit.structure.ntheta
    return [f".sig{i + 1:02d}" for i in range(nth)] + [".sigma"] + list(fit.design.xnames)


def sdcor(re: ReStructure, theta: np.ndarray, sigma: float) -> np.ndarray:
    """Standard deviations and correlations in theta order (lme4's "sdcor" scale).

    A diagonal theta position holds the SD of that column of its term, an off-diagonal
    position ``(r, c)`` the correlation of columns ``r`` and ``c`` (NaN when either SD is
    zero).
    """
    tmpl = re.templates(theta)
    out = np.empty(re.ntheta)
    for i, (ti, r, c) in enumerate(zip(re.theta_term, re.theta_row, re.theta_col,
                                       strict=True)):
        T = tmpl[ti]
        if r == c:
            out[i] = sigma * float(np.sqrt(T[r] @ T[r]))
        else:
            nr, nc = float(np.sqrt(T[r] @ T[r])), float(np.sqrt(T[c] @ T[c]))
            out[i] = float(T[r] @ T[c]) / (nr * nc) if nr > 0 and nc > 0 else np.nan
    return out


def _select(parm: Any, names: list[str], nvp: int) -> list[int]:
    """Indices of the requested parameters (names, ``"theta_"``, ``"beta_"``, ints)."""
    if parm is None:
        return list(range(len(names)))
    if isinstance(parm, (str, int, np.integer)):
        parm = [parm]
    out: list[int] = []
    for p in parm:
        if isinstance(p, (int, np.integer)):
            if not 0 <= int(p) < len(names):
                raise IndexError(f"parameter index {p} out of range (0..{len(names) - 1})")
            out.append(int(p))
        elif p == "theta_":
            out += list(range(nvp))
        elif p == "beta_":
            out += list(range(nvp, len(names)))
        elif p in names:
            out.append(names.index(p))
        else:
            raise KeyError(f"unknown parameter {p!r}; the parameters are {names}")
    return sorted(set(out))


def _perc_labels(probs: Sequence[float]) -> list[str]:
    """Column labels as R's ``format.perc(probs, 3)``: ``"2.5 %"``, ``"97.5 %"``."""
    from ._summary import format_r

    return [f"{s.strip()} %" for s in format_r(100.0 * np.asarray(probs, dtype=float), 3)]


# --------------------------------------------------------------------------------------
# optimisation helpers
# --------------------------------------------------------------------------------------


def _lbfgsb(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray,
            lower: np.ndarray) -> tuple[np.ndarray, float]:
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    x0 = np.maximum(np.asarray(x0, dtype=float), np.where(np.isfinite(lower), lower, -np.inf))
    res = so.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-8, "maxcor": 20})
    x = np.asarray(res.x, dtype=float)
    on = np.isfinite(lower) & (x < lower)
    x[on] = lower[on]
    return x, float(fg(x)[0])


def minimize_bounded(fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
                     x0: np.ndarray, lower: np.ndarray, even: np.ndarray | None = None,
                     rounds: int = 3) -> tuple[np.ndarray, float]:
    """L-BFGS-B with an escape from stationary points at zero of even coordinates.

    The deviance is an even function of each diagonal theta entry (flipping the sign of
    a template column leaves ``Lambda Lambda'`` unchanged), so its derivative vanishes
    where such an entry is zero, whether or not that is a minimum; a gradient method
    that reaches zero there (or starts there) stops. After convergence every even
    coordinate sitting at zero is moved away by a few trial steps; when one lowers the
    objective, the optimisation restarts from the best of them.

    Parameters
    ----------
    fg
        Objective and gradient.
    x0
        Start.
    lower
        Lower bounds (``-inf`` for free coordinates).
    even
        Boolean mask of the coordinates in which the objective is even (default: those
        with a zero lower bound).
    rounds
        Maximum number of escapes.

    Returns
    -------
    (x, f)
    """
    if even is None:
        even = lower == 0.0
    x, f = _lbfgsb(fg, x0, lower)
    for _ in range(rounds):
        scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
        at_zero = np.flatnonzero(even & (np.abs(x) <= 1e-10 * scale))
        best: tuple[float, np.ndarray] | None = None
        for i in at_zero:
            for d in (1e-3, 1e-2, 0.1, 0.5):
                x2 = x.copy()
                x2[i] = d * scale if lower[i] < 0 else d
                f2 = float(fg(x2)[0])
                if f2 < f - 1e-10 * (1.0 + abs(f)) and (best is None or f2 < best[0]):
                    best = (f2, x2)
        if best is None:
            break
        x2, f2 = _lbfgsb(fg, best[1], lower)
        if f2 >= f:
            break
        x, f = x2, f2
    return x, f


def _with_response(blocks: Blocks, Zty: np.ndarray, Xty: np.ndarray, yty: float) -> Blocks:
    """The blocks of the same model with another response (same rows, terms and X)."""
    return dataclasses.replace(blocks, Zty=np.ascontiguousarray(Zty),
                               Xty=np.ascontiguousarray(Xty), yty=float(yty), shift=None)


# --------------------------------------------------------------------------------------
# the ML pieces: log|L|^2, r^2 and their gradients
# --------------------------------------------------------------------------------------


def _ml_parts(obj: LmmObjective, theta: np.ndarray
              ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``log|L|^2``, ``r^2`` and their theta gradients for an ML objective."""
    sol = obj.solve(theta)
    g = obj.gradient(theta)
    b = obj.blocks
    re = b.re
    u = obj.u_hat(sol)
    lam_u = np.empty_like(u)
    for ti, t in enumerate(re.terms):
        T = sol.tmpl[ti, : t.k, : t.k]
        ut = u[t.offset : t.offset + t.size].reshape(t.nlevels, t.k)
        lam_u[t.offset : t.offset + t.size] = (ut @ T.T).ravel()
    zres = b.Zty - b.A_full @ lam_u
    if b.p:
        zres = zres - b.ZtX @ sol.beta
    dr2 = np.empty(re.ntheta)
    for i, (ti, r, c) in enumerate(zip(re.theta_term, re.theta_row, re.theta_col,
                                       strict=True)):
        t = re.terms[ti]
        zt = zres[t.offset : t.offset + t.size].reshape(t.nlevels, t.k)
        ut = u[t.offset : t.offset + t.size].reshape(t.nlevels, t.k)
        dr2[i] = -2.0 * float(zt[:, r] @ ut[:, c])
    dldl = g - b.n * dr2 / sol.r2
    return float(sol.ldL2), float(sol.r2), dldl, dr2


class _CorMap:
    """Theta with correlation ``(r, c)`` of one term held at ``rho`` (see module doc).

    The free vector is: the theta entries outside row ``r`` of the term, the length
    ``s`` of row ``r`` and a direction vector ``x`` (length ``r + 1``) whose component
    orthogonal to row ``c`` gives row ``r``'s orthogonal part.
    """

    def __init__(self, re: ReStructure, ti: int, r: int, c: int, rho: float):
        self.re, self.ti, self.r, self.c = re, ti, r, c
        self.rho = float(np.clip(rho, -1.0, 1.0))
        in_term = re.theta_term == ti
        self.row_idx = np.flatnonzero(in_term & (re.theta_row == r))   # columns 0..r
        self.crow_idx = np.flatnonzero(in_term & (re.theta_row == c))  # columns 0..c
        self.keep = np.flatnonzero(~(in_term & (re.theta_row == r)))
        self.nk = self.keep.size
        self.size = self.nk + 1 + (r + 1)
        lower = re.lower_bounds()
        self.lower = np.concatenate([lower[self.keep], [0.0], np.full(r + 1, -np.inf)])
        # even coordinates: diagonal entries of the other rows, the last direction entry
        self.even = np.concatenate([re.is_diagonal_theta[self.keep], [False],
                                    np.arange(r + 1) == r])

    def _unit_c(self, theta: np.ndarray) -> np.ndarray:
        e = np.zeros(self.r + 1)
        e[: self.c + 1] = theta[self.crow_idx]
        nrm = float(np.sqrt(e @ e))
        if nrm < 1e-300:
            e = np.zeros(self.r + 1)
            e[self.c] = 1.0
            return e
        return e / nrm

    def to_theta(self, phi: np.ndarray) -> np.ndarray:
        theta = np.zeros(self.re.ntheta)
        theta[self.keep] = phi[: self.nk]
        s = phi[self.nk]
        x = phi[self.nk + 1 :]
        e = self._unit_c(theta)
        px = x - (x @ e) * e
        nrm = float(np.sqrt(px @ px))
        if nrm < 1e-300:
            m = np.zeros(self.r + 1)
            m[self.r] = 1.0
        else:
            m = px / nrm
        theta[self.row_idx] = s * (self.rho * e + np.sqrt(1.0 - self.rho**2) * m)
        return theta

    def from_theta(self, theta: np.ndarray) -> np.ndarray:
        row = theta[self.row_idx]
        e = self._unit_c(theta)
        orth = row - (row @ e) * e
        if float(orth @ orth) < 1e-24 * max(1.0, float(row @ row)):
            orth = np.zeros(self.r + 1)
            orth[self.r] = 1.0
        return np.concatenate([theta[self.keep], [float(np.sqrt(row @ row))], orth])

    def jacobian(self, phi: np.ndarray) -> np.ndarray:
        J = np.empty((self.re.ntheta, self.size))
        for i in range(self.size):
            h = 1e-7 * max(1.0, abs(phi[i]))
            lo = phi.copy()
            hi = phi.copy()
            if i == self.nk and phi[i] - h < 0.0:    # the length s stays non-negative
                hi[i] += h
                J[:, i] = (self.to_theta(hi) - self.to_theta(lo)) / h
                continue
            if i < self.nk and np.isfinite(self.lower[i]) and phi[i] - h < self.lower[i]:
                hi[i] += h
                J[:, i] = (self.to_theta(hi) - self.to_theta(lo)) / h
                continue
            lo[i] -= h
            hi[i] += h
            J[:, i] = (self.to_theta(hi) - self.to_theta(lo)) / (2.0 * h)
        return J


# --------------------------------------------------------------------------------------
# the profile
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Param:
    name: str
    kind: str            # "sd", "cor", "sigma", "beta"
    index: int           # theta index (sd, cor) or fixed-effect index (beta)
    estimate: float
    lower: float         # bounds on the profile scale
    upper: float
    step: float          # first trial step


class Profiler:
    """The ML likelihood profile of a fit, evaluated exactly on demand.

    Parameters
    ----------
    fit
        The fitted model. A REML fit is refitted by ML (as lme4's ``profile`` does).

    Attributes
    ----------
    base : float
        The ML deviance at the optimum.
    params : dict
        Per parameter name: estimate, bounds and kind.
    points : dict
        Per parameter name: the ``(value, zeta)`` pairs evaluated so far.
    """

    def __init__(self, fit: LmerFit):
        from ._objective import LmmObjective
        from ._predict import refit  # the ML fit, without fit-time warnings

        ml = fit if not fit.reml else refit(fit, reml=False)
        self.fit = ml
        self.blocks = ml.blocks
        self.re = ml.structure
        self.n = int(self.blocks.n)
        self.ldw = float(self.blocks.sum_log_w)
        self.obj = LmmObjective(self.blocks, reml=False)
        lower = self.re.lower_bounds()

        def fg(theta):
            return self.obj(theta), self.obj.gradient(theta)

        theta, base = minimize_bounded(fg, ml.theta, lower)
        if base > ml.objective:
            theta, base = np.asarray(ml.theta, dtype=float), float(self.obj(ml.theta))
        sol = self.obj.solve(theta)
        self.theta_hat = theta
        self.base = float(base)
        self.sigma_hat = float(np.sqrt(sol.r2 / self.n))
        self.beta_hat = sol.beta.copy()
        p = self.blocks.p
        if p:
            import scipy.linalg as sla

            RXinv = sla.solve_triangular(sol.RX, np.eye(p))
            self.se_beta = self.sigma_hat * np.sqrt(np.sum(RXinv**2, axis=1))
        else:
            self.se_beta = np.zeros(0)
        est = sdcor(self.re, theta, self.sigma_hat)
        names = parameter_names(ml)
        self.names = names
        self.params: dict[str, _Param] = {}
        ntheta = self.re.ntheta
        for i in range(ntheta):
            diag = self.re.theta_row[i] == self.re.theta_col[i]
            if diag:
                step = 0.2 * est[i] if est[i] > 0 else 0.2 * self.sigma_hat
                self.params[names[i]] = _Param(names[i], "sd", i, est[i], 0.0, np.inf, step)
            else:
                self.params[names[i]] = _Param(names[i], "cor", i, est[i], -1.0, 1.0, 0.1)
        self.params[".sigma"] = _Param(".sigma", "sigma", -1, self.sigma_hat, 0.0, np.inf,
                                       self.sigma_hat / np.sqrt(2.0 * self.n))
        for j in range(p):
            nm = names[ntheta + 1 + j]
            self.params[nm] = _Param(nm, "beta", j, float(self.beta_hat[j]), -np.inf, np.inf,
                                     float(self.se_beta[j]) if self.se_beta[j] > 0 else 1.0)
        self.points: dict[str, list[tuple[float, float]]] = {nm: [] for nm in names}
        self._starts: dict[str, list[tuple[float, np.ndarray]]] = {nm: [] for nm in names}
        self._beta_blocks: dict[int, Blocks] = {}

    # -- the profiled deviance for one parameter held fixed -----------------------------
    def _start(self, name: str, x: float) -> tuple[float, np.ndarray] | None:
        """Start for the inner optimisation at ``x``: the optimal theta at the nearest
        evaluated values, interpolated (or extrapolated a short way) linearly in x."""
        cands = sorted(self._starts[name], key=lambda c: abs(x - c[0]))
        if not cands:
            return None
        x1, t1 = cands[0]
        if len(cands) == 1 or x1 == x:
            return x1, t1
        x2, t2 = cands[1]
        if x2 == x1 or abs(x - x1) > 3.0 * abs(x2 - x1):
            return x1, t1
        theta = t1 + (x - x1) / (x2 - x1) * (t2 - t1)
        lower = self.re.lower_bounds()
        theta = np.where(np.isfinite(lower), np.maximum(theta, lower), theta)
        return x, theta

    def deviance(self, name: str, x: float) -> float:
        """The ML deviance minimised over all other parameters, ``name`` held at ``x``."""
        par = self.params[name]
        lower = self.re.lower_bounds()
        diag = self.re.is_diagonal_theta
        n, ldw = self.n, self.ldw
        prev = self._start(name, x)
        start = None if prev is None else prev[1]
        if par.kind == "sigma":
            c2 = x * x
            # same covariance matrices, other sigma: theta scales by sigma_prev / x
            x0, th0 = (self.sigma_hat, self.theta_hat) if prev is None else prev
            start = th0 * x0 / x

            def fg(theta):
                ldl, r2, dldl, dr2 = _ml_parts(self.obj, theta)
                f = ldl + r2 / c2 + n * (_LOG2PI + np.log(c2)) - ldw
                return f, dldl + dr2 / c2

            theta, f = minimize_bounded(fg, start, lower)
            self._starts[name].append((x, theta))
            return f
        if par.kind == "sd":
            i = par.index
            ti, r = self.re.theta_term[i], self.re.theta_row[i]
            row = np.flatnonzero((self.re.theta_term == ti) & (self.re.theta_row == r))
            others = np.flatnonzero(~((self.re.theta_term == ti) & (self.re.theta_row == r)))
            th0 = (self.theta_hat if start is None else start).copy()
            if x <= 0.0:
                # SD zero: that row of the template is zero; sigma profiled out
                def fg0(v):
                    theta = np.zeros(self.re.ntheta)
                    theta[others] = v
                    return self.obj(theta), self.obj.gradient(theta)[others]

                v, f = minimize_bounded(fg0, th0[others], lower[others])
                theta = np.zeros(self.re.ntheta)
                theta[others] = v
                self._starts[name].append((x, theta))
                return f
            # free vector: other theta entries, log of the row's length, row direction
            c2 = x * x
            nrow = row.size
            row0 = th0[row]
            a0 = float(np.sqrt(row0 @ row0))
            if a0 <= 0.0:
                row0 = np.zeros(nrow)
                row0[-1] = 1.0
                a0 = max(1e-3, x / self.sigma_hat)
            v0 = np.concatenate([th0[others], [np.log(a0)], row0 / np.sqrt(row0 @ row0)])
            no = others.size
            vlower = np.concatenate([lower[others], np.full(1 + nrow, -np.inf)])

            def unpack(v):
                theta = np.empty(self.re.ntheta)
                theta[others] = v[:no]
                a = float(np.exp(v[no]))
                xd = v[no + 1 :]
                xn = float(np.sqrt(xd @ xd))
                xh = xd / xn if xn > 0 else np.eye(nrow)[-1]
                theta[row] = a * xh
                return theta, a, xh, xn

            def fg(v):
                theta, a, xh, xn = unpack(v)
                ldl, r2, dldl, dr2 = _ml_parts(self.obj, theta)
                a2 = a * a
                f = ldl + r2 * a2 / c2 + n * (_LOG2PI + np.log(c2) - 2.0 * v[no]) - ldw
                gth = dldl + (a2 / c2) * dr2
                grow = gth[row]
                g = np.empty_like(v)
                g[:no] = gth[others]
                g[no] = a * float(grow @ xh) + 2.0 * r2 * a2 / c2 - 2.0 * n
                g[no + 1 :] = (a / xn) * (grow - float(grow @ xh) * xh) if xn > 0 else 0.0
                return f, g

            even = np.concatenate([diag[others], [False], np.arange(nrow) == nrow - 1])
            v, f = minimize_bounded(fg, v0, vlower, even)
            self._starts[name].append((x, unpack(v)[0]))
            return f
        if par.kind == "cor":
            i = par.index
            cmap = _CorMap(self.re, int(self.re.theta_term[i]), int(self.re.theta_row[i]),
                           int(self.re.theta_col[i]), x)
            phi0 = cmap.from_theta(self.theta_hat if start is None else start)

            def fg(phi):
                theta = cmap.to_theta(phi)
                f = self.obj(theta)
                g = self.obj.gradient(theta)
                return f, cmap.jacobian(phi).T @ g

            phi, f = minimize_bounded(fg, phi0, cmap.lower, cmap.even)
            self._starts[name].append((x, cmap.to_theta(phi)))
            return f
        # fixed effect
        j = par.index
        obj = self._beta_objective(j, x)
        if start is None:
            start = self.theta_hat

        def fg(theta):
            return obj(theta), obj.gradient(theta)

        theta, f = minimize_bounded(fg, start, lower)
        self._starts[name].append((x, theta))
        return f

    def _beta_objective(self, j: int, b: float) -> LmmObjective:
        from ._objective import LmmObjective

        blk = self.blocks
        keep = np.array([i for i in range(blk.p) if i != j], dtype=np.int64)
        if j not in self._beta_blocks:
            # X without column j; the response pieces are replaced below
            self._beta_blocks[j] = dataclasses.replace(
                blk, ZtX=np.ascontiguousarray(blk.ZtX[:, keep]),
                XtX=np.ascontiguousarray(blk.XtX[np.ix_(keep, keep)]), p=blk.p - 1)
        Zty = blk.Zty - blk.ZtX[:, j] * b
        Xty = blk.Xty[keep] - blk.XtX[keep, j] * b
        yty = blk.yty - 2.0 * b * blk.Xty[j] + b * b * blk.XtX[j, j]
        return LmmObjective(_with_response(self._beta_blocks[j], Zty, Xty, yty), reml=False)

    def zeta(self, name: str, x: float) -> float:
        """Signed square root of the deviance increase, ``name`` held at ``x``."""
        par = self.params[name]
        x = float(x)
        for xx, zz in self.points[name]:
            if xx == x:
                return zz
        dev = self.deviance(name, x)
        diff = dev - self.base
        if diff < -1e-6 * max(1.0, abs(self.base)):
            warnings.warn(f"profiling {name} found a lower deviance ({dev:.10g} < "
                          f"{self.base:.10g}); the fit had not converged", stacklevel=3)
        z = float(np.sign(x - par.estimate) * np.sqrt(max(diff, 0.0)))
        self.points[name].append((x, z))
        return z

    # -- crossings --------------------------------------------------------------------
    def crossing(self, name: str, target: float, maxit: int = 60) -> float:
        """The value where zeta equals ``target`` (the bound when it is never reached).

        Walks from the estimate towards the bound on the side of ``target``, extrapolating
        zeta linearly (steps capped at ten times the previous one), until the target is
        bracketed, then refines with Brent's method. Returns NaN when no bracket is found.
        """
        par = self.params[name]
        s = 1.0 if target > 0 else -1.0
        bound = par.upper if s > 0 else par.lower
        x_hat = par.estimate
        zq = abs(target)
        if not np.isfinite(x_hat):
            # an undefined correlation (one of its SDs is zero): flat profile
            return bound
        if x_hat == bound or (np.isfinite(bound) and s * (bound - x_hat) <= 0):
            return bound
        xa, za = x_hat, 0.0
        h = par.step
        if np.isfinite(bound):
            h = min(h, 0.5 * abs(bound - x_hat))
        for _ in range(maxit):
            xb = xa + s * h
            at_bound = np.isfinite(bound) and s * (xb - bound) >= 0
            if at_bound:
                xb = bound
            zb = self.zeta(name, xb)
            if s * zb >= zq:
                def fz(x):
                    return self.zeta(name, x) - target

                lo, hi = (xa, xb) if xa < xb else (xb, xa)
                tol = 1e-7 * max(abs(xb - x_hat), 1e-300)
                return float(so.brentq(fz, lo, hi, xtol=tol, rtol=1e-10, maxiter=200))
            if at_bound:
                return bound
            slope = (s * zb - s * za) / h
            if slope > 0:
                h_new = 1.1 * (zq - s * zb) / slope
                h_new = min(max(h_new, 0.05 * h), 10.0 * h)
            else:
                h_new = 2.0 * h
            xa, za = xb, zb
            h = h_new
        warnings.warn(f"profile of {name} did not reach zeta = {target:.3g}", stacklevel=2)
        return np.nan

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """The profile confidence interval of one parameter."""
        z = float(stats.norm.ppf((1.0 + level) / 2.0))
        return self.crossing(name, -z), self.crossing(name, z)


# --------------------------------------------------------------------------------------
# parametric bootstrap
# --------------------------------------------------------------------------------------


class _Progress:
    """A minimal text progress bar on stderr."""

    def __init__(self, total: int, label: str, enabled: bool, width: int = 30):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.t0 = time.perf_counter()
        self.last = -1.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(round(frac * self.width))
        sys.stderr.write(f"\r{self.label} [{bar:<{self.width}}] {done}/{self.total} "
                         f"{now - self.t0:.1f}s")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _refit_response(fit: LmerFit, Zty: np.ndarray, Xty: np.ndarray, yty: float
                    ) -> np.ndarray:
    """Refit the model to another response; the parameter vector in lme4's order."""
    from ._objective import LmmObjective

    obj = LmmObjective(_with_response(fit.blocks, Zty, Xty, yty), reml=fit.reml)
    lower = fit.structure.lower_bounds()

    def fg(theta):
        return obj(theta), obj.gradient(theta)

    theta, _ = minimize_bounded(fg, fit.theta, lower)
    sol = obj.solve(theta)
    b = fit.blocks
    sigma = float(np.sqrt(sol.r2 / ((b.n - b.p) if fit.reml else b.n)))
    return np.concatenate([sdcor(fit.structure, theta, sigma), [sigma], sol.beta])


class _Simulator:
    """Responses simulated from a fitted model and their cross-products with [Z X].

    ``draw`` returns ``y* - offset = X beta + Z b* + e*`` (one column per replicate),
    ``b*`` drawn from the estimated random-effects covariance, ``e* ~ N(0, sigma^2 / w)``;
    ``cross`` gives the ``Z'Wy``, ``X'Wy`` and ``y'Wy`` of such columns in one pass.
    """

    def __init__(self, fit: LmerFit):
        d = fit.design
        self.fit = fit
        self.X = d.X
        self.n, self.p = fit.blocks.n, fit.blocks.p
        self.w = np.ones(self.n) if d.weights is None else np.asarray(d.weights, dtype=float)
        w = self.w
        self.sd_e = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
        self.tmpl = fit.structure.templates(fit.theta)
        self.mean = d.X @ fit.fixef.to_numpy() if self.p else np.zeros(self.n)
        terms = [d.terms[i] for i in fit.term_order]
        self.codes = [np.ascontiguousarray(t.codes, dtype=np.int64) for t in terms]
        self.mats = [np.ascontiguousarray(t.matrix, dtype=np.float64) for t in terms]

    def draw(self, rng: np.random.Generator, B: int) -> np.ndarray:
        fit = self.fit
        sigma = fit.sigma
        Y = np.repeat(self.mean[:, None], B, axis=1)
        for ti, t in enumerate(fit.structure.terms):
            T = self.tmpl[ti, : t.k, : t.k]
            u = rng.standard_normal((t.nlevels, t.k, B))
            bt = sigma * np.einsum("ij,mjb->mib", T, u)          # (m, k, B)
            Y += np.einsum("nk,nkb->nb", self.mats[ti], bt[self.codes[ti]])
        Y += sigma * self.sd_e[:, None] * rng.standard_normal((self.n, B))
        return np.ascontiguousarray(Y)

    def cross(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fit = self.fit
        B = Y.shape[1]
        Zty = np.empty((fit.blocks.q, B))
        for ti, t in enumerate(fit.structure.terms):
            blk = K.term_cross_sums(self.codes[ti], self.mats[ti], self.w, Y, t.nlevels)
            Zty[t.offset : t.offset + t.size] = blk.reshape(-1, B)
        WY = Y * self.w[:, None]
        Xty = self.X.T @ WY if self.p else np.zeros((0, B))
        yty = np.einsum("nb,nb->b", Y, WY)
        return Zty, Xty, yty


def simulate(fit: LmerFit, nsim: int = 1, seed: Any = None) -> np.ndarray:
    """Responses simulated from a fitted model (lme4's ``simulate`` with new random effects).

    Parameters
    ----------
    fit
        The fitted model.
    nsim
        Number of responses.
    seed
        Seed or :class:`numpy.random.Generator`.

    Returns
    -------
    numpy.ndarray
        ``n x nsim``: ``X beta + Z b* + e* (+ offset)`` for the rows used by the fit, with
        ``b*`` drawn from the estimated random-effects covariance and ``e*`` from
        ``N(0, sigma^2 / w)``.
    """
    Y = _Simulator(fit).draw(np.random.default_rng(seed), nsim)
    if fit.design.offset is not None:
        Y = Y + fit.design.offset[:, None]
    return Y


def bootstrap(fit: LmerFit, nsim: int = 500, seed: Any = None, progress: bool = True,
              chunk: int = 64) -> np.ndarray:
    """Parametric bootstrap replicates of the parameters (``nsim x npar``).

    Each replicate simulates a response from the fitted model (see :func:`simulate`),
    refits the model to it by the fit's criterion, starting from the fit's theta, and
    records the parameters in lme4's order (see :func:`parameter_names`). Only ``Z'Wy``,
    ``X'Wy`` and ``y'Wy`` are computed per replicate; the rest of the fit's blocks is
    reused. Failed refits give rows of NaN (with a warning).

    Parameters
    ----------
    fit
        The fitted model.
    nsim
        Number of replicates.
    seed
        Seed or :class:`numpy.random.Generator`.
    progress
        Show a progress bar on stderr.
    chunk
        Replicates simulated together (memory ``n x chunk``).

    Returns
    -------
    numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    sim = _Simulator(fit)
    out = np.full((nsim, fit.structure.ntheta + 1 + fit.blocks.p), np.nan)
    bar = _Progress(nsim, "bootstrap", progress)
    bar.update(0)
    failures: list[str] = []
    done = 0
    while done < nsim:
        B = min(chunk, nsim - done)
        Zty, Xty, yty = sim.cross(sim.draw(rng, B))
        for i in range(B):
            try:
                out[done + i] = _refit_response(fit, Zty[:, i], Xty[:, i], yty[i])
            except Exception as exc:  # a failed refit is a missing replicate
                failures.append(f"{type(exc).__name__}: {exc}")
            bar.update(done + i + 1)
        done += B
    if failures:
        warnings.warn(f"{len(failures)} of {nsim} bootstrap refits failed (first: "
                      f"{failures[0]})", stacklevel=2)
    return out


def _norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Quantiles of bootstrap replicates interpolated on the normal scale.

    The ``(R + 1) alpha``-th order statistic, interpolated between its neighbours
    linearly in ``qnorm(k / (R + 1))`` (the percentile method of Davison & Hinkley).
    """
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    out = np.full(alpha.size, np.nan)
    if R == 0:
        return out
    for i, a in enumerate(alpha):
        rk = (R + 1) * a
        k = int(np.floor(rk))
        if k <= 0:
            out[i] = t[0]
        elif k >= R:
            out[i] = t[-1]
        elif rk == k:
            out[i] = t[k - 1]
        else:
            z = stats.norm.ppf([a, k / (R + 1), (k + 1) / (R + 1)])
            out[i] = t[k - 1] + (z[0] - z[1]) / (z[2] - z[1]) * (t[k] - t[k - 1])
    return out


def _boot_interval(t: np.ndarray, t0: float, level: float, boot_type: str) -> np.ndarray:
    a = (1.0 - level) / 2.0
    if boot_type == "perc":
        return _norm_inter(t, np.array([a, 1.0 - a]))
    if boot_type == "basic":
        q = _norm_inter(t, np.array([1.0 - a, a]))
        return 2.0 * t0 - q
    if boot_type == "norm":
        tt = t[np.isfinite(t)]
        if tt.size < 2:
            return np.array([np.nan, np.nan])
        bias = float(np.mean(tt)) - t0
        merr = float(np.std(tt, ddof=1)) * float(stats.norm.ppf(1.0 - a))
        return np.array([t0 - bias - merr, t0 - bias + merr])
    raise ValueError("boot_type must be 'perc', 'basic' or 'norm'")


# --------------------------------------------------------------------------------------
# confint
# --------------------------------------------------------------------------------------


def confint(fit: LmerFit, parm: Any = None, level: float = 0.95, method: str = "profile",
            nsim: int = 500, seed: Any = None, progress: bool = True,
            boot_type: str = "perc") -> pd.DataFrame:
    """Confidence intervals for the parameters of a fit, as lme4's ``confint.merMod``.

    Parameters
    ----------
    fit
        The fitted model.
    parm
        Parameter names (``".sig01"``..., ``".sigma"``, fixed-effect names), positions,
        ``"theta_"`` (all variance parameters) or ``"beta_"`` (all fixed effects); all by
        default.
    level
        Confidence level.
    method
        ``"profile"`` (likelihood profile of the ML deviance, lme4's default),
        ``"Wald"`` (fixed effects only) or ``"boot"`` (parametric bootstrap).
    nsim
        Bootstrap replicates.
    seed
        Seed of the bootstrap (an int or a :class:`numpy.random.Generator`).
    progress
        Show a progress bar on stderr while bootstrapping.
    boot_type
        Bootstrap interval: ``"perc"`` (percentile), ``"basic"`` or ``"norm"``.

    Returns
    -------
    pandas.DataFrame
        One row per parameter, columns ``"2.5 %"`` and ``"97.5 %"`` (for
        ``level=0.95``). Variance parameters have missing Wald intervals. A profile
        interval that reaches a bound of the parameter (0 for an SD, -1/1 for a
        correlation) before the profile crosses the cutoff ends at that bound, as in
        lme4. Profile tables carry the evaluated ``(value, zeta)`` points of each
        parameter in ``attrs["profile_points"]``, bootstrap tables the replicates (a
        DataFrame, one column per parameter) in ``attrs["replicates"]``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError("level must be between 0 and 1")
    names = parameter_names(fit)
    nvp = fit.structure.ntheta + 1
    sel = _select(parm, names, nvp)
    a = (1.0 - level) / 2.0
    cols = _perc_labels([a, 1.0 - a])
    m = method.lower()
    values = np.full((len(sel), 2), np.nan)
    attrs: dict[str, Any] = {}
    if m == "wald":
        z = stats.norm.ppf([a, 1.0 - a])
        beta = fit.fixef.to_numpy()
        se = np.sqrt(np.diag(fit.vcov().to_numpy()))
        for r, i in enumerate(sel):
            if i >= nvp:
                j = i - nvp
                values[r] = beta[j] + se[j] * z
    elif m == "profile":
        prof = Profiler(fit)
        for r, i in enumerate(sel):
            values[r] = prof.interval(names[i], level)
        attrs["profile_points"] = {names[i]: sorted(prof.points[names[i]]) for i in sel}
    elif m == "boot":
        reps = bootstrap(fit, nsim=nsim, seed=seed, progress=progress)
        est = np.concatenate([sdcor(fit.structure, fit.theta, fit.sigma), [fit.sigma],
                              fit.fixef.to_numpy()])
        for r, i in enumerate(sel):
            values[r] = _boot_interval(reps[:, i], float(est[i]), level, boot_type)
        attrs["replicates"] = pd.DataFrame(reps, columns=names)
    else:
        raise ValueError("method must be 'profile', 'Wald' or 'boot'")
    out = pd.DataFrame(values, index=pd.Index([names[i] for i in sel]), columns=cols)
    out.attrs.update(attrs)
    return out
