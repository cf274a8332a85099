"""ANOVA tables of mixed models compared with lmerTest 3.1-3 (and lme4 1.1-31).

* Stored references (``tests/references/lme4/*.json``): Type I, II, III Satterthwaite and
  Type III Kenward-Roger tables through our fits: F and sums of squares within 1e-4
  relative, DenDF within 1e-3, NumDF equal. With lme4's own estimates plugged in (fixef,
  vcov) the Wald F of our contrast matrices equals lmerTest's to 1e-7 relative: this checks
  the contrasts themselves rather than the fit.
* lmerTest's contrast matrices (``show_tests``) for designs that exercise its rules
  (three-way interaction with a covariate, sum coding, no intercept, ``w + a:w``,
  ``a + a:w``, ``a:b + a``, an empty cell), hard-coded from R below.
* Coding invariance of the Type III tests (fits at the same theta), printing, lme4's
  own table, argument handling.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_lme4_reference import MODELS, fitted, r_name

import mixeff
import mixeff._optimizer as _optimizer
from mixeff._anova import ANOVA_COLUMNS, LME4_COLUMNS, format_anova
from mixeff._api import fit_design
from mixeff._contrasts import (
    containment,
    doolittle,
    factor_codes,
    get_contrasts,
    term_layout,
    zapsmall,
)
from mixeff._design import build_design

TABLES = ["type1_satterthwaite", "type2_satterthwaite", "type3_satterthwaite",
          "type3_kenward_roger"]


def r_term(label: str) -> str:
    """formulaic term label -> R's (``week:C(temp)`` -> ``week:temp``)."""
    return ":".join(re.sub(r"^C\((\w+)\)$", r"\1", part) for part in label.split(":"))


def ours_for(fit, key: str) -> pd.DataFrame:
    ddf = "Kenward-Roger" if key.endswith("kenward_roger") else "Satterthwaite"
    if ddf == "Kenward-Roger":
        pytest.importorskip("mixeff._kenward_roger")
    return fit.anova(type=int(key[4]), ddf=ddf)


# --------------------------------------------------------------------------------------
# stored references
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", TABLES)
@pytest.mark.parametrize("name", list(MODELS))
def test_anova_table_matches_lmertest(name, key):
    fit, ref = fitted(name)
    rows = ref["anova"][key]
    if rows is None:  # ML fit (lmerTest refuses Kenward-Roger) or skipped (InstEval)
        pytest.skip(f"no lmerTest reference for {name} {key}")
    ours = ours_for(fit, key)
    assert list(ours.columns) == ANOVA_COLUMNS
    if not rows:  # intercept-only model
        assert len(ours) == 0
        return
    theirs = pd.DataFrame(rows).set_index("term")
    assert [r_term(t) for t in ours.index] == list(theirs.index)
    ours = ours.set_axis(theirs.index)
    np.testing.assert_array_equal(ours["NumDF"], theirs["NumDF"])
    for col in ["Sum Sq", "Mean Sq", "F value"]:
        np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-4, err_msg=col)
    np.testing.assert_allclose(ours["DenDF"], theirs["DenDF"], rtol=1e-3)
    np.testing.assert_allclose(ours["Pr(>F)"], theirs["Pr(>F)"], rtol=2e-3)


@pytest.mark.parametrize("key", TABLES[:3])
@pytest.mark.parametrize("name", list(MODELS))
def test_contrasts_give_lmertest_F_at_lme4_estimates(name, key):
    fit, ref = fitted(name)
    rows = ref["anova"][key]
    Ls = get_contrasts(fit.design, int(key[4]))
    assert [r_term(t) for t in Ls] == [r["term"] for r in rows]
    if not rows:
        return
    order = [ref["fixef_names"].index(r_name(c)) for c in fit.design.xnames]
    beta = np.asarray(ref["fixef"], dtype=float)[order]
    V = np.asarray(ref["vcov"], dtype=float)[np.ix_(order, order)]
    for L, row in zip(Ls.values(), rows, strict=True):
        Lb = L @ beta
        F = float(Lb @ np.linalg.solve(L @ V @ L.T, Lb)) / L.shape[0]
        assert L.shape[0] == row["NumDF"]
        assert F == pytest.approx(row["F value"], rel=1e-7)
        assert F * ref["sigma"] ** 2 == pytest.approx(row["Mean Sq"], rel=1e-7)


