"""The printed summary and the R formatting helpers behind it.

Expected strings were produced with R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31 and
lmerTest 3.1-3; each test cites the R call. The whole-summary tests use the stored
references in ``tests/references/lme4/*.json`` (``summary_text`` is
``print(summary(m))`` of the lmerTest fit), so R is not needed to run them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv

import mixeff
from mixeff._summary import (
    LmerSummary,
    abbreviate,
    cat_fill,
    deparse_lines,
    format_coefmat,
    format_matrix,
    format_named_vector,
    format_pval,
    format_r,
    quantile7,
    r_round,
    strwrap,
    zapsmall,
)

REF_DIR = Path(__file__).resolve().parent / "references" / "lme4"


# -- format() -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "digits", "nsmall", "expected"),
    [
        # format(c(612.1, 35.07), digits = 4)
        ([612.1, 35.07], 4, 0, ["612.10", " 35.07"]),
        # format(c(24.741, 5.922, 25.592), digits = 4)
        ([24.741, 5.922, 25.592], 4, 0, ["24.741", " 5.922", "25.592"]),
        # format(c(0.7786, 1.534e-05, 0.4142), digits = 4)
        ([0.7786, 1.534e-05, 0.4142], 4, 0, ["7.786e-01", "1.534e-05", "4.142e-01"]),
        # format(c(1, 0.07, 0.07, 1), nsmall = 2)
        ([1, 0.07, 0.07, 1], 7, 2, ["1.00", "0.07", "0.07", "1.00"]),
        # format(c(-0.138, 1), nsmall = 3)
        ([-0.138, 1.0], 7, 3, ["-0.138", " 1.000"]),
        # format(9996, digits = 3)  (rounding would widen: stays fixed)
        ([9996.0], 3, 0, ["9996"]),
        # format(c(123456789, 0.001), digits = 3)
        ([123456789.0, 0.001], 3, 0, ["1.23e+08", "1.00e-03"]),
        # format(0)
        ([0.0], 7, 0, ["0"]),
        # format(c(1763.9, 1783.1, -876, 1751.9, 174))
        ([1763.9, 1783.1, -876.0, 1751.9, 174.0], 7, 0,
         ["1763.9", "1783.1", "-876.0", "1751.9", " 174.0"]),
        # format(c(1e-300, 1), digits = 2)
        ([1e-300, 1.0], 2, 0, ["1e-300", " 1e+00"]),
        # format(c(NA, 1.5))
        ([np.nan, 1.5], 7, 0, [" NA", "1.5"]),
    ],
)
def test_format_r(x, digits, nsmall, expected):
    assert format_r(x, digits, nsmall) == expected


@pytest.mark.parametrize(
    ("x", "digits", "expected"),
    [
        # round(c(0.15, 0.25, 2.675, 1.005, -0.125, 2.5, 0.285), c(1, 1, 2, 2, 2, 0, 2))
        (0.15, 1, 0.1), (0.25, 1, 0.2), (2.675, 2, 2.67), (1.005, 2, 1.0),
        (-0.125, 2, -0.12), (2.5, 0, 2.0), (0.285, 2, 0.28), (3.5, 0, 4.0),
        # round(1743.6283, 1); round(-875.9969, 1); round(1234.5, -2)
        (1743.6283, 1, 1743.6), (-875.9969, 1, -876.0), (1234.5, -2, 1200.0),
    ],
)
def test_r_round(x, digits, expected):
    assert r_round(x, digits) == expected


def test_zapsmall_and_quantile():
    # zapsmall(c(1e-20, 1.5, -3.25), 5) -> 0.0000  1.5000 -3.2500
    assert list(zapsmall([1e-20, 1.5, -3.25], 5)) == [0.0, 1.5, -3.25]
    # quantile(c(3, 1, 4, 1, 5, 9, 2, 6)) -> 1.00 1.75 3.50 5.25 9.00
    assert np.allclose(quantile7([3, 1, 4, 1, 5, 9, 2, 6]), [1, 1.75, 3.5, 5.25, 9])


@pytest.mark.parametrize(
    ("pv", "digits", "expected"),
    [
        # format.pval(c(3.26e-06, 1e-20), digits = 3)
        ([3.26e-06, 1e-20], 3, ["3.26e-06", "< 2e-16"]),
        # format.pval(c(0.244, 1e-20), digits = 3)
        ([0.244, 1e-20], 3, ["0.244", "<2e-16"]),
        # format.pval(c(0.43403, 0.00834, 0.00041, 2.81e-08), digits = 3)
        ([0.434027, 0.008337, 0.000410, 2.81e-08], 3,
         ["0.43403", "0.00834", "0.00041", "2.81e-08"]),
        # format.pval(c(NA, 0.5))
        ([np.nan, 0.5], 5, ["NA", "0.5"]),
    ],
)
def test_format_pval(pv, digits, expected):
    assert format_pval(pv, digits) == expected


# -- abbreviate / strwrap / cat --------------------------------------------------------
NAMES = ["(Intercept)", "Days", "recipeB", "temperature185", "recipeB:temperature185",
         "C(temp)[T.15]", "week:C(temp)[T.15]", "week:C(temp)[T.20]", "a b c"]


def test_abbreviate():
    # abbreviate(NAMES, 6)
    assert abbreviate(NAMES, 6) == ["(Intr)", "Days", "recipB", "tmp185", "rB:185",
                                    "C()[T.", "w:C()[T.1", "w:C()[T.2", "a b c"]
    # abbreviate(NAMES, 11)
    assert abbreviate(NAMES, 11) == ["(Intercept)", "Days", "recipeB", "tempertr185",
                                     "rcpB:tmp185", "C(tm)[T.15]", "w:C()[T.15]",
                                     "w:C()[T.20]", "a b c"]
    # abbreviate(c("week", "temp15", "week:temp15", "week:temp20"), 6)
    assert abbreviate(["week", "temp15", "week:temp15", "week:temp20"], 6) == [
        "week", "temp15", "wk:t15", "wk:t20"]


def test_strwrap_and_cat():
    tit = ("Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's "
           "method")
    # strwrap(tit, 78, exdent = 2)
    assert strwrap(tit, 78, exdent=2) == [
        "Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's",
        "  method"]
    # cat(strrep("x", 69), "abcdefghij", fill = TRUE)
    assert cat_fill(["x" * 69, "abcdefghij"]) == "x" * 69 + " \nabcdefghij\n"
    # cat(strrep("x", 68), "abcdefghij", fill = TRUE)
    assert cat_fill(["x" * 68, "abcdefghij"]) == "x" * 68 + " abcdefghij\n"


def test_format_matrix_wraps_columns():
    # m <- matrix(sprintf("%-9s", letters[1:20]), 2, 10,
    #             dimnames = list(c("r1", "row2"), paste0("col", 1:10)))
    # print(m, quote = FALSE)
    letters = "abcdefghijklmnopqrst"
    cells = [[f"{letters[2 * j + i]:<9}" for j in range(10)] for i in range(2)]
    got = format_matrix(cells, ["r1", "row2"], [f"col{j + 1}" for j in range(10)])
    assert got.splitlines() == [
        "     col1      col2      col3      col4      col5      col6      col7     ",
        "r1   a         c         e         g         i         k         m        ",
        "row2 b         d         f         h         j         l         n        ",
        "     col8      col9      col10    ",
        "r1   o         q         s        ",
        "row2 p         r         t        ",
    ]


def test_format_named_vector_wraps():
    # x <- setNames(1:13 / 7, paste0("nm", 1:13)); print(x, digits = 4)
    x = np.arange(1, 14) / 7
    got = format_named_vector(format_r(x, 4), [f"nm{i}" for i in range(1, 14)])
    assert got.splitlines() == [
        "   nm1    nm2    nm3    nm4    nm5    nm6    nm7    nm8    nm9   nm10   nm11 ",
        "0.1429 0.2857 0.4286 0.5714 0.7143 0.8571 1.0000 1.1429 1.2857 1.4286 1.5714 ",
        "  nm12   nm13 ",
        "1.7143 1.8571 ",
    ]


# -- printCoefmat ---------------------------------------------------------------------
def test_format_coefmat_lmer():
    # printCoefmat(coef(summary(lme4::lmer(Reaction ~ Days + (Days | Subject),
    #                                       sleepstudy))), digits = 4)
    tab = pd.DataFrame({"Estimate": [251.405104848485, 10.467285959596],
                        "Std. Error": [6.82451602451407, 1.54578725902513],
                        "t value": [36.8383567106461, 6.77149604423439]},
                       index=["(Intercept)", "Days"])
    assert format_coefmat(tab, digits=4).splitlines() == [
        "            Estimate Std. Error t value",
        "(Intercept)  251.405      6.825  36.838",
        "Days          10.467      1.546   6.771",
    ]


def test_format_coefmat_pvalues_and_zero():
    # x <- cbind(Estimate = c(0.00001234, 2), "Std. Error" = c(1, 0.5),
    #            "t value" = c(0.00001234, 4), "Pr(>|t|)" = c(0.99999, 0.0001))
    # rownames(x) <- c("a", "b"); printCoefmat(x)
    tab = pd.DataFrame({"Estimate": [0.00001234, 2.0], "Std. Error": [1.0, 0.5],
                        "t value": [0.00001234, 4.0], "Pr(>|t|)": [0.99999, 0.0001]},
                       index=["a", "b"])
    assert format_coefmat(tab).splitlines() == [
        "   Estimate Std. Error t value Pr(>|t|)    ",
        "a 1.234e-05  1.000e+00       0    1e+00    ",
        "b 2.000e+00  5.000e-01       4    1e-04 ***",
        "---",
        "Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05"
        " \u2018.\u2019 0.1 \u2018 \u2019 1",
    ]


# -- whole summaries from stored references ---------------------------------------------
class _Opt(SimpleNamespace):
    pass


class RefFit:
    """A stand-in fit carrying lme4's own numbers from a reference JSON file."""

    def __init__(self, ref: dict, tests: bool):
        self.ref = ref
        self.reml = bool(ref["reml"])
        self.formula = ref["r_formula"]
        m = re.search(r"data = (\w+)", ref["r_call"])
        self.data_name = m.group(1) if m else None
        self.weights_name = "w" if "weights = w" in ref["r_call"] else None
        self.objective = ref["objective"]
        self.loglik = ref["loglik"]
        self.aic = ref["aic"]
        self.bic = ref["bic"]
        self.deviance = ref["objective"] if not self.reml else ref["deviance_ml_at_fit"]
        self.nobs = ref["nobs"]
        self.npar = ref["loglik_df"]
        self.ngroups = dict(ref["ngroups"])
        self.is_singular = bool(ref["is_singular"])
        self.messages = [m for m in (ref.get("convergence_messages") or [])
                         if "singular" not in m]
        self.optsum = _Opt(method=ref["optimizer"], code=ref["convergence_code"],
                           message=ref["optimizer_message"], success=True)
        self.design = SimpleNamespace(messages=[])
        self.fixef = pd.Series(ref["fixef"], index=ref["fixef_names"], dtype=float)
        if tests:
            self.coef_table = self._coef_table

    def _coef_table(self) -> pd.DataFrame:
        rows = self.ref["coef_table"]
        return pd.DataFrame([{k: v for k, v in r.items() if k != "term"} for r in rows],
                            index=[r["term"] for r in rows]).astype(float)

    def vcov(self) -> pd.DataFrame:
        names = self.ref["fixef_names"]
        return pd.DataFrame(np.array(self.ref["vcov"], dtype=float).reshape(len(names), -1),
                            index=names, columns=names)

    def varcorr(self) -> pd.DataFrame:
        rows = [(r["grp"], r["var1"], r["var2"], r["vcov"], r["sdcor"])
                for r in self.ref["varcorr"]]
        return pd.DataFrame(rows, columns=["group", "name1", "name2", "variance", "sd_cor"])

    def residuals(self, type: str = "response", scaled: bool = False) -> np.ndarray:
        # five values whose type-7 quantiles are R's quantiles
        q = self.ref["scaled_residual_quantiles"]
        return np.array([q[k] for k in ("Min", "1Q", "Median", "3Q", "Max")])


