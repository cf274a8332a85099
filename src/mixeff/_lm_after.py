"""What R users do with an ``lm`` fit after fitting it: influence, intervals, broom tables.

The functions behind :class:`~mixeff.LmFit`'s ``hatvalues``, ``cooks_distance``,
``confint``, ``predict``, ``tidy``, ``glance``, ``augment`` and HTML display, as R's
``hatvalues.lm``, ``cooks.distance.lm``, ``confint.lm``, ``predict.lm`` and broom's
``tidy.lm`` / ``glance.lm`` / ``augment.lm``. With prior weights ``w`` (rows of weight
zero are left out by the design, as the fit leaves them out):

* leverage ``h_i = w_i x_i' (X'WX)^{-1} x_i`` (the squared rows of ``Q`` of ``sqrt(W) X``);
* standardised residuals ``sqrt(w_i) e_i / (sigma sqrt(1 - h_i))`` (R's ``rstandard``);
* leave-one-out ``sigma_(i)^2 = (RSS - w_i e_i^2 / (1 - h_i)) / (n - p - 1)``;
* Cook's distance ``D_i = r_i^2 h_i / (p (1 - h_i))`` with ``r_i`` standardised.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

from ._errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ._lm import LmFit

__all__ = ["hat_values", "cooks_distance", "confint", "predict", "tidy", "glance",
           "augment", "fit_html"]


def _hat(fit: LmFit) -> np.ndarray:
    X = np.asarray(fit.design.X, dtype=float)
    n, p = X.shape
    if p == 0:
        return np.zeros(n)
    sw = np.sqrt(fit._w)
    # rows of sqrt(W) X R^-1 are those of Q
    Q = sla.solve_triangular(fit._R, (X * sw[:, None]).T, trans="T").T
    return np.einsum("ij,ij->i", Q, Q)


def hat_values(fit: LmFit) -> pd.Series:
    """Leverages of the rows used (R's ``hatvalues(lm)``)."""
    return pd.Series(_hat(fit), index=fit.design.row_index, name="hat")


def _standardized(fit: LmFit, h: np.ndarray) -> np.ndarray:
    r = np.sqrt(fit._w) * fit._resid
    with np.errstate(divide="ignore", invalid="ignore"):
        return r / (fit.sigma * np.sqrt(1.0 - h))


def cooks_distance(fit: LmFit) -> pd.Series:
    """Cook's distances of the rows used (R's ``cooks.distance(lm)``)."""
    h = _hat(fit)
    rs = _standardized(fit, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = rs**2 * h / (fit.rank * (1.0 - h))
    return pd.Series(d, index=fit.design.row_index, name="cooksd")


def confint(fit: LmFit, parm=None, level: float = 0.95) -> pd.DataFrame:
    """t intervals of the coefficients (R's ``confint.lm``); aliased ones are NaN."""
    if not 0 < level < 1:
        raise DataError(f"level must lie between 0 and 1, not {level!r}")
    a = (1.0 - level) / 2.0
    names = list(fit.coef.index)
    se = pd.Series(np.sqrt(np.diag(fit.vcov(complete=True).to_numpy())) if names else [],
                   index=names, dtype=float)
    q = stats.t.ppf(1.0 - a, fit.df_residual) if fit.df_residual > 0 else np.nan
    pct = [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]
    out = pd.DataFrame({pct[0]: fit.coef - q * se, pct[1]: fit.coef + q * se}, index=names)
    if parm is not None:
        parm = [parm] if isinstance(parm, str) else list(parm)
        unknown = [p for p in parm if p not in names]
        if unknown:
            raise DataError(f"unknown coefficient(s) {unknown}; the coefficients are {names}")
        out = out.loc[parm]
    return out


def _new_matrix(fit: LmFit, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """``X`` of new data, the formula's offsets there and the rows with missing values."""
    from ._design import _formulaic_names, _rename
    from ._predict import _check_categories, _materialize, _new_offset, _NewData

    d = fit.design
    if d.fixed_spec is None:  # pragma: no cover - lm fits always have a spec
        raise DataError("this fit has no model spec, so it cannot be evaluated on newdata")
    what = "the model"
    nd = _NewData(fit, newdata)
    if nd.n == 0:
        return np.zeros((0, len(d.xnames))), np.zeros(0), np.zeros(0, dtype=bool)
    cols = nd.variables(_formulaic_names(d.formula.fixed)[0], what)
    frame = nd.frame(cols, what)
    _check_categories(d.fixed_spec, nd)
    mm = _materialize(d.fixed_spec, frame, what)
    where = {nm: j for j, nm in enumerate(_rename(mm.columns))}
    X = (np.column_stack([mm.iloc[:, where[nm]].to_numpy(dtype=np.float64)
                          for nm in d.xnames]) if d.xnames else np.zeros((nd.n, 0)))
    off = _new_offset(fit, nd)
    return X, off, nd.na.copy()


def predict(fit: LmFit, newdata: pd.DataFrame | None = None, interval: str = "none",
            level: float = 0.95, se_fit: bool = False):
    """Predictions as R's ``predict.lm``; see :meth:`mixeff.LmFit.predict`."""
    if interval not in ("none", "confidence", "prediction"):
        raise DataError("interval must be 'none', 'confidence' or 'prediction', not "
                        f"{interval!r}")
    if not 0 < level < 1:
        raise DataError(f"level must lie between 0 and 1, not {level!r}")
    d = fit.design
    if newdata is None:
        X = np.asarray(d.X, dtype=float)
        off = np.zeros(X.shape[0]) if d.offset is None else np.asarray(d.offset, float)
        na = np.zeros(X.shape[0], dtype=bool)
        index = d.row_index
        wnew = fit._w
    else:
        X, off, na = _new_matrix(fit, newdata)
        index = newdata.index
        wnew = np.ones(X.shape[0])
    eta = (X @ fit._beta if X.shape[1] else np.zeros(X.shape[0])) + off
    eta = np.where(na, np.nan, eta)
    if interval == "none" and not se_fit:
        return pd.Series(eta, index=index, name="fit")
    if X.shape[1]:
        Rinv = sla.solve_triangular(fit._R, np.eye(X.shape[1]))
        B = X @ Rinv
        se = fit.sigma * np.sqrt(np.einsum("ij,ij->i", B, B))
    else:
        se = np.zeros(X.shape[0])
    se = np.where(na, np.nan, se)
    out = pd.DataFrame({"fit": eta}, index=index)
    if interval != "none":
        q = stats.t.ppf(1.0 - (1.0 - level) / 2.0, fit.df_residual)
        half = q * (se if interval == "confidence"
                    else np.sqrt(se**2 + fit.sigma**2 / wnew))
        out["lwr"] = eta - half
        out["upr"] = eta + half
    if se_fit:
        out["se_fit"] = se
    return out


def tidy(fit: LmFit, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
    """broom's ``tidy(lm)``: one row per estimated coefficient."""
    ct = fit.coef_table()
    out = pd.DataFrame({"term": list(ct.index), "estimate": ct["Estimate"].to_numpy(),
                        "std.error": ct["Std. Error"].to_numpy(),
                        "statistic": ct["t value"].to_numpy(),
                        "p.value": ct["Pr(>|t|)"].to_numpy()})
    if conf_int:
        ci = confint(fit, level=conf_level).loc[list(ct.index)]
        out["conf.low"] = ci.iloc[:, 0].to_numpy()
        out["conf.high"] = ci.iloc[:, 1].to_numpy()
    return out


def glance(fit: LmFit) -> pd.DataFrame:
    """broom's ``glance(lm)``: one row of model statistics."""
    fs = fit.fstatistic
    return pd.DataFrame([{
        "r.squared": fit.r_squared, "adj.r.squared": fit.adj_r_squared, "sigma": fit.sigma,
        "statistic": fs["value"] if fs else np.nan, "p.value": fs["p_value"] if fs else np.nan,
        "df": fs["numdf"] if fs else 0, "logLik": fit.loglik, "AIC": fit.aic, "BIC": fit.bic,
        "deviance": fit._rss, "df.residual": fit.df_residual, "nobs": fit.nobs}])


def augment(fit: LmFit, data: pd.DataFrame | None = None) -> pd.DataFrame:
    """broom's ``augment(lm)``: the rows used with fitted values and influence measures."""
    d = fit.design
    h = _hat(fit)
    rs = _standardized(fit, h)
    n, p = fit.n_used, fit.rank
    e2w = fit._w * fit._resid**2
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = np.sqrt((fit._rss - e2w / (1.0 - h)) / (n - p - 1))
        cook = rs**2 * h / (p * (1.0 - h))
    cols = {".fitted": fit.fitted().to_numpy(), ".resid": fit._resid, ".hat": h,
            ".sigma": loo, ".cooksd": cook, ".std.resid": rs}
    if d.weights is not None:
        cols = {**cols, ".weights": fit._w}
    extra = pd.DataFrame(cols, index=d.row_index)
    if data is None:
        base = pd.DataFrame({d.response_name: np.asarray(d.y, dtype=float)},
                            index=d.row_index)
    else:
        try:
            base = data.loc[d.row_index]
        except KeyError:
            raise DataError("data does not hold the rows the model was fitted to") from None
    return pd.concat([base, extra], axis=1)


def fit_html(fit: LmFit) -> str:
    """An HTML summary of a linear model for notebooks (``_repr_html_``)."""
    esc = html.escape
    ct = fit.coef_table()
    parts = ["<div class=\"mixeff-lm\"><p><strong>Linear model fit by least squares"
             "</strong></p>", f"<p>Formula: <code>{esc(str(fit.formula))}</code></p>"]
    if getattr(fit, "data_name", None):
        parts.append(f"<p>Data: <code>{esc(str(fit.data_name))}</code></p>")
    head = "".join(f"<th>{esc(c)}</th>" for c in ["", *ct.columns])
    rows = []
    for name, r in ct.iterrows():
        cells = "".join(f"<td>{v:.4g}</td>" for v in r.to_numpy(dtype=float))
        rows.append(f"<tr><th>{esc(str(name))}</th>{cells}</tr>")
    parts.append(f"<table><caption>Coefficients</caption><thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>")
    fs = fit.fstatistic
    stat = (f"Residual standard error: {fit.sigma:.4g} on {fit.df_residual} degrees of "
            f"freedom; multiple R-squared {fit.r_squared:.4g}, adjusted "
            f"{fit.adj_r_squared:.4g}")
    if fs:
        stat += (f"; F = {fs['value']:.4g} on {fs['numdf']} and {fs['dendf']} df, "
                 f"p = {fs['p_value']:.3g}")
    parts.append(f"<p>{esc(stat)}</p>")
    if fit.aliased:
        parts.append(f"<p>Not estimated (aliased): {esc(', '.join(fit.aliased))}</p>")
    parts.append("</div>")
    return "".join(parts)
