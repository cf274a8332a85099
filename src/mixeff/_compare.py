"""Likelihood-ratio comparisons of fitted models: lme4's ``anova(m1, m2, ...)`` and
lmerTest's ``ranova(m)``.

:func:`anova` puts several fits of the same data side by side (sorted by their number
of parameters) with chi-square tests of each model against the previous one; REML fits
are refitted by maximum likelihood first, as lme4 does.

:func:`ranova` tests the random-effects terms of one fit: each term is reduced (``(1 +
x | g)`` to ``(1 | g)``) or removed (``(1 | g)``) in turn and the reduced model is
refitted with the same criterion (REML or ML). The reduced models are built from the
fit's :class:`~mixeff._design.Design` by editing its list of random-effects terms (the
columns of a reduced term are a subset of the original term's columns), so the data are
not needed again and the same rows are used. A model left without random effects is a
linear model whose (REML) log-likelihood is computed directly.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from ._errors import MixeffError

if TYPE_CHECKING:  # pragma: no cover
    from ._design import Design, ReTermDesign
    from ._fit import LmerFit
    from ._formula import RandomTerm

__all__ = ["anova", "aic_table", "ranova", "format_anova", "AnovaTable"]

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"
RANOVA_TITLE = "ANOVA-like table for random-effects: Single term deletions"


# --------------------------------------------------------------------------------------
# anova(m1, m2, ...)
# --------------------------------------------------------------------------------------


def _loglik(model: Any) -> float:
    """The (REML) log-likelihood of a fit, checked against the zero-bound trap.

    A gradient optimiser can stop where a diagonal theta entry is zero because the
    derivative of the deviance vanishes there (it is even in that entry) even when
    moving away lowers it. For mixed-model fits with such an entry the objective is
    minimised again with :func:`~mixeff._confint.minimize_bounded`, which tries to leave
    those points; the better value is used.
    """
    structure = getattr(model, "structure", None)
    theta = getattr(model, "theta", None)
    if structure is None or theta is None or getattr(model, "blocks", None) is None:
        return float(model.loglik)
    theta = np.asarray(theta, dtype=float)
    if not np.any(structure.is_diagonal_theta & (theta == 0.0)):
        return float(model.loglik)
    from ._confint import minimize_bounded
    from ._objective import LmmObjective

    obj = LmmObjective(model.blocks, reml=model.reml)
    _, f = minimize_bounded(lambda t: (obj(t), obj.gradient(t)), theta,
                            structure.lower_bounds())
    return -0.5 * min(float(f), float(model.objective))


def anova(*models: Any, refit: bool = True, **named_models: Any) -> pd.DataFrame:
    """Compare fitted models by likelihood-ratio tests, as lme4's ``anova(m1, m2, ...)``.

    Parameters
    ----------
    *models
        Fitted models (:class:`~mixeff.LmerFit`, or any fit with ``loglik``, ``npar``
        and ``nobs``), named in the table by their ``name`` attribute (``fit.name =
        "m0"``) or else by their formula (``m1``, ``m2``, ... by position when formulas
        coincide).
    refit
        When any model is a REML fit, refit the REML fits by maximum likelihood before
        comparing (lme4's default). With ``refit=False`` the criteria are compared as
        they are (sensible only for models with the same fixed effects).
    **named_models
        Models passed by keyword; the keyword is the model's name in the table.

    Returns
    -------
    pandas.DataFrame
        One row per model, sorted by the number of parameters, with columns ``npar``,
        ``AIC``, ``BIC``, ``logLik``, ``deviance`` (``-2 logLik``), ``Chisq``, ``Df`` and
        ``Pr(>Chisq)`` (the tests of each model against the previous row; missing in the
        first row). ``attrs["heading"]`` holds lme4's heading lines (preceded by lme4's
        note when models were refitted by ML), ``attrs["refitted"]`` says whether they
        were, ``attrs["formulae"]`` maps names to formulas. An :class:`AnovaTable`: it
        prints (and shows in a notebook) as R prints ``anova(m0, m1)``, with the refit
        note, the ``Models:`` lines and the table.

        With a single model, that model's own ``anova()`` (the F tests of its fixed
        effects) is returned instead.

    Raises
    ------
    TypeError
        No model given.
    MixeffError
        The models were not fitted to the same number of observations.
    """
    items = model_names(models, named_models)
    if not items:
        raise TypeError("anova() needs at least one fitted model")
    if len(items) == 1:
        return items[0][1].anova()

    nobs = [int(m.nobs) for _, m in items]
    if len(set(nobs)) > 1:
        detail = ", ".join(f"{nm} ({k} observations)" for (nm, _), k in zip(items, nobs,
                                                                              strict=True))
        raise MixeffError(f"models were not all fitted to the same size of dataset: {detail}")

    reml = [bool(getattr(m, "reml", False)) for _, m in items]
    data_names = {getattr(m, "data_name", None) for _, m in items}
    heading: list[str] = []
    refitted = False
    if refit:
        if any(reml):
            heading.append(REFIT_MESSAGE)
            refitted = True
            from ._predict import refit as _refit  # no fit-time warnings, as lme4's

            items = [(nm, _refit(m, reml=False) if r else m)
                     for (nm, m), r in zip(items, reml, strict=True)]
    elif any(reml) and not all(reml):
        warnings.warn("some models fit with REML = TRUE, some not", UserWarning, stacklevel=2)

    npar = np.array([int(m.npar) for _, m in items])
    order = np.argsort(npar, kind="stable")
    items = [items[i] for i in order]
    npar = npar[order]
    ll = np.array([_loglik(m) for _, m in items])
    n = np.array([float(m.nobs) for _, m in items])

    chisq = np.full(ll.size, np.nan)
    chisq[1:] = 2.0 * np.maximum(0.0, np.diff(ll))
    df = np.full(ll.size, np.nan)
    df[1:] = np.diff(npar)
    with np.errstate(invalid="ignore"):
        pval = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1.0)), np.nan)
    table = pd.DataFrame(
        {
            "npar": npar,
            "AIC": -2.0 * ll + 2.0 * npar,
            "BIC": -2.0 * ll + np.log(n) * npar,
            "logLik": ll,
            "deviance": -2.0 * ll,
            "Chisq": chisq,
            "Df": pd.array([None if np.isnan(d) else int(d) for d in df], dtype="Int64"),
            "Pr(>Chisq)": pval,
        },
        index=pd.Index([nm for nm, _ in items]),
    )
    if len(data_names) == 1 and None not in data_names:
        heading.append(f"Data: {data_names.pop()}")
    heading.append("Models:")
    formulae = {nm: str(getattr(m, "formula", "")) for nm, m in items}
    heading += [f if nm == f else f"{nm}: {f}" for nm, f in formulae.items()]
    table.attrs["heading"] = heading
    table.attrs["refitted"] = refitted
    table.attrs["formulae"] = formulae
    out = AnovaTable(table)
    out.attrs.update(table.attrs)
    return out


def model_names(models: Sequence[Any], named: dict[str, Any]) -> list[tuple[str, Any]]:
    """Names of the models of a comparison, as R takes them from the call.

    A model passed by keyword is named by the keyword; a positional one by its ``name``
    attribute (``fit.name = "m0"``) when set, else by its formula. Positional models
    whose formulas coincide are named ``m1``, ``m2``, ... by their position.

    Raises
    ------
    TypeError
        Two models with the same name.
    """
    positional: list[tuple[str, Any]] = []
    for i, m in enumerate(models):
        nm = getattr(m, "name", None)
        positional.append((str(nm) if nm else str(getattr(m, "formula", "") or ""), m, i,
                           bool(nm)))
    counts: dict[str, int] = {}
    for nm, _, _, _ in positional:
        counts[nm] = counts.get(nm, 0) + 1
    items = [(nm if nm and (given or counts[nm] == 1) else f"m{i + 1}", m)
             for nm, m, i, given in positional]
    items += [(str(k), m) for k, m in named.items()]
    names = [nm for nm, _ in items]
    if len(set(names)) != len(names):
        raise TypeError(f"duplicated model names: {names}")
    return items


class AnovaTable(pd.DataFrame):
    """The table of :func:`anova`: a DataFrame that prints as R prints it.

    ``print(table)`` (and the console) show lme4's layout: the refit note, ``Data:``,
    the ``Models:`` lines with the formulas, then the table with R's number formatting
    and significance stars; in a notebook the same heading sits above an HTML table. The
    numbers are those of the DataFrame (columns ``npar`` ... ``Pr(>Chisq)``), and
    ``attrs`` keep ``heading``, ``refitted`` and ``formulae``. Derived frames (slices,
    arithmetic) are plain DataFrames.
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def _plain(self) -> pd.DataFrame:
        out = pd.DataFrame(self)
        out.attrs = dict(self.attrs)
        return out

    def __repr__(self) -> str:
        lines = [REFIT_MESSAGE] if self.attrs.get("refitted") else []
        return "\n".join(lines + [format_anova(self._plain())])

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        import html

        head = self.attrs.get("heading", [])
        text = "<br>".join(html.escape(h) for h in head)
        body = self._plain().to_html(na_rep="", float_format=lambda v: f"{v:.6g}")
        return f"<div><p style=\"font-family: monospace\">{text}</p>{body}</div>"


