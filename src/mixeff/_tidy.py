"""Tidy tables of a fit in broom.mixed's conventions, influence measures and HTML.

:func:`tidy`, :func:`glance` and :func:`augment` return the DataFrames that R's
``broom.mixed`` returns for an ``lmerModLmerTest`` fit (column names and row order as
broom.mixed 0.2: ``effect``, ``group``, ``term``, ``estimate``, ``std.error``,
``statistic``, ``df``, ``p.value``, ``conf.low``, ``conf.high``; random-effect parameters
named ``sd__(Intercept)``, ``cor__(Intercept).Days`` and ``sd__Observation``).

:func:`hat_values` and :func:`cooks_distance` are lme4's ``hatvalues`` and
``cooks.distance`` of a linear mixed model, computed without forming the ``q x n`` matrix
lme4 uses: with ``a_i = Lambda' z_i`` (the random-effects row of observation ``i``),
``M = Lambda' Z'WZ Lambda + I``, ``G = M^{-1} Lambda' Z'WX`` and ``R_X`` the fixed-effects
factor,

    ``h_i = w_i (a_i' M^{-1} a_i + |R_X^{-T} (x_i - G' a_i)|^2)``.

The entries of ``M^{-1}`` needed by the first term couple levels that share a row, so
they lie on the pattern of the Cholesky factor and are read from its selected inverse;
``G`` takes ``p`` triangular solves.

:func:`fit_html` is a small HTML rendering of the summary for notebooks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from ._errors import DataError, MixeffError

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = ["tidy", "glance", "augment", "hat_values", "cooks_distance", "fit_html"]

_SINGULAR = "boundary (singular) fit: see help('isSingular')"   # as _fit.SINGULAR_MESSAGE

_EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
_COLUMNS = ("effect", "group", "level", "term", "estimate", "std.error", "statistic", "df",
            "p.value", "conf.low", "conf.high")


# --------------------------------------------------------------------------------------
# tidy
# --------------------------------------------------------------------------------------


def _effects(effects: str | Sequence[str]) -> list[str]:
    wanted = [effects] if isinstance(effects, str) else list(effects)
    unknown = [e for e in wanted if e not in _EFFECTS]
    if unknown:
        raise ValueError(f"unknown effect type {unknown[0]!r}; use {', '.join(_EFFECTS)}")
    return [e for e in _EFFECTS if e in wanted]


def _fixed_rows(fit: LmerFit, ddf: str, conf_int: bool, conf_level: float
                ) -> pd.DataFrame:
    tab = fit.coef_table(ddf=ddf)
    out = pd.DataFrame({"term": list(tab.index),
                        "estimate": tab["Estimate"].to_numpy(dtype=float),
                        "std.error": tab["Std. Error"].to_numpy(dtype=float),
                        "statistic": tab["t value"].to_numpy(dtype=float)})
    if "df" in tab.columns:
        out["df"] = tab["df"].to_numpy(dtype=float)
        out["p.value"] = tab["Pr(>|t|)"].to_numpy(dtype=float)
    if conf_int:
        q = 0.5 + conf_level / 2.0
        mult = stats.t.ppf(q, out["df"]) if "df" in out else stats.norm.ppf(q)
        out["conf.low"] = out["estimate"] - mult * out["std.error"]
        out["conf.high"] = out["estimate"] + mult * out["std.error"]
    return out


def _ran_pars_rows(fit: LmerFit, scales: str) -> pd.DataFrame:
    """Variance parameters in lme4's ``lower.tri`` order (that of theta and confint)."""
    if scales not in ("sdcor", "vcov"):
        raise ValueError("scales must be 'sdcor' or 'vcov'")
    self_p, cross_p = ("sd", "cor") if scales == "sdcor" else ("var", "cov")
    groups: list[str] = []
    terms: list[str] = []
    values: list[float] = []
    seen: dict[str, int] = {}
    covs = fit.structure.covariances(fit.theta, fit.sigma)
    for t, S in zip(fit.structure.terms, covs, strict=True):
        nseen = seen.get(t.label, 0)
        seen[t.label] = nseen + 1
        group = t.label if nseen == 0 else f"{t.label}.{nseen}"
        sd = np.sqrt(np.diag(S))
        rows, cols = np.tril_indices(t.k)
        order = np.lexsort((rows, cols))  # column by column, as R's lower.tri
        for r, c in zip(rows[order], cols[order], strict=True):
            groups.append(group)
            if r == c:
                terms.append(f"{self_p}__{t.colnames[r]}")
                values.append(float(sd[r] if scales == "sdcor" else S[r, r]))
            else:
                terms.append(f"{cross_p}__{t.colnames[c]}.{t.colnames[r]}")
                denom = sd[r] * sd[c]
                cor = S[r, c] / denom if denom > 0 else np.nan
                values.append(float(cor if scales == "sdcor" else S[r, c]))
    groups.append("Residual")
    terms.append(f"{self_p}__Observation")
    values.append(fit.sigma if scales == "sdcor" else fit.sigma**2)
    return pd.DataFrame({"group": groups, "term": terms, "estimate": values})


