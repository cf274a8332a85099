"""R's ``subset=`` argument: a boolean mask, or a restricted expression of columns.

A string is never run as code. It is parsed with :mod:`ast` and only these forms are
evaluated: column names (backtick-quoted names too), literals (numbers, strings,
``True``/``False``, R's ``TRUE``/``FALSE``/``T``/``F``, ``NA``), comparisons of them
(``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, chained), membership (``x in ["a", "b"]``,
R's ``x %in% c("a", "b")``), ``not`` / ``and`` / ``or`` (R's ``!``, ``&``, ``&&``, ``|``,
``||``), unary minus on numbers, and a logical column by itself. As in R, a row whose
condition is missing (NA) is left out.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError, FormulaError

__all__ = ["subset_mask"]

_R_WORDS = {"TRUE": True, "FALSE": False, "T": True, "F": False}


def subset_mask(subset: Any, data: pd.DataFrame) -> np.ndarray:
    """Rows of ``data`` selected by ``subset`` (boolean ``(n,)`` array).

    Parameters
    ----------
    subset
        A boolean array (one value per row, by position), a boolean Series (aligned on
        ``data``'s index; missing labels or NA select nothing), or a string expression
        (see the module docstring), e.g. ``"Days >= 2 & Subject != '308'"``.
    data
        The data.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the rows to use.
    """
    n = len(data)
    if isinstance(subset, str):
        return _expression_mask(subset, data)
    if isinstance(subset, pd.Series):
        if not (pd.api.types.is_bool_dtype(subset.dtype)
                or (subset.dtype == object and subset.dropna().map(type).eq(bool).all())):
            raise DataError(f"subset must be boolean (a Series of dtype {subset.dtype} was "
                            "given)")
        if subset.index.equals(data.index):
            s = subset
        else:
            if not subset.index.is_unique:
                raise DataError("a subset Series must have a unique index (or data's index)")
            s = subset.reindex(data.index)
        return s.fillna(False).to_numpy(dtype=bool)
    arr = np.asarray(subset)
    if arr.dtype != bool:
        raise DataError(f"subset must be a boolean mask or an expression string, not an "
                        f"array of dtype {arr.dtype} (row numbers: use data.iloc[...])")
    if arr.shape != (n,):
        raise DataError(f"subset has shape {arr.shape}; data have {n} rows")
    return arr.copy()


def _to_python(text: str) -> tuple[str, dict[str, str]]:
    """R's logical operators and ``%in%`` as Python; backtick names as identifiers."""
    quoted: dict[str, str] = {}
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            j = text.find(ch, i + 1)
            if j < 0:
                raise FormulaError("unterminated string in subset expression", text, i)
            out.append(text[i:j + 1])
            i = j + 1
        elif ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise FormulaError("unterminated backtick name in subset expression", text, i)
            key = f"__mixeff_q{len(quoted)}__"
            quoted[key] = text[i + 1:j]
            out.append(key)
            i = j + 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            out.append(" and " if ch == "&" else " or ")
            i += 2
        elif ch in "&|":
            out.append(" and " if ch == "&" else " or ")
            i += 1
        elif ch == "!" and not text.startswith("!=", i):
            out.append(" not ")
            i += 1
        elif text.startswith("%in%", i):
            out.append(" in ")
            i += 4
        else:
            out.append(ch)
            i += 1
    return "".join(out), quoted


class _Tri:
    """A logical vector with R's missing values: ``value`` where ``known``."""

    def __init__(self, value: np.ndarray, known: np.ndarray):
        self.value = value & known
        self.known = known


def _expression_mask(text: str, data: pd.DataFrame) -> np.ndarray:
    code, quoted = _to_python(text)
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse subset expression: {exc.msg}", text, None) from None
    ev = _Evaluator(data, quoted, text)
    res = ev.logical(tree.body)
    return res.value & res.known


class _Evaluator:
    def __init__(self, data: pd.DataFrame, quoted: dict[str, str], text: str):
        self.data = data
        self.quoted = quoted
        self.text = text
        self.n = len(data)

    def fail(self, msg: str) -> None:
        raise FormulaError(f"subset expression: {msg} (allowed: columns, literals, "
                           "comparisons, in / %in%, and / or / not, & | !)", self.text, None)

    # values: ("column", Series) or ("literal", python value) or ("list", tuple)
    def value(self, node: ast.AST) -> tuple[str, Any]:
        if isinstance(node, ast.Name):
            name = self.quoted.get(node.id, node.id)
            if name in self.data.columns:
                return "column", self.data[name]
            if name in _R_WORDS:
                return "literal", _R_WORDS[name]
            if name == "NA":
                return "literal", None
            raise DataError(f"subset expression names {name!r}, which is not a column of "
                            "the data")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (bool, int, float, str)) or node.value is None:
                return "literal", node.value
            self.fail(f"literal {node.value!r} is not allowed")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
                isinstance(node.operand, ast.Constant) and \
                isinstance(node.operand.value, (int, float)) and \
                not isinstance(node.operand.value, bool):
            return "literal", -node.operand.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return "list", tuple(self.literal(e) for e in node.elts)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "c" and not node.keywords:
            return "list", tuple(self.literal(e) for e in node.args)
        self.fail(f"{ast.unparse(node)!r} is not allowed")
        raise AssertionError  # pragma: no cover

    def literal(self, node: ast.AST) -> Any:
        kind, v = self.value(node)
        if kind != "literal":
            self.fail(f"{ast.unparse(node)!r} must be a literal")
        return v

    def logical(self, node: ast.AST) -> _Tri:
        if isinstance(node, ast.BoolOp):
            parts = [self.logical(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                if isinstance(node.op, ast.And):  # F & NA = F, T & NA = NA
                    val = out.value & p.value
                    known = (out.known & p.known) | (out.known & ~out.value) | \
                        (p.known & ~p.value)
                else:  # T | NA = T, F | NA = NA
                    val = out.value | p.value
                    known = (out.known & p.known) | out.value | p.value
                out = _Tri(val, known)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            p = self.logical(node.operand)
            return _Tri(~p.value, p.known)
        if isinstance(node, ast.Compare):
            out = None
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                t = self.compare(left, op, right)
                out = t if out is None else _Tri(out.value & t.value, out.known & t.known)
                left = right
            return out
        kind, v = self.value(node)
        if kind == "column":
            if not pd.api.types.is_bool_dtype(v.dtype):
                self.fail(f"column {ast.unparse(node)!r} is not logical; compare it")
            known = v.notna().to_numpy()
            return _Tri(v.fillna(False).to_numpy(dtype=bool), known)
        if kind == "literal" and isinstance(v, bool):
            return _Tri(np.full(self.n, v), np.ones(self.n, dtype=bool))
        self.fail(f"{ast.unparse(node)!r} is not a condition")
        raise AssertionError  # pragma: no cover

    def compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> _Tri:
        lk, lv = self.value(left)
        rk, rv = self.value(right)
        if isinstance(op, (ast.In, ast.NotIn)):
            if lk != "column" or rk != "list":
                self.fail("'in' needs a column on the left and a list of literals on the "
                          "right")
            s = lv
            vals = [v for v in rv if v is not None]
            hit = s.isin(vals) | s.astype(str).isin([str(v) for v in vals])
            hit = hit.to_numpy(dtype=bool)
            known = np.ones(self.n, dtype=bool)  # R: NA %in% x is FALSE, not NA
            if any(v is None for v in rv):
                hit |= s.isna().to_numpy()
            return _Tri(~hit if isinstance(op, ast.NotIn) else hit, known)
        ops = {ast.Eq: "__eq__", ast.NotEq: "__ne__", ast.Lt: "__lt__", ast.LtE: "__le__",
               ast.Gt: "__gt__", ast.GtE: "__ge__"}
        name = ops.get(type(op))
        if name is None:
            self.fail(f"operator {type(op).__name__} is not allowed")
        if lk == "list" or rk == "list":
            self.fail("a list of values needs 'in' / %in%")
        if lk != "column" and rk != "column":
            self.fail("a comparison needs a column")
        if lk != "column":  # literal on the left: 1 < Days is Days > 1
            lk, lv, rk, rv = rk, rv, lk, lv
            name = {"__lt__": "__gt__", "__le__": "__ge__", "__gt__": "__lt__",
                    "__ge__": "__le__"}.get(name, name)
        known = lv.notna().to_numpy()
        if rk == "column":
            known = known & rv.notna().to_numpy()
            left_v, right_v = self._comparable(lv, None), self._comparable(rv, None)
        else:
            if rv is None:
                known = np.zeros(self.n, dtype=bool)
            left_v, right_v = self._comparable(lv, rv), rv
        try:
            with np.errstate(invalid="ignore"):
                res = getattr(left_v, name)(right_v)
            if res is NotImplemented:
                raise TypeError
            res = np.asarray(res.fillna(False) if isinstance(res, pd.Series) else res,
                             dtype=bool)
        except (TypeError, ValueError):
            self.fail(f"cannot compare {ast.unparse(left)!r} with {ast.unparse(right)!r}")
        if res.shape != (self.n,):
            res = np.broadcast_to(res, (self.n,)).copy()
        return _Tri(res, known)

    @staticmethod
    def _comparable(col: pd.Series, other: Any) -> Any:
        """A column as it compares with ``other``: levels as text against a string."""
        if isinstance(other, str) and not (pd.api.types.is_string_dtype(col.dtype)
                                           or col.dtype == object):
            if isinstance(col.dtype, pd.CategoricalDtype) or \
                    pd.api.types.is_numeric_dtype(col.dtype):
                # R compares a factor with a string by its labels; numbers print as R does
                from ._design import _format_levels

                vals = col.to_numpy()
                out = pd.Series(np.where(pd.isna(vals), None, None), index=col.index,
                                dtype=object)
                ok = ~pd.isna(vals)
                if ok.any():
                    out[ok] = _format_levels(vals[ok])
                return out
        if isinstance(col.dtype, pd.CategoricalDtype):
            return col.astype(object)
        return col