REFS = sorted(p.stem for p in REF_DIR.glob("*.json")
              if "summary_text" in (r := json.loads(p.read_text())) and "reml" in r)


def _load(name: str) -> dict:
    path = REF_DIR / f"{name}.json"
    if not path.exists():
        pytest.skip(f"reference {path} not generated")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", REFS)
def test_summary_layout_matches_lmertest(name):
    """With lme4's numbers the text is R's ``print(summary(m))``, character for character."""
    ref = _load(name)
    assert str(LmerSummary(RefFit(ref, tests=True))) == ref["summary_text"]


def _r_lines(text: str) -> list[str]:
    """Lines of R output stored below with a ``|`` after each (keeps trailing blanks)."""
    return [line[:-1] for line in text.split("\n")]


# print(summary(lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)))
SLEEP_LME4 = """\
Linear mixed model fit by REML ['lmerMod']|
Formula: Reaction ~ Days + (Days | Subject)|
   Data: sleepstudy|
|
REML criterion at convergence: 1743.6|
|
Scaled residuals: |
    Min      1Q  Median      3Q     Max |
-3.9536 -0.4634  0.0231  0.4634  5.1793 |
|
Random effects:|
 Groups   Name        Variance Std.Dev. Corr|
 Subject  (Intercept) 612.10   24.741       |
          Days         35.07    5.922   0.07|
 Residual             654.94   25.592       |
Number of obs: 180, groups:  Subject, 18|
|
Fixed effects:|
            Estimate Std. Error t value|
(Intercept)  251.405      6.825  36.838|
Days          10.467      1.546   6.771|
|
Correlation of Fixed Effects:|
     (Intr)|
Days -0.138|"""

