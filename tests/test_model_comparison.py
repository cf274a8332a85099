"""Model comparison as R prints it: names, the ``Models:`` lines, AIC/BIC tables.

References: tests/references/after/model_comparison.json (make_after_references.R):
R's ``AIC(m1, m2, ...)``, ``BIC(...)`` of REML and ML fits and the printed
``anova(intercept, uncorr, slope)`` of lme4 1.1-31. The objective of a mixeff fit is
within 1e-6 of lme4's, so AIC and BIC are compared to 1e-5.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from refdata import REPO, load_csv

import mixeff
from mixeff._compare import REFIT_MESSAGE, AnovaTable

REF = json.loads((REPO / "tests" / "references" / "after" / "model_comparison.json")
                 .read_text())["sets"]


def _fits(name: str, reml: bool = True) -> list[mixeff.LmerFit]:
    s = REF[name]
    if name == "plant":
        d = mixeff.datasets.load_plant_growth()
        formulas = [f.replace("temp", "C(temp)") for f in s["formulas"]]
    else:
        d = load_csv("sleepstudy.csv", ["Subject"])
        formulas = s["formulas"]
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mixeff.SingularFitWarning)
        for nm, f in zip(s["names"], formulas, strict=True):
            m = mixeff.lmer(f, d, reml=reml, data_name=s["data"])
            m.name = nm
            out.append(m)
    return out


def test_anova_names_models_by_fit_name_and_prints_as_r():
    fits = _fits("sleep")
    tab = mixeff.anova(*fits)
    assert isinstance(tab, AnovaTable)
    assert list(tab.index) == REF["sleep"]["names"]
    lines = str(tab).splitlines()
    assert lines[0] == REFIT_MESSAGE
    assert lines[1:] == REF["sleep"]["anova_text"]
    assert repr(tab) == str(tab)


def test_keyword_names_give_the_same_text():
    a, b, c = _fits("sleep")
    for m in (a, b, c):
        m.name = None
    tab = mixeff.anova(intercept=a, uncorr=b, slope=c)
    assert str(tab).splitlines()[1:] == REF["sleep"]["anova_text"]


def test_unnamed_models_are_named_by_formula():
    a, b = _fits("plant")
    a.name = b.name = None
    tab = mixeff.anova(a, b)
    assert list(tab.index) == [a.formula, b.formula]
    heading = tab.attrs["heading"]
    assert heading[-2:] == [a.formula, b.formula]   # no "name: formula" repetition
    with pytest.raises(TypeError, match="duplicated model names"):
        mixeff.anova(a, **{a.formula: b})


def test_anova_html_has_the_heading_and_the_table():
    a, b = _fits("plant")
    html = mixeff.anova(m0=a, m1=b)._repr_html_()
    assert "refitting model(s) with ML (instead of REML)" in html
    assert "Models:<br>m0: height ~ week + C(temp) + (1 | plant_id)" in html
    assert "<table" in html and "Pr(&gt;Chisq)" in html
    # derived frames are plain DataFrames, with the numbers
    tab = mixeff.anova(m0=a, m1=b)
    sub = tab[["Chisq"]]
    assert type(sub).__name__ == "DataFrame" and not isinstance(sub, AnovaTable)
    assert sub["Chisq"].iloc[1] == pytest.approx(162.97, abs=0.01)


@pytest.mark.parametrize("name", list(REF))
@pytest.mark.parametrize("reml", [True, False])
def test_aic_table_matches_r(name, reml):
    fits = _fits(name, reml=reml)
    ref = REF[name]["reml" if reml else "ml"]
    tab = mixeff.aic_table(*fits)
    assert list(tab.index) == REF[name]["names"]
    assert list(tab["df"]) == ref["df"]
    np.testing.assert_allclose(tab["AIC"], ref["AIC"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(tab["BIC"], ref["BIC"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(tab["logLik"], ref["logLik"], rtol=0, atol=1e-5)
    assert tab["AIC_weight"].sum() == pytest.approx(1.0)
    assert tab["delta_AIC"].min() == 0.0


def test_aic_table_refit_by_ml():
    fits = _fits("sleep", reml=True)
    tab = mixeff.aic_table(*fits, refit=True)
    np.testing.assert_allclose(tab["AIC"], REF["sleep"]["ml"]["AIC"], rtol=0, atol=1e-5)
