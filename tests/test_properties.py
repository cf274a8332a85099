"""Properties of fits on random small designs (hypothesis).

Random-intercept, random-slope and crossed two-factor models on unbalanced data (groups of
one observation included), with and without prior weights:

* estimates do not depend on the order of the rows or on the labels of the levels;
* under ``y -> a y + b`` beta moves accordingly, sigma scales by ``|a|`` and theta stays;
* at theta = 0 the criterion is the REML criterion (or ML deviance) of the linear model,
  computed here with numpy; a fit whose variance components are estimated as zero
  reproduces it;
* the analytic gradient agrees with finite differences;
* the CHOLMOD and Schur factorisations give the same criterion and gradient.

Each test runs a bounded number of examples (``deadline=None``): the file takes well under
a minute.
"""

from __future__ import annotations

import string
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixeff
from mixeff._objective import LmmObjective

_KINDS = ("intercept", "slope", "crossed")
_FORMULAS = {
    "intercept": "y ~ x + (1 | g)",
    "slope": "y ~ x + (x | g)",
    "crossed": "y ~ x + (1 | g) + (1 | h)",
}
_SETTINGS = settings(max_examples=40, deadline=None)


def _make(kind: str, seed: int, weighted: bool = False) -> tuple[str, pd.DataFrame]:
    """A random unbalanced design of the given kind and its formula.

    Groups of one observation occur; there are always at least 5 more rows than random
    effects (with all of them, a model can interpolate the data: see test_reliability).
    """
    rng = np.random.default_rng(seed)
    m1 = int(rng.integers(3, 13))
    m2 = int(rng.integers(2, 7))
    sizes = rng.integers(2 if kind == "slope" else 1, 7, m1)
    # identifiable: more rows than random effects plus fixed effects, with room to spare
    q = {"intercept": m1, "slope": 2 * m1, "crossed": m1 + m2}[kind]
    while sizes.sum() < q + 5:
        sizes[rng.integers(m1)] += 1
    g = np.repeat(np.arange(m1), sizes)
    n = g.size
    x = rng.normal(size=n)
    sd = rng.choice([0.0, 0.3, 1.0, 3.0], size=3)
    y = 2 + 0.5 * x + sd[0] * rng.normal(size=m1)[g] + rng.normal(size=n)
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    if kind == "slope":
        d["y"] += sd[1] * rng.normal(size=m1)[g] * x
    elif kind == "crossed":
        h = rng.integers(0, m2, n)
        h[:2] = [0, 1]
        d["h"] = h
        d["y"] += sd[2] * rng.normal(size=m2)[h]
    if weighted:
        d["w"] = rng.uniform(0.2, 3.0, n)
    return _FORMULAS[kind], d


def _fit(formula, data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mixeff.lmer(formula, data, **kwargs)


def _relabel(d: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """New random text labels for the levels of g (and h): a different level order."""
    d = d.copy()
    for c in ("g", "h"):
        if c in d:
            levels = np.unique(d[c])
            stems = ["".join(rng.choice(list(string.ascii_letters), 4)) for _ in levels]
            labels = rng.permutation([f"{s}{i}" for i, s in enumerate(stems)])
            d[c] = d[c].map(dict(zip(levels, labels, strict=True)))
    return d


def _same_components(other, base, a: float) -> None:
    """Variance components of ``other`` are those of ``base`` times ``a**2``.

    Near a singular fit the criterion is flat along a small diagonal theta entry: two fits
    can stop 1e-3 apart there with criteria equal to 1e-11, while the covariance matrices
    ``sigma^2 T T'`` (quadratic in theta) agree closely; theta is compared loosely.
    """
    s2 = base.sigma**2 * a * a
    for co, cb in zip(other.structure.covariances(other.theta, other.sigma),
                      base.structure.covariances(base.theta, base.sigma), strict=True):
        np.testing.assert_allclose(co, cb * a * a, rtol=1e-5, atol=1e-6 * s2)
    np.testing.assert_allclose(other.theta, base.theta, rtol=1e-4, atol=3e-3)


designs = st.tuples(st.sampled_from(_KINDS), st.integers(0, 2**32 - 1), st.booleans())


def _weights(d):
    return "w" if "w" in d else None


# --------------------------------------------------------------------------------------
# invariance
# --------------------------------------------------------------------------------------


@_SETTINGS
@given(designs, st.booleans())
def test_invariant_to_row_order_and_level_labels(design, reml):
    kind, seed, weighted = design
    formula, d = _make(kind, seed, weighted)
    a = _fit(formula, d, reml=reml, weights=_weights(d))
    rng = np.random.default_rng(seed ^ 0x5EED)
    p = _relabel(d.iloc[rng.permutation(len(d))], rng)
    b = _fit(formula, p, reml=reml, weights=_weights(p))
    # the same criterion at the same theta (arithmetic only), the same optimum
    assert b._obj(a.theta) == pytest.approx(a.objective, rel=1e-12, abs=1e-9)
    assert b.objective == pytest.approx(a.objective, rel=1e-12, abs=1e-9)
    _same_components(b, a, 1.0)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-6, atol=1e-7)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-6)
    # the conditional modes follow their levels
    ra, rb = a.ranef(condvar=False), b.ranef(condvar=False)
    for c in ("g", "h"):
        if c in d:
            label = {str(k): v for k, v in zip(d[c].loc[p.index], p[c], strict=True)}
            moved = rb[c].loc[[label[v] for v in ra[c].index]].to_numpy()
            np.testing.assert_allclose(moved, ra[c].to_numpy(), atol=1e-4 * a.sigma)