@pytest.mark.parametrize("name", list(MODELS))
def test_format_anova_prints_lmertests_table_as_r(name):
    """The printer on lmerTest's own numbers gives R's text exactly."""
    ref = fitted(name)[1]
    rows = ref["anova"]["type3_satterthwaite"]
    table = (pd.DataFrame(rows).set_index("term") if rows
             else pd.DataFrame(columns=["term", *ANOVA_COLUMNS]).set_index("term"))
    table = table[ANOVA_COLUMNS].astype(float)
    table.attrs["heading"] = "Type III Analysis of Variance Table with Satterthwaite's method"
    assert format_anova(table).rstrip("\n") == ref["anova_text"]


@pytest.mark.parametrize("name", ["cake_reml", "plant_reml", "sleepstudy_reml",
                                  "dyestuff_reml"])
def test_printed_table_of_our_fit(name):
    """Our table prints with R's layout (numbers agree to the fit's precision)."""
    fit, ref = fitted(name)
    a = fit.anova()
    a.index = [r_term(t) for t in a.index]
    ours, theirs = format_anova(a).splitlines(), ref["anova_text"].splitlines()
    assert len(ours) == len(theirs)
    assert ours[0] == theirs[0]
    for o, t in zip(ours[1:], theirs[1:], strict=True):
        if o.startswith("Signif.") or o == "---":
            assert o == t
            continue
        assert o.split()[0] == t.split()[0]  # row label / first column title
        assert o.rstrip().endswith("*") == t.rstrip().endswith("*")


# --------------------------------------------------------------------------------------
# lmerTest's contrast matrices (show_tests) on toy data
# --------------------------------------------------------------------------------------


def toy(empty: bool = False) -> pd.DataFrame:
    """Unbalanced toy data (R: ``i <- 0:59`` and the same arithmetic)."""
    i = np.arange(60)
    d = pd.DataFrame({"a": np.array(["a1", "a2", "a3"])[i % 3],
                      "b": np.where((i * 7) % 11 < 5, "b2", "b1"),
                      "w": ((i * 37) % 17) / 4, "g": [f"g{k}" for k in i % 6]})
    d["y"] = d.w + (i % 5) + ((i * 13) % 7) / 3
    if empty:  # no observation in the cell a3:b2
        d = d[~((d.a == "a3") & (d.b == "b2"))]
    return d


def sum_coded(formula: str) -> str:
    return (formula.replace("a *", "C(a, Sum) *").replace("b *", "C(b, Sum) *")
            .replace("* b +", "* C(b, Sum) +"))


