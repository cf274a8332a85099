"""Formula expressions: nothing in a formula runs as code, and R's habits mean what they mean.

* Injection suite (issue 18): payloads that would write a file or set a builtin, in every
  place of a formula (fixed part, ``I()``, ``{...}``, response, ``offset()``, random-term
  expression, grouping factor), in memory (lmer, lm, predict), on the Dask path and through
  the command line, plus a fuzz over dangerous tokens; the side effect must never happen,
  and the error is a FormulaError naming the offending name.
* R's dialect (issue 13 items 1 and 6): ``I(Days^2)``, ``TRUE``/``T``, ``%in%``, ``&``/``!``,
  ``factor()``, ``poly(raw = TRUE)``, ``Yield ~ 1 | Batch``, keyword-named columns, against
  lme4 fits stored by ``tests/references/make_formula_references.R``.
* Column names mean the column (issue 19 item 1): ``Intercept`` and a back-quoted ``1``.
"""

from __future__ import annotations

import builtins
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refdata import REPO, load_csv

import mixeff
from mixeff import DataError, FormulaError, MixeffError
from mixeff._design import build_design

MARK = "MIXEFF_PWNED"

#: Payloads; ``{p}`` is a path the payload would create. Each, if it ran, would write the
#: file or set ``builtins.MIXEFF_PWNED``.
PAYLOADS = [
    "__import__('os').system('touch {p}')",
    "__import__('builtins').open('{p}', 'w')",
    "setattr(__import__('builtins'), 'MIXEFF_PWNED', 1)",
    "open('{p}', 'w')",
    "eval(\"open('{p}', 'w')\")",
    "exec(\"open('{p}', 'w')\")",
    "compile('1', '{p}', 'eval')",
    "getattr(__builtins__, 'open')('{p}', 'w')",
    "globals()['__builtins__']['open']('{p}', 'w')",
    "vars()['open']('{p}', 'w')",
    "locals()",
    "(lambda: open('{p}', 'w'))()",
    "[open('{p}', 'w') for _ in [1]]",
    "list(open('{p}', 'w') for _ in [1])",
    "{{k: open('{p}', 'w') for k in [1]}}",
    "f\"{{open('{p}', 'w')}}\"",
    "(z := open('{p}', 'w'))",
    "x if open('{p}', 'w') else x",
    "np.save('{p}', x)",
    "numpy.savetxt('{p}', x)",
    "np.lib.npyio.savetxt('{p}', x)",
    "np.frompyfunc(open, 2, 1)('{p}', 'w')",
    "np.vectorize(open)('{p}', 'w')",
    "x.to_csv('{p}')",
    "I(x).to_csv('{p}')",
    "np.log(x).tofile('{p}')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__.__base__.__subclasses__()",
    "C.__globals__['__builtins__']['open']('{p}', 'w')",
    "poly.__wrapped__.__globals__['__builtins__']['open']('{p}', 'w')",
    "scale.__code__",
    "np.where.__globals__",
    "contr.__class__.__subclasses__()",
    "C(g, contr.__init__.__globals__['__builtins__']['open']('{p}', 'w'))",
    "Q('__builtins__')",
    "`__import__`('os')",
    "`open`('{p}', 'w')",
    "print('{p}')",
    "breakpoint()",
    "x.__setattr__('a', 1)",
    "type(x).__subclasses__()",
    "10**10**10",
]

#: Where a payload ``P`` can sit in a formula.
PLACES = [
    "y ~ x + {{{P}}} + (1 | g)",
    "y ~ x + I({P}) + (1 | g)",
    "y ~ x + {P} + (1 | g)",
    "{P} ~ x + (1 | g)",
    "y ~ x + offset({P}) + (1 | g)",
    "y ~ x + (I({P}) | g)",
    "y ~ x + (1 | {P})",
    "y ~ I(x) + C(g) + log(x + 10) + ({{{P}}} | g)",
]


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a formula ran code: the marker file was written"
    assert not hasattr(builtins, MARK), "a formula ran code: a builtin was set"


