"""Predictions, simulation, refits and formula updates of a fitted model.

The functions here are lme4's ``predict.merMod``, ``simulate.merMod``, ``refit.merMod`` and
``update.merMod`` for :class:`~mixeff._fit.LmerFit`:

:func:`predict`
    ``X beta (+ offset) + Z b`` on the fitted rows or on new data, with all, some or none
    of the random-effects terms (``re_form``). New data are evaluated with the fit's own
    formulaic ``ModelSpec`` of the fixed part (same levels, same contrasts, same stateful
    transforms); the grouping factors are matched to the fitted levels by label.
:func:`simulate`
    Responses drawn from the fitted model.
:func:`refit`
    The same model fitted to another response (only ``Z'Wy``, ``X'Wy`` and ``y'Wy`` are
    recomputed, the design and the cross-product blocks of ``Z`` and ``X`` are reused)
    and/or by the other criterion (REML / ML).
:func:`update`
    R's ``update(m, . ~ . - x)``: a new formula made from the old one, fitted to the data.

Conventions that follow lme4 (1.1-31)
    * Missing values in new data (``na.action = na.pass``): a row with a missing value in
      a variable of the fixed part, of an ``offset()`` term or of a used random-effects
      expression is predicted as NaN. A missing value in a grouping factor is an error
      unless ``allow_new_levels=True``; then that term contributes 0 to the row.
    * Levels of a grouping factor not seen in the fit: an error naming them, or with
      ``allow_new_levels=True`` random effects of 0 (the population prediction).
    * With new data only the ``offset()`` terms of the formula are applied (lme4 ignores
      ``lmer``'s ``offset=`` argument there too; a warning says so).
    * ``re_form`` terms are matched to the model by grouping factor and column names, so
      ``~(1 | Subject)`` on a ``(Days | Subject)`` model uses the intercepts only.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _kernels as K
from ._errors import DataError, FormulaError, MixeffError

if TYPE_CHECKING:  # pragma: no cover
    from ._design import ReTermDesign
    from ._fit import LmerFit
    from ._formula import ParsedFormula, RandomTerm

__all__ = ["predict", "simulate", "refit", "update", "update_formula"]

_NA_FORMS = {"na", "nan", "~0", "0", "~-1", "-1", "~0+0", "~1-1", "~-1+0"}
_DOT_RE = re.compile(r"(?<![\w.])\.(?![\w.])")
_C_CALL_RE = re.compile(r"^C\(\s*`?([^,`()]+?)`?\s*(?:,.*)?\)$", re.DOTALL)
_MISMATCH_RE = re.compile(r"\{(.*)\}", re.DOTALL)
_MAX_SHOWN = 10
#: Bytes of random-effect draws held at once by :func:`simulate`.
_SIM_CHUNK_BYTES = 64 * 2**20


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def _show(values: Sequence[Any]) -> str:
    """At most ``_MAX_SHOWN`` values, quoted, then ``...``."""
    vals = [repr(str(v)) for v in values[:_MAX_SHOWN]]
    more = ", ..." if len(values) > _MAX_SHOWN else ""
    return ", ".join(vals) + more


def _formula_key(expr: str) -> str:
    """A canonical text of a random-effects expression (formulaic's term list)."""
    from formulaic import Formula

    try:
        terms = [str(t) for t in Formula(expr)]
    except Exception:  # noqa: BLE001 - an unparseable expression only matches itself
        return re.sub(r"\s+", "", expr)
    return " + ".join(sorted(terms)) if terms else "0"


def _label_terms(fit: LmerFit) -> dict[str, list[int]]:
    """Storage indices of the fit's random-effects terms, per grouping factor."""
    out: dict[str, list[int]] = {}
    for ti, t in enumerate(fit.structure.terms):
        out.setdefault(t.label, []).append(ti)
    return out


def _label_effects(fit: LmerFit, label: str) -> tuple[np.ndarray, list[str]]:
    """Conditional modes of all terms of one grouping factor side by side (m x k)."""
    tis = _label_terms(fit)[label]
    B = np.hstack([fit._term_b(ti) for ti in tis])
    names = [c for ti in tis for c in fit.structure.terms[ti].colnames]
    return B, names


def _design_term(fit: LmerFit, ti: int) -> ReTermDesign:
    """The :class:`~mixeff._design.ReTermDesign` of storage term ``ti``."""
    return fit.design.terms[fit.term_order[ti]]


# --------------------------------------------------------------------------------------
# re_form
# --------------------------------------------------------------------------------------


def _is_na(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is pd.NA


def _parse_re_form(fit: LmerFit, re_form: Any) -> list[RandomTerm]:
    """The random-effects terms a prediction uses ([] for the population level)."""
    from formulaic import Formula

    from ._formula import parse_formula

    pf = fit.design.formula
    if re_form is None:
        return list(pf.random)
    if _is_na(re_form):
        return []
    if not isinstance(re_form, str):
        raise FormulaError("re_form must be None (all random effects), 'NA' or '~0' (none) "
                           f"or a formula of random-effects terms, not {type(re_form).__name__}")
    text = re_form.strip()
    if re.sub(r"\s+", "", text).lower() in _NA_FORMS:
        return []
    body = text[1:] if text.startswith("~") else text
    try:
        parsed = parse_formula("y ~ " + body)
    except FormulaError as exc:
        raise FormulaError(f"invalid re_form {re_form!r}: {exc}") from None
    if parsed.offset_exprs or any(str(t) != "1" for t in Formula(parsed.fixed)):
        raise FormulaError("re_form may only contain random-effects terms such as "
                           f"'~(1 | g)', got {re_form!r}")
    known = _label_terms(fit)
    for t in parsed.random:
        if t.label not in known:
            raise FormulaError(f"grouping factor {t.label!r} in re_form is not a grouping "
                               f"factor of the model (those are {_show(list(known))})")
    return list(parsed.random)


# --------------------------------------------------------------------------------------
# new data: columns, fixed part, offsets, grouping factors, random-effects matrices
# --------------------------------------------------------------------------------------


class _NewData:
    """Columns of new data prepared as the fit's design saw its own data."""

    def __init__(self, fit: LmerFit, newdata: pd.DataFrame):
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
        self.fit = fit
        self.data = newdata
        self.n = len(newdata)
        self.names = {c for c in newdata.columns if isinstance(c, str)}
        self.na = np.zeros(self.n, dtype=bool)

    def column(self, name: str, what: str) -> pd.Series:
        if name not in self.names:
            raise DataError(f"newdata has no column {name!r} (needed by {what})")
        s = self.data[name]
        if isinstance(s, pd.DataFrame):
            raise DataError(f"column {name!r} appears more than once in newdata")
        return s.reset_index(drop=True)

    def variables(self, values: list[str], what: str) -> list[str]:
        from ._design import _known_function
        from ._expr import CONSTANTS

        out = []
        for nm in values:
            if nm in self.names:
                out.append(nm)
            elif not _known_function(nm) and nm not in CONSTANTS:
                raise DataError(f"newdata has no column {nm!r} (needed by {what})")
        return out

    def frame(self, columns: list[str], what: str) -> pd.DataFrame:
        """A frame for formulaic; missing values of the columns mark rows NaN."""
        from ._design import _float_values, _for_formulaic, _is_numeric

        cols: dict[str, Any] = {}
        for c in columns:
            s = self.column(c, what)
            self.na |= s.isna().to_numpy()
            if _is_numeric(s.dtype) and not isinstance(s.dtype, np.dtype):
                s = pd.Series(_float_values(s), name=c)
            cols[c] = _for_formulaic(s)
        return pd.DataFrame(cols, index=pd.RangeIndex(self.n))

    def raw(self, columns: list[str], what: str) -> dict[str, pd.Series]:
        """Numeric columns for Python expressions (offsets)."""
        from ._design import _float_values, _is_numeric

        out: dict[str, pd.Series] = {}
        for c in columns:
            s = self.column(c, what)
            self.na |= s.isna().to_numpy()
            if _is_numeric(s.dtype) and not isinstance(s.dtype, np.dtype):
                s = pd.Series(_float_values(s), name=c)
            out[c] = s
        return out


def _check_categories(spec: Any, nd: _NewData) -> None:
    """Levels of the fixed part's categorical variables that the fit never saw."""
    state = getattr(spec, "encoder_state", None) or {}
    for expr, (kind, st) in state.items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in st:
            continue
        col = expr if expr in nd.names else None
        if col is None:
            m = _C_CALL_RE.match(expr)
            if m is None or m.group(1).strip() not in nd.names:
                continue  # a transformed variable: formulaic's own check applies
            col = m.group(1).strip()
        values = nd.data[col].dropna()
        if values.empty:
            continue
        uniq = pd.unique(values.to_numpy())
        seen = pd.Index(list(st["categories"]))
        try:
            pos = seen.get_indexer(uniq)
        except (TypeError, ValueError):  # pragma: no cover - mixed, unorderable types
            pos = pd.Index(seen.astype(str)).get_indexer(pd.Index(uniq).astype(str))
        new = [u for u, p in zip(uniq, pos, strict=True) if p < 0]
        if new:
            raise DataError(f"column {col!r} of newdata has level{'s' if len(new) > 1 else ''} "
                            f"{_show(new)} not seen in the fit (its levels are "
                            f"{_show(list(seen))})")


def _materialize(spec: Any, frame: pd.DataFrame, what: str, env: Any = None) -> pd.DataFrame:
    """``model_matrix(spec, frame)``; unseen categories become errors, not zeros.

    The spec's materializer evaluates as the fit did (mixeff's allow-list, or with
    ``allow_python`` Python with the fit's ``eval_env``).
    """
    from formulaic.errors import DataMismatchWarning

    from ._design import formulaic_matrix

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataMismatchWarning)
        try:
            mm = formulaic_matrix(spec, frame, env=env)
        except FormulaError:
            raise
        except Exception as exc:
            msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("\n\n", 1)[0]
            raise DataError(f"cannot evaluate {what} on newdata: {msg}") from None
    for w in caught:
        if issubclass(w.category, DataMismatchWarning):
            m = _MISMATCH_RE.search(str(w.message))
            inside = m.group(1).strip() if m else ""
            if inside not in ("nan", "None", "<NA>", "np.float64(nan)"):
                raise DataError(f"{what}: newdata has values not seen in the fit: {inside}")
        else:  # pragma: no cover - pass other warnings on
            warnings.warn(w.message, w.category, stacklevel=3)
    return mm


def _new_fixed(fit: LmerFit, nd: _NewData) -> np.ndarray:
    """``X beta`` on new data (NaN where a fixed-part variable is missing)."""
    from ._design import _formulaic_names, _rename

    d = fit.design
    p = len(d.xnames)
    if p == 0:
        return np.zeros(nd.n)
    spec = d.fixed_spec
    if spec is None:
        raise DataError("this fit has no model spec of its fixed part (made from arrays?), "
                        "so the fixed part cannot be evaluated on newdata")
    what = "the fixed-effects part"
    cols = nd.variables(_formulaic_names(d.formula.fixed)[0], what)
    frame = nd.frame(cols, what)
    _check_categories(spec, nd)
    mm = _materialize(spec, frame, what, d.eval_env)
    names = _rename(mm.columns)
    where = {nm: j for j, nm in enumerate(names)}
    missing = [nm for nm in d.xnames if nm not in where]
    if missing:  # pragma: no cover - the spec makes the fitted columns
        raise DataError(f"newdata gives no column {_show(missing)} of the fixed effects")
    X = np.column_stack([mm.iloc[:, where[nm]].to_numpy(dtype=np.float64)
                         for nm in d.xnames])
    return X @ fit._sol.beta


def _new_offset(fit: LmerFit, nd: _NewData) -> np.ndarray:
    """Sum of the formula's ``offset()`` terms on new data."""
    from ._design import _eval_python, _Namespace, _python_names

    pf = fit.design.formula
    off = np.zeros(nd.n)
    for expr in pf.offset_exprs:
        what = f"offset({expr})"
        cols = nd.variables(_python_names(expr)[0], what)
        ns = _Namespace(nd.raw(cols, what), fit.design.allow_python, fit.design.eval_env)
        off = off + _eval_python(expr, ns, nd.n, "offset", pf.text, None)
    if fit.design.offset is not None and not pf.offset_exprs:
        warnings.warn("the fit's offset= argument is not applied to newdata (as in lme4); "
                      "write it into the formula as offset(...) to have it predicted",
                      UserWarning, stacklevel=4)
    return off


def _group_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 for missing) and level labels of a grouping column, labelled as the fit."""
    from ._design import _format_levels, _is_numeric, _merge_equal_labels

    if isinstance(s.dtype, pd.CategoricalDtype):
        codes, labels, _ = _merge_equal_labels(s.cat.codes.to_numpy().astype(np.int64),
                                               _format_levels(s.cat.categories.to_numpy()))
        return codes, labels
    try:
        codes, uniques = pd.factorize(s)
    except TypeError:  # pragma: no cover - unhashable values
        codes, uniques = pd.factorize(s.astype(str))
    if isinstance(uniques, pd.Index) and not isinstance(uniques.dtype, np.dtype):
        if _is_numeric(uniques.dtype):
            uniques = uniques.to_numpy(dtype=np.float64)
    # labels that print the same are one level, as in the fit (_merge_equal_labels)
    codes, labels, _ = _merge_equal_labels(codes.astype(np.int64, copy=False),
                                           _format_levels(uniques))
    return codes, labels


def _new_levels(fit: LmerFit, nd: _NewData, term: RandomTerm, allow_new_levels: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Fitted level index of each new row (``m`` for new levels) and a missing mask."""
    parts = [_group_codes(nd.column(f, f"grouping factor {term.label!r}"))
             for f in term.factors]
    codes, labels = parts[0]
    missing = codes < 0
    for c2, l2 in parts[1:]:
        missing |= c2 < 0
        codes = np.where(missing, -1, codes * len(l2) + c2)
        uniq, inv = np.unique(codes[~missing], return_inverse=True)
        new_codes = np.full(codes.shape, -1, dtype=np.int64)
        new_codes[~missing] = inv
        labels = labels[uniq // len(l2)] + ":" + l2[uniq % len(l2)]
        codes = new_codes
    fitted_levels = _design_term(fit, _label_terms(fit)[term.label][0]).levels
    m = len(fitted_levels)
    pos = pd.Index(fitted_levels).get_indexer(pd.Index(labels, dtype=object))
    used = np.zeros(len(labels), dtype=bool)
    used[codes[~missing]] = True
    if not allow_new_levels:
        if missing.any():
            rows = nd.data.index[np.flatnonzero(missing)]
            raise DataError(f"grouping factor {term.label!r} has missing values in newdata "
                            f"(rows {_show(list(rows))}); use allow_new_levels=True to "
                            "predict them without this random effect (as lme4)")
        new = labels[(pos < 0) & used]
        if new.size:
            raise DataError(f"newdata has level{'s' if new.size > 1 else ''} {_show(list(new))} "
                            f"of grouping factor {term.label!r} not seen in the fit; use "
                            "allow_new_levels=True to predict them at the population level "
                            "(random effects 0, as lme4)")
    index = np.where(pos < 0, m, pos).astype(np.int64)
    level = np.full(codes.shape, m, dtype=np.int64)
    level[~missing] = index[codes[~missing]]
    return level, missing


def _re_matrix(fit: LmerFit, nd: _NewData, term: RandomTerm) -> tuple[np.ndarray, list[str]]:
    """The model matrix of a random-effects expression on new data, and its names."""
    from formulaic import ModelSpec

    from ._design import _formulaic_names, _rename

    if term.expr.strip() == "1":
        return np.ones((nd.n, 1)), ["(Intercept)"]
    what = f"random-effects term ({term.expr} | {term.label})"
    cols = nd.variables(_formulaic_names(term.expr)[0], what)
    frame = nd.frame(cols, what)
    from ._expr import materializer

    fixed = fit.design.fixed_spec
    materializer()
    spec = ModelSpec(formula=term.expr, materializer="mixeff", na_action="ignore",
                     materializer_params={"allow_python": bool(fit.design.allow_python)},
                     encoder_state=dict(getattr(fixed, "encoder_state", None) or {}),
                     transform_state=dict(getattr(fixed, "transform_state", None) or {}))
    mm = _materialize(spec, frame, what, fit.design.eval_env)
    state = getattr(mm.model_spec, "transform_state", {}) or {}
    known = getattr(fixed, "transform_state", {}) or {}
    fresh = [k for k in state if k not in known]
    if fresh:
        raise DataError(f"{what} uses the stateful transform {_show(fresh)}, which the "
                        "fixed part does not have; its state cannot be recovered for newdata")
    return mm.to_numpy(dtype=np.float64), _rename(mm.columns)


def _new_random(fit: LmerFit, nd: _NewData, terms: list[RandomTerm],
                allow_new_levels: bool) -> np.ndarray:
    """``Z b`` of the chosen terms on new data."""
    out = np.zeros(nd.n)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for term in terms:
        if term.label not in cache:
            cache[term.label] = _new_levels(fit, nd, term, allow_new_levels)
        level, missing = cache[term.label]
        Z, names = _re_matrix(fit, nd, term)
        B, bnames = _label_effects(fit, term.label)
        absent = [c for c in names if c not in bnames]
        if absent:
            raise FormulaError(f"random effects {_show(absent)} of ({term.expr} | {term.label}) "
                               f"in re_form are not in the model (it has {_show(bnames)} for "
                               f"{term.label!r})")
        cols = [bnames.index(c) for c in names]
        Bz = np.zeros((B.shape[0] + 1, len(cols)))
        Bz[:-1] = B[:, cols]
        contrib = K.term_linear_predictor(level, np.ascontiguousarray(Z), Bz)
        out += np.where(missing, 0.0, contrib)
    return out


class _NotATerm(MixeffError):
    """A ``re_form`` term that is not one of the model's (needs the data to evaluate)."""


def _fitted_random(fit: LmerFit, terms: list[RandomTerm]) -> np.ndarray:
    """``Z b`` of the chosen terms on the fitted rows."""
    out = np.zeros(fit.nobs)
    by_label = _label_terms(fit)
    for term in terms:
        key = _formula_key(term.expr)
        hit = None
        for ti in by_label[term.label]:
            if _formula_key(_design_term(fit, ti).expr) == key:
                hit = ti
                break
        if hit is not None:
            td = _design_term(fit, hit)
            out += K.term_linear_predictor(np.ascontiguousarray(td.codes, dtype=np.int64),
                                           np.ascontiguousarray(td.matrix, dtype=np.float64),
                                           fit._term_b(hit))
            continue
        B, bnames = _label_effects(fit, term.label)
        if key == _formula_key("1") and "(Intercept)" in bnames:
            td = _design_term(fit, by_label[term.label][0])
            out += B[np.asarray(td.codes, dtype=np.int64), bnames.index("(Intercept)")]
            continue
        raise _NotATerm(f"({term.expr} | {term.label}) in re_form is not a term of the "
                        "model; pass the data as newdata to evaluate it on the fitted rows")
    return out


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


def predict(fit: LmerFit, newdata: pd.DataFrame | None = None, re_form: str | None = None,
            allow_new_levels: bool = False) -> pd.Series:
    """Predictions of a fitted model, as lme4's ``predict.merMod``.

    Parameters
    ----------
    fit
        The fitted model.
    newdata
        Data to predict; ``None`` (default) predicts the rows used by the fit. It needs
        the variables of the fixed part, of the ``offset()`` terms and of the random-effects
        terms used (not the response). Categorical variables must not have levels the fit
        never saw.
    re_form
        Random effects to include: ``None`` (default) all of them; ``"NA"``, ``"~0"``
        (or ``float("nan")``) none, i.e. the population-level prediction ``X beta``; or a
        formula of random-effects terms, e.g. ``"~(1 | Subject)"``, matched to the model
        by grouping factor and column names.
    allow_new_levels
        Predict levels of a grouping factor that the fit has not seen (and missing values
        of it) with random effects of 0, as lme4; by default they are an error.

    Returns
    -------
    pandas.Series
        One prediction per row, indexed as ``newdata`` (or as the fitted rows); NaN where
        a variable the prediction needs is missing.

    Raises
    ------
    DataError
        Missing column, unseen categorical level, unseen grouping level (without
        ``allow_new_levels``).
    FormulaError
        A ``re_form`` that is not made of the model's random-effects terms.

    Notes
    -----
    With ``newdata`` only the formula's ``offset()`` terms are applied; an ``offset=``
    argument of the fit is not (as in lme4).
    """
    terms = _parse_re_form(fit, re_form)
    if newdata is None:
        d = fit.design
        if re_form is None:
            eta = fit._linear_predictor()
        else:
            eta = fit._linear_predictor(include_re=False)
            if terms:
                try:
                    eta = eta + _fitted_random(fit, terms)
                except _NotATerm:
                    data = getattr(fit, "data", None)
                    if not isinstance(data, pd.DataFrame):
                        raise
                    # the fit keeps its data: evaluate the term on the fitted rows
                    rows = data.loc[d.row_index]
                    return predict(fit, rows, re_form, allow_new_levels)
        return pd.Series(eta, index=d.row_index, name="predicted")
    nd = _NewData(fit, newdata)
    if nd.n == 0:
        return pd.Series(np.zeros(0), index=newdata.index, name="predicted")
    eta = _new_fixed(fit, nd) + _new_offset(fit, nd)
    if terms:
        eta = eta + _new_random(fit, nd, terms, allow_new_levels)
    eta = np.where(nd.na, np.nan, eta)
    return pd.Series(eta, index=newdata.index, name="predicted")


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------


def simulate(fit: LmerFit, nsim: int = 1, seed: Any = None, use_u: bool = False
             ) -> pd.DataFrame:
    """Responses simulated from the fitted model, as lme4's ``simulate.merMod``.

    Each column is ``X beta + offset + Z b + e``: with ``use_u=False`` (default) new random
    effects ``b ~ N(0, sigma^2 Lambda Lambda')`` are drawn for every simulation; with
    ``use_u=True`` the conditional modes of the fit are used. The residuals are
    ``e ~ N(0, sigma^2 / w)`` with the prior weights ``w``.

    Parameters
    ----------
    fit
        The fitted model.
    nsim
        Number of simulated responses.
    seed
        Seed of :func:`numpy.random.default_rng` (an int, a ``SeedSequence`` or a
        ``Generator``).
    use_u
        Condition on the fitted random effects instead of drawing new ones.

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_1`` ... ``sim_<nsim>``, indexed as the fitted rows.

    Notes
    -----
    lme4 1.1-31 ignores the prior weights when it simulates a linear mixed model (its
    residuals are ``N(0, sigma^2)``); here they scale the residual variance, as the model
    says (without weights the two agree). The random numbers differ from R's.
    """
    nsim = int(nsim)
    if nsim < 1:
        raise ValueError("nsim must be a positive integer")
    rng = np.random.default_rng(seed)
    d = fit.design
    n = fit.nobs
    eta = fit._linear_predictor(include_re=use_u)
    Y = np.repeat(eta[:, None], nsim, axis=1)
    if not use_u:
        tmpl = fit.structure.templates(fit.theta)
        for ti, t in enumerate(fit.structure.terms):
            td = _design_term(fit, ti)
            codes = np.asarray(td.codes, dtype=np.int64)
            mat = np.asarray(td.matrix, dtype=np.float64)
            T = tmpl[ti, : t.k, : t.k]
            step = max(1, _SIM_CHUNK_BYTES // (8 * max(n * t.k, t.nlevels * t.k)))
            for s0 in range(0, nsim, step):
                s1 = min(nsim, s0 + step)
                u = rng.standard_normal((t.nlevels, t.k, s1 - s0))
                b = fit.sigma * np.einsum("ij,mjs->mis", T, u)
                Y[:, s0:s1] += np.einsum("nk,nks->ns", mat, b[codes])
    sd = np.full(n, fit.sigma)
    if d.weights is not None:
        sd = fit.sigma / np.sqrt(np.asarray(d.weights, dtype=np.float64))
    Y += sd[:, None] * rng.standard_normal((n, nsim))
    return pd.DataFrame(Y, index=d.row_index, columns=[f"sim_{i + 1}" for i in range(nsim)])


# --------------------------------------------------------------------------------------
# refit
# --------------------------------------------------------------------------------------


def _response_values(fit: LmerFit, new_response: Any) -> np.ndarray:
    """The new response as float64, one value per fitted row."""
    n = fit.nobs
    idx = fit.design.row_index
    if isinstance(new_response, pd.DataFrame):
        if new_response.shape[1] != 1:
            raise DataError("new_response must be one column (a vector), not a DataFrame "
                            f"with {new_response.shape[1]} columns")
        new_response = new_response.iloc[:, 0]
    if isinstance(new_response, pd.Series):
        s = new_response
        if len(s) != n or not s.index.equals(idx):
            if not idx.isin(s.index).all():
                raise DataError(f"new_response has {len(s)} values whose index does not "
                                f"cover the {n} fitted rows")
            if not s.index.is_unique:
                raise DataError("new_response has a duplicated index")
            s = s.reindex(idx)
        try:
            y = s.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DataError(f"new_response is not numeric (dtype {s.dtype})") from None
    else:
        try:
            y = np.asarray(new_response, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("new_response must be numeric") from None
        if y.ndim == 2 and 1 in y.shape:
            y = y.ravel()
        if y.ndim != 1:
            raise DataError(f"new_response must be one-dimensional, got shape {y.shape}")
        if y.shape[0] != n:
            raise DataError(f"new_response has {y.shape[0]} values; the fit used {n} rows")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(f"new_response has missing or infinite values (e.g. at fitted row "
                        f"{idx[bad[0]]!r})")
    return np.ascontiguousarray(y)


def _with_response(fit: LmerFit, y: np.ndarray):
    """Design and blocks of the fit with another response: only Z'Wy, X'Wy, y'Wy anew."""
    d = fit.design
    yy = y if d.offset is None else y - d.offset
    if np.ptp(yy) == 0.0:
        raise DataError("new_response is constant (after the offset): with zero variance "
                        "there are no variance components to estimate")
    b = fit.blocks
    w = np.ones(b.n) if d.weights is None else np.asarray(d.weights, dtype=np.float64)
    wy = w * yy
    Zty = np.empty(b.q)
    ycol = np.ascontiguousarray(yy[:, None])
    for ti, t in enumerate(fit.structure.terms):
        td = _design_term(fit, ti)
        blk = K.term_cross_sums(np.ascontiguousarray(td.codes, dtype=np.int64),
                                np.ascontiguousarray(td.matrix, dtype=np.float64), w, ycol,
                                t.nlevels)
        Zty[t.offset : t.offset + t.size] = blk.reshape(-1)
    Xty = d.X.T @ wy if b.p else np.zeros(0)
    blocks = dataclasses.replace(b, Zty=Zty, Xty=np.ascontiguousarray(Xty),
                                 yty=float(yy @ wy), shift=None)
    return dataclasses.replace(d, y=y), blocks


def refit(fit: LmerFit, new_response: Any = None, *, reml: bool | None = None) -> LmerFit:
    """Fit the same model again: to a new response (lme4's ``refit(m, newresp)``), by
    another criterion (``reml``), or both.

    Nothing is rebuilt from the data. With a new response only ``Z'Wy``, ``X'Wy`` and
    ``y'Wy`` are computed anew (one pass over the rows per random-effects term); the
    design, the term layout and the cross-product blocks of ``Z`` and ``X`` are reused.
    With the same response the blocks are reused as they are.

    Start values: with a new response, as in lme4's ``refit``, the optimiser starts from
    the fit's theta; otherwise (a REML <-> ML refit) from lme4's usual start values, as a
    fresh fit does. Either way the result is the optimum a fresh fit reaches (to the
    optimiser's tolerance; exactly the same numbers for a criterion change).

    Parameters
    ----------
    fit
        The fitted model.
    new_response
        One value per fitted row (``fit.nobs``), on the scale of the fitted response
        (after any transformation in the formula, e.g. ``log(y)``). A Series is aligned by
        its index to the fitted rows; an array is taken in fitted-row order. ``None``
        keeps the response.
    reml
        REML (True) or ML (False); the fit's criterion by default.

    Returns
    -------
    LmerFit
    """
    from ._api import choose_optimizer
    from ._checks import check_convergence
    from ._fit import LmerFit
    from ._objective import LmmObjective
    from ._optimizer import minimize_theta

    t0 = time.perf_counter()
    re_ = fit.structure
    if new_response is None:
        design, blocks = fit.design, fit.blocks
        start = re_.start_theta()
    else:
        design, blocks = _with_response(fit, _response_values(fit, new_response))
        start = np.maximum(fit.theta, re_.lower_bounds())
    t1 = time.perf_counter()
    obj = LmmObjective(blocks, reml=fit.reml if reml is None else bool(reml),
                       factorization=getattr(fit._obj, "requested_factorization",
                                             fit._obj.factorization))
    t2 = time.perf_counter()
    method = fit.optsum.method if fit.optsum.method in ("L-BFGS-B", "COBYQA") \
        else choose_optimizer(obj)
    optsum = minimize_theta(obj, start, re_.lower_bounds(), method=method)
    t3 = time.perf_counter()
    optsum.messages.extend(check_convergence(obj, optsum))
    t4 = time.perf_counter()
    new = LmerFit(design=design, structure=re_, blocks=blocks, objective_fn=obj,
                  optsum=optsum, term_order=list(fit.term_order),
                  data_name=getattr(fit, "data_name", None))
    new.timings = {"blocks": t1 - t0, "analysis": t2 - t1, "optimizer": t3 - t2,
                   "checks": t4 - t3, "fit_object": time.perf_counter() - t4}
    kept = ("weights_name", "offset_name") + (("data",) if new_response is None else ())
    for attr in kept:
        if hasattr(fit, attr):
            setattr(new, attr, getattr(fit, attr))
    return new


# --------------------------------------------------------------------------------------
# update
# --------------------------------------------------------------------------------------


def _top_pieces(text: str, start: int) -> list[tuple[str, str]]:
    """Top-level summands of ``text[start:]`` with their signs (``+``, ``-``)."""
    from ._formula import _scan

    sc = _scan(text)
    pieces: list[tuple[str, str]] = []
    op, s0 = "+", start
    for i in range(start, len(text)):
        if sc.depth[i] == 0 and sc.masked[i] in "+-":
            pieces.append((op, text[s0:i].strip()))
            op, s0 = sc.masked[i], i + 1
    pieces.append((op, text[s0:].strip()))
    out = []
    for k, (op, piece) in enumerate(pieces):
        if not piece:
            if k == 0:
                continue  # leading sign: "-1 + x"
            raise FormulaError("two operators in a row (a term is missing)", text)
        out.append((op, piece))
    return out


def _random_texts(pf: ParsedFormula) -> list[str]:
    """The random-effects terms of a formula as written, ``(expr | g)``, in order."""
    from ._formula import _scan

    sc = _scan(pf.text)
    starts = list(dict.fromkeys(t.start for t in pf.random))
    return [pf.text[s : sc.match[s] + 1] for s in starts]


def _is_bar_term(piece: str) -> bool:
    from ._formula import _scan

    if not (piece.startswith("(") and piece.endswith(")")):
        return False
    try:
        sc = _scan(piece)
    except FormulaError:
        return False
    if sc.match.get(0) != len(piece) - 1:
        return False
    return any(sc.masked[i] == "|" and sc.depth[i] >= 1 for i in range(len(piece)))


def _term_keys(piece: str) -> frozenset[tuple[str, str]]:
    """(grouping factor, canonical expression) of the terms a bar term expands into."""
    from ._formula import parse_formula

    pf = parse_formula("y ~ " + piece)
    return frozenset((t.label, _formula_key(t.expr)) for t in pf.random)


def _fixed_text(parts: list[tuple[str, str]]) -> str:
    """The fixed part of summands (with signs) as formulaic simplifies it."""
    from formulaic import Formula

    from ._formula import _term_text

    expr = " ".join(f"{op} {p}" for op, p in parts).lstrip("+ ").strip() or "1"
    if parts and parts[0][0] == "-":
        expr = "- " + expr
    try:
        terms = list(Formula(expr))
    except Exception as exc:  # noqa: BLE001 - formulaic raises several types
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("\n\n", 1)[0]
        raise FormulaError(f"invalid fixed part {expr!r}: {msg}") from None
    texts = [_term_text(t) for t in terms]
    if "1" not in texts:
        return " + ".join(["0", *texts])
    rest = [t for t in texts if t != "1"]
    return " + ".join(rest) if rest else "1"


def update_formula(old: ParsedFormula, new: str) -> str:
    """R's ``update.formula``: ``new`` with ``.`` standing for the parts of ``old``.

    Parameters
    ----------
    old
        The parsed formula of the fit.
    new
        ``". ~ . - x"``, ``". ~ . + (1 | g)"``, ``"log(.) ~ ."``, ``"~ . - (Days | g)"`` (no
        response: the old one) or a whole formula without ``.``.

    Returns
    -------
    str
        The formula text. Random-effects terms are removed when they expand to the same
        terms as the subtracted one (``(Days | g)`` matches ``(1 + Days | g)``).
    """
    from ._formula import _scan, _to_python

    if not isinstance(new, str):
        raise FormulaError(f"formula must be a string, not {type(new).__name__}")
    new = _to_python(new)[0]  # R's reading of the code, as the old formula's parts have it
    sc = _scan(new)
    tildes = [i for i, ch in enumerate(sc.masked) if ch == "~" and sc.depth[i] == 0]
    if len(tildes) != 1:
        raise FormulaError("the new formula needs exactly one '~' (e.g. '. ~ . - x')", new)
    tilde = tildes[0]
    if not _DOT_RE.search(sc.masked):
        lhs = new[:tilde].strip()
        return new if lhs else f"{old.response} {new.strip()}"
    lhs = new[:tilde].strip()
    resp = old.response
    simple = re.fullmatch(r"[\w.]+|`[^`]+`", resp) is not None
    if not lhs:
        lhs = resp
    else:
        lhs = _DOT_RE.sub(lambda _: resp if simple else f"({resp})", lhs)
    fixed: list[tuple[str, str]] = []
    offsets: list[str] = []
    randoms: list[str] = []
    old_random = _random_texts(old)
    old_offsets = [f"offset({e})" for e in old.offset_exprs]
    for op, piece in _top_pieces(new, tilde + 1):
        if piece == ".":
            if op == "-":
                raise FormulaError("'- .' is not allowed in an update formula", new)
            fixed.append(("+", f"({old.fixed})"))
            offsets += [o for o in old_offsets if o not in offsets]
            randoms += [r for r in old_random if r not in randoms]
        elif _is_bar_term(piece):
            keys = _term_keys(piece)
            if op == "+":
                if all(_term_keys(r) != keys for r in randoms):
                    randoms.append(piece)
                continue
            kept = [r for r in randoms if _term_keys(r) != keys]
            if len(kept) == len(randoms):
                warnings.warn(f"the model has no random-effects term {piece}; nothing removed",
                              UserWarning, stacklevel=3)
            randoms = kept
        elif re.match(r"offset\s*\(", piece) and piece.endswith(")"):
            norm = re.sub(r"\s+", "", piece)
            if op == "+":
                if all(re.sub(r"\s+", "", o) != norm for o in offsets):
                    offsets.append(piece)
            else:
                offsets = [o for o in offsets if re.sub(r"\s+", "", o) != norm]
        else:
            fixed.append((op, _DOT_RE.sub(lambda _: f"({old.fixed})", piece)))
    fixed_text = _fixed_text(fixed)
    rhs = ([] if fixed_text == "1" and (randoms or offsets) else [fixed_text])
    rhs += offsets + randoms
    return f"{lhs} ~ {' + '.join(rhs)}"


def update(fit: LmerFit, formula: str | None = None, data: pd.DataFrame | None = None,
           **kwargs: Any) -> LmerFit:
    """Fit a changed model, as R's ``update(m, . ~ . - x)``.

    Parameters
    ----------
    fit
        The fitted model.
    formula
        The new formula; ``.`` stands for the old response (left of ``~``) or the old
        right-hand side: ``". ~ . - Days"``, ``". ~ . - (Days | Subject) + (1 | Subject)"``,
        ``"log(.) ~ ."``. A formula without ``.`` replaces the old one. ``None`` keeps it
        (to change only keyword arguments such as ``reml``).
    data
        The data. Needed unless the fit keeps a reference to its data (``fit.data``):
        mixeff does not store the data with the fit by default.
    **kwargs
        Passed to :func:`mixeff.lmer` (``reml`` defaults to the fit's; ``weights`` and
        ``offset`` must be given again when the fit had them).

    Returns
    -------
    LmerFit

    Raises
    ------
    DataError
        No data, or weights / an ``offset=`` argument that were not passed again.
    """
    from ._api import lmer

    if data is None:
        data = getattr(fit, "data", None)
    if data is None:
        raise DataError("update() needs the data: pass data=... (the fit keeps no "
                        "reference to the data it was fitted to)")
    d = fit.design
    if d.weights is not None and "weights" not in kwargs:
        raise DataError("the fit has prior weights: pass weights=... to update() again "
                        "(the fit does not record how they were given)")
    if d.offset is not None and not d.formula.offset_exprs and "offset" not in kwargs:
        raise DataError("the fit has an offset= argument: pass offset=... to update() "
                        "again (the fit does not record how it was given)")
    text = fit.formula if formula is None else update_formula(d.formula, formula)
    kwargs.setdefault("reml", fit.reml)
    if getattr(d, "eval_env", None) is not None:
        kwargs.setdefault("eval_env", d.eval_env)
    if getattr(d, "allow_python", False):
        kwargs.setdefault("allow_python", True)
    for key, value in (getattr(fit, "_r_args", None) or {}).items():
        kwargs.setdefault(key, value)
    new = lmer(text, data, **kwargs)
    if getattr(fit, "data_name", None) and getattr(new, "data_name", None) is None:
        new.data_name = fit.data_name
    return new