# print(summary(lme4::lmer(Yield ~ 1 + (1 | Batch), Dyestuff2)))
DYESTUFF2_LME4 = """\
Linear mixed model fit by REML ['lmerMod']|
Formula: Yield ~ 1 + (1 | Batch)|
   Data: Dyestuff2|
|
REML criterion at convergence: 161.8|
|
Scaled residuals: |
    Min      1Q  Median      3Q     Max |
-1.7648 -0.7806 -0.0809  0.6689  2.0907 |
|
Random effects:|
 Groups   Name        Variance Std.Dev.|
 Batch    (Intercept)  0.00    0.000   |
 Residual             13.81    3.716   |
Number of obs: 30, groups:  Batch, 6|
|
Fixed effects:|
            Estimate Std. Error t value|
(Intercept)   5.6656     0.6784   8.352|
optimizer (nloptwrap) convergence code: 0 (OK)|
boundary (singular) fit: see help('isSingular')|
|"""

# print(summary(lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin,
#                          REML = FALSE)))
PENICILLIN_ML_LME4 = """\
Linear mixed model fit by maximum likelihood  ['lmerMod']|
Formula: diameter ~ 1 + (1 | plate) + (1 | sample)|
   Data: Penicillin|
|
     AIC      BIC   logLik deviance df.resid |
   340.2    352.1   -166.1    332.2      140 |
|
Scaled residuals: |
     Min       1Q   Median       3Q      Max |
-2.08031 -0.67227  0.06412  0.58356  2.97933 |
|
Random effects:|
 Groups   Name        Variance Std.Dev.|
 plate    (Intercept) 0.7150   0.8456  |
 sample   (Intercept) 3.1352   1.7706  |
 Residual             0.3024   0.5499  |
Number of obs: 144, groups:  plate, 24; sample, 6|
|
Fixed effects:|
            Estimate Std. Error t value|
(Intercept)  22.9722     0.7446   30.85|"""


