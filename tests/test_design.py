"""Design layer: model frame, NA handling, levels, term matrices, lme4's checks."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixeff._design import Design, ReTermDesign, build_design
from mixeff._errors import DataError, FormulaError, MixeffError
from mixeff._formula import parse_formula

DATA_DIR = Path(os.environ.get("MIXEFF_DATA_DIR",
                               Path(__file__).resolve().parent / "data" / "lme4"))


def _csv(name: str) -> pd.DataFrame:
    path = DATA_DIR / name
    if not path.exists():
        pytest.skip(f"reference data {path} not available (set MIXEFF_DATA_DIR)")
    return pd.read_csv(path)


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame({
        "y": [1.0, 2.5, 3.1, 4.7, 5.2, 6.9, 7.1, 8.4],
        "x": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.5],
        "g": ["b", "a", "b", "a", "c", "c", "a", "b"],
        "h": [10, 9, 100, 9, 10, 100, 9, 10],
        "w": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
        "o": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    })


# --------------------------------------------------------------------------------------
# reference data sets
# --------------------------------------------------------------------------------------


def test_sleepstudy():
    d = _csv("sleepstudy.csv")
    des = build_design("Reaction ~ Days + (Days | Subject)", d)
    assert isinstance(des, Design)
    assert des.X.shape == (180, 2)
    assert des.X.dtype == np.float64 and des.X.flags.f_contiguous
    assert des.xnames == ["(Intercept)", "Days"]
    assert des.dropped_xnames == []
    assert des.response_name == "Reaction"
    np.testing.assert_array_equal(des.y, d["Reaction"].to_numpy())
    assert des.weights is None and des.offset is None
    assert des.n_dropped == 0 and des.messages == []
    assert des.row_index.equals(d.index)
    (t,) = des.terms
    assert isinstance(t, ReTermDesign)
    assert t.label == "Subject" and t.expr == "Days"
    assert t.colnames == ["(Intercept)", "Days"]
    assert t.matrix.shape == (180, 2) and t.matrix.flags.c_contiguous
    assert t.matrix.dtype == np.float64
    assert len(t.levels) == 18 and t.levels[0] == "308" and t.levels[-1] == "372"
    assert t.codes.dtype == np.int32 and t.codes.shape == (180,)
    np.testing.assert_array_equal(t.levels[t.codes], d["Subject"].astype(str).to_numpy())
    np.testing.assert_array_equal(t.matrix[:, 1], d["Days"].to_numpy())
    assert des.fixed_spec is not None


def test_cake_interaction_and_fixed_columns():
    d = _csv("cake.csv")
    des = build_design("angle ~ recipe * C(temperature) + (1 | recipe:replicate)", d)
    assert des.X.shape == (270, 18)  # as R: 1 + 2 + 5 + 10
    assert des.xnames[:4] == ["(Intercept)", "recipe[T.B]", "recipe[T.C]",
                              "C(temperature)[T.185]"]
    assert des.dropped_xnames == []
    (t,) = des.terms
    assert t.label == "recipe:replicate"
    assert len(t.levels) == 45
    # numeric sort of replicate inside each recipe, recipe first (R's recipe:replicate)
    assert list(t.levels[:3]) == ["A:1", "A:2", "A:3"]
    assert t.levels[14] == "A:15" and t.levels[15] == "B:1"
    labels = (d["recipe"].astype(str) + ":" + d["replicate"].astype(str)).to_numpy()
    np.testing.assert_array_equal(t.levels[t.codes], labels)


def test_pastes_nested():
    d = _csv("Pastes.csv")
    des = build_design("strength ~ 1 + (1 | batch/cask)", d)
    assert des.X.shape == (60, 1)
    assert [t.label for t in des.terms] == ["batch", "cask:batch"]
    assert [len(t.levels) for t in des.terms] == [10, 30]
    inner = des.terms[1]
    assert list(inner.levels[:3]) == ["a:A", "a:B", "a:C"]
    np.testing.assert_array_equal(inner.levels[inner.codes],
                                  (d["cask"] + ":" + d["batch"]).to_numpy())


def test_penicillin_crossed():
    d = _csv("Penicillin.csv")
    des = build_design("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    assert [(t.label, len(t.levels)) for t in des.terms] == [("plate", 24), ("sample", 6)]
    assert list(des.terms[1].levels) == ["A", "B", "C", "D", "E", "F"]


def test_uncorrelated_terms_share_grouping(small):
    des = build_design("y ~ x + (x || g)", small)
    assert [(t.label, t.colnames) for t in des.terms] == [("g", ["(Intercept)"]),
                                                          ("g", ["x"])]
    np.testing.assert_array_equal(des.terms[0].codes, des.terms[1].codes)


def test_parsed_formula_accepted(small):
    pf = parse_formula("y ~ x + (1 | g)")
    assert build_design(pf, small).formula is pf


# --------------------------------------------------------------------------------------
# missing values and levels
# --------------------------------------------------------------------------------------


def test_na_rows_dropped(small):
    d = small.copy()
    d.loc[1, "y"] = np.nan
    d.loc[3, "x"] = np.nan
    d.loc[5, "g"] = None
    d.loc[6, "o"] = np.nan  # not used: must not drop the row
    d.index = [f"r{i}" for i in range(8)]
    des = build_design("y ~ x + (1 | g)", d)
    assert des.n_dropped == 3
    assert des.X.shape[0] == des.y.shape[0] == 5
    assert list(des.row_index) == ["r0", "r2", "r4", "r6", "r7"]
    assert "3 rows with missing values dropped" in des.messages
    # levels come from the used rows only: the one "c" left is on row 4
    assert list(des.terms[0].levels) == ["a", "b", "c"]


def test_na_in_weights_offset_and_grouping(small):
    w = small["w"].to_numpy().copy()
    w[0] = np.nan
    d = small.assign(o=small["o"].where(small.index != 2))
    des = build_design("y ~ x + (1 | g)", d, weights=w, offset="o")
    assert des.n_dropped == 2
    assert des.messages[0] == "2 rows with missing values dropped"
    np.testing.assert_allclose(des.weights, small["w"].to_numpy()[[1, 3, 4, 5, 6, 7]])


def test_all_rows_dropped(small):
    d = small.assign(x=np.nan)
    with pytest.raises(DataError, match="no rows left"):
        build_design("y ~ x + (1 | g)", d)


def test_nan_from_expression_drops_row(small):
    d = small.assign(x=small["x"] - 1.0)  # first value -0.5: log gives NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        des = build_design("y ~ np.log(x + 0.6) + np.sqrt(x) + (1 | g)", d)
    assert des.n_dropped == 1
    assert des.row_index[0] == 1


def test_numeric_levels_sort_numerically(small):
    des = build_design("y ~ x + (1 | h)", small)
    assert list(des.terms[0].levels) == ["9", "10", "100"]
    d = small.assign(h=small["h"] / 4)
    des = build_design("y ~ x + (1 | h)", d)
    assert list(des.terms[0].levels) == ["2.25", "2.5", "25"]


def test_string_levels_sorted_and_categorical_order_kept(small):
    des = build_design("y ~ x + (1 | g)", small)
    assert list(des.terms[0].levels) == ["a", "b", "c"]
    cat = pd.Categorical(small["g"], categories=["z", "c", "b", "a"])
    des = build_design("y ~ x + (1 | g)", small.assign(g=cat))
    assert list(des.terms[0].levels) == ["c", "b", "a"]  # unused "z" dropped
    np.testing.assert_array_equal(des.terms[0].levels[des.terms[0].codes], small["g"])


def test_object_and_string_dtypes_agree(small):
    a = build_design("y ~ x + g + (1 | h)", small.assign(g=small["g"].astype(object)))
    b = build_design("y ~ x + g + (1 | h)", small.assign(g=small["g"].astype("string")))
    c = build_design("y ~ x + g + (1 | h)", small.assign(g=small["g"].astype("category")))
    d = build_design("y ~ x + g + (1 | h)", small)
    for other in (b, c, d):
        assert other.xnames == a.xnames == ["(Intercept)", "x", "g[T.b]", "g[T.c]"]
        np.testing.assert_array_equal(other.X, a.X)


def test_interaction_levels_observed_only():
    d = pd.DataFrame({"y": np.arange(6.0), "a": ["p", "p", "q", "q", "q", "p"],
                      "b": [2, 1, 1, 1, 2, 2]})
    des = build_design("y ~ 1 + (1 | a:b)", d, check_nlev="ignore",
                       check_nobs_vs_nre="ignore")
    (t,) = des.terms
    assert list(t.levels) == ["p:1", "p:2", "q:1", "q:2"]
    np.testing.assert_array_equal(t.codes, [1, 0, 2, 2, 3, 1])
    d = d[~((d["a"] == "q") & (d["b"] == 2))]  # combination q:2 no longer observed
    des = build_design("y ~ 1 + (1 | a:b)", d, check_nlev="ignore",
                       check_nobs_vs_nre="ignore")
    assert list(des.terms[0].levels) == ["p:1", "p:2", "q:1"]


def test_unused_categories_in_fixed_part(small):
    cat = pd.Categorical(small["g"], categories=["a", "b", "c", "zz"])
    des = build_design("y ~ g + (1 | h)", small.assign(g=cat))
    assert des.xnames == ["(Intercept)", "g[T.b]", "g[T.c]"]
    assert des.dropped_xnames == []


# --------------------------------------------------------------------------------------
# fixed part
# --------------------------------------------------------------------------------------


def test_rank_deficient_columns_dropped(small):
    d = small.assign(x2=2 * small["x"])
    des = build_design("y ~ x + x2 + (1 | g)", d)
    assert des.xnames == ["(Intercept)", "x"]
    assert des.dropped_xnames == ["x2"]
    assert des.X.shape == (8, 2) and des.X.flags.f_contiguous
    assert ("fixed-effect model matrix is rank deficient so dropping 1 column / coefficient"
            in des.messages)
    # the earliest column is kept, as R's lm
    des = build_design("y ~ x2 + x + (1 | g)", d)
    assert des.xnames == ["(Intercept)", "x2"] and des.dropped_xnames == ["x"]


def test_rank_deficient_several_columns(small):
    d = small.assign(x2=2 * small["x"], c1=1.0, z=0.0)
    des = build_design("y ~ x + c1 + x2 + z + h + (1 | g)", d)
    assert des.xnames == ["(Intercept)", "x", "h"]
    assert des.dropped_xnames == ["c1", "x2", "z"]
    assert ("fixed-effect model matrix is rank deficient so dropping 3 columns / "
            "coefficients") in des.messages


def test_badly_scaled_columns_are_not_dropped(small):
    d = small.assign(big=small["x"] * 1e8 + small["h"], tiny=small["h"] * 1e-9)
    des = build_design("y ~ big + tiny + (1 | g)", d)
    assert des.dropped_xnames == []


def test_independent_columns_matches_sequential_rule():
    from mixeff._design import _independent_columns

    rng = np.random.default_rng(3)
    n = 500
    a, b, c = rng.normal(size=(3, n))
    noise = rng.normal(size=n)
    noise -= np.column_stack([a, b]) @ np.linalg.lstsq(np.column_stack([a, b]), noise,
                                                        rcond=None)[0]
    noise /= np.linalg.norm(noise)
    base = a + 3 * b
    cols = {
        "a": a, "b": b,
        "a+3b": base,                                                # exactly dependent
        "near-dep": base + 1e-9 * np.linalg.norm(base) * noise,     # residual 1e-9: drop
        "near-indep": base + 1e-5 * np.linalg.norm(base) * noise,   # residual 1e-5: keep
        "zero": np.zeros(n),
        "c": c,
        "1e9 c": 1e9 * c + 1e-3 * a,                                 # dependent on a, c
    }
    X = np.column_stack(list(cols.values()))
    keep = _independent_columns(X)
    kept = [k for k, flag in zip(cols, keep, strict=True) if flag]
    assert kept == ["a", "b", "near-indep", "c"]
    # more columns than rows
    assert _independent_columns(rng.normal(size=(3, 5))).tolist() == [True] * 3 + [False] * 2
    assert _independent_columns(np.zeros((4, 0))).shape == (0,)


def test_no_fixed_columns(small):
    des = build_design("y ~ 0 + (1 | g)", small)
    assert des.X.shape == (8, 0) and des.xnames == []


def test_fixed_expressions(small):
    des = build_design("np.log(y) ~ np.log(x) + I(x**2) + C(h) + (1 | g)", small)
    assert des.xnames == ["(Intercept)", "np.log(x)", "I(x ** 2)", "C(h)[T.10]",
                          "C(h)[T.100]"]
    np.testing.assert_allclose(des.y, np.log(small["y"]))
    assert des.response_name == "np.log(y)"


def test_stateful_transforms_and_quoted_names(small):
    des = build_design("y ~ scale(x) + poly(h, 2) + (1 | g)", small)
    assert des.xnames == ["(Intercept)", "scale(x)", "poly(h, 2)[1]", "poly(h, 2)[2]"]
    np.testing.assert_allclose(des.X[:, 1].mean(), 0.0, atol=1e-12)
    d = small.rename(columns={"x": "my x", "g": "my g", "y": "my y"})
    des = build_design("`my y` ~ `my x` + (`my x` | `my g`)", d)
    assert des.xnames == ["(Intercept)", "my x"]
    assert des.terms[0].label == "my g" and des.response_name == "my y"
    with pytest.raises(FormulaError, match="'zz'"):
        build_design("y ~ scale(zz) + (1 | g)", small)


def test_nullable_and_boolean_columns(small):
    d = small.assign(i=pd.array([1, 2, None, 4, 5, 6, 7, 8], dtype="Int64"),
                     yy=pd.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, None], dtype="Float64"),
                     b=[True, False] * 4)
    des = build_design("yy ~ i + (1 | b)", d)
    assert des.n_dropped == 2 and des.y.dtype == np.float64
    assert list(des.terms[0].levels) == ["False", "True"]


def test_power_is_r_power(small):
    """``^`` in code is R's power (issue 13): ``I(x^2)`` is ``I(x**2)``, not Python's XOR."""
    a = build_design("y ~ I(x^2) + (1 | g)", small)
    b = build_design("y ~ I(x**2) + (1 | g)", small)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_allclose(a.X[:, 1], small["x"].to_numpy() ** 2)


# --------------------------------------------------------------------------------------
# random-effects terms
# --------------------------------------------------------------------------------------


def test_factor_in_random_term(small):
    d = pd.concat([small] * 3, ignore_index=True).assign(
        k=np.repeat(["u", "v", "w", "u"], 6), y=np.arange(24.0))
    full = build_design("y ~ 1 + (0 + k | g)", d)
    assert full.terms[0].colnames == ["k[u]", "k[v]", "k[w]"]
    np.testing.assert_array_equal(full.terms[0].matrix.sum(axis=1), 1.0)
    treat = build_design("y ~ 1 + (1 + k | g)", d)
    assert treat.terms[0].colnames == ["(Intercept)", "k[T.v]", "k[T.w]"]


def test_intercept_only_term_is_ones(small):
    (t,) = build_design("y ~ x + (1 | g)", small).terms
    assert t.colnames == ["(Intercept)"]
    np.testing.assert_array_equal(t.matrix, np.ones((8, 1)))


# --------------------------------------------------------------------------------------
# weights and offsets
# --------------------------------------------------------------------------------------


def test_weights_column_and_array(small):
    a = build_design("y ~ x + (1 | g)", small, weights="w")
    b = build_design("y ~ x + (1 | g)", small, weights=small["w"].to_list())
    np.testing.assert_array_equal(a.weights, small["w"].to_numpy())
    np.testing.assert_array_equal(a.weights, b.weights)
    zero = build_design("y ~ x + (1 | g)", small, weights=np.r_[0.0, np.ones(7)])
    assert zero.n == 7 and np.all(zero.weights == 1)   # zero-weight rows are dropped


@pytest.mark.parametrize("bad", [np.r_[-1.0, np.ones(7)], np.r_[np.inf, np.ones(7)]])
def test_bad_weights(small, bad):
    with pytest.raises(DataError, match="weights"):
        build_design("y ~ x + (1 | g)", small, weights=bad)


def test_weights_wrong_length_or_type(small):
    with pytest.raises(DataError, match="8 rows"):
        build_design("y ~ x + (1 | g)", small, weights=[1.0, 2.0])
    with pytest.raises(DataError, match="not numeric"):
        build_design("y ~ x + (1 | g)", small, weights="g")
    with pytest.raises(FormulaError, match="'ww'"):
        build_design("y ~ x + (1 | g)", small, weights="ww")


def test_offset_column_formula_and_sum(small):
    a = build_design("y ~ x + (1 | g)", small, offset="o")
    np.testing.assert_allclose(a.offset, small["o"])
    b = build_design("y ~ x + offset(0.5 * x) + (1 | g)", small)
    np.testing.assert_allclose(b.offset, 0.5 * small["x"])
    assert b.xnames == ["(Intercept)", "x"]
    c = build_design("y ~ x + offset(0.5 * x) + offset(np.log(w)) + (1 | g)", small,
                     offset=np.full(8, 2.0))
    np.testing.assert_allclose(c.offset, 2.0 + 0.5 * small["x"] + np.log(small["w"]))


def test_offset_unknown_column(small):
    with pytest.raises(FormulaError) as info:
        build_design("y ~ x + offset(q) + (1 | g)", small)
    assert info.value.position == 15 and "'q'" in str(info.value)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


def test_data_must_be_dataframe():
    with pytest.raises(DataError, match="DataFrame, not dict"):
        build_design("y ~ x + (1 | g)", {"y": [1.0]})
    with pytest.raises(DataError, match="empty"):
        build_design("y ~ x + (1 | g)", pd.DataFrame({"y": [], "x": [], "g": []}))


def test_non_numeric_response(small):
    with pytest.raises(DataError, match="response 'g' is not numeric"):
        build_design("g ~ x + (1 | h)", small)
    with pytest.raises(DataError, match="'b'"):
        build_design("b ~ x + (1 | g)", small.assign(b=small["x"] > 2))


@pytest.mark.parametrize(
    ("formula", "name", "position"),
    [
        ("y ~ x + zz + (1 | g)", "zz", 8),
        ("yy ~ x + (1 | g)", "yy", 0),
        ("np.log(yy) ~ x + (1 | g)", "yy", 7),
        ("y ~ x + (1 | gg)", "gg", 13),
        ("y ~ x + (1 | g/gg)", "gg", 15),
        ("y ~ x + (1 | g:gg)", "gg", 15),
        ("y ~ x + (zz | g)", "zz", 9),
        ("y ~ x + (g | zz) + (1 | g)", "zz", 13),
    ],
)
def test_unknown_columns(small, formula, name, position):
    with pytest.raises(FormulaError) as info:
        build_design(formula, small)
    assert info.value.position == position
    assert f"'{name}'" in str(info.value)


def test_unknown_function(small):
    with pytest.raises(FormulaError, match="unknown function 'foo'") as info:
        build_design("y ~ foo(x) + (1 | g)", small)
    assert info.value.position == 4


def test_infinite_values(small):
    with pytest.raises(DataError, match="column 'x' has infinite values"):
        build_design("y ~ x + (1 | g)", small.assign(x=small["x"].replace(2.0, np.inf)))
    with pytest.raises(DataError, match="column 'y' has infinite values"):
        build_design("y ~ x + (1 | g)", small.assign(y=small["y"].replace(1.0, -np.inf)))
    with pytest.raises(DataError, match="'np.log"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        build_design("y ~ np.log(x - 0.5) + (1 | g)", small)


def test_single_level_factor(small):
    with pytest.raises(DataError, match="> 1 sampled level.*'one'"):
        build_design("y ~ x + (1 | one)", small.assign(one="k"))


def test_nlev_equal_nobs(small):
    d = small.assign(s=list("abcdefgh"))
    with pytest.raises(DataError, match=r"must be < number of observations \(problems: s"):
        build_design("y ~ x + (1 | s)", d)
    des = build_design("y ~ x + (1 | s)", d, check_nlev="ignore", check_nobs_vs_nre="ignore")
    assert len(des.terms[0].levels) == 8
    with pytest.warns(UserWarning, match="number of levels"):
        des = build_design("y ~ x + (1 | s)", d, check_nlev="warning",
                           check_nobs_vs_nre="ignore")
    assert any("number of levels" in m for m in des.messages)


def test_nobs_vs_nre(small):
    msg = (r"number of observations \(=8\) <= number of random effects \(=8\) for term "
           r"\(x \| h4\)")
    d = small.assign(h4=[1, 1, 2, 2, 3, 3, 4, 4])
    with pytest.raises(DataError, match=msg):
        build_design("y ~ x + (x | h4)", d)
    des = build_design("y ~ x + (x | h4)", d, check_nobs_vs_nre="ignore")
    assert des.terms[0].matrix.shape == (8, 2)


def test_bad_check_level(small):
    with pytest.raises(DataError, match="check_nlev"):
        build_design("y ~ x + (1 | g)", small, check_nlev="loud")


def test_bad_formula_type(small):
    with pytest.raises(FormulaError):
        build_design(42, small)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# size
# --------------------------------------------------------------------------------------


def test_large_data_is_fast():
    rng = np.random.default_rng(1)
    n = 300_000
    d = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                      "g1": rng.integers(0, 6000, n).astype(str),
                      "g2": rng.integers(0, 4000, n)})
    t0 = time.perf_counter()
    des = build_design("y ~ x + (x | g1) + (1 | g2)", d)
    elapsed = time.perf_counter() - t0
    assert [len(t.levels) for t in des.terms] == [6000, 4000]
    assert elapsed < 5.0


# --------------------------------------------------------------------------------------
# fuzz: bad input gives a mixeff error, never a numpy/pandas/formulaic one
# --------------------------------------------------------------------------------------

_FUZZ_DATA = pd.DataFrame({
    "y": np.arange(12.0) ** 1.3, "x": np.linspace(-1, 2, 12), "g": list("abcabcabcabc"),
    "h": [1, 2] * 6, "b": [True, False, True] * 4, "s": list("pqrstuvwxyzq"),
    "c": pd.Categorical(list("uvuvuvuvuvuv")), "n": [np.nan] + [1.0] * 11,
    "i": pd.array([1, 2, None, 4] * 3, dtype="Int64"),
    "d": pd.date_range("2020", periods=12),
})
_FUZZ_TOKENS = ["y", "x", "g", "h", "b", "s", "c", "n", "i", "d", " ~ ", " + ", " - ", "*",
                ":", "/", "(", ")", "|", "||", "1", "0", "C(", "np.log(", "I(", "offset(",
                "**2", ",", "{", "}", "foo(", "1/0"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FUZZ_TOKENS), max_size=12).map("".join),
       st.sampled_from([None, "x", "n", "g", [1.0] * 12, [-1.0] * 12, "i"]),
       st.sampled_from([None, "x", "i", [0.5] * 12, np.arange(3)]))
def test_fuzz_build_design(text, weights, offset):
    for formula in (text, "y ~ " + text):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                build_design(formula, _FUZZ_DATA, weights=weights, offset=offset,
                             check_nlev="ignore", check_nobs_vs_nre="ignore")
            except MixeffError:
                pass


def test_zero_weights_drop_rows_with_a_message():
    import pandas as pd

    from mixeff._design import build_design

    d = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "g": list("aabbcc"),
                      "w": [0.0, 1.0, 1.0, 2.0, 1.0, 1.0]})
    des = build_design("y ~ 1 + (1|g)", d, weights="w")
    assert des.y.tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert des.n_dropped == 1
    assert "1 row with zero weight dropped" in des.messages


@pytest.mark.parametrize("spec", [
    "x", "1 + x + z", "0 + x", "x - 1", "x * z", "x:z:w", "x * z * w", "-1 + x:z",
    "w + z:w + x:w:z", "(x + z + w) ** 2", "x + x:z + z",
])
def test_numeric_fast_path_equals_formulaic(spec):
    """Formulas of plain numeric columns skip formulaic's materialiser: same matrix (bit
    for bit), same names and order, same ModelSpec as the general path."""
    from formulaic import model_matrix

    from mixeff._design import _numeric_model_matrix

    rng = np.random.default_rng(3)
    n = 50
    raw = {
        "x": pd.Series(rng.normal(size=n)),
        "z": pd.Series(rng.integers(-5, 9, n)),                 # int64
        "w": pd.Series(rng.uniform(size=n).astype(np.float32)),  # float32
    }
    fast = _numeric_model_matrix(spec, raw, n)
    assert fast is not None
    spec_obj, X, names = fast
    mm = model_matrix(spec, pd.DataFrame({c: s.to_numpy() for c, s in raw.items()}),
                      na_action="ignore", context={})
    assert names == list(mm.columns)
    np.testing.assert_array_equal(X, mm.to_numpy(dtype=np.float64))
    assert spec_obj.column_names == mm.model_spec.column_names
    assert spec_obj.encoder_state == mm.model_spec.encoder_state


@pytest.mark.parametrize("spec", ["x + g", "C(x)", "I(x ** 2)", "center(x)", "b", "x:b",
                                  "x + nope"])
def test_numeric_fast_path_declines(spec):
    """Categorical, boolean, transformed or unknown factors go through formulaic."""
    from mixeff._design import _numeric_model_matrix

    raw = {"x": pd.Series([1.0, 2.0, 3.0]), "g": pd.Series(["a", "b", "a"]),
           "b": pd.Series([True, False, True])}
    assert _numeric_model_matrix(spec, raw, 3) is None


def test_design_same_on_both_paths(monkeypatch):
    """A whole design with the fast path equals the one built by formulaic alone."""
    import mixeff._design as D

    df = _csv("sleepstudy.csv")
    df["Days2"] = df["Days"].astype("Int64")   # nullable integers: as float64
    f = "Reaction ~ Days * Days2 + (Days | Subject)"
    fast = build_design(f, df)
    monkeypatch.setattr(D, "_numeric_model_matrix", lambda *a: None)
    slow = build_design(f, df)
    assert fast.xnames == slow.xnames
    np.testing.assert_array_equal(fast.X, slow.X)
    assert fast.fixed_spec.column_names == slow.fixed_spec.column_names
    for a, b in zip(fast.terms, slow.terms, strict=True):
        assert a.colnames == b.colnames
        np.testing.assert_array_equal(a.matrix, b.matrix)


def test_numeric_fast_path_columns_named_like_literals():
    """Data columns named ``1`` or ``0`` (which formulaic reads as data or as the literal
    depending on the term) or ``Intercept`` (beside the intercept) are left to formulaic
    (found in review: the fast path had filled a column `1` with ones)."""
    from mixeff._design import _numeric_model_matrix

    rng = np.random.default_rng(5)
    raw = {"1": pd.Series(rng.normal(size=20)), "x": pd.Series(rng.normal(size=20)),
           "Intercept": pd.Series(rng.normal(size=20))}
    for spec in ["0 + `1`", "`1`:x"]:
        assert _numeric_model_matrix(spec, raw, 20) is None
    # a column named Intercept is a column beside the intercept (issue 19)
    _, X, names = _numeric_model_matrix("Intercept + x", raw, 20)
    assert names == ["Intercept", "`Intercept`", "x"]
    np.testing.assert_array_equal(X[:, 0], 1.0)
    np.testing.assert_array_equal(X[:, 1], raw["Intercept"].to_numpy())
    # where formulaic parses `1` as the literal, the fast path does too
    _, X, names = _numeric_model_matrix("x + `1`", raw, 20)
    assert names == ["Intercept", "x"]
    np.testing.assert_array_equal(X[:, 0], 1.0)
