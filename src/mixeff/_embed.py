"""Fitting from arrays: the embedding API for tools that build their own design.

:func:`fit_arrays` takes the numbers a formula would have produced -- the response, the
fixed-effects matrix and, per random-effects term, the level code of every row and the
term's model matrix -- builds a :class:`~mixeff._design.Design` directly and fits it with
the same pipeline as :func:`mixeff.lmer`. Nothing is parsed from data; a synthetic formula
describes the model for printing, e.g. ``y ~ 1 + Days + (1 + Days | Subject)``.

What works on the returned fit
    Everything computed from the design: ``summary()``, ``coef_table()`` (Satterthwaite
    and Kenward-Roger), ``vcov()``, ``ranef()``, ``varcorr()``, ``fitted()``,
    ``residuals()``, ``confint()``, ``ranova()`` and the functions of
    :mod:`mixeff._predict` without new data (``predict``, ``simulate``, ``refit``) and of
    :mod:`mixeff._tidy`. ``anova()`` tests each fixed-effect column on its own (each
    column is a numeric term of the synthetic formula; there are no factors to group
    columns), with the intercept left out as usual.

What does not
    Formula updates (``update``) need a formula and data. Predictions on new data only
    work for a DataFrame whose columns are named like the fixed-effect columns
    (``xnames``), the random-effects columns (``colnames``) and the grouping factors
    (``name``), with the grouping levels labelled as in the fit (``levels``, by default
    the codes as text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ._design import Design, ReTermDesign
    from ._fit import LmerFit

__all__ = ["RandomTermSpec", "fit_arrays", "build_array_design"]

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass
class RandomTermSpec:
    """One random-effects term given as arrays.

    Attributes
    ----------
    codes
        Integer level code of each row, ``0 .. m-1`` (``m`` the number of levels).
    matrix
        The term's ``n x k`` model matrix (a 1-D array is one column), or ``None`` for a
        random intercept (a column of ones).
    name
        Name of the grouping factor. Terms with the same name share the grouping factor
        (as ``(1 | g) + (0 + x | g)``) and must have the same codes.
    colnames
        Names of the matrix columns; by default ``"(Intercept)"`` for a column of ones
        and ``"z1"``, ``"z2"``, ... (by position) for the others.
    levels
        Labels of the levels, indexed by code; by default the codes as text.
    """

    codes: Any
    matrix: Any = None
    name: str = "g"
    colnames: Sequence[str] | None = None
    levels: Sequence[Any] | None = None


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def _finite_vector(v: Any, what: str, n: int | None) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric") from None
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"{what} has {arr.shape[0]} values; y has {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{what} has missing or infinite values (first at row {bad[0]}); "
                        "remove those rows first")
    return np.ascontiguousarray(arr)


def _finite_matrix(v: Any, what: str, n: int) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-D array (n x k), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataError(f"{what} has {arr.shape[0]} rows; y has {n}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{what} has missing or infinite values (first at row {bad[0, 0]}, "
                        f"column {bad[0, 1]}); remove those rows first")
    return arr


def _default_names(M: np.ndarray, prefix: str) -> list[str]:
    """``"(Intercept)"`` for the first column of ones, ``prefix1``, ... for the others."""
    ones = np.flatnonzero(np.all(M == 1.0, axis=0)) if M.shape[0] else np.zeros(0, int)
    names = [f"{prefix}{j + 1}" for j in range(M.shape[1])]
    if ones.size:
        names[int(ones[0])] = "(Intercept)"
    return names


def _names(given: Sequence[str] | None, M: np.ndarray, prefix: str, what: str) -> list[str]:
    if given is None:
        return _default_names(M, prefix)
    names = [str(x) for x in given]
    if len(names) != M.shape[1]:
        raise DataError(f"{what} has {len(names)} names for {M.shape[1]} columns")
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise DataError(f"{what} has repeated names: {dup}")
    if any(not x for x in names):
        raise DataError(f"{what} has an empty name")
    return names


def _codes(spec: RandomTermSpec, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..m-1 of the used levels and their labels (unused levels dropped)."""
    raw = np.asarray(spec.codes)
    if raw.ndim != 1:
        raise DataError(f"codes of {what} must be one-dimensional, got shape {raw.shape}")
    if raw.shape[0] != n:
        raise DataError(f"codes of {what} have {raw.shape[0]} values; y has {n}")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            raise DataError(f"codes of {what} have missing values")
        if np.any(raw != np.round(raw)):
            raise DataError(f"codes of {what} must be whole numbers")
    elif raw.dtype.kind not in "iu":
        raise DataError(f"codes of {what} must be integers (level codes 0..m-1), not "
                        f"{raw.dtype}; use pandas.factorize to make them")
    codes = raw.astype(np.int64)
    if n and codes.min() < 0:
        raise DataError(f"codes of {what} must be >= 0 (found {codes.min()})")
    if spec.levels is not None:
        labels = pd.Index(list(spec.levels), dtype=object).astype(str)
        if not labels.is_unique:
            raise DataError(f"levels of {what} are not unique")
        if n and codes.max() >= len(labels):
            raise DataError(f"codes of {what} go up to {codes.max()} but only {len(labels)} "
                            "levels are given")
        m = len(labels)
    else:
        m = int(codes.max()) + 1 if n else 0
        labels = pd.Index(np.arange(m).astype(str), dtype=object)
    used = np.bincount(codes, minlength=m) > 0
    if not used.all():
        remap = np.cumsum(used) - 1
        codes = remap[codes]
        labels = labels[used]
    return codes, np.asarray(labels, dtype=object)


