"""Parsing lme4 formulas: random-term expansion, fixed part, offsets, positioned errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixeff._errors import FormulaError
from mixeff._formula import ParsedFormula, RandomTerm, parse_formula


def _terms(pf: ParsedFormula) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(t.expr, t.label, t.factors) for t in pf.random]


# --------------------------------------------------------------------------------------
# accepted syntax
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "response", "fixed", "terms"),
    [
        ("Reaction ~ Days + (Days | Subject)", "Reaction", "Days",
         [("Days", "Subject", ("Subject",))]),
        ("y ~ (1|g)", "y", "1", [("1", "g", ("g",))]),
        ("y ~ 1 + x + (1 + x | g)", "y", "1 + x", [("1 + x", "g", ("g",))]),
        ("y ~ x + (0 + x | g)", "y", "x", [("0 + x", "g", ("g",))]),
        ("y ~ x + (-1 + x | g)", "y", "x", [("-1 + x", "g", ("g",))]),
        ("y ~ x + (1 + x || g)", "y", "x",
         [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ x + (x || g)", "y", "x", [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ (0 + x || g)", "y", "1", [("0 + x", "g", ("g",))]),
        ("y ~ (x * z || g)", "y", "1",
         [("1", "g", ("g",)), ("0 + x", "g", ("g",)), ("0 + z", "g", ("g",)),
          ("0 + x:z", "g", ("g",))]),
        ("strength ~ 1 + (1 | batch/cask)", "strength", "1",
         [("1", "batch", ("batch",)), ("1", "cask:batch", ("cask", "batch"))]),
        ("y ~ (1 | a/b/c)", "y", "1",
         [("1", "a", ("a",)), ("1", "b:a", ("b", "a")), ("1", "c:b:a", ("c", "b", "a"))]),
        ("angle ~ recipe * temperature + (1 | recipe:replicate)", "angle",
         "recipe * temperature", [("1", "recipe:replicate", ("recipe", "replicate"))]),
        ("y ~ (x | a/b)", "y", "1", [("x", "a", ("a",)), ("x", "b:a", ("b", "a"))]),
        ("y ~ (1 | a:b/c)", "y", "1",
         [("1", "a:b", ("a", "b")), ("1", "c:a:b", ("c", "a", "b"))]),
        ("y ~ (x || a/b)", "y", "1",
         [("1", "a", ("a",)), ("1", "b:a", ("b", "a")),
          ("0 + x", "a", ("a",)), ("0 + x", "b:a", ("b", "a"))]),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "diameter", "1",
         [("1", "plate", ("plate",)), ("1", "sample", ("sample",))]),
        ("y ~ x + (1 | g) + (0 + x | g) + (1 | h)", "y", "x",
         [("1", "g", ("g",)), ("0 + x", "g", ("g",)), ("1", "h", ("h",))]),
        ("y~x+(1|g)", "y", "x", [("1", "g", ("g",))]),
        ("y ~ ((1 | g))", "y", "1", [("1", "g", ("g",))]),
        ("y ~ (1 | my.group_2)", "y", "1", [("1", "my.group_2", ("my.group_2",))]),
        ("y ~ (1 | `my group`)", "y", "1", [("1", "my group", ("my group",))]),
        ("y ~ x", "y", "x", []),
    ],
)
def test_accepted(formula, response, fixed, terms):
    pf = parse_formula(formula)
    assert pf.text == formula
    assert pf.response == response
    assert pf.fixed == fixed
    assert _terms(pf) == terms
    for t in pf.random:
        assert isinstance(t, RandomTerm)
        assert formula[t.start] == "("
        assert t.label == ":".join(t.factors)


@pytest.mark.parametrize(
    ("formula", "fixed"),
    [
        ("y ~ -1 + x + (1|g)", "-1 + x"),
        ("y ~ 0 + x + (1|g)", "0 + x"),
        ("y ~ (1|g) + 0 + x", "0 + x"),
        ("y ~ (1|g) - 1", "-1"),
        ("y ~ 0 + (1|g)", "0"),
        ("y ~ week * C(temp) + (1|g)", "week * C(temp)"),
        ("y ~ a:b + (1|g) + c", "a:b + c"),
        ("y ~ np.log(x) + I(x^2) + (1|g)", "np.log(x) + I(x**2)"),
        ("y ~ C(f, contr.treatment) + (1|g)", "C(f, contr.treatment)"),
        ("y ~ (1|g) + x - 1", "x - 1"),
        ("y ~ {a | b} + (1|g)", "{a or b}"),
    ],
)
def test_fixed_part(formula, fixed):
    assert parse_formula(formula).fixed == fixed


def test_positions_of_terms():
    f = "y ~ x + (1 | g) + (x || h)"
    pf = parse_formula(f)
    assert [t.start for t in pf.random] == [8, 18, 18]


def test_response_expression():
    pf = parse_formula("np.log(y) ~ x + (1|g)")
    assert pf.response == "np.log(y)"
    assert parse_formula("`my y` ~ x").response == "`my y`"


def test_offsets_pulled_out():
    pf = parse_formula("Reaction ~ Days + offset(0.5*Days) + (Days | Subject)")
    assert pf.fixed == "Days"
    assert pf.offset_exprs == ("0.5*Days",)
    pf = parse_formula("y ~ offset(np.log(t)) + offset(z) + (1|g)")
    assert pf.fixed == "1"
    assert pf.offset_exprs == ("np.log(t)", "z")
    assert parse_formula("y ~ x").offset_exprs == ()


def test_double_bar_term_names_reparse():
    pf = parse_formula("y ~ (1 + `a b` + {u | v} || g)")
    assert [t.expr for t in pf.random] == ["1", "0 + `a b`", "0 + {u or v}"]


def test_parsed_formula_is_frozen():
    pf = parse_formula("y ~ x + (1|g)")
    with pytest.raises(AttributeError):
        pf.fixed = "z"  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "position", "words"),
    [
        ("y + x", 0, "no '~'"),
        ("y ~ x ~ z", 6, "more than one '~'"),
        (" ~ x", 1, "no response"),
        ("~ x + (1|g)", 0, "no response"),
        ("y ~ (x + (1|g)", 4, "never closed"),
        ("y ~ x + (1|g", 8, "never closed"),
        ("y ~ x)", 5, "unmatched ')'"),
        ("y ~ (1|g))", 9, "unmatched ')'"),
        ("y ~ [x)", 6, "closed by ')'"),
        ("y ~ (|g)", 5, "no expression before the bar"),
        ("y ~ ( | g)", 6, "no expression before the bar"),
        ("y ~ (1|)", 7, "no grouping factor"),
        ("y ~ (1 || )", 10, "no grouping factor"),
        ("y ~ (1 | | g)", 9, "stray '|'"),
        ("y ~ (1 || | g)", 10, "stray '|'"),
        ("y ~ (1 ||| g)", 9, "stray '|'"),
        ("y ~ (1 | g | h)", 11, "stray '|'"),
        ("y ~ (1 | log(g))", 12, "grouping factor must be"),
        ("y ~ (1 | a b)", 11, "grouping factor must be"),
        ("y ~ (1 | a + b)", 11, "grouping factor must be"),
        ("y ~ (1 | 1)", 9, "grouping factor must be"),
        ("y ~ (1 | a/)", 11, "name is missing"),
        ("y ~ (1 | a:)", 11, "name is missing"),
        ("", 0, "empty formula"),
        ("   ", 0, "empty formula"),
        ("y ~ x +", 6, "ends with the operator '+'"),
        ("y ~ x + (1|g) -", 14, "ends with the operator '-'"),
        ("y ~", 3, "no terms after '~'"),
        ("y ~ x + + z", 8, "two operators in a row"),
        ("y ~ x *", 6, "insuff"),
        ("y ~ x:", 5, "insuff"),
        ("y ~ x - (1|g)", 6, "cannot be subtracted"),
        ("y ~ x * (1|g)", 10, "'|' is only allowed"),
        ("y ~ (x + (1|g))", 11, "'|' is only allowed"),
        ("y ~ x:offset(z)", 6, "offset() must be a separate term"),
        ("y ~ x - offset(z)", 6, "cannot be subtracted"),
        ("y ~ offset() + x", 10, "offset() needs an expression"),
        ("y ~ (0 | g)", 4, "no columns"),
        ("y ~ (x ~ z | g)", 7, "unexpected '~'"),
        ("y ~ 'abc", 4, "unterminated string"),
        ("y ~ a b", 4, "Missing operator"),
        ("y x ~ z", 2, "invalid response"),
    ],
)
def test_errors(formula, position, words):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    err = info.value
    assert err.position == position, str(err)
    assert err.formula == formula
    assert words in str(err)


def test_error_message_has_caret():
    with pytest.raises(FormulaError) as info:
        parse_formula("y ~ x * (1|g)")
    lines = str(info.value).splitlines()
    assert lines[-2].strip() == "y ~ x * (1|g)"
    assert lines[-1].index("^") - lines[-2].index("y") == 10


def test_not_a_string():
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(None)  # type: ignore[arg-type]


def test_formula_error_is_value_error():
    with pytest.raises(ValueError):
        parse_formula("y ~ (1|)")


# --------------------------------------------------------------------------------------
# fuzz: every input either parses or raises FormulaError
# --------------------------------------------------------------------------------------

_TOKENS = [
    "y", "x", "z", "g", "h", "Days", "Subject", "a", "b", "1", "0", "-1", "0.5",
    "~", "+", "-", "*", ":", "/", "^", "|", "||", "(", ")", "{", "}", "[", "]", ",",
    " ", "  ", "'", '"', "`", "C(", "np.log(", "I(", "offset(", "log(", "**", "\n",
    "~ ", " + ", "(1 | g)", "(x || g)", "(1|a/b)", "(1|a:b)", "=", "%in%", ".",
]


def _check_parse(text: str) -> None:
    try:
        pf = parse_formula(text)
    except FormulaError as err:
        assert err.position is None or 0 <= err.position <= len(text)
        return
    assert isinstance(pf, ParsedFormula)
    assert pf.response.strip() == pf.response != ""
    assert pf.fixed
    for t in pf.random:
        assert text[t.start] == "(" or text[t.start] == "~"  # "~": y ~ x | g
        assert t.label == ":".join(t.factors)
        assert t.factors and all(t.factors)
        assert t.expr


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text(text):
    _check_parse(text)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join))
def test_fuzz_formula_like(text):
    _check_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=15).map(lambda t: "y ~ " + "".join(t)))
def test_fuzz_right_hand_side(text):
    _check_parse(text)
