"""R^2 and the intraclass correlation of a linear mixed model, as R's ``performance``.

Nakagawa, Johnson and Schielzeth (2017, *J. R. Soc. Interface* 14: 20170213) split the
variance of the response into

* ``var_fixed``: the variance of the fixed part of the linear predictor, ``var(X beta)``
  over the fitted rows (denominator ``n - 1``, as R's ``var``);
* ``var_random``: the variance the random effects add, for each random-effects term
  ``t`` with covariance matrix ``Sigma_t`` the mean over rows of ``z_ti' Sigma_t z_ti``
  (``z_ti`` the row's values of the term's columns: 1 for an intercept, the covariate
  for a slope), summed over the terms. With a random intercept only this is the
  intercept variance; with random slopes it depends on where the covariates lie;
* ``var_residual``: ``sigma^2``.

Marginal ``R^2 = var_fixed / total``, conditional ``R^2 = (var_fixed + var_random) /
total``; the adjusted ICC is ``var_random / (var_random + var_residual)``, the unadjusted
``var_random / total``. These are ``performance::r2_nakagawa`` and ``performance::icc``
(performance 0.10, insight 0.19), with their rules:

* a singular fit (a diagonal element of theta below ``tolerance``, default 1e-5) has no
  random-effect variance: the conditional R^2 and the ICCs are NaN, and the marginal R^2
  is ``var_fixed / (var_fixed + var_residual)`` (with a warning, as performance gives);
* a term whose grouping factor has one level per row is left out (it cannot be told
  from the residual);
* prior weights and offsets are ignored, as there.

One difference, on purpose: insight takes ``z_ti`` from the columns of the fixed-effects
matrix with the random-effect column's name and, for several terms on one grouping factor
(``(x || g)``, ``(1 | g) + (0 + x | g)``), only the first term. mixeff uses each term's
own columns and every term: the same numbers whenever each random-effect column is also
a fixed-effect column and each grouping factor has one term; otherwise insight leaves out
a part of the random-effect variance (for ``Reaction ~ Days + (Days || Subject)`` the
whole slope variance) and mixeff does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = ["VarianceParts", "variance_parts", "r2_nakagawa", "icc"]


@dataclass(frozen=True)
class VarianceParts:
    """The variance decomposition behind R^2 and the ICC (insight's ``get_variance``).

    Attributes
    ----------
    var_fixed
        Variance of the fixed part of the linear predictor.
    var_random
        Variance of the random effects (NaN for a singular fit).
    var_residual
        Residual variance ``sigma^2``.
    by_term
        ``var_random`` per random-effects term (lme4's term label, e.g.
        ``"Subject"``, ``"Subject.1"`` for a second term on ``Subject``).
    singular
        True when the fit was judged singular (see :func:`variance_parts`).
    """

    var_fixed: float
    var_random: float
    var_residual: float
    by_term: dict[str, float]
    singular: bool


def _singular(fit: LmerFit, tolerance: float) -> bool:
    """insight's rule: a theta element with lower bound 0 below ``tolerance``."""
    lower = np.asarray(fit.structure.lower_bounds(), dtype=float)
    diag = lower == 0.0
    return bool(np.any(np.abs(fit.theta[diag]) < tolerance))


def variance_parts(fit: LmerFit, tolerance: float = 1e-5) -> VarianceParts:
    """The variance components of Nakagawa et al.'s R^2 for a linear mixed model.

    Parameters
    ----------
    fit
        A fitted :class:`~mixeff.LmerFit`.
    tolerance
        A theta element on the boundary (lower bound 0) below this makes the fit
        singular, as insight's ``tolerance``: ``var_random`` is then NaN.

    Returns
    -------
    VarianceParts
    """
    if getattr(fit, "_dask_info", None) is not None:   # the rows stay in the partitions
        fit._dask_info.unavailable("r2() and icc()")
    d = fit.design
    n = fit.nobs
    beta = fit._sol.beta
    cols = [j for j, nm in enumerate(d.xnames) if nm != "(Intercept)"]
    # the intercept's column adds a constant only: left out, so that an intercept-only
    # fixed part has exactly no variance (not rounding's 1e-30)
    eta = d.X[:, cols] @ beta[cols] if cols else np.zeros(n)
    var_fixed = float(np.var(eta, ddof=1)) if n > 1 else float("nan")
    singular = _singular(fit, tolerance)
    covs = fit.structure.covariances(fit.theta, fit.sigma)
    by_term: dict[str, float] = {}
    seen: dict[str, int] = {}
    for ti, (t, S) in enumerate(zip(fit.structure.terms, covs, strict=True)):
        nseen = seen.get(t.label, 0)
        seen[t.label] = nseen + 1
        name = t.label if nseen == 0 else f"{t.label}.{nseen}"
        if t.nlevels == n:   # an observation-level term: not a random-effect variance
            continue
        Z = np.asarray(d.terms[fit.term_order[ti]].matrix, dtype=float).reshape(n, t.k)
        # mean over rows of z_i' S z_i = tr(S Z'Z) / n
        by_term[name] = float(np.sum((Z @ S) * Z) / n)
    var_random = float("nan") if singular else float(sum(by_term.values()))
    return VarianceParts(var_fixed=var_fixed, var_random=var_random,
                         var_residual=float(fit.sigma**2), by_term=by_term,
                         singular=singular)


def _warn_singular(what: str) -> None:
    from ._warnings import warn_user

    warn_user(f"{what}: the fit is singular (a variance estimated as zero), so the "
              "random-effect variance is not computed (as performance); pass a smaller "
              "tolerance= to compute it anyway", UserWarning)


def r2_nakagawa(fit: LmerFit, tolerance: float = 1e-5) -> pd.Series:
    """Marginal and conditional R^2 (``performance::r2_nakagawa``); see the module."""
    v = variance_parts(fit, tolerance)
    if v.singular:
        _warn_singular("r2()")
        marginal = v.var_fixed / (v.var_fixed + v.var_residual)
        conditional = float("nan")
    else:
        total = v.var_fixed + v.var_random + v.var_residual
        marginal = v.var_fixed / total
        conditional = (v.var_fixed + v.var_random) / total
    out = pd.Series([conditional, marginal], index=["conditional", "marginal"], name="R2")
    out.attrs["variance"] = v
    return out


def icc(fit: LmerFit, tolerance: float = 1e-5) -> pd.Series:
    """Adjusted and unadjusted ICC (``performance::icc``); see the module."""
    v = variance_parts(fit, tolerance)
    if v.singular:
        _warn_singular("icc()")
        adjusted = unadjusted = float("nan")
    else:
        adjusted = v.var_random / (v.var_random + v.var_residual)
        unadjusted = v.var_random / (v.var_fixed + v.var_random + v.var_residual)
    out = pd.Series([adjusted, unadjusted], index=["adjusted", "unadjusted"], name="ICC")
    out.attrs["variance"] = v
    return out