# (data, R formula, coding, type, {term: rows}): show_tests(anova(m, type = type)) of
# m <- lmer(formula, d) with lmerTest 3.1-3, d$a, d$b, d$g factors; "sum" coding via
# options(contrasts = c("contr.sum", "contr.poly")). Printed with 10 significant digits.
SHOW_TESTS = [
    ("full", "y ~ a * b * w + (1 | g)", "treatment", 1, {
        "a": [
            [0, 1, -0.5, 0.075, 0, 0.5, -0.225, 1.9375, -1.025, 0.23125, 1.1375, -0.54375],
            [0, 0, 1, 0.05, 0.225, 0, 0.45, 0, 2.05, 0.3625, 0, 1.0875],
        ],
        "b": [
            [0, 0, 0, 1, 0.44576271186, 0.33898305085, 0.33559322034, 0.22881355932,
             0.22372881356, 2.1720338983, 0.77118644068, 0.81101694915],
        ],
        "w": [
            [0, 0, 0, 0, 1, 0.013191085801, 0.012584442151, 0.31625750121, 0.31480806665,
             0.44268979162, 0.17451550495, 0.16276214997],
        ],
        "a:b": [
            [0, 0, 0, 0, 0, 1, -0.51440974699, 0.56792153478, -0.44969252541, 0.0022570061406,
             2.2246558304, -1.2892660334],
            [0, 0, 0, 0, 0, 0, 1, -0.21514164876, 0.45217955603, 0.30388471178, -0.10115131579,
             2.3240243466],
        ],
        "a:w": [
            [0, 0, 0, 0, 0, 0, 0, 1, -0.45407710073, 0.048594593284, 0.47016147905,
             -0.19612719844],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0.01897336945, 0, 0.43192488263],
        ],
        "b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0.31762061954, 0.3118952868],
        ],
        "a:b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, -0.45707021011],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a * b * w + (1 | g)", "treatment", 2, {
        "a": [
            [0, 1, -0.43750767308, 0, 0, 0.36012883604, -0.13553491425, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0.029152427134, 0.34691697151, 0, 0, 0, 0, 0],
        ],
        "b": [
            [0, 0, 0, 1, 0, 0.32083187093, 0.27890202335, 0, 0, 0, 0, 0],
        ],
        "w": [
            [0, 0, 0, 0, 1, 0, 0, 0.31293330729, 0.31198125183, 0.43677375256, 0.1471291866,
             0.13475246558],
        ],
        "a:b": [
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ],
        "a:w": [
            [0, 0, 0, 0, 0, 0, 0, 1, -0.45471676202, 0, 0.45473068904, -0.21155612335],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, -0.0060263333594, 0.42600717812],
        ],
        "b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0.31762061954, 0.3118952868],
        ],
        "a:b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a * b * w + (1 | g)", "treatment", 3, {
        "a": [
            [0, 1, 0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 0.5, 0, 0, 0, 0, 0],
        ],
        "b": [
            [0, 0, 0, 1, 0, 0.3333333, 0.3333333, 0, 0, 0, 0, 0],
        ],
        "w": [
            [0, 0, 0, 0, 1, 0, 0, 0.3333333, 0.3333333, 0.5, 0.1666667, 0.1666667],
        ],
        "a:b": [
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ],
        "a:w": [
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0.5, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0.5],
        ],
        "b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0.3333333, 0.3333333],
        ],
        "a:b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a * b + (1 | g)", "sum", 3, {
        "a": [
            [0, -1, 1, 0, 0, 0],
            [0, -2, -1, 0, 0, 0],
        ],
        "b": [
            [0, 0, 0, -2, -2.0000000012e-07, 0],
        ],
        "a:b": [
            [0, 0, 0, 0, 2, -2],
            [0, 0, 0, 0, 4, 2],
        ],
    }),
    ("full", "y ~ 0 + a * b + (1 | g)", "treatment", 2, {
        "a": [
            [1, -0.16806722689, -0.1512605042, 0, -0.16806722689, -0.1512605042],
            [0, 1, -0.23936170213, 0, 0.3670212766, -0.23936170213],
            [0, 0, 1, 0, -0.15254237288, 0.29898305085],
        ],
        "b": [
            [0, 0, 0, 1, 0.33898305085, 0.33559322034],
        ],
        "a:b": [
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ 0 + a * b + (1 | g)", "treatment", 3, {
        "a": [
            [1, 0, 0, 0, -0.1666667, -0.1666667],
            [0, 1, 0, 0, 0.3333333, -0.1666667],
            [0, 0, 1, 0, -0.1666667, 0.3333333],
        ],
        "b": [
            [0, 0, 0, 1, 0.3333333, 0.3333333],
        ],
        "a:b": [
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ w + a:w + (1 | g)", "treatment", 2, {
        "w": [
            [0, 1, 0, 0],
        ],
        "w:a": [
            [0, 0, 1, 0],
            [0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ w + a:w + (1 | g)", "treatment", 3, {
        "w": [
            [0, 1, 0, 0],
        ],
        "w:a": [
            [0, 0, 1, 0],
            [0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a + a:w + (1 | g)", "treatment", 3, {
        "a": [
            [0, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
        ],
        "a:w": [
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a:b + a + (1 | g)", "treatment", 2, {
        "a": [
            [0, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
        ],
        "a:b": [
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
    }),
    ("full", "y ~ a:b + a + (1 | g)", "treatment", 3, {
        "a": [
            [0, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
        ],
        "a:b": [
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
    }),
    ("empty", "y ~ a * b + (1 | g)", "treatment", 3, {
        "a": [
            [0, 1, 0, 0, 0.5],
            [0, 0, 1, 0, 0.25],
        ],
        "b": [
            [0, 0, 0, 1, 0.5],
        ],
        "a:b": [
            [0, 0, 0, 0, 1],
        ],
    }),
    ("empty", "y ~ a * b * w + (1 | g)", "sum", 3, {
        "a": [
            [0, -1, 1, 0, 0, 0, 0, 0, 0, 0],
            [0, -2, -1, 0, 0, -1.5, 0, 0, 0, 0],
        ],
        "b": [
            [0, 0, 0, -2, 0, -1, 0, 0, 0, 0],
        ],
        "w": [
            [0, 0, 0, 0, 1, 0, 0.1142856, 0.1142857, 0.0857142, -0.3428574],
        ],
        "a:b": [
            [0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
        ],
        "a:w": [
            [0, 0, 0, 0, 0, 0, -1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, -2, -1, 0, -1.5],
        ],
        "b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, -2, -1],
        ],
        "a:b:w": [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ],
    }),
]


@pytest.mark.parametrize("case", SHOW_TESTS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]}")
def test_contrast_matrices_equal_lmertests(case):
    data, formula, coding, ty, expected = case
    if coding == "sum":
        formula = sum_coded(formula)
    design = build_design(formula, toy(empty=data == "empty"))
    Ls = get_contrasts(design, ty)
    def variables(label: str) -> set[str]:  # R orders w:a where formulaic has a:w
        return set(r_term(label.replace("C(a, Sum)", "a").replace("C(b, Sum)", "b")).split(":"))

    assert [variables(t) for t in Ls] == [variables(t) for t in expected]
    for L, rows in zip(Ls.values(), expected.values(), strict=True):
        np.testing.assert_allclose(L, np.array(rows, dtype=float), rtol=1e-9, atol=1e-9)


def test_empty_cell_is_reported():
    msgs: list[str] = []
    get_contrasts(build_design("y ~ a * b + (1 | g)", toy(empty=True)), 3, msgs)
    assert msgs == ["Missing cells for: a[a3]:b[b2]. Interpret type III hypotheses with care."]
    msgs = []
    get_contrasts(build_design("y ~ a * b + (1 | g)", toy()), 3, msgs)
    assert msgs == []


def test_rank_deficient_fit_gives_a_table():
    fit = mixeff.lmer("y ~ a * b + (1 | g)", toy(empty=True))
    assert fit.design.dropped_xnames == ["a[T.a3]:b[T.b2]"]
    for ty in (1, 2, 3):
        a = fit.anova(type=ty)
        assert list(a.index) == ["a", "b", "a:b"]
        assert list(a["NumDF"]) == [2, 1, 1]
        assert np.isfinite(a.to_numpy()).all()


def test_term_without_columns_gets_a_missing_row_at_the_end():
    d = toy()
    d["w2"] = 2 * d["w"]
    fit = mixeff.lmer("y ~ w2 + a + w + (1 | g)", d)
    assert fit.design.dropped_xnames == ["w"]
    a = fit.anova(type=1)
    assert list(a.index) == ["w2", "a", "w"]
    assert a.loc["w"].isna().all()
    assert np.isfinite(a.loc[["w2", "a"]].to_numpy()).all()


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------


def test_doolittle_as_lmertest():
    x = np.array([[4.0, 2.0, 2.0], [2.0, 5.0, 1.0], [2.0, 1.0, 6.0]])
    L, U = doolittle(x)
    np.testing.assert_allclose(L @ U, x, atol=1e-12)
    np.testing.assert_allclose(np.diag(L), 1.0)
    assert np.allclose(np.triu(L, 1), 0) and np.allclose(np.tril(U, -1), 0)
    # a zero pivot zeroes its column of L (lmerTest's eps rule)
    L, U = doolittle(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    assert L[2, 1] == 0 and U[1, 1] == 0


def test_zapsmall_as_r():
    # R: zapsmall(c(2, 1/3, 1e-12)) and zapsmall(c(1000, 1/3))
    np.testing.assert_array_equal(zapsmall(np.array([2, 1 / 3, 1e-12])), [2, 0.3333333, 0])
    np.testing.assert_array_equal(zapsmall(np.array([1000, 1 / 3])), [1000, 0.3333])


def test_containment_follows_r_factor_codes():
    lay = term_layout(build_design("y ~ w + a:w + (1 | g)", toy()))
    assert factor_codes(lay)["a:w"] == {"a": 1, "w": 2}
    assert containment(lay) == {"w": [], "a:w": []}  # w is coded 2 in a:w
    lay = term_layout(build_design("y ~ a * b * w + (1 | g)", toy()))
    cont = containment(lay)
    assert cont["a"] == ["a:b"] and cont["w"] == ["a:w", "b:w", "a:b:w"]
    assert cont["a:w"] == ["a:b:w"] and cont["a:b:w"] == []


# --------------------------------------------------------------------------------------
# coding invariance
# --------------------------------------------------------------------------------------


def refit_at(formula: str, data: pd.DataFrame, theta: np.ndarray, monkeypatch):
    """Fit ``formula`` with theta fixed (no optimisation), to compare codings exactly."""

    def fixed(obj, theta0, lower, method=None, **kw):
        return _optimizer.OptSummary(method="fixed", theta0=np.asarray(theta0),
                                     lower=np.asarray(lower),
                                     theta=np.asarray(theta, dtype=float).copy(),
                                     success=True)

    with monkeypatch.context() as m:
        m.setattr(_optimizer, "minimize_theta", fixed)
        return fit_design(build_design(formula, data))


PLANT = "height ~ week * {} + (1 | plant_id)"


@pytest.fixture(scope="module")
def plant_fit():
    return mixeff.lmer(PLANT.format("C(temp)"), mixeff.datasets.load_plant_growth())


CODINGS = ["C(temp, Sum)", "C(temp, Helmert)", "C(temp, contr.treatment(base=20))",
           "C(temp, Sum, levels=[15, 20, 10])"]


def on_treatment_fit(plant_fit, other, L: np.ndarray) -> np.ndarray:
    """A contrast on ``other``'s coefficients as one on ``plant_fit``'s: ``L M^{-1}``.

    ``X_other = X_treatment M`` (same column space), so ``L beta_other`` is
    ``L M^{-1} beta_treatment``: both hypotheses, with their bases, are then tested with
    one fit and one set of Satterthwaite derivatives.
    """
    M = np.linalg.lstsq(plant_fit.design.X, other.design.X, rcond=None)[0]
    return L @ np.linalg.inv(M)


@pytest.mark.parametrize("zap", [True, False])
@pytest.mark.parametrize("coding", CODINGS)
def test_type3_hypotheses_invariant_to_the_coding(plant_fit, coding, zap, monkeypatch):
    """Sum, Helmert, another reference level, reordered levels: the same tests to 1e-8.

    With lmerTest's rounding (``zap=True``) the week contrast of a coding with another
    reference level carries 0.3333333 where the treatment coding's carries the same
    rounded number on another parameter; its F moves by ~1e-7 (lmerTest too, see
    :func:`test_type3_and_level_order`), the other tests do not move.
    """
    other = refit_at(PLANT.format(coding), mixeff.datasets.load_plant_growth(),
                     plant_fit.theta, monkeypatch)
    L0 = get_contrasts(plant_fit.design, 3, zap=zap)
    L1 = get_contrasts(other.design, 3, zap=zap)
    assert len(L1) == 3 and list(L1)[0] == "week"
    new_base = "base=20" in coding or "levels" in coding
    for (k0, A), B in zip(L0.items(), L1.values(), strict=True):
        t0 = plant_fit.contest(A).iloc[0]
        t1 = plant_fit.contest(on_treatment_fit(plant_fit, other, B)).iloc[0]
        tol = 2e-7 if (zap and new_base and k0 == "week") else 1e-8
        assert t1["NumDF"] == t0["NumDF"]
        assert t1["F value"] == pytest.approx(t0["F value"], rel=tol)
        assert t1["DenDF"] == pytest.approx(t0["DenDF"], rel=tol)


@pytest.mark.parametrize("coding", CODINGS[:2])
def test_type3_table_invariant_to_the_coding(plant_fit, coding, monkeypatch):
    """Separate fits at the same theta: the same table (DenDF up to the numerical
    derivatives of the Satterthwaite method, which see another parametrisation)."""
    other = refit_at(PLANT.format(coding), mixeff.datasets.load_plant_growth(),
                     plant_fit.theta, monkeypatch)
    a0, a1 = plant_fit.anova(type=3), other.anova(type=3)
    np.testing.assert_allclose(a1["F value"], a0["F value"], rtol=1e-8)
    np.testing.assert_allclose(a1["Sum Sq"], a0["Sum Sq"], rtol=1e-8)
    np.testing.assert_allclose(a1["DenDF"], a0["DenDF"], rtol=1e-6)
    np.testing.assert_array_equal(a1["NumDF"], a0["NumDF"])


def test_type3_and_level_order(plant_fit, monkeypatch):
    """Other level order: invariant except lmerTest's own rounding of 1/3 to 0.3333333.

    lmerTest rounds its Type III contrasts to 7 significant digits (``zapsmall``); with
    the levels reordered, 1/3 enters the week contrast through a different coding and F
    of week moves by 8.798e-8 relative in lmerTest (R: 7501.91977891 -> 7501.92043892),
    and by the same amount here. Without the rounding the test is invariant.
    """
    other = refit_at(PLANT.format("C(temp, levels=[20, 10, 15])"),
                     mixeff.datasets.load_plant_growth(), plant_fit.theta, monkeypatch)
    a0, a1 = plant_fit.anova(type=3), other.anova(type=3)
    np.testing.assert_allclose(a1["F value"].iloc[1:], a0["F value"].iloc[1:], rtol=1e-8)
    shift = a1["F value"].iloc[0] / a0["F value"].iloc[0] - 1
    assert shift == pytest.approx(7501.92043892 / 7501.91977891 - 1, rel=1e-4)
    for f in (plant_fit, other):
        assert np.isclose(get_contrasts(f.design, 3, zap=False)["week"][0, 4], 1 / 3,
                          rtol=1e-14)
    F = [f.contest(get_contrasts(f.design, 3, zap=False)["week"])["F value"].iloc[0]
         for f in (plant_fit, other)]
    assert F[1] == pytest.approx(F[0], rel=1e-10)


# --------------------------------------------------------------------------------------
# lme4's table, arguments, headings
# --------------------------------------------------------------------------------------


def test_lme4_table():
    # R: anova(m, ddf = "lme4") printed with sprintf("%.17g")
    expected = {
        "plant_reml": ([1, 2, 2], [3108.035211428577, 29.315836603632334, 100.58297190475932],
                       [7501.9201201172245, 35.380079293530926, 121.38945818549318]),
        "cake_reml": ([2, 5, 10], [10.185860460960392, 2100.2999999999224, 205.97777777778202],
                      [0.24878878629220089, 20.519860441921761, 1.0061979846063458]),
    }
    for name, (npar, ss, F) in expected.items():
        fit, _ = fitted(name)
        a = fit.anova(ddf="lme4")
        assert list(a.columns) == LME4_COLUMNS
        assert a.attrs["heading"] == "Analysis of Variance Table"
        assert list(a["npar"]) == npar
        np.testing.assert_allclose(a["Sum Sq"], ss, rtol=1e-6)
        np.testing.assert_allclose(a["Mean Sq"], np.array(ss) / npar, rtol=1e-6)
        np.testing.assert_allclose(a["F value"], F, rtol=1e-6)
    fit, _ = fitted("cake_reml")
    assert format_anova(fit.anova(ddf="lme4")).splitlines() == [
        "Analysis of Variance Table",
        "                   npar  Sum Sq Mean Sq F value",
        "recipe                2   10.19    5.09  0.2488",
        "temperature           5 2100.30  420.06 20.5199",
        "recipe:temperature   10  205.98   20.60  1.0062",
    ]


def test_headings_and_arguments():
    fit, _ = fitted("cake_reml")
    assert fit.anova().attrs["heading"] == (
        "Type III Analysis of Variance Table with Satterthwaite's method")
    assert fit.anova(type="I").attrs["heading"] == (
        "Type I Analysis of Variance Table with Satterthwaite's method")
    a2 = fit.anova(type="II", ddf="satt")
    assert a2.attrs["heading"].startswith("Type II Analysis")
    hyp = a2.attrs["hypotheses"]
    assert list(hyp) == ["recipe", "temperature", "recipe:temperature"]
    assert list(hyp["recipe"].columns) == list(fit.design.xnames)
    with pytest.raises(ValueError, match="type"):
        fit.anova(type=4)
    with pytest.raises(ValueError, match="ddf"):
        fit.anova(ddf="Wald")
    ml, _ = fitted("plant_ml")
    with pytest.raises(ValueError, match="REML"):
        ml.anova(ddf="Kenward-Roger")


def test_intercept_only_model_gives_an_empty_table():
    fit, ref = fitted("dyestuff_reml")
    for ty in (1, 2, 3):
        a = fit.anova(type=ty)
        assert list(a.columns) == ANOVA_COLUMNS and len(a) == 0
    a = fit.anova(ddf="lme4")
    assert list(a.columns) == LME4_COLUMNS and len(a) == 0