def _quote(name: str) -> str:
    return name if _IDENT_RE.fullmatch(name) else f"`{name}`"


def _expr(colnames: list[str]) -> str:
    rest = [_quote(c) for c in colnames if c != "(Intercept)"]
    if "(Intercept)" in colnames:
        return " + ".join(["1", *rest])
    return " + ".join(["0", *rest])


# --------------------------------------------------------------------------------------
# the design
# --------------------------------------------------------------------------------------


def _fixed_spec(X: np.ndarray, xnames: list[str], fixed: str) -> Any:
    """A formulaic ``ModelSpec`` of the synthetic fixed part (None when it cannot be made)."""
    from ._design import _rename, formulaic_matrix

    frame = pd.DataFrame({nm: X[:, j] for j, nm in enumerate(xnames) if nm != "(Intercept)"},
                         index=pd.RangeIndex(X.shape[0]))
    try:
        mm = formulaic_matrix(fixed, frame, na_action="ignore")
    except Exception:  # noqa: BLE001 - names formulaic cannot read: no spec, no anova
        return None
    return mm.model_spec if _rename(mm.columns) == xnames else None


def build_array_design(X: Any, y: Any, random_terms: RandomTermSpec | Sequence[RandomTermSpec],
                       *, weights: Any = None, offset: Any = None,
                       xnames: Sequence[str] | None = None, check_nlev: str = "stop",
                       check_nobs_vs_nre: str = "stop") -> Design:
    """The :class:`~mixeff._design.Design` of a model given as arrays.

    Parameters are those of :func:`fit_arrays`. Rows with prior weight 0 are dropped (as
    :func:`mixeff.lmer` does); linearly dependent columns of ``X`` are dropped as lme4
    does, with a message.

    Returns
    -------
    Design
    """
    from ._design import Design, ReTermDesign, _check_level, _independent_columns, _run_checks
    from ._formula import ParsedFormula, RandomTerm

    check_nlev = _check_level("check_nlev", check_nlev)
    check_nobs_vs_nre = _check_level("check_nobs_vs_nre", check_nobs_vs_nre)
    yv = _finite_vector(y, "y", None)
    n = yv.shape[0]
    if n == 0:
        raise DataError("y is empty")
    Xm = _finite_matrix(np.zeros((n, 0)) if X is None else X, "X", n)
    names = _names(xnames, Xm, "x", "X")
    specs = [random_terms] if isinstance(random_terms, RandomTermSpec) else list(random_terms)
    if not specs:
        raise DataError("at least one random-effects term is needed (for a linear model "
                        "without random effects use mixeff.lm)")
    if not all(isinstance(s, RandomTermSpec) for s in specs):
        raise DataError("random_terms must be RandomTermSpec objects")
    w = None if weights is None else _finite_vector(weights, "weights", n)
    off = None if offset is None else _finite_vector(offset, "offset", n)
    messages: list[str] = []
    keep_rows = np.ones(n, dtype=bool)
    if w is not None:
        neg = np.flatnonzero(w < 0)
        if neg.size:
            raise DataError(f"weights must be non-negative (row {neg[0]} has {w[neg[0]]:g})")
        keep_rows = w > 0
        n_zero = int(n - keep_rows.sum())
        if n_zero:
            messages.append(f"{n_zero} row{'s' if n_zero != 1 else ''} with zero weight "
                            "dropped")

    # random-effects terms -----------------------------------------------------------
    raw_terms = []
    for i, s in enumerate(specs):
        if not isinstance(s.name, str) or not s.name:
            raise DataError(f"random term {i} needs a non-empty name")
        what = f"random term {i} ({s.name!r})"
        M = np.ones((n, 1)) if s.matrix is None else _finite_matrix(s.matrix, f"matrix of "
                                                                    f"{what}", n)
        if M.shape[1] == 0:
            raise DataError(f"matrix of {what} has no columns")
        cn = (["(Intercept)"] if s.matrix is None and s.colnames is None
              else _names(s.colnames, M, "z", f"matrix of {what}"))
        raw_terms.append((s, what, M, cn))

    rows = np.flatnonzero(keep_rows)
    sub = None if rows.size == n else rows
    if rows.size == 0:
        raise DataError("no rows left: every weight is 0")
    nk = rows.size
    groups: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    terms: list[ReTermDesign] = []
    for i, (s, what, M, cn) in enumerate(raw_terms):
        codes_full = np.asarray(s.codes)
        spec = RandomTermSpec(codes=codes_full if sub is None else _sliced(codes_full, sub, what,
                                                                           n),
                              matrix=None, name=s.name, levels=s.levels)
        codes, labels = _codes(spec, nk, what)
        if s.name in groups:
            c0, l0, i0 = groups[s.name]
            if not (np.array_equal(c0, codes) and np.array_equal(l0, labels)):
                raise DataError(f"random terms {i0} and {i} are both named {s.name!r} but "
                                "have different codes or levels; give each grouping factor "
                                "its own name")
        else:
            groups[s.name] = (codes, labels, i)
        Mk = M if sub is None else M[sub]
        terms.append(ReTermDesign(label=s.name, codes=codes.astype(np.int32),
                                  levels=pd.Index(labels, dtype=object),
                                  matrix=np.ascontiguousarray(Mk, dtype=np.float64),
                                  colnames=list(cn), expr=_expr(list(cn))))
    if sub is not None:
        yv, Xm = yv[sub], Xm[sub]
        w = None if w is None else w[sub]
        off = None if off is None else off[sub]
    _run_checks(terms, nk, check_nlev, check_nobs_vs_nre, messages)

    # fixed effects --------------------------------------------------------------------
    keep = _independent_columns(Xm)
    dropped = [nm for nm, k in zip(names, keep, strict=True) if not k]
    if dropped:
        k = len(dropped)
        messages.append("fixed-effect model matrix is rank deficient so dropping "
                        f"{k} column{'s' if k != 1 else ''} / "
                        f"coefficient{'s' if k != 1 else ''}")
    Xk = np.asfortranarray(Xm[:, keep], dtype=np.float64)
    kept = [nm for nm, k in zip(names, keep, strict=True) if k]
    if Xk.shape[1] >= nk:
        raise DataError(f"X has {Xk.shape[1]} linearly independent columns for {nk} rows: no "
                        "residual degrees of freedom are left")
    r = yv if off is None else yv - off
    if np.ptp(r) == 0.0:
        raise DataError("y (minus the offset) is constant: with zero variance there are no "
                        "variance components to estimate")

    # the synthetic formula --------------------------------------------------------------
    fixed = _expr(names) if names else "0"
    text = f"y ~ {fixed}"
    random: list[RandomTerm] = []
    for t in terms:
        start = len(text) + 3
        text += f" + ({t.expr} | {_quote(t.label)})"
        random.append(RandomTerm(expr=t.expr, factors=(t.label,), label=t.label, start=start))
    pf = ParsedFormula(text=text, response="y", fixed=fixed, random=tuple(random),
                       offset_exprs=())
    spec = _fixed_spec(Xm, names, fixed) if names else None
    return Design(formula=pf, response_name="y", y=np.ascontiguousarray(yv), X=Xk,
                  xnames=kept, dropped_xnames=dropped, terms=terms, weights=w, offset=off,
                  n_dropped=n - nk, row_index=pd.RangeIndex(n)[rows], messages=messages,
                  fixed_spec=spec)