@pytest.mark.parametrize(("name", "expected"), [
    ("sleepstudy_reml", SLEEP_LME4),
    ("dyestuff2_reml", DYESTUFF2_LME4),
    ("penicillin_ml", PENICILLIN_ML_LME4),
])
def test_summary_layout_matches_lme4(name, expected):
    ref = _load(name)
    assert str(LmerSummary(RefFit(ref, tests=False))).split("\n") == _r_lines(expected)
    # ddf="lme4" ignores the fit's coef_table()
    assert (str(LmerSummary(RefFit(ref, tests=True), ddf="lme4")).split("\n")
            == _r_lines(expected))


# m <- lmer(Reaction ~ Days + I(Days^2) + (Days + I(Days^2) | Subject) + (Days | grp),
#           sleepstudy)   with  sleepstudy$grp <- factor(as.integer(sleepstudy$Subject) %% 3)
# numbers: as.data.frame(VarCorr(m)), fixef(m), vcov(m), quantile(residuals(m, "pearson",
# scaled = TRUE)); text: print(summary(m)) (singular fit; two correlation columns)
MULTI_VC = [
    ("Subject", "(Intercept)", None, 27.253022056909852),
    ("Subject", "Days", None, 14.747474708007484),
    ("Subject", "I(Days^2)", None, 1.4557402184362398),
    ("Subject", "(Intercept)", "Days", -0.4085359358855141),
    ("Subject", "(Intercept)", "I(Days^2)", 0.4290375895662559),
    ("Subject", "Days", "I(Days^2)", -0.9155678893692794),
    ("grp", "(Intercept)", None, 7.216195321943481),
    ("grp", "Days", None, 1.5089645718374758),
    ("grp", "(Intercept)", "Days", 1.0),
    ("Residual", None, None, 22.75568485578013),
]
MULTI_TEXT = """\
Random effects:|
 Groups   Name        Variance Std.Dev. Corr       |
 Subject  (Intercept) 742.727  27.253              |
          Days        217.488  14.747   -0.41      |
          I(Days^2)     2.119   1.456    0.43 -0.92|
 grp      (Intercept)  52.073   7.216              |
          Days          2.277   1.509   1.00       |
 Residual             517.821  22.756              |
Number of obs: 180, groups:  Subject, 18; grp, 3|
|
Fixed effects:|
            Estimate Std. Error t value|
(Intercept)  255.449      8.741  29.224|
Days           7.434      4.196   1.772|
I(Days^2)      0.337      0.415   0.812|
|
Correlation of Fixed Effects:|
          (Intr) Days  |
Days      -0.353       |
I(Days^2)  0.441 -0.909|
optimizer (nloptwrap) convergence code: 0 (OK)|
boundary (singular) fit: see help('isSingular')|
|"""


