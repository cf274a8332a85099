"""fit_arrays: models given as arrays equal the formula fits of the same numbers.

The array fit and ``mixeff.lmer`` run the same pipeline on the same numbers, so the
objective, theta, fixed effects, sigma and conditional modes agree to 1e-10 (in practice
exactly) for sleepstudy ``(Days | Subject)``, ``(Days || Subject)`` (two terms sharing a
grouping factor), Penicillin (crossed), Pastes (nested), weights and offsets. Then: what
works on such a fit, and the validation of the inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv

import mixeff
from mixeff import DataError
from mixeff._embed import RandomTermSpec, build_array_design, fit_arrays
from mixeff._predict import predict, refit, simulate
from mixeff._tidy import tidy


def assert_identical(a: mixeff.LmerFit, b: mixeff.LmerFit) -> None:
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-10, atol=0)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-10)
    np.testing.assert_allclose(a.vcov().to_numpy(), b.vcov().to_numpy(), rtol=1e-9)
    for (ga, ra), (gb, rb) in zip(a.ranef(condvar=False).items(),
                                  b.ranef(condvar=False).items(), strict=True):
        assert ga == gb
        assert list(ra.index) == list(rb.index)
        np.testing.assert_allclose(ra.to_numpy(), rb.to_numpy(), rtol=1e-9, atol=1e-10)
    assert list(a.fixef.index) == list(b.fixef.index)
    assert a.ngroups == b.ngroups
    assert a.nobs == b.nobs and a.reml == b.reml


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return load_csv("sleepstudy.csv", ["Subject"])


def sleep_terms(d: pd.DataFrame, split: bool = False) -> list[RandomTermSpec]:
    codes, levels = pd.factorize(d["Subject"], sort=True)
    n = len(d)
    if split:
        return [RandomTermSpec(codes, None, "Subject", levels=levels),
                RandomTermSpec(codes, d["Days"].to_numpy(), "Subject", ["Days"], levels)]
    Z = np.column_stack([np.ones(n), d["Days"]])
    return [RandomTermSpec(codes, Z, "Subject", ["(Intercept)", "Days"], levels)]


def sleep_X(d: pd.DataFrame) -> np.ndarray:
    return np.column_stack([np.ones(len(d)), d["Days"]])


@pytest.mark.parametrize("reml", [True, False])
def test_sleepstudy_equals_formula_fit(sleep, reml):
    e = fit_arrays(sleep_X(sleep), sleep["Reaction"], sleep_terms(sleep), reml=reml,
                   xnames=["(Intercept)", "Days"])
    f = mixeff.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=reml)
    assert_identical(e, f)
    assert e.formula == "y ~ 1 + Days + (1 + Days | Subject)"
    np.testing.assert_allclose(e.fitted().to_numpy(), f.fitted().to_numpy(), rtol=1e-12)


def test_uncorrelated_terms_share_the_grouping_factor(sleep):
    e = fit_arrays(sleep_X(sleep), sleep["Reaction"], sleep_terms(sleep, split=True),
                   xnames=["(Intercept)", "Days"])
    f = mixeff.lmer("Reaction ~ Days + (Days || Subject)", sleep)
    assert_identical(e, f)
    assert list(e.ranef()["Subject"].columns) == ["(Intercept)", "Days"]


def test_penicillin_crossed_equals_formula_fit():
    pen = load_csv("Penicillin.csv", ["plate", "sample"])
    c1, l1 = pd.factorize(pen["plate"], sort=True)
    c2, l2 = pd.factorize(pen["sample"], sort=True)
    e = fit_arrays(np.ones((len(pen), 1)), pen["diameter"].to_numpy(),
                   [RandomTermSpec(c1, name="plate", levels=l1),
                    RandomTermSpec(c2, name="sample", levels=l2)])
    f = mixeff.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    assert_identical(e, f)
    assert e.formula == "y ~ 1 + (1 | plate) + (1 | sample)"


def test_pastes_nested_equals_formula_fit():
    pa = load_csv("Pastes.csv", ["batch", "cask"])
    cb, lb = pd.factorize(pa["batch"], sort=True)
    cc, lc = pd.factorize(pa["cask"] + ":" + pa["batch"], sort=True)
    e = fit_arrays(np.ones((len(pa), 1)), pa["strength"],
                   [RandomTermSpec(cb, name="batch", levels=lb),
                    RandomTermSpec(cc, name="cask:batch", levels=lc)])
    f = mixeff.lmer("strength ~ 1 + (1 | batch/cask)", pa)
    assert_identical(e, f)


def test_weights_and_offset_equal_formula_fit(sleep):
    w = 1.0 + (np.arange(len(sleep)) % 4) / 3.0
    off = 0.3 * sleep["Days"].to_numpy()
    e = fit_arrays(sleep_X(sleep), sleep["Reaction"], sleep_terms(sleep), weights=w,
                   offset=off, xnames=["(Intercept)", "Days"])
    f = mixeff.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights=w, offset=off)
    assert_identical(e, f)
    np.testing.assert_allclose(e.fitted().to_numpy(), f.fitted().to_numpy(), rtol=1e-12)
    # zero weights drop rows, as lmer does
    w0 = w.copy()
    w0[[4, 99]] = 0.0
    e0 = fit_arrays(sleep_X(sleep), sleep["Reaction"], sleep_terms(sleep), weights=w0,
                    xnames=["(Intercept)", "Days"])
    f0 = mixeff.lmer("Reaction ~ Days + (Days | Subject)", sleep, weights=w0)
    assert_identical(e0, f0)
    assert e0.nobs == 178 and 4 not in e0.design.row_index
    assert any("zero weight" in m for m in e0.messages)


def test_what_works_on_an_array_fit(sleep):
    e = fit_arrays(sleep_X(sleep), sleep["Reaction"], sleep_terms(sleep),
                   xnames=["(Intercept)", "Days"])
    f = mixeff.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    text = str(e.summary())
    assert "Formula: y ~ 1 + Days + (1 + Days | Subject)" in text
    assert "Subject, 18" in text
    pd.testing.assert_frame_equal(e.coef_table(), f.coef_table(), rtol=1e-8)
    pd.testing.assert_frame_equal(e.anova(), f.anova(), rtol=1e-8)
    np.testing.assert_allclose(e.ranova()["LRT"].to_numpy(dtype=float),
                               f.ranova()["LRT"].to_numpy(dtype=float), rtol=1e-6)
    np.testing.assert_allclose(e.confint(method="Wald").iloc[-2:].to_numpy(dtype=float),
                               f.confint(method="Wald").iloc[-2:].to_numpy(dtype=float))
    pd.testing.assert_frame_equal(tidy(e), tidy(f), rtol=1e-8)
    np.testing.assert_allclose(predict(e).to_numpy(), f.fitted().to_numpy(), rtol=1e-12)
    assert simulate(e, 2, seed=1).shape == (180, 2)
    y2 = sleep["Reaction"].to_numpy()[::-1].copy()
    r = refit(e, y2)
    np.testing.assert_allclose(r.objective, refit(f, y2).objective, rtol=1e-10)
    # new data with columns named like the fit's columns and grouping factor
    nd = pd.DataFrame({"Days": [1.0, 3.0], "Subject": ["308", "372"]})
    np.testing.assert_allclose(predict(e, nd), predict(f, nd), rtol=1e-12)


def test_default_names_and_dropped_columns(sleep):
    n = len(sleep)
    days = sleep["Days"].to_numpy()
    codes, _ = pd.factorize(sleep["Subject"], sort=True)
    X = np.column_stack([days, np.ones(n), 2.0 * days])
    e = fit_arrays(X, sleep["Reaction"], RandomTermSpec(codes, np.column_stack([np.ones(n),
                                                                                days])))
    assert e.design.xnames == ["x1", "(Intercept)"]
    assert e.design.dropped_xnames == ["x3"]
    assert any("rank deficient" in m for m in e.messages)
    assert e.formula == "y ~ 1 + x1 + x3 + (1 + z2 | g)"
    assert list(e.ranef()["g"].columns) == ["(Intercept)", "z2"]
    assert list(e.ranef()["g"].index[:2]) == ["0", "1"]
    f = mixeff.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    np.testing.assert_allclose(e.objective, f.objective, rtol=1e-10)
    # no fixed effects at all
    e0 = fit_arrays(None, sleep["Reaction"], RandomTermSpec(codes))
    assert e0.design.xnames == [] and e0.formula == "y ~ 0 + (1 | g)"
    f0 = mixeff.lmer("Reaction ~ 0 + (1 | Subject)", sleep)
    np.testing.assert_allclose(e0.objective, f0.objective, rtol=1e-10)


def test_unused_levels_are_dropped(sleep):
    codes, levels = pd.factorize(sleep["Subject"], sort=True)
    gappy = codes * 3 + 1  # levels 1, 4, 7, ...: 18 used out of 53
    e = fit_arrays(sleep_X(sleep), sleep["Reaction"], RandomTermSpec(gappy, name="Subject"))
    f = fit_arrays(sleep_X(sleep), sleep["Reaction"], RandomTermSpec(codes, name="Subject"))
    assert e.ngroups == {"Subject": 18}
    assert list(e.ranef()["Subject"].index[:3]) == ["1", "4", "7"]
    np.testing.assert_allclose(e.objective, f.objective, rtol=1e-12)
    labelled = fit_arrays(sleep_X(sleep), sleep["Reaction"],
                          RandomTermSpec(codes, name="Subject", levels=list(levels) + ["x"]))
    assert list(labelled.ranef()["Subject"].index) == list(levels)


def test_validation(sleep):
    n = len(sleep)
    y = sleep["Reaction"].to_numpy()
    X = sleep_X(sleep)
    codes, levels = pd.factorize(sleep["Subject"], sort=True)
    ok = RandomTermSpec(codes)

    def fails(match, *args, **kwargs):
        with pytest.raises(DataError, match=match):
            build_array_design(*args, **kwargs)

    fails("X has 179 rows", X[:-1], y, ok)
    fails("2-D", np.ones((n, 2, 2)), y, ok)
    fails("y must be one-dimensional", X, X, ok)
    ybad = y.copy()
    ybad[7] = np.nan
    fails("y has missing or infinite values .first at row 7", X, ybad, ok)
    Xbad = X.copy()
    Xbad[3, 1] = np.inf
    fails("row 3, column 1", Xbad, y, ok)
    fails("codes of random term 0 .'g'. have 10 values", X, y, RandomTermSpec(codes[:10]))
    fails(">= 0", X, y, RandomTermSpec(codes - 1))
    fails("whole numbers", X, y, RandomTermSpec(codes + 0.5))
    fails("missing values", X, y, RandomTermSpec(np.where(codes == 2, np.nan, codes)))
    fails("must be integers", X, y, RandomTermSpec(sleep["Subject"].to_numpy()))
    fails("only 3 levels", X, y, RandomTermSpec(codes, levels=["a", "b", "c"]))
    fails("not unique", X, y, RandomTermSpec(codes, levels=["a"] * 18))
    fails("matrix of random term 0 .'g'. has 3 rows", X, y,
          RandomTermSpec(codes, np.ones((3, 1))))
    zbad = np.ones((n, 1))
    zbad[0, 0] = np.nan
    fails("missing or infinite", X, y, RandomTermSpec(codes, zbad))
    fails("both named 'g'", X, y, [ok, RandomTermSpec(codes[::-1].copy())])
    fails("> 1 sampled level", X, y, RandomTermSpec(np.zeros(n, dtype=int)))
    fails("number of levels of each grouping factor", X, y, RandomTermSpec(np.arange(n)))
    fails("at least one random-effects term", X, y, [])
    fails("RandomTermSpec", X, y, [codes])
    fails("non-empty name", X, y, RandomTermSpec(codes, name=""))
    fails("2 names for 3 columns", np.column_stack([X, X[:, 1] ** 2]), y, ok,
          xnames=["a", "b"])
    fails("repeated names", X, y, ok, xnames=["a", "a"])
    fails("non-negative", X, y, ok, weights=-np.ones(n))
    fails("weights has 3 values", X, y, ok, weights=np.ones(3))
    fails("offset has missing", X, y, ok, offset=np.full(n, np.nan))
    fails("constant", X, np.ones(n), ok)
    fails("no residual degrees of freedom", np.eye(n), y, ok, check_nlev="ignore")
    fails("y is empty", np.zeros((0, 1)), np.zeros(0), ok)
    with pytest.raises(DataError, match="check_nlev"):
        build_array_design(X, y, ok, check_nlev="sometimes")
    # integral float codes are accepted
    d = build_array_design(X, y, RandomTermSpec(codes.astype(float)))
    np.testing.assert_array_equal(d.terms[0].codes, codes)