def _data(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(18)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.uniform(1, 2, n),
                         "g": np.repeat(list("abcdefgh"), n // 8)})


def _all_cases() -> list[tuple[str, str]]:
    return [(place, payload) for place in PLACES for payload in PAYLOADS]


def _formula(place: str, payload: str, path: Path) -> str:
    return place.replace("{{", "\0").replace("}}", "\1").replace(
        "{P}", payload.format(p=str(path))).replace("\0", "{").replace("\1", "}")


@pytest.mark.parametrize(("place", "payload"), _all_cases())
def test_injection_in_memory(place, payload, marker):
    formula = _formula(place, payload, marker)
    with pytest.raises(FormulaError):
        mixeff.lmer(formula, _data())


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_lm_and_design(payload, marker):
    formula = _formula("y ~ x + I({P})", payload, marker)
    with pytest.raises(FormulaError):
        mixeff.lm(formula, _data())
    with pytest.raises(FormulaError):
        build_design(_formula("{P} ~ x + (1 | g)", payload, marker), _data())


def test_refusal_names_the_offending_name_and_position():
    text = "y ~ x + I(().__class__.__bases__) + (1 | g)"
    with pytest.raises(FormulaError) as info:
        mixeff.lmer(text, _data())
    err = info.value
    assert "'.__class__'" in str(err) and "allow_python=True" in str(err)
    assert err.formula == text and err.position == text.index(".__class__")
    text = "y ~ x + offset(np.random.seed(1)) + (1 | g)"
    with pytest.raises(FormulaError, match="'np.random' is not allowed") as info:
        mixeff.lmer(text, _data())
    assert info.value.position == text.index(".random")
    text = "__import__('os').getcwd() ~ x + (1 | g)"
    with pytest.raises(FormulaError, match="'__import__' is not allowed") as info:
        mixeff.lmer(text, _data())
    assert info.value.position == 0
    text = "y ~ x + I(open) + (1 | g)"   # a builtin as a value is no column either
    with pytest.raises(FormulaError, match="'open'.*not a column"):
        mixeff.lmer(text, _data())


def test_evaluation_layers_refuse_on_their_own(marker):
    """The evaluation functions check again (new data, Dask workers, direct calls)."""
    from mixeff._design import _eval_python, _Namespace, formulaic_matrix

    data = _data()
    raw = {"x": data["x"], "g": data["g"]}
    for payload in PAYLOADS:
        code = payload.format(p=str(marker))
        with pytest.raises(MixeffError):
            _eval_python(code, _Namespace(raw), len(data), "offset", "t", None)
        with pytest.raises(Exception):  # noqa: B017 - formulaic wraps the FormulaError
            formulaic_matrix("{" + code + "}", data[["x", "g"]])


def test_namespace_has_no_builtins():
    from mixeff._design import _Namespace
    from mixeff._expr import evaluate

    # names that would be builtins do not resolve (checked code aside)
    ns = _Namespace({"x": pd.Series([1.0, 2.0])})
    for name in ("open", "__builtins__", "__import__", "eval", "getattr"):
        with pytest.raises(KeyError):
            ns[name]
    np.testing.assert_array_equal(evaluate("sqrt(x) * T", {"x": pd.Series([4.0, 9.0])}),
                                  [2.0, 3.0])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([
    "__import__", "('os')", ".", "system", "('true')", "open", "('{p}', 'w')", "getattr",
    "(", ")", "[", "]", "0", "lambda", ":", "__class__", "__bases__", "__subclasses__",
    "()", "x", ",", "{", "}", "f'", "'", "+", "*", "I(", "np", "save", "to_csv", "`",
    "__builtins__", "for", "in", " ", "eval", "exec", "globals()", "=",
]), max_size=14).map("".join))
def test_fuzz_dangerous_tokens(marker, body):
    body = body.replace("{p}", str(marker))
    for formula in (f"y ~ x + {body} + (1 | g)", f"y ~ I({body}) + (1 | g)",
                    f"{body} ~ x + (1 | g)", f"y ~ x + ({body} | g)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                build_design(formula, _data(), check_nlev="ignore",
                             check_nobs_vs_nre="ignore")
            except MixeffError:
                pass