def _ran_vals_rows(fit: LmerFit, conf_int: bool, conf_level: float) -> pd.DataFrame:
    parts = []
    for label, df in fit.ranef(condvar=True).items():
        m, k = df.shape
        sd = df.attrs["condsd"].to_numpy(dtype=float)
        parts.append(pd.DataFrame({
            "group": label,
            "level": np.tile(df.index.to_numpy(dtype=object), k),
            "term": np.repeat(np.asarray(df.columns, dtype=object), m),
            "estimate": df.to_numpy(dtype=float).T.ravel(),
            "std.error": sd.T.ravel()}))
    out = pd.concat(parts, ignore_index=True)
    if conf_int:
        mult = stats.norm.ppf(0.5 + conf_level / 2.0)
        out["conf.low"] = out["estimate"] - mult * out["std.error"]
        out["conf.high"] = out["estimate"] + mult * out["std.error"]
    return out


def _ran_coefs_rows(fit: LmerFit) -> pd.DataFrame:
    """lme4's ``coef(m)``: fixed effects plus each level's random effects, stacked."""
    fixef = fit.fixef
    parts = []
    for label, df in fit.ranef(condvar=False).items():
        extra = [c for c in df.columns if c not in fixef.index]
        if extra:
            raise MixeffError(f"unable to align random and fixed effects: {extra} of "
                              f"{label!r} are not fixed effects")
        m = df.shape[0]
        vals = np.repeat(fixef.to_numpy(dtype=float)[None, :], m, axis=0)
        cols = [fixef.index.get_loc(c) for c in df.columns]
        vals[:, cols] += df.to_numpy(dtype=float)
        p = vals.shape[1]
        parts.append(pd.DataFrame({
            "group": label,
            "level": np.tile(df.index.to_numpy(dtype=object), p),
            "term": np.repeat(np.asarray(fixef.index, dtype=object), m),
            "estimate": vals.T.ravel()}))
    return pd.concat(parts, ignore_index=True)


def _interval_rows(fit: LmerFit, method: str, level: float) -> pd.DataFrame:
    ci = fit.confint(level=level, method=method)
    return ci.set_axis(["conf.low", "conf.high"], axis=1)


