"""Expressions in formulas: lme4's (R's) dialect, an allow-list, and a closed namespace.

A formula is user input, and parts of it are code: the response (``log(y)``), the
``offset(...)`` terms, calls in the fixed part and in random-effects terms (``I(x^2)``,
``poly(x, 2)``, ``C(f)``) and ``{...}`` blocks. Nothing of it is run as it is written:

1. :func:`translate` rewrites R's reading of the code regions into Python before anything
   else reads them (formulaic included): ``^`` is the power (``**``), ``&``/``&&``,
   ``|``/``||`` and ``!`` are R's elementwise logic (``and``/``or``/``not``, evaluated as
   ``np.logical_*``), ``a %in% b`` is ``np.isin(a, b)``, ``TRUE``/``FALSE`` are Python's,
   ``1L`` is ``1``, and a name that is a Python keyword but not an operator (``yield``,
   ``class``, ``lambda``...) is a column name, as is a name with dots (``Sepal.Length``,
   unless it starts with ``np.``/``numpy.``/``contr.`` or is called), ``pkg::fn`` is
   ``fn`` and ``as.numeric``/``as.factor`` are known. A back-quoted number at formula level
   (the column named ``1``) is that column (``Q('1')``), never the literal.
2. :func:`check` parses the Python code (``ast``) and walks it against an allow-list:
   column names, numbers and strings, arithmetic, comparisons and logic, calls of the
   functions of :func:`functions` (mixeff's documented transforms and formulaic's
   harmless ones), ``np.<name>``/``numpy.<name>`` for the elementwise maths in
   :data:`NUMPY` and ``contr.<coding>``. No other attribute, no dunder name, no
   subscript, lambda, comprehension, f-string, starred or keyword-unpacking argument,
   no builtins. The result is cached per expression text, so a model refitted many
   times walks each expression once. The checked tree is then compiled with R's logic as
   ``np.logical_*`` and R's power as ``np.float_power`` (a power of doubles, so that
   ``2^-x`` works for integer ``x``).
3. Evaluation runs in a namespace holding only the data columns and the allowed names:
   :func:`evaluate` for mixeff's own expressions (``__builtins__`` empty), and
   :func:`materializer`, formulaic's pandas materializer with the same check before each
   factor and a layered context of data, allowed functions and a layer that shadows every
   builtin, for formulaic's factors.

``allow_python=True`` (or an ``eval_env=``) on :func:`mixeff.lmer` / :func:`mixeff.lm`
turns 2. and 3. off: expressions are then evaluated by Python with its builtins,
formulaic's transforms and the names of ``eval_env``, as mixeff did before (the R
dialect of 1. still applies). The command line never turns them off.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import FormulaError

__all__ = ["Checked", "check", "evaluate", "materializer", "translate"]

#: Hint appended to every refusal.
OPT_IN = ("to run your own Python code in a formula, pass allow_python=True (or eval_env=) "
          "to lmer/lm (never possible from the command line)")

#: numpy names allowed as ``np.<name>`` / ``numpy.<name>``: elementwise maths and a few
#: reductions and constants; nothing that reads or writes files or reaches other modules.
NUMPY = frozenset("""
abs absolute fabs sign sqrt cbrt square exp exp2 expm1 log log10 log2 log1p power
float_power sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh
arctanh deg2rad rad2deg degrees radians hypot floor ceil trunc rint round around fix clip
where maximum minimum fmax fmin mod fmod remainder reciprocal negative positive isnan
isfinite isinf isin logical_and logical_or logical_not logical_xor mean std var median
sum prod min max pi e inf nan
""".split())

#: Codings reachable as ``contr.<name>`` (formulaic's contrasts registry).
CONTR = frozenset({"treatment", "sum", "helmert", "poly", "diff", "custom", "SAS"})

#: Constants a formula may name (when no column has the name): R's T, F, pi, Inf.
CONSTANTS = {"T": True, "F": False, "pi": 3.141592653589793, "Inf": float("inf")}

#: Names besides the constants that may be used as values, not only called: formulaic's
#: codings, as in ``C(f, Sum)``.
VALUE_NAMES = frozenset(CONSTANTS) | {"Sum", "Poly", "Helmert", "Diff", "Treatment"}

#: Python keywords that are operators or constants; every other keyword in a code region
#: is read as a column name (R has none of them).
_PY_OPERATORS = frozenset({"and", "or", "not", "in", "is", "if", "else", "for", "None",
                           "True", "False"})

_TOKEN_RE = re.compile(r"""
 (?P<ws>\s+)