def _sliced(codes: np.ndarray, rows: np.ndarray, what: str, n: int) -> np.ndarray:
    if codes.ndim != 1 or codes.shape[0] != n:
        raise DataError(f"codes of {what} must be one-dimensional with one value per row "
                        f"({n}), got shape {codes.shape}")
    return codes[rows]


def fit_arrays(X: Any, y: Any, random_terms: RandomTermSpec | Sequence[RandomTermSpec], *,
               reml: bool = True, weights: Any = None, offset: Any = None,
               xnames: Sequence[str] | None = None, optimizer: str = "auto",
               check_nlev: str = "stop", check_nobs_vs_nre: str = "stop") -> LmerFit:
    """Fit a linear mixed model given as arrays (no formula, no DataFrame).

    Parameters
    ----------
    X
        Fixed-effects model matrix ``n x p`` (include a column of ones for an intercept;
        ``None`` or ``p = 0`` for no fixed effects). Linearly dependent columns are
        dropped as lme4 does.
    y
        Response ``(n,)``.
    random_terms
        One :class:`RandomTermSpec` or a sequence of them, e.g.
        ``RandomTermSpec(codes, np.column_stack([np.ones(n), days]), name="Subject",
        colnames=["(Intercept)", "Days"])`` for ``(Days | Subject)``.
    reml
        REML (default) or maximum likelihood.
    weights
        Prior weights ``(n,)``, finite and non-negative; rows with weight 0 are dropped.
    offset
        Known part of the linear predictor ``(n,)``.
    xnames
        Names of the columns of ``X``; by default ``"(Intercept)"`` for a column of ones
        and ``"x1"``, ``"x2"``, ... (by position) for the others.
    optimizer, check_nlev, check_nobs_vs_nre
        As for :func:`mixeff.lmer`.

    Returns
    -------
    LmerFit
        The fit, identical to :func:`mixeff.lmer` on a formula producing the same
        numbers. See the module docstring for what works on it.

    Raises
    ------
    DataError
        Wrong shapes, missing or infinite values, codes that are not integers ``>= 0`` or
        exceed the given levels, terms sharing a name but not their codes, fewer than two
        levels, lme4's checks on the numbers of levels and of random effects.
    """
    from ._api import fit_design

    design = build_array_design(X, y, random_terms, weights=weights, offset=offset,
                                xnames=xnames, check_nlev=check_nlev,
                                check_nobs_vs_nre=check_nobs_vs_nre)
    from ._warnings import warn_fit

    fit = fit_design(design, reml=reml, optimizer=optimizer)
    warn_fit(fit)   # as lmer: convergence and singular-fit warnings at the user's call
    return fit
