"""Reliability: bad input, hard data, fuzzed formulas, all through ``mixeff.lmer``.

1. Bad input gives a :class:`mixeff.MixeffError` (``FormulaError`` or ``DataError``) whose
   message names the column, level or formula position at fault; never a traceback from
   numpy, scipy, pandas or formulaic.
2. Hard but valid data fit (and agree with lme4 1.1-31) or fail with a clear message.
3. Fuzzed formulas either fit or raise a MixeffError.

The lme4 numbers below were produced with R 4.2.2 and lme4 1.1-31 (``lmer(...)`` with the
default control) on the same data, written to CSV from the generators in this file::

    d <- read.csv("single.csv"); d$g <- factor(d$g)
    m <- lmer(y ~ x + (1 | g), d)          # and REML = FALSE
    getME(m, "theta"); fixef(m); sigma(m); REMLcrit(m)  # deviance(m) for ML

Known failures of the fitting core are marked ``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refdata import load_csv
from test_formula import _TOKENS

import mixeff
from mixeff import DataError, FormulaError, MixeffError
from mixeff._api import fit_design
from mixeff._design import build_design
from mixeff._formula import parse_formula

# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def _small() -> pd.DataFrame:
    """30 rows: response y, covariates x and z, grouping factors g (5 levels) and h (3)."""
    rng = np.random.default_rng(0)
    n = 30
    g = np.repeat(np.arange(5), 6)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "y": 1.0 + 0.5 * x + rng.normal(size=5)[g] + rng.normal(size=n),
        "x": x,
        "z": rng.uniform(0, 3, n),
        "g": np.array(list("abcde"))[g],
        "h": np.tile(["p", "q", "r"], 10),
        "f": np.tile(list("uvwxyz"), 5),
        "w": np.linspace(0.5, 2.0, n),
    })


def _singleton_groups() -> pd.DataFrame:
    """60 groups: 34 with a single observation, the others with 2, 3 or 6."""
    rng = np.random.default_rng(20240601)
    sizes = rng.choice([1, 1, 1, 1, 2, 3, 6], size=60)
    g = np.repeat(np.arange(60), sizes)
    x = rng.normal(size=g.size)
    y = 10 + 0.8 * x + 1.2 * rng.normal(size=60)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{i:02d}" for i in g]})


def _nearly_singular() -> pd.DataFrame:
    """Between-group SD small next to the residual SD: theta 0.078 (REML), 0.028 (ML)."""
    rng = np.random.default_rng(75)
    g = np.repeat(np.arange(25), 8)
    x = rng.uniform(0, 10, g.size)
    y = 3 - 0.2 * x + 0.6 * rng.normal(size=25)[g] + 4 * rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"G{i:02d}" for i in g]})


def _many_levels(m: int = 100_000) -> pd.DataFrame:
    """``m`` levels of g with one or two rows each (150,121 rows for m = 100,000)."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(m), rng.integers(1, 3, m))
    x = rng.normal(size=g.size)
    y = 1.5 + 0.4 * x + 0.8 * rng.normal(size=m)[g] + 0.6 * rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _fit(formula: str, data: pd.DataFrame, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", mixeff.ConvergenceWarning)   # fit.messages say it
        return mixeff.lmer(formula, data, **kwargs)


# --------------------------------------------------------------------------------------
# 1. bad input: one table, end to end through lmer
# --------------------------------------------------------------------------------------


def _with(**cols):
    return lambda d: d.assign(**{k: v(d) if callable(v) else v for k, v in cols.items()})


def _set_row(col: str, row: int, value):
    def edit(d):
        d = d.copy()
        d[col] = d[col].astype(object if isinstance(value, str) else d[col].dtype)
        d.loc[row, col] = value
        return d
    return edit


_KEEP = None  # the data unchanged

# (id, formula, edit of the data, lmer keywords, error type, words in the message,
#  0-based position in the formula or None)
BAD_INPUT = [
    # unknown names
    ("unknown fixed column", "y ~ x + zz + (1 | g)", _KEEP, {}, FormulaError,
     ["'zz'", "not a column of the data"], 8),
    ("unknown response", "yy ~ x + (1 | g)", _KEEP, {}, FormulaError,
     ["response 'yy'", "not a column"], 0),
    ("unknown grouping factor", "y ~ x + (1 | gg)", _KEEP, {}, FormulaError,
     ["grouping factor 'gg'", "not a column"], 13),
    ("unknown inner nested factor", "y ~ x + (1 | g/hh)", _KEEP, {}, FormulaError,
     ["grouping factor 'hh'"], 15),
    ("unknown column in a random term", "y ~ x + (zz | g)", _KEEP, {}, FormulaError,
     ["'zz'", "random-effects term"], 9),
    ("unknown function", "y ~ foo(x) + (1 | g)", _KEEP, {}, FormulaError,
     ["unknown function 'foo'"], 4),
    ("unknown weights column", "y ~ x + (1 | g)", _KEEP, {"weights": "ww"}, FormulaError,
     ["weights column 'ww'", "not a column"], None),
    # formula syntax
    ("unclosed parenthesis", "y ~ x + (1 | g", _KEEP, {}, FormulaError,
     ["unbalanced parentheses", "never closed"], 8),
    ("unmatched closing parenthesis", "y ~ x + 1 | g)", _KEEP, {}, FormulaError,
     ["unbalanced parentheses", "unmatched ')'"], 13),
    ("empty bar", "y ~ x + ( | g)", _KEEP, {}, FormulaError,
     ["no expression before the bar"], 10),
    ("bar without grouping factor", "y ~ x + (1 | )", _KEEP, {}, FormulaError,
     ["no grouping factor after the bar"], 13),
    ("two bars outside parentheses", "y ~ x | g | h", _KEEP, {}, FormulaError,
     ["stray '|'"], 10),
    ("stray bar", "y ~ x + (1 | g | h)", _KEEP, {}, FormulaError, ["stray '|'"], 15),
    ("expression as grouping factor", "y ~ x + (1 | log(g))", _KEEP, {}, FormulaError,
     ["grouping factor must be"], 16),
    ("no tilde", "y + x + (1 | g)", _KEEP, {}, FormulaError, ["no '~'"], 0),
    ("trailing operator", "y ~ x + (1 | g) +", _KEEP, {}, FormulaError,
     ["ends with the operator '+'"], 16),
    ("subtracted random term", "y ~ x - (1 | g)", _KEEP, {}, FormulaError,
     ["cannot be subtracted"], 6),
    ("response on the right", "y ~ y + x + (1 | g)", _KEEP, {}, FormulaError,
     ["response 'y'", "fixed-effects part"], 4),
    ("response as a random slope", "y ~ x + (y | g)", _KEEP, {}, FormulaError,
     ["response 'y'", "random-effects term"], 9),
    ("response as a grouping factor", "k ~ x + (1 | g) + (1 | k)",
     _with(k=lambda d: np.repeat(np.arange(5.0), 6)), {}, FormulaError,
     ["response 'k'", "grouping factor", "(1 | k)"], 23),
    ("Python code in a formula", "y ~ {__import__('os').system('true')} + (1 | g)", _KEEP,
     {}, FormulaError, ["'__import__' is not allowed", "allow_python=True"], 5),
    ("a builtin function in offset()", "y ~ x + offset(eval('1')) + (1 | g)", _KEEP, {},
     FormulaError, ["function 'eval' is not allowed", "offset()"], 15),
    ("R's ns() spline", "y ~ ns(x, 3) + (1 | g)", _KEEP, {}, FormulaError,
     ["unknown function 'ns'", "cr(x, df=...)"], 4),
    # the response
    ("text response", "g ~ x + (1 | h)", _KEEP, {}, DataError,
     ["response 'g' is not numeric"], None),
    ("boolean response", "b ~ x + (1 | g)", _with(b=lambda d: d["y"] > 1), {}, DataError,
     ["response 'b' is not numeric"], None),
    ("complex response", "y ~ x + (1 | g)", _with(y=lambda d: d["y"] + 1j), {}, DataError,
     ["response 'y' is not numeric", "complex"], None),
    ("complex covariate", "y ~ x + (1 | g)", _with(x=lambda d: d["x"] * (1 + 1j)), {},
     DataError, ["column 'x' has complex values"], None),
    ("constant response", "y ~ x + (1 | g)", _with(y=4.0), {}, DataError,
     ["response 'y' is constant", "zero variance"], None),
    ("constant response minus offset", "y ~ x + (1 | g)", _with(y=lambda d: d["z"] + 4),
     {"offset": "z"}, DataError, ["response 'y' minus the offset is constant"], None),
    # values
    ("infinite covariate", "y ~ x + (1 | g)", _set_row("x", 3, np.inf), {}, DataError,
     ["column 'x' has infinite values", "row 3"], None),
    ("infinite response", "y ~ x + (1 | g)", _set_row("y", 7, -np.inf), {}, DataError,
     ["column 'y' has infinite values", "row 7"], None),
    ("infinite value from an expression", "y ~ np.exp(1000 * x) + (1 | g)", _KEEP, {},
     DataError, ["'np.exp(1000 * x)' has infinite values"], None),
    ("values whose squares overflow", "y ~ x + (1 | g)", _with(x=lambda d: d["x"] * 1e300),
     {}, DataError, ["fixed-effects column 'x'", "too large", "rescale"], None),
    ("response whose squares underflow", "y ~ x + (1 | g)",
     _with(y=lambda d: d["y"] * 1e-200), {}, DataError,
     ["response 'y'", "too small", "rescale"], None),
    # rows
    ("empty data", "y ~ x + (1 | g)", lambda d: d.iloc[:0], {}, DataError,
     ["data are empty", "0 rows"], None),
    ("not a DataFrame", "y ~ x + (1 | g)", lambda d: d.to_dict("list"), {}, DataError,
     ["must be a pandas DataFrame", "dict"], None),
    ("all rows missing", "y ~ x + (1 | g)", _with(x=np.nan), {}, DataError,
     ["no rows left", "'x'"], None),
    ("all rows missing in the grouping factor", "y ~ x + (1 | g)", _with(g=None), {},
     DataError, ["no rows left", "'g'"], None),
    ("duplicated column", "y ~ x + (1 | g)", lambda d: pd.concat([d, d[["x"]]], axis=1), {},
     DataError, ["column 'x' appears more than once"], None),
    # grouping factors and random-effects terms
    ("grouping factor with one level", "y ~ x + (1 | g)", _with(g="a"), {}, DataError,
     ["> 1 sampled level", "'g' (1 level)"], None),
    ("one level left after missing values", "y ~ x + (1 | g)",
     _with(x=lambda d: d["x"].where(d["g"] == "a")), {}, DataError,
     ["> 1 sampled level", "'g' (1 level)"], None),
    ("as many levels as rows", "y ~ x + (1 | s)", _with(s=lambda d: [f"s{i}" for i in d.index]),
     {}, DataError, ["number of levels", "< number of observations", "s;", "30 observations"],
     None),
    ("more random effects than rows", "y ~ x + (x | s)",
     _with(s=lambda d: np.arange(len(d)) // 2), {}, DataError,
     ["number of observations (=30) <= number of random effects (=30)", "(x | s)"], None),
    ("factor slope with more random effects than rows", "y ~ x + (0 + f | g)", _KEEP, {},
     DataError, ["number of random effects (=30)", "(0 + f | g)"], None),
    ("fixed factor with a level per row", "y ~ s + (1 | g)",
     _with(s=lambda d: [f"s{i}" for i in d.index]), {}, DataError,
     ["30 linearly independent columns for 30 observations", "no residual degrees"], None),
    # weights and offsets
    ("negative weight", "y ~ x + (1 | g)", _KEEP, {"weights": np.r_[1, 1, 1, -2.0, [1] * 26]},
     DataError, ["weights must be non-negative", "row 3", "-2"], None),
    ("negative weight in a column", "y ~ x + (1 | g)", _set_row("w", 5, -0.5),
     {"weights": "w"}, DataError, ["weights must be non-negative", "row 5"], None),
    ("infinite weight", "y ~ x + (1 | g)", _KEEP, {"weights": np.r_[np.inf, [1.0] * 29]},
     DataError, ["weights must be finite"], None),
    ("all weights missing", "y ~ x + (1 | g)", _KEEP, {"weights": np.full(30, np.nan)},
     DataError, ["no rows left"], None),
    ("all weights zero", "y ~ x + (1 | g)", _KEEP, {"weights": np.zeros(30)}, DataError,
     ["no rows left"], None),
    ("weights of the wrong length", "y ~ x + (1 | g)", _KEEP, {"weights": [1.0, 2.0]},
     DataError, ["weights has 2 values", "30 rows"], None),
    ("text weights", "y ~ x + (1 | g)", _KEEP, {"weights": "g"}, DataError,
     ["weights column 'g' is not numeric"], None),
    ("infinite offset", "y ~ x + (1 | g)", _KEEP, {"offset": np.r_[np.inf, [0.0] * 29]},
     DataError, ["offset has infinite values"], None),
    # options
    ("bad check level", "y ~ x + (1 | g)", _KEEP, {"check_nlev": "loud"}, DataError,
     ["check_nlev must be one of"], None),
]


@pytest.mark.parametrize(("formula", "edit", "kwargs", "exc", "words", "position"),
                         [pytest.param(*c[1:], id=c[0]) for c in BAD_INPUT])
def test_bad_input(formula, edit, kwargs, exc, words, position):
    data = _small() if edit is None else edit(_small())
    with pytest.raises(exc) as info:
        _fit(formula, data, **kwargs)
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    if position is not None:
        assert info.value.position == position, msg
        assert info.value.formula == formula
        caret = msg.splitlines()[-1]
        assert caret.index("^") - 4 == position  # the caret line points at the fault


def test_bad_input_table_covers_both_error_types():
    kinds = {c[4] for c in BAD_INPUT}
    assert kinds == {FormulaError, DataError}
    assert all(issubclass(k, MixeffError) and issubclass(k, ValueError) for k in kinds)


def test_no_random_effects_terms():
    """lme4: 'No random effects terms specified in formula', here naming the formula."""
    with pytest.raises(FormulaError) as info:
        _fit("y ~ x", _small())
    assert str(info.value).startswith("No random effects terms specified in formula 'y ~ x'")
    assert "mixeff.lm" in str(info.value)
    assert info.value.formula == "y ~ x"
    # the same from a built design, before any fitting
    with pytest.raises(FormulaError, match="No random effects terms specified in formula"):
        fit_design(build_design("y ~ x", _small()))


def test_unknown_optimizer():
    with pytest.raises(DataError) as info:
        _fit("y ~ x + (1 | g)", _small(), optimizer="nelder")
    assert str(info.value) == ("optimizer must be one of 'auto', 'L-BFGS-B', 'COBYQA', "
                               "not 'nelder'")
    with pytest.raises(DataError, match="factorization must be one of 'auto', 'cholmod', "
                       "'schur', not 'lu'"):
        fit_design(build_design("y ~ x + (1 | g)", _small()), factorization="lu")
    # names as scipy takes them, case ignored
    m = _fit("y ~ x + (1 | g)", _small(), optimizer="cobyqa")
    assert m.optsum.method == "COBYQA"


# --------------------------------------------------------------------------------------
# 2. hard but valid data
# --------------------------------------------------------------------------------------


def _check_lme4(fit, theta, beta, sigma, crit, names=None, rtol=1e-6, theta_atol=1e-6):
    np.testing.assert_allclose(fit.theta, theta, rtol=rtol, atol=theta_atol)
    np.testing.assert_allclose(fit.fixef.to_numpy(), beta, rtol=rtol, atol=1e-8)
    np.testing.assert_allclose(fit.sigma, sigma, rtol=rtol)
    # the optimum must be at least as good as lme4's, and not better by more than rounding
    assert fit.objective <= crit + 1e-7 * abs(crit)
    np.testing.assert_allclose(fit.objective, crit, rtol=1e-9)
    if names is not None:
        assert list(fit.fixef.index) == names


def test_collinear_fixed_effects_dropped_as_lme4():
    d = load_csv("sleepstudy.csv", ["Subject"])
    d["Days2"] = 2 * d["Days"] + 1
    m = _fit("Reaction ~ Days + Days2 + (Days | Subject)", d)
    assert m.design.dropped_xnames == ["Days2"]
    assert ("fixed-effect model matrix is rank deficient so dropping 1 column / coefficient"
            in m.messages)
    _check_lme4(m, [0.9667417739674123, 0.0151690588960361, 0.2309099532077945],
                [251.405104848485, 10.467285959596], 25.5917957216753, 1743.62827195995,
                names=["(Intercept)", "Days"], rtol=1e-5, theta_atol=1e-5)


def test_collinear_factor_level_dropped_as_lme4():
    # Days as a factor next to Days: the last level's column is dropped, as in R
    d = load_csv("sleepstudy.csv", ["Subject"])
    d["Dcat"] = d["Days"].astype(str)
    m = _fit("Reaction ~ Days + Dcat + (1 | Subject)", d)
    assert m.design.dropped_xnames == ["Dcat[T.9]"]
    assert len(m.fixef) == 10
    _check_lme4(m, [1.18014892045925],
                [256.651805555552301, 10.466601851851989, -2.622651851850780,
                 -12.223109259258299, -5.059599999999238, -9.868790740740094,
                 -0.466359259258794, -7.273161111110725, -11.167435185184917,
                 -3.755114814814687], 31.4259206286424, 1733.88700939137, rtol=1e-6)


def test_zero_variance_response():
    """lme4 "fits" a constant response with sigma = 0 and REMLcrit = -Inf, warning
    'unable to evaluate scaled gradient' and 'Problem with Hessian check'; its theta is
    arbitrary. mixeff refuses such data with a clear DataError instead."""
    d = _small().assign(y=1.0)
    for kwargs in ({}, {"reml": False}, {"weights": "w"}):
        with pytest.raises(DataError, match="response 'y' is constant"):
            _fit("y ~ x + (1 | g)", d, **kwargs)
    with pytest.raises(DataError, match="is constant"):
        _fit("y ~ 0 + x + (x | g)", d)


@pytest.mark.parametrize("reml", [True, False])
def test_single_observation_groups(reml):
    d = _singleton_groups()
    assert (d["g"].value_counts() == 1).sum() == 34
    m = _fit("y ~ x + (1 | g)", d, reml=reml)
    assert m.ngroups == {"g": 60} and m.nobs == 112
    if reml:
        _check_lme4(m, [1.2765814790109], [9.888895820363460, 0.856742958588398],
                    0.965901962817997, 389.638059018427)
    else:
        _check_lme4(m, [1.27011491887584], [9.889176930629876, 0.856950044353295],
                    0.959065749897488, 385.55538514775, rtol=1e-5, theta_atol=1e-6)
    assert m.converged and not m.is_singular


def test_singular_fit():
    d = load_csv("Dyestuff2.csv", ["Batch"])
    m = _fit("Yield ~ 1 + (1 | Batch)", d)
    assert m.is_singular and m.theta[0] == 0.0
    _check_lme4(m, [0.0], [5.6656], 3.71568427447573, 161.828277812288)
    assert m.converged


@pytest.mark.parametrize("reml", [True, False])
def test_nearly_singular_fit(reml):
    m = _fit("y ~ x + (1 | g)", _nearly_singular(), reml=reml)
    if reml:
        # lme4: theta 0.0776990278077559
        _check_lme4(m, [0.0776990278077559], [2.2626910594077660, -0.0700490440884461],
                    4.22296394475489, 1146.27226851059, rtol=1e-6, theta_atol=1e-5)
    else:
        # a flat criterion near the boundary: mixeff's theta 0.027863 is 5e-10 lower in
        # deviance than lme4's 0.027877
        _check_lme4(m, [0.0278769123787794], [2.2628827296674197, -0.0700860356614678],
                    4.21237748199363, 1142.9412409335, rtol=1e-5, theta_atol=1e-4)
    assert 0 < m.theta[0] < 0.1 and not m.is_singular


def test_100k_levels_with_one_or_two_rows_each(record_property):
    d = _many_levels()
    assert len(d) == 150_121
    t0 = time.perf_counter()
    m = _fit("y ~ x + (1 | g)", d)
    elapsed = time.perf_counter() - t0
    record_property("fit_seconds", elapsed)
    print(f"100,000 levels, 150,121 rows: fit in {elapsed:.2f} s")
    # lme4 1.1-31: 1.5 s on the same machine
    _check_lme4(m, [1.33481299539945], [1.500499694891932, 0.398318342424641],
                0.599299764598146, 399438.708056676, rtol=1e-6, theta_atol=1e-6)
    assert m.ngroups == {"g": 100_000} and m.converged
    assert elapsed < 30.0
    ml = _fit("y ~ x + (1 | g)", d, reml=False)
    _check_lme4(ml, [1.33481209473702], [1.500499695097108, 0.398318343489018],
                0.599295963954076, 399418.464310174, rtol=1e-6, theta_atol=1e-6)


# -- scales ----------------------------------------------------------------------------

_SCALES = [(1e8, 1e-8), (1e-8, 1e8), (1e8, 1e8), (1e-8, 1e-8), (-3.7, 1e-3)]


def _scaled_pair(a: float, c: float, optimizer: str):
    """sleepstudy with an extra covariate z: fit of (y, z) and of (a y + 5 a, c z)."""
    d = load_csv("sleepstudy.csv", ["Subject"])
    d["z"] = np.random.default_rng(3).normal(size=len(d))
    formula = "Reaction ~ Days + z + (Days | Subject)"
    base = _fit(formula, d, optimizer=optimizer)
    other = _fit(formula, d.assign(Reaction=a * d["Reaction"] + 5 * a, z=c * d["z"]),
                 optimizer=optimizer)
    return base, other


def _assert_scaled(base, other, a, c, rtol):
    beta = base.fixef.to_numpy() * np.array([a, a, a / c])
    beta[0] += 5 * a
    np.testing.assert_allclose(other.fixef.to_numpy(), beta, rtol=rtol)
    np.testing.assert_allclose(other.sigma, abs(a) * base.sigma, rtol=rtol)
    np.testing.assert_allclose(other.theta, base.theta, rtol=rtol)
    vb, vo = base.varcorr(), other.varcorr()
    np.testing.assert_allclose(vo["variance"], vb["variance"] * a * a, rtol=rtol)
    np.testing.assert_allclose(vo["sd_cor"], vb["sd_cor"] * np.r_[[abs(a)] * 2, 1, abs(a)],
                               rtol=rtol)
    # REML criterion: 2 (n - p) log|a| from the residuals, -2 log|c| from log|R_X|^2
    n, p = base.nobs, 3
    np.testing.assert_allclose(other.objective - base.objective,
                               2 * (n - p) * np.log(abs(a)) + 2 * np.log(c), atol=1e-6)


@pytest.mark.parametrize(("a", "c"), _SCALES)
def test_scale_equivariance(a, c):
    """y -> a y + 5a and a fixed covariate z -> c z, with scales from 1e-8 to 1e8."""
    base, other = _scaled_pair(a, c, "L-BFGS-B")
    assert other.messages == []
    _assert_scaled(base, other, a, c, rtol=1e-6)


def test_scale_equivariance_cobyqa():
    base, other = _scaled_pair(1e-8, 1e8, "COBYQA")
    _assert_scaled(base, other, 1e-8, 1e8, rtol=1e-6)


@pytest.mark.parametrize("c", [100.0, 1e8])
def test_random_slope_covariate_rescaled(c):
    """theta of a random slope scales as 1/c when its covariate is multiplied by c.

    From lme4's start theta = 1, L-BFGS-B used to end on a boundary point (Days * 100:
    REML criterion 1775.74 instead of 1752.84) and to stay at the start for Days * 1e8;
    lme4 fails these too (1752.93 with warnings, 'Downdated VtV is not positive
    definite'). mixeff optimises theta scaled by the covariate's root mean square
    (``_optimizer.theta_scale``) and reaches the optimum.
    """
    d = load_csv("sleepstudy.csv", ["Subject"])
    base = _fit("Reaction ~ Days + (Days | Subject)", d)
    other = _fit("Reaction ~ Days + (Days | Subject)", d.assign(Days=d["Days"] * c))
    vb = base.varcorr()["variance"].to_numpy()
    np.testing.assert_allclose(other.varcorr()["variance"], vb * [1, c**-2, 1 / c, 1],
                               rtol=1e-5)
    np.testing.assert_allclose(other.objective, base.objective + 2 * np.log(c), atol=1e-6)


def test_random_slope_covariate_rescaled_warns():
    """Should the fit above miss the optimum, mixeff says so as lme4 1.1-31 does.

    lme4, Days * 100: REML 1752.93 (not the 1752.84 of the rescaled optimum) with "Model
    failed to converge with max|grad| = 2.70086" and "Model is nearly unidentifiable: very
    large eigenvalue - Rescale variables?"; Days * 1e8: "Downdated VtV is not positive
    definite". Without theta scaling mixeff stopped on the boundary (REML 1775.74), where
    lme4 would skip its checks as a singular fit, but the Hessian of the free parameter
    gave lme4's advice. With it mixeff reaches the optimum, and its checks (in theta, as
    lme4's) still advise rescaling.
    """
    d = load_csv("sleepstudy.csv", ["Subject"])
    with pytest.warns(mixeff.ConvergenceWarning, match="Rescale variables"):
        m = mixeff.lmer("Reaction ~ Days + (Days | Subject)", d.assign(Days=d["Days"] * 100.0))
    assert not m.converged
    assert any("Rescale variables?" in msg for msg in m.messages), m.messages
    if abs(m.objective - 1752.8386) > 1e-3:  # not the optimum: it must say so
        assert not m.converged
        assert any("Rescale variables?" in msg for msg in m.messages), m.messages
    try:
        m8 = _fit("Reaction ~ Days + (Days | Subject)", d.assign(Days=d["Days"] * 1e8))
    except DataError as err:
        assert "broke down numerically" in str(err) and "consider rescaling" in str(err)
    else:
        assert not m8.converged and m8.messages


# -- perfect and nearly perfect fits ---------------------------------------------------


def _exact_linear(d):
    return d.assign(y=2.0 + 3.0 * d["x"]), [2.0, 3.0]


def _exact_groups(d):
    return d.assign(y=d["g"].map({"a": 1.0, "b": -2.0, "c": 0.5, "d": 4.0, "e": 3.0})), None


@pytest.mark.parametrize("make", [_exact_linear, _exact_groups],
                         ids=["exact-in-fixed-effects", "exact-in-random-effects"])
def test_exact_fit_fits_or_fails_cleanly(make):
    """lme4 fits these with sigma ~ 1e-15 and convergence warnings.

    A breakdown of the linear algebra on the way (y = group effect once sent L-BFGS-B to
    NaN theta and scipy's cholesky raised in LmmObjective.solve) is a DataError.
    """
    d, beta = make(_small())
    try:
        m = _fit("y ~ x + (1 | g)", d)
    except MixeffError:
        return
    assert np.isfinite(m.theta).all() and m.sigma < 1e-10 * d["y"].std()
    if beta is not None:
        np.testing.assert_allclose(m.fixef.to_numpy(), beta, rtol=1e-8)


def _near_linear(eps):
    def make(d):
        return d.assign(y=2.0 + 3.0 * d["x"] + eps * d["y"]), 2.0 + 3.0 * d["x"]
    return make


def _large_mean(d):
    return d.assign(y=1e5 + 1e-3 * d["y"]), pd.Series(1e5, index=d.index)


@pytest.mark.parametrize("make", [_near_linear(1e-8), _near_linear(1e-10), _large_mean],
                         ids=["linear+1e-8", "linear+1e-10", "1e5+1e-3"])
def test_nearly_exact_fit_is_accurate(make):
    """Subtracting a known linear function of X from y moves beta and nothing else."""
    d, known = make(_small())
    m = _fit("y ~ x + (1 | g)", d)
    r = _fit("y ~ x + (1 | g)", d.assign(y=d["y"] - known))
    np.testing.assert_allclose(m.sigma, r.sigma, rtol=1e-6)
    np.testing.assert_allclose(m.theta, r.theta, rtol=1e-5, atol=1e-6)


def test_extreme_weight_ratios_fit_or_fail_cleanly():
    d = _small()
    w = np.r_[1e10, np.full(len(d) - 1, 1e-10)]
    try:
        m = _fit("y ~ x + (1 | g)", d, weights=w)
    except MixeffError:
        return
    # the unit-weight rows carry residuals of order 1e-5 (sqrt of their weight)
    assert m.converged and 1e-8 < m.sigma < 10


def test_more_random_effects_than_rows_fits_or_fails_cleanly():
    """74 random effects for 48 rows: the criterion falls as theta grows (CHOLMOD reaches
    theta ~ 1e4, sigma ~ 1e-4, REML 124.58; lme4 stops at a local optimum, REML 125.46).
    A breakdown on the way (the Schur path once raised numpy's LinAlgError 'Schur
    complement is not positive definite') must be a DataError."""
    d = _fuzz_data()
    formula = "y ~ (1 | g) + (1 | g:h:a) + (Days + x | g)"
    design = build_design(formula, d)
    assert sum(t.nlevels * t.k for t in design.terms) == 74 and design.n == 48
    try:
        m = _fit(formula, d)
    except MixeffError:
        return
    assert np.isfinite(m.objective) and m.objective <= 125.46


# --------------------------------------------------------------------------------------
# 3. fuzz: formulas from test_formula's tokens through lmer
# --------------------------------------------------------------------------------------


def _fuzz_data() -> pd.DataFrame:
    """A column for every name among the fuzz tokens (y x z g h Days Subject a b).

    The factors are assigned at random (no column is a function of others, as it would be
    with ``a = row % 4``, ``h = row % 3`` and ``Days = row % 6``); every level of every
    factor and every response value occurs more than once.
    """
    rng = np.random.default_rng(11)
    n = 48

    def factor(levels, size=n):
        return rng.permutation(np.resize(levels, size))

    return pd.DataFrame({
        "y": rng.normal(size=n) + np.repeat(rng.normal(size=8), 6),
        "x": rng.normal(size=n),
        "z": rng.uniform(0.5, 2.0, n),
        "Days": factor(np.arange(6.0)),
        "g": np.repeat(list("ABCDEFGH"), 6),
        "h": factor(["u", "v", "w"]),
        "Subject": factor(np.arange(300, 308)),
        "a": factor([1, 2, 3, 4]),
        "b": factor(["p", "q"]),
    })


_FUZZ_DATA = _fuzz_data()


def _lmer_or_mixeff_error(formula: str, **kwargs) -> None:
    """Fit ``formula`` on the fuzz data: a finite fit or a MixeffError, nothing else.

    No exception is let through: a formula without random-effects terms, a response that a
    term on the right-hand side reproduces (``y ~ I(2 * y) + ...``, an exact fit) and models
    with at least as many random effects in all as observations (they can interpolate the
    data) give a fit or a MixeffError like any other.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = mixeff.lmer(formula, _FUZZ_DATA, **kwargs)
        except MixeffError as err:
            assert str(err)
            return
    assert np.isfinite(m.objective)
    assert np.isfinite(m.theta).all() and np.isfinite(m.sigma)
    assert np.isfinite(m.fixef.to_numpy()).all()


@settings(max_examples=250, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join), st.booleans())
def test_fuzz_formulas_through_lmer(text, prefix):
    """Each fuzzed formula fits or raises a MixeffError, never anything else."""
    formula = "y ~ " + text if prefix else text
    try:
        parse_formula(formula)
    except FormulaError:
        return
    _lmer_or_mixeff_error(formula)


_RESPONSES = ["y", "`y`", "np.log(z)", "x", "Days", "g", "y + 1", "I(y * 2)", "a"]
_FIXED = ["1", "0", "-1", "x", "z", "Days", "g", "h", "a", "b", "x * z", "x:h", "C(a)",
          "np.log(z)", "I(x**2)", "poly(Days, 2)", "scale(x)", "offset(z)", "Subject",
          "C(Days)", "h * Days", "np.exp(x)", "{x > 0}", "center(z)"]
_RE_EXPR = ["1", "x", "0 + x", "1 + Days", "Days", "h", "0 + h", "x + z", "-1 + x", "b",
            "Days + x", "0", "poly(Days, 2)"]
_GROUPS = ["g", "h", "Subject", "a", "b", "g/h", "g:h", "a:b", "Days", "x", "b/g", "g:h:a"]
_NOISE = list("()|~+-*:/ ,`{}1") + ["||", "0 +"]


@st.composite
def _structured_formulas(draw) -> str:
    """Mostly well-formed lme4 formulas, sometimes with one character inserted or deleted."""
    lhs = draw(st.sampled_from(_RESPONSES))
    fixed = draw(st.lists(st.sampled_from(_FIXED), max_size=3))
    rand = draw(st.lists(st.tuples(st.sampled_from(_RE_EXPR), st.sampled_from(["|", "||"]),
                                   st.sampled_from(_GROUPS)), min_size=1, max_size=3))
    terms = fixed + [f"({e} {bar} {g})" for e, bar, g in rand]
    order = draw(st.permutations(range(len(terms))))
    text = f"{lhs} ~ " + " + ".join(terms[i] for i in order)
    edit = draw(st.sampled_from(["none", "none", "insert", "delete"]))
    if edit != "none":
        k = draw(st.integers(0, len(text) - 1))
        if edit == "insert":
            text = text[:k] + draw(st.sampled_from(_NOISE)) + text[k:]
        else:
            text = text[:k] + text[k + 1:]
    return text


@settings(max_examples=200, deadline=None)
@given(_structured_formulas(), st.sampled_from([None, "z"]))
def test_fuzz_structured_formulas_through_lmer(formula, weights):
    """Near-valid formulas reach the design and the fit: a fit or a MixeffError."""
    try:
        parse_formula(formula)
    except FormulaError:
        return
    _lmer_or_mixeff_error(formula, weights=weights)


def test_theta_scale_only_for_badly_scaled_covariates():
    """Ordinary fits are not scaled; Days * 100 (root mean square 534) scales its row by 2^9."""
    from mixeff._optimizer import scaled_start, theta_scale

    d = load_csv("sleepstudy.csv", ["Subject"])
    assert theta_scale(_fit("Reaction ~ Days + (Days | Subject)", d).blocks) is None
    m = _fit("Reaction ~ Days + (Days | Subject)", d.assign(Days=d["Days"] * 100.0))
    np.testing.assert_array_equal(theta_scale(m.blocks), [1.0, 512.0, 512.0])
    start = scaled_start(m.blocks)
    np.testing.assert_array_equal(start["theta0"], [1.0, 0.0, 1.0 / 512])
    np.testing.assert_array_equal(m.optsum.theta0, start["theta0"])
    np.testing.assert_array_equal(m.optsum.lower, [0.0, -np.inf, 0.0])
    assert m.optsum.fmin == m.objective