def test_injection_through_the_cli(tmp_path, marker, capsys):
    from mixeff.cli import main

    csv = tmp_path / "d.csv"
    _data().to_csv(csv, index=False)
    for place in ("y ~ x + {{{P}}} + (1 | g)", "{P} ~ x + (1 | g)",
                  "y ~ x + offset({P}) + (1 | g)", "y ~ x + (I({P}) | g)"):
        for payload in PAYLOADS:
            formula = _formula(place, payload, marker)
            assert main(["fit", str(csv), formula]) == 2
            err = capsys.readouterr().err
            assert "error" in err and "Traceback" not in err


def test_cli_never_allows_python(tmp_path, capsys):
    """A formula that only works with allow_python=True is refused by the CLI."""
    from mixeff.cli import main

    csv = tmp_path / "d.csv"
    _data().to_csv(csv, index=False)
    assert main(["fit", str(csv), "y ~ {x.clip(0, 1.5)} + (1 | g)"]) == 2
    assert "allow_python" in capsys.readouterr().err


def test_injection_on_the_dask_path(marker):
    dd = pytest.importorskip("dask.dataframe")
    import dask

    ddf = dd.from_pandas(_data(80), npartitions=3)
    with dask.config.set(scheduler="synchronous"):
        for place in ("y ~ x + {{{P}}} + (1 | g)", "{P} ~ x + (1 | g)",
                      "y ~ x + offset({P}) + (1 | g)", "y ~ x + (I({P}) | g)"):
            for payload in PAYLOADS:
                with pytest.raises(FormulaError):
                    mixeff.lmer(_formula(place, payload, marker), ddf)


def test_dask_workers_check_again(marker):
    """A plan that skipped the check (as if made elsewhere) is refused on the partition."""
    pytest.importorskip("dask.dataframe")
    from mixeff._dask import _evaluate_rows, _make_plan
    from mixeff._formula import parse_formula

    data = _data()
    for payload in PAYLOADS[:12]:
        try:
            pf = parse_formula(_formula("y ~ x + offset({P}) + (1 | g)", payload, marker))
            plan = _make_plan(pf, data, None, None, (), allow_python=True)
        except MixeffError:
            continue  # names that are no columns: refused on their own
        plan.allow_python = False
        with pytest.raises(MixeffError):
            _evaluate_rows(data, plan)


# --------------------------------------------------------------------------------------
# the opt-in
# --------------------------------------------------------------------------------------


def test_allow_python_keeps_python_code():
    d = _data()
    with pytest.raises(FormulaError, match="attribute access"):
        mixeff.lmer("y ~ {x.clip(0, 1.5)} + (1 | g)", d)
    fit = mixeff.lmer("y ~ {x.clip(0, 1.5)} + (1 | g)", d, allow_python=True)
    ref = mixeff.lmer("y ~ z + (1 | g)", d.assign(z=d["x"].clip(0, 1.5)))
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)
    # Python's builtins are reachable only with the opt-in
    fit = mixeff.lm("y ~ I(min(x.max(), 3.0) * x)", d, allow_python=True)
    assert fit.coef.shape == (2,)


def test_eval_env_functions_in_fit_and_predict():
    d = _data()
    env = {"twice": lambda v: 2.0 * v}
    with pytest.raises(FormulaError, match="unknown function 'twice'"):
        mixeff.lmer("y ~ twice(x) + (1 | g)", d)
    fit = mixeff.lmer("y ~ twice(x) + offset(twice(x) / 10) + (1 | g)", d, eval_env=env)
    ref = mixeff.lmer("y ~ x + offset(x / 5) + (1 | g)", d)
    np.testing.assert_allclose(fit.fixef.to_numpy() * [1, 2], ref.fixef.to_numpy(),
                               rtol=1e-8)
    np.testing.assert_allclose(fit.predict(d.iloc[:5]), ref.predict(d.iloc[:5]), rtol=1e-8)
    lmfit = mixeff.lm("y ~ twice(x)", d, eval_env=env)
    np.testing.assert_allclose(lmfit.coef.to_numpy()[1] * 2,
                               mixeff.lm("y ~ x", d).coef.to_numpy()[1], rtol=1e-10)


