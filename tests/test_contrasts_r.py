"""Contrast codings, ordered factors, subset=, na_action=, R's names, and lmerTest's ANOVA
test cases (tests/test_compare_sas.R), against stored lme4 1.1-31 / lmerTest 3.1-3 output
(tests/references/make_contrast_references.R -> tests/references/lme4/contrasts.json).

Tolerances of the core issue: objective no more than 1e-6 above lme4's, fixed effects
within 1e-4 of their standard error, denominator df and F within 1e-3 relative.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from refdata import REF_DIR, REPO, load_csv, load_reference

import mixeff

LT_DIR = REPO / "tests" / "data" / "lmertest"


def _factor(s: pd.Series) -> pd.Series:
    """A numeric-coded factor column as text, missing values kept (R's factor())."""
    return s.map(lambda v: None if pd.isna(v) else str(int(v)) if isinstance(v, float)
                 else str(v)).astype(object)


def carrots() -> pd.DataFrame:
    df = pd.read_csv(LT_DIR / "carrots.csv")
    for c in ["Consumer", "Frequency", "Gender", "Age", "Homesize", "Work", "Income",
              "Product"]:
        df[c] = _factor(df[c])
    return df


def ham() -> pd.DataFrame:
    df = pd.read_csv(LT_DIR / "ham.csv")
    for c in ["Consumer", "Product", "Information", "Gender"]:
        df[c] = _factor(df[c])
    return df


def sas101() -> pd.DataFrame:
    df = pd.read_csv(LT_DIR / "sas101.csv")
    for c in ["a", "b", "f"]:
        df[c] = _factor(df[c])
    return df


def cake(ordered: bool) -> pd.DataFrame:
    df = load_csv("cake.csv", ["replicate", "recipe"])
    df["temperature"] = pd.Categorical(df["temperature"], ordered=ordered)
    return df


def sleepstudy() -> pd.DataFrame:
    return load_csv("sleepstudy.csv", ["Subject"])


_REF: dict = {}


def ref(name: str) -> dict:
    if not _REF:
        path = REF_DIR / "contrasts.json"
        if not path.exists():
            pytest.fail(f"reference {path} not generated")
        _REF.update(json.loads(path.read_text())["cases"])
    return _REF[name]


# name: (data, formula, keyword arguments); every fit with names="R"
SAS = {"Frequency": "contr.SAS", "Income": "contr.SAS"}
# lmerTest's test_anova.R: cake's first three temperatures, the diagonal cells removed
CAKE4 = "angle ~ recipe * temperature + (1|recipe:replicate)"
CAKE4_ROWS = ("temperature %in% c(175, 185, 195) & !((recipe == 'A' & temperature == 175) |"
              " (recipe == 'B' & temperature == 185) | (recipe == 'C' & temperature == 195))")
CASES = {
    "carrots_fi": (carrots, "Preference ~ Frequency*Income + (1|Consumer)", {}),
    "carrots_fi_sas": (carrots, "Preference ~ Frequency*Income + (1|Consumer)",
                       {"contrasts": SAS}),
    "carrots_fi_sum": (carrots, "Preference ~ Frequency*Income + (1|Consumer)",
                       {"contrasts": {"Frequency": "contr.sum", "Income": "contr.sum"}}),
    "carrots_fi_helmert_poly": (carrots, "Preference ~ Frequency*Income + (1|Consumer)",
                                {"contrasts": {"Frequency": "contr.helmert",
                                               "Income": "contr.poly"}}),
    "carrots_sas_big": (carrots, "Preference ~ sens2*Frequency*Income + (1+sens2|Consumer)",
                        {"contrasts": SAS}),
    "carrots_sens2_homesize": (carrots, "Preference ~ sens2*Homesize + (1+sens2|Consumer)",
                               {}),
    "carrots_three_numeric": (carrots, "Preference ~ sens2*Homesize*sens1 + (1|Product)", {}),
    "carrots_no_intercept": (carrots, "Preference ~ 0 + sens2 + Homesize + (1+sens2|Consumer)",
                             {}),
    "sas101_ab": (sas101, "y ~ a*b + (1|f)", {}),
    "sas101_ba": (sas101, "y ~ b*a + (1|f)", {}),
    "ham_product_age": (ham, "Informed.liking ~ Product*Age + (1|Consumer)", {}),
    "ham_three": (ham, "Informed.liking ~ Product*Information*Gender + (1|Product:Consumer)"
                  " + (1|Consumer)", {}),
    # lmerTest's tests/test_anova.R
    "cake_temp": (lambda: cake(True), "angle ~ recipe * temp + (1|recipe:replicate)", {}),
    "cake_temp_ml": (lambda: cake(True), "angle ~ recipe * temp + (1|recipe:replicate)",
                     {"reml": False}),
    "cake_temp_noint": (lambda: cake(True), "angle ~ 0 + recipe * temp + (1|recipe:replicate)",
                        {}),
    "cake_temp_sum": (lambda: cake(True), "angle ~ recipe * temp + (1|recipe:replicate)",
                      {"contrasts": {"recipe": "contr.sum"}}),
    "cake_unordered_types": (lambda: cake(False),
                             "angle ~ recipe * temperature + (1|recipe:replicate)", {}),
    "sleep_quadratic": (sleepstudy, "Reaction ~ Days + I(Days**2) + (Days | Subject)", {}),
    "cake4_treatment": (lambda: cake(False), CAKE4, {"subset": CAKE4_ROWS}),
    "cake4_sum_sas": (lambda: cake(False), CAKE4, {"subset": CAKE4_ROWS, "contrasts": {
        "recipe": "contr.sum", "temperature": "contr.SAS"}}),
    "cake4_sum_poly": (lambda: cake(False), CAKE4, {"subset": CAKE4_ROWS, "contrasts": {
        "recipe": "contr.sum", "temperature": "contr.poly"}}),
    "cake4_helmert_poly": (lambda: cake(False), CAKE4, {"subset": CAKE4_ROWS, "contrasts": {
        "recipe": "contr.helmert", "temperature": "contr.poly"}}),
    "cake_ordered_reml": (lambda: cake(True),
                          "angle ~ recipe * temperature + (1|recipe:replicate)", {}),
    "cake_ordered_ml": (lambda: cake(True),
                        "angle ~ recipe * temperature + (1|recipe:replicate)",
                        {"reml": False}),
    "carrots_ordered_ml": (lambda: carrots().assign(Frequency=lambda d: pd.Categorical(
        d["Frequency"], categories=["1", "2", "3", "4", "5"], ordered=True)),
        "Preference ~ Frequency + sens2 + (1|Consumer)", {"reml": False}),
    "cake_contrasts": (lambda: cake(False),
                       "angle ~ recipe * temperature + (1|recipe:replicate)",
                       {"contrasts": {"recipe": "contr.sum",
                                      "temperature": "contr.helmert"}}),
    "cake_contrasts_sas": (lambda: cake(False),
                           "angle ~ recipe + temperature + (1|recipe:replicate)",
                           {"contrasts": {"recipe": "contr.SAS",
                                          "temperature": "contr.poly"}}),
    "sleep_subset": (sleepstudy, "Reaction ~ Days + (Days|Subject)",
                     {"subset": "Days >= 2"}),
    "sleep_subset_subject": (sleepstudy, "Reaction ~ Days + (1|Subject)",
                             {"subset": 'Subject != "308" & Days < 8'}),
    "carrots_na_exclude": (carrots, "Preference ~ sens2 + Income + (1|Consumer)",
                           {"na_action": "exclude"}),
    "sleep_poly": (sleepstudy, "Reaction ~ poly(Days, 2) + (1|Subject)", {}),
}

_FITS: dict[str, mixeff.LmerFit] = {}


def fit_of(name: str) -> mixeff.LmerFit:
    if name not in _FITS:
        data, formula, kw = CASES[name]
        _FITS[name] = mixeff.lmer(formula, data(), names="R", **kw)
    return _FITS[name]


def rel(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


def check_fit(fit, r) -> None:
    assert fit.nobs == r["nobs"]
    assert fit.objective <= r["objective"] + 1e-6, (fit.objective, r["objective"])
    assert list(fit.fixef.index) == r["fixef_names"]
    se = np.asarray(r["std_errors"], dtype=float)
    dev = np.abs(fit.fixef.to_numpy() - np.asarray(r["fixef"], dtype=float)) / se
    assert dev.max() < 1e-4, dict(zip(r["fixef_names"], dev, strict=True))
    V = fit.vcov()
    assert list(V.index) == r["fixef_names"]
    np.testing.assert_allclose(np.sqrt(np.diag(V.to_numpy())), se, rtol=1e-4)


def check_anova(table: pd.DataFrame, rows: list[dict], what: str) -> None:
    assert list(table.index) == [row["term"] for row in rows], what
    for row in rows:
        ours = table.loc[row["term"]]
        assert ours["NumDF"] == row["NumDF"], (what, row["term"])
        assert rel(ours["DenDF"], row["DenDF"]) < 1e-3, (what, row["term"], ours["DenDF"])
        assert rel(ours["F value"], row["F value"]) < 1e-3, (what, row["term"],
                                                             ours["F value"], row["F value"])


@pytest.mark.parametrize("name", list(CASES))
def test_fit_matches_lme4(name):
    check_fit(fit_of(name), ref(name))


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("sleep")])
@pytest.mark.parametrize("type", [1, 2, 3])
def test_anova_matches_lmertest(name, type):
    check_anova(fit_of(name).anova(type=type), ref(name)["anova"][f"type{type}"],
                f"{name} type {type}")