def tidy(fit: LmerFit, effects: str | Sequence[str] = ("fixed", "ran_pars"),
         conf_int: bool = False, conf_level: float = 0.95, *, conf_method: str = "Wald",
         ddf: str = "Satterthwaite", scales: str = "sdcor") -> pd.DataFrame:
    """The estimates as one tidy table, as broom.mixed's ``tidy(m)`` of an lmerTest fit.

    Parameters
    ----------
    fit
        The fitted model.
    effects
        Any of ``"fixed"`` (fixed effects with t tests), ``"ran_pars"`` (standard
        deviations and correlations of the random effects, and the residual standard
        deviation), ``"ran_vals"`` (conditional modes with conditional SDs) and
        ``"ran_coefs"`` (lme4's ``coef(m)``: per-level coefficients). Blocks come in that
        order whatever the order given.
    conf_int
        Add ``conf.low`` / ``conf.high``.
    conf_level
        Confidence level.
    conf_method
        ``"Wald"`` (default): ``estimate +/- qt(., df) * std.error`` for the fixed effects
        (normal quantiles with ``ddf="lme4"``), none (NaN) for ``ran_pars``; ``"profile"``
        or ``"boot"``: :meth:`LmerFit.confint` for the fixed effects and ``ran_pars``.
        ``ran_vals`` intervals are always Wald (normal quantiles).
    ddf
        Degrees of freedom of the t tests: ``"Satterthwaite"`` (default),
        ``"Kenward-Roger"`` or ``"lme4"`` (no ``df`` / ``p.value``).
    scales
        ``"sdcor"`` (standard deviations and correlations, ``sd__`` / ``cor__``) or
        ``"vcov"`` (variances and covariances, ``var__`` / ``cov__``).

    Returns
    -------
    pandas.DataFrame
        Columns among ``effect``, ``group``, ``level``, ``term``, ``estimate``,
        ``std.error``, ``statistic``, ``df``, ``p.value``, ``conf.low``, ``conf.high``
        (those the blocks asked for have), missing entries as NaN / None.
    """
    wanted = _effects(effects)
    if not 0.0 < conf_level < 1.0:
        raise ValueError("conf_level must lie between 0 and 1")
    if conf_method not in ("Wald", "profile", "boot"):
        raise ValueError("conf_method must be 'Wald', 'profile' or 'boot'")
    ci = None
    if conf_int and conf_method != "Wald" and {"fixed", "ran_pars"} & set(wanted):
        ci = _interval_rows(fit, conf_method, conf_level)
    blocks = []
    for eff in wanted:
        if eff == "fixed":
            b = _fixed_rows(fit, ddf, conf_int and ci is None, conf_level)
            if ci is not None:
                b["conf.low"] = ci["conf.low"].reindex(b["term"]).to_numpy()
                b["conf.high"] = ci["conf.high"].reindex(b["term"]).to_numpy()
        elif eff == "ran_pars":
            b = _ran_pars_rows(fit, scales)
            if conf_int:
                b["conf.low"] = np.nan
                b["conf.high"] = np.nan
                if ci is not None and scales == "sdcor":
                    nvp = fit.structure.ntheta + 1
                    b["conf.low"] = ci["conf.low"].to_numpy()[:nvp]
                    b["conf.high"] = ci["conf.high"].to_numpy()[:nvp]
        elif eff == "ran_vals":
            b = _ran_vals_rows(fit, conf_int, conf_level)
        else:
            b = _ran_coefs_rows(fit)
            if conf_int:
                b["conf.low"] = np.nan
                b["conf.high"] = np.nan
        b.insert(0, "effect", eff)
        blocks.append(b)
    out = pd.concat(blocks, ignore_index=True)
    cols = [c for c in _COLUMNS if c in out.columns]
    out = out[cols]
    for c in ("group", "level"):
        if c in out.columns:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


# --------------------------------------------------------------------------------------
# glance
# --------------------------------------------------------------------------------------


