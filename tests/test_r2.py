"""R^2 and ICC of linear mixed models against R's performance 0.10.2 / insight 0.19.0.

References: tests/references/after/r2_icc.json (tests/references/make_after_references.R).
``performance`` holds r2_nakagawa() and icc(); ``hand`` the same quantities computed from
lme4's VarCorr and the random-effect model matrix (``getME(m, "Zt")``), which is
what mixeff computes for every model; the two agree except where insight leaves out part
of the random-effect variance (see mixeff._r2).

Tolerances: the variance components of two optimisers agree to about 1e-5 relative
(the lme4 reference tests allow 1e-4 on standard deviations, so 2e-4 on variances);
R^2 and ICC, ratios of them, to 1e-4 absolute.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REPO, load_csv

import mixeff

REF = json.loads((REPO / "tests" / "references" / "after" / "r2_icc.json").read_text())
MODELS = REF["models"]

DATA = {
    "sleepstudy": ("sleepstudy.csv", ["Subject"]),
    "Dyestuff": ("Dyestuff.csv", ["Batch"]),
    "Dyestuff2": ("Dyestuff2.csv", ["Batch"]),
    "Penicillin": ("Penicillin.csv", ["plate", "sample"]),
    "Pastes": ("Pastes.csv", ["batch", "cask"]),
    "cake": ("cake.csv", ["replicate", "recipe", "temperature"]),
}
#: models whose random-effect variance insight computes as Nakagawa et al. define it
INSIGHT_EXACT = [n for n in MODELS if n not in ("sleepstudy_uncorr_reml",
                                               "sleepstudy_slope_only_fixed_intercept")]
_FITS: dict[str, mixeff.LmerFit] = {}


def _data(name: str) -> pd.DataFrame:
    if name == "plant":
        return mixeff.datasets.load_plant_growth()
    d = load_csv(*DATA[name])
    if name == "sleepstudy":   # the weights of make_references.R (R's 1-based codes)
        codes = pd.Categorical(d["Subject"], categories=sorted(d["Subject"].unique(),
                                                               key=int)).codes
        d["w"] = 1 + ((codes + 1) % 3) / 2
    return d


def fitted(name: str) -> mixeff.LmerFit:
    if name not in _FITS:
        m = MODELS[name]
        formula = m["r_formula"].replace("temp +", "C(temp) +")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mixeff.SingularFitWarning)
            _FITS[name] = mixeff.lmer(formula, _data(m["data"]), reml=m["reml"],
                                      weights="w" if m["weights"] else None)
    return _FITS[name]


def _nan(x):
    return np.nan if x is None else x


def _quiet(f):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return f()


@pytest.mark.parametrize("name", INSIGHT_EXACT)
def test_r2_and_icc_match_performance(name):
    fit, ref = fitted(name), MODELS[name]
    perf = ref["performance"]
    r2 = _quiet(fit.r2)
    icc = _quiet(fit.icc)
    assert list(r2.index) == ["conditional", "marginal"]
    assert list(icc.index) == ["adjusted", "unadjusted"]
    for ours, key in [(r2["conditional"], "R2_conditional"), (r2["marginal"], "R2_marginal"),
                      (icc["adjusted"], "ICC_adjusted"), (icc["unadjusted"], "ICC_unadjusted")]:
        want = _nan(perf[key])
        if np.isnan(want):
            assert np.isnan(ours), (key, ours)
        else:
            assert ours == pytest.approx(want, abs=1e-4), key
    v = r2.attrs["variance"]
    ins = ref["insight"]
    assert v.singular == ref["is_singular_1e5"]
    assert v.var_fixed == pytest.approx(ins["var_fixed"], rel=1e-6, abs=1e-9)
    assert v.var_residual == pytest.approx(ins["var_residual"], rel=2e-4)
    if not v.singular:
        assert v.var_random == pytest.approx(ins["var_random"], rel=2e-4)


#: singular fits whose optimum differs between lme4 and mixeff (mixeff's criterion is lower)
OTHER_OPTIMUM = ["plant_slopes_reml"]


@pytest.mark.parametrize("name", [n for n in MODELS if n not in OTHER_OPTIMUM])
def test_variance_parts_match_hand_computation(name):
    """Every term's mean of z_i' Sigma z_i, from lme4's Zt, also where insight differs."""
    fit, hand = fitted(name), MODELS[name]["hand"]
    v = _quiet(lambda: fit.r2().attrs["variance"])
    ours = [v.by_term.get(t, 0.0) for t in hand["terms"]]
    np.testing.assert_allclose(ours, hand["by_term"], rtol=2e-4, atol=1e-8)
    assert v.var_fixed == pytest.approx(hand["var_fixed"], rel=1e-6, abs=1e-9)
    if not v.singular:
        r2, icc = fit.r2(), fit.icc()
        assert r2["marginal"] == pytest.approx(hand["R2_marginal"], abs=1e-4)
        assert r2["conditional"] == pytest.approx(hand["R2_conditional"], abs=1e-4)
        assert icc["adjusted"] == pytest.approx(hand["ICC_adjusted"], abs=1e-4)
        assert icc["unadjusted"] == pytest.approx(hand["ICC_unadjusted"], abs=1e-4)


def test_insight_leaves_out_the_second_term_of_a_grouping_factor():
    """For (Days || Subject) insight's var.random is the intercept term alone."""
    fit, ref = fitted("sleepstudy_uncorr_reml"), MODELS["sleepstudy_uncorr_reml"]
    v = fit.r2().attrs["variance"]
    assert v.by_term["Subject"] == pytest.approx(ref["insight"]["var_random"], rel=2e-4)
    assert v.var_random == pytest.approx(v.by_term["Subject"] + v.by_term["Subject.1"])
    assert v.by_term["Subject.1"] > 1000   # the slope variance times mean(Days^2) = 28.5


def test_random_slopes_are_not_the_intercept_variance():
    """With random slopes the ICC is not the intercept variance over the total."""
    fit = fitted("sleepstudy_reml")
    vc = fit.varcorr()
    naive = vc["variance"][0] / (vc["variance"][0] + fit.sigma**2)
    icc = fit.icc()["adjusted"]
    assert icc == pytest.approx(MODELS["sleepstudy_reml"]["performance"]["ICC_adjusted"],
                                abs=1e-4)
    assert abs(icc - naive) > 0.2   # 0.72 against 0.48


def test_singular_fit_gives_nan_with_a_warning():
    fit = fitted("plant_slopes_reml")
    with pytest.warns(UserWarning, match="singular") as rec:
        r2 = fit.r2()
    assert rec[0].filename == __file__
    assert np.isnan(r2["conditional"])
    assert r2["marginal"] == pytest.approx(MODELS["plant_slopes_reml"]["performance"]
                                           ["R2_marginal"], abs=1e-4)
    with pytest.warns(UserWarning, match="singular"):
        assert fit.icc().isna().all()


def test_intercept_only_fixed_part_has_zero_marginal_r2():
    r2 = fitted("penicillin_reml").r2()
    assert r2["marginal"] == 0.0 and 0 < r2["conditional"] < 1