def test_allow_python_argument_checked():
    with pytest.raises(DataError, match="allow_python must be True or False"):
        mixeff.lmer("y ~ x + (1 | g)", _data(), allow_python="yes")
    with pytest.raises(DataError, match="eval_env must be a mapping"):
        mixeff.lmer("y ~ x + (1 | g)", _data(), eval_env=[1])


def test_check_is_cached_per_expression():
    from mixeff._expr import check

    check.cache_clear()
    d = _data()
    for _ in range(3):
        build_design("log(y + 10) ~ I(x^2) + offset(0.1 * x) + (1 | g)", d)
    info = check.cache_info()
    assert info.misses <= 4 and info.hits >= 6


# --------------------------------------------------------------------------------------
# R's dialect against lme4
# --------------------------------------------------------------------------------------


def _reference() -> dict:
    path = REPO / "tests" / "references" / "formula" / "formula_dialect.json"
    return json.loads(path.read_text())["models"]


def _sleep() -> pd.DataFrame:
    d = load_csv("sleepstudy.csv", ["Subject"])
    d["yield"] = d["Reaction"]
    d["class"] = d["Days"] % 3
    d["lambda"] = (d["Days"] - 4.5) ** 2
    d["Intercept"] = (d["Days"] % 4) - 1.5
    d["1"] = np.sqrt(d["Days"] + 1.0)
    return d


def _numbers(v) -> np.ndarray:
    return np.array([float(x) for x in (v if isinstance(v, list) else [v])])


@pytest.mark.parametrize("name", list(_reference()))
def test_r_formula_habits_match_lme4(name):
    ref = _reference()[name]
    data = (load_csv("Dyestuff.csv", ["Batch"]) if name == "bare_bar" else
            load_csv("cake.csv", ["recipe", "replicate"]) if name == "dummy" else _sleep())
    fit = mixeff.lmer(ref["r_formula"], data, reml=ref["reml"])
    assert fit.objective == pytest.approx(float(ref["objective"][0]), abs=1e-6)
    se = _numbers(ref["std_errors"])
    assert np.max(np.abs(fit.fixef.to_numpy() - _numbers(ref["fixef"])) / se) < 1e-4
    np.testing.assert_allclose(fit.sigma, float(ref["sigma"][0]), rtol=1e-5)
    assert len(fit.fixef) == len(ref["fixef_names"] if isinstance(ref["fixef_names"], list)
                                 else [ref["fixef_names"]])


def test_power_is_not_xor():
    """Issue 13: I(Days^2) was Days XOR 2 (REML 1739.35); it is Days squared (1742.82)."""
    d = load_csv("sleepstudy.csv", ["Subject"])
    fit = mixeff.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", d)
    np.testing.assert_array_equal(fit.design.X[:, 2], d["Days"].to_numpy() ** 2.0)
    assert round(fit.objective, 2) == 1742.82


def test_formula_level_power_stays_interaction():
    d = _data().assign(z=np.linspace(0, 1, 40))
    a = build_design("y ~ (x + z)^2 + (1 | g)", d)
    b = build_design("y ~ x + z + x:z + (1 | g)", d)
    assert a.xnames == b.xnames
    np.testing.assert_array_equal(a.X, b.X)


def test_r_logic_and_membership():
    d = _data().assign(k=np.arange(40) % 5)
    des = build_design("y ~ I(k %in% c(1, 3)) + I(!(k > 2) & x > 1.5) + (1 | g)", d)
    k, x = d["k"].to_numpy(), d["x"].to_numpy()
    cols = {nm: des.X[:, j] for j, nm in enumerate(des.xnames)}
    got = [v for nm, v in cols.items() if "isin" in nm]
    np.testing.assert_array_equal(got[0], np.isin(k, [1, 3]).astype(float))
    got = [v for nm, v in cols.items() if "logical" in nm or "not" in nm]
    np.testing.assert_array_equal(got[0], (~(k > 2) & (x > 1.5)).astype(float))


