"""Hard optimisation problems: maximal random-effects structures and boundary optima.

Two kinds of evidence that the optimiser reaches the optimum:

* a grid of random maximal models (crossed and nested, 2 to 5 random slopes, REML and
  ML, no / constant / varying prior weights), each fitted by mixeff and by a slow, careful
  reference on the same objective (Powell's derivative-free method from lme4's start and
  from random starts, polished once more): mixeff's optimum must be at or below the best
  of them (never more than 1e-6 above). Its first case caught a fit 0.019 above the
  optimum (a rank-2 covariance with the wrong null direction), now found by the
  optimiser's restart from the interior;
* stored lme4 1.1-31 fits (``tests/references/make_maximal_references.R``) of maximal
  crossed models and of sleepstudy with constant prior weights (lme4's
  ``tests/priorWeights.R``: a constant weight leaves the ML deviance at 1751.9393).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize as so
from refdata import REPO, load_csv, load_reference

import mixeff
from mixeff._optimizer import interior_point

# --------------------------------------------------------------------------------------
# a careful reference on the same objective
# --------------------------------------------------------------------------------------


def _careful_minimum(fit, n_random: int = 2, seed: int = 0) -> float:
    """Best optimum of a derivative-free search from lme4's start and random starts.

    Powell's method (bounded) from each start, then once more from the best point found;
    it uses the objective's values only, none of the fit's machinery (gradient, starts,
    restarts) under test.
    """
    obj, re = fit._obj, fit.structure
    lower = re.lower_bounds()
    bounds = [(0.0, None) if np.isfinite(lo) else (None, None) for lo in lower]
    rng = np.random.default_rng(seed)
    starts = [re.start_theta()]
    for _ in range(n_random):
        t = rng.normal(0.0, 0.5, re.ntheta)
        starts.append(np.where(re.is_diagonal_theta, np.abs(t) + 0.05, t))
    opts = {"maxfev": 20_000, "xtol": 1e-10, "ftol": 1e-13}
    best = min((so.minimize(obj, x0, method="Powell", bounds=bounds, options=opts)
                for x0 in starts), key=lambda r: r.fun)
    again = so.minimize(obj, best.x, method="Powell", bounds=bounds, options=opts)
    return float(min(best.fun, again.fun))


# --------------------------------------------------------------------------------------
# random maximal models
# --------------------------------------------------------------------------------------


def _covariance(rng: np.random.Generator, k: int) -> np.ndarray:
    """A random k x k covariance: SDs halving down the slopes, one slope variance 0."""
    sds = 0.8 * 0.6 ** np.arange(k)
    sds[rng.integers(1, k)] = 0.0
    A = rng.normal(size=(k, k))
    C = A @ A.T + k * np.eye(k)
    d = np.sqrt(np.diag(C))
    return C / np.outer(d, d) * np.outer(sds, sds)


def _draw(rng, m: int, cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return rng.normal(size=(m, cov.shape[0])) @ (v * np.sqrt(np.maximum(w, 0.0))).T


def _maximal(kind: str, slopes: int, seed: int) -> tuple[str, pd.DataFrame]:
    """A small data set and its maximal formula.

    ``crossed``: 14 subjects x 10 items, 85% of the pairs, slopes of two-level predictors
    varying within subjects and items; ``nested``: 8 groups of 4 subgroups of 6 rows,
    continuous predictors, ``(1 + x... | g/h)``; ``single``: 25 groups of 12 rows,
    ``(1 + x... | g)``.
    """
    rng = np.random.default_rng(seed)
    xs = [f"x{j}" for j in range(slopes)]
    k = slopes + 1
    if kind == "crossed":
        s, i = np.divmod(np.arange(14 * 10), 10)
        keep = rng.random(s.size) < 0.85
        s, i = s[keep], i[keep]
        X = np.column_stack([(((s + i) >> j) & 1) - 0.5 for j in range(slopes)])
        Z = np.column_stack([np.ones(s.size), X])
        y = Z @ np.r_[1.0, 0.3 * np.ones(slopes)]
        y += np.sum(Z * _draw(rng, 14, _covariance(rng, k))[s], axis=1)
        y += np.sum(Z * _draw(rng, 10, _covariance(rng, k))[i], axis=1)
        groups = {"subj": s.astype(str), "item": i.astype(str)}
        re = f"(1 + {' + '.join(xs)} | subj) + (1 + {' + '.join(xs)} | item)"
    elif kind == "nested":
        g = np.repeat(np.arange(8), 24)
        h = np.repeat(np.arange(32), 6)
        X = rng.normal(size=(g.size, slopes))
        Z = np.column_stack([np.ones(g.size), X])
        y = Z @ np.r_[1.0, 0.3 * np.ones(slopes)]
        y += np.sum(Z * _draw(rng, 8, _covariance(rng, k))[g], axis=1)
        y += np.sum(Z * _draw(rng, 32, _covariance(rng, k))[h], axis=1)
        groups = {"g": g.astype(str), "h": (h % 4).astype(str)}
        re = f"(1 + {' + '.join(xs)} | g/h)"
    else:
        g = np.repeat(np.arange(25), 12)
        X = rng.normal(size=(g.size, slopes))
        Z = np.column_stack([np.ones(g.size), X])
        y = Z @ np.r_[1.0, 0.3 * np.ones(slopes)]
        y += np.sum(Z * _draw(rng, 25, _covariance(rng, k))[g], axis=1)
        groups = {"g": g.astype(str)}
        re = f"(1 + {' + '.join(xs)} | g)"
    y = y + 0.5 * rng.normal(size=y.size)
    d = pd.DataFrame({"y": y, **{x: X[:, j] for j, x in enumerate(xs)}, **groups})
    return f"y ~ 1 + {' + '.join(xs)} + {re}", d


_GRID = [(kind, slopes, reml, wkind)
         for kind, slopes in [("crossed", 2), ("crossed", 3), ("nested", 2), ("single", 5)]
         for reml in (True, False)
         for wkind in ("none", "constant", "varying")]


@pytest.mark.parametrize(("kind", "slopes", "reml", "wkind"), _GRID)
def test_maximal_models_reach_a_careful_optimum(kind, slopes, reml, wkind):
    seed = 100 * slopes + 10 * _GRID.index((kind, slopes, reml, wkind))
    formula, d = _maximal(kind, slopes, seed)
    w = None
    if wkind == "constant":
        w = np.full(len(d), 7.0)
    elif wkind == "varying":
        w = np.random.default_rng(seed).uniform(0.3, 4.0, len(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mixeff.lmer(formula, d, reml=reml, weights=w)
    ref = _careful_minimum(fit)
    assert fit.objective <= ref + 1e-6, (fit.objective, ref, fit.theta)


def test_constant_weights_give_the_unweighted_optimum():
    """A constant prior weight w leaves the ML deviance and the REML criterion as they
    are (lme4's tests/priorWeights.R: 1751.9393 for sleepstudy) and scales theta by
    1/sqrt(w)."""
    d = load_csv("sleepstudy.csv", ["Subject"])
    for reml in (False, True):
        base = mixeff.lmer("Reaction ~ Days + (Days | Subject)", d, reml=reml)
        for w in (2.5, 5.0, 10.0, 100.0):
            fit = mixeff.lmer("Reaction ~ Days + (Days | Subject)", d, reml=reml,
                              weights=np.full(len(d), w))
            assert fit.objective == pytest.approx(base.objective, abs=1e-6)
            np.testing.assert_allclose(fit.theta * np.sqrt(w), base.theta, rtol=1e-5,
                                       atol=1e-7)
            assert fit.converged and not fit.is_singular


def test_interior_point_leaves_the_cholesky_corner():
    """theta = (0, t, 0) for (1 + x | g): T T' + eps I has a full Cholesky factor."""
    d = load_csv("sleepstudy.csv", ["Subject"])
    re = mixeff.lmer("Reaction ~ Days + (Days | Subject)", d).structure
    x = np.array([0.0, -0.1, 0.0])
    xp = interior_point(re, x, re.lower_bounds())
    T = re.templates(xp)[0]
    S = re.templates(x)[0] @ re.templates(x)[0].T
    np.testing.assert_allclose(T @ T.T, S + 1e-4 * np.eye(2), rtol=1e-12, atol=1e-15)
    assert np.all(np.diag(T) > 0)
    assert interior_point(re, np.array([0.5, 0.1, 0.2]), re.lower_bounds()) is None


def test_crossed_fit_scaled_by_four_is_not_stopped_at_the_singular_point():
    """Issue: y scaled by 4 in a crossed fit stopped at a singular point 2e-6 above a
    non-singular optimum (the criterion is even in a diagonal theta at 0, so the
    gradient there is exactly zero). The optimum does not depend on the scale of y."""
    rng = np.random.default_rng(7)
    n, na, nb = 400, 30, 12
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    # a small item variance: the optimum sits just off the boundary
    y = 1 + 0.6 * rng.normal(size=na)[a] + 0.04 * rng.normal(size=nb)[b] + rng.normal(size=n)
    d = pd.DataFrame({"y": y, "a": a.astype(str), "b": b.astype(str)})
    fits = [mixeff.lmer("y ~ 1 + (1 | a) + (1 | b)", d.assign(y=c * d["y"]))
            for c in (1.0, 4.0, 0.25, 1e3)]
    n_p = len(d) - 1
    for c, f in zip((1.0, 4.0, 0.25, 1e3), fits, strict=True):
        np.testing.assert_allclose(f.theta, fits[0].theta, rtol=1e-6, atol=1e-8)
        assert f.objective - 2 * n_p * np.log(c) == pytest.approx(fits[0].objective,
                                                                  abs=1e-8)
        assert f.objective <= _careful_minimum(f, n_random=1) + 1e-6


# --------------------------------------------------------------------------------------
# stored lme4 fits
# --------------------------------------------------------------------------------------

_MAXIMAL = {k: v for k, v in load_reference("maximal").items() if k != "versions"} \
    if (REPO / "tests/references/lme4/maximal.json").exists() else {}


@pytest.mark.parametrize("name", sorted(_MAXIMAL))
def test_maximal_models_at_or_below_lme4(name):
    ref = _MAXIMAL[name]
    if ref["data"] == "sleepstudy":
        d = load_csv("sleepstudy.csv", ["Subject"])
    else:
        d = pd.read_csv(REPO / "tests" / "data" / "maximal" / f"{ref['data']}.csv")
        d["subj"] = d["subj"].astype(str)
        d["item"] = d["item"].astype(str)
    w = ref.get("weights")
    weights = None if w is None else (np.full(len(d), float(w)) if not isinstance(w, str)
                                      else w)
    fit = mixeff.lmer(ref["formula"], d, reml=ref["reml"], weights=weights)
    assert fit.objective <= ref["objective"] + 1e-6
    assert fit.converged, fit.messages
    if not ref["singular"]:
        # an interior optimum: the same estimates
        np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()),
                                   rtol=1e-4, atol=1e-6)
