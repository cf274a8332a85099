"""Ordinary (weighted) least squares with the mixed models' formula machinery: R's ``lm``.

:func:`lm` fits ``y = X beta + e`` by a Householder QR of ``sqrt(w) X``, with the fixed
part of a formula built exactly as for :func:`mixeff.lmer` (formulaic, treatment
contrasts, R's rule for dropping linearly dependent columns: their coefficients are
``NaN``, R's ``NA``). :class:`LmFit` offers what ``summary.lm``, ``anova.lm``, ``logLik``,
``AIC`` and ``BIC`` give in R, and prints like ``print(summary(lm(...)))``.

Its main use next to the mixed models is a warning: for repeated measures it treats
every row as independent (e.g. 234 residual df from 240 rows of 30 plants), which
understates the standard errors of between-unit effects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import stats

__all__ = ["LmFit", "LmSummary", "lm"]

_LOG2PI = float(np.log(2.0 * np.pi))
_ZERO_W = re.compile(r"^(\d+) rows? with zero weight dropped$")


def lm(formula: str, data: pd.DataFrame,
       weights: str | Sequence[float] | np.ndarray | pd.Series | None = None,
       offset: str | Sequence[float] | np.ndarray | pd.Series | None = None,
       data_name: str | None = None, *, contrasts: dict[str, Any] | None = None,
       subset: Any = None, na_action: str = "omit", names: str | None = None,
       allow_python: bool = False, eval_env: dict | None = None) -> LmFit:
    """Fit a linear model by (weighted) least squares, as R's ``lm``.

    Parameters
    ----------
    formula
        Model formula without random-effects terms, e.g. ``"height ~ week * C(temp)"``
        (formulaic syntax, as the fixed part of :func:`mixeff.lmer`; ``offset(...)``
        terms allowed).
    data
        The data; rows with a missing value in a used column are dropped. A polars or
        pyarrow table is converted to pandas first (see :func:`mixeff.lmer`).
    weights
        Prior weights: a column name or one value per row (non-negative; rows with weight
        0 do not count as observations, as in R).
    offset
        A known term of the linear predictor: column name or one value per row.
    data_name
        Name shown for the data in the printed call (``lm(formula = ..., data = name)``).
    contrasts, subset, na_action, names
        As for :func:`mixeff.lmer`: R's ``contrasts = list(...)``, ``subset =``,
        ``na.action`` (``"omit"``, ``"exclude"``, ``"fail"``) and R's coefficient names
        (``names="R"``).
    allow_python, eval_env
        Evaluate the formula's expressions as Python code (``eval_env``: extra names,
        implies ``allow_python=True``) instead of over mixeff's allow-list; off by
        default (see :func:`mixeff.lmer`).

    Returns
    -------
    LmFit
    """
    from ._coding import resolve_names
    from ._design import build_design
    from ._errors import FormulaError
    from ._frames import as_pandas

    names = resolve_names(names)
    data = as_pandas(data)   # polars, pyarrow, ... (dataframe interchange protocol)
    design = build_design(formula, data, weights=weights, offset=offset,
                          contrasts=contrasts, subset=subset, na_action=na_action,
                          allow_python=allow_python, eval_env=eval_env)
    if design.terms:
        raise FormulaError("lm() takes no random-effects terms (use lmer())",
                           design.formula.text, None)
    wname = weights if isinstance(weights, str) else None
    fit = LmFit(design, data_name=data_name, weights_name=wname)
    if names == "R":
        fit.names = "R"
        fit.coef.index = fit._show(list(fit.coef.index))
    return fit


class LmFit:
    """A linear model fitted by least squares (what :func:`lm` returns).

    Attributes
    ----------
    design : Design
        The formula, response, model matrix (rank-deficient columns dropped) and weights.
    formula : str
        The formula.
    coef : pandas.Series
        Coefficients over all columns the formula produced; ``NaN`` for the columns
        dropped as linearly dependent (R's aliased ``NA``).
    sigma : float
        Residual standard error ``sqrt(sum(w r^2) / df_residual)``.
    df_residual : int
        Observations (with non-zero weight) minus the rank.
    rank : int
        Number of estimated coefficients.
    n_zero_weight : int
        Rows with weight 0. The design layer leaves them out, so :meth:`fitted` and
        :meth:`residuals` do not list them (R keeps them with a fitted value); the printed
        summary counts them among the residuals (as zeros) as R does.
    """

    def __init__(self, design, data_name: str | None = None,
                 weights_name: str | None = None):
        from ._contrasts import term_layout

        self.design = design
        self.names = "formulaic"
        self.formula = design.formula.text
        self.data_name = data_name
        self.weights_name = weights_name
        self._layout = term_layout(design)
        self.n_zero_weight = sum(int(m.group(1)) for m in map(_ZERO_W.match, design.messages)
                                 if m)
        X = np.asarray(design.X, dtype=float)
        y = np.asarray(design.y, dtype=float)
        off = design.offset
        n = y.shape[0]
        w = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
        self._w = w
        use = w > 0
        sw = np.sqrt(w[use])
        yo = y if off is None else y - off
        Xw = X[use] * sw[:, None]
        yw = yo[use] * sw
        p = X.shape[1]
        self.rank = p
        self.n_used = int(use.sum())
        self.df_residual = self.n_used - p
        if p:
            Q, R = np.linalg.qr(Xw)
            self._effects = Q.T @ yw
            self._R = R
            beta = sla.solve_triangular(R, self._effects)
        else:
            self._effects = np.zeros(0)
            self._R = np.zeros((0, 0))
            beta = np.zeros(0)
        self._beta = beta
        self._eta = X @ beta if p else np.zeros(n)
        self._resid = yo - self._eta
        self._rss = float(np.sum(w * self._resid**2))
        self.sigma = (float(np.sqrt(self._rss / self.df_residual))
                      if self.df_residual > 0 else float("nan"))
        full = self._layout.full_names or list(design.xnames)
        est = dict(zip(design.xnames, beta, strict=True))
        self.coef = pd.Series([est.get(nm, np.nan) for nm in full], index=full,
                              name="Estimate", dtype=float)

    def _show(self, names: list[str]) -> list[str]:
        """Coefficient names as shown: formulaic's, or R's with ``names="R"``."""
        if self.names != "R":
            return list(names)
        from ._coding import r_names

        return r_names(self.design.fixed_spec, list(names))

    # -- basic quantities -------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations (rows with non-zero weight)."""
        return self.n_used

    @property
    def has_intercept(self) -> bool:
        """Whether the model has an intercept."""
        return self._layout.has_intercept

    @property
    def aliased(self) -> list[str]:
        """Coefficients not estimated because their columns are linearly dependent."""
        return list(self.design.dropped_xnames)

    def vcov(self, complete: bool = True) -> pd.DataFrame:
        """Covariance matrix of the coefficients, ``sigma^2 (X'WX)^{-1}``.

        Parameters
        ----------
        complete
            Include rows and columns of ``NaN`` for aliased coefficients (R's default).
        """
        names = self._show(list(self.design.xnames))
        p = len(names)
        if p:
            Rinv = sla.solve_triangular(self._R, np.eye(p))
            V = self.sigma**2 * (Rinv @ Rinv.T)
        else:
            V = np.zeros((0, 0))
        out = pd.DataFrame(V, index=names, columns=names)
        if complete and self.aliased:
            full = list(self.coef.index)
            out = out.reindex(index=full, columns=full)
        return out

    def fitted(self) -> pd.Series:
        """Fitted values ``X beta (+ offset)`` of the rows used."""
        eta = self._eta if self.design.offset is None else self._eta + self.design.offset
        from ._design import row_series

        return row_series(self.design, eta, "fitted")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:
        """Residuals: ``"response"`` (``y - fitted``, not weighted, as R's
        ``residuals(lm)``) or ``"pearson"`` (times ``sqrt(w)``); ``scaled=True`` divides
        them by sigma (as :meth:`mixeff.LmerFit.residuals`)."""
        r = self._resid
        if type == "pearson":
            r = r * np.sqrt(self._w)
        elif type != "response":
            raise ValueError("type must be 'response' or 'pearson'")
        if scaled:
            r = r / self.sigma
        from ._design import row_series

        return row_series(self.design, r, "residuals")

    # -- summary statistics -----------------------------------------------------------
    def _mss(self) -> float:
        w = self._w
        f = self._eta  # fitted values without the offset, as summary.lm
        if self.has_intercept:
            m = float(np.sum(w * f) / np.sum(w))
            return float(np.sum(w * (f - m) ** 2))
        return float(np.sum(w * f**2))

    @property
    def r_squared(self) -> float:
        """Multiple R-squared ``mss / (mss + rss)``."""
        mss = self._mss()
        return mss / (mss + self._rss)

    @property
    def adj_r_squared(self) -> float:
        """Adjusted R-squared ``1 - (1 - R^2) (n - df_int) / df_residual``."""
        df_int = int(self.has_intercept)
        return 1.0 - (1.0 - self.r_squared) * ((self.n_used - df_int) / self.df_residual)

    @property
    def fstatistic(self) -> dict | None:
        """Overall F test against the intercept-only (or empty) model.

        Returns
        -------
        dict or None
            ``value``, ``numdf``, ``dendf``, ``p_value``; None when the model has no
            coefficient beyond the intercept.
        """
        df_int = int(self.has_intercept)
        numdf = self.rank - df_int
        if numdf <= 0:
            return None
        value = (self._mss() / numdf) / (self._rss / self.df_residual)
        return {"value": value, "numdf": numdf, "dendf": self.df_residual,
                "p_value": float(stats.f.sf(value, numdf, self.df_residual))}

    @property
    def loglik(self) -> float:
        """Log-likelihood (R's ``logLik.lm``, with ``sum(log w)`` for weights)."""
        n = self.n_used
        w = self._w[self._w > 0]
        return 0.5 * (float(np.sum(np.log(w))) - n * (_LOG2PI + 1.0 - np.log(n)
                                                      + np.log(self._rss)))

    @property
    def npar(self) -> int:
        """Parameters counted by AIC/BIC: the coefficients and sigma."""
        return self.rank + 1

    @property
    def aic(self) -> float:
        """Akaike's information criterion ``-2 loglik + 2 (rank + 1)``."""
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``-2 loglik + log(n) (rank + 1)``."""
        return -2.0 * self.loglik + np.log(self.n_used) * self.npar

    # -- tables -----------------------------------------------------------------------
    def coef_table(self) -> pd.DataFrame:
        """Coefficients with t tests, as ``summary(lm(...))$coefficients``.

        Returns
        -------
        pandas.DataFrame
            Estimated coefficients only (aliased ones left out); columns ``Estimate``,
            ``Std. Error``, ``t value``, ``Pr(>|t|)``.
        """
        names = list(self.design.xnames)
        se = np.sqrt(np.diag(self.vcov(complete=False).to_numpy())) if names else np.zeros(0)
        t = self._beta / se if names else np.zeros(0)
        p = 2.0 * stats.t.sf(np.abs(t), self.df_residual)
        return pd.DataFrame({"Estimate": self._beta, "Std. Error": se, "t value": t,
                             "Pr(>|t|)": p}, index=self._show(names))

    def anova(self) -> pd.DataFrame:
        """Sequential (Type I) ANOVA table, as R's ``anova(lm(...))``.

        Each term's sum of squares is the sum of the squared QR effects of its columns, in
        model order; the last row is ``Residuals``.

        Returns
        -------
        pandas.DataFrame
            Columns ``Df``, ``Sum Sq``, ``Mean Sq``, ``F value``, ``Pr(>F)`` (NaN in the
            Residuals row); ``attrs["heading"]`` as R prints it.
        """
        col_terms = self._layout.col_terms
        labels: list[str] = []
        for c in col_terms:
            if c not in labels:
                labels.append(c)
        eff2 = self._effects**2
        dfr = self.df_residual
        msr = self._rss / dfr if dfr > 0 else np.nan
        rows = []
        for lab in labels:
            idx = [j for j, c in enumerate(col_terms) if c == lab]
            ss = float(np.sum(eff2[idx]))
            df = len(idx)
            F = ss / df / msr
            rows.append((lab, df, ss, ss / df, F,
                         float(stats.f.sf(F, df, dfr)) if dfr > 0 else np.nan))
        rows = [r for r in rows if r[0] != "(Intercept)"]
        if self.names == "R":
            from ._coding import r_term_label

            rows = [(r_term_label(r[0]), *r[1:]) for r in rows]
        rows.append(("Residuals", dfr, self._rss, msr, np.nan, np.nan))
        table = pd.DataFrame([r[1:] for r in rows],
                             index=pd.Index([r[0] for r in rows], dtype=object),
                             columns=["Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)"])
        table.attrs["heading"] = ("Analysis of Variance Table\n\n"
                                  f"Response: {self.design.response_name}")
        return table

    # -- presentation -----------------------------------------------------------------
    def summary(self, digits: int = 4, rename: Callable[[str], str] | None = None
                ) -> LmSummary:
        """A summary printed like R's ``print(summary(lm(...)))`` (print it).

        Parameters
        ----------
        digits
            R's ``digits``.
        rename
            Optional function applied to the coefficient names in the printed table
            (e.g. to show R's ``temp15`` for formulaic's ``C(temp)[T.15]``).
        """
        return LmSummary(self, digits=digits, rename=rename)

    def __repr__(self) -> str:
        return (f"<LmFit {self.formula!r}: nobs={self.nobs}, rank={self.rank}, "
                f"sigma={self.sigma:.4g}>")

    # -- after the fit (mixeff._lm_after) ---------------------------------------------
    def hatvalues(self) -> pd.Series:
        """Leverages of the rows used, as R's ``hatvalues(lm)``."""
        from ._lm_after import hat_values

        return hat_values(self)

    def cooks_distance(self) -> pd.Series:
        """Cook's distances, as R's ``cooks.distance(lm)``."""
        from ._lm_after import cooks_distance

        return cooks_distance(self)

    def confint(self, parm=None, level: float = 0.95) -> pd.DataFrame:
        """t intervals of the coefficients, as R's ``confint(lm)`` (columns ``"2.5 %"``,
        ``"97.5 %"``; aliased coefficients NaN)."""
        from ._lm_after import confint

        return confint(self, parm, level)

    def predict(self, newdata: pd.DataFrame | None = None, interval: str = "none",
                level: float = 0.95, se_fit: bool = False):
        """Predictions, as R's ``predict(lm, newdata, interval = ...)``.

        Parameters
        ----------
        newdata
            New rows (the fitted rows by default); the formula's ``offset()`` terms are
            evaluated on them, an ``offset=`` argument is not.
        interval
            ``"none"`` (a Series), ``"confidence"`` or ``"prediction"`` (a DataFrame with
            ``fit``, ``lwr``, ``upr``; prediction intervals for new rows of weight 1).
        level
            Confidence level.
        se_fit
            Add the standard errors of the fitted means (column ``se_fit``).
        """
        from ._lm_after import predict

        return predict(self, newdata, interval, level, se_fit)

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """Coefficients in broom's ``tidy(lm)`` layout."""
        from ._lm_after import tidy

        return tidy(self, conf_int, conf_level)

    def glance(self) -> pd.DataFrame:
        """One-row model summary in broom's ``glance(lm)`` layout."""
        from ._lm_after import glance

        return glance(self)

    def augment(self, data: pd.DataFrame | None = None) -> pd.DataFrame:
        """The rows used with ``.fitted``, ``.resid``, ``.hat``, ``.sigma``, ``.cooksd``,
        ``.std.resid`` (broom's ``augment(lm)``); the data's columns when given."""
        from ._lm_after import augment

        return augment(self, data)

    def _repr_html_(self) -> str:
        from ._lm_after import fit_html

        return fit_html(self)


class LmSummary:
    """The printed summary of an :class:`LmFit`, laid out as R's ``print.summary.lm``.

    Parameters
    ----------
    fit
        The fit.
    digits
        R's ``digits`` (``max(3, getOption("digits") - 3)`` = 4).
    rename
        Optional function applied to the coefficient names in the printed table.
    """

    def __init__(self, fit: LmFit, digits: int = 4,
                 rename: Callable[[str], str] | None = None):
        self.fit = fit
        self.digits = digits
        self.rename = rename

    def _call(self) -> str:
        fit = self.fit
        args = [f"formula = {fit.formula}"]
        if fit.data_name:
            args.append(f"data = {fit.data_name}")
        if fit.weights_name:
            args.append(f"weights = {fit.weights_name}")
        return "lm(" + ", ".join(args) + ")"

    def _residuals(self) -> str:
        from ._summary import format_named_vector, format_r, quantile7, zapsmall

        fit = self.fit
        weighted = fit.design.weights is not None
        r = fit._resid * np.sqrt(fit._w) if weighted else fit._resid
        if fit.n_zero_weight:
            r = np.concatenate([r, np.zeros(fit.n_zero_weight)])
        head = ("Weighted " if weighted and np.ptp(fit._w) > 0 else "") + "Residuals:\n"
        rdf = fit.df_residual
        if rdf > 5:
            q = zapsmall(quantile7(r), self.digits + 1)
            return head + format_named_vector(format_r(q, self.digits),
                                              ["Min", "1Q", "Median", "3Q", "Max"])
        if rdf > 0:
            names = [str(i) for i in fit.design.row_index]
            return head + format_named_vector(format_r(r, self.digits), names)
        return (head + f"ALL {fit.nobs} residuals are 0: no residual degrees of "
                "freedom!\n")

    def _coefficients(self) -> str:
        from ._summary import format_coefmat

        fit = self.fit
        if fit.rank == 0 and not fit.aliased:
            return "\nNo Coefficients\n"
        k = len(fit.aliased)
        head = ("\nCoefficients: (" + f"{k} not defined because of singularities)\n"
                if k else "\nCoefficients:\n")
        table = fit.coef_table().reindex(fit.coef.index)
        if self.rename is not None:
            table.index = [self.rename(str(i)) for i in table.index]
        return head + format_coefmat(table, digits=self.digits, na_print="NA")

    def _statistics(self) -> str:
        from ._summary import format_pval, format_r

        fit = self.fit
        d = self.digits
        sig = float(f"{fit.sigma:.{d}g}")
        out = (f"\nResidual standard error: {format_r(sig, 7)[0].strip()} on "
               f"{fit.df_residual} degrees of freedom\n")
        k = fit.design.n_dropped - fit.n_zero_weight
        if k:
            out += f"  ({k} observation{'s' if k != 1 else ''} deleted due to missingness)\n"
        fs = fit.fstatistic
        if fs is not None:
            out += (f"Multiple R-squared:  {fit.r_squared:.{d}g},\tAdjusted R-squared:  "
                    f"{fit.adj_r_squared:.{d}g} \nF-statistic: {fs['value']:.{d}g} on "
                    f"{fs['numdf']} and {fs['dendf']} DF,  p-value: "
                    f"{format_pval([fs['p_value']], digits=d)[0]}\n")
        return out

    def text(self) -> str:
        """The printed summary (ending with an empty line, as R's print)."""
        return ("\nCall:\n" + self._call() + "\n\n" + self._residuals() + self._coefficients()
                + self._statistics() + "\n")

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()