def test_summary_several_correlations():
    names = ["(Intercept)", "Days", "I(Days^2)"]
    vc = pd.DataFrame([(g, a, b, np.nan, v) for g, a, b, v in MULTI_VC],
                      columns=["group", "name1", "name2", "variance", "sd_cor"])
    q = [-4.514046057386184, -0.4479411088267976, 0.03617680804889171, 0.4651301990190212,
         4.924046576964237]
    V = np.array([76.40420597338331, -12.945826242521179, 1.5994449548355267,
                  -12.945826242521179, 17.60360854293494, -1.5823533093918962,
                  1.5994449548355267, -1.5823533093918962, 0.17221675224981153]).reshape(3, 3)
    fit = SimpleNamespace(
        reml=True,
        formula="Reaction ~ Days + I(Days^2) + (Days + I(Days^2) | Subject) + (Days | grp)",
        data_name="sleepstudy", objective=1728.9318057595542, nobs=180,
        ngroups={"Subject": 18, "grp": 3}, is_singular=True, messages=[],
        optsum=SimpleNamespace(method="nloptwrap", code=0, message="", success=True),
        fixef=pd.Series([255.44937277777467, 7.434085012623254, 0.33702232744130417],
                        index=names),
        varcorr=lambda: vc, vcov=lambda: pd.DataFrame(V, index=names, columns=names),
        residuals=lambda type="response", scaled=False: np.array(q),
    )
    lines = str(LmerSummary(fit)).split("\n")
    assert lines[0] == "Linear mixed model fit by REML ['lmerMod']"
    # deparse() broke the long formula after 60 characters; cat(fill = TRUE) kept the
    # separator at the end of the first line
    assert lines[1:4] == [
        "Formula: Reaction ~ Days + I(Days^2) + (Days + I(Days^2) | Subject) +  ",
        "    (Days | grp)", "   Data: sleepstudy"]
    assert lines[4:10] == ["", "REML criterion at convergence: 1728.9", "",
                          "Scaled residuals: ", "    Min      1Q  Median      3Q     Max ",
                          "-4.5140 -0.4479  0.0362  0.4651  4.9240 "]
    assert lines[11:] == _r_lines(MULTI_TEXT)


def test_zapsmall_non_integer_digits():
    # R 4.2 rounds to digits - log10(max) (not its ceiling):
    # zapsmall(c(-2.0803123, 0.0641234, 2.9793345), 5) -> -2.08031  0.06412  2.97933
    assert list(zapsmall([-2.0803123, 0.0641234, 2.9793345], 5)) == [-2.08031, 0.06412,
                                                                       2.97933]


def test_format_coefmat_missing_values():
    # x <- cbind(Estimate = c(1.5, NA), "Std. Error" = c(0.25, NA), "t value" = c(6, NA))
    # rownames(x) <- c("a", "b"); printCoefmat(x, digits = 4)
    tab = pd.DataFrame({"Estimate": [1.5, np.nan], "Std. Error": [0.25, np.nan],
                        "t value": [6.0, np.nan]}, index=["a", "b"])
    assert format_coefmat(tab, digits=4).splitlines() == [
        "  Estimate Std. Error t value",
        "a     1.50       0.25       6",
        "b       NA         NA      NA",
    ]


