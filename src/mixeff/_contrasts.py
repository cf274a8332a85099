"""Contrast matrices of lmerTest's Type I, II and III ANOVA tables, on formulaic designs.

lmerTest tests each model term with an F test of ``L beta = 0``. The rows of ``L`` (and not
only the space they span) matter: the Satterthwaite denominator df of a multi-df test is
computed from the eigen-decomposition of ``L V L'``, so a different basis of the same
hypothesis gives a different df. This module builds the very matrices lmerTest builds:

Type I (``get_contrasts_type1``)
    The rows of the transposed unit lower factor of the Doolittle LU decomposition of
    ``X'X``, grouped by term.
Type II (``get_contrasts_type2_unfolded``)
    Terms contained in no other term: the unit rows of their columns. The other terms:
    the Type I rows of the term after reordering the columns of ``X`` as
    ``[unrelated terms, term, terms containing it]``.
Type III (``get_contrasts_type3``)
    ``L = zapsmall(t(ginv(X) rdX))`` with ``X`` in treatment coding and ``rdX`` the
    over-parameterised design (one column per cell of every term); columns of terms
    contained in other terms are orthogonalised against the containing terms' columns
    (higher-order terms first); the rows for the model's coefficients are kept. Designs
    coded otherwise (``C(x, Sum)``...) are mapped back through ``ginv(X_treatment) X``.

Type III without the data
    The fit does not keep the data, and none is needed: every column of ``rdX`` lies in the
    column space of ``X``, and only ``ginv(X) rdX`` enters the computation. With
    ``X = QR``, each cell column is solved, term by term from the lowest order up, from the
    term's own columns and the cells of its margins (a cell of the reference level of a
    factor is the margin minus the other levels' cells), all in the ``p``-dimensional
    coordinates ``Q'(.)``. Only ``p x (#cells)`` matrices are formed.

Rank-deficient ``X``
    The design keeps the least-squares coefficients of the columns dropped from ``X`` on
    the kept ones (``Design.dropped_coef``), so the dropped columns, and with them every
    cell, are known in the coordinates of ``X = QR``; cells without data come out as
    exact zero columns, as in lmerTest's ``rdX``, before the treatment-coded design is
    made full rank by R's rule. Then the hypotheses do not depend on the coding, also
    with empty cells. (Designs without those coefficients, e.g. from Dask data, fall back
    to completing the cells from the kept columns, exact for empty cells when a unique
    completion exists, approximate otherwise, with a note.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Term",
    "TermLayout",
    "containment",
    "contrasts_type1",
    "contrasts_type2",
    "contrasts_type3",
    "doolittle",
    "factor_codes",
    "get_contrasts",
    "term_layout",
    "zapsmall",
]

_RANK_TOL = 1e-7  # R's qr(..., tol = 1e-7), used by lm.fit and ensure_full_rank
_ROW_TOL = 1e-8  # lmerTest keeps contrast rows with rowSums(abs(L)) > 1e-8


class UnsupportedDesign(ValueError):
    """The fixed-effects design has a structure the Type III construction cannot map."""


# --------------------------------------------------------------------------------------
# small numerical helpers (R semantics)
# --------------------------------------------------------------------------------------


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits - log10(max|x|)`` decimal places.

    Parameters
    ----------
    x
        Array (any shape).
    digits
        R's ``getOption("digits")``.

    Returns
    -------
    numpy.ndarray
        Rounded copy of ``x``. R's ``round`` takes ``floor(d + 0.5)`` of a fractional
        number of digits ``d``.
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x.copy()
    ok = ~np.isnan(x)
    if not ok.any():
        return x.copy()
    mx = float(np.max(np.abs(x[ok])))
    d = max(0.0, digits - np.log10(mx)) if mx > 0 else float(digits)
    return np.round(x, int(np.floor(d + 0.5)))


def _identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float)


def doolittle(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Doolittle LU decomposition ``x = L U`` as lmerTest's ``doolittle``.

    Parameters
    ----------
    x
        Square matrix (at least 2 x 2).
    eps
        Absolute tolerance: a pivot ``|U[i, i]| < eps`` gives a zero column of ``L``, and
        entries of ``L`` and ``U`` below ``eps`` in absolute value are set to zero.

    Returns
    -------
    L, U
        Unit lower-triangular ``L`` and upper-triangular ``U``.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if x.ndim != 2 or x.shape[1] != n or n < 2:
        raise ValueError("doolittle needs a square matrix with at least 2 rows")
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = x[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


def _independent(A: np.ndarray, tol: float = _RANK_TOL) -> np.ndarray:
    """Columns of ``A`` not dependent on earlier ones (LINPACK ``dqrdc2`` rule of R's qr)."""
    from ._design import _independent_columns

    if A.shape[1] == 0:
        return np.zeros(0, dtype=bool)
    return _independent_columns(np.asfortranarray(A, dtype=float), tol)


def _lm_resid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residuals of ``lm.fit(x, y)``: ``y`` minus its projection on the columns of ``x``."""
    if x.shape[1] == 0:
        return y.copy()
    keep = _independent(x)
    if not keep.any():
        return y.copy()
    Q, _ = np.linalg.qr(x[:, keep])
    return y - Q @ (Q.T @ y)


def _ginv_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``MASS::ginv(A) %*% B`` (SVD pseudo-inverse, tolerance ``sqrt(eps)`` relative)."""
    if A.shape[1] == 0:
        return np.zeros((0, B.shape[1]))
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    pos = s > max(np.sqrt(np.finfo(float).eps) * (s[0] if s.size else 0.0), 0.0)
    return (Vt[pos].T / s[pos]) @ (U[:, pos].T @ B)


# --------------------------------------------------------------------------------------
# terms of a formulaic design
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One fixed-effects term (not the intercept).

    Attributes
    ----------
    label
        formulaic's label, e.g. ``"week:C(temp)"``.
    factors
        Factor expressions in term order (R's variables of the term).
    categorical
        The categorical factors, in term order.
    numeric
        The other (numeric) factors, in term order.
    """

    label: str
    factors: tuple[str, ...]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]

    @property
    def order(self) -> int:
        """Number of variables (R's ``attr(terms, "order")``)."""
        return len(self.factors)


@dataclass
class TermLayout:
    """Terms of a design and the columns of ``X`` each produced.

    Attributes
    ----------
    xnames
        Names of the columns of ``X`` (after dropping rank-deficient columns).
    has_intercept
        Whether the model has an intercept.
    terms
        The terms other than the intercept, in model order.
    term_cols
        Term label -> indices of its columns in ``X`` (possibly empty).
    col_terms
        Per column of ``X``: its term label, ``"(Intercept)"`` for the intercept.
    levels
        Categorical factor expression -> its levels.
    contrasts
        Categorical factor expression -> formulaic contrasts object.
    spec
        The formulaic ``ModelSpec`` of the fixed part.
    full_names
        Names of all columns the spec produced (before dropping).
    """

    xnames: list[str]
    has_intercept: bool
    terms: list[Term]
    term_cols: dict[str, np.ndarray]
    col_terms: list[str]
    levels: dict[str, list]
    contrasts: dict[str, Any]
    spec: Any = None
    full_names: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Term labels in model order."""
        return [t.label for t in self.terms]


def _rename(name: str) -> str:
    from ._design import _rename as rename  # one naming rule (a column named Intercept...)

    return rename([name])[0]


def term_layout(design) -> TermLayout:
    """Terms, variable classes and column assignment of a :class:`~mixeff._design.Design`.

    Parameters
    ----------
    design
        A built design with ``fixed_spec`` (formulaic ``ModelSpec`` of the fixed part),
        ``xnames`` and ``dropped_xnames``.

    Returns
    -------
    TermLayout
    """
    spec = getattr(design, "fixed_spec", None)
    if spec is None:
        raise ValueError("the design has no formulaic model spec of its fixed part")
    xnames = list(design.xnames)
    pos = {nm: i for i, nm in enumerate(xnames)}
    full_names = [_rename(c) for c in spec.column_names]
    levels: dict[str, list] = {}
    contrasts: dict[str, Any] = {}
    for expr, (kind, state) in (spec.encoder_state or {}).items():
        if getattr(kind, "value", str(kind)) != "categorical":
            continue
        cs = state.get("contrasts")
        if cs is not None:
            levels[expr] = list(cs.levels)
            contrasts[expr] = cs.contrasts
        else:
            from formulaic.transforms.contrasts import TreatmentContrasts

            levels[expr] = list(state.get("categories", []))
            contrasts[expr] = TreatmentContrasts()
    has_intercept = False
    terms: list[Term] = []
    term_cols: dict[str, np.ndarray] = {}
    col_terms: list[str | None] = [None] * len(xnames)
    for term, idx in spec.term_indices.items():
        label = str(term)
        kept = [pos[full_names[j]] for j in idx if full_names[j] in pos]
        if label == "1":
            has_intercept = True
            for k in kept:
                col_terms[k] = "(Intercept)"
            continue
        factors = tuple(f.expr for f in term.factors)
        terms.append(Term(label=label, factors=factors,
                          categorical=tuple(f for f in factors if f in levels),
                          numeric=tuple(f for f in factors if f not in levels)))
        term_cols[label] = np.array(sorted(kept), dtype=int)
        for k in kept:
            col_terms[k] = label
    if any(c is None for c in col_terms):
        missing = [nm for nm, c in zip(xnames, col_terms, strict=True) if c is None]
        raise ValueError(f"columns of X not produced by any term: {missing}")
    return TermLayout(xnames=xnames, has_intercept=has_intercept, terms=terms,
                      term_cols=term_cols, col_terms=list(col_terms), levels=levels,
                      contrasts=contrasts, spec=spec, full_names=full_names)


def factor_codes(layout: TermLayout) -> dict[str, dict[str, int]]:
    """R's ``attr(terms, "factors")`` codes: 1 (coded by contrasts) or 2 (by dummies).

    As R's ``TermCode``: variable ``v`` of term ``T`` gets 1 when ``T`` without ``v`` is
    empty or is part of a preceding term, else 2. (For a numeric variable the code changes
    nothing in the model matrix, but lmerTest's containment only looks at variables coded
    1, so ``w + a:w`` has ``w`` not contained in ``a:w``.)

    Parameters
    ----------
    layout
        The design's terms.

    Returns
    -------
    dict
        Term label -> {variable: code}.
    """
    out: dict[str, dict[str, int]] = {}
    for i, t in enumerate(layout.terms):
        codes = {}
        for v in t.factors:
            rest = set(t.factors) - {v}
            ok = not rest or any(rest <= set(s.factors) for s in layout.terms[:i])
            codes[v] = 1 if ok else 2
        out[t.label] = codes
    return out


def containment(layout: TermLayout) -> dict[str, list[str]]:
    """For each term, the terms that contain it (lmerTest's ``containment``).

    ``F1`` is contained in ``F2`` when all variables of ``F1`` are in ``F2``, ``F2`` has
    more variables and both involve the same numeric variables. As in lmerTest, the
    variables of a term are those coded 1 in R's factor table (:func:`factor_codes`), and
    numeric means a numeric variable with a single column (R's data class
    ``"numeric"``).

    Parameters
    ----------
    layout
        The design's terms.

    Returns
    -------
    dict
        Term label -> labels of the terms containing it, in model order.
    """
    codes = factor_codes(layout)
    single = {f for t in layout.terms for f in t.numeric
              if layout.spec is None or len(_numeric_pieces(layout, f)) == 1}
    vars_ = {t.label: {v for v, c in codes[t.label].items() if c == 1} for t in layout.terms}
    nums = {k: v & single for k, v in vars_.items()}
    out: dict[str, list[str]] = {}
    for t1 in layout.terms:
        v1 = vars_[t1.label]
        out[t1.label] = [t2.label for t2 in layout.terms
                         if v1 <= vars_[t2.label] and len(vars_[t2.label] - v1) > 0
                         and nums[t1.label] == nums[t2.label]]
    return out


# --------------------------------------------------------------------------------------
# Type I and II
# --------------------------------------------------------------------------------------


def _empty_rows(p: int) -> np.ndarray:
    return np.zeros((0, p))


def contrasts_type1(design, layout: TermLayout | None = None) -> dict[str, np.ndarray]:
    """Type I (sequential) contrast matrices, one per term (lmerTest's ``get_contrasts_type1``).

    Parameters
    ----------
    design
        The fit's design (``X``, ``xnames``, ``fixed_spec``).
    layout
        Its :func:`term_layout` (computed when not given).

    Returns
    -------
    dict
        Term label -> ``(k, p)`` array (``k = 0`` for a term without columns).
    """
    lay = layout or term_layout(design)
    X = np.asarray(design.X, dtype=float)
    p = X.shape[1]
    if p == 0 or not lay.terms:
        return {t.label: _empty_rows(p) for t in lay.terms}
    Lt = np.ones((1, 1)) if p == 1 else doolittle(X.T @ X)[0].T
    return {t.label: Lt[lay.term_cols[t.label]] for t in lay.terms}


def _marginal(lay: TermLayout, label: str, p: int) -> np.ndarray:
    return np.eye(p)[lay.term_cols[label]]


def contrasts_type2(design, layout: TermLayout | None = None) -> dict[str, np.ndarray]:
    """Type II contrast matrices (lmerTest's ``get_contrasts_type2_unfolded``).

    Parameters
    ----------
    design
        The fit's design.
    layout
        Its :func:`term_layout` (computed when not given).

    Returns
    -------
    dict
        Term label -> ``(k, p)`` array.
    """
    lay = layout or term_layout(design)
    X = np.asarray(design.X, dtype=float)
    p = X.shape[1]
    if p <= 1 or len(lay.terms) <= 1:
        return contrasts_type1(design, lay)
    contained = containment(lay)
    XtX = X.T @ X
    out: dict[str, np.ndarray] = {}
    for t in lay.terms:
        if not contained[t.label]:
            out[t.label] = _marginal(lay, t.label, p)
            continue
        own = lay.term_cols[t.label]
        if own.size == 0:
            out[t.label] = _empty_rows(p)
            continue
        moved = np.concatenate([own] + [lay.term_cols[c] for c in contained[t.label]])
        rest = np.array([j for j in range(p) if j not in set(moved.tolist())], dtype=int)
        perm = np.concatenate([rest, moved]).astype(int)
        Lc = doolittle(XtX[np.ix_(perm, perm)])[0].T
        rows = Lc[rest.size: rest.size + own.size]
        L = np.zeros((own.size, p))
        L[:, perm] = rows
        out[t.label] = L
    return out


# --------------------------------------------------------------------------------------
# Type III
# --------------------------------------------------------------------------------------


@dataclass
class _Column:
    """One column of a term expressed on the term's cells: ``cells[slot] @ w``."""

    name: str
    term: str
    slot: tuple
    w: np.ndarray


def _numeric_pieces(lay: TermLayout, expr: str) -> list[str]:
    """Column names produced by a numeric factor (its main-effect columns, else itself)."""
    for es in lay.spec.structure:
        factors = tuple(f.expr for f in es.term.factors)
        if factors == (expr,):
            return [str(c) for c in es.columns]
    return [expr]


def _term_columns(lay: TermLayout, coding: str) -> dict[str, list[_Column]]:
    """Every column the spec produced (kept or not) as a combination of its term's cells.

    ``coding="own"``: the contrasts of the design; ``"treatment"``: the same structure
    (reduced or full factors) in treatment coding with the first level as reference, as
    R's ``model.matrix(..., contrasts = "contr.treatment")``.
    """
    from formulaic.transforms.contrasts import TreatmentContrasts

    by_label = {t.label: t for t in lay.terms}
    out: dict[str, list[_Column]] = {}
    for es in lay.spec.structure:
        label = str(es.term)
        if label == "1":
            continue
        term = by_label[label]
        names = [str(c) for c in es.columns]
        cols: list[_Column] = []
        for st in es.scoped_terms:
            sfs = {sf.factor.expr: sf for sf in st.factors}
            per: list[list[tuple[str, Any]]] = []
            for sf in st.factors:
                expr = sf.factor.expr
                if expr in lay.levels:
                    lev = lay.levels[expr]
                    con = lay.contrasts[expr] if coding == "own" else TreatmentContrasts()
                    red = bool(sf.reduced)
                    mat = np.asarray(con.get_coding_matrix(lev, reduced_rank=red), dtype=float)
                    cn = list(con.get_coding_column_names(lev, reduced_rank=red))
                    fmt = con.get_factor_format(lev, reduced_rank=red)
                    per.append([(fmt.format(name=expr, field=c), (expr, mat[:, k]))
                                for k, c in enumerate(cn)])
                else:
                    per.append([(nm, (expr, k))
                                for k, nm in enumerate(_numeric_pieces(lay, expr))])
            for rev in itertools.product(*reversed(per)):
                combo = rev[::-1]
                name = ":".join(c[0] for c in combo) if combo else "Intercept"
                vec = {e: v for _, (e, v) in combo if e in lay.levels}
                slot = tuple(sorted((e, v) for _, (e, v) in combo if e not in lay.levels))
                w = np.ones(1)
                for f in term.categorical:
                    v = vec[f] if f in sfs else np.ones(len(lay.levels[f]))
                    w = np.kron(v, w)  # first factor varies fastest
                cols.append(_Column(name=name, term=label, slot=slot, w=w))
        if coding == "own" and sorted(c.name for c in cols) != sorted(names):
            raise UnsupportedDesign(f"cannot map the columns of term {label!r} to its cells")
        if coding == "own":
            order = {nm: i for i, nm in enumerate(names)}
            cols.sort(key=lambda c: order[c.name])
        out[label] = cols
    return out


def _aggregation(term: Term, sub: Term | None, levels: dict[str, list]) -> np.ndarray:
    """Matrix summing the cells of ``term`` into the cells of a margin ``sub``."""
    sizes = [len(levels[f]) for f in term.categorical]
    m = int(np.prod(sizes)) if sizes else 1
    sub_cat = sub.categorical if sub is not None else ()
    idx = np.indices(sizes).reshape(len(sizes), -1, order="F") if sizes else np.zeros((0, 1))
    target = np.zeros(m, dtype=int)
    stride = 1
    for f in sub_cat:
        k = term.categorical.index(f)
        target += idx[k].astype(int) * stride
        stride *= len(levels[f])
    A = np.zeros((m, stride))
    A[np.arange(m), target] = 1.0
    return A


_MAX_SUBSETS = 20_000  # candidate sets of empty cells tried for one term


def _complete_cells(P: np.ndarray, N: np.ndarray, hint: np.ndarray) -> np.ndarray | None:
    """Cells ``P + Z N'`` with mutually orthogonal columns and ``d`` of them zero.

    Cell columns of a term have disjoint supports, so they are orthogonal; a column
    dropped from ``X`` leaves ``d`` directions ``N`` (``m x d``) of the cells undetermined.
    When the drops come from empty cells, choosing the zero cells ``E`` fixes
    ``Z = -P[:, E] N[E]'^{-1}``; the set whose result has orthogonal columns is taken,
    trying first the sets with most cells in ``hint`` (the cells the dropped columns are
    made of; when several sets qualify they differ only by cells that no column of ``X``
    separates, which leaves the contrasts unchanged). Returns None when no set qualifies.
    """
    m, d = N.shape
    from math import comb

    if comb(m, d) > _MAX_SUBSETS:
        return None
    subsets = sorted(itertools.combinations(range(m), d),
                     key=lambda E: -int(np.sum(hint[list(E)])))
    for E in subsets:
        NE = N[list(E)]
        if abs(np.linalg.det(NE)) < 1e-8:
            continue
        C = P - P[:, list(E)] @ np.linalg.solve(NE.T, N.T)
        Gm = C.T @ C
        diag = np.diag(Gm)
        off = Gm - np.diag(diag)
        if np.max(np.abs(off), initial=0.0) <= 1e-8 * max(float(np.max(diag)), 1e-300):
            C[:, list(E)] = 0.0
            return C
    return None


def _projected_cells(lay: TermLayout, R: np.ndarray, ones: np.ndarray,
                     columns: dict[str, list[_Column]], notes: list[str] | None = None,
                     extra: dict[str, np.ndarray] | None = None
                     ) -> tuple[list[tuple[str, tuple, int]], np.ndarray, dict]:
    """``Q' rdX``: every cell column of every term in the coordinates of ``X = QR``.

    ``ones`` is ``Q' 1``: the constant is a margin of every term without numeric
    variables (also without an intercept, e.g. ``0 + a * b`` codes ``b`` by contrasts
    because ``a`` spans the constant).

    ``extra`` gives the coordinates ``Q' x`` of columns dropped from ``X`` when the design
    kept them (``Design.dropped_coef``); then every cell is determined. Otherwise the
    dropped columns are unknown: the cells are completed by :func:`_complete_cells` (exact
    for empty cells); failing that, the dropped columns are taken as zero and a note is
    added to ``notes``.

    Returns
    -------
    index
        Per column of ``rdX``: (term label or ``"(Intercept)"``, slot, cell).
    G
        ``p x m`` matrix ``Q' rdX``.
    blocks
        (label, slot) -> column indices in ``G``.
    """
    p = R.shape[1]
    name_pos = {nm: i for i, nm in enumerate(lay.xnames)}
    cells: dict[tuple[str, tuple], np.ndarray] = {("(Intercept)", ()): ones[:, None]}
    terms = sorted(lay.terms, key=lambda t: len(t.categorical))
    for t in terms:
        cols = columns[t.label]
        slots = list(dict.fromkeys(c.slot for c in cols))
        m = int(np.prod([len(lay.levels[f]) for f in t.categorical])) if t.categorical else 1
        margins = [s for s in lay.terms if s is not t and set(s.numeric) == set(t.numeric)
                   and set(s.categorical) < set(t.categorical)]
        for slot in slots:
            rhs, coef, dropped = [], [], []
            for c in cols:
                if c.slot != slot:
                    continue
                j = name_pos.get(_rename(c.name))
                if j is None:
                    if extra is not None and _rename(c.name) in extra:
                        rhs.append(extra[_rename(c.name)])
                        coef.append(c.w)
                        continue
                    dropped.append(c.w)
                    continue
                rhs.append(R[:, j])
                coef.append(c.w)
            rhs_m = [np.column_stack(rhs)] if rhs else []
            coef_m = [np.column_stack(coef)] if coef else []
            for s in margins:
                key = (s.label, slot)
                if key in cells:
                    rhs_m.append(cells[key])
                    coef_m.append(_aggregation(t, s, lay.levels))
            if not t.numeric:
                rhs_m.append(cells[("(Intercept)", ())])
                coef_m.append(_aggregation(t, None, lay.levels))
            M = np.hstack(coef_m) if coef_m else np.zeros((m, 0))
            Y = np.hstack(rhs_m) if rhs_m else np.zeros((p, 0))
            cells[(t.label, slot)] = _solve_cells(t.label, Y, M, dropped, m, notes)
    index: list[tuple[str, tuple, int]] = []
    blocks: dict[tuple[str, tuple], np.ndarray] = {}
    mats = []
    if not lay.has_intercept:
        del cells[("(Intercept)", ())]
    order = (["(Intercept)"] if lay.has_intercept else []) + lay.labels
    for label in order:
        for (lab, slot), G in cells.items():
            if lab != label:
                continue
            start = len(index)
            index += [(label, slot, k) for k in range(G.shape[1])]
            blocks[(label, slot)] = np.arange(start, len(index))
            mats.append(G)
    G = np.hstack(mats) if mats else np.zeros((p, 0))
    return index, G, blocks


def _solve_cells(label: str, Y: np.ndarray, M: np.ndarray, dropped: list[np.ndarray],
                 m: int, notes: list[str] | None) -> np.ndarray:
    """Solve ``cells M = Y`` for the ``p x m`` projected cells of one term (and slot)."""
    P = Y @ np.linalg.pinv(M) if M.shape[1] else np.zeros((Y.shape[0], m))
    r = np.linalg.matrix_rank(M) if M.shape[1] else 0
    if r == m:
        return P
    if dropped:
        U, sv, _ = np.linalg.svd(M, full_matrices=True)
        hint = np.any(np.column_stack(dropped) != 0, axis=1)
        C = _complete_cells(P, U[:, r:], hint)
        if C is not None:
            return C
        M2 = np.hstack([M, np.column_stack(dropped)])
        if np.linalg.matrix_rank(M2) == m:
            if notes is not None:
                notes.append(f"columns of term {label!r} were dropped for rank deficiency and "
                             "are taken as zero: its Type III contrasts are approximate")
            return np.hstack([Y, np.zeros((Y.shape[0], len(dropped)))]) @ np.linalg.pinv(M2)
    raise UnsupportedDesign(f"the cells of term {label!r} are not determined by the "
                            "design's columns")


def _is_treatment(lay: TermLayout) -> bool:
    """All factors in treatment coding with the first level as reference (R's default)."""
    from formulaic.transforms.contrasts import TreatmentContrasts
    from formulaic.utils.sentinels import UNSET

    for f, con in lay.contrasts.items():
        if type(con) is not TreatmentContrasts:
            return False
        if con.base is not UNSET and con.base != lay.levels[f][0]:
            return False
    return True


def _selection(lay: TermLayout, columns: dict[str, list[_Column]], blocks: dict,
               m: int) -> tuple[np.ndarray, list[str], list[str]]:
    """``C`` with ``X = rdX C`` for all spec columns (m x p_full), their terms and names."""
    mats, terms, names = [], [], []
    if lay.has_intercept:
        c = np.zeros(m)
        c[blocks[("(Intercept)", ())]] = 1.0
        mats.append(c)
        terms.append("(Intercept)")
        names.append("(Intercept)")
    for t in lay.terms:
        for col in columns[t.label]:
            c = np.zeros(m)
            c[blocks[(t.label, col.slot)]] = col.w
            mats.append(c)
            terms.append(t.label)
            names.append(_rename(col.name))
    return (np.column_stack(mats) if mats else np.zeros((m, 0))), terms, names


def contrasts_type3(design, layout: TermLayout | None = None,
                    messages: list[str] | None = None, zap: bool = True
                    ) -> dict[str, np.ndarray]:
    """Type III contrast matrices (lmerTest's ``get_contrasts_type3``).

    Parameters
    ----------
    design
        The fit's design.
    layout
        Its :func:`term_layout` (computed when not given).
    messages
        When given, notes are appended (cells without data, as lmerTest's message).
    zap
        Round as lmerTest does (``zapsmall`` to 7 significant digits of the largest
        entry, three times). This is what makes the numbers agree with lmerTest's, but
        it also makes them depend on the coding in the 7th-8th digit (e.g. a weight of
        1/3 stored as 0.3333333 in one coding and exactly in another); ``False`` keeps
        full precision, and the tests are then invariant to the coding to rounding error.

    Returns
    -------
    dict
        Term label -> ``(k, p)`` array on the design's columns.
    """
    zs = zapsmall if zap else _identity
    lay = layout or term_layout(design)
    X = np.asarray(design.X, dtype=float)
    p = X.shape[1]
    if p <= 1 or len(lay.terms) <= 1:
        return contrasts_type1(design, lay)
    Q, R = np.linalg.qr(X)
    ones = Q.sum(axis=0)  # Q' 1
    del Q
    own_cols = _term_columns(lay, "own")
    notes: list[str] = []
    extra = None
    coef = getattr(design, "dropped_coef", None)
    dropped_names = list(getattr(design, "dropped_xnames", []) or [])
    if coef is not None and coef.shape == (p, len(dropped_names)):
        proj = R @ coef  # Q' X coef: the dropped columns in the coordinates of X = QR
        extra = {nm: proj[:, k] for k, nm in enumerate(dropped_names)}
    index, G, blocks = _projected_cells(lay, R, ones, own_cols, notes, extra)
    if messages is not None:
        messages.extend(notes)
    m = G.shape[1]
    scale = float(np.max(np.abs(R))) if R.size else 0.0
    empty = np.flatnonzero(np.linalg.norm(G, axis=0) <= 1e-10 * max(scale, 1e-300))
    # a cell without data is an exact zero column of rdX; solved from X it is rounding
    # noise, which the rank rule (relative to each column's own norm) would keep
    G[:, empty] = 0.0
    if messages is not None:
        if empty.size:
            messages.append("Missing cells for: " + ", ".join(
                _cell_name(lay, index[k]) for k in empty)
                + ". Interpret type III hypotheses with care.")
    treatment = _is_treatment(lay)
    cols = own_cols if treatment else _term_columns(lay, "treatment")
    C, cterms, cnames = _selection(lay, cols, blocks, m)
    if treatment:
        pos = {nm: i for i, nm in enumerate(cnames)}
        keep_idx = np.array([pos[nm] for nm in lay.xnames], dtype=int)
        C = C[:, keep_idx]
        cterms = [cterms[i] for i in keep_idx]
        Xt = R  # Q' X
    else:
        Xt_full = G @ C  # Q' X_treatment
        keep = _independent(Xt_full)
        C = C[:, keep]
        cterms = [c for c, k in zip(cterms, keep, strict=True) if k]
        Xt = Xt_full[:, keep]
    # basic contrast matrix, rows = cells, columns = coefficients of X_treatment
    L = zs(_ginv_solve(Xt, G).T)
    tmap = {t.label: np.array([j for j, c in enumerate(cterms) if c == t.label], dtype=int)
            for t in lay.terms}
    contained = containment(lay)
    for t in sorted(lay.terms, key=lambda t: -t.order):  # stable: model order within order
        cont = contained[t.label]
        own = tmap[t.label]
        if not cont or own.size == 0:
            continue
        idx = np.concatenate([tmap[c] for c in cont]).astype(int)
        L[:, own] = zs(_lm_resid(L[:, idx], L[:, own]))
    Lp = C.T @ L  # rows of L for the coefficients of X_treatment
    mapping = None if treatment else zs(_ginv_solve(Xt, R))
    out: dict[str, np.ndarray] = {}
    for t in lay.terms:
        Lt = Lp[:, tmap[t.label]].T
        Lt = Lt[np.sum(np.abs(Lt), axis=1) > _ROW_TOL]
        if mapping is not None:
            Lt = Lt @ mapping
        out[t.label] = Lt
    return out


def _cell_name(lay: TermLayout, key: tuple[str, tuple, int]) -> str:
    label, slot, k = key
    if label == "(Intercept)":
        return label
    term = next(t for t in lay.terms if t.label == label)
    sizes = [len(lay.levels[f]) for f in term.categorical]
    parts = {}
    rem = k
    for f, s in zip(term.categorical, sizes, strict=True):
        parts[f] = f"{f}[{lay.levels[f][rem % s]}]"
        rem //= s
    nums = dict(slot)
    out = []
    for f in term.factors:
        if f in parts:
            out.append(parts[f])
        else:
            pieces = _numeric_pieces(lay, f)
            out.append(pieces[nums.get(f, 0)] if len(pieces) > 1 else f)
    return ":".join(out)


def get_contrasts(design, type: int = 3, messages: list[str] | None = None,
                  zap: bool = True) -> dict[str, np.ndarray]:
    """Contrast matrices of one ANOVA type, one per term in model order.

    Parameters
    ----------
    design
        The fit's design.
    type
        1, 2 or 3.
    messages
        Optional list receiving notes (Type III: cells without data).
    zap
        Type III only: round as lmerTest (see :func:`contrasts_type3`).

    Returns
    -------
    dict
        Term label -> ``(k, p)`` array.
    """
    lay = term_layout(design)
    if type == 1:
        return contrasts_type1(design, lay)
    if type == 2:
        return contrasts_type2(design, lay)
    if type == 3:
        return contrasts_type3(design, lay, messages, zap)
    raise ValueError("type must be 1, 2 or 3")