def aic_table(*models: Any, refit: bool = False, **named_models: Any) -> pd.DataFrame:
    """AIC and BIC of several models, as R's ``AIC(m1, m2, ...)`` and ``BIC(...)``.

    Parameters
    ----------
    *models, **named_models
        Fitted models, named as in :func:`anova` (keyword, ``fit.name`` or formula).
    refit
        Refit REML fits by maximum likelihood first. R's ``AIC`` takes each model's own
        log-likelihood, the REML one for a REML fit (``refit=False``, the default);
        models that differ in their fixed effects are comparable only by ML.

    Returns
    -------
    pandas.DataFrame
        One row per model in the order given: ``df`` (number of parameters), ``logLik``,
        ``AIC``, ``BIC``, ``delta_AIC`` (from the smallest) and ``AIC_weight``
        (Akaike weights, ``exp(-delta/2)`` normalised).
    """
    items = model_names(models, named_models)
    if not items:
        raise TypeError("aic_table() needs at least one fitted model")
    if refit:
        from ._predict import refit as _refit

        items = [(nm, _refit(m, reml=False) if getattr(m, "reml", False) else m)
                 for nm, m in items]
    nobs = {int(m.nobs) for _, m in items}
    if len(nobs) > 1:
        warnings.warn("models are not all fitted to the same number of observations "
                      "(as R warns)", UserWarning, stacklevel=2)
    df = np.array([int(m.npar) for _, m in items])
    ll = np.array([float(m.loglik) for _, m in items])
    n = np.array([float(m.nobs) for _, m in items])
    aic = -2.0 * ll + 2.0 * df
    bic = -2.0 * ll + np.log(n) * df
    delta = aic - aic.min()
    w = np.exp(-0.5 * delta)
    return pd.DataFrame({"df": df, "logLik": ll, "AIC": aic, "BIC": bic, "delta_AIC": delta,
                         "AIC_weight": w / w.sum()},
                        index=pd.Index([nm for nm, _ in items]))