# -- end to end: mixeff's own fits --------------------------------------------------------
def _unit(tok: str) -> float:
    """One unit in the last printed digit of a number as R printed it."""
    mant, _, expo = tok.lower().partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** (int(expo or 0) - dec)


def _same_numbers(r_lines: list[str], m_lines: list[str]) -> list[str]:
    """Differences between two printed summaries, numbers compared with a tolerance.

    The title's bracket, the Formula line, the optimizer's name and the row names of the
    fixed-effect tables are not compared. Numbers agree when they differ by at most one
    unit in the last digit R printed, or by 1e-4 relative (the engine's tolerance).
    """
    problems = []
    if len(r_lines) != len(m_lines):
        return [f"{len(r_lines)} lines in R, {len(m_lines)} in mixeff"]
    section = ""
    for i, (r, m) in enumerate(zip(r_lines, m_lines, strict=True)):
        if r.startswith("Formula:"):
            continue
        if i == 0:
            r, m = r.split("[")[0], m.split("[")[0]
        if r in ("Fixed effects:", "Correlation of Fixed Effects:"):
            section = r
            continue
        rt, mt = r.split(), m.split()
        if section == "Correlation of Fixed Effects:" and r_lines[i - 1] == section:
            continue  # abbreviated column names
        if section and r and not r[0].isspace() and not r.startswith(("---", "Signif",
                                                                      "optimizer")):
            rt, mt = rt[1:], mt[1:]  # row names
        if r.startswith("optimizer ("):
            rt, mt = rt[2:], mt[2:]
        if len(rt) != len(mt):
            problems.append(f"line {i}: {r!r} vs {m!r}")
            continue
        for a, b in zip(rt, mt, strict=True):
            try:
                x, y = float(a), float(b)
            except ValueError:
                if a != b:
                    problems.append(f"line {i}: {a!r} vs {b!r}")
                continue
            if abs(x - y) > max(1.01 * _unit(a), 1e-4 * abs(x)):
                problems.append(f"line {i}: {a} vs {b}")
    return problems


def test_same_numbers_helper():
    r = ["T ['lmerMod']", "Formula: y ~ x", " Subject  (Intercept) 612.10   24.741"]
    close = ["T ['x']", "Formula: y~x", " Subject  (Intercept) 612.09   24.740"]
    far = ["T ['x']", "Formula: y~x", " Subject  (Intercept) 612.20   24.741"]
    assert _same_numbers(r, close) == []
    assert _same_numbers(r, far) == ["line 2: 612.10 vs 612.20"]


def _sleepstudy_fit():
    import mixeff

    data = load_csv("sleepstudy.csv", ["Subject"])
    # R prints the name of the data argument
    return mixeff.lmer("Reaction ~ Days + (Days | Subject)", data, data_name="sleepstudy")


def test_lmer_data_name():
    """``lmer(..., data_name=)`` gives lme4's ``Data:`` line; without it there is none."""
    import mixeff

    fit = _sleepstudy_fit()
    assert fit.data_name == "sleepstudy"
    lines = str(fit.summary()).split("\n")
    assert lines[2:4] == ["Formula: Reaction ~ Days + (Days | Subject)", "   Data: sleepstudy"]
    assert lines[2:4] == _load("sleepstudy_reml")["summary_text"].split("\n")[2:4]
    plain = mixeff.lmer("Reaction ~ Days + (Days | Subject)", load_csv("sleepstudy.csv"))
    assert plain.data_name is None
    assert not any(line.startswith("   Data:") for line in str(plain.summary()).split("\n"))