# --------------------------------------------------------------------------------------
# item 2: Type III with empty cells does not depend on the coding
# --------------------------------------------------------------------------------------

CODINGS = [
    ("Frequency*Income", {}),
    ("Income*Frequency", {}),
    ("Frequency*Income", {"contrasts": SAS}),
    ("Frequency*Income", {"contrasts": {"Frequency": "contr.sum", "Income": "contr.helmert"}}),
    ("Frequency*Income", {"contrasts": {"Frequency": "contr.poly", "Income": "contr.SAS"}}),
    ("C(Frequency, Treatment('5'))*C(Income, Treatment('4'))", {}),
    ("C(Frequency, Sum)*C(Income, Sum)", {}),
]


@pytest.mark.parametrize("rhs,kw", CODINGS)
def test_type3_with_empty_cells_is_coding_free(rhs, kw):
    """lmerTest's F = 1.7189, 2.4267, 2.4425 on 4, 3, 6 df for every coding (mixeff
    gave 1.7745, 4.6212 and, with a last-level reference, 3 numerator df)."""
    fit = mixeff.lmer(f"Preference ~ {rhs} + (1|Consumer)", carrots(), names="R", **kw)
    table = fit.anova(type=3)
    table.index = [":".join(sorted(t.split(":"))) for t in table.index]
    rows = {row["term"]: row for row in ref("carrots_fi")["anova"]["type3"]}
    assert sorted(table.index) == sorted(rows)
    check_anova(table.loc[list(rows)], list(rows.values()), rhs)
    np.testing.assert_allclose(table.loc[list(rows), "F value"], [1.7189, 2.4267, 2.4425],
                               atol=5e-5)
    assert any("Missing cells" in m for m in table.attrs["messages"])


