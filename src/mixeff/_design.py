"""Design layer: from a parsed formula and a DataFrame to the numbers of a mixed model.

:func:`build_design` does what lme4's ``lFormula`` does before any fitting:

1. resolve every name of the formula (response, fixed part, random-term expressions,
   grouping factors, offsets, weights) against the columns of the data;
2. drop the rows with a missing value in any used column (``na.omit``);
3. build the response, the fixed-effects model matrix ``X`` (formulaic, treatment
   contrasts, unused levels dropped), the per-term random-effects model matrices and the
   grouping-factor codes;
4. drop the columns of ``X`` that are linearly dependent on earlier ones (as lme4's
   ``chkRank.drop.cols``) and run lme4's checks on the grouping factors.

Everything is vectorised over rows (``pd.factorize`` for codes, formulaic for matrices);
only terms and columns are looped over.

Level order of grouping factors
    Numeric columns: numeric order of the observed values. Text columns: sorted order of
    the observed strings (Python code-point order, which is R's order in the C locale).
    Categorical columns: category order, unused categories dropped. Interactions
    ``a:b``: only observed combinations, ordered by the first factor's level, then the
    second's, ... (R's ``a:b`` on factors followed by ``droplevels``), labelled
    ``"a_level:b_level"``.
"""

from __future__ import annotations

import builtins
import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError, FormulaError
from ._formula import ParsedFormula, parse_formula

__all__ = ["Design", "ReTermDesign", "build_design"]

_CHECK_LEVELS = ("stop", "warning", "ignore")
_RANK_TOL = 1e-7
_SCREEN = 1e-8  # squared relative residual above which X'X alone proves independence
_MAX_SCALE = 1e150  # magnitudes whose cross-products stay finite and normal
_MIN_SCALE = 1e-150
_BACKTICK_RE = re.compile(r"^`([^`]+)`$")
_NAME_RE = re.compile(r"(?:[^\W\d]|\.)[\w.]*")


@dataclass
class ReTermDesign:
    """Numbers of one random-effects term.

    Attributes
    ----------
    label
        Name of the grouping factor as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    codes
        int32 ``(n,)``: level index ``0..m-1`` of each used row.
    levels
        Level labels (str), length ``m``; ``"v1:v2"`` for interactions.
    matrix
        float64 ``(n, k)`` C-contiguous model matrix of the term, e.g. columns
        ``[1, Days]``.
    colnames
        Column names: ``"(Intercept)"`` and formulaic's names for the others.
    expr
        The term's expression, e.g. ``"1 + Days"``.
    """

    label: str
    codes: np.ndarray
    levels: pd.Index
    matrix: np.ndarray
    colnames: list[str]
    expr: str

    @property
    def nlevels(self) -> int:
        """Number of levels ``m``."""
        return len(self.levels)

    @property
    def k(self) -> int:
        """Number of columns of the term's model matrix."""
        return self.matrix.shape[1]


@dataclass
class Design:
    """Everything a fit needs from the formula and the data.

    Attributes
    ----------
    formula
        The parsed formula.
    response_name
        The response expression (backticks removed), e.g. ``"Reaction"``.
    y
        float64 ``(n,)`` response.
    X
        float64 ``(n, p)`` fixed-effects model matrix, Fortran-ordered (column-major),
        after dropping rank-deficient columns; ``p`` may be 0.
    xnames
        Names of the columns of ``X`` (formulaic's, with ``"(Intercept)"``).
    dropped_xnames
        Columns dropped because of rank deficiency.
    terms
        Random-effects terms, in formula order.
    weights
        Prior weights ``(n,)`` or None.
    offset
        Total offset ``(n,)`` (``offset=`` plus the ``offset()`` terms) or None.
    n_dropped
        Rows dropped for missing values.
    row_index
        Index labels of the used rows of the data.
    messages
        Notes to show on the fit (rows dropped, columns dropped, check warnings).
    fixed_spec
        formulaic ``ModelSpec`` of the fixed part (before dropping columns), to build
        ``X`` for new data.
    allow_python, eval_env
        How the formula's expressions were evaluated (see :func:`build_design`); new data
        are evaluated the same way.
    dropped_coef
        ``(p, d)`` least-squares coefficients of the dropped columns on the kept ones
        (``X_dropped ~ X dropped_coef``; the rank rule makes the residual at most
        ``1e-7`` of each column's norm), or None. Type III contrasts need the dropped
        columns (e.g. cells of an interaction left empty), which the fit does not keep.
    codings
        Column -> contrast (``"contr.sum"``...) of the categorical columns of the fixed
        part not coded by formulaic's default (``contrasts=``, ordered Categoricals, the
        package option). They are evaluated as ``C(x, contr.sum)`` (so the model spec,
        and with it new data, carries the coding; formulaic's names then read
        ``C(x, contr.sum)[S.a]``).
    pad
        ``na_action="exclude"``: (index of the data's rows in the model, positions of the
        used rows among them), to pad fitted values and residuals with NaN; else None.
    """

    formula: ParsedFormula
    response_name: str
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    dropped_xnames: list[str]
    terms: list[ReTermDesign]
    weights: np.ndarray | None
    offset: np.ndarray | None
    n_dropped: int
    row_index: pd.Index
    messages: list[str] = field(default_factory=list)
    fixed_spec: object = None
    allow_python: bool = False
    eval_env: Mapping[str, Any] | None = None
    dropped_coef: np.ndarray | None = None
    codings: dict = field(default_factory=dict)
    pad: tuple[pd.Index, np.ndarray] | None = None

    @property
    def n(self) -> int:
        """Number of used rows."""
        return self.y.shape[0]

    @property
    def p(self) -> int:
        """Number of fixed-effect columns."""
        return self.X.shape[1]


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------


def _transforms() -> dict[str, Any]:
    from formulaic.transforms import TRANSFORMS

    return TRANSFORMS


def _known_function(name: str) -> bool:
    from ._expr import functions

    return name in functions() or name in _transforms() or hasattr(builtins, name)


def _find_name(text: str, name: str, start: int = 0, end: int | None = None) -> int | None:
    """First position of ``name`` as a whole word (or backtick-quoted) in ``text``."""
    end = len(text) if end is None else end
    pat = re.compile(rf"`{re.escape(name)}`|(?<![\w.]){re.escape(name)}(?![\w.])")
    m = pat.search(text, start, end)
    return None if m is None else m.start()


def _unquote(expr: str) -> tuple[str, dict[str, str]]:
    """Replace backtick-quoted names by identifiers; return the code and the mapping."""
    quoted: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        key = f"__mixeff_q{len(quoted)}__"
        quoted[key] = m.group(1)
        return key

    return re.sub(r"`([^`]+)`", sub, expr), quoted