def test_singular_fit_summary_end_to_end():
    """A singular fit (Dyestuff2) prints R's convergence lines once, and warns of nothing.

    lme4 1.1-31 gives "boundary (singular) fit: see help('isSingular')" as a message, not
    a warning; lmer raises no ConvergenceWarning for a fit that passes its checks.
    """
    import warnings

    import mixeff

    ref = _load("dyestuff2_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", mixeff.ConvergenceWarning)
        fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", load_csv("Dyestuff2.csv", ["Batch"]),
                          data_name="Dyestuff2")
    assert fit.is_singular and fit.converged
    expected = ref["summary_text"].split("\n")
    got = str(LmerSummary(fit)).split("\n")
    assert _same_numbers(expected, got) == []
    assert got[-3:] == [f"optimizer ({fit.optsum.method}) convergence code: 0 (OK)",
                        "boundary (singular) fit: see help('isSingular')", ""]
    assert expected[-3:] == ["optimizer (nloptwrap) convergence code: 0 (OK)",
                             "boundary (singular) fit: see help('isSingular')", ""]


def test_sleepstudy_summary_end_to_end_lme4_layout():
    fit = _sleepstudy_fit()
    assert isinstance(fit.summary(), LmerSummary)
    got = str(LmerSummary(fit, ddf="lme4")).split("\n")
    assert _same_numbers(_r_lines(SLEEP_LME4), got) == []


def test_sleepstudy_summary_end_to_end_lmertest_layout():
    fit = _sleepstudy_fit()
    if not callable(getattr(fit, "coef_table", None)):
        pytest.skip("fit has no Satterthwaite coef_table() yet")
    ref = _load("sleepstudy_reml")
    got = str(LmerSummary(fit)).split("\n")
    assert _same_numbers(ref["summary_text"].split("\n"), got) == []



def test_kenward_roger_title():
    # print(summary(lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
    #               ddf = "Kenward-Roger")): the same as Satterthwaite's text (the df agree
    # here) but for the title
    ref = _load("sleepstudy_reml")
    fit = RefFit(ref, tests=False)
    kr = ref["kr_coef_table"]

    def coef_table(ddf: str = "Satterthwaite") -> pd.DataFrame:
        rows = kr if ddf == "Kenward-Roger" else ref["coef_table"]
        return pd.DataFrame([{k: v for k, v in r.items() if k != "term"} for r in rows],
                            index=[r["term"] for r in rows]).astype(float)

    fit.coef_table = coef_table
    lines = str(LmerSummary(fit, ddf="Kenward-Roger")).split("\n")
    expected = ref["summary_text"].split("\n")
    assert lines[:2] == ["Linear mixed model fit by REML. t-tests use Kenward-Roger's method [",
                         "lmerModLmerTest]"]
    assert lines[2:] == expected[2:]
    assert str(LmerSummary(fit)) == ref["summary_text"]
    with pytest.raises(ValueError, match="no t-tests"):
        LmerSummary(RefFit(ref, tests=False), ddf="Satterthwaite")


def test_deparse_lines():
    # deparse(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)) is one line
    short = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"
    assert deparse_lines(short) == [short]
    # deparse(a_long_response_name ~ first_covariate + second_covariate +
    #         third_covariate + (1 | grouping_factor) + (0 + first_covariate | other))
    long = ("a_long_response_name ~ first_covariate + second_covariate + third_covariate"
            " + (1 | grouping_factor) + (0 + first_covariate | other)")
    assert deparse_lines(long) == [
        "a_long_response_name ~ first_covariate + second_covariate + third_covariate + ",
        "    (1 | grouping_factor) + (0 + first_covariate | other)"]


def test_summary_arguments_as_lmertest():
    """``summary(ddf=...)`` as lmerTest's ``summary(m, ddf = ...)``; ``digits``."""
    m = mixeff.lmer("Reaction ~ Days + (Days | Subject)", load_csv("sleepstudy.csv"))
    sat = str(m.summary())
    plain = str(m.summary(ddf="lme4"))
    kr = str(m.summary(ddf="Kenward-Roger"))
    assert "Satterthwaite" in sat and "Pr(>|t|)" in sat
    assert "['lmerMod']" in plain and "Pr(>|t|)" not in plain
    assert "Kenward-Roger" in kr
    assert str(m.summary(digits=6)) != sat
    assert "Correlation of Fixed Effects" not in str(m.summary(correlation=False))


def test_varcorr_names_are_none_when_missing_whatever_the_model():
    for name, formula in [("Dyestuff.csv", "Yield ~ 1 + (1 | Batch)"),
                          ("sleepstudy.csv", "Reaction ~ Days + (Days | Subject)")]:
        vc = mixeff.lmer(formula, load_csv(name)).varcorr()
        assert vc["name2"].iloc[0] is None and vc["name1"].iloc[-1] is None
        assert vc["name2"].dtype == object