@_SETTINGS
@given(designs, st.floats(0.05, 200), st.booleans(), st.floats(-10, 10))
def test_equivariant_under_affine_response(design, scale, negative, shift):
    kind, seed, weighted = design
    formula, d = _make(kind, seed, weighted)
    a_ = -scale if negative else scale
    b_ = shift * scale  # a shift of the order of the spread (see test_reliability for more)
    base = _fit(formula, d, weights=_weights(d))
    other = _fit(formula, d.assign(y=a_ * d["y"] + b_), weights=_weights(d))
    beta = base.fixef.to_numpy() * a_
    beta[0] += b_
    np.testing.assert_allclose(other.fixef, beta, rtol=1e-6, atol=1e-6 * abs(a_) * base.sigma)
    assert other.sigma == pytest.approx(abs(a_) * base.sigma, rel=1e-6)
    # the criterion moves by a constant, exactly at every theta: same optimum
    n, p = base.nobs, base.blocks.p
    const = 2 * (n - p) * np.log(abs(a_))
    assert other._obj(base.theta) - base.objective == pytest.approx(const, abs=1e-9)
    assert other.objective - base.objective == pytest.approx(const, abs=1e-9)
    _same_components(other, base, a_)


# --------------------------------------------------------------------------------------
# zero variance components: the linear model
# --------------------------------------------------------------------------------------


def _lm_criterion(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, reml: bool) -> float:
    """-2 log-likelihood of the (weighted) linear model: REML (R's logLik(REML=TRUE)) or ML."""
    n, p = X.shape
    sw = np.ones(n) if w is None else np.sqrt(w)
    Q, R = np.linalg.qr(X * sw[:, None])
    r = y * sw - Q @ (Q.T @ (y * sw))
    rss = float(r @ r)
    logw = 0.0 if w is None else float(np.sum(np.log(w)))
    if reml:
        df = n - p
        return (2 * float(np.sum(np.log(np.abs(np.diag(R))))) + df * (1 + np.log(2 * np.pi * rss
                / df)) - logw)
    return n * (1 + np.log(2 * np.pi * rss / n)) - logw


@_SETTINGS
@given(designs, st.booleans())
def test_criterion_at_theta_zero_is_the_linear_model(design, reml):
    kind, seed, weighted = design
    formula, d = _make(kind, seed, weighted)
    m = _fit(formula, d, reml=reml, weights=_weights(d))
    w = None if not weighted else d["w"].to_numpy()
    lm = _lm_criterion(m.design.X, m.design.y, w, reml)
    assert m._obj(np.zeros(m.theta.size)) == pytest.approx(lm, rel=1e-11)


