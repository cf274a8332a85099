"""mixeff.lm fits as first-class fits: influence, intervals, broom tables, plots, HTML.

References: tests/references/after/lm.json (make_after_references.R): R 4.2 ``lm`` with
broom 1.0.3's ``tidy(conf.int = TRUE)``, ``glance``, ``augment``, ``confint``,
``predict(interval = ...)``, ``hatvalues``, ``cooks.distance``. Least squares has a
closed form, so the numbers agree to rounding: 1e-10 relative (absolute for values
near zero).
"""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from refdata import REPO, load_csv

import mixeff
from mixeff import DataError

matplotlib.use("Agg")

REF = json.loads((REPO / "tests" / "references" / "after" / "lm.json").read_text())["cases"]
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _case(name: str):
    c = REF[name]
    if name == "plant":
        d = mixeff.datasets.load_plant_growth()
        fit = mixeff.lm("height ~ week * C(temp)", d)
        nd = pd.DataFrame({"week": c["newdata"]["week"],
                           "temp": [int(t) for t in c["newdata"]["temp"]]})
    else:
        d = load_csv("sleepstudy.csv", ["Subject"])
        codes = pd.Categorical(d["Subject"], categories=sorted(d["Subject"].unique(),
                                                               key=int)).codes
        d["w"] = 1 + ((codes + 1) % 3) / 2
        fit = mixeff.lm("Reaction ~ Days", d, weights="w")
        nd = pd.DataFrame({"Days": c["newdata"]["Days"]})
    return fit, d, nd, c


@pytest.mark.parametrize("name", list(REF))
def test_influence_matches_r(name):
    fit, _, _, c = _case(name)
    np.testing.assert_allclose(fit.hatvalues(), c["hatvalues"], **TOL)
    np.testing.assert_allclose(fit.cooks_distance(), c["cooks_distance"], **TOL)
    np.testing.assert_allclose(fit.residuals(type="pearson"), c["residuals_pearson"], **TOL)
    aug = fit.augment()
    for col, want in c["augment"].items():
        np.testing.assert_allclose(aug[col], want, **TOL, err_msg=col)


@pytest.mark.parametrize("name", list(REF))
def test_confint_and_tidy_match_r(name):
    fit, _, _, c = _case(name)
    ci = fit.confint()
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    np.testing.assert_allclose(ci.iloc[:, 0], c["confint"]["lower"], **TOL)
    np.testing.assert_allclose(ci.iloc[:, 1], c["confint"]["upper"], **TOL)
    tidy = fit.tidy(conf_int=True)
    want = c["tidy"]
    assert list(tidy.columns) == list(want)
    for col in want:
        if col != "term":
            np.testing.assert_allclose(tidy[col], want[col], rtol=1e-9, atol=1e-300,
                                       err_msg=col)
    g = fit.glance().iloc[0]
    for col, v in c["glance"].items():
        assert g[col] == pytest.approx(v[0], rel=1e-9), col


@pytest.mark.parametrize("name", list(REF))
def test_predict_with_intervals_matches_r(name):
    fit, _, nd, c = _case(name)
    conf = fit.predict(nd, interval="confidence", se_fit=True)
    for col, key in [("fit", "fit"), ("lwr", "lwr"), ("upr", "upr"), ("se_fit", "se_fit")]:
        np.testing.assert_allclose(conf[col], c["predict_confidence"][key], **TOL)
    pred = fit.predict(nd, interval="prediction")
    for col in ("fit", "lwr", "upr"):
        np.testing.assert_allclose(pred[col], c["predict_prediction"][col], **TOL)
    plain = fit.predict(nd)
    assert isinstance(plain, pd.Series)
    np.testing.assert_allclose(plain, c["predict_confidence"]["fit"], **TOL)
    np.testing.assert_allclose(fit.predict(), fit.fitted(), rtol=1e-14)


def test_bad_prediction_input():
    fit, _, nd, _ = _case("plant")
    with pytest.raises(DataError, match="interval"):
        fit.predict(nd, interval="tolerance")
    with pytest.raises(DataError, match="week"):
        fit.predict(pd.DataFrame({"temp": [10]}))
    with pytest.raises(DataError, match="not seen"):
        fit.predict(pd.DataFrame({"week": [1], "temp": [25]}))
    with pytest.raises(DataError, match="unknown coefficient"):
        fit.confint(parm="weeks")


def test_plots_and_html_work_for_lm(tmp_path):
    fit, d, _, _ = _case("plant")
    fig = mixeff.plots.diagnostics(fit)
    titles = [a.get_title() for a in fig.axes]
    assert titles[3].startswith("Residuals vs leverage")
    fig = mixeff.plots.diagnostics(fit, "week", d)
    assert fig.axes[3].get_title() == "Residuals vs week"
    for plot in (mixeff.plots.residuals_vs_fitted, mixeff.plots.qq_residuals,
                 mixeff.plots.scale_location, mixeff.plots.residuals_vs_leverage):
        plot(fit)
    files = mixeff.plots.save_all(fit, tmp_path, data=d)
    assert [p.name for p in files] == ["residuals_vs_fitted.png", "qq.png",
                                       "scale_location.png", "residuals_vs_leverage.png",
                                       "diagnostics.png", "residuals_vs_week.png",
                                       "residuals_vs_temp.png"]
    assert all(p.stat().st_size > 0 for p in files)
    html = fit._repr_html_()
    assert "Coefficients" in html and "C(temp)[T.15]" in html and "R-squared" in html
    scaled = fit.residuals(type="pearson", scaled=True)
    np.testing.assert_allclose(scaled * fit.sigma, fit.residuals(type="pearson"))