def glance(fit: LmerFit) -> pd.DataFrame:
    """One row of fit statistics, as broom.mixed's ``glance(m)``.

    Returns
    -------
    pandas.DataFrame
        ``nobs``, ``sigma``, ``logLik`` (the REML log-likelihood for a REML fit),
        ``AIC``, ``BIC``, ``REMLcrit`` (REML fits) or ``deviance`` (ML fits) and
        ``df.residual`` (``nobs`` minus the number of parameters).
    """
    row: dict[str, Any] = {"nobs": fit.nobs, "sigma": fit.sigma, "logLik": fit.loglik,
                           "AIC": fit.aic, "BIC": fit.bic}
    row["REMLcrit" if fit.reml else "deviance"] = fit.objective
    row["df.residual"] = fit.nobs - fit.npar
    return pd.DataFrame([row])


# --------------------------------------------------------------------------------------
# hat values and Cook's distance
# --------------------------------------------------------------------------------------


def hat_values(fit: LmerFit) -> pd.Series:
    """Diagonal of the hat matrix, as lme4's ``hatvalues(m)``.

    ``fitted = H y`` for the linear mixed model at the estimated covariance parameters;
    see the module docstring for the formula. Cost: one pass over the rows per pair of
    random-effects terms and ``p`` solves with the Cholesky factor.

    Returns
    -------
    pandas.Series
        One value per fitted row.
    """
    d = fit.design
    obj = fit._obj
    n, p = fit.nobs, fit.blocks.p
    tmpl = fit.structure.templates(fit.theta)
    terms = fit.structure.terms
    codes = [np.asarray(d.terms[fit.term_order[ti]].codes, dtype=np.int64)
             for ti in range(len(terms))]
    # a_i per term: the rows of Z Lambda (n x k)
    A = [np.asarray(d.terms[fit.term_order[ti]].matrix, dtype=np.float64)
         @ tmpl[ti, : t.k, : t.k] for ti, t in enumerate(terms)]
    sel = obj.selected_inverse(fit.theta)
    quad = np.zeros(n)
    for s, ts in enumerate(terms):
        for t in range(s + 1):
            tt = terms[t]
            key = codes[s] * tt.nlevels + codes[t]
            uniq, inv = np.unique(key, return_inverse=True)
            ls, lt = uniq // tt.nlevels, uniq % tt.nlevels
            i = np.arange(ts.k)[None, :, None]
            j = np.arange(tt.k)[None, None, :]
            gr = ts.offset + ls[:, None, None] * ts.k + i + 0 * j
            gc = tt.offset + lt[:, None, None] * tt.k + j + 0 * i
            vals = sel.entries(gr.ravel(), gc.ravel()).reshape(
                uniq.size, ts.k, tt.k)
            qf = np.einsum("ni,nij,nj->n", A[s], vals[inv], A[t])
            quad += qf if s == t else 2.0 * qf
    if p:
        obj.solve(fit.theta)
        Gp = obj._chol.solve_Lt(fit._sol.RZX)
        G = np.empty_like(Gp)
        G[obj.perm] = Gp
        r = np.array(d.X, dtype=np.float64, order="C")
        for ti, t in enumerate(terms):
            Gt = G[t.offset : t.offset + t.size].reshape(t.nlevels, t.k, p)
            r -= np.einsum("nk,nkp->np", A[ti], Gt[codes[ti]])
        cr = sla.solve_triangular(fit._sol.RX, r.T, trans="T")
        quad += np.einsum("pn,pn->n", cr, cr)
    h = quad if d.weights is None else quad * np.asarray(d.weights, dtype=np.float64)
    return pd.Series(h, index=d.row_index, name="hat")


def cooks_distance(fit: LmerFit, hat: pd.Series | np.ndarray | None = None) -> pd.Series:
    """Cook's distance, as lme4's ``cooks.distance(m)``.

    ``(r_i / (1 - h_i))^2 h_i / (sigma^2 p)`` with ``r_i`` the Pearson residuals, ``h_i``
    the hat values and ``p`` the rank of ``X``; infinite values become NaN.

    Parameters
    ----------
    fit
        The fitted model.
    hat
        The hat values when already computed.
    """
    h = np.asarray(hat_values(fit) if hat is None else hat, dtype=np.float64)
    res = fit.residuals(type="pearson").to_numpy()
    if fit.design.pad is not None:  # na_action="exclude": the used rows only
        res = res[fit.design.pad[1]]
    p = fit.blocks.p
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (res / (1.0 - h)) ** 2 * h / (fit.sigma**2 * p)
    out[np.isinf(out)] = np.nan
    return pd.Series(out, index=fit.design.row_index, name="cooksd")