def _no_group_signal(kind: str, seed: int) -> tuple[str, pd.DataFrame, int]:
    """Data whose residuals carry no group-level signal: variance components estimated 0.

    x is centred within every level and the errors are centred (for slopes also made
    orthogonal to x) within every level of every grouping factor, so the linear model's
    residuals sum to zero within each level (and are orthogonal to x there, for slopes):
    every variance component's score at zero points inwards.
    """
    rng = np.random.default_rng(seed)
    if kind == "crossed":
        m1, m2 = int(rng.integers(3, 8)), int(rng.integers(2, 6))
        g, h = (a.ravel() for a in np.meshgrid(np.arange(m1), np.arange(m2), indexing="ij"))

        def double_centre(v):
            v = v.reshape(m1, m2)
            return (v - v.mean(0) - v.mean(1)[:, None] + v.mean()).ravel()
        x = double_centre(rng.normal(size=m1 * m2))
        e = double_centre(rng.normal(size=m1 * m2))
        d = pd.DataFrame({"y": 2 + 0.5 * x + e, "x": x, "g": g, "h": h})
        return _FORMULAS[kind], d, m1 + m2
    m1 = int(rng.integers(3, 10))
    size = int(rng.integers(4, 8))
    g = np.repeat(np.arange(m1), size)
    x = rng.normal(size=g.size)
    e = rng.normal(size=g.size)
    for j in range(m1):
        rows = g == j
        x[rows] -= x[rows].mean()
        B = np.column_stack([np.ones(size), x[rows]]) if kind == "slope" else np.ones((size, 1))
        e[rows] -= B @ np.linalg.lstsq(B, e[rows], rcond=None)[0]
    d = pd.DataFrame({"y": 2 + 0.5 * x + e, "x": x, "g": g})
    return _FORMULAS[kind], d, m1


@_SETTINGS
@given(st.sampled_from(_KINDS), st.integers(0, 2**32 - 1), st.booleans())
def test_zero_variance_fit_reproduces_the_linear_model(kind, seed, reml):
    formula, d, _ = _no_group_signal(kind, seed)
    m = _fit(formula, d, reml=reml)
    np.testing.assert_allclose(m.theta, 0.0, atol=1e-6)
    assert m.is_singular
    X, y = m.design.X, m.design.y
    assert m.objective == pytest.approx(_lm_criterion(X, y, None, reml), rel=1e-10, abs=1e-8)
    ols = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(m.fixef, ols, rtol=1e-8, atol=1e-10)
    n, p = X.shape
    rss = float(np.sum((y - X @ ols) ** 2))
    assert m.sigma == pytest.approx(np.sqrt(rss / ((n - p) if reml else n)), rel=1e-6)


# --------------------------------------------------------------------------------------
# gradient and factorisations
# --------------------------------------------------------------------------------------


def _random_theta(structure, rng: np.random.Generator) -> np.ndarray:
    diag = structure.is_diagonal_theta
    return np.where(diag, rng.uniform(0.05, 3.0, diag.size), rng.normal(0.0, 0.7, diag.size))


def _richardson(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    out = []
    for e in np.eye(x.size):
        d1 = (f(x + h * e) - f(x - h * e)) / (2 * h)
        d2 = (f(x + h / 2 * e) - f(x - h / 2 * e)) / h
        out.append((4 * d2 - d1) / 3)
    return np.array(out)


@_SETTINGS
@given(designs, st.booleans())
def test_gradient_matches_finite_differences(design, reml):
    kind, seed, weighted = design
    formula, d = _make(kind, seed, weighted)
    m = _fit(formula, d, reml=reml, weights=_weights(d))
    obj = LmmObjective(m.blocks, reml)
    rng = np.random.default_rng(seed)
    for theta in (_random_theta(m.structure, rng), m.theta + 0.05):
        g = obj.gradient(theta)
        fd = _richardson(obj, theta)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * (1 + np.abs(fd).max()))


@_SETTINGS
@given(designs, st.booleans())
def test_factorisations_agree(design, reml):
    kind, seed, weighted = design
    formula, d = _make(kind, seed, weighted)
    m = _fit(formula, d, reml=reml, weights=_weights(d))
    objs = [LmmObjective(m.blocks, reml, factorization=f) for f in ("cholmod", "schur")]
    assert [o.factorization for o in objs] == ["cholmod", "schur"]
    rng = np.random.default_rng(seed)
    zero = np.zeros(m.theta.size)
    for theta in (m.theta, _random_theta(m.structure, rng), zero):
        values = [o(theta) for o in objs]
        assert values[1] == pytest.approx(values[0], rel=1e-12, abs=1e-10)
        sols = [o.solve(theta) for o in objs]
        np.testing.assert_allclose(sols[1].beta, sols[0].beta, rtol=1e-10, atol=1e-12)
        assert sols[1].r2 == pytest.approx(sols[0].r2, rel=1e-10)
        if theta is not zero:
            np.testing.assert_allclose(objs[1].gradient(theta), objs[0].gradient(theta),
                                       rtol=1e-8, atol=1e-9)
    assert objs[0](m.theta) == pytest.approx(m.objective, rel=1e-12)