def _python_names(expr: str) -> tuple[list[str], list[str]]:
    """Variable names and called function names of a Python expression, in text order."""
    values, calls = _python_names_cached(expr)
    return list(values), list(calls)


@functools.lru_cache(maxsize=512)
def _python_names_cached(expr: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ._expr import check

    chk = check(expr)  # SyntaxError for code that does not parse
    return chk.values, tuple(c for c in chk.calls if "." not in c)


def _formulaic_names(spec: str) -> tuple[list[str], list[str]]:
    """Variable and function names of a formulaic formula, from its factors.

    (formulaic's own ``required_variables`` misses the arguments of stateful transforms
    such as ``scale(x)`` or ``poly(x, 2)``.) Parsed once per formula text.
    """
    values, calls = _formulaic_names_cached(spec)
    return list(values), list(calls)


@functools.lru_cache(maxsize=512)
def _formula_terms(spec: str) -> tuple:
    """formulaic's terms of ``spec`` (parsed once per text; the terms are not modified)."""
    from formulaic import Formula

    return tuple(Formula(spec))


@functools.lru_cache(maxsize=512)
def _formulaic_python(spec: str) -> tuple[str, ...]:
    """The Python-code factors of a formulaic formula (``I(x**2)``, ``C(f)``...)."""
    return tuple(dict.fromkeys(
        factor.expr for term in _formula_terms(spec) for factor in term.factors
        if getattr(factor.eval_method, "value", str(factor.eval_method)) == "python"))


@functools.lru_cache(maxsize=512)
def _formulaic_names_cached(spec: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    values: list[str] = []
    calls: list[str] = []
    for term in _formula_terms(spec):
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", str(factor.eval_method))
            if method == "lookup":
                values.append(factor.expr)
            elif method == "python":
                try:
                    v, c = _python_names(factor.expr)
                except SyntaxError:
                    continue  # formulaic reports it when evaluating
                values += v
                calls += c
    return tuple(dict.fromkeys(values)), tuple(dict.fromkeys(calls))


class _Columns:
    """Lookup of data columns by name, with positioned errors for unknown names.

    Unless ``allow_python``, every expression is also checked against the allow-list of
    :mod:`mixeff._expr` here, before anything is evaluated, and every name used as a
    value must be a column (or R's ``T``, ``F``, ``pi``, ``Inf``).
    """

    def __init__(self, data: pd.DataFrame, formula: ParsedFormula,
                 allow_python: bool = False, env: Mapping[str, Any] | None = None):
        self.data = data
        self.text = formula.text
        self.names = {c for c in data.columns if isinstance(c, str)}
        self.used: dict[str, None] = {}
        self.numeric: dict[str, None] = {}
        self.allow_python = allow_python
        self.env = env or {}

    def require(self, name: str, start: int, end: int | None, what: str,
                numeric: bool = True) -> None:
        if name not in self.names:
            pos = _find_name(self.text, name, start, end)
            if pos is None:
                pos = _find_name(self.text, name)
            role, _, where = what.partition(" in ")
            where = f" in {where}" if where else ""
            raise FormulaError(f"{role} {name!r}{where} is not a column of the data",
                               self.text, pos)
        col = self.data[name]
        if isinstance(col, pd.DataFrame):
            raise DataError(f"column {name!r} appears more than once in the data")
        self.used[name] = None
        if numeric:
            self.numeric[name] = None

    def python(self, expr: str, start: int, end: int | None, what: str) -> None:
        if not self.allow_python:
            from ._expr import refused

            refused(expr, self.text, start, what)
        self._check(*_python_names(expr), start, end, what)

    def formulaic(self, spec: str, start: int, end: int | None, what: str) -> None:
        if not self.allow_python:
            from ._expr import refused

            for expr in _formulaic_python(spec):
                refused(expr, self.text, start, what)
        self._check(*_formulaic_names(spec), start, end, what)

    def _check(self, values: list[str], calls: list[str], start: int, end: int | None,
               what: str) -> None:
        from ._expr import CONSTANTS, VALUE_NAMES

        if self.allow_python:
            values = [nm for nm in values if nm in self.names
                      or nm not in _transforms() and not hasattr(builtins, nm)
                      and nm not in CONSTANTS and nm not in self.env]
        else:
            values = [nm for nm in values if nm in self.names or nm not in VALUE_NAMES]
        values.sort(key=lambda v: _find_name(self.text, v, start, end) or 0)
        for nm in values:
            self.require(nm, start, end, f"variable in {what}")
        for nm in calls:
            if nm not in self.names and not _known_function(nm) and nm not in self.env:
                pos = _find_name(self.text, nm, start, end)
                raise FormulaError(f"unknown function {nm!r} in {what}", self.text, pos)


class _Namespace(Mapping):
    """Evaluation namespace of Python expressions.

    Safe (default): the columns and the names of :mod:`mixeff._expr`'s allow-list only.
    ``allow_python``: the columns, ``env``, formulaic's transforms and Python's builtins.
    """

    def __init__(self, columns: Mapping[str, Any], allow_python: bool = False,
                 env: Mapping[str, Any] | None = None):
        self.columns = columns
        self.allow_python = allow_python
        self.env = env

    def __getitem__(self, key: str) -> Any:
        if key in self.columns:
            return self.columns[key]
        if not self.allow_python:
            from ._expr import safe_names

            return safe_names()[key]
        if self.env is not None and key in self.env:
            return self.env[key]
        tr = _transforms()
        if key in tr:
            return tr[key]
        return getattr(builtins, key)  # AttributeError -> NameError in eval

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


# --------------------------------------------------------------------------------------
# helpers on columns
# --------------------------------------------------------------------------------------


def _is_numeric(dtype: Any) -> bool:
    """Real numbers: numeric, not boolean, not complex."""
    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not pd.api.types.is_complex_dtype(dtype))


def _float_values(s: pd.Series) -> np.ndarray:
    """float64 values of a numeric column, NA as NaN."""
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _for_formulaic(s: pd.Series) -> Any:
    """A used column as formulaic should see it (NA rows already removed)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return s.cat.remove_unused_categories().array
    if pd.api.types.is_bool_dtype(dtype):
        return s.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return s.to_numpy()
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return s.array
    try:
        return pd.Categorical(s.to_numpy(dtype=object))
    except TypeError:
        return pd.Categorical(s.astype(str).to_numpy(dtype=object))


def _format_levels(values: Any) -> np.ndarray:
    """Level labels as an object array of str (numbers printed as R does)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return np.char.mod("%.15g", arr).astype(object)
    return pd.Index(values).astype(str).to_numpy(dtype=object)


def _merge_equal_labels(codes: np.ndarray, labels: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Levels whose labels print the same merged into one, as R's ``factor()`` does.

    Float levels are labelled with 15 significant digits (R's ``as.character``), so
    ``0.3`` and ``0.1 + 0.2`` are both ``"0.3"``: R (and lme4) group them together. Returns
    the new codes, the unique labels (first-appearance order) and the merged labels.
    """
    labels = np.asarray(labels, dtype=object)
    if len(labels) < 2 or len(pd.unique(labels)) == len(labels):
        return codes, labels, []
    remap, uniq = pd.factorize(labels)
    counts = np.bincount(remap, minlength=len(uniq))
    merged = [str(u) for u, c in zip(uniq, counts, strict=True) if c > 1]
    new = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int64)
    return new, np.asarray(uniq, dtype=object), merged


def _factor(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int64) and level labels (object array of str) of a grouping column."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        cats = dtype.categories
        used = np.bincount(codes, minlength=len(cats)) > 0
        remap = np.cumsum(used) - 1
        return remap[codes], _format_levels(cats[used].to_numpy())
    try:
        codes, uniques = pd.factorize(s, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(s.astype(str), sort=True)
    if isinstance(uniques, pd.Index) and not isinstance(uniques.dtype, np.dtype):
        if _is_numeric(uniques.dtype):
            uniques = uniques.to_numpy(dtype=np.float64)
    return codes.astype(np.int64, copy=False), _format_levels(uniques)


def _interaction(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Observed combinations of several factors, ordered by the first factor then the next."""
    codes, labels = parts[0]
    for c2, l2 in parts[1:]:
        m2 = len(l2)
        comb = codes * m2 + c2
        codes, uniq = pd.factorize(comb, sort=True)
        codes = codes.astype(np.int64, copy=False)
        labels = labels[uniq // m2] + ":" + l2[uniq % m2]
    return codes, labels


def _pow2_scaled(X: np.ndarray) -> np.ndarray:
    """``X`` with its columns scaled by powers of two when some are huge or tiny.

    Scaling a column by ``2**k`` changes no digit, and the rank rule is relative to each
    column's norm, so the answer is that of ``X``; without it a column like ``x * 1e-200``
    has squares that underflow to zero and would be taken for a zero column. ``X`` itself
    is returned when all columns are within ``1e-100 .. 1e100``.
    """
    if X.shape[0] == 0:
        return X
    amax = np.maximum(X.max(axis=0), -X.min(axis=0))
    odd = (amax > 1e100) | ((amax < 1e-100) & (amax > 0))
    if not odd.any():
        return X
    _, e = np.frexp(np.where(odd, amax, 1.0))
    e[~odd] = 0
    return np.ldexp(X, -e[None, :])


def _independent_columns(X: np.ndarray, tol: float = _RANK_TOL) -> np.ndarray:
    """Columns of ``X`` not linearly dependent on earlier kept ones (R's ``qr(X)``).

    R's LINPACK ``dqrdc2`` (used by ``lm`` and lme4's ``chkRank.drop.cols``) moves a column
    to the end when the norm of its part orthogonal to the kept columns is below ``tol``
    times its own norm, so the earliest columns are kept.

    Fast path: the Cholesky factor of the column-scaled cross-product ``X'X`` gives each
    column's relative residual; when all are far above ``tol`` (squared residuals above
    ``1e-8``, where the rounding of ``X'X`` cannot matter) every column is kept. Otherwise
    the rows are reduced with a Householder QR (``X = QR``: norms and dependencies of the
    columns are those of ``R``) and the sequential test runs on the small ``R``.
    """
    import scipy.linalg
    import scipy.linalg.blas

    n, p = X.shape
    keep = np.zeros(p, dtype=bool)
    if p == 0:
        return keep
    X = _pow2_scaled(X)
    with np.errstate(all="ignore"):
        Xf = np.asfortranarray(X, dtype=np.float64)
        G = scipy.linalg.blas.dsyrk(1.0, Xf, trans=1)  # upper triangle of X'X
        G = np.triu(G) + np.triu(G, 1).T
        norms2 = np.diagonal(G).copy()
        nz = np.flatnonzero(norms2 > 0)
        if nz.size and np.all(np.isfinite(G)):
            d = 1.0 / np.sqrt(norms2[nz])
            C = G[np.ix_(nz, nz)] * d[:, None] * d[None, :]
            try:
                L = np.linalg.cholesky(C)
            except np.linalg.LinAlgError:
                L = None
            if L is not None and np.all(np.diagonal(L) ** 2 > _SCREEN):
                keep[nz] = True
                return keep
    R = scipy.linalg.qr(X, mode="raw", check_finite=False)[1]
    norms = np.linalg.norm(R, axis=0)
    basis = np.zeros((R.shape[0], 0))
    for j in range(p):
        if norms[j] == 0:
            continue
        v = R[:, j]
        r = v - basis @ (basis.T @ v)
        r = r - basis @ (basis.T @ r)
        rn = float(np.linalg.norm(r))
        if rn > tol * norms[j]:
            keep[j] = True
            basis = np.column_stack([basis, r / rn])
    return keep


def _check_level(name: str, value: str) -> str:
    if value not in _CHECK_LEVELS:
        raise DataError(f"{name} must be one of {', '.join(map(repr, _CHECK_LEVELS))}, "
                        f"not {value!r}")
    return value


def _act(level: str, message: str, messages: list[str]) -> None:
    if level == "stop":
        raise DataError(message)
    if level == "warning":
        warnings.warn(message, UserWarning, stacklevel=3)
        messages.append(message)


def _vector_arg(arg: Any, what: str, data: pd.DataFrame, cols: _Columns) -> np.ndarray | None:
    """Weights or offset given as a column name or an array: float64 (len(data),)."""
    if arg is None:
        return None
    if isinstance(arg, str):
        if arg not in cols.names:
            raise FormulaError(f"{what} column {arg!r} is not a column of the data",
                               None, None)
        s = data[arg]
        if isinstance(s, pd.DataFrame):
            raise DataError(f"column {arg!r} appears more than once in the data")
        if not _is_numeric(s.dtype):
            raise DataError(f"{what} column {arg!r} is not numeric (dtype {s.dtype})")
        return _float_values(s)
    try:
        if isinstance(arg, (pd.Series, pd.Index)):
            arr = arg.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(arg, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be a column name or numeric values: {exc}") from None
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != len(data):
        raise DataError(f"{what} has {arr.shape[0]} values but the data have {len(data)} rows")
    return arr


# --------------------------------------------------------------------------------------
# evaluation on the used rows
# --------------------------------------------------------------------------------------


@dataclass
class _Evaluated:
    y: np.ndarray
    offset: np.ndarray | None
    X: np.ndarray
    xnames: list[str]
    spec: object
    mats: dict[str, tuple[np.ndarray, list[str]]]


_Q_RE = re.compile(r"Q\('((?:[^'\\]|\\.)*)'\)")


def _rename(names: Sequence[str]) -> list[str]:
    """formulaic's column names as mixeff shows them: ``(Intercept)`` for the intercept,
    ``Intercept`` for a data column of that name, and a column looked up by name
    (``Q('1')``: a keyword-named column in code, a back-quoted number) in back quotes."""
    from ._expr import INTERCEPT_COLUMN

    out = []
    for nm in names:
        nm = str(nm)
        if nm == "Intercept":
            out.append("(Intercept)")
        elif nm == INTERCEPT_COLUMN:
            out.append("Intercept")
        else:
            if "Q('" in nm:
                nm = _Q_RE.sub(lambda m: f"`{m.group(1)}`", nm)
            out.append(nm)
    return out


def _eval_python(expr: str, ns: _Namespace, n: int, what: str, text: str,
                 pos: int | None) -> np.ndarray:
    """Evaluate a Python expression on the used rows; numeric float64 (n,).

    Through :func:`mixeff._expr.evaluate`: the allow-list and a closed namespace unless
    ``ns.allow_python``.
    """
    from ._expr import evaluate

    try:
        value = evaluate(expr, ns.columns, ns.allow_python, ns.env)
    except FormulaError as exc:
        raise FormulaError(str(exc), text, pos) from None
    except Exception as exc:
        raise FormulaError(f"cannot evaluate {what} {expr!r}: {type(exc).__name__}: {exc}",
                           text, pos) from None
    if isinstance(value, (pd.Series, pd.Index)):
        if not _is_numeric(value.dtype):
            raise DataError(f"{what} {expr!r} is not numeric (dtype {value.dtype})")
        arr = value.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # e.g. a tuple of a column and a number
            raise DataError(f"{what} {expr!r} is not numeric (a "
                            f"{type(value).__name__})") from None
        if arr.dtype.kind not in "iuf":
            raise DataError(f"{what} {expr!r} is not numeric (dtype {arr.dtype})")
        arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise DataError(f"{what} {expr!r} has shape {arr.shape}, expected one value per row "
                        f"({n})")
    return arr


def formulaic_matrix(spec: Any, frame: pd.DataFrame, allow_python: bool = False,
                     env: Mapping[str, Any] | None = None, **kwargs: Any):
    """formulaic's ``model_matrix`` through mixeff's materializer (the allow-list, or with
    ``allow_python`` formulaic's own evaluation with the names of ``env``)."""
    from formulaic import ModelSpec, model_matrix

    from ._expr import materializer

    mat = materializer()
    if isinstance(spec, ModelSpec):
        return model_matrix(spec, frame, context=dict(env or {}), **kwargs)
    return model_matrix(spec, frame, context=dict(env or {}), materializer=mat,
                        materializer_params={"allow_python": bool(allow_python)}, **kwargs)


def _model_matrix(spec: str, frame: pd.DataFrame, what: str, text: str, pos: int | None,
                  allow_python: bool = False, env: Mapping[str, Any] | None = None):
    try:
        mm = formulaic_matrix(spec, frame, allow_python, env, na_action="ignore")
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, FormulaError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, FormulaError):
            raise FormulaError(str(cause), text, pos) from None
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("\n\n", 1)[0]
        raise FormulaError(f"cannot evaluate {what} {spec!r} on the data: {msg}",
                           text, pos) from None
    if mm.ndim != 2 or mm.shape[0] != len(frame):
        raise DataError(f"{what} {spec!r} did not give one row per observation")
    # column by column: much faster than DataFrame.to_numpy on many mixed-dtype columns
    values = np.empty(mm.shape, dtype=np.float64, order="F")
    for j in range(mm.shape[1]):
        col = mm.iloc[:, j]
        bad = pd.api.types.is_complex_dtype(col.dtype)
        if not bad:
            try:
                values[:, j] = col.to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                bad = True
        if bad:
            kind = type(col.iloc[0]).__name__ if len(col) else col.dtype
            raise DataError(f"column {str(mm.columns[j])!r} of the {what} {spec!r} is not "
                            f"real numbers (dtype {col.dtype}, values of type {kind})")
    return mm, values


@functools.lru_cache(maxsize=256)
def _numeric_plan(spec: str, dtypes: tuple[tuple[str, str], ...]):
    """formulaic's ``ModelSpec`` of a formula of numeric columns, and its columns.

    Only for formulas whose factors are all the literal ``1`` or plain numeric columns (no
    calls, no categorical data): their model matrix is the intercept and products of
    columns, and their spec depends on the column dtypes, never on the values, so it is
    made once per (formula, dtypes) from a one-row frame. Returns the spec (None when
    formulaic cannot make it) and, per column, its name and the names of its factors.
    """
    frame = pd.DataFrame({c: np.ones(1, dtype=np.dtype(d)) for c, d in dtypes})
    try:
        spec_obj = formulaic_matrix(spec, frame, na_action="ignore").model_spec
    except Exception:  # noqa: BLE001 - the general path reports formulaic's error
        return None
    plan = []
    for es in spec_obj.structure:
        factors = tuple(f.expr for f in es.term.factors
                        if getattr(f.eval_method, "value", str(f.eval_method)) != "literal")
        if len(es.columns) != 1:
            return None
        plan.append((es.columns[0], factors))
    if len({nm for nm, _ in plan}) != len(plan):
        # e.g. a data column named "Intercept" beside the intercept: formulaic's own
        # materialiser decides what such a matrix is
        return None
    return spec_obj, tuple(plan)


def _numeric_model_matrix(spec: str, raw: Mapping[str, Any], n: int):
    """The model matrix of ``spec`` without formulaic's materialiser, when it allows.

    ``raw`` holds the used columns (pandas Series over the used rows). Returns None unless
    every factor of ``spec`` is ``1`` or a column with a real numpy dtype (integer or
    float; not bool, which formulaic encodes as a factor); otherwise ``(spec, X, names)``
    as the general path would give them (formulaic's column order and names; each column
    the product of its factors in formulaic's order). Small models spend most of their
    design time in formulaic's materialiser, which this skips.
    """
    names: dict[str, str] = {}
    for term in _formula_terms(spec):
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", str(factor.eval_method))
            if method == "literal" and factor.expr in ("1", "0"):
                continue
            if factor.expr in ("1", "0"):
                # a data column named `1` or `0`: formulaic itself treats it as data or as
                # the literal depending on the term; its materialiser decides
                return None
            col = raw.get(factor.expr) if method == "lookup" else None
            if col is None:
                return None
            dtype = col.dtype
            if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
                return None
            names[factor.expr] = dtype.str
    plan = _numeric_plan(spec, tuple(sorted(names.items())))
    if plan is None:
        return None
    spec_obj, columns = plan
    values = {c: raw[c].to_numpy(dtype=np.float64) for c in names}
    X = np.empty((n, len(columns)), dtype=np.float64, order="F")
    for j, (_, factors) in enumerate(columns):
        if not factors:
            X[:, j] = 1.0
            continue
        X[:, j] = values[factors[0]]
        for f in factors[1:]:
            X[:, j] *= values[f]
    return spec_obj, X, [nm for nm, _ in columns]


def _evaluate(pf: ParsedFormula, raw: dict[str, Any], frame: Callable[[], pd.DataFrame],
              n: int, response_col: str | None, offset_arr: np.ndarray | None,
              term_pos: list[int], allow_python: bool = False,
              env: Mapping[str, Any] | None = None) -> _Evaluated:
    text = pf.text
    ns = _Namespace(raw, allow_python, env)
    tilde = text.find("~")
    if response_col is not None:
        y = np.asarray(raw[response_col], dtype=np.float64)
    else:
        y = _eval_python(pf.response, ns, n, "response", text,
                         len(text) - len(text.lstrip()))
    off = offset_arr
    for expr in pf.offset_exprs:
        pos = text.find(expr, tilde)
        v = _eval_python(expr, ns, n, "offset", text, pos if pos >= 0 else None)
        off = v if off is None else off + v
    fast = _numeric_model_matrix(pf.fixed, raw, n)
    if fast is not None:
        spec, X, xnames = fast
    else:
        mm, X = _model_matrix(pf.fixed, frame(), "fixed-effects part", text, None,
                              allow_python, env)
        spec, xnames = mm.model_spec, list(mm.columns)
    mats: dict[str, tuple[np.ndarray, list[str]]] = {}
    for term, pos in zip(pf.random, term_pos, strict=True):
        if term.expr in mats:
            continue
        if term.expr.strip() == "1":
            mats[term.expr] = (np.ones((n, 1)), ["(Intercept)"])
            continue
        fast = _numeric_model_matrix(term.expr, raw, n)
        if fast is not None:
            _, Z, znames = fast
        else:
            tm, Z = _model_matrix(term.expr, frame(), "random-effects expression", text,
                                  pos, allow_python, env)
            znames = list(tm.columns)
        if Z.shape[1] == 0:
            raise FormulaError(f"random-effects term ({term.expr} | {term.label}) has no "
                               "columns", text, pos)
        mats[term.expr] = (np.ascontiguousarray(Z), _rename(znames))
    return _Evaluated(y=y, offset=off, X=np.asfortranarray(X), xnames=_rename(xnames),
                      spec=spec, mats=mats)


def _nonfinite(ev: _Evaluated, response_name: str) -> np.ndarray:
    """Rows with NaN produced by evaluation; raise on infinite values."""
    checks: list[tuple[str, np.ndarray]] = [(f"response {response_name!r}", ev.y)]
    if ev.offset is not None:
        checks.append(("offset", ev.offset))
    checks += [(f"fixed-effects column {nm!r}", ev.X[:, j]) for j, nm in enumerate(ev.xnames)]
    for expr, (Z, names) in ev.mats.items():
        checks += [(f"column {nm!r} of random-effects expression {expr!r}", Z[:, j])
                   for j, nm in enumerate(names)]
    bad = np.zeros(ev.y.shape[0], dtype=bool)
    for what, v in checks:
        if np.isinf(v).any():
            raise DataError(f"{what} has infinite values")
        bad |= np.isnan(v)
    return bad


# --------------------------------------------------------------------------------------
# build_design
# --------------------------------------------------------------------------------------


def build_design(
    formula: ParsedFormula | str,
    data: pd.DataFrame,
    *,
    weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    offset: str | Sequence[float] | np.ndarray | pd.Series | None = None,
    check_nlev: str = "stop",
    check_nobs_vs_nre: str = "stop",
    allow_python: bool = False,
    eval_env: Mapping[str, Any] | None = None,
    contrasts: Mapping[str, Any] | None = None,
    subset: Any = None,
    na_action: str = "omit",
) -> Design:
    """Build the response, model matrices and grouping factors of an lme4 model.

    Parameters
    ----------
    formula
        lme4 formula string or the result of :func:`~mixeff._formula.parse_formula`.
    data
        The data. Rows with a missing value in any used column (or in the weights or
        offset) are dropped.
    weights
        Prior weights: column name, or one value per row of ``data`` (by position).
        Must be finite and non-negative; NaN drops the row.
    offset
        Known part of the linear predictor: column name or one value per row of ``data``;
        added to the ``offset(...)`` terms of the formula.
    check_nlev
        ``"stop"``, ``"warning"`` or ``"ignore"``: a grouping factor with as many levels
        as observations (lme4's ``check.nobs.vs.nlev``).
    check_nobs_vs_nre
        ``"stop"``, ``"warning"`` or ``"ignore"``: a term with at least as many random
        effects as observations (lme4's ``check.nobs.vs.nRE``).
    allow_python
        Evaluate the formula's expressions as Python code (builtins, formulaic's
        transforms, the names of ``eval_env``) instead of over the allow-list of
        :mod:`mixeff._expr` (column names, numbers, arithmetic, comparisons, logic and the
        documented transforms only). Off by default: a formula is user input.
    eval_env
        Extra names (your own functions, constants) for the formula's expressions;
        giving it implies ``allow_python=True``.
    contrasts
        Column -> R contrast name (``"contr.treatment"``, ``"contr.sum"``,
        ``"contr.helmert"``, ``"contr.poly"``, ``"contr.SAS"``), for categorical columns
        of the fixed part (evaluated as ``C(x, contr.sum)``); the others get
        the package option (:func:`mixeff.set_options`; R's default: treatment contrasts,
        polynomial contrasts for an ordered Categorical).
    subset
        Rows to use (R's ``subset=``): a boolean mask (array or Series aligned on the
        index) or an expression of columns (see :func:`~mixeff._subset.subset_mask`).
        Rows outside it are not part of the model at all (as R's model frame).
    na_action
        ``"omit"`` (default: rows with missing values are dropped), ``"exclude"`` (dropped
        too, but fitted values and residuals are padded with NaN to the rows of the data,
        as R's ``na.exclude``) or ``"fail"`` (missing values are an error).

    Returns
    -------
    Design

    Raises
    ------
    FormulaError
        Unparseable formula, unknown column or function, expression that cannot be
        evaluated.
    DataError
        Bad data: not a DataFrame, no rows left, non-numeric response, infinite values,
        bad weights, grouping factor with fewer than 2 levels, failed checks.
    """
    check_nlev = _check_level("check_nlev", check_nlev)
    check_nobs_vs_nre = _check_level("check_nobs_vs_nre", check_nobs_vs_nre)
    pf = as_parsed(formula)
    if isinstance(data, (str, os.PathLike)):
        raise DataError(f"data {os.fspath(data)!r} is a path but not of Parquet data (a "
                        ".parquet file, a directory of them or a glob): read other files "
                        "first (pandas.read_csv) and pass the DataFrame")
    allow_python = allow_python_arg(allow_python, eval_env)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"data are empty ({data.shape[0]} rows, {data.shape[1]} columns)")
    n_data = len(data)

    # 1. names ---------------------------------------------------------------------------
    cols, response_col, response_name = resolve_names(pf, data, allow_python, eval_env)
    term_pos = [term.start for term in pf.random]
    w_full = _vector_arg(weights, "weights", data, cols)
    o_full = _vector_arg(offset, "offset", data, cols)

    # 2. missing values ------------------------------------------------------------------
    na_action = _check_na_action(na_action)
    insub = None
    if subset is not None:
        from ._subset import subset_mask

        insub = subset_mask(subset, data)
        if not insub.any():
            raise DataError("subset selects no rows")
    na = np.zeros(n_data, dtype=bool)
    for c in cols.used:
        na |= data[c].isna().to_numpy()
    for arr in (w_full, o_full):
        if arr is not None:
            na |= np.isnan(arr)
    if insub is not None:
        na &= insub
    if na_action == "fail" and na.any():
        bad = [c for c in cols.used if (data[c].isna().to_numpy()
                                        & (insub if insub is not None else True)).any()]
        raise DataError("missing values in " + (", ".join(map(repr, bad)) if bad else
                        "the weights or offset") + " (na_action='fail')")
    if insub is not None:
        na |= ~insub
    n_model = n_data if insub is None else int(insub.sum())
    # Rows with prior weight 0 carry no information (lme4 itself returns an infinite
    # criterion for them); drop them as R's lm() leaves them out of the fit.
    zero_w = np.zeros(n_data, dtype=bool) if w_full is None else (w_full == 0) & ~na
    na |= zero_w
    for c in cols.numeric:
        s = data[c]
        if pd.api.types.is_complex_dtype(s.dtype):
            raise DataError(f"column {c!r} has complex values; mixeff needs real numbers")
        if s.dtype.kind == "f" or (_is_numeric(s.dtype) and not isinstance(s.dtype, np.dtype)):
            v = _float_values(s)
            inf = np.isinf(v) & ~na
            if inf.any():
                label = data.index[int(np.flatnonzero(inf)[0])]
                raise DataError(f"column {c!r} has infinite values (e.g. row {label!r})")
    rows = np.flatnonzero(~na)
    if rows.size == 0:
        n_zero = int(zero_w.sum())
        if n_zero == n_model:
            raise DataError(f"no rows left: all {n_model} weights are zero (rows with zero "
                            "weight carry no information and are dropped)")
        if n_zero:
            raise DataError(f"no rows left: of {n_model} rows, {n_zero} have weight zero and "
                            f"the other {n_model - n_zero} a missing value in a used column "
                            f"({', '.join(map(repr, cols.used))}) or the weights")
        raise DataError(f"no rows left: all {n_model} rows have a missing value in a used "
                        f"column ({', '.join(map(repr, cols.used))})")

    # 3. evaluate (twice when expressions produce NaN, e.g. log of a negative) ------------
    for attempt in range(2):
        n = rows.size
        take = None if n == n_data else rows
        raw: dict[str, Any] = {}
        for c in cols.numeric:
            s = data[c] if take is None else data[c].iloc[take]
            s = s.reset_index(drop=True)
            if _is_numeric(s.dtype) and not isinstance(s.dtype, np.dtype):
                s = pd.Series(_float_values(s), name=c)
            raw[c] = s
        frame = functools.cache(lambda raw=raw, n=n: pd.DataFrame(
            {c: _for_formulaic(s) for c, s in raw.items()}, index=pd.RangeIndex(n)))
        o_arr = None if o_full is None else o_full[rows]
        coding = _fixed_coding(pf, raw, frame, contrasts)
        ev = _evaluate(_coded(pf, coding), raw, frame, n, response_col, o_arr, term_pos,
                       allow_python, eval_env)
        bad = _nonfinite(ev, response_name)
        if not bad.any():
            break
        if attempt == 1:
            raise DataError("evaluating the formula gave missing values (NaN) on rows "
                            "without missing data")
        rows = rows[~bad]
        if rows.size == 0:
            raise DataError("no rows left: all rows have missing values after evaluating "
                            "the formula")
    n = rows.size
    n_dropped = n_model - n
    messages: list[str] = []
    n_zero = int(zero_w.sum())
    n_missing = n_dropped - n_zero
    if n_missing:
        messages.append(f"{n_missing} row{'s' if n_missing != 1 else ''} with missing "
                        "values dropped")
    if n_zero:
        messages.append(f"{n_zero} row{'s' if n_zero != 1 else ''} with zero weight dropped")

    # weights -------------------------------------------------------------------------
    w = None
    if w_full is not None:
        w = np.ascontiguousarray(w_full[rows])
        if np.isinf(w).any():
            raise DataError("weights must be finite")
        neg = np.flatnonzero(w < 0)
        if neg.size:
            label = data.index[rows[neg[0]]]
            raise DataError(f"weights must be non-negative (row {label!r} has {w[neg[0]]:g})")
    off = None if ev.offset is None else np.ascontiguousarray(ev.offset, dtype=np.float64)

    # 4. rank of X ----------------------------------------------------------------------
    keep = _independent_columns(ev.X)
    X = ev.X
    xnames = ev.xnames
    dropped: list[str] = []
    dropped_coef = None
    if not keep.all():
        dropped = [nm for nm, k in zip(xnames, keep, strict=True) if not k]
        dropped_coef = _dropped_coef(X, keep)
        X = np.asfortranarray(X[:, keep])
        xnames = [nm for nm, k in zip(xnames, keep, strict=True) if k]
        k = len(dropped)
        messages.append("fixed-effect model matrix is rank deficient so dropping "
                        f"{k} column{'s' if k != 1 else ''} / "
                        f"coefficient{'s' if k != 1 else ''}")

    # 5. grouping factors and terms -----------------------------------------------------
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    terms: list[ReTermDesign] = []
    for term in pf.random:
        if term.label not in groups:
            parts = []
            for f in term.factors:
                if f not in cache:
                    s = data[f] if n == n_data else data[f].iloc[rows]
                    fc, fl, merged = _merge_equal_labels(*_factor(s))
                    cache[f] = (fc, fl)
                    if merged:
                        messages.append(
                            f"grouping factor {f!r}: distinct values printed as "
                            f"{', '.join(map(repr, merged[:5]))}"
                            f"{' ...' if len(merged) > 5 else ''} are one level each (as "
                            "R's factor(), which labels numbers with 15 significant digits)")
                parts.append(cache[f])
            groups[term.label] = _interaction(parts) if len(parts) > 1 else parts[0]
        codes, labels = groups[term.label]
        Z, names = ev.mats[term.expr]
        terms.append(ReTermDesign(label=term.label, codes=codes.astype(np.int32),
                                  levels=pd.Index(labels, dtype=object),
                                  matrix=Z, colnames=list(names), expr=term.expr))
    _run_checks(terms, n, check_nlev, check_nobs_vs_nre, messages)
    if terms:
        _check_mixed(np.asarray(ev.y, dtype=np.float64), off, X, xnames, terms, w,
                     response_name)

    return Design(formula=pf, response_name=response_name,
                  y=np.ascontiguousarray(ev.y, dtype=np.float64), X=X, xnames=xnames,
                  dropped_xnames=dropped, terms=terms, weights=w, offset=off,
                  n_dropped=n_dropped, row_index=data.index[rows], messages=messages,
                  fixed_spec=ev.spec, dropped_coef=dropped_coef, codings=coding,
                  pad=_padding(data.index, insub, rows, na_action),
                  allow_python=allow_python, eval_env=eval_env)


def allow_python_arg(allow_python: Any, eval_env: Any) -> bool:
    """The checked ``allow_python=`` flag (``eval_env=`` implies it)."""
    if not isinstance(allow_python, (bool, np.bool_)):
        raise DataError(f"allow_python must be True or False, not {allow_python!r}")
    if eval_env is not None and not isinstance(eval_env, Mapping):
        raise DataError("eval_env must be a mapping of names to values (e.g. a dict), not "
                        f"{type(eval_env).__name__}")
    return bool(allow_python) or eval_env is not None


def row_series(design: Design, values: np.ndarray, name: str) -> pd.Series:
    """Per-row values of the used rows as a Series; with ``na_action="exclude"`` padded
    with NaN to the data's rows (within ``subset``), as R's ``naresid(na.exclude)``."""
    if design.pad is None:
        return pd.Series(values, index=design.row_index, name=name)
    index, pos = design.pad
    out = np.full(index.size, np.nan)
    out[pos] = values
    return pd.Series(out, index=index, name=name)


def _check_na_action(na_action: str) -> str:
    key = str(na_action).strip().lower()
    key = key[3:] if key.startswith("na.") or key.startswith("na_") else key
    if key not in ("omit", "exclude", "fail"):
        raise DataError(f"na_action must be 'omit', 'exclude' or 'fail', not {na_action!r}")
    return key


def _padding(index: pd.Index, insub: np.ndarray | None, rows: np.ndarray, na_action: str
             ) -> tuple[pd.Index, np.ndarray] | None:
    """``na.exclude``: the rows to pad to (the data's, within the subset) and where the
    used rows sit among them; None for ``na.omit``."""
    if na_action != "exclude":
        return None
    model_rows = np.arange(index.size) if insub is None else np.flatnonzero(insub)
    pos = np.searchsorted(model_rows, rows)
    return index[model_rows], pos


def _coded(pf: ParsedFormula, coding: Mapping[str, str]) -> ParsedFormula:
    """The formula to evaluate: coded columns of the fixed part as ``C(x, contr.sum)``."""
    if not coding:
        return pf
    import dataclasses

    from ._coding import rewrite_fixed

    return dataclasses.replace(pf, fixed=rewrite_fixed(pf.fixed, coding))


def _fixed_coding(pf: ParsedFormula, raw: Mapping[str, Any], frame: Callable[[], pd.DataFrame],
                  contrasts: Mapping[str, Any] | None) -> dict[str, str]:
    """Codings of the categorical columns of the fixed part (:func:`._coding.codings`)."""
    from ._coding import codings, get_options

    if not contrasts and get_options()["contrasts"][0] == "contr.treatment":
        ordered = [c for c, s in raw.items() if isinstance(s.dtype, pd.CategoricalDtype)
                   and s.dtype.ordered]
        if not ordered:
            return {}  # formulaic's own coding (and the frame need not be made)
    used = _formulaic_names(pf.fixed)[0]
    return codings(frame(), contrasts, used)


def _dropped_coef(X: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Least-squares coefficients ``(p_kept, p_dropped)`` of the dropped columns of ``X``."""
    Xk = X[:, keep]
    if Xk.shape[1] == 0:
        return np.zeros((0, int((~keep).sum())))
    coef = np.linalg.lstsq(Xk, X[:, ~keep], rcond=None)[0]
    return np.asarray(coef, dtype=np.float64).reshape(Xk.shape[1], -1)


def _response_not_on_rhs(pf: ParsedFormula, response: str, tilde: int,
                         columns: set[str]) -> None:
    """Refuse the response as a term of its own on the right-hand side or a grouping factor.

    R drops such a fixed term with a warning; a fit with it, or with the response grouping
    the rows, would explain the response exactly.
    """
    try:
        lhs = [t for t in _formula_terms(pf.response) if t.degree > 0]
    except Exception:  # a response formulaic cannot read is never a formulaic term
        lhs = []
    exprs = {response}
    if len(lhs) == 1 and len(lhs[0].factors) == 1:
        exprs.add(lhs[0].factors[0].expr)
    parts = [(pf.fixed, "the fixed-effects part", tilde + 1)]
    parts += [(t.expr, f"the random-effects term ({t.expr} | {t.label})", t.start)
              for t in pf.random]
    text = pf.text
    try:
        variables = set(_python_names(pf.response)[0]) & columns
    except SyntaxError:
        variables = set()
    variables = variables or {response}
    for t in pf.random:
        if variables <= set(t.factors):
            nm = next(f for f in t.factors if f in variables)
            what = ("is also the grouping factor" if response in t.factors else
                    "is a function of the grouping factor")
            raise FormulaError(f"the response {response!r} {what} of the random-effects "
                               f"term ({t.expr} | {t.label}), so it is constant within its "
                               "levels", text, _find_name(text, nm, text.find("|", t.start)))
    for spec, where, start in parts:
        for term in _formula_terms(spec):
            if len(term.factors) == 1 and term.factors[0].expr in exprs:
                pos = _find_name(text, response, start)
                if pos is None:
                    try:
                        names = _python_names(pf.response)[0]
                    except SyntaxError:
                        names = []
                    found = [k for k in (_find_name(text, nm, start) for nm in names)
                             if k is not None]
                    pos = min(found, default=None)
                raise FormulaError(f"the response {response!r} is also a term of {where}",
                                   text, pos)


def _check_mixed(y: np.ndarray, off: np.ndarray | None, X: np.ndarray, xnames: list[str],
                 terms: list[ReTermDesign], w: np.ndarray | None, response_name: str) -> None:
    """Numbers a mixed model cannot be fitted to (the fit would break deep inside).

    * no residual degrees of freedom: as many independent fixed-effect columns as rows;
    * values whose cross-products overflow or underflow (beyond ``1e150`` / below
      ``1e-150`` once multiplied by the square root of the weights);
    * a constant response (after the offset, up to rounding): there is no variance to
      decompose.
    """
    n, p = X.shape
    if p >= n:
        raise DataError(f"the fixed effects have {p} linearly independent columns for {n} "
                        "observations: no residual degrees of freedom are left (a factor "
                        "with a level per row in the fixed part?)")
    r = y if off is None else y - off
    rname = f"response {response_name!r}" + (" minus the offset" if off is not None else "")
    cols = [(rname, r)] + [(f"fixed-effects column {nm!r}", X[:, j])
                           for j, nm in enumerate(xnames)]
    seen: set[str] = set()
    for t in terms:
        if t.expr not in seen:
            seen.add(t.expr)
            cols += [(f"column {nm!r} of the random-effects term ({t.expr} | {t.label})",
                      t.matrix[:, j]) for j, nm in enumerate(t.colnames)]
    sw = None if w is None else np.sqrt(w)
    times = "" if w is None else " (times the square root of the weights)"
    for what, v in cols:
        a = float(np.max(np.abs(v) if sw is None else np.abs(v) * sw))
        if a == 0.0:
            continue
        if a * np.sqrt(n) > _MAX_SCALE or a < _MIN_SCALE:
            size = "large" if a > 1.0 else "small"
            raise DataError(f"{what}{times} has values too {size} to fit (largest |value| "
                            f"{a:.3g}; cross-products need magnitudes between "
                            f"{_MIN_SCALE:g} and {_MAX_SCALE:g}): rescale it")
    size = float(np.max(np.abs(y)) if off is None else max(np.max(np.abs(y)),
                                                                np.max(np.abs(off))))
    # constant up to the rounding of y - offset (a few units in the last place of the
    # largest value): a response far from zero with a tiny spread, e.g. 1e12 + 1e-3 e
    # (about ten units in the last place), is fitted, as lme4 fits it
    if np.ptp(r) <= 4.0 * np.spacing(size):
        raise DataError(f"{rname} is constant (every used row has the value {r[0]:g}): with "
                        "zero variance there are no variance components to estimate")


def _run_checks(terms: list[ReTermDesign], n: int, check_nlev: str, check_nobs_vs_nre: str,
                messages: list[str]) -> None:
    """lme4's ``checkNlevels`` and ``checkZdims`` on the built terms."""
    nlev = {t.label: t.nlevels for t in terms}
    few = [f"{lab!r} ({m} level{'s' if m != 1 else ''})" for lab, m in nlev.items() if m < 2]
    if few:
        raise DataError("grouping factors must have > 1 sampled level: " + ", ".join(few))
    many = [lab for lab, m in nlev.items() if m >= n]
    if many and check_nlev != "ignore":
        _act(check_nlev, "number of levels of each grouping factor must be < number of "
             f"observations (problems: {', '.join(many)}; {n} observations); use "
             "check_nlev='ignore' to fit anyway", messages)
    if check_nobs_vs_nre != "ignore":
        for t in terms:
            q = t.nlevels * t.k
            if n <= q:
                _act(check_nobs_vs_nre,
                     f"number of observations (={n}) <= number of random effects (={q}) for "
                     f"term ({t.expr} | {t.label}); the random-effects parameters and the "
                     "residual variance (or scale parameter) are probably unidentifiable",
                     messages)


def resolve_names(pf: ParsedFormula, data: pd.DataFrame, allow_python: bool = False,
                  env: Mapping[str, Any] | None = None) -> tuple[_Columns, str | None, str]:
    """Check every name of the formula against the columns of ``data`` (or of a frame
    with the same columns and dtypes, e.g. a Dask frame's ``meta``).

    Returns the column lookup (with the columns used, and those used as numbers), the
    response's column (None for an expression) and the response's name. Unknown names
    raise a :class:`FormulaError` at their position in the formula; so do expressions
    outside the allow-list of :mod:`mixeff._expr` unless ``allow_python`` (nothing is
    evaluated here).
    """
    text = pf.text
    tilde = text.find("~")
    cols = _Columns(data, pf, allow_python, env)
    m = _BACKTICK_RE.match(pf.response)
    response_col: str | None = None
    if m or pf.response in cols.names:
        response_col = m.group(1) if m else pf.response
        cols.require(response_col, 0, tilde, "response")
        dtype = data[response_col].dtype
        if not _is_numeric(dtype):
            raise DataError(f"response {response_col!r} is not numeric (its dtype is "
                            f"{dtype}); lmer needs a numeric response")
    elif _NAME_RE.fullmatch(pf.response):
        cols.require(pf.response, 0, tilde, "response")
    else:
        cols.python(pf.response, 0, tilde, "the response")
    response_name = response_col if response_col is not None else pf.response
    cols.formulaic(pf.fixed, tilde, None, "the fixed-effects part")
    _response_not_on_rhs(pf, response_name, tilde, cols.names)
    for term in pf.random:
        cols.formulaic(term.expr, term.start, None, "a random-effects term")
        bar = text.find("|", term.start)
        for f in term.factors:
            cols.require(f, bar if bar >= 0 else term.start, None, "grouping factor",
                         numeric=False)
    for expr in pf.offset_exprs:
        cols.python(expr, tilde, None, "offset()")
    return cols, response_col, response_name


def as_parsed(formula: ParsedFormula | str) -> ParsedFormula:
    """``formula`` parsed (a :class:`ParsedFormula` is returned as it is)."""
    if isinstance(formula, str):
        return parse_formula(formula)
    if isinstance(formula, ParsedFormula):
        return formula
    raise FormulaError(f"formula must be a string, not {type(formula).__name__}")
