"""Minimising the profiled deviance over theta, and the record of how it went.

The record (:class:`OptSummary`) is kept on every fit: start values, bounds, the method,
the number of objective and gradient evaluations, the final objective, the optimiser's
return code and message, and the outcome of lme4-style convergence checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize as so

__all__ = ["OptSummary", "at_bound", "interior_point", "minimize_theta", "moment_start",
           "scaled_start", "theta_scale"]


@dataclass
class OptSummary:
    """What the optimiser was given and what it returned.

    Attributes
    ----------
    method
        Name of the optimiser (``"L-BFGS-B"``...).
    theta0, lower
        Start values and lower bounds of theta.
    theta, fmin
        Final theta and objective value.
    n_evaluations, n_gradients
        Objective and gradient evaluations used.
    code, message, success
        The optimiser's return code, message and its own success flag.
    elapsed
        Wall-clock seconds spent in the optimiser.
    messages
        Convergence-check warnings (empty when all checks pass).
    derivs
        :class:`~mixeff._derivs.ThetaDerivatives` at the optimum when the checks
        computed them, else None (Satterthwaite computes them when asked).
    scale
        The factors theta was optimised on (:func:`theta_scale`: covariates on a large
        or small scale), or None.
    """

    method: str
    theta0: np.ndarray
    lower: np.ndarray
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fmin: float = float("nan")
    n_evaluations: int = 0
    n_gradients: int = 0
    code: int = 0
    message: str = ""
    success: bool = False
    elapsed: float = 0.0
    messages: list[str] = field(default_factory=list)
    derivs: object = None
    scale: np.ndarray | None = None

    def __str__(self) -> str:
        lines = [
            f"optimizer {self.method}: {self.message} (code {self.code})",
            f"  evaluations {self.n_evaluations} (gradients {self.n_gradients}),"
            f" objective {self.fmin:.10g}, {self.elapsed:.3g} s",
        ]
        lines += [f"  warning: {m}" for m in self.messages]
        return "\n".join(lines)


class _Progress:
    """Report evaluations, objective and elapsed time on stderr during a long fit.

    Silent for the first ``after`` seconds (fits shorter than that print nothing), then
    one line at most every ``every`` seconds.
    """

    def __init__(self, objective, after: float = 2.0, every: float = 1.0, stream=None):
        import sys

        self.obj = objective
        self.after, self.every = after, every
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.last = self.t0 + after - every
        self.best = np.inf
        self.printed = False

    def __call__(self, theta: np.ndarray) -> float:
        f = self.obj(theta)
        self.best = min(self.best, f)
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.printed = True
            print(f"mixeff: {self.obj.n_evaluations:5d} evaluations, objective"
                  f" {self.best:.6f}, {now - self.t0:6.1f} s", file=self.stream, flush=True)
        return f

    def close(self, rec: OptSummary) -> None:
        if self.printed:
            print(f"mixeff: done, {rec.n_evaluations} evaluations, objective {rec.fmin:.6f},"
                  f" {rec.elapsed:.1f} s", file=self.stream, flush=True)


def _sum_of_weights(blocks) -> float:
    """The sum of the prior weights as the blocks hold it.

    A term with an intercept column gets each row's weight on exactly one level's
    diagonal entry of ``Z'WZ``, so that column's diagonal sums to ``sum(w)``; without
    such a term, ``n`` (exact without weights).
    """
    re = blocks.re
    diag = np.asarray(blocks.A_full.diagonal(), dtype=float)
    for term in re.terms:
        if "(Intercept)" in term.colnames:
            c = term.colnames.index("(Intercept)")
            d = diag[term.offset : term.offset + term.size].reshape(term.nlevels, term.k)
            return float(np.sum(d[:, c]))
    return float(blocks.n)


def theta_scale(blocks, sum_w: float | None = None, min_log2: int = 4) -> np.ndarray | None:
    """Scale factors of theta for random-effect covariates on a large or small scale.

    The theta entries of row ``r`` of a term's template scale as ``1 / x_r`` when the
    term's column ``r`` is multiplied by ``x_r`` (a random slope of ``Days * 100`` has
    a theta 100 times smaller), so lme4's start of 1 is far from the optimum and the
    deviance very differently curved along the entries. For each theta entry this is
    ``s_r``, the weighted root mean square of column ``r`` of its term's model matrix
    (from the diagonal of ``Z'WZ`` summed over the term's levels, divided by the sum of
    the prior weights ``sum_w``; when not given, as :func:`_sum_of_weights` reads it from
    the blocks), rounded to a power of two (so that scaling is exact in floating point).
    An intercept column has ``s = 1``, whatever the weights.

    Returns None when every ``|log2 s_r|`` is below ``min_log2`` (columns with a root mean
    square between about 1/11 and 11: ordinary fits are not scaled); otherwise the
    factors, with 1 for the entries below the threshold.
    """
    re = blocks.re
    if blocks.n <= 0 or re.ntheta == 0:
        return None
    sw = _sum_of_weights(blocks) if sum_w is None else float(sum_w)
    if not (np.isfinite(sw) and sw > 0.0):
        return None
    diag = np.asarray(blocks.A_full.diagonal(), dtype=float)
    log2s = np.zeros(re.ntheta)
    for i, (t, r) in enumerate(zip(re.theta_term, re.theta_row, strict=True)):
        term = re.terms[t]
        d = diag[term.offset : term.offset + term.size].reshape(term.nlevels, term.k)
        ms = float(np.sum(d[:, r])) / sw
        if ms > 0.0 and np.isfinite(ms):
            log2s[i] = np.round(0.5 * np.log2(ms))
    log2s[np.abs(log2s) < min_log2] = 0.0
    if not np.any(log2s):
        return None
    return np.ldexp(1.0, log2s.astype(int))


def scaled_start(blocks, sum_w: float | None = None, method: str | None = None) -> dict:
    """The arguments ``theta0``, ``lower``, ``scale`` (and ``initial_radius``) of
    :func:`minimize_theta` for a fit.

    With badly scaled covariates, lme4's start (1 on the templates' diagonals, 0
    elsewhere) taken on the covariates' scale: with the factors ``s`` of
    :func:`theta_scale` (``sum_w``: the sum of the prior weights, read from the blocks
    when not given) the optimiser starts at ``phi = s * theta = 1``, i.e.
    ``theta = 1 / s``. Otherwise, for ``method="COBYQA"``, the scalar terms start from
    :func:`moment_start` (the others at lme4's 1) and COBYQA's first radius is a tenth of
    the largest such start: on the large crossed designs it is given to, this saves a
    third to a half of the evaluations (InstEval 70 -> 43). L-BFGS-B starts at lme4's
    ``theta = 1``: from the moment start it took more steps on the small reference
    models (Penicillin 14 -> 31, Pastes 12 -> 35).
    """
    re = blocks.re
    scale = theta_scale(blocks, sum_w)
    if scale is not None:
        return {"theta0": re.start_theta() / scale, "lower": re.lower_bounds(),
                "scale": scale}
    if method != "COBYQA":
        return {"theta0": re.start_theta(), "lower": re.lower_bounds(), "scale": None}
    theta0, moved = moment_start(blocks)
    # a start from the data is closer than lme4's 1: COBYQA's first steps shrink with it
    radius = float(np.clip(0.1 * np.max(theta0[moved]), 0.02, 1.0)) if moved.any() else 1.0
    return {"theta0": theta0, "lower": re.lower_bounds(), "scale": None,
            "initial_radius": radius}


def moment_start(blocks) -> tuple[np.ndarray, np.ndarray]:
    """Start values of theta from the data, for the scalar terms; lme4's 1 for the others.

    For a scalar term ``(x | g)`` (``x`` = 1 for a random intercept) the per-level
    least-squares coefficients of the linear model's residuals on ``x``,
    ``b_g = sum(w x r) / sum(w x^2)``, have variance ``tau^2 + sigma^2 / sum(w x^2)``;
    ``tau^2 / sigma^2`` estimated from their spread (method of moments, at least 0.01;
    ``sigma^2`` the smallest variance within the levels of a scalar term) gives
    ``theta = tau / sigma``. Every piece is in the blocks: the per-level sums are
    the entries of ``Z'W r = Z'Wy - Z'WX beta_ols`` and the diagonal of ``Z'WZ``.
    Returns the start and a mask of the entries set this way.
    """
    re = blocks.re
    theta0 = re.start_theta().astype(float)
    moved = np.zeros(re.ntheta, dtype=bool)
    n, p = blocks.n, blocks.p
    if n - p <= 0 or not any(t.k == 1 for t in re.terms):
        return theta0, moved
    sh = blocks.shift
    Zty, Xty, yty = (sh.Zty, sh.Xty, sh.yty) if sh is not None else \
        (blocks.Zty, blocks.Xty, blocks.yty)
    try:
        beta = np.linalg.solve(blocks.XtX, Xty) if p else np.zeros(0)
    except np.linalg.LinAlgError:
        return theta0, moved
    zr = Zty - blocks.ZtX @ beta if p else np.asarray(Zty, dtype=float)
    s2 = (yty - float(Xty @ beta)) / (n - p)
    if not (np.isfinite(s2) and s2 > 0.0):
        return theta0, moved
    diag = np.asarray(blocks.A_full.diagonal(), dtype=float)
    scalar = [t for t, term in enumerate(re.terms) if term.k == 1 and term.nlevels >= 2
              and np.all(diag[term.offset : term.offset + term.nlevels] > 0.0)]
    # sigma^2: the smallest residual variance within the levels of a scalar term (the
    # linear model's residual variance holds every variance component)
    for t in scalar:
        term = re.terms[t]
        sl = slice(term.offset, term.offset + term.nlevels)
        dfw = n - p - term.nlevels
        if dfw > 0:
            within = (s2 * (n - p) - float(np.sum(zr[sl] ** 2 / diag[sl]))) / dfw
            if np.isfinite(within) and 0.0 < within < s2:
                s2 = within
    for t in scalar:
        term = re.terms[t]
        cnt = diag[term.offset : term.offset + term.nlevels]
        b = zr[term.offset : term.offset + term.nlevels] / cnt
        tau2 = float(np.var(b, ddof=1)) - s2 * float(np.mean(1.0 / cnt))
        val = np.sqrt(max(tau2 / s2, 0.01))
        if np.isfinite(val):
            theta0[re.theta_term == t] = val
            moved[re.theta_term == t] = True
    return theta0, moved


class _Scaled:
    """``objective`` as a function of ``phi = scale * theta`` (value, gradient, counters)."""

    def __init__(self, objective, scale: np.ndarray):
        self.obj, self.scale = objective, scale

    @property
    def n_evaluations(self) -> int:
        return self.obj.n_evaluations

    @property
    def n_gradients(self) -> int:
        return self.obj.n_gradients

    def __call__(self, phi: np.ndarray) -> float:
        return self.obj(np.asarray(phi, float) / self.scale)

    def gradient(self, phi: np.ndarray) -> np.ndarray:
        return self.obj.gradient(np.asarray(phi, float) / self.scale) / self.scale


def _run(method, fun, objective, theta0, bounds, maxiter, radius=1.0):
    if method == "L-BFGS-B":
        return so.minimize(
            fun, theta0, jac=objective.gradient, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-8, "maxcor": 20},
        )
    if method == "COBYQA":
        return so.minimize(
            fun, theta0, method="COBYQA", bounds=bounds,
            options={"maxfev": maxiter, "initial_tr_radius": radius, "final_tr_radius": 1e-6},
        )
    raise ValueError(f"unknown optimizer {method!r}; use 'L-BFGS-B' or 'COBYQA'")


def at_bound(x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Mask of the entries of ``x`` within 1e-6 of a finite lower bound (on the bound)."""
    return np.isfinite(lower) & (x - lower < 1e-6)


def interior_point(re, x: np.ndarray, lower: np.ndarray, rel: float = 0.01,
                   floor: float = 1e-4) -> np.ndarray | None:
    """A point inside the bounds near ``x``, for a restart from the boundary.

    For every term whose template has a diagonal entry on its bound, the template's
    ``T T'`` is replaced by ``T T' + eps I`` (``eps`` = ``rel`` times its largest diagonal
    entry, at least ``floor``) and the template by that matrix's Cholesky factor. This
    keeps the covariance the optimiser reached, up to ``eps``, but leaves the
    degenerate corner of the Cholesky parametrisation: where a column of a template is
    zero (e.g. ``theta = (0, t, 0)`` for ``(1 + x | g)``: an intercept variance of 0)
    the deviance is stationary in the Cholesky factor's entries even when the covariance
    can still move downhill, so a gradient method, or a coordinate probe, stops there.
    Returns None when no diagonal entry is on its bound. ``x`` may be in scaled
    coordinates (``scale * theta``, see :func:`theta_scale`): the map works on any
    lower-triangular templates.
    """
    at = at_bound(x, lower)
    if not np.any(at):
        return None
    tmpl = re.templates(x)
    for t in np.unique(re.theta_term[at]):
        k = re.terms[t].k
        T = tmpl[t, :k, :k]
        S = T @ T.T
        eps = max(rel * float(np.max(np.diag(S))), floor)
        tmpl[t, :k, :k] = np.linalg.cholesky(S + eps * np.eye(k))
    return tmpl[re.theta_term, re.theta_row, re.theta_col]


def _probe_boundary(objective, theta: np.ndarray, lower: np.ndarray,
                    fmin: float) -> np.ndarray | None:
    """A point better than ``theta`` next to its entries sitting on a lower bound, or None."""
    at = np.flatnonzero(at_bound(theta, lower))
    best, fbest = None, fmin - 1e-10 * max(1.0, abs(fmin))
    for i in at:
        for step in (1e-3, 0.1, 1.0):
            x = theta.copy()
            x[i] = lower[i] + step
            f = objective(x)
            if f < fbest:
                best, fbest = x, f
    return best


def minimize_theta(objective, theta0: np.ndarray, lower: np.ndarray,
                   method: str = "L-BFGS-B", maxiter: int = 10000,
                   verbose: bool = False, scale: np.ndarray | None = None,
                   initial_radius: float = 1.0) -> OptSummary:
    """Minimise ``objective`` (an :class:`~mixeff._objective.LmmObjective`) over theta.

    Parameters
    ----------
    objective
        Callable with ``__call__(theta)`` and ``gradient(theta)`` and evaluation counters.
    theta0, lower
        Start values and lower bounds (``-inf`` for free entries).
    method
        ``"L-BFGS-B"`` (quasi-Newton with the analytic gradient, for many theta or cheap
        gradients) or ``"COBYQA"`` (derivative-free trust region with quadratic models,
        the successor of the BOBYQA that lme4 uses, for few theta).
    maxiter
        Iteration limit.
    verbose
        Report progress on stderr when the optimisation runs longer than two seconds.
    scale
        Positive factors, one per theta entry (see :func:`theta_scale`), or None. The
        optimiser then works on ``phi = scale * theta``: it starts at ``scale * theta0``,
        its bounds are ``scale * lower`` and its gradient ``gradient(theta) / scale``.
        The record holds theta (the final theta mapped back, ``fmin`` evaluated there),
        ``theta0`` and ``lower``, and the convergence checks stay in theta as lme4's.
    initial_radius
        COBYQA's first trust-region radius (1, as lme4's BOBYQA, from lme4's start;
        smaller from a start estimated from the data, see :func:`scaled_start`).

    Returns
    -------
    OptSummary
    """
    rec = OptSummary(method=method, theta0=np.array(theta0, float), lower=np.array(lower, float),
                     scale=None if scale is None else np.asarray(scale, dtype=float))
    lower = np.asarray(lower, dtype=float)
    e0, g0 = objective.n_evaluations, objective.n_gradients
    target = objective
    if scale is not None:   # optimise phi = scale * theta (0 and -inf bounds stay)
        scale = np.asarray(scale, dtype=float)
        target = _Scaled(objective, scale)
        theta0 = rec.theta0 * scale
        lower = lower * scale
    bounds = [(None if not np.isfinite(lo) else lo, None) for lo in lower]
    t0 = time.perf_counter()
    progress = _Progress(target) if verbose else None
    fun = progress if progress is not None else target
    res = _run(method, fun, target, theta0, bounds, maxiter, initial_radius)
    re = getattr(getattr(objective, "blocks", None), "re", None)
    for round_ in range(3):
        # From the boundary: at a diagonal theta entry of 0 the gradient vanishes by
        # symmetry (the deviance is even in it), and where a template's column is zero
        # the deviance is stationary in the Cholesky entries, so an optimiser can stop
        # there while the deviance still decreases into the interior (as lme4's
        # restart_edge, but in every direction): probe the bound entries one by one,
        # then restart from an interior point next to the covariances reached, and keep
        # the better optimum.
        x = np.asarray(res.x, float)
        tol = 1e-10 * max(1.0, abs(res.fun))
        start = _probe_boundary(target, x, lower, res.fun)
        if start is None and re is not None:
            start = interior_point(re, x, lower)
            # A vector term on the boundary: its covariance matrix is singular, and the
            # deviance can have other, lower optima of the same rank with another null
            # direction (a random 2-slope crossed model: 256.4886 against 256.4694),
            # which a gradient method finds from an interior point nearby but no local
            # test at the boundary point reveals; the first restart is unconditional.
            # Otherwise (scalar terms at 0, later rounds) a restart is worth it when the
            # interior point is lower, or the deviance falls on the way from the
            # boundary point to it and beyond.
            vector = start is not None and round_ == 0 and any(
                re.terms[t].k > 1 for t in re.theta_term[at_bound(x, lower)])
            if start is not None and not vector and not target(start) < res.fun - tol \
                    and not float(target.gradient(start) @ (start - x)) < 0.0:
                start = None
        if start is None:
            break
        radius = min(initial_radius, 0.1)
        again = _run(method, fun, target, start, bounds, maxiter, radius)
        if not again.fun < res.fun - tol:
            break
        res = again
    rec.elapsed = time.perf_counter() - t0
    rec.theta = np.asarray(res.x, dtype=float)
    if scale is not None:
        rec.theta = rec.theta / scale
        lower = rec.lower
    # Values within rounding of a bound sit on it (as lme4's bounded optimisers return).
    on_bound = np.isfinite(lower) & (rec.theta < lower)
    rec.theta[on_bound] = lower[on_bound]
    rec.fmin = float(objective(rec.theta))
    rec.n_evaluations = objective.n_evaluations - e0
    rec.n_gradients = objective.n_gradients - g0
    rec.code = int(getattr(res, "status", 0))
    rec.message = str(getattr(res, "message", ""))
    rec.success = bool(res.success)
    if method == "L-BFGS-B" and rec.code == 2:
        # L-BFGS-B's line search gives up when no representable decrease is left, which
        # at a tight ftol is how it usually stops at an optimum. Accept it when the
        # projected gradient is negligible; the lme4-style checks judge it further.
        g = objective.gradient(rec.theta)
        if scale is not None:
            g = g / scale   # the optimiser's own measure: the gradient in phi
        pg = np.where(np.isfinite(lower) & (rec.theta <= lower) & (g > 0), 0.0, g)
        rec.n_gradients += 1
        if np.max(np.abs(pg), initial=0.0) < 1e-3:
            rec.success = True
            rec.code = 0
            rec.message = (f"converged: line search found no further decrease"
                           f" (max|projected gradient| = {np.max(np.abs(pg), initial=0.0):.2g})")
    if progress is not None:
        progress.close(rec)
    return rec