# --------------------------------------------------------------------------------------
# augment
# --------------------------------------------------------------------------------------


def _model_frame(fit: LmerFit) -> pd.DataFrame:
    """What can be recovered of the model frame without the data.

    The response, the plain numeric variables of the fixed part and of the random-effects
    terms (columns named like a variable), and the grouping factors (their level labels;
    an interaction under its label, e.g. ``"cask:batch"``).
    """
    import re

    d = fit.design
    cols: dict[str, np.ndarray] = {d.response_name: d.y}
    simple = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
    for j, nm in enumerate(d.xnames):
        if simple.fullmatch(nm):
            cols.setdefault(nm, np.asarray(d.X[:, j]))
    for td in d.terms:
        for j, nm in enumerate(td.colnames):
            if simple.fullmatch(nm):
                cols.setdefault(nm, np.asarray(td.matrix[:, j]))
        if td.label not in cols:
            cols[td.label] = np.asarray(td.levels, dtype=object)[np.asarray(td.codes)]
    return pd.DataFrame(cols, index=d.row_index)


def _fitted_rows(fit: LmerFit, data: pd.DataFrame) -> pd.DataFrame:
    idx = fit.design.row_index
    if data.index.is_unique and idx.isin(data.index).all():
        return data.loc[idx]
    if len(data) == fit.nobs:
        return data.set_axis(idx, axis=0)
    raise DataError(f"data has {len(data)} rows whose index does not cover the {fit.nobs} "
                    "rows of the fit; pass the data the model was fitted to")


def augment(fit: LmerFit, data: pd.DataFrame | None = None, *, influence: bool = True
            ) -> pd.DataFrame:
    """The data with fitted values, residuals and influence, as broom.mixed's ``augment``.

    Parameters
    ----------
    fit
        The fitted model.
    data
        The data the model was fitted to (its rows are matched to the fitted rows by
        index; rows the fit dropped are left out). By default the fit's ``data``
        attribute when it has one, else the model frame as far as the fit knows it
        (response, plain variables, grouping factors).
    influence
        Add ``.hat`` and ``.cooksd`` (the costliest columns; see :func:`hat_values`).

    Returns
    -------
    pandas.DataFrame
        The data columns, then ``.fitted``, ``.resid``, ``.hat``, ``.cooksd``,
        ``.fixed`` (population-level prediction), and lme4's response-module columns
        ``.mu``, ``.offset``, ``.sqrtXwt``, ``.sqrtrwt``, ``.weights``, ``.wtres``.
    """
    if data is None:
        data = getattr(fit, "data", None)
    if data is None:
        out = _model_frame(fit)
    elif isinstance(data, pd.DataFrame):
        out = _fitted_rows(fit, data).copy()
    else:
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    d = fit.design
    n = fit.nobs
    w = np.ones(n) if d.weights is None else np.asarray(d.weights, dtype=np.float64)
    offset = np.zeros(n) if d.offset is None else np.asarray(d.offset, dtype=np.float64)
    mu = fit._linear_predictor()
    resid = d.y - mu
    fixed = fit._linear_predictor(include_re=False)
    cols: dict[str, np.ndarray] = {".fitted": mu, ".resid": resid}
    if influence:
        h = hat_values(fit)
        cols[".hat"] = h.to_numpy()
        cols[".cooksd"] = cooks_distance(fit, h).to_numpy()
    cols.update({".fixed": fixed, ".mu": mu, ".offset": offset, ".sqrtXwt": np.sqrt(w),
                 ".sqrtrwt": np.sqrt(w), ".weights": w, ".wtres": np.sqrt(w) * resid})
    for k, v in cols.items():
        out[k] = v
    return out


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------