def test_keyword_columns_bare():
    d = _sleep()
    fit = mixeff.lm("yield ~ class + lambda", d)
    ref = mixeff.lm("Reaction ~ c1 + c2", d.assign(c1=d["class"], c2=d["lambda"]))
    np.testing.assert_allclose(fit.coef.to_numpy(), ref.coef.to_numpy(), rtol=1e-12)
    assert list(fit.coef.index) == ["(Intercept)", "class", "lambda"]
    fit = mixeff.lmer("Reaction ~ Days + (1 | class)", d.assign(**{"class": d["Subject"]}))
    assert fit.ngroups == {"class": 18}


def test_bare_bar_as_lme4_reads_it():
    d = load_csv("Dyestuff.csv", ["Batch"])
    a = mixeff.lmer("Yield ~ 1|Batch", d)
    b = mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
    assert a.objective == b.objective and a.design.xnames == ["(Intercept)"]
    with pytest.raises(FormulaError, match="stray '|'"):
        mixeff.lmer("Yield ~ 1 | Batch | Batch", d)


def test_unsupported_r_says_what_to_write():
    d = _data()
    with pytest.raises(FormulaError, match=r"cr\(x, df=\.\.\.\)"):
        mixeff.lmer("y ~ ns(x, 3) + (1 | g)", d)
    with pytest.raises(FormulaError, match=r"np\.where"):
        mixeff.lmer("y ~ ifelse(x > 1, 1, 0) + (1 | g)", d)
    with pytest.raises(FormulaError, match="attribute access"):
        mixeff.lmer("y ~ {x.clip(0, 1)} + (1 | g)", d)


def test_dotted_names_are_columns_in_code():
    """R's names with dots (Sepal.Length, x.1) are one name inside code too."""
    d = _data()
    d2 = d.assign(**{"my.x": d["x"], "y.1": d["y"]})
    a = mixeff.lmer("y.1 ~ log(my.x) + I(my.x^2) + (1 | g)", d2)
    b = mixeff.lmer("y ~ log(x) + I(x^2) + (1 | g)", d)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-10)
    assert a.objective == pytest.approx(b.objective, abs=1e-9)
    np.testing.assert_allclose(a.predict(d2.iloc[:3]), b.predict(d.iloc[:3]), rtol=1e-10)


# --------------------------------------------------------------------------------------
# column names mean the column (issue 19)
# --------------------------------------------------------------------------------------


def _ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]


@pytest.mark.parametrize("formula", ["Reaction ~ Intercept", "Reaction ~ 1 + Intercept"])
def test_column_named_intercept_is_the_column(formula):
    d = _sleep()
    fit = mixeff.lm(formula, d)
    assert list(fit.coef.index) == ["(Intercept)", "Intercept"]
    X = np.column_stack([np.ones(len(d)), d["Intercept"]])
    np.testing.assert_allclose(fit.coef.to_numpy(), _ols(X, d["Reaction"].to_numpy()),
                               rtol=1e-10)
    m = mixeff.lmer(formula + " + (1 | Subject)", d)
    assert list(m.fixef.index) == ["(Intercept)", "Intercept"]
    m0 = mixeff.lmer("Reaction ~ 0 + Intercept + (1 | Subject)", d)
    assert list(m0.fixef.index) == ["Intercept"]


def test_backquoted_number_is_the_column():
    d = _sleep()
    fit = mixeff.lm("Reaction ~ `1`", d)
    X = np.column_stack([np.ones(len(d)), d["1"]])
    np.testing.assert_allclose(fit.coef.to_numpy(), _ols(X, d["Reaction"].to_numpy()),
                               rtol=1e-10)
    assert list(fit.coef.index) == ["(Intercept)", "`1`"]
    m = mixeff.lmer("Reaction ~ `1` + (1 | Subject)", d)
    assert list(m.fixef.index) == ["(Intercept)", "`1`"]
    p = np.asarray(m.predict(d.iloc[:4], re_form="NA"))
    np.testing.assert_allclose(p, m.fixef.iloc[0] + m.fixef.iloc[1] * d["1"].iloc[:4],
                               rtol=1e-10)
    with pytest.raises(FormulaError, match="'1'"):
        mixeff.lm("Reaction ~ `1`", d.drop(columns="1"))


