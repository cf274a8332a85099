"""``mixeff.lm`` compared with R 4.2.2's ``lm`` (stored reference ``lm_plant.json`` and
numbers printed by R with ``sprintf("%.17g")``, quoted below).

The teaching point of the plant data: ``lm`` sees 240 independent rows (234 residual df)
where there are 30 plants, so its standard error of the temperature effect is far too
small next to the mixed model's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refdata import load_reference
from test_lme4_reference import r_name

import mixeff
from mixeff._anova import format_anova

RTOL = 1e-8


@pytest.fixture(scope="module")
def plant() -> pd.DataFrame:
    d = mixeff.datasets.load_plant_growth()
    d["temp"] = d["temp"].astype(str)  # a factor, as in R (levels "10" < "15" < "20")
    return d


@pytest.fixture(scope="module")
def ref() -> dict:
    return load_reference("lm_plant")


@pytest.fixture(scope="module")
def fit(plant):
    return mixeff.lm("height ~ week * temp", plant, data_name="plant")


def test_coefficients_and_standard_errors(fit, ref):
    ours = fit.coef_table().rename(index=r_name)
    theirs = pd.DataFrame(ref["coef_table"]).set_index("term")
    assert list(ours.index) == ref["coef_names"] == list(theirs.index)
    np.testing.assert_allclose(fit.coef.to_numpy(), ref["coefficients"], rtol=RTOL)
    for col in ["Estimate", "Std. Error", "t value"]:
        np.testing.assert_allclose(ours[col], theirs[col], rtol=RTOL, err_msg=col)
    np.testing.assert_allclose(ours["Pr(>|t|)"], theirs["Pr(>|t|)"], rtol=1e-6)
    np.testing.assert_allclose(fit.vcov().to_numpy(), np.array(ref["vcov"]), rtol=RTOL)


def test_fit_statistics(fit, ref):
    assert fit.sigma == pytest.approx(ref["sigma"], rel=RTOL)
    assert fit.df_residual == ref["df_residual"] == 234
    assert fit.nobs == ref["nobs"] == 240
    assert fit.r_squared == pytest.approx(ref["r_squared"], rel=RTOL)
    assert fit.adj_r_squared == pytest.approx(ref["adj_r_squared"], rel=RTOL)
    fs = fit.fstatistic
    assert fs["value"] == pytest.approx(ref["fstatistic"]["value"], rel=RTOL)
    assert (fs["numdf"], fs["dendf"]) == (ref["fstatistic"]["numdf"],
                                          ref["fstatistic"]["dendf"])
    assert fs["p_value"] == pytest.approx(ref["fstatistic"]["p_value"], rel=1e-6)
    assert fit.loglik == pytest.approx(ref["loglik"], rel=RTOL)
    assert fit.aic == pytest.approx(ref["aic"], rel=RTOL)
    assert fit.bic == pytest.approx(ref["bic"], rel=RTOL)


def test_fitted_and_residuals(fit, plant):
    np.testing.assert_allclose(fit.fitted() + fit.residuals(), plant["height"], rtol=1e-12)
    assert list(fit.fitted().index) == list(plant.index)


def test_sequential_anova(fit, ref):
    ours = fit.anova()
    theirs = pd.DataFrame(ref["anova"]).set_index("term")
    assert list(ours.index) == ["week", "temp", "week:temp", "Residuals"] == list(theirs.index)
    np.testing.assert_array_equal(ours["Df"], theirs["Df"])
    for col in ["Sum Sq", "Mean Sq", "F value"]:
        np.testing.assert_allclose(ours[col].astype(float), theirs[col].astype(float),
                                   rtol=RTOL, err_msg=col)
    np.testing.assert_allclose(ours["Pr(>F)"].iloc[:-1], theirs["Pr(>F)"].iloc[:-1].astype(float),
                               rtol=1e-6)
    assert ours[["F value", "Pr(>F)"]].iloc[-1].isna().all()


def test_printed_summary_and_anova(fit, ref):
    assert fit.summary(rename=r_name).text() == ref["summary_text"] + "\n"
    assert format_anova(fit.anova()).rstrip("\n") == ref["anova_text"]


def test_pseudoreplication(plant):
    """240 rows, 30 plants: lm's residual df and its SE of temp are far too optimistic."""
    naive = mixeff.lm("height ~ week * temp", plant)
    mixed = mixeff.lmer("height ~ week * temp + (1 | plant_id)", plant)
    assert plant["plant_id"].nunique() == 30
    assert naive.df_residual == 234
    se_lm = naive.coef_table().loc["temp[T.15]", "Std. Error"]
    ct = mixed.coef_table()
    assert ct.loc["temp[T.15]", "Std. Error"] > 1.4 * se_lm
    assert ct.loc["temp[T.15]", "df"] < 40  # Satterthwaite: about the 30 plants, not 234