def _num(v: Any, digits: int = 4) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if math.isnan(x):
        return ""
    if x == 0.0:
        return "0"
    if abs(x) >= 1e6 or abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.1f}"


def _pval(v: Any) -> str:
    x = float(v)
    if math.isnan(x):
        return ""
    return "&lt;2e-16" if x < 2e-16 else _num(x, 3)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str,
           first_is_label: bool = True) -> str:
    """An HTML table; cells are already escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for j, c in enumerate(r):
            tag = "th" if first_is_label and j == 0 else "td"
            cells.append(f"<{tag}>{c}</{tag}>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class=\"mixeff-table\"><caption>{html.escape(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def fit_html(fit: LmerFit) -> str:
    """An HTML summary of a fit for notebooks (``_repr_html_``).

    The title, the formula, the fit criteria, the random-effects and the fixed-effects
    tables (with Satterthwaite t tests) and the fit's messages; every text from the model
    (names, levels, formula) is escaped.

    Returns
    -------
    str
        An HTML fragment (a ``<div>``).
    """
    esc = html.escape
    method = "REML" if fit.reml else "maximum likelihood"
    parts = [f"<div class=\"mixeff-fit\"><p><strong>Linear mixed model fit by {method}"
             "</strong></p>",
             f"<p>Formula: <code>{esc(str(fit.formula))}</code></p>"]
    data_name = getattr(fit, "data_name", None)
    if data_name:
        parts.append(f"<p>Data: <code>{esc(str(data_name))}</code></p>")
    crit = [("REML criterion" if fit.reml else "deviance", fit.objective),
            ("logLik", fit.loglik), ("AIC", fit.aic), ("BIC", fit.bic),
            ("df.resid", fit.nobs - fit.npar)]
    parts.append(_table([name for name, _ in crit], [[_num(v, 6) for _, v in crit]],
                        "Fit", first_is_label=False))
    vc = fit.varcorr()
    rows = []
    for r in vc.itertuples(index=False):
        if r.name2 is None or (isinstance(r.name2, float) and math.isnan(r.name2)):
            name = "" if r.name1 is None or (isinstance(r.name1, float)
                                             and math.isnan(r.name1)) else str(r.name1)
            rows.append([esc(str(r.group)), esc(name), _num(r.variance), _num(r.sd_cor), ""])
        else:
            rows.append([esc(str(r.group)), esc(f"{r.name1} : {r.name2}"), _num(r.variance),
                         "", _num(r.sd_cor, 3)])
    parts.append(_table(["Groups", "Name", "Variance", "Std.Dev.", "Corr"], rows,
                        "Random effects"))
    groups = "; ".join(f"{esc(str(k))}, {v}" for k, v in fit.ngroups.items())
    parts.append(f"<p>Number of obs: {fit.nobs}, groups: {groups}</p>")
    if fit.blocks.p:
        tab = fit.coef_table()
        header = ["", *[str(c) for c in tab.columns]]
        rows = []
        for name, r in tab.iterrows():
            cells = [esc(str(name))]
            for c in tab.columns:
                cells.append(_pval(r[c]) if str(c).startswith("Pr(") else _num(r[c]))
            rows.append(cells)
        parts.append(_table(header, rows, "Fixed effects"))
    msgs = list(dict.fromkeys(list(getattr(fit, "messages", []) or [])))
    if fit.is_singular and _SINGULAR not in msgs:
        msgs.append(_SINGULAR)
    if msgs:
        parts.append("<ul class=\"mixeff-messages\">"
                     + "".join(f"<li>{esc(str(m))}</li>" for m in msgs) + "</ul>")
    parts.append("</div>")
    return "".join(parts)
