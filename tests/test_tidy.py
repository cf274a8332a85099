"""tidy / glance / augment (broom.mixed conventions), hat values, Cook's distance, HTML.

References: ``tests/references/make_predict_references.R`` stores, per model, what
broom.mixed computes for an lmerTest fit -- ``coef(summary(m))`` with Satterthwaite df and
``qt`` intervals, ``as.data.frame(VarCorr(m), order = "lower.tri")`` with broom.mixed's
term names, the glance statistics, and the augment columns including lme4's
``hatvalues`` and ``cooks.distance`` and the ``m@resp`` fields. (broom.mixed itself is
not installed with the reference R; the script reproduces its rules.) Tolerances allow for
the ~1e-5 relative difference between our optimum and lme4's. The hat values are also
checked exactly against a dense computation of the hat matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
from test_predict import MODELS, model

import mixeff
from mixeff import DataError
from mixeff._tidy import augment, cooks_distance, fit_html, glance, hat_values, tidy

AUGMENT_COLUMNS = [".fitted", ".resid", ".hat", ".cooksd", ".fixed", ".mu", ".offset",
                   ".sqrtXwt", ".sqrtrwt", ".weights", ".wtres"]


@pytest.mark.parametrize("name", list(MODELS))
def test_tidy_matches_broom_mixed(name):
    fit, _, ref = model(name)
    t = tidy(fit, conf_int=True)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std.error",
                               "statistic", "df", "p.value", "conf.low", "conf.high"]
    fx = t[t["effect"] == "fixed"]
    rf = ref["tidy"]["fixed"]
    assert [str(x) for x in fx["term"]] == list(fit.design.xnames)
    assert len(rf["term"]) == len(fx)
    se = np.asarray(rf["std.error"])
    np.testing.assert_allclose(fx["estimate"], rf["estimate"], rtol=0, atol=1e-4 * se.max())
    np.testing.assert_allclose(fx["std.error"], se, rtol=1e-4)
    np.testing.assert_allclose(fx["statistic"], rf["statistic"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fx["df"], rf["df"], rtol=1e-3)
    np.testing.assert_allclose(fx["p.value"], rf["p.value"], rtol=2e-3, atol=1e-10)
    np.testing.assert_allclose(fx["conf.low"], rf["conf.low"], rtol=0, atol=1e-3 * se.max())
    np.testing.assert_allclose(fx["conf.high"], rf["conf.high"], rtol=0, atol=1e-3 * se.max())
    assert fx["group"].isna().all()
    rp = t[t["effect"] == "ran_pars"]
    want = ref["tidy"]["ran_pars"]
    assert list(rp["group"]) == want["group"]
    assert list(rp["term"]) == want["term"]
    est = np.asarray(want["estimate"])
    is_cor = rp["term"].str.startswith("cor__").to_numpy()
    np.testing.assert_allclose(rp["estimate"].to_numpy()[~is_cor], est[~is_cor], rtol=1e-4,
                               atol=1e-5 * est.max())  # plant_slopes: a near-zero SD
    np.testing.assert_allclose(rp["estimate"].to_numpy()[is_cor], est[is_cor], atol=1e-3)
    assert rp[["std.error", "statistic", "df", "p.value", "conf.low", "conf.high"]
              ].isna().all().all()


def test_tidy_columns_and_blocks():
    fit, _, _ = model("sleepstudy_reml")
    t = tidy(fit)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std.error",
                               "statistic", "df", "p.value"]
    assert list(t["effect"]) == ["fixed"] * 2 + ["ran_pars"] * 4
    only_fixed = tidy(fit, effects="fixed")
    assert list(only_fixed.columns) == ["effect", "term", "estimate", "std.error",
                                        "statistic", "df", "p.value"]
    only_rp = tidy(fit, effects=["ran_pars"])
    assert list(only_rp.columns) == ["effect", "group", "term", "estimate"]
    pd.testing.assert_frame_equal(tidy(fit, effects=("ran_pars", "fixed")), t)
    with pytest.raises(ValueError, match="unknown effect"):
        tidy(fit, effects="random")
    with pytest.raises(ValueError):
        tidy(fit, conf_int=True, conf_level=1.5)
    lme4 = tidy(fit, effects="fixed", ddf="lme4", conf_int=True)
    assert "df" not in lme4.columns and "p.value" not in lme4.columns
    z = 1.959963984540054
    np.testing.assert_allclose(lme4["conf.high"] - lme4["estimate"], z * lme4["std.error"])
    ct = fit.coef_table()
    sat = tidy(fit, effects="fixed", conf_int=True, conf_level=0.9)
    from scipy import stats
    half = stats.t.ppf(0.95, ct["df"]) * ct["Std. Error"]
    np.testing.assert_allclose(sat["conf.high"].to_numpy(), (ct["Estimate"] + half).to_numpy())


def test_tidy_vcov_scale_and_repeated_groups():
    fit, _, _ = model("sleepstudy_uncorr")
    t = tidy(fit, effects="ran_pars", scales="vcov")
    assert list(t["group"]) == ["Subject", "Subject.1", "Residual"]
    assert list(t["term"]) == ["var__(Intercept)", "var__Days", "var__Observation"]
    np.testing.assert_allclose(t["estimate"], fit.varcorr()["variance"])
    fit2, _, _ = model("sleepstudy_reml")
    t2 = tidy(fit2, effects="ran_pars", scales="vcov")
    assert list(t2["term"]) == ["var__(Intercept)", "cov__(Intercept).Days", "var__Days",
                                "var__Observation"]
    S = fit2.structure.covariances(fit2.theta, fit2.sigma)[0]
    np.testing.assert_allclose(t2["estimate"][:3], [S[0, 0], S[0, 1], S[1, 1]])
    with pytest.raises(ValueError):
        tidy(fit2, scales="sd")


def test_tidy_ran_vals_and_ran_coefs():
    fit, _, _ = model("sleepstudy_reml")
    re = fit.ranef()["Subject"]
    rv = tidy(fit, effects="ran_vals", conf_int=True)
    assert list(rv.columns) == ["effect", "group", "level", "term", "estimate", "std.error",
                                "conf.low", "conf.high"]
    assert list(rv["term"][:18]) == ["(Intercept)"] * 18
    assert list(rv["level"][:18]) == list(re.index)
    np.testing.assert_allclose(rv["estimate"], re.to_numpy().T.ravel())
    np.testing.assert_allclose(rv["std.error"], re.attrs["condsd"].to_numpy().T.ravel())
    rc = tidy(fit, effects="ran_coefs")
    coef = re + fit.fixef
    np.testing.assert_allclose(rc["estimate"], coef.to_numpy().T.ravel())
    both = tidy(fit, effects=["ran_coefs", "fixed", "ran_vals"])
    assert list(both["effect"].unique()) == ["fixed", "ran_vals", "ran_coefs"]
    assert "level" in both.columns and both["level"][both["effect"] == "fixed"].isna().all()


def test_tidy_profile_intervals():
    fit, _, _ = model("sleepstudy_reml")
    t = tidy(fit, conf_int=True, conf_method="profile")
    ci = fit.confint(method="profile")
    rp = t[t["effect"] == "ran_pars"]
    np.testing.assert_allclose(rp["conf.low"], ci.iloc[:4, 0])
    np.testing.assert_allclose(rp["conf.high"], ci.iloc[:4, 1])
    fx = t[t["effect"] == "fixed"]
    np.testing.assert_allclose(fx["conf.low"], ci.loc[["(Intercept)", "Days"]].iloc[:, 0])


@pytest.mark.parametrize("name", list(MODELS))
def test_glance_matches_broom_mixed(name):
    fit, _, ref = model(name)
    g = glance(fit)
    want = ref["glance"]
    assert list(g.columns) == list(want)
    assert g.shape == (1, 7)
    for k, v in want.items():
        got = g[k].iloc[0]
        if k in ("nobs", "df.residual"):
            assert got == v
        elif k == "sigma":
            np.testing.assert_allclose(got, v, rtol=1e-4)
        else:
            np.testing.assert_allclose(got, v, rtol=1e-9)


@pytest.mark.parametrize("name", list(MODELS))
def test_augment_matches_broom_mixed(name):
    fit, data, ref = model(name)
    a = augment(fit, data)
    assert list(a.columns) == list(data.columns) + AUGMENT_COLUMNS
    assert a.index.equals(fit.design.row_index)
    want = ref["augment"]
    scale = float(np.std(fit.design.y))
    for col in AUGMENT_COLUMNS:
        got = a[col].to_numpy()
        w = np.asarray(want[col], dtype=float)
        if col in (".hat",):
            np.testing.assert_allclose(got, w, rtol=0, atol=2e-5)
        elif col == ".cooksd":
            np.testing.assert_allclose(got, w, rtol=2e-3, atol=1e-6)
        elif col in (".sqrtXwt", ".sqrtrwt", ".weights", ".offset"):
            np.testing.assert_allclose(got, w, rtol=1e-15)
        else:
            np.testing.assert_allclose(got, w, rtol=0, atol=1e-3 * scale)


def test_augment_without_data_and_with_dropped_rows():
    fit, data, _ = model("pastes_reml")
    fit.data = None   # a fit that keeps no data (as from arrays): the model frame is used
    fit2, data2, _ = model("sleepstudy_reml")
    fit2.data = None
    a = augment(fit, influence=False)
    assert list(a.columns) == ["strength", "batch", "cask:batch", ".fitted", ".resid",
                               ".fixed", ".mu", ".offset", ".sqrtXwt", ".sqrtrwt",
                               ".weights", ".wtres"]
    np.testing.assert_array_equal(a["batch"], data["batch"])
    np.testing.assert_array_equal(a["cask:batch"], data["cask"] + ":" + data["batch"])
    a2 = augment(fit2, influence=False)
    assert list(a2.columns[:3]) == ["Reaction", "Days", "Subject"]
    d = data2.copy()
    d.loc[[2, 50], "Reaction"] = np.nan
    fit3 = mixeff.lmer("Reaction ~ Days + (Days | Subject)", d)
    a3 = augment(fit3, d)
    assert len(a3) == 178 and 2 not in a3.index
    np.testing.assert_allclose(a3[".resid"], fit3.residuals())
    with pytest.raises(DataError, match="rows"):
        augment(fit3, d.iloc[:20])
    with pytest.raises(DataError, match="DataFrame"):
        augment(fit3, d.to_numpy())


def dense_hat(fit: mixeff.LmerFit) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal of ``H = [Z Lambda, X] C^{-1} [Z Lambda, X]' W`` and ``H (y - offset)``."""
    d = fit.design
    n, q = fit.nobs, fit.blocks.q
    Z = np.zeros((n, q))
    tmpl = fit.structure.templates(fit.theta)
    Lam = np.zeros((q, q))
    for ti, t in enumerate(fit.structure.terms):
        td = d.terms[fit.term_order[ti]]
        cols = t.offset + np.asarray(td.codes)[:, None] * t.k + np.arange(t.k)[None, :]
        np.put_along_axis(Z, cols, td.matrix, axis=1)
        for lev in range(t.nlevels):
            o = t.offset + lev * t.k
            Lam[o : o + t.k, o : o + t.k] = tmpl[ti, : t.k, : t.k]
    w = np.ones(n) if d.weights is None else d.weights
    A = np.hstack([Z @ Lam, d.X])
    C = A.T @ (A * w[:, None])
    C[:q, :q] += np.eye(q)
    H = A @ sla.solve(C, (A * w[:, None]).T)
    y = d.y if d.offset is None else d.y - d.offset
    return np.diag(H).copy(), H @ y