def test_weighted_fit_with_zero_weights(plant):
    # R: plant$w <- 1 + (plant$week %% 3) / 2; plant$w[1:3] <- 0
    #    m <- lm(height ~ week * temp, plant, weights = w)
    d = plant.copy()
    d["w"] = 1 + (d["week"] % 3) / 2
    d.loc[d.index[:3], "w"] = 0.0
    f = mixeff.lm("height ~ week * temp", d, weights="w", data_name="plant")
    np.testing.assert_allclose(f.coef, [4.0313735907072079, 1.1813923812777585,
                                        0.85050958686288503, 0.66082734387223052,
                                        0.40575014208672716, 0.71350247853532534], rtol=RTOL)
    np.testing.assert_allclose(f.coef_table()["Std. Error"],
                               [0.2273952228522125, 0.053310215366724631, 0.31477171846819796,
                                0.31477171846819796, 0.074424033146753776,
                                0.074424033146753776], rtol=RTOL)
    assert f.sigma == pytest.approx(1.2270313449168042, rel=RTOL)
    assert f.r_squared == pytest.approx(0.93133103060019651, rel=RTOL)
    assert f.adj_r_squared == pytest.approx(0.92984468927119646, rel=RTOL)
    assert f.fstatistic["value"] == pytest.approx(626.5929719028552, rel=RTOL)
    assert f.df_residual == 231
    assert f.loglik == pytest.approx(-343.24842280201665, rel=RTOL)
    assert f.aic == pytest.approx(700.4968456040333, rel=RTOL)
    assert f.bic == pytest.approx(724.77326659197922, rel=RTOL)
    a = f.anova()
    np.testing.assert_allclose(a["Sum Sq"], [3951.1435496506924, 626.9057936406748,
                                             138.9611007575771, 347.79496784532688], rtol=RTOL)
    np.testing.assert_allclose(a["F value"].iloc[:3], [2624.2879982530881, 208.19053137565641,
                                                       46.147899254936874], rtol=RTOL)
    np.testing.assert_allclose(a["Pr(>F)"].iloc[:3], [4.0498346185078335e-128,
                                                      2.0333151208648046e-52,
                                                      1.3752342300827971e-17], rtol=1e-6)
    lines = f.summary(rename=r_name).text().splitlines()
    assert lines[1:7] == [
        "Call:",
        "lm(formula = height ~ week * temp, data = plant, weights = w)",
        "",
        "Weighted Residuals:",
        "    Min      1Q  Median      3Q     Max ",
        "-3.6093 -0.7356 -0.0290  0.8110  2.8486 ",
    ]


def test_rank_deficient_fit(plant):
    # R: plant$w2 <- 2 * plant$week; m2 <- lm(height ~ week + temp + w2, plant)
    d = plant.copy()
    d["w2"] = 2 * d["week"]
    f = mixeff.lm("height ~ week + temp + w2", d, data_name="plant")
    assert f.aliased == ["w2"]
    np.testing.assert_allclose(f.coef.iloc[:4], [2.579750000000002, 1.5705714285714283,
                                                 2.3592499999999998, 3.2734999999999999],
                               rtol=RTOL)
    assert np.isnan(f.coef["w2"])
    assert f.vcov().loc["w2"].isna().all()
    assert f.loglik == pytest.approx(-389.37402242402595, rel=RTOL)
    assert f.aic == pytest.approx(788.7480448480519, rel=RTOL)
    text = f.summary(rename=r_name).text()
    assert "\n".join([
        "Coefficients: (1 not defined because of singularities)",
        "            Estimate Std. Error t value Pr(>|t|)    ",
        "(Intercept)  2.57975    0.18425   14.00   <2e-16 ***",
        "week         1.57057    0.03482   45.11   <2e-16 ***",
        "temp15       2.35925    0.19542   12.07   <2e-16 ***",
        "temp20       3.27350    0.19542   16.75   <2e-16 ***",
        "w2                NA         NA      NA       NA    ",
    ]) in text
    assert "Multiple R-squared:  0.9081,\tAdjusted R-squared:  0.907 \n" in text
    assert "F-statistic: 777.8 on 3 and 236 DF,  p-value: < 2.2e-16\n" in text
    assert format_anova(f.anova()).splitlines()[3:6] == [
        "           Df  Sum Sq Mean Sq F value    Pr(>F)    ",
        "week        1 3108.04 3108.04 2034.56 < 2.2e-16 ***",
        "temp        2  456.47  228.24  149.41 < 2.2e-16 ***",
    ]


def test_random_terms_are_refused(plant):
    with pytest.raises(mixeff.FormulaError, match="random-effects"):
        mixeff.lm("height ~ week + (1 | plant_id)", plant)


def test_intercept_only(plant):
    f = mixeff.lm("height ~ 1", plant)
    assert f.coef["(Intercept)"] == pytest.approx(plant["height"].mean(), rel=1e-12)
    assert f.fstatistic is None
    assert list(f.anova().index) == ["Residuals"]
    assert "F-statistic" not in f.summary().text()