@pytest.mark.parametrize("name", ["cake4_sum_sas", "cake4_sum_poly", "cake4_helmert_poly"])
def test_type3_3x3_missing_diagonal_is_coding_free(name):
    """lmerTest's test_anova.R: Type III on cake4 is the same for every coding."""
    base = fit_of("cake4_treatment").anova()
    other = fit_of(name).anova()
    np.testing.assert_allclose(other.to_numpy(), base.to_numpy(), rtol=1e-6)


def test_type3_3x3_missing_diagonal_option():
    old = mixeff.set_options(contrasts=("contr.sum", "contr.poly"))
    try:
        fit = mixeff.lmer(CAKE4, cake(False), names="R", subset=CAKE4_ROWS)
    finally:
        mixeff.set_options(**old)
    check_fit(fit, ref("cake4_option_sum"))
    check_anova(fit.anova(), ref("cake4_option_sum")["anova"]["type3"], "cake4 option")


def test_lmertest_balanced_types_agree():
    """test_anova.R: balanced, factors only: Types I, II, III agree (ordered or not);
    with a covariate II = III != I."""
    for name in ("cake_ordered_reml", "cake_unordered_types"):
        f = fit_of(name)
        a1, a2, a3 = (f.anova(type=t).to_numpy() for t in (1, 2, 3))
        np.testing.assert_allclose(a1, a2, rtol=1e-4)
        np.testing.assert_allclose(a1, a3, rtol=1e-4)
    f = fit_of("cake_temp")
    np.testing.assert_allclose(f.anova(type=2).to_numpy(), f.anova(type=3).to_numpy(),
                               rtol=1e-4)
    assert not np.allclose(f.anova(type=1).to_numpy(), f.anova(type=2).to_numpy(),
                           rtol=1e-8)
    an = f.anova()
    np.testing.assert_allclose(an["NumDF"], [2, 1, 2])
    assert _all_equal(an["DenDF"], [254.0157612, 222, 222], 1e-4)
    an1 = fit_of("cake_ordered_reml").anova(type=1)
    np.testing.assert_allclose(an1["NumDF"], [2, 5, 10])
    assert _all_equal(an1["DenDF"], [42, 210, 210], 1e-4)
    # Type I equals lme4's sequential table (sums of squares, F)
    for name in ("cake_temp", "cake_temp_noint", "cake_temp_ml", "cake_temp_sum",
                 "cake_ordered_reml", "sleep_quadratic"):
        f = fit_of(name)
        a, b = f.anova(type=1), f.anova(ddf="lme4")
        cols = ["Sum Sq", "Mean Sq", "F value"]
        assert _all_equal(a[cols].to_numpy().ravel(), b.loc[a.index, cols].to_numpy().ravel(),
                          1e-4), name


