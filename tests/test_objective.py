"""The core on its own: blocks, objective, analytic gradient, factor refresh."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv, richardson

from mixeff._blocks import build_blocks
from mixeff._lambda import ReStructure, lme4_term_order
from mixeff._objective import LmmObjective, _OneTerm, _SmallDense


def _sleep_model(uncorrelated=False, weights=False):
    d = load_csv("sleepstudy.csv")
    codes, lev = pd.factorize(d["Subject"], sort=True)
    one = np.ones((len(d), 1))
    days = d[["Days"]].to_numpy(float)
    X = np.column_stack([one, days])
    if uncorrelated:
        re = ReStructure(["Subject", "Subject"], [["(Intercept)"], ["Days"]], [18, 18])
        terms = ([codes, codes], [one, days])
    else:
        re = ReStructure(["Subject"], [["(Intercept)", "Days"]], [18])
        terms = ([codes], [X])
    w = 1 + (codes % 3) / 2 if weights else None
    return re, build_blocks(re, *terms, X, d["Reaction"].to_numpy(float), w)


def _crossed_model(weights=False):
    d = load_csv("Penicillin.csv")
    cp, lp = pd.factorize(d["plate"], sort=True)
    cs, ls = pd.factorize(d["sample"], sort=True)
    one = np.ones((len(d), 1))
    x = np.linspace(-1, 1, len(d))[:, None]
    re = ReStructure(["plate", "sample"], [["(Intercept)", "x"], ["(Intercept)"]],
                     [len(lp), len(ls)])
    X = np.column_stack([one, x])
    w = 0.5 + (np.arange(len(d)) % 4) / 3 if weights else None
    return re, build_blocks(re, [cp, cs], [np.column_stack([one, x]), one], X,
                            d["diameter"].to_numpy(float), w)


@pytest.mark.parametrize("factorization", ["cholmod", "schur", "auto"])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", ["corr", "uncorr", "weights", "crossed"])
def test_gradient_matches_finite_differences(case, reml, factorization):
    if case == "crossed":
        re, blocks = _crossed_model()
    else:
        re, blocks = _sleep_model(uncorrelated=case == "uncorr", weights=case == "weights")
    obj = LmmObjective(blocks, reml=reml, factorization=factorization)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = re.start_theta() * rng.uniform(0.2, 1.5, re.ntheta) + \
            (~re.is_diagonal_theta) * rng.normal(0, 0.2, re.ntheta)
        g = obj.gradient(theta)
        fd = richardson(obj, theta)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def _one_term_model(k, p, weights):
    """One grouping term with ``k`` columns, ``p`` fixed-effect columns (simulated)."""
    rng = np.random.default_rng(10 * k + p)
    n, m = 400, 37
    codes = rng.integers(0, m, n)
    Z = np.column_stack([np.ones(n), rng.normal(size=(n, k - 1))])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, max(p - 1, 0)))])[:, :p]
    y = Z[:, 0] * rng.normal(size=m)[codes] + rng.normal(size=n) + 3.0
    re = ReStructure(["g"], [[f"z{j}" for j in range(k)]], [m])
    w = rng.uniform(0.5, 2.0, n) if weights else None
    return re, build_blocks(re, [codes], [Z], X, y, w)


def _assert_same_values(fast, others, re, seed, rtol):
    """Values and gradients of a fast path equal those of ``others`` at random theta,
    and its own ``solve()`` (the general path) agrees; returns the last theta."""
    rng = np.random.default_rng(seed)
    for _ in range(4):
        theta = re.start_theta() * rng.uniform(0.1, 3.0, re.ntheta) + \
            (~re.is_diagonal_theta) * rng.normal(0, 0.5, re.ntheta)
        f1, g1 = fast(theta), fast.gradient(theta)
        for o in others:
            assert f1 == pytest.approx(o(theta), rel=1e-13)
            np.testing.assert_allclose(g1, o.gradient(theta), rtol=rtol,
                                       atol=rtol / 10 * np.abs(g1).max())
        assert fast.solve(theta).objective == pytest.approx(f1, rel=1e-13)
    return theta


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("k", "p", "weights"),
                         [(1, 1, False), (2, 2, False), (3, 3, True), (2, 0, False)])
def test_one_term_path_equals_general_path(k, p, weights, reml):
    """One random-effects term: the optimiser's level-by-level values and gradients (the
    default) equal those of the Schur and CHOLMOD paths, and solve() is unchanged."""
    re, blocks = _one_term_model(k, p, weights)
    one = LmmObjective(blocks, reml=reml)
    assert isinstance(one._fast, _OneTerm)
    others = [LmmObjective(blocks, reml=reml, factorization=f) for f in ("schur", "cholmod")]
    assert all(o._fast is None for o in others)
    theta = _assert_same_values(one, others, re, seed=2, rtol=1e-10)
    n0 = one.n_evaluations
    one(theta)
    one.gradient(theta)
    assert one.n_evaluations == n0   # the last theta is kept: no second pass


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", ["uncorr", "crossed", "weights-crossed"])
def test_small_dense_path_equals_general_path(case, reml):
    """Several terms, few random effects: the optimiser's dense values and gradients (the
    default below ``SMALL_DENSE_Q``) equal those of the Schur and CHOLMOD paths."""
    from mixeff._objective import SMALL_DENSE_Q

    if case == "uncorr":
        re, blocks = _sleep_model(uncorrelated=True)
    else:
        re, blocks = _crossed_model(weights=case == "weights-crossed")
    assert blocks.q <= SMALL_DENSE_Q
    dense = LmmObjective(blocks, reml=reml)
    assert isinstance(dense._fast, _SmallDense)
    others = [LmmObjective(blocks, reml=reml, factorization=f) for f in ("schur", "cholmod")]
    assert all(o._fast is None for o in others)
    _assert_same_values(dense, others, re, seed=4, rtol=1e-9)


def test_objective_moves_with_theta_and_factor_is_refreshed():
    """The trap of a stale factor: every evaluation must reflect its own theta."""
    re, blocks = _sleep_model()
    obj = LmmObjective(blocks, reml=True)
    a = obj(np.array([1.0, 0.0, 1.0]))
    b = obj(np.array([0.5, 0.1, 0.2]))
    c = obj(np.array([1.0, 0.0, 1.0]))
    assert a != b
    assert a == c
    fresh = LmmObjective(blocks, reml=True)
    assert fresh(np.array([0.5, 0.1, 0.2])) == pytest.approx(b, rel=1e-13)


def test_objective_equals_dense_formula():
    """Compare with the textbook dense computation of the profiled REML criterion."""
    re, blocks = _crossed_model()
    d = load_csv("Penicillin.csv")
    cp, _ = pd.factorize(d["plate"], sort=True)
    cs, _ = pd.factorize(d["sample"], sort=True)
    n = len(d)
    x = np.linspace(-1, 1, n)
    Z = np.zeros((n, re.q))
    Z[np.arange(n), 2 * cp] = 1.0
    Z[np.arange(n), 2 * cp + 1] = x
    Z[np.arange(n), 48 + cs] = 1.0
    X = np.column_stack([np.ones(n), x])
    y = d["diameter"].to_numpy(float)
    theta = np.array([0.8, 0.3, 0.5, 1.2])
    T = np.array([[0.8, 0.0], [0.3, 0.5]])
    Lam = np.zeros((re.q, re.q))
    for a in range(24):
        Lam[2 * a : 2 * a + 2, 2 * a : 2 * a + 2] = T
    Lam[48:, 48:] = 1.2 * np.eye(6)
    V = Z @ Lam @ Lam.T @ Z.T + np.eye(n)   # marginal covariance / sigma^2
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    p = 2
    s2 = r @ Vi @ r / (n - p)
    reml = (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1]
            + (n - p) * (1 + np.log(2 * np.pi * s2)))
    obj = LmmObjective(blocks, reml=True)
    sol = obj.solve(theta)
    assert sol.objective == pytest.approx(reml, rel=1e-12)
    np.testing.assert_allclose(sol.beta, beta, rtol=1e-10)


@pytest.mark.parametrize("factorization", ["cholmod", "schur"])
def test_selected_inverse_matches_dense_inverse(factorization):
    re, blocks = _crossed_model()
    obj = LmmObjective(blocks, reml=True, factorization=factorization)
    theta = np.array([0.8, 0.3, 0.5, 1.2])
    obj(theta)
    blocksinv = obj.condvar_blocks(theta)
    import scipy.sparse as sp

    tm = re.templates(theta)
    M = np.zeros((re.q, re.q))
    idx = np.arange(blocks.nnz_m)
    low = sp.csc_matrix((np.zeros(idx.size), blocks.m_indices, blocks.m_indptr),
                        shape=(re.q, re.q))
    assert low.nnz == blocks.nnz_m
    obj._fill(tm)
    low.data[:] = obj._mdata
    M = low.toarray()
    M = M + np.tril(M, -1).T
    Minv = np.linalg.inv(M)
    for t, term in enumerate(re.terms):
        for a in range(term.nlevels):
            s = term.offset + a * term.k
            np.testing.assert_allclose(blocksinv[t][a], Minv[s : s + term.k, s : s + term.k],
                                       rtol=1e-10, atol=1e-13)
    # every entry on the pattern of M (what the gradient and the hat values read)
    rows, cols = low.nonzero()
    sel = obj.selected_inverse(theta)
    np.testing.assert_allclose(sel.entries(rows, cols), Minv[rows, cols], rtol=1e-10,
                               atol=1e-13)


def test_lme4_term_order():
    assert lme4_term_order([10, 30]) == [1, 0]
    assert lme4_term_order([30, 10]) == [0, 1]
    assert lme4_term_order([5, 5, 7]) == [2, 1, 0]    # rev(order()) reverses ties
    assert lme4_term_order([7, 5, 5]) == [0, 1, 2]    # already non-increasing: kept


def test_progress_reports_only_long_fits(capsys):
    import io

    from mixeff._optimizer import _Progress, minimize_theta

    re, blocks = _sleep_model()
    obj = LmmObjective(blocks, reml=True)
    rec = minimize_theta(obj, re.start_theta(), re.lower_bounds(), verbose=True)
    assert capsys.readouterr().err == ""          # a short fit prints nothing
    buf = io.StringIO()
    prog = _Progress(obj, after=0.0, every=0.0, stream=buf)
    prog(re.start_theta())
    prog.close(rec)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("mixeff:") and "evaluations, objective" in lines[0]
    assert lines[-1].startswith("mixeff: done")


def test_gradient_optimizer_leaves_a_zero_theta_that_is_not_a_minimum():
    """The deviance is even in a diagonal theta entry, so its gradient is 0 at 0 even
    when 0 is a maximum along that axis; the optimiser must not stop there."""
    import mixeff

    d = load_csv("Penicillin.csv")
    fit = mixeff.lmer("diameter ~ 1 + (1 | plate)", d, optimizer="L-BFGS-B")
    # lme4 1.1-31: theta = 0.1535, REML logLik -306.628
    assert fit.theta[0] == pytest.approx(0.1535, abs=1e-3)
    assert fit.loglik == pytest.approx(-306.628, abs=1e-3)


# theta far out for the model with 74 random effects for 48 rows of test_reliability, where
# the Schur complement is numerically not positive definite but CHOLMOD factors M
_BREAKDOWN_THETA = [9.3e6, 9.7e6, 6.3e6, -7.5e6, 7.0e6, -4.8e6, 5.1e6, 5.5e6]


def test_schur_breakdown_moves_auto_to_cholmod():
    from test_reliability import _fuzz_data

    from mixeff import DataError
    from mixeff._api import fit_design
    from mixeff._design import build_design
    from mixeff._objective import SchurBreakdown

    design = build_design("y ~ (1 | g) + (1 | g:h:a) + (Days + x | g)", _fuzz_data())
    blocks = fit_design(design, factorization="cholmod").blocks
    theta = np.array(_BREAKDOWN_THETA)
    start = blocks.re.start_theta()
    schur = LmmObjective(blocks, factorization="schur")
    with pytest.raises(SchurBreakdown) as info:
        schur(theta)
    assert isinstance(info.value, DataError) and "factorization='auto'" in str(info.value)
    chol = LmmObjective(blocks, factorization="cholmod")
    auto = LmmObjective(blocks)
    assert auto.factorization == "schur"
    np.testing.assert_allclose(auto(start), schur(start), rtol=1e-10)
    assert auto(theta) == chol(theta)        # evaluated again on CHOLMOD
    assert auto.factorization == "cholmod"
    np.testing.assert_array_equal(auto.perm, chol.perm)
    np.testing.assert_array_equal(auto.gradient(theta), chol.gradient(theta))
    assert auto(start) == chol(start)        # for the rest of its life
    np.testing.assert_array_equal(auto.u_hat(auto.solve(start)), chol.u_hat(chol.solve(start)))


@pytest.mark.parametrize("k1", [1, 2])
def test_parallel_elimination_equals_serial(k1):
    """The Schur path's S -= EE' shared among threads gives S bit for bit (each entry
    sums the levels in the same order), so the fit does not depend on the thread count."""
    rng = np.random.default_rng(7)
    n, ma, mb = 6000, 800, 300
    a, bb = rng.integers(0, ma, n), rng.integers(0, mb, n)
    x = rng.normal(size=n)
    one = np.ones((n, 1))
    Za = np.column_stack([one, x])[:, :k1]
    y = 1 + x + rng.normal(size=ma)[a] + rng.normal(size=mb)[bb] + rng.normal(size=n)
    re = ReStructure(["a", "b"], [["(Intercept)", "x"][:k1], ["(Intercept)"]], [ma, mb])
    blocks = build_blocks(re, [a, bb], [Za, one], np.column_stack([one, x]), y)
    serial = LmmObjective(blocks, factorization="schur")
    par = LmmObjective(blocks, factorization="schur", threads=2)
    assert par._chol.threads == 2 and serial._chol.q2 == mb
    for theta in (re.start_theta(), re.start_theta() * 0.7 + 0.05):
        assert serial(theta) == par(theta)
        np.testing.assert_array_equal(np.tril(serial._chol._S), np.tril(par._chol._S))
        np.testing.assert_array_equal(serial.gradient(theta), par.gradient(theta))


def test_one_term_path_hands_over_at_extreme_theta():
    """At theta where a level's block is numerically not positive definite, the one-term
    path hands over to the general path: the outcome is the general path's (a value, or
    a LinAlgError), never a ZeroDivisionError from a zero pivot (found in review)."""
    rng = np.random.default_rng(0)
    n, m = 40, 30
    codes = np.arange(n) % m
    Z = np.column_stack([np.ones(n), rng.normal(size=n)])
    re = ReStructure(["g"], [["a", "b"]], [m])
    blocks = build_blocks(re, [codes], [Z], np.ones((n, 1)), rng.normal(size=n))
    seen = set()
    for e in np.arange(6, 12, 0.25):
        for off in (1.0, -0.7, 0.3):
            theta = np.array([10**e, off * 10**e, 10**e])
            outcome = []
            for obj in (LmmObjective(blocks), LmmObjective(blocks, factorization="cholmod")):
                try:
                    outcome.append(obj(theta))
                except np.linalg.LinAlgError:
                    outcome.append("LinAlgError")
            # M's condition number is ~theta^2 here (1e12 and up): every path keeps only
            # a few digits, so only the kind of outcome is compared
            seen.add(isinstance(outcome[1], float))
            if isinstance(outcome[1], float):
                assert np.isfinite(outcome[0])
            else:
                assert outcome[0] == "LinAlgError"
    assert seen == {True, False}   # both kinds of theta were met