# --------------------------------------------------------------------------------------
# ranova(m)
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>`[^`]*`|[A-Za-z_.][\w.]*)"
    r"|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<op>%[^%]*%|\*\*|==|!=|<=|>=|\|\||&&|[-+*/:^~|,()\[\]{}<>=!&@]))"
)
_SPACED = {"+", "-", "*", "~", "|", "||", "==", "!=", "<=", ">=", "<", ">", "&", "&&", "=",
           "**"}


def r_deparse(expr: str) -> str:
    """Normalise the spacing of a formula expression the way R's ``deparse`` prints it.

    Binary ``+ - * ~ |`` (and comparisons, ``%op%``) get one space on each side, ``:``
    ``/`` ``^`` none, a comma is followed by one space; unary signs and calls are kept
    tight (``-1``, ``poly(x, 2)``). Text that cannot be tokenised is returned stripped.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            return text
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    out: list[str] = []
    prev: tuple[str, str] | None = None
    for kind, tok in tokens:
        unary = kind == "op" and tok in "+-" and (
            prev is None or (prev[0] == "op" and prev[1] not in ")]}"))
        if kind == "op" and (tok in _SPACED or tok.startswith("%")) and not unary:
            out.append(f" {tok} ")
        elif kind == "op" and tok == ",":
            out.append(", ")
        else:
            out.append(tok)
        prev = (kind, tok)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


@dataclasses.dataclass
class _Reduction:
    """One row of the ranova table: which term changes and how."""

    label: str
    index: int                  # position of the term in design.terms
    keep_columns: list[int] | None   # None: remove the term
    new_expr: str | None
    intercept_only: bool = False


def _nested_label(term: RandomTerm) -> str:
    """lme4's label of a term from ``a/b/c`` expansion: ``c:(b:a)`` for three levels."""
    label = term.factors[-1]
    for f in reversed(term.factors[:-1]):
        label = f"{f}:({label})" if ":" in label else f"{f}:{label}"
    return label


def _lmertest_order(design: Design) -> list[tuple[int, str]]:
    """Random terms in the order lme4's ``findbars`` lists them, with R's bar text.

    ``findbars`` lists the terms of ``(x | a/b)`` innermost first (``x | b:a`` before
    ``x | a``) and labels a three-level nesting ``c:(b:a)``; within one bar-group of
    ``||`` terms the formula order is kept.
    """
    random = design.formula.random
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(random):
        j = i
        while j + 1 < len(random) and random[j + 1].start == random[i].start:
            j += 1
        group = list(range(i, j + 1))
        nested = len({random[g].label for g in group}) > 1
        if nested:
            # runs of one expression, each over the nesting levels outer-first
            runs: list[list[int]] = []
            for g in group:
                if runs and random[runs[-1][0]].expr == random[g].expr:
                    runs[-1].append(g)
                else:
                    runs.append([g])
            for run in runs:
                for g in reversed(run):
                    t = random[g]
                    label = _nested_label(t) if len(t.factors) > 2 else t.label
                    out.append((g, f"{r_deparse(t.expr)} | {label}"))
        else:
            for g in group:
                t = random[g]
                out.append((g, f"{r_deparse(t.expr)} | {t.label}"))
        i = j + 1
    return out


def _split_top(name: str, sep: str = ":") -> list[str]:
    """Split a column name at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, []
    for ch in name:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _lhs_terms(expr: str) -> tuple[bool, list[tuple[str, tuple[str, ...]]]]:
    """Intercept flag and the model terms (label, factor expressions) of a term's lhs."""
    from formulaic import Formula

    intercept = False
    terms: list[tuple[str, tuple[str, ...]]] = []
    for t in Formula(expr):
        factors = tuple(f.expr for f in t.factors)
        if factors == ("1",):
            intercept = True
        else:
            terms.append((str(t), factors))
    return intercept, terms


def _column_terms(colnames: Sequence[str], terms: list[tuple[str, tuple[str, ...]]],
                  where: str) -> list[int]:
    """Index of the model term each column belongs to (-1: the intercept)."""
    out = []
    for name in colnames:
        if name == "(Intercept)":
            out.append(-1)
            continue
        parts = _split_top(name)
        hit = -1
        for ti, (_, factors) in enumerate(terms):
            if len(factors) == len(parts) and all(
                    p == f or p.startswith(f + "[") for p, f in zip(parts, factors,
                                                                    strict=True)):
                hit = ti
                break
        if hit < 0:
            raise MixeffError(f"cannot tell which model term column {name!r} of {where} "
                              "belongs to; refit the reduced models with lmer() and compare "
                              "them with anova()")
        out.append(hit)
    return out


def _drop_scope(terms: list[tuple[str, tuple[str, ...]]]) -> list[int]:
    """Terms that can be dropped respecting marginality (R's ``drop.scope``)."""
    keep = []
    for i, (_, fi) in enumerate(terms):
        contained = any(j != i and set(fi) <= set(fj) for j, (_, fj) in enumerate(terms))
        if not contained:
            keep.append(i)
    return keep


def _reductions(design: Design, reduce_terms: bool) -> list[_Reduction]:
    """lmerTest's reductions of each random-effects term (``get_newforms``)."""
    out: list[_Reduction] = []
    for idx, bar in _lmertest_order(design):
        term = design.terms[idx]
        expr = design.formula.random[idx].expr
        intercept, terms = _lhs_terms(expr)
        scope = _drop_scope(terms) if terms else []
        if not reduce_terms or not terms or not scope:
            out.append(_Reduction(f"({bar})", idx, None, None))
            continue
        col_term = _column_terms(term.colnames, terms, f"({bar})")
        for s in scope:
            label = f"{r_deparse(terms[s][0])} in ({bar})"
            rest = [t for i, t in enumerate(terms) if i != s]
            if not rest:
                # (x | g), (0 + x | g): reduced to a random intercept
                out.append(_Reduction(label, idx, None, "1", intercept_only=True))
                continue
            if not intercept and any("[" in term.colnames[c] for c in range(term.k)):
                raise MixeffError(
                    f"reducing ({bar}) changes the coding of a factor in a term without "
                    "intercept; refit the reduced model with lmer() and compare it with "
                    "anova()")
            keep = [c for c in range(term.k) if col_term[c] != s]
            rest_text = " + ".join(r_deparse(lab) for lab, _ in
                                   sorted(rest, key=lambda t: len(t[1])))
            new_expr = rest_text if intercept else f"{rest_text} - 1"
            out.append(_Reduction(label, idx, keep, new_expr))
    return out


def _formula_text(design: Design, terms: list[tuple[str, str]]) -> str:
    """Model formula from the response, the fixed part, offsets and random terms."""
    pf = design.formula
    rhs = [pf.fixed]
    rhs += [f"offset({e})" for e in pf.offset_exprs]
    rhs += [f"({expr} | {label})" for expr, label in terms]
    return f"{pf.response} ~ {' + '.join(rhs)}"


def _reduced_design(design: Design, red: _Reduction) -> tuple[Design, str]:
    """The design of a reduced model and its formula text."""
    from ._formula import parse_formula

    new_terms: list[ReTermDesign] = []
    texts: list[tuple[str, str]] = []
    present = {(r_deparse(rt.expr), rt.label) for i, rt in enumerate(design.formula.random)
               if i != red.index}
    for i, (t, rt) in enumerate(zip(design.terms, design.formula.random, strict=True)):
        if i != red.index:
            new_terms.append(t)
            texts.append((rt.expr, rt.label))
            continue
        if red.new_expr is None or (r_deparse(red.new_expr), rt.label) in present:
            # removed, or reduced to a term the model has already (R's formula update
            # keeps one copy of a repeated term)
            continue
        if red.intercept_only:
            matrix = np.ones((design.n, 1))
            colnames = ["(Intercept)"]
        else:
            keep = red.keep_columns or []
            matrix = np.ascontiguousarray(t.matrix[:, keep])
            colnames = [t.colnames[c] for c in keep]
        new_terms.append(dataclasses.replace(t, matrix=matrix, colnames=colnames,
                                             expr=red.new_expr))
        texts.append((red.new_expr, rt.label))
    text = _formula_text(design, texts)
    try:
        pf = parse_formula(text)
    except Exception:  # pragma: no cover - display only; keep the original's pieces
        pf = dataclasses.replace(design.formula, text=text)
    if len(pf.random) != len(new_terms):  # pragma: no cover - defensive
        raise MixeffError(f"could not build the reduced model {text!r}")
    return dataclasses.replace(design, terms=new_terms, formula=pf), text


def lm_loglik(design: Design, reml: bool) -> tuple[float, int]:
    """(REML) log-likelihood and number of parameters of the linear model of a design.

    The design's random terms are ignored: this is R's ``logLik(lm(...), REML = reml)``
    for the fixed part, prior weights and offset of the design.
    """
    X = design.X
    y = design.y if design.offset is None else design.y - design.offset
    n, p = X.shape
    w = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    pos = w > 0
    X, y, w = X[pos], y[pos], w[pos]
    n = int(pos.sum())
    sw = np.sqrt(w)
    if p:
        Q, R = sla.qr(X * sw[:, None], mode="economic")
        resid = y * sw - Q @ (Q.T @ (y * sw))
        logdet = 2.0 * float(np.sum(np.log(np.abs(np.diag(R)))))
    else:
        resid = y * sw
        logdet = 0.0
    rss = float(resid @ resid)
    nn = n - p if reml else n
    ll = 0.5 * (float(np.sum(np.log(w))) - nn * (np.log(2.0 * np.pi) + 1.0 - np.log(nn)
                                                 + np.log(rss)))
    if reml:
        ll -= 0.5 * logdet
    return float(ll), p + 1


def ranova(fit: LmerFit, reduce_terms: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests of the random-effects terms, as lmerTest's ``ranova``.

    Each random-effects term is reduced in turn, following lmerTest's rules: a term
    ``(f1 + f2 | g)`` gives one reduced model per model term of its left side that can be
    dropped without breaking marginality (``(f2 | g)`` and ``(f1 | g)``; for ``(x * z | g)``
    only ``x:z``); a term ``(f1 | g)`` or ``(0 + f1 | g)`` is reduced to ``(1 | g)`` (a
    reduced term the model already has is not added twice); ``(1 | g)`` is removed. With
    ``reduce_terms=False`` every term is removed instead. Nested terms ``(1 | a/b)`` are
    the two terms ``(1 | b:a)`` and ``(1 | a)``; ``(x || g)`` is ``(1 | g)`` and
    ``(0 + x | g)``. Each reduced model is fitted to the same rows with the criterion of
    the original fit (REML tests for a REML fit); a model without random effects left is
    a linear model.

    Parameters
    ----------
    fit
        The fitted model.
    reduce_terms
        Reduce terms where possible (default) or remove them.

    Returns
    -------
    pandas.DataFrame
        Rows ``<none>`` (the model itself) and one per reduction, labelled as lmerTest
        prints them (``"Days in (Days | Subject)"``, ``"(1 | Subject)"``); columns
        ``npar``, ``logLik``, ``AIC``, ``LRT``, ``Df``, ``Pr(>Chisq)``.
        ``attrs["heading"]`` holds lmerTest's heading, ``attrs["formulae"]`` the formula
        of each reduced model.
    """
    from ._api import fit_design

    design = fit.design
    if not design.terms:
        raise MixeffError("the model should have at least one random-effects term")
    rows = [("<none>", int(fit.npar), _loglik(fit))]
    formulae: dict[str, str] = {}
    for red in _reductions(design, reduce_terms):
        new_design, text = _reduced_design(design, red)
        formulae[red.label] = text
        if new_design.terms:
            sub = fit_design(new_design, reml=fit.reml)
            if sub.nobs != fit.nobs:  # pragma: no cover - same rows by construction
                raise MixeffError("number of rows in use has changed")
            rows.append((red.label, int(sub.npar), _loglik(sub)))
        else:
            ll, npar = lm_loglik(new_design, fit.reml)
            rows.append((red.label, npar, ll))
    return ranova_table(rows, fit.formula, formulae)


def ranova_table(rows: list[tuple[str, int, float]], formula: str,
                 formulae: dict[str, str]) -> pd.DataFrame:
    """lmerTest's ``ranova`` table from ``(label, npar, logLik)`` rows, the model's first.

    Each reduction is tested against the model by its likelihood ratio on the difference
    in parameters.
    """
    labels = [r[0] for r in rows]
    npar = np.array([r[1] for r in rows], dtype=int)
    ll = np.array([r[2] for r in rows])
    lrt = np.full(ll.size, np.nan)
    df = np.full(ll.size, np.nan)
    lrt[1:] = 2.0 * (ll[0] - ll[1:])
    # a reduction the fit already sits on (a variance estimated as 0) gives the same
    # likelihood by another computation: a difference at the rounding of logLik is 0
    lrt[1:][np.abs(lrt[1:]) <= 64 * np.finfo(float).eps * np.abs(ll[0])] = 0.0
    df[1:] = npar[0] - npar[1:]
    with np.errstate(invalid="ignore"):
        pval = np.where(df > 0, stats.chi2.sf(lrt, np.where(df > 0, df, 1.0)), np.nan)
    pval[0] = np.nan
    table = pd.DataFrame(
        {
            "npar": npar,
            "logLik": ll,
            "AIC": -2.0 * ll + 2.0 * npar,
            "LRT": lrt,
            "Df": pd.array([None if np.isnan(d) else int(d) for d in df], dtype="Int64"),
            "Pr(>Chisq)": pval,
        },
        index=pd.Index(labels),
    )
    table.attrs["heading"] = [RANOVA_TITLE, "", "Model:", formula]
    table.attrs["formulae"] = formulae
    return table


# --------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------


def format_anova(table: pd.DataFrame, digits: int = 5, signif_stars: bool = True,
                 heading: bool = True) -> str:
    """An anova or ranova table as R's ``print.anova`` shows it.

    Parameters
    ----------
    table
        A table from :func:`anova` or :func:`ranova`.
    digits
        R's ``digits`` (``max(getOption("digits") - 2, 3)`` = 5).
    signif_stars
        Show significance stars (and their legend).
    heading
        Print ``attrs["heading"]`` first. lme4's refit note, which R sends to the
        console as a message, is left out.

    Returns
    -------
    str
    """
    from ._summary import format_coefmat

    lines = []
    if heading:
        lines = [h for h in table.attrs.get("heading", []) if h != REFIT_MESSAGE]
    cols = list(table.columns)
    nc = len(cols)
    has_p = bool(re.match(r"^(P|Pr)\(", cols[-1]))
    zap = list(range(nc - 1 if has_p else nc))
    tst = [i for i, c in enumerate(cols) if c[1:7] == " value"]
    tst += [i for i, c in enumerate(cols) if c in ("F", "Cp", "Chisq")]
    zap = [i for i in zap if i not in tst and not cols[i].endswith("Df")]
    x = table.copy()
    for c in x.columns:
        x[c] = pd.to_numeric(x[c], errors="coerce").astype(float)
    body = format_coefmat(x, digits=digits, signif_stars=signif_stars, has_pvalue=has_p,
                          p_values=has_p, cs_ind=None, zap_ind=zap, tst_ind=tst,
                          na_print="")
    head = "\n".join(lines) + "\n" if lines else ""
    return head + body