def test_type3_missing_cells_message_names_the_empty_cells():
    table = fit_of("carrots_fi").anova()
    msg = [m for m in table.attrs["messages"] if m.startswith("Missing cells")][0]
    r = ref("carrots_fi")["anova_messages"][0]
    cells = r.split("Missing cells for: ")[1].split(".")[0].split(", ")
    ours = msg.split("Missing cells for: ")[1].split(". ")[0].split(", ")
    assert [c.replace("[", "").replace("]", "") for c in ours] == cells


def _all_equal(a, b, tol) -> bool:
    """R's all.equal(a, b, tolerance): mean relative difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.mean(np.abs(a - b)) / np.mean(np.abs(b))) < tol


def test_sas_proc_mixed_figures():
    """The SAS output quoted in lmerTest's tests/test_compare_sas.R (same tolerances)."""
    an = fit_of("carrots_sas_big").anova()
    assert _all_equal(an["Pr(>F)"], [2e-5, 0.15512, 0.06939, 0.08223, 0.52459, 0.03119,
                                      0.48344], 1e-4)
    assert list(np.round(an["DenDF"].to_numpy())) == [83] * 7
    ct = fit_of("carrots_sas_big").coef_table()
    assert _all_equal(ct["Pr(>|t|)"], [
        1e-10, 0.005061, 0.6865554, 0.342613, 0.129157, 0.088231, 0.846000, 0.354472,
        0.526318, 0.020646, 0.010188, 0.031242, 0.055356, 0.694689, 0.099382, 0.28547,
        0.977774, 0.855653, 0.427737, 0.321086, 0.417465, 0.204385, 0.784437, 0.681434,
        0.106180, 0.149122, 0.390870, 0.273686], 1e-4)


def test_lmertest_hard_coded_f_values():
    """The other F values lmerTest's test_compare_sas.R checks."""
    f = fit_of("carrots_no_intercept")
    assert _all_equal(f.anova(type=1)["F value"], [56.5394, 4169.87], 1e-5)
    assert _all_equal(f.anova(type=3)["F value"], [54.8206, 4169.87], 1e-5)
    an = fit_of("sas101_ab").anova(type=2)
    an2 = fit_of("sas101_ba").anova(type=2)
    np.testing.assert_allclose(an.to_numpy(), an2.iloc[[1, 0, 2]].to_numpy(), rtol=1e-5)
    assert _all_equal(an["F value"], [3.90131, 1.32753, 0.99565], 1e-5)
    assert _all_equal(fit_of("carrots_sens2_homesize").anova(type=2)["F value"],
                      [54.8361, 5.16138, 1.03035], 1e-4)
    assert _all_equal(fit_of("ham_product_age").anova(type=2)["F value"],
                      [2.48135, .005387, 1.48451], 1e-5)
    f3 = fit_of("carrots_three_numeric")
    assert _all_equal(f3.anova(type=2)["F value"], [16.4842, 14.0010, .526076, 1.18144,
                                                     .107570, .335177, 1.05946], 1e-4)
    assert _all_equal(f3.anova(type=3)["F value"], [16.9140, 14.0010, .481148, 1.18144,
                                                     .074201, .335177, 1.05946], 1e-4)


