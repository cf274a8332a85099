"""Likelihood-ratio comparisons: ``anova(m1, m2)`` (lme4) and ``ranova(m)`` (lmerTest).

References: ``tests/references/lme4/comparisons.json`` (three ``anova`` calls with their
tables and printed text) and the ``ranova`` rows of every model file. The synthetic data
set below (no random numbers: deterministic sequences) exercises the reduction rules;
its expected numbers come from lmerTest 3.1-3 / lme4 1.1-31 (R 4.2.2) on the same
values, written out as CSV.

Tolerances: our optimum may be slightly better than lme4's, never worse by more than
rounding (log-likelihoods at least lme4's minus 1e-6, relative 1e-6 otherwise);
likelihood-ratio statistics within 1e-4.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REF_DIR, load_csv
from test_lme4_reference import MODELS, fitted

import mixeff
from mixeff._compare import (
    REFIT_MESSAGE,
    _reductions,
    anova,
    format_anova,
    lm_loglik,
    r_deparse,
    ranova,
)
from mixeff._errors import MixeffError

COMPARISONS = json.loads((REF_DIR / "comparisons.json").read_text())["comparisons"]


def _py_formula(formula: str, data: str) -> str:
    """The plant data's ``temp`` is numeric in Python; R's factor is ``C(temp)``."""
    return formula.replace("temp", "C(temp)") if data == "plant" else formula


def _data(name: str) -> pd.DataFrame:
    if name == "plant":
        return mixeff.datasets.load_plant_growth()
    return load_csv("sleepstudy.csv", ["Subject"])


def _fit_pair(c: dict):
    data = _data(c["data"])
    small = mixeff.lmer(_py_formula(c["small_formula"], c["data"]), data, reml=c["small_reml"])
    big = mixeff.lmer(_py_formula(c["big_formula"], c["data"]), data, reml=c["big_reml"])
    small.data_name = big.data_name = c["data"]
    return small, big


def _check_loglik(ours: np.ndarray, theirs: np.ndarray) -> None:
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    assert np.all(ours >= theirs - 1e-6), (ours, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------
# anova(m1, m2)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", COMPARISONS, ids=[c["label"] for c in COMPARISONS])
def test_anova_table_matches_lme4(c):
    small, big = _fit_pair(c)
    # given in the wrong order on purpose: the table is sorted by npar
    tab = anova(m_big=big, m_small=small, refit=c["refit"])
    ref = pd.DataFrame(c["table"]).set_index("model")
    assert list(tab.index) == list(ref.index)
    assert list(tab.columns) == list(ref.columns)
    np.testing.assert_array_equal(tab["npar"].to_numpy(), ref["npar"].to_numpy())
    _check_loglik(tab["logLik"], ref["logLik"])
    for col in ("AIC", "BIC", "deviance"):
        np.testing.assert_allclose(tab[col], ref[col], rtol=1e-6)
    assert pd.isna(tab["Chisq"].iloc[0]) and pd.isna(tab["Df"].iloc[0])
    assert tab["Chisq"].iloc[1] == pytest.approx(ref["Chisq"].iloc[1], abs=1e-4)
    assert int(tab["Df"].iloc[1]) == int(ref["Df"].iloc[1])
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["Pr(>Chisq)"].iloc[1], rel=1e-3)
    assert tab.attrs["refitted"] == c["refitted"]
    heading = tab.attrs["heading"]
    assert (heading[0] == REFIT_MESSAGE) == c["refitted"]
    expected = [_py_formula(h, c["data"]) for h in c["heading"]]
    assert heading[-len(expected):] == expected


@pytest.mark.parametrize("c", COMPARISONS, ids=[c["label"] for c in COMPARISONS])
def test_anova_prints_as_r(c):
    small, big = _fit_pair(c)
    text = format_anova(anova(m_small=small, m_big=big, refit=c["refit"]))
    ours = text.splitlines()
    theirs = c["text"].splitlines()
    # the heading's formulas differ for the plant data (C(temp) in Python)
    theirs = [_py_formula(line, c["data"]) for line in theirs]
    assert ours == theirs


def test_anova_positional_names_and_sorting():
    c = COMPARISONS[0]
    small, big = _fit_pair(c)
    tab = anova(big, small)   # positional models are named by their formulas
    assert list(tab.index) == [small.formula, big.formula]
    assert tab.attrs["formulae"] == {small.formula: small.formula, big.formula: big.formula}
    same = anova(big, big.update(reml=False))   # equal formulas: named by position
    assert sorted(same.index) == ["m1", "m2"]


def test_anova_refit_false_keeps_reml_criteria():
    c = COMPARISONS[0]
    small, big = _fit_pair(c)
    tab = anova(small, big, refit=False)
    assert not tab.attrs["refitted"]
    np.testing.assert_allclose(tab["logLik"], [small.loglik, big.loglik], rtol=1e-12)
    np.testing.assert_allclose(tab["deviance"], [small.objective, big.objective], rtol=1e-12)


def test_anova_mixed_criteria_warn_without_refit():
    c = COMPARISONS[0]
    small, big = _fit_pair(c)
    with pytest.warns(UserWarning, match="some models fit with REML"):
        anova(small, big.refit(reml=False), refit=False)


def test_anova_ml_fits_are_not_refitted():
    c = COMPARISONS[0]
    small, big = _fit_pair(c)
    s_ml, b_ml = small.refit(reml=False), big.refit(reml=False)
    tab = anova(s_ml, b_ml)
    assert not tab.attrs["refitted"]
    assert REFIT_MESSAGE not in tab.attrs["heading"]
    ref = pd.DataFrame(c["table"]).set_index("model")
    _check_loglik(tab["logLik"], ref["logLik"])


def test_anova_different_rows_is_an_error():
    data = _data("sleepstudy")
    m1 = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data)
    m2 = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data.iloc[:170])
    with pytest.raises(MixeffError, match=r"small \(180 observations\), short \(170"):
        anova(small=m1, short=m2)


def test_anova_single_model_delegates_to_its_anova():
    fit, _ = fitted("plant_reml")
    tab = anova(fit)
    pd.testing.assert_frame_equal(tab, fit.anova())


def test_anova_needs_a_model():
    with pytest.raises(TypeError):
        anova()


def test_anova_equal_npar_has_no_test():
    data = _data("sleepstudy")
    m1 = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data, reml=False)
    m2 = mixeff.lmer("Reaction ~ 1 + (Days || Subject)", data, reml=False)
    tab = anova(m1, m2)
    assert int(tab["Df"].iloc[1]) == 0
    assert np.isnan(tab["Pr(>Chisq)"].iloc[1])


def test_public_export():
    assert mixeff.anova is anova


# --------------------------------------------------------------------------------------
# ranova(m)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_ranova_matches_lmertest(name):
    fit, ref = fitted(name)
    tab = ranova(fit)
    r = pd.DataFrame(ref["ranova"]).set_index("term")
    assert list(tab.index) == list(r.index)
    np.testing.assert_array_equal(tab["npar"].to_numpy(), r["npar"].to_numpy())
    _check_loglik(tab["logLik"], r["logLik"])
    np.testing.assert_allclose(tab["AIC"], r["AIC"], rtol=1e-6)
    np.testing.assert_allclose(tab["LRT"].to_numpy()[1:], r["LRT"].to_numpy(float)[1:],
                               rtol=0, atol=1e-4)
    np.testing.assert_array_equal(tab["Df"].to_numpy(float)[1:], r["Df"].to_numpy(float)[1:])
    p_ours = tab["Pr(>Chisq)"].to_numpy(float)[1:]
    p_ref = r["Pr(>Chisq)"].to_numpy(float)[1:]
    np.testing.assert_allclose(p_ours, p_ref, rtol=1e-3, atol=1e-300)


@pytest.mark.parametrize("name", [n for n in MODELS if n != "insteval_reml"])
def test_ranova_prints_as_lmertest(name):
    fit, ref = fitted(name)
    ours = format_anova(ranova(fit)).splitlines()
    theirs = ref["ranova_text"].splitlines()
    # lines 0-2: title, blank, "Model:"; line 3 is the formula (R reorders its terms)
    assert ours[:3] == theirs[:3]
    assert ours[4:] == theirs[4:]


def test_fit_method_calls_ranova():
    fit, _ = fitted("sleepstudy_reml")
    pd.testing.assert_frame_equal(fit.ranova(), ranova(fit))


def test_ranova_without_reduction_removes_the_term():
    # lmerTest: ranova(m, reduce.terms = FALSE) on Reaction ~ Days + (Days | Subject)
    fit, _ = fitted("sleepstudy_reml")
    tab = ranova(fit, reduce_terms=False)
    assert list(tab.index) == ["<none>", "(Days | Subject)"]
    assert list(tab["npar"]) == [6, 3]
    _check_loglik(tab["logLik"], [-871.814135979976, -946.831831736054])
    assert tab["LRT"].iloc[1] == pytest.approx(150.035391512157, abs=1e-4)
    assert tab.attrs["formulae"] == {"(Days | Subject)": "Reaction ~ Days"}


def test_lm_loglik_matches_r_lm():
    fit, _ = fitted("plant_reml")
    ref = json.loads((REF_DIR / "lm_plant.json").read_text())
    ll, npar = lm_loglik(fit.design, reml=False)
    assert ll == pytest.approx(ref["loglik"], rel=1e-10)
    assert npar == len(ref["coefficients"]) + 1


# -- reduction rules on a synthetic data set --------------------------------------------


def _frac(v: np.ndarray) -> np.ndarray:
    return v - np.floor(v)


def _normalish(k: int, shift: float) -> np.ndarray:
    """Box-Muller on two low-discrepancy sequences: deterministic, roughly normal."""
    i = np.arange(k)
    u1 = _frac(i * 0.7548776662 + shift) * 0.98 + 0.01
    u2 = _frac(i * 0.5698402910 + shift)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def synthetic() -> pd.DataFrame:
    """240 rows: 12 groups ``g`` of 20, 4 subgroups ``h`` of 5 in each, covariates."""
    i = np.arange(240)
    g = i // 20
    h = (i // 5) % 4
    x = _frac(i * 0.6180339887) * 4 - 2
    z = _frac(i * 0.4142135623 + 0.3) * 2 - 1
    b0, b1, b2 = _normalish(12, 0.1), 0.6 * _normalish(12, 0.2), 0.4 * _normalish(12, 0.3)
    c = 0.5 * _normalish(48, 0.4)
    e = 0.8 * _normalish(240, 0.5)
    y = 1 + 0.5 * x - 0.3 * z + b0[g] + b1[g] * x + b2[g] * z + c[g * 4 + h] + e
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{k:02d}" for k in g],
                         "h": [f"h{k}" for k in h]})


# formula, REML, reduce_terms -> rows (label, npar, logLik, LRT) from lmerTest
SYNTHETIC = [
    ("y ~ x + z + (x + z | g)", True, True, [
        ("<none>", 10, -351.561958794391, None),
        ("x in (x + z | g)", 7, -378.027762163254, 52.931606737726),
        ("z in (x + z | g)", 7, -363.818597314029, 24.513277039276)]),
    ("y ~ x + z + (x + z | g)", True, False, [
        ("<none>", 10, -351.561958794391, None),
        ("(x + z | g)", 4, -426.878896855767, 150.633876122752)]),
    ("y ~ x + (0 + x | g) + (1 | g:h)", True, True, [
        ("<none>", 5, -381.226071548557, None),
        ("x in (0 + x | g)", 5, -382.778085838520, 3.104028579927),
        ("(1 | g:h)", 4, -425.476723153208, 88.501303209303)]),
    ("y ~ x + (1 | g/h)", False, True, [
        ("<none>", 5, -380.488809453256, None),
        ("(1 | h:g)", 4, -383.656463869970, 6.335308833429),
        ("(1 | g)", 4, -392.616751722831, 24.255884539151)]),
]


@pytest.mark.parametrize("formula,reml,reduce,rows", SYNTHETIC,
                         ids=[f"{f} reduce={r}" for f, _, r, _ in SYNTHETIC])
def test_ranova_reduction_rules(formula, reml, reduce, rows):
    fit = mixeff.lmer(formula, synthetic(), reml=reml)
    tab = ranova(fit, reduce_terms=reduce)
    assert list(tab.index) == [r[0] for r in rows]
    assert list(tab["npar"]) == [r[1] for r in rows]
    _check_loglik(tab["logLik"], [r[2] for r in rows])
    np.testing.assert_allclose(tab["LRT"].to_numpy(float)[1:], [r[3] for r in rows[1:]],
                               atol=1e-4)
    # a zero-df comparison has no p value
    assert all(np.isnan(p) for p, d in zip(tab["Pr(>Chisq)"], tab["Df"].fillna(0), strict=True)
               if d == 0)


def test_reduction_labels_and_formulas():
    fit = mixeff.lmer("y ~ x + (0 + x | g) + (1 | g:h)", synthetic())
    tab = ranova(fit)
    assert tab.attrs["formulae"] == {"x in (0 + x | g)": "y ~ x + (1 | g) + (1 | g:h)",
                                     "(1 | g:h)": "y ~ x + (0 + x | g)"}
    assert tab.attrs["heading"][0] == "ANOVA-like table for random-effects: Single term deletions"


def test_reduction_rules_without_fitting():
    d = synthetic()
    from mixeff._design import build_design

    design = build_design("y ~ x * z + (x * z | g) + (1 + x || h) + (1 | g/h)", d)
    labels = [r.label for r in _reductions(design, True)]
    # interactions before their main effects (drop.scope); || terms kept in order;
    # nested terms innermost first
    assert labels == ["x:z in (x * z | g)", "(1 | h)", "x in (0 + x | h)", "(1 | h:g)",
                      "(1 | g)"]
    red = _reductions(design, True)[0]
    assert red.new_expr == "x + z"
    assert [design.terms[0].colnames[c] for c in red.keep_columns] == ["(Intercept)", "x", "z"]
    labels = [r.label for r in _reductions(design, False)]
    assert labels == ["(x * z | g)", "(1 | h)", "(0 + x | h)", "(1 | h:g)", "(1 | g)"]


def test_three_level_nesting_labels_as_lme4():
    d = synthetic()
    d["k"] = np.where(np.arange(len(d)) % 2 == 0, "a", "b")
    from mixeff._design import build_design

    design = build_design("y ~ x + (1 | g/h/k)", d)
    assert [r.label for r in _reductions(design, True)] == [
        "(1 | k:(h:g))", "(1 | h:g)", "(1 | g)"]


@pytest.mark.parametrize("text,expected", [
    ("0+x", "0 + x"),
    ("1 + Days", "1 + Days"),
    ("poly(x,2)", "poly(x, 2)"),
    ("x*z", "x * z"),
    ("a:b", "a:b"),
    ("-1+x", "-1 + x"),
    ("I(x^2)", "I(x^2)"),
])
def test_r_deparse(text, expected):
    assert r_deparse(text) == expected


def test_ranova_needs_random_terms():
    fit, _ = fitted("sleepstudy_intercept_reml")
    design = fit.design
    import dataclasses

    fit2 = type("F", (), {"design": dataclasses.replace(design, terms=[])})()
    with pytest.raises(MixeffError, match="at least one random-effects term"):
        ranova(fit2)


def test_no_warnings_in_ranova():
    fit, _ = fitted("pastes_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranova(fit)