@pytest.mark.parametrize("name", ["sleepstudy_weights", "penicillin_reml", "pastes_reml",
                                  "plant_slopes", "sleepstudy_uncorr", "sleepstudy_offset"])
def test_hat_values_against_the_dense_hat_matrix(name):
    fit, _, _ = model(name)
    h_dense, hy = dense_hat(fit)
    offset = 0 if fit.design.offset is None else fit.design.offset
    np.testing.assert_allclose(hy + offset, fit.fitted().to_numpy(), rtol=1e-9)
    h = hat_values(fit)
    assert h.index.equals(fit.design.row_index)
    np.testing.assert_allclose(h.to_numpy(), h_dense, rtol=1e-9, atol=1e-12)
    cd = cooks_distance(fit)
    r = fit.residuals(type="pearson").to_numpy()
    p = fit.blocks.p
    np.testing.assert_allclose(cd, (r / (1 - h_dense)) ** 2 * h_dense / (fit.sigma**2 * p),
                               rtol=1e-8)


def test_fit_html_escapes():
    _, data, _ = model("sleepstudy_reml")
    d = data.rename(columns={"Subject": "S<b>&"})
    fit = mixeff.lmer("Reaction ~ Days + (Days | `S<b>&`)", d)
    out = fit_html(fit)
    assert out.startswith("<div") and out.endswith("</div>")
    assert "S&lt;b&gt;&amp;" in out
    assert "S<b>" not in out
    assert out.count("<table") == 3
    for word in ("Random effects", "Fixed effects", "REML criterion", "Std. Error",
                 "Pr(&gt;|t|)", "Days", "Residual"):
        assert word in out
    pen, _, _ = model("penicillin_reml")
    assert "plate, 24" in fit_html(pen)
    sing, _, _ = model("plant_slopes")
    assert "singular" in fit_html(sing)