def test_r_dialect_on_the_dask_path():
    """The Dask path reads the formula as in memory (I(x^2), factor(), keyword columns)."""
    dd = pytest.importorskip("dask.dataframe")
    import dask

    d = _sleep()
    formula = "yield ~ Days + I(Days^2) + factor(class) + (Days | Subject)"
    mem = mixeff.lmer(formula, d)
    with dask.config.set(scheduler="synchronous"):
        dsk = mixeff.lmer(formula, dd.from_pandas(d, npartitions=3))
    assert list(dsk.fixef.index) == list(mem.fixef.index)
    np.testing.assert_allclose(dsk.fixef.to_numpy(), mem.fixef.to_numpy(), rtol=1e-7)
    assert dsk.objective == pytest.approx(mem.objective, abs=1e-7)


def test_predict_and_update_read_the_formula_alike():
    d = _sleep()
    m = mixeff.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", d)
    np.testing.assert_allclose(m.predict(d.iloc[:10]), np.asarray(m.fitted)[:10]
                               if not callable(m.fitted) else m.fitted()[:10], rtol=1e-9)
    m2 = m.update(". ~ . - I(Days^2)")
    assert list(m2.fixef.index) == ["(Intercept)", "Days"]


_X = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize(("r_code", "expected"), [
    ("-x^2", -(_X ** 2)),
    ("abs(x)^2^0.5", np.abs(_X) ** (2 ** 0.5)),
    ("2^-x", 2.0 ** -_X),
    ("x^2 + 1", _X ** 2 + 1),
    ("x^2 %in% c(1, 4)", np.isin(_X ** 2, [1, 4])),
    ("-x %in% c(1, 2)", np.isin(-_X, [1, 2])),
    ("x %in% c(0, 1) %in% TRUE", np.isin(np.isin(_X, [0, 1]), [True])),
    ("x > 0 & x < 3 | x == -2", ((_X > 0) & (_X < 3)) | (_X == -2)),
    ("!x > 1", ~(_X > 1)),
    ("!(x %in% c(1, 2)) && x != 0", ~np.isin(_X, [1, 2]) & (_X != 0)),
    ("x * TRUE + FALSE", _X * 1.0),
    ("x * T - F", _X * 1.0),
    ("2L * x", 2 * _X),
    ("pmax(x, 0) + abs(x) + sqrt(x^2)", np.maximum(_X, 0) + np.abs(_X) + np.abs(_X)),
])
def test_r_expressions_evaluate_as_in_r(r_code, expected):
    from mixeff._expr import evaluate, translate

    got = evaluate(translate(r_code)[0], {"x": pd.Series(_X)})
    np.testing.assert_array_equal(np.asarray(got, dtype=float),
                                  np.asarray(expected, dtype=float))


def test_translation_keeps_strings_and_formula_level():
    from mixeff._expr import translate

    assert translate("C(f, levels=['a^b', 'TRUE'])")[0] == "C(f, levels=['a^b', 'TRUE'])"
    pf = mixeff._formula.parse_formula("y ~ (a + b)^2 + I(a^2) + (1 | g)")
    assert pf.fixed == "(a + b)^2 + I(a**2)"


def test_pickled_fit_predicts_in_a_fresh_process(tmp_path):
    """The fit's model spec names mixeff's materializer; a new process finds it."""
    import pickle
    import subprocess
    import sys

    d = _sleep()
    m = mixeff.lmer("Reaction ~ Days + I(Days^2) + log(`1`) + (Days | Subject)", d)
    path = tmp_path / "fit.pkl"
    path.write_bytes(pickle.dumps(m))
    d.iloc[:5].to_csv(tmp_path / "new.csv", index=False)
    code = ("import pickle, sys, pandas as pd\n"
            f"m = pickle.loads(open({str(path)!r}, 'rb').read())\n"
            f"d = pd.read_csv({str(tmp_path / 'new.csv')!r})\n"
            "d['Subject'] = d['Subject'].astype(str)\n"
            "print(repr(list(m.predict(d))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ,
                              "PYTHONPATH": str(REPO / "src")}, check=True)
    got = np.array(eval(out.stdout.strip(), {"np": np}))  # noqa: S307 - our own output
    np.testing.assert_allclose(got, m.predict(d.iloc[:5]), rtol=1e-12)
