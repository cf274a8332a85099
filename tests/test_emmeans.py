"""Estimated marginal means and contrasts against R's emmeans 1.8.4-1.

References: tests/references/after/emmeans.json, from tests/references/make_after_references.R
(lmerTest fits; ``emmeans(m, specs, by, at, lmer.df = "kenward-roger" | "satterthwaite")``
and ``summary(contrast(...), infer = c(TRUE, TRUE))``).

Tolerances are those of the lmerTest reference tests (the two optimisers' optima differ
in the last digits): estimates within 1e-4 of their SE, SE within 1e-4 relative, df
within 1e-3 relative, t ratios within 1e-4 relative (1e-8 absolute for contrasts that
are zero up to rounding); p values within 1e-3 relative (or 1e-8 absolute: R's ptukey
returns 0 below about 1e-14); confidence limits within 1e-4 of the SE, except with
"dunnettx", whose quantile emmeans finds by uniroot(tol = 5e-4): within 5e-4 of the SE.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REPO, load_csv

import mixeff
from mixeff import DataError

REF = json.loads((REPO / "tests" / "references" / "after" / "emmeans.json").read_text())
FORMULAS = {
    "plant": "height ~ week * C(temp) + (1 | plant_id)",
    "cake": "angle ~ recipe * temperature + (1 | recipe:replicate)",
    "sleep": "Reaction ~ Days + phase + (Days | Subject)",
    "plant_log": "height ~ np.log(week + 1) * C(temp) + (1 | plant_id)",
}
_FITS: dict[str, mixeff.LmerFit] = {}


def fitted(model: str) -> mixeff.LmerFit:
    if model not in _FITS:
        if model in ("plant", "plant_log"):
            d = mixeff.datasets.load_plant_growth()
        elif model == "cake":
            d = load_csv("cake.csv", ["replicate", "recipe", "temperature"])
        else:
            d = load_csv("sleepstudy.csv", ["Subject"])
            d["phase"] = np.where(d["Days"] >= 5, "late", "early")
        _FITS[model] = mixeff.lmer(FORMULAS[model], d)
    return _FITS[model]


def _ddf(name: str) -> str:
    return {"kenward-roger": "Kenward-Roger", "satterthwaite": "Satterthwaite"}[name]


def _case_id(c: dict) -> str:
    by = f"|{'*'.join(c['by'])}" if c["by"] else ""
    at = f"@{c['at']}" if c["at"] else ""
    return f"{c['model']}:{'*'.join(c['specs'])}{by}{at}:{c['lmer_df']}"


def _emm(case: dict):
    at = case["at"]
    return fitted(case["model"]).emmeans(case["specs"], by=case["by"], at=at,
                                         ddf=_ddf(case["lmer_df"]))


def _check_inference(ours: pd.DataFrame, theirs: dict, est: str, ci_tol: float = 1e-4):
    se = np.asarray(theirs["SE"], float)
    np.testing.assert_allclose(ours[est], theirs[est], rtol=0, atol=1e-4 * se.min())
    np.testing.assert_allclose(ours["SE"], se, rtol=1e-4)
    np.testing.assert_allclose(ours["df"], theirs["df"], rtol=1e-3)
    np.testing.assert_allclose(ours["lower.CL"], theirs["lower.CL"], rtol=0,
                               atol=ci_tol * se.max())
    np.testing.assert_allclose(ours["upper.CL"], theirs["upper.CL"], rtol=0,
                               atol=ci_tol * se.max())


@pytest.mark.parametrize("case", REF["cases"], ids=_case_id)
def test_emmeans_match_r(case):
    emm = _emm(case)
    theirs = case["emmeans"]
    tab = emm.table
    assert list(tab.columns) == list(theirs)
    assert len(tab) == len(theirs["emmean"])
    for v in case["specs"] + (case["by"] or []):
        got = [str(x) if not isinstance(x, float) else f"{x:g}" for x in tab[v]]
        want = [str(x) if not isinstance(x, float) else f"{x:g}" for x in theirs[v]]
        assert got == want, v
    _check_inference(tab, theirs, "emmean")


CONTRAST_CASES = [(c, i) for c in REF["cases"] for i in range(len(c["contrasts"]))]


@pytest.mark.parametrize("case,i", CONTRAST_CASES,
                         ids=[f"{_case_id(c)}:{c['contrasts'][i]['method']}:"
                              f"{c['contrasts'][i]['adjust']}" for c, i in CONTRAST_CASES])
def test_contrasts_match_r(case, i):
    spec = case["contrasts"][i]
    emm = _emm(case)
    method = spec["coef"] if spec["method"] == "custom" else spec["method"]
    ours = emm.contrast(method, adjust=spec["adjust"])
    theirs = spec["table"]
    assert list(ours["contrast"]) == theirs["contrast"]
    assert ours.attrs["adjust"] == spec["adjust"]
    _check_inference(ours, theirs, "estimate",
                     ci_tol=5e-4 if spec["adjust"] == "dunnettx" else 1e-4)
    np.testing.assert_allclose(ours["t.ratio"], theirs["t.ratio"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(ours["p.value"], theirs["p.value"], rtol=1e-3, atol=1e-8)


def test_default_adjustments_are_emmeans():
    emm = fitted("plant").emmeans("temp")
    assert emm.ddf == "Kenward-Roger"
    assert emm.pairs().attrs["adjust"] == "tukey"
    assert emm.contrast("trt.vs.ctrl").attrs["adjust"] == "dunnettx"
    custom = emm.contrast({"a": [1, -1, 0]})
    assert custom.attrs["adjust"] == "none"
    sidak = emm.contrast({"a": [1, -1, 0], "b": [0, 1, -1]}, adjust="tukey")
    assert sidak.attrs["adjust"] == "sidak" and sidak.attrs["notes"]
    p = emm.contrast({"a": [1, -1, 0], "b": [0, 1, -1]}, adjust="none")["p.value"]
    np.testing.assert_allclose(sidak["p.value"], 1 - (1 - p) ** 2, rtol=1e-12)


def test_pairs_equal_contest_of_the_differences():
    """A pairwise contrast is l' beta with l the difference of the EMMs' rows of L."""
    fit = fitted("cake")
    emm = fit.emmeans("recipe", ddf="Satterthwaite")
    L = emm.L.to_numpy()
    row = fit.contest(L[0] - L[1], joint=False)
    got = emm.pairs(adjust="none").iloc[0]
    assert got["estimate"] == pytest.approx(row["Estimate"].iloc[0], rel=1e-12)
    assert got["df"] == pytest.approx(row["df"].iloc[0], rel=1e-12)
    assert got["p.value"] == pytest.approx(row["Pr(>|t|)"].iloc[0], rel=1e-10)
    # equal weights over temperature's six levels
    assert L[0][fit.design.xnames.index("temperature[T.185]")] == pytest.approx(1 / 6)


def test_at_a_covariate_value_and_ml_default():
    fit = fitted("plant")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mixeff.SingularFitWarning)
        ml = fit.refit(reml=False)
    emm = ml.emmeans("temp", at={"week": 3}, data=fit.data)
    assert emm.ddf == "Satterthwaite"
    pred = ml.predict(pd.DataFrame({"week": [3, 3, 3], "temp": [10, 15, 20]}), re_form="~0")
    np.testing.assert_allclose(emm.table["emmean"], pred.to_numpy(), rtol=1e-12)
    asy = fit.emmeans("temp", ddf="asymptotic")
    assert np.isinf(asy.table["df"]).all()


def test_bad_input_is_a_data_error():
    fit = fitted("plant")
    with pytest.raises(DataError, match="not a variable"):
        fit.emmeans("colour")
    with pytest.raises(DataError, match="at= names"):
        fit.emmeans("temp", at={"day": 3})
    with pytest.raises(DataError, match="level"):
        fit.emmeans("temp", at={"temp": [12]})
    with pytest.raises(DataError, match="ddf"):
        fit.emmeans("temp", ddf="Welch")
    emm = fit.emmeans("temp")
    with pytest.raises(DataError, match="adjust"):
        emm.pairs(adjust="scheffe")
    with pytest.raises(DataError, match="3 coefficients"):
        emm.contrast({"a": [1, -1]})
    with pytest.raises(DataError, match="method"):
        emm.contrast("consec")


def test_printed_layout():
    emm = fitted("plant").emmeans("temp")
    text = str(emm)
    assert text.splitlines()[0].split() == ["temp", "emmean", "SE", "df", "lower.CL",
                                            "upper.CL"]
    assert "Degrees-of-freedom method: kenward-roger" in text
    assert "<table" in emm._repr_html_()


def test_specs_as_an_r_formula():
    fit = fitted("plant")
    a = fit.emmeans("~ temp | week", at={"week": [0, 7]}, ddf="Satterthwaite")
    b = fit.emmeans("temp", by="week", at={"week": [0, 7]}, ddf="Satterthwaite")
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.specs == ["temp"] and a.by == ["week"]
    c = fitted("cake").emmeans("~ recipe * temperature", ddf="Satterthwaite")
    assert c.specs == ["recipe", "temperature"] and len(c.table) == 18
    with pytest.raises(DataError, match="not both"):
        fit.emmeans("~ temp | week", by="week")
    with pytest.raises(DataError, match="not a column name"):
        fit.emmeans("~ log(temp)")


def test_large_models_default_to_asymptotic_df(monkeypatch):
    """emmeans' pbkrtest.limit / lmerTest.limit: above 3000 rows, z tests by default."""
    import mixeff._emmeans as em

    monkeypatch.setattr(em, "DF_LIMIT", 100)
    emm = fitted("plant").emmeans("temp")
    assert emm.ddf == "asymptotic" and np.isinf(emm.table["df"]).all()
    assert "exceeds 100" in str(emm)
    assert fitted("plant").emmeans("temp", ddf="Kenward-Roger").ddf == "Kenward-Roger"