|(?P<str>'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?)
|(?P<bq>`[^`]*`?)
|(?P<num>(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJ]?L?)
|(?P<name>[^\W\d]\w*)
|(?P<op>%\s*in\s*%|\*\*|//|==|!=|<=|>=|&&|\|\||->|<-|[-+*/%^&|!~<>=(),\[\]{}:@.;])
|(?P<other>.)
""", re.X | re.S)
_NUMBER_NAME_RE = re.compile(r"^`\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*`$")
_IN_RE = re.compile(r"%\s*in\s*%")


# --------------------------------------------------------------------------------------
# 1. R's dialect, as text
# --------------------------------------------------------------------------------------


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int
    code: bool


def _tokens(text: str, in_code: list[bool] | None) -> list[_Tok]:
    out = []
    for m in _TOKEN_RE.finditer(text):
        pos = m.start()
        code = True if in_code is None else (in_code[pos] if pos < len(in_code) else False)
        out.append(_Tok(m.lastgroup or "other", m.group(0), pos, code))
    return out


def _operand_left(toks: list[_Tok], i: int) -> int:
    """Index of the first token of the operand that ends at token ``i`` (R's precedence:
    an atom with its calls/indices, powers, and leading unary signs)."""
    j = i
    while True:
        j = _atom_left(toks, j)
        k = _skip_ws_left(toks, j - 1)
        if k >= 0 and toks[k].text in ("^", "**"):
            j = _skip_ws_left(toks, k - 1)
            if j < 0:
                return k
            continue
        break
    while True:
        k = _skip_ws_left(toks, j - 1)
        if k >= 0 and toks[k].text in ("-", "+"):
            p = _skip_ws_left(toks, k - 1)
            if p < 0 or toks[p].kind == "op" and toks[p].text not in (")", "]", "}"):
                j = k
                continue
        return j


def _skip_ws_left(toks: list[_Tok], j: int) -> int:
    while j >= 0 and toks[j].kind == "ws":
        j -= 1
    return j


def _skip_ws_right(toks: list[_Tok], j: int) -> int:
    while j < len(toks) and toks[j].kind == "ws":
        j += 1
    return j


def _atom_left(toks: list[_Tok], j: int) -> int:
    """First token of the atom (with trailing calls/indices/attributes) ending at ``j``."""
    while True:
        t = toks[j]
        if t.text in (")", "]", "}"):
            depth = 0
            while j >= 0:
                if toks[j].text in (")", "]", "}"):
                    depth += 1
                elif toks[j].text in ("(", "[", "{"):
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            j = max(j, 0)
            k = _skip_ws_left(toks, j - 1)
            if k >= 0 and (toks[k].kind in ("name", "bq") or toks[k].text in (")", "]")):
                j = k
                continue
            return j
        k = j - 1
        if k >= 0 and toks[k].text == "." and k - 1 >= 0 and toks[k - 1].kind in ("name",
                                                                                  "bq"):
            j = k - 1
            continue
        return j


def _operand_right(toks: list[_Tok], i: int) -> int:
    """Index of the last token of the operand that starts at token ``i``."""
    j = i
    while j < len(toks) and toks[j].text in ("-", "+") or (j < len(toks)
                                                          and toks[j].kind == "ws"):
        j += 1
    if j >= len(toks):
        return len(toks) - 1
    while True:
        j = _atom_right(toks, j)
        k = _skip_ws_right(toks, j + 1)
        if k < len(toks) and toks[k].text in ("^", "**"):
            k = _skip_ws_right(toks, k + 1)
            while k < len(toks) and toks[k].text in ("-", "+"):
                k = _skip_ws_right(toks, k + 1)
            if k >= len(toks):
                return len(toks) - 1
            j = k
            continue
        return j


def _atom_right(toks: list[_Tok], j: int) -> int:
    while True:
        if toks[j].text in ("(", "[", "{"):
            depth = 0
            while j < len(toks):
                if toks[j].text in ("(", "[", "{"):
                    depth += 1
                elif toks[j].text in (")", "]", "}"):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            j = min(j, len(toks) - 1)
        k = j + 1
        if k < len(toks) and toks[k].text in ("(", "["):
            j = k
            continue
        if k + 1 < len(toks) and toks[k].text == "." and toks[k + 1].kind == "name":
            j = k + 1
            continue
        return j


#: R functions with a dot in their name, as mixeff calls them.
_R_CALLS = {"as.numeric": "as_numeric", "as.double": "as_numeric", "as.integer": "as_numeric",
            "as.factor": "factor"}


def _dotted_name_end(toks: list[_Tok], k: int) -> int:
    """Last token of an R name with dots starting at ``k`` (``k`` itself when none).

    ``a.b``, ``x.1``, ``a.b.c`` written without spaces are one name, as in R, unless the
    first part is ``np``, ``numpy`` or ``contr`` or the chain is called (``x.clip(0)``).
    """
    if toks[k].text in ("np", "numpy", "contr"):
        return k
    j = k
    while True:
        if (j + 2 < len(toks) and toks[j + 1].text == "."
                and toks[j + 2].kind in ("name", "num")):
            j += 2
        elif (j + 1 < len(toks) and toks[j + 1].kind == "num"
              and toks[j + 1].text.startswith(".")):
            j += 1  # x.1: the tokenizer reads ".1" as a number
        else:
            break
    if j + 1 < len(toks) and toks[j + 1].text == ".":
        j += 1  # a trailing dot belongs to the name too (R's `x.`)
    if j == k:
        return k
    nxt = _skip_ws_right(toks, j + 1)
    if nxt < len(toks) and toks[nxt].text in ("(", "["):
        return k
    return j


def translate(text: str, in_code: list[bool] | None = None) -> tuple[str, list[int]]:
    """R's reading of the code in ``text``, as Python; and a map back to positions.

    Parameters
    ----------
    text
        A formula or an expression.
    in_code
        Per character of ``text``, whether it lies in a code region (a call's arguments, a
        ``{...}`` block, the response); None: all of ``text`` is code.

    Returns
    -------
    (str, list of int)
        The translated text and, per character of it, the position in ``text`` it comes
        from (inserted characters map to the token that caused them).
    """
    toks = _tokens(text, in_code)
    pieces: list[list[Any]] = [[t.text, t.pos] for t in toks]
    skip = 0
    for k, t in enumerate(toks):
        if skip:
            skip -= 1
            continue
        if t.kind == "name" and k + 2 < len(toks) and toks[k + 1].text == ":" \
                and toks[k + 2].text == ":" and (k == 0 or toks[k - 1].text != "."):
            pieces[k][0] = pieces[k + 1][0] = ""   # splines::ns -> ns (R's pkg::fn)
            pieces[k + 2][0] = ""
            skip = 2
            continue
        if t.kind == "name" and k + 3 < len(toks) and toks[k + 1].text == "." \
                and toks[k + 2].kind == "name":
            call = f"{t.text}.{toks[k + 2].text}"
            if call in _R_CALLS and _skip_ws_right(toks, k + 3) < len(toks) \
                    and toks[_skip_ws_right(toks, k + 3)].text == "(":
                pieces[k][0] = _R_CALLS[call]
                pieces[k + 1][0] = pieces[k + 2][0] = ""
                skip = 2
                continue
        if t.code and t.kind == "name" and (k == 0 or toks[k - 1].text != "."):
            end = _dotted_name_end(toks, k)
            if end > k:  # R's dotted name (Sepal.Length), not np.log or a method call
                pieces[k][0] = "`" + "".join(x.text for x in toks[k:end + 1]) + "`"
                for j in range(k + 1, end + 1):
                    pieces[j][0] = ""
                skip = end - k
                continue
        if not t.code:
            if t.kind == "bq" and _NUMBER_NAME_RE.match(t.text):
                inner = t.text[1:-1]
                pieces[k][0] = f"Q({inner!r})"
            elif t.kind == "name" and keyword.iskeyword(t.text) and \
                    t.text not in ("True", "False", "None"):
                pieces[k][0] = f"`{t.text}`"  # formula level: a keyword is a column
            continue
        if t.kind == "op":
            word = {"&": "and", "&&": "and", "|": "or", "||": "or", "!": "not"}.get(t.text)
            if t.text == "^":
                pieces[k][0] = "**"
            elif word is not None:
                before = "" if k == 0 or toks[k - 1].kind == "ws" or word == "not" and \
                    toks[k - 1].text in ("(", "[", ",") else " "
                after = "" if k + 1 < len(toks) and toks[k + 1].kind == "ws" else " "
                pieces[k][0] = f"{before}{word}{after}"
        elif t.kind == "name":
            if t.text == "TRUE":
                pieces[k][0] = "True"
            elif t.text == "FALSE":
                pieces[k][0] = "False"
            elif keyword.iskeyword(t.text) and t.text not in _PY_OPERATORS and not (
                    k + 1 < len(toks) and toks[k + 1].text == "."):
                prev = _skip_ws_left(toks, k - 1)
                nxt = _skip_ws_right(toks, k + 1)
                if prev < 0 and nxt < len(toks) and toks[nxt].text == "~":
                    pieces[k][0] = f"`{t.text}`"  # the response
                else:  # formulaic unquotes `class` in code, so look the column up by name
                    pieces[k][0] = f"Q({t.text!r})"
        elif t.kind == "num" and t.text.endswith("L") and len(t.text) > 1:
            pieces[k][0] = t.text[:-1]
    # a %in% b -> np.isin(a, b); left to right (R's %op% associate to the left)
    ins = [k for k, t in enumerate(toks) if t.code and t.kind == "op" and _IN_RE.fullmatch(t.text)]
    joined: dict[int, int] = {}
    for k in ins:
        lft = _skip_ws_left(toks, k - 1)
        rgt = _skip_ws_right(toks, k + 1)
        if lft < 0 or rgt >= len(toks) or toks[lft].text in ("(", "[", "{", ",") \
                or toks[rgt].text in (")", "]", "}", ","):
            continue  # a missing operand: Python reports the syntax error
        a = joined.get(lft, None)
        if a is None:
            a = _operand_left(toks, lft)
        b = _operand_right(toks, rgt)
        joined[b] = a
        pieces[a][0] = "np.isin(" + pieces[a][0]
        pieces[k][0] = ","
        pieces[b][0] = pieces[b][0] + ")"
    out: list[str] = []
    posmap: list[int] = []
    for piece, pos in pieces:
        out.append(piece)
        posmap.extend([pos] * len(piece))
    return "".join(out), posmap


# --------------------------------------------------------------------------------------
# 2. the allow-list
# --------------------------------------------------------------------------------------


def _c(*args: Any) -> Any:
    """R's ``c(...)``: the values as a numpy array (for ``x %in% c("a", "b")``; an array,
    so that ``c(1) * 10**9`` is arithmetic, not a list repeated a billion times)."""
    import numpy as np

    out: list = []
    for a in args:
        out.extend(np.ravel(a).tolist() if not isinstance(a, str) else [a])
    return np.asarray(out)


@functools.cache
def functions() -> dict[str, Any]:
    """The callable names a formula may use, with their implementations."""
    import numpy as np
    from formulaic.transforms import TRANSFORMS

    keep = ("I", "C", "log", "log10", "log2", "exp", "exp2", "poly", "scale", "center",
            "standardize", "bs", "cr", "cs", "cc", "lag", "hashed", "Q", "Treatment", "Sum",
            "Poly", "Helmert", "Diff")
    out = {k: TRANSFORMS[k] for k in keep if k in TRANSFORMS}
    out.update(factor=TRANSFORMS["C"], sqrt=np.sqrt, abs=np.abs, log1p=np.log1p,
               expm1=np.expm1, floor=np.floor, ceiling=np.ceil, trunc=np.trunc,
               round=np.round, sign=np.sign, sin=np.sin, cos=np.cos, tan=np.tan,
               pmin=np.minimum, pmax=np.maximum, c=_c, dummy=_dummy, as_numeric=_as_numeric)
    return out


def _dummy(x: Any, levels: Any) -> Any:
    """lme4's ``dummy(f, levelsToKeep)``: the indicator of each level kept (one column for
    one level, as in ``(0 + dummy(f, "a") | g)``)."""
    import numpy as np

    kept = [levels] if isinstance(levels, str) or np.ndim(levels) == 0 else list(levels)
    x = np.asarray(x, dtype=object).astype(str)
    if len(kept) == 1:
        return (x == str(kept[0])).astype(np.float64)
    return {str(v): (x == str(v)).astype(np.float64) for v in kept}


def _as_numeric(x: Any) -> Any:
    """R's ``as.numeric`` of a numeric or logical column (text is not converted)."""
    import numpy as np

    return np.asarray(x, dtype=np.float64)


#: Calls written in R that have no counterpart here, with what to write instead.
_INSTEAD = {
    "ns": "ns() (R's splines::ns) is not available: use cr(x, df=...) (formulaic's natural "
          "cubic regression spline, a basis other than R's) or compute the ns() columns "
          "beforehand",
    "relevel": "write C(x, contr.treatment('level')) to choose the reference level",
    "ifelse": "write np.where(condition, a, b)",
}


@dataclass(frozen=True)
class Checked:
    """One expression, parsed and checked.

    Attributes
    ----------
    values
        Names used as values (column names, or T/F/pi/Inf), in text order; back-quoted
        names and ``Q('name')`` count as their column.
    calls
        Names of the called functions (``np.log`` counts as ``np.log``).
    refusal
        None when the expression passes the allow-list, else ``(name, reason)``: the
        offending name (searched for in the formula to position the error) and why.
    code
        The code formulaic should evaluate (logic rewritten to ``np.logical_*``, R's power
        to ``np.float_power``, ``Q('name')`` to a placeholder of ``looked_up``).
    compiled
        The compiled code for :func:`evaluate` (back-quoted names as placeholders).
    quoted
        Placeholder -> column name of the back-quoted names (and of ``looked_up``).
    looked_up
        Placeholder -> column name of the ``Q('name')`` lookups in ``code`` (formulaic's
        ``Q`` is a stateful transform; a plain name needs no state, e.g. on Dask).
    """

    values: tuple[str, ...]
    calls: tuple[str, ...]
    refusal: tuple[str, str] | None
    code: str
    compiled: Any
    quoted: tuple[tuple[str, str], ...]
    looked_up: tuple[tuple[str, str], ...] = ()


def _unquote(expr: str) -> tuple[str, dict[str, str]]:
    quoted: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        key = f"_mixeff_q{len(quoted)}_"
        quoted[key] = m.group(1)
        return key

    return re.sub(r"`([^`]*)`", sub, expr), quoted


#: Constructs outside the allow-list: what to call them, and the text to point at.
_NODE_NAMES = {
    ast.Lambda: ("lambda", "lambda"), ast.ListComp: ("comprehension", "for"),
    ast.SetComp: ("comprehension", "for"), ast.DictComp: ("comprehension", "for"),
    ast.GeneratorExp: ("generator expression", "for"), ast.JoinedStr: ("f-string", "f"),
    ast.FormattedValue: ("f-string", "f"), ast.Subscript: ("subscript [...]", "["),
    ast.Starred: ("starred argument", "*"), ast.NamedExpr: ("assignment (:=)", ":="),
    ast.IfExp: ("conditional expression (write np.where(condition, a, b))", "if"),
    ast.Dict: ("dict", "{"), ast.Set: ("set", "{"), ast.Slice: ("slice", ":"),
    ast.Await: ("await", "await"), ast.Yield: ("yield", "yield"),
    ast.YieldFrom: ("yield", "yield"),
}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
                  ast.Call, ast.keyword, ast.Name, ast.Attribute, ast.Constant, ast.List,
                  ast.Tuple, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
                  ast.expr_context)
_REFUSED_OPS = {ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@", ast.Is: "is",
                ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _dunder(name: str) -> bool:
    return name.startswith("__") or name.endswith("__")


def _const_value(node: ast.AST) -> float | None:
    """The value of a constant arithmetic expression, in floats (None if not constant)."""
    try:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = _const_value(node.operand)
            return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.BinOp):
            a, b = _const_value(node.left), _const_value(node.right)
            if a is None or b is None:
                return None
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            if type(node.op) in ops:
                return ops[type(node.op)]
            if isinstance(node.op, ast.Pow):
                return float("inf") if abs(b) > 1e4 else float(abs(a) ** b)
            return 1.0
    except (OverflowError, ZeroDivisionError, ValueError):
        return float("inf")
    return None


def _refuse(tree: ast.AST, quoted: Mapping[str, str]) -> tuple[str, str] | None:
    """The first construct of ``tree`` (in text order) outside the allow-list:
    ``(name, reason)``."""
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    found = []
    for node in ast.walk(tree):
        r = _refuse_node(node, parents, quoted)
        if r is not None:
            where = getattr(node, "col_offset", 0)
            if isinstance(node, ast.Attribute):
                where = (node.end_col_offset or where) - len(node.attr)
            found.append((where, r))
    return min(found, key=lambda t: t[0])[1] if found else None


def _refuse_node(node: ast.AST, parents: dict[int, ast.AST],
                 quoted: Mapping[str, str]) -> tuple[str, str] | None:
    """``(name, reason)`` when ``node`` itself is outside the allow-list."""
    funcs = functions()
    named = _NODE_NAMES.get(type(node))
    if named is not None or not isinstance(node, _ALLOWED_NODES):
        kind, word = named or (type(node).__name__, "")
        return word, f"{kind} is not allowed in a formula"
    if type(node) in _REFUSED_OPS:
        op = _REFUSED_OPS[type(node)]
        hint = " (write a %in% b for membership)" if op in ("in", "not in") else ""
        return op.split()[-1], f"the operator '{op}' is not allowed in a formula{hint}"
    if isinstance(node, ast.Name):
        name = quoted.get(node.id, node.id)
        if node.id in quoted:
            parent = parents.get(id(node))
            if isinstance(parent, ast.Call) and parent.func is node:
                return f"`{name}`", f"the column {name!r} cannot be called in a formula"
            return None
        if _dunder(name):
            return name, f"the name {name!r} is not allowed in a formula (dunder names " \
                         "are never evaluated)"
        parent = parents.get(id(node))
        if isinstance(parent, ast.Call) and parent.func is node:
            if name not in funcs:
                if name in _INSTEAD:
                    return name, f"unknown function {name!r}: {_INSTEAD[name]}"
                known = hasattr(builtins, name) or name in ("np", "numpy") or \
                    _formulaic_transform(name)
                if known:
                    return name, f"the function {name!r} is not allowed in a formula"
                return name, f"unknown function {name!r}"
        elif isinstance(parent, ast.Attribute) and parent.value is node:
            pass  # checked with the attribute
    elif isinstance(node, ast.Attribute):
        if _dunder(node.attr):
            return f".{node.attr}", f"the attribute '.{node.attr}' is not allowed in a " \
                              "formula (dunder names are never evaluated)"
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("np", "numpy") and node.attr in NUMPY:
            return None
        if isinstance(base, ast.Name) and base.id == "contr" and node.attr in CONTR:
            return None
        chain = _dotted(node)
        if chain is None:
            return f".{node.attr}", f"attribute access '.{node.attr}' is not allowed in a " \
                                    "formula"
        if chain.split(".")[0] in ("np", "numpy"):
            return f".{node.attr}", f"{chain!r} is not allowed in a formula (numpy's " \
                              "elementwise maths only, e.g. np.log, np.sqrt)"
        return chain, f"attribute access {chain!r} is not allowed in a formula (a " \
                      "column whose name has a dot? write it in back quotes: `a.b`)"
    elif isinstance(node, ast.Call):
        if isinstance(node.func, ast.Lambda):
            return "lambda", "lambda is not allowed in a formula"
        if not isinstance(node.func, (ast.Name, ast.Attribute)):
            return "(", "only named functions may be called in a formula"
        for kw in node.keywords:
            if kw.arg is None:
                return "**", "keyword unpacking (**) is not allowed in a formula"
            if _dunder(kw.arg):
                return kw.arg, f"the name {kw.arg!r} is not allowed in a formula"
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            return repr(node.value)[:10], "only numbers and strings may be written " \
                                          "as constants in a formula"
    elif isinstance(node, ast.BinOp):
        sides = (node.left, node.right)
        if isinstance(node.op, (ast.Mult, ast.Add)) and any(
                isinstance(s, (ast.List, ast.Tuple)) or isinstance(s, ast.Constant)
                and isinstance(s.value, str) for s in sides):
            return "*" if isinstance(node.op, ast.Mult) else "+", \
                "arithmetic on strings or lists is not allowed in a formula"
        if isinstance(node.op, ast.Pow):
            v = _const_value(node)
            if v is not None and not abs(v) < 1e300:
                return "**", "a constant power too large to compute"
    return None


@functools.cache
def _formulaic_transform(name: str) -> bool:
    from formulaic.transforms import TRANSFORMS

    return name in TRANSFORMS


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Logic(ast.NodeTransformer):
    """R's ``&``, ``|``, ``!`` (read as ``and``/``or``/``not``) as elementwise numpy calls;
    ``Q('name')`` as the column (a placeholder of ``quoted``) for :func:`evaluate`."""

    def __init__(self, quoted: dict[str, str]):
        self.quoted = quoted
        self.changed = False
        self.columns: dict[str, str] = {}

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if (isinstance(node.func, ast.Name) and node.func.id == "Q" and len(node.args) == 1
                and not node.keywords and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            key = f"_mixeff_q{len(self.quoted) + len(self.columns)}_"
            self.columns[key] = node.args[0].value
            return ast.copy_location(ast.Name(id=key, ctx=ast.Load()), node)
        return node

    def _np(self, name: str, args: list[ast.expr]) -> ast.Call:
        self.changed = True
        return ast.Call(func=ast.Attribute(value=ast.Name(id="np", ctx=ast.Load()),
                                           attr=name, ctx=ast.Load()), args=args, keywords=[])

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        name = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
        out = node.values[0]
        for v in node.values[1:]:
            out = self._np(name, [out, v])
        return out

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        """R's ``^`` is a power of doubles: ``2^-x`` is fine for integer ``x`` (numpy
        refuses negative integer powers of integers)."""
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow) and not (_const_value(node.left) is not None
                                                 and _const_value(node.right) is not None):
            return self._np("float_power", [node.left, node.right])
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return self._np("logical_not", [node.operand])
        return node


@functools.lru_cache(maxsize=2048)
def check(expr: str) -> Checked:
    """Parse ``expr`` (Python, back-quoted names allowed) and check it (cached per text).

    Raises
    ------
    SyntaxError
        When ``expr`` is not a Python expression.
    """
    code, quoted = _unquote(expr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "'int' is not callable"
        try:
            tree = ast.parse(code, mode="eval")
        except ValueError as exc:  # NUL bytes
            raise SyntaxError(str(exc)) from None
    refusal = _refuse(tree, quoted)
    # names: values (not called, not an attribute's base) and calls, in text order
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            parent = parents.get(id(node))
            if isinstance(parent, ast.Call) and parent.func is node:
                found.append((node.col_offset, node.id, True))
            elif isinstance(parent, ast.Attribute) and parent.value is node:
                chain = _dotted(_outer_attribute(node, parents))
                found.append((node.col_offset, chain or node.id, True))
                if node.id not in ("np", "numpy", "contr"):  # a column's method (Python)
                    found.append((node.col_offset, quoted.get(node.id, node.id), False))
            else:
                found.append((node.col_offset, quoted.get(node.id, node.id), False))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "Q" and len(node.args) == 1 and not node.keywords
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.col_offset, node.args[0].value, False))
    found.sort(key=lambda t: t[0])
    values = tuple(dict.fromkeys(nm for _, nm, f in found if not f))
    calls = tuple(dict.fromkeys(nm for _, nm, f in found if f))
    logic = _Logic(quoted)
    tree2 = ast.fix_missing_locations(logic.visit(tree))
    if logic.changed or logic.columns:
        out = ast.unparse(tree2)
        for key, name in quoted.items():
            out = out.replace(key, f"`{name}`")
    else:
        out = expr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        compiled = compile(tree2, "<formula>", "eval")
    return Checked(values=values, calls=calls, refusal=refusal, code=out, compiled=compiled,
                   quoted=tuple(quoted.items()) + tuple(logic.columns.items()),
                   looked_up=tuple(logic.columns.items()))


def _outer_attribute(node: ast.AST, parents: dict[int, ast.AST]) -> ast.AST:
    while isinstance(parents.get(id(node)), ast.Attribute):
        node = parents[id(node)]
    return node


def refused(expr: str, text: str | None, start: int = 0, what: str = "") -> None:
    """Raise a positioned :class:`FormulaError` when ``expr`` is outside the allow-list."""
    try:
        chk = check(expr)
    except SyntaxError:
        return  # reported by the caller, as a syntax error
    if chk.refusal is None:
        return
    name, reason = chk.refusal
    pos = find(text, name, start) if text else None
    where = f" in {what}" if what else ""
    raise FormulaError(f"{reason}{where}; {OPT_IN}", text, pos)


def find(text: str, name: str, start: int = 0) -> int | None:
    """Position of ``name`` in ``text`` from ``start`` (as a word when it is one)."""
    if not name:
        return None
    if re.fullmatch(r"\w+", name):
        pat = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    else:
        pat = re.compile(re.escape(name))
    m = pat.search(text, start) or pat.search(text)
    return None if m is None else m.start()


# --------------------------------------------------------------------------------------
# 3. evaluation in a closed namespace
# --------------------------------------------------------------------------------------


@functools.cache
def _numpy_proxy() -> Any:
    import types

    import numpy as np

    return types.SimpleNamespace(**{k: getattr(np, k) for k in NUMPY})


class _Blocked:
    """What a builtin name means in a formula's namespace: nothing usable."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise FormulaError(f"the name {self.name!r} is not allowed in a formula; {OPT_IN}")

    def __repr__(self) -> str:
        return f"<not allowed: {self.name}>"


@functools.cache
def _blocked() -> dict[str, _Blocked]:
    names = set(dir(builtins)) | {"__builtins__", "__import__", "__loader__", "__spec__"}
    return {nm: _Blocked(nm) for nm in names}


@functools.cache
def safe_names() -> dict[str, Any]:
    """Every name an expression may reach besides the columns."""
    out = dict(functions())
    out.update(CONSTANTS)
    out["np"] = out["numpy"] = _numpy_proxy()
    from formulaic.transforms import TRANSFORMS

    out["contr"] = TRANSFORMS["contr"]
    return out


class _SafeNamespace(Mapping):
    """Columns (and back-quoted placeholders), then the allowed names; nothing else."""

    def __init__(self, columns: Mapping[str, Any], quoted: tuple[tuple[str, str], ...]):
        self.columns = columns
        self.quoted = dict(quoted)

    def __getitem__(self, key: str) -> Any:
        if key in self.quoted:
            return self.columns[self.quoted[key]]
        if key in self.columns:
            return self.columns[key]
        return safe_names()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


def evaluate(expr: str, columns: Mapping[str, Any], allow_python: bool = False,
             env: Mapping[str, Any] | None = None) -> Any:
    """Evaluate the Python expression ``expr`` over ``columns``.

    Safe mode (default): ``expr`` must pass :func:`check` (else a FormulaError, without a
    position: callers check with positions first); names resolve to the columns and the
    allowed names only, with no builtins. ``allow_python``: Python's builtins,
    formulaic's transforms and ``env`` are reachable too (mixeff's behaviour before the
    allow-list).
    """
    chk = check(expr)
    if allow_python:
        from formulaic.transforms import TRANSFORMS

        quoted = dict(chk.quoted)
        ns: dict[str, Any] = {}
        ns.update(TRANSFORMS)
        ns.update(CONSTANTS)
        ns.update(env or {})
        ns.update({k: columns[v] for k, v in quoted.items()})
        return eval(chk.compiled, {"__builtins__": builtins.__dict__},  # noqa: S307
                    _Layered(columns, ns))
    if chk.refusal is not None:
        raise FormulaError(f"{chk.refusal[1]}; {OPT_IN}")
    return eval(chk.compiled, {"__builtins__": {}},  # noqa: S307 - checked, closed namespace
                _SafeNamespace(columns, chk.quoted))


class _Layered(Mapping):
    def __init__(self, *layers: Mapping[str, Any]):
        self.layers = layers

    def __getitem__(self, key: str) -> Any:
        for layer in self.layers:
            if key in layer:
                return layer[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for layer in self.layers for k in layer))

    def __len__(self) -> int:
        return len(list(iter(self)))


# --------------------------------------------------------------------------------------
# formulaic's side
# --------------------------------------------------------------------------------------

_MATERIALIZER: Any = None


def materializer() -> Any:
    """formulaic's pandas materializer with the allow-list (registered as ``"mixeff"``).

    ``materializer_params={"allow_python": True}`` gives formulaic's own evaluation with
    the caller's ``context``. Also names a data column ``Intercept`` so that it cannot be
    taken for the intercept (formulaic gives both the same name).
    """
    global _MATERIALIZER
    if _MATERIALIZER is None:
        _MATERIALIZER = _make_materializer()
    return _MATERIALIZER


#: The name a data column called "Intercept" gets in formulaic's output.
INTERCEPT_COLUMN = "`Intercept`"


def _make_materializer() -> Any:
    from formulaic.materializers import PandasMaterializer
    from formulaic.utils.layered_mapping import LayeredMapping
    from formulaic.utils.stateful_transforms import stateful_eval
    from interface_meta import override

    class MixeffMaterializer(PandasMaterializer):
        """Pandas materializer evaluating factors through mixeff's allow-list."""

        REGISTER_NAME = "mixeff"
        REGISTER_INPUTS = ()
        REGISTER_OUTPUTS = ("pandas", "numpy", "sparse")
        REGISTER_PRECEDENCE = -1000

        def __init__(self, data: Any, context: Mapping[str, Any] | None = None,
                     **params: Any):
            allow = bool(params.get("allow_python", False))
            super().__init__(data, context=context if allow else None, **params)
            self._allow = allow
            if not allow:
                self.layered_context = LayeredMapping(
                    LayeredMapping(self.data_context, name="data"),
                    LayeredMapping(safe_names(), name="transforms"),
                    LayeredMapping(_blocked(), name="blocked"),
                )

        @override
        def _evaluate(self, expr: str, metadata: Any, spec: Any) -> tuple[Any, set]:
            try:
                chk = check(expr)
            except SyntaxError:
                chk = None
            if chk is not None and chk.refusal is not None and not self._allow:
                raise FormulaError(f"{chk.refusal[1]}; {OPT_IN}")
            code = expr if chk is None else chk.code
            env = self.layered_context
            if chk is not None and chk.looked_up:
                env = LayeredMapping({key: self.data[name] for key, name in chk.looked_up},
                                     env)
            variables: set = set()
            value = stateful_eval(code, env, {expr: metadata, code: metadata},
                                  spec.transform_state, spec, variables=variables)
            return value, variables

        @override
        def _get_columns_for_term(self, factors: list, spec: Any, scale: float = 1) -> dict:
            out = super()._get_columns_for_term(factors, spec, scale=scale)
            if "Intercept" in out:  # a data column of that name, not the intercept
                out = {(INTERCEPT_COLUMN if k == "Intercept" else k): v for k, v in out.items()}
            return out

    return MixeffMaterializer