# --------------------------------------------------------------------------------------
# item 3: ordered factors
# --------------------------------------------------------------------------------------


def test_ordered_factor_gets_polynomial_contrasts():
    fit = fit_of("cake_ordered_ml")
    assert "temperature.L" in fit.fixef.index and "temperature^5" in fit.fixef.index
    f0 = mixeff.lmer("angle ~ recipe * temperature + (1|recipe:replicate)", cake(True),
                     reml=False)
    # formulaic's names stay the default: the coding is formulaic's C(x, contr.poly)
    assert "C(temperature, contr.poly)[.L]" in f0.fixef.index
    assert f0.design.codings == {"temperature": "contr.poly"}
    # the unordered column keeps treatment contrasts
    f1 = mixeff.lmer("angle ~ recipe * temperature + (1|recipe:replicate)", cake(False),
                     reml=False, names="R")
    assert "temperature185" in f1.fixef.index


def test_ordered_factor_predicts_with_its_coding():
    fit = fit_of("cake_ordered_reml")
    data = cake(True)
    np.testing.assert_allclose(fit.predict(data).to_numpy(), fit.fitted().to_numpy(),
                               rtol=1e-10)
    np.testing.assert_allclose(fit.fitted().to_numpy(), ref("cake_ordered_reml")["fitted"],
                               rtol=1e-6)
    # new data with the column not ordered (plain numbers) get the fit's coding too
    nd = data.assign(temperature=data["temperature"].astype(int))
    np.testing.assert_allclose(fit.predict(nd, re_form="NA").to_numpy(),
                               fit.predict(data, re_form="NA").to_numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------
# item 7: contrasts=, the package option, subset=, na_action=
# --------------------------------------------------------------------------------------


def test_package_contrasts_option():
    old = mixeff.set_options(contrasts=("contr.sum", "contr.poly"))
    try:
        fit = mixeff.lmer("angle ~ recipe * temperature + (1|recipe:replicate)",
                          cake(False), names="R")
    finally:
        mixeff.set_options(**old)
    assert mixeff.get_options()["contrasts"] == ("contr.treatment", "contr.poly")
    check_fit(fit, ref("cake_option_sum"))
    for t in (1, 2, 3):
        check_anova(fit.anova(type=t), ref("cake_option_sum")["anova"][f"type{t}"], "option")


def test_names_option():
    old = mixeff.set_options(names="R")
    try:
        fit = mixeff.lmer("angle ~ recipe + (1|recipe:replicate)", cake(False))
    finally:
        mixeff.set_options(**old)
    assert list(fit.fixef.index) == ["(Intercept)", "recipeB", "recipeC"]


@pytest.mark.parametrize("name,kw", [
    ("lm_cake_contrasts", {"contrasts": {"recipe": "contr.sum",
                                         "temperature": "contr.helmert"}}),
    ("lm_cake_ordered", {}),
])
def test_lm_contrasts(name, kw):
    r = ref(name)
    formula = "angle ~ recipe * temperature" if name == "lm_cake_contrasts" else \
        "angle ~ recipe + temperature"
    fit = mixeff.lm(formula, cake(name == "lm_cake_ordered"), names="R", **kw)
    assert list(fit.coef.index) == r["fixef_names"]
    se = np.asarray(r["std_errors"])
    assert np.max(np.abs(fit.coef.to_numpy() - r["fixef"]) / se) < 1e-8
    assert list(fit.coef_table().index) == r["fixef_names"]
    assert list(fit.vcov().index) == r["fixef_names"]
    ours = fit.anova()
    for row in r["anova"]["type1"]:
        assert ours.loc[row["term"], "Df"] == row["Df"]
        np.testing.assert_allclose(ours.loc[row["term"], "Sum Sq"], row["Sum Sq"], rtol=1e-9)


def test_subset_mask_and_expression_agree():
    data = sleepstudy()
    by_text = fit_of("sleep_subset")
    by_mask = mixeff.lmer("Reaction ~ Days + (Days|Subject)", data, names="R",
                          subset=data["Days"].to_numpy() >= 2)
    by_series = mixeff.lmer("Reaction ~ Days + (Days|Subject)", data,
                            subset=data["Days"] >= 2)
    assert by_mask.nobs == by_series.nobs == by_text.nobs == ref("sleep_subset")["nobs"]
    np.testing.assert_allclose(by_mask.fixef.to_numpy(), by_text.fixef.to_numpy(),
                               rtol=1e-8)
    np.testing.assert_allclose(by_series.objective, by_text.objective, rtol=1e-10)
    # rows outside the subset are not "dropped for missing values"
    assert not any("missing" in m for m in by_text.messages)


def test_lm_subset():
    r = ref("lm_sleep_subset")
    fit = mixeff.lm("Reaction ~ Days", sleepstudy(), subset="Days >= 2")
    assert fit.nobs == r["nobs"]
    np.testing.assert_allclose(fit.coef.to_numpy(), r["fixef"], rtol=1e-10)


@pytest.mark.parametrize("expr,expected", [
    ("Days >= 2", lambda d: d["Days"] >= 2),
    ("Days >= 2 & Subject != '308'", lambda d: (d["Days"] >= 2) & (d["Subject"] != "308")),
    ("!(Days < 2) | Days == 0", lambda d: (d["Days"] >= 2) | (d["Days"] == 0)),
    ("Subject %in% c('308', '309')", lambda d: d["Subject"].isin(["308", "309"])),
    ("Subject not in ['308', '309'] and 1 < Days <= 5",
     lambda d: ~d["Subject"].isin(["308", "309"]) & (d["Days"] > 1) & (d["Days"] <= 5)),
    ("Days == -1 or TRUE", lambda d: pd.Series(True, index=d.index)),
])
def test_subset_expressions(expr, expected):
    from mixeff._subset import subset_mask

    d = sleepstudy()
    np.testing.assert_array_equal(subset_mask(expr, d), expected(d).to_numpy())


def test_subset_missing_values_are_left_out():
    from mixeff._subset import subset_mask

    d = pd.DataFrame({"x": [1.0, np.nan, 3.0], "g": ["a", None, "b"]})
    np.testing.assert_array_equal(subset_mask("x != 1", d), [False, False, True])
    np.testing.assert_array_equal(subset_mask("!(x == 1)", d), [False, False, True])
    np.testing.assert_array_equal(subset_mask("x > 2 | g == 'a'", d), [True, False, True])
    np.testing.assert_array_equal(subset_mask("x > 5 & g == 'a'", d), [False, False, False])


@pytest.mark.parametrize("expr", [
    "__import__('os').system('true')", "Days.__class__", "open('x')", "Days + 1",
    "[d for d in Days]", "lambda: 1", "Days >= (2).real",
])
def test_subset_expression_never_runs_code(expr):
    with pytest.raises(mixeff.FormulaError, match="subset expression"):
        mixeff.lmer("Reaction ~ Days + (1|Subject)", sleepstudy(), subset=expr)


def test_subset_errors():
    d = sleepstudy()
    with pytest.raises(mixeff.DataError, match="not a column"):
        mixeff.lmer("Reaction ~ Days + (1|Subject)", d, subset="Dayz > 2")
    with pytest.raises(mixeff.DataError, match="shape"):
        mixeff.lmer("Reaction ~ Days + (1|Subject)", d, subset=np.ones(3, dtype=bool))
    with pytest.raises(mixeff.DataError, match="boolean"):
        mixeff.lmer("Reaction ~ Days + (1|Subject)", d, subset=np.arange(10))
    with pytest.raises(mixeff.DataError, match="no rows"):
        mixeff.lmer("Reaction ~ Days + (1|Subject)", d, subset="Days > 100")


def test_na_exclude_pads_fitted_and_residuals():
    r = ref("carrots_na_exclude")
    fit = fit_of("carrots_na_exclude")
    data = carrots()
    fv, res = fit.fitted(), fit.residuals()
    assert len(fv) == len(res) == len(data)
    assert list(fv.index) == list(data.index)
    expected_f = np.array([np.nan if v is None else v for v in r["fitted"]], dtype=float)
    expected_r = np.array([np.nan if v is None else v for v in r["residuals"]], dtype=float)
    np.testing.assert_array_equal(np.isnan(fv.to_numpy()), np.isnan(expected_f))
    ok = ~np.isnan(expected_f)
    np.testing.assert_allclose(fv.to_numpy()[ok], expected_f[ok], rtol=1e-6)
    np.testing.assert_allclose(res.to_numpy()[ok], expected_r[ok], rtol=1e-5, atol=1e-6)
    # summary and influence still work on the used rows
    text = str(fit.summary())
    assert "Scaled residuals" in text and "nan" not in text.lower()
    assert fit.cooks_distance().notna().sum() == fit.nobs
    omit = mixeff.lmer("Preference ~ sens2 + Income + (1|Consumer)", data)
    assert len(omit.fitted()) == fit.nobs


def test_lm_na_exclude():
    r = ref("lm_carrots_na_exclude")
    fit = mixeff.lm("Preference ~ sens2 + Income", carrots(), na_action="exclude")
    expected = np.array([np.nan if v is None else v for v in r["residuals"]], dtype=float)
    res = fit.residuals().to_numpy()
    np.testing.assert_array_equal(np.isnan(res), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(res[ok], expected[ok], rtol=1e-8, atol=1e-10)


def test_na_action_fail_and_bad_values():
    with pytest.raises(mixeff.DataError, match="Income"):
        mixeff.lmer("Preference ~ sens2 + Income + (1|Consumer)", carrots(),
                    na_action="fail")
    with pytest.raises(mixeff.DataError, match="na_action"):
        mixeff.lmer("Preference ~ sens2 + (1|Consumer)", carrots(), na_action="drop")


def test_contrasts_errors():
    d = cake(False)
    f = "angle ~ recipe + (1|recipe:replicate)"
    with pytest.raises(mixeff.DataError, match="contr.treatment"):
        mixeff.lmer(f, d, contrasts={"recipe": "contr.bogus"})
    with pytest.warns(UserWarning, match="'temp'.*ignored"):  # as R warns
        mixeff.lmer(f, d, contrasts={"temp": "contr.sum"})
    with pytest.raises(mixeff.DataError, match="not categorical"):
        mixeff.lmer("angle ~ recipe + temp + (1|recipe:replicate)", d,
                    contrasts={"temp": "contr.sum"})
    with pytest.raises(mixeff.DataError, match="two names"):
        mixeff.set_options(contrasts="contr.sum")


def test_contrasts_predict_uses_the_fit_coding():
    fit = fit_of("cake_contrasts")
    data = cake(False)
    np.testing.assert_allclose(fit.predict(data).to_numpy(), fit.fitted().to_numpy(),
                               rtol=1e-10)


# --------------------------------------------------------------------------------------
# item 8: R's names
# --------------------------------------------------------------------------------------


def test_r_names_of_plant_and_poly():
    plant = mixeff.datasets.load_plant_growth()
    r = load_reference("plant_reml")
    fit = mixeff.lmer("height ~ week * C(temp) + (1 | plant_id)", plant, names="R")
    assert list(fit.fixef.index) == r["fixef_names"]
    assert list(fit.coef_table().index) == r["fixef_names"]
    assert list(fit.vcov().columns) == r["fixef_names"]
    assert list(fit.anova().index) == [row["term"] for row in r["anova"]["type3_satterthwaite"]]
    assert list(fit_of("sleep_poly").fixef.index) == ["(Intercept)", "poly(Days, 2)1",
                                                       "poly(Days, 2)2"]
    # contest() takes a matrix named either way
    L = pd.DataFrame([[0, 0, 1, 0, 0, 0]], columns=r["fixef_names"])
    assert fit.contest(L)["NumDF"].iloc[0] == 1


def test_r_names_in_confint_and_summary():
    plant = mixeff.datasets.load_plant_growth()
    fit = mixeff.lmer("height ~ week * C(temp) + (1 | plant_id)", plant, names="R")
    ci = fit.confint(method="Wald")
    assert list(ci.index)[-6:] == load_reference("plant_reml")["fixef_names"]
    one = fit.confint(parm="temp15", method="Wald")
    assert list(one.index) == ["temp15"]
    np.testing.assert_allclose(one.to_numpy(), ci.loc[["temp15"]].to_numpy())
    assert "week:temp15" in str(fit.summary())


def test_default_names_stay_formulaic():
    plant = mixeff.datasets.load_plant_growth()
    fit = mixeff.lmer("height ~ week * C(temp) + (1 | plant_id)", plant)
    assert "C(temp)[T.15]" in fit.fixef.index
    with pytest.raises(mixeff.DataError, match="names"):
        mixeff.lmer("height ~ week + (1 | plant_id)", plant, names="S")
