"""The fitted linear mixed model: estimates, variance components, conditional modes.

:class:`LmerFit` is what :func:`mixeff.lmer` returns. It keeps the design, the blocks, the
objective (so inference can re-evaluate the deviance through the fast core) and the
optimiser's record, and derives everything users ask for from them.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg as sla

from . import _kernels as K

if TYPE_CHECKING:  # pragma: no cover
    from ._blocks import Blocks
    from ._design import Design
    from ._lambda import ReStructure
    from ._objective import LmmObjective, Solution
    from ._optimizer import OptSummary

__all__ = ["LmerFit"]

#: lme4's message for a fit on the boundary of the parameter space.
SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"


class LmerFit:
    """A linear mixed model fitted by REML or ML.

    Attributes
    ----------
    formula : str
        The model formula.
    reml : bool
        True for a REML fit.
    theta : numpy.ndarray
        Relative covariance parameters (lme4's ``getME(m, "theta")``).
    sigma : float
        Residual standard deviation.
    objective : float
        REML criterion (REML fit) or deviance (ML fit) at the optimum.
    optsum : OptSummary
        The optimiser's record.
    name : str or None
        The model's name in :func:`mixeff.anova` and :func:`mixeff.aic_table` (set it:
        ``fit.name = "m0"``); None names it by its formula.
    """

    def __init__(self, *, design: Design, structure: ReStructure, blocks: Blocks,
                 objective_fn: LmmObjective, optsum: OptSummary, term_order: list[int],
                 data_name: str | None = None):
        self.design = design
        self.structure = structure
        self.blocks = blocks
        self._obj = objective_fn
        self.optsum = optsum
        self.term_order = term_order
        self.data_name = data_name
        self.reml = objective_fn.reml
        self.formula = design.formula.text
        self.theta = np.asarray(optsum.theta, dtype=float)
        self._sol: Solution = objective_fn.solve(self.theta)
        n, p = blocks.n, blocks.p
        self.objective = float(self._sol.objective)
        self.sigma = float(np.sqrt(self._sol.r2 / ((n - p) if self.reml else n)))
        self.messages: list[str] = list(design.messages) + list(optsum.messages)
        if self.structure.is_singular(self.theta):
            self.messages.append(SINGULAR_MESSAGE)   # lme4's message for a singular fit
        self.timings: dict[str, float] = {}
        self.data = None   # the DataFrame given to lmer (kept by reference), if any
        self.names = "formulaic"   # or "R": how fixef, vcov, coef_table, anova name things
        self.name: str | None = None   # the name in anova() tables

    # -- basic quantities -----------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return int(self.blocks.n)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor (lme4's ``ngrps``)."""
        out: dict[str, int] = {}
        for t in self.structure.terms:
            out.setdefault(t.label, t.nlevels)
        return out

    @property
    def n_evaluations(self) -> int:
        """Objective evaluations used by the optimiser."""
        return int(self.optsum.n_evaluations)

    @property
    def converged(self) -> bool:
        """True when the optimiser succeeded and no convergence check failed."""
        return bool(self.optsum.success) and not self.optsum.messages

    @property
    def is_singular(self) -> bool:
        """lme4's ``isSingular`` (a diagonal theta entry below 1e-4)."""
        return self.structure.is_singular(self.theta)

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects, theta and the residual scale."""
        return int(self.blocks.p + self.structure.ntheta + 1)

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for a REML fit), ``-objective / 2``."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``-2 loglik + 2 npar``."""
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``-2 loglik + log(n) npar``."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def deviance(self) -> float:
        """ML deviance at the optimum of this fit's criterion (lme4's ``deviance``).

        For a REML fit this is the ML deviance evaluated at the REML estimates, as
        ``deviance(m, REML = FALSE)`` in lme4.
        """
        if not self.reml:
            return self.objective
        n = self.blocks.n
        r2 = self._sol.r2
        return float(self._sol.ldL2 + n * (1.0 + np.log(2.0 * np.pi * r2 / n))
                     - self.blocks.sum_log_w)

    def _coef_names(self) -> list[str]:
        """Names of the fixed effects as shown: formulaic's, or R's with ``names="R"``."""
        names = list(self.design.xnames)
        if getattr(self, "names", "formulaic") == "R":
            from ._coding import r_names

            return r_names(self.design.fixed_spec, names)
        return names

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates, indexed by column name (R's with ``names="R"``)."""
        return pd.Series(self._sol.beta.copy(), index=self._coef_names(), name="Estimate")

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates, ``sigma^2 (R_X' R_X)^{-1}``."""
        p = self.blocks.p
        names = self._coef_names()
        if p == 0:
            return pd.DataFrame(np.zeros((0, 0)), index=names, columns=names)
        RXinv = sla.solve_triangular(self._sol.RX, np.eye(p))
        V = self.sigma**2 * (RXinv @ RXinv.T)
        return pd.DataFrame(V, index=names, columns=names)

    # -- random effects -------------------------------------------------------------
    @cached_property
    def _u(self) -> np.ndarray:
        return self._obj.u_hat(self._sol)

    @cached_property
    def _b(self) -> np.ndarray:
        return self._obj._lambda_t(self._sol.tmpl, self._u, False)

    def _term_b(self, ti: int) -> np.ndarray:
        t = self.structure.terms[ti]
        return self._b[t.offset : t.offset + t.size].reshape(t.nlevels, t.k)

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor.

        Terms sharing a grouping factor (as ``(1|g) + (0 + x|g)``) are joined side by side,
        as lme4 does. With ``condvar=True`` each frame carries the conditional covariance
        matrices ``sigma^2 Lambda (Lambda'Z'WZ Lambda + I)^{-1} Lambda'`` (diagonal blocks,
        one ``k x k`` matrix per level, as lme4's ``postVar``) in ``frame.attrs["condvar"]``
        (an array ``levels x k x k``) and the conditional SDs in ``frame.attrs["condsd"]``.
        """
        blocksinv = self._obj.condvar_blocks(self.theta) if condvar else None
        out: dict[str, pd.DataFrame] = {}
        cvs: dict[str, list[np.ndarray]] = {}
        for ti, t in enumerate(self.structure.terms):
            levels = self.design.terms[self.term_order[ti]].levels
            df = pd.DataFrame(self._term_b(ti), index=pd.Index(levels, name=t.label),
                              columns=list(t.colnames))
            if t.label in out:
                out[t.label] = pd.concat([out[t.label], df], axis=1)
            else:
                out[t.label] = df
            if blocksinv is not None:
                T = self._sol.tmpl[ti, : t.k, : t.k]
                cv = self.sigma**2 * np.einsum("ij,mjl,kl->mik", T, blocksinv[ti], T)
                cvs.setdefault(t.label, []).append(cv)
        if blocksinv is not None:
            for lab, parts in cvs.items():
                m = parts[0].shape[0]
                ktot = sum(p.shape[1] for p in parts)
                full = np.zeros((m, ktot, ktot))
                o = 0
                for p in parts:
                    full[:, o : o + p.shape[1], o : o + p.shape[1]] = p
                    o += p.shape[1]
                out[lab].attrs["condvar"] = full
                out[lab].attrs["condsd"] = pd.DataFrame(
                    np.sqrt(np.einsum("mii->mi", full)), index=out[lab].index,
                    columns=out[lab].columns)
        return out

    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(m))``.

        Columns ``group``, ``name1``, ``name2``, ``variance``, ``sd_cor``: per term one row
        per variance (``name2`` missing, ``sd_cor`` the SD), then one per correlation
        (``variance`` the covariance, ``sd_cor`` the correlation); the residual last. A
        grouping factor with several terms is named ``g``, ``g.1``, ... as in R.
        """
        rows = []
        covs = self.structure.covariances(self.theta, self.sigma)
        seen: dict[str, int] = {}
        for t, S in zip(self.structure.terms, covs, strict=True):
            # repeated grouping factors are made unique as R's make.unique: g, g.1, g.2
            nseen = seen.get(t.label, 0)
            seen[t.label] = nseen + 1
            group = t.label if nseen == 0 else f"{t.label}.{nseen}"
            sd = np.sqrt(np.diag(S))
            for i in range(t.k):
                rows.append((group, t.colnames[i], None, S[i, i], sd[i]))
            for i in range(t.k):
                for j in range(i + 1, t.k):
                    denom = sd[i] * sd[j]
                    cor = S[i, j] / denom if denom > 0 else np.nan
                    rows.append((group, t.colnames[i], t.colnames[j], S[i, j], cor))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        out = pd.DataFrame(rows, columns=["group", "name1", "name2", "variance", "sd_cor"])
        # the same dtype whatever the model: a missing name is None (R's NA), never NaN
        for i, c in enumerate(("group", "name1", "name2")):
            out[c] = pd.Series([r[i] for r in rows], dtype=object)
        return out

    def r2(self, tolerance: float = 1e-5) -> pd.Series:
        """Marginal and conditional R^2 (Nakagawa et al. 2017), as ``performance::r2_nakagawa``.

        Random slopes are included: a term's variance is the mean over rows of
        ``z_i' Sigma z_i``. A singular fit (a theta element with lower bound 0 below
        ``tolerance``) has no random-effect variance: the conditional R^2 is NaN (with a
        warning, as performance). Returns a Series ``conditional``, ``marginal``; its
        ``attrs["variance"]`` holds the variance parts (see :mod:`mixeff._r2`).
        """
        from ._r2 import r2_nakagawa

        return r2_nakagawa(self, tolerance)

    def icc(self, tolerance: float = 1e-5) -> pd.Series:
        """Intraclass correlation, adjusted and unadjusted, as ``performance::icc``.

        ``adjusted = var_random / (var_random + sigma^2)``, ``unadjusted = var_random /
        (var_fixed + var_random + sigma^2)``, with the variances of :meth:`r2` (random
        slopes included); NaN for a singular fit. Returns a Series ``adjusted``,
        ``unadjusted``.
        """
        from ._r2 import icc

        return icc(self, tolerance)

    def emmeans(self, specs, by=None, at=None, ddf: str | None = None,
                level: float = 0.95, data=None):
        """Estimated marginal means, as R's ``emmeans::emmeans(m, ~ specs | by)``.

        Parameters
        ----------
        specs
            A data column (or list of columns) whose levels get a mean, e.g. ``"temp"``;
            or R's formula, ``"~ temp | week"``.
        by
            Column(s) whose levels split the means (and their contrasts) into groups.
        at
            Values of variables in the reference grid, e.g. ``{"week": 3}`` or
            ``{"week": [0, 3, 7]}``; numeric covariates are otherwise at their mean
            and factors at all levels (averaged over with equal weights).
        ddf
            ``"Kenward-Roger"`` (default for REML fits, as emmeans), ``"Satterthwaite"``
            (default for ML fits) or ``"asymptotic"`` (the default above 3000
            observations, as emmeans).
        level
            Confidence level.
        data
            The data the model was fitted to, when the fit keeps no reference to it.

        Returns
        -------
        EMMeans
            ``.table`` the means; ``.contrast("pairwise" | "trt.vs.ctrl" | {name:
            coefficients}, adjust=...)`` and ``.pairs()`` their comparisons (see
            :mod:`mixeff._emmeans`).
        """
        from ._emmeans import EMMeans

        return EMMeans(self, specs, by=by, at=at, ddf=ddf, level=level, data=data)

    # -- fitted values and residuals ------------------------------------------------
    def _linear_predictor(self, include_re: bool = True) -> np.ndarray:
        if getattr(self, "_dask_info", None) is not None:   # rows stay in the partitions
            self._dask_info.unavailable("predictions and simulations on the fitted rows")
        d = self.design
        eta = d.X @ self._sol.beta if self.blocks.p else np.zeros(self.nobs)
        if include_re:
            for ti in range(len(self.structure.terms)):
                td = d.terms[self.term_order[ti]]
                eta = eta + K.term_linear_predictor(
                    np.ascontiguousarray(td.codes, dtype=np.int64),
                    np.ascontiguousarray(td.matrix, dtype=np.float64), self._term_b(ti))
        if d.offset is not None:
            eta = eta + d.offset
        return eta

    def fitted(self) -> pd.Series:
        """Fitted values ``X beta + Z b (+ offset)`` for the rows used."""
        if getattr(self, "_dask_info", None) is not None:   # a Dask Series
            return self._dask_info.fitted(self)
        from ._design import row_series

        return row_series(self.design, self._linear_predictor(), "fitted")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:
        """Residuals: ``"response"`` (y - fitted) or ``"pearson"`` (times sqrt(w)).

        With ``scaled=True`` they are divided by sigma (as the "Scaled residuals" of
        lme4's summary).
        """
        if getattr(self, "_dask_info", None) is not None:   # a Dask Series
            return self._dask_info.residuals(self, type, scaled)
        r = self.design.y - self._linear_predictor()
        if type == "pearson":
            if self.design.weights is not None:
                r = r * np.sqrt(self.design.weights)
        elif type != "response":
            raise ValueError("type must be 'response' or 'pearson'")
        if scaled:
            r = r / self.sigma
        from ._design import row_series

        return row_series(self.design, r, "residuals")

    # -- inference (lmerTest) --------------------------------------------------------
    @cached_property
    def _satt(self):
        from ._satterthwaite import satterthwaite_info

        return satterthwaite_info(self)

    def coef_table(self, ddf: str = "Satterthwaite") -> pd.DataFrame:
        """Fixed-effects table with t tests, as lmerTest's ``summary(m)$coefficients``.

        Parameters
        ----------
        ddf
            ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` or ``"lme4"`` (no df and
            no p-values, as lme4's own summary).

        Returns
        -------
        pandas.DataFrame
            Indexed by fixed-effect name; columns ``Estimate``, ``Std. Error``, ``df``,
            ``t value``, ``Pr(>|t|)`` (the last two absent for ``"lme4"``).
        """
        if ddf == "Kenward-Roger" and getattr(self, "_dask_info", None) is not None:
            self._dask_info.check_kenward_roger()
        names = self._coef_names()
        beta = self._sol.beta
        if ddf == "lme4":
            se = np.sqrt(np.diag(self.vcov().to_numpy()))
            return pd.DataFrame({"Estimate": beta, "Std. Error": se, "t value": beta / se},
                                index=names)
        if ddf == "Satterthwaite":
            from ._satterthwaite import contest_1d

            rows = [contest_1d(self._satt, beta, e) for e in np.eye(len(names))]
            return pd.DataFrame(rows, index=names)
        if ddf == "Kenward-Roger":
            from ._kenward_roger import kr_coef_table

            out = kr_coef_table(self)
            out.index = names
            return out
        raise ValueError("ddf must be 'Satterthwaite', 'Kenward-Roger' or 'lme4'")

    def contest(self, L, ddf: str = "Satterthwaite", joint: bool = True) -> pd.DataFrame:
        """Test a contrast matrix ``L beta = 0`` (lmerTest's ``contest``).

        Parameters
        ----------
        L
            A vector (one contrast) or a matrix with one row per contrast and one column
            per fixed effect (a DataFrame with fixed-effect names as columns is
            reordered to match).
        ddf
            ``"Satterthwaite"`` or ``"Kenward-Roger"``.
        joint
            One F test of all rows (default) or a t test per row.

        Returns
        -------
        pandas.DataFrame
            The F test (``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``,
            ``Pr(>F)``) or the t tests (as :meth:`coef_table`).
        """
        if ddf == "Kenward-Roger" and getattr(self, "_dask_info", None) is not None:
            self._dask_info.check_kenward_roger()
        names = list(self.design.xnames)
        if isinstance(L, pd.DataFrame):
            alias = dict(zip(self._coef_names(), names, strict=True))
            L = L.rename(columns=lambda c: alias.get(c, c))
            missing = [c for c in L.columns if c not in names]
            if missing:
                raise ValueError(f"unknown fixed effects in L: {missing}")
            L = L.reindex(columns=names, fill_value=0.0).to_numpy(float)
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if L.shape[1] != len(names):
            raise ValueError(f"L has {L.shape[1]} columns; the model has {len(names)}"
                             " fixed effects")
        beta = self._sol.beta
        if ddf == "Kenward-Roger":
            from ._kenward_roger import kr_contest

            return kr_contest(self, L, joint=joint)
        if ddf != "Satterthwaite":
            raise ValueError("ddf must be 'Satterthwaite' or 'Kenward-Roger'")
        from ._satterthwaite import contest_1d, contest_md

        if joint:
            return pd.DataFrame([contest_md(self._satt, beta, L, self.sigma)])
        return pd.DataFrame([contest_1d(self._satt, beta, l) for l in L])

    def anova(self, type: int | str = 3, ddf: str = "Satterthwaite") -> pd.DataFrame:
        """ANOVA table of the fixed-effect terms, as lmerTest's ``anova(m)``.

        Parameters
        ----------
        type
            1, 2 or 3 (also ``"I"``, ``"II"``, ``"III"``). Type III hypotheses do not
            depend on the contrast coding.
        ddf
            ``"Satterthwaite"`` (default), ``"Kenward-Roger"`` or ``"lme4"`` (F values
            without denominator df, as lme4's own ``anova``).

        Returns
        -------
        pandas.DataFrame
            Indexed by term label; columns ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
            ``F value``, ``Pr(>F)``. Its ``attrs["heading"]`` holds lmerTest's title.
        """
        if ddf == "Kenward-Roger" and getattr(self, "_dask_info", None) is not None:
            self._dask_info.check_kenward_roger()
        from ._anova import anova_table

        table = anova_table(self, type=type, ddf=ddf)
        if getattr(self, "names", "formulaic") == "R":
            from ._coding import r_term_label

            hyp = table.attrs.get("hypotheses")
            table = table.rename(index=r_term_label)
            if hyp is not None:
                cols = self._coef_names()
                table.attrs["hypotheses"] = {
                    r_term_label(k): v.set_axis(cols, axis=1) for k, v in hyp.items()}
        return table

    def ranova(self, reduce_terms: bool = True) -> pd.DataFrame:
        """Likelihood-ratio tests of the random-effect terms (lmerTest's ``ranova``).

        With ``reduce_terms=True`` a term ``(1 + x | g)`` is reduced to ``(1 | g)`` and a
        scalar term removed; with False every term is removed whole.
        """
        if getattr(self, "_dask_info", None) is not None:   # from the blocks, mostly
            return self._dask_info.ranova(self, reduce_terms)
        from ._compare import ranova

        return ranova(self, reduce_terms=reduce_terms)

    def refit(self, new_response=None, *, reml: bool | None = None) -> LmerFit:
        """Fit again with a new response and/or by the other criterion (lme4's ``refit``).

        Only ``Z'Wy``, ``X'Wy`` and ``y'Wy`` are recomputed for a new response; the design
        and the other blocks are reused and the optimiser starts from this fit's theta.
        Failed convergence checks and a singular result are warned, as by
        :func:`mixeff.lmer` (:class:`~mixeff.ConvergenceWarning`,
        :class:`~mixeff.SingularFitWarning`).
        """
        from ._predict import refit
        from ._warnings import warn_fit

        new = refit(self, new_response, reml=reml)
        warn_fit(new)
        return new

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False
                ) -> pd.Series:
        """Predictions as lme4's ``predict``: fitted values, new data, chosen random terms.

        ``re_form=None`` uses all random effects, ``"~0"`` none (population level), a
        formula such as ``"~(1 | Subject)"`` only those terms. Unseen grouping levels in
        ``newdata`` are an error unless ``allow_new_levels=True`` (their effect is 0).
        """
        from ._predict import predict

        return predict(self, newdata, re_form, allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """Responses simulated from the fitted model (lme4's ``simulate``)."""
        from ._predict import simulate

        return simulate(self, nsim, seed, use_u)

    def update(self, formula: str | None = None, data=None, **kwargs) -> LmerFit:
        """Refit with an updated formula, R-style (``". ~ . - x"``, ``"~ . + (1|g)"``)."""
        from ._predict import update

        return update(self, formula, data, **kwargs)

    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = False,
             conf_level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Estimates in broom.mixed's ``tidy`` layout (one row per parameter)."""
        from ._tidy import tidy

        return tidy(self, effects, conf_int, conf_level, **kwargs)

    def glance(self) -> pd.DataFrame:
        """One-row model summary in broom.mixed's ``glance`` layout."""
        from ._tidy import glance

        return glance(self)

    def augment(self, data=None, *, influence: bool = True) -> pd.DataFrame:
        """The data with fitted values, residuals and influence (broom.mixed's ``augment``).

        For a fit from Dask data: a Dask DataFrame, computed partition by partition.
        """
        if getattr(self, "_dask_info", None) is not None:
            return self._dask_info.augment(self, influence)
        from ._tidy import augment

        return augment(self, data, influence=influence)

    def hatvalues(self) -> pd.Series:
        """Diagonal of the hat matrix, as lme4's ``hatvalues``."""
        if getattr(self, "_dask_info", None) is not None:   # a Dask Series
            return self._dask_info.hatvalues(self)
        from ._tidy import hat_values

        return hat_values(self)

    def cooks_distance(self) -> pd.Series:
        """Cook's distances, as lme4's ``cooks.distance``."""
        if getattr(self, "_dask_info", None) is not None:   # a Dask Series
            return self._dask_info.cooks_distance(self)
        from ._tidy import cooks_distance

        return cooks_distance(self)

    def _repr_html_(self) -> str:
        from ._tidy import fit_html

        return fit_html(self)

    def confint(self, parm=None, level: float = 0.95, method: str = "profile", **kwargs
                ) -> pd.DataFrame:
        """Confidence intervals of variance parameters and fixed effects, as lme4's.

        Parameters
        ----------
        parm
            Names of the parameters (lme4's ``.sig01``..., ``.sigma`` and fixed-effect
            names); all by default.
        level
            Confidence level.
        method
            ``"profile"`` (likelihood profile, lme4's default), ``"Wald"`` or ``"boot"``
            (parametric bootstrap; ``nsim``, ``seed`` and ``progress`` keywords).

        Returns
        -------
        pandas.DataFrame
            One row per parameter, columns with the lower and upper percentages
            (``"2.5 %"``, ``"97.5 %"``).
        """
        from ._confint import confint

        if getattr(self, "names", "formulaic") != "R":
            return confint(self, parm=parm, level=level, method=method, **kwargs)
        alias = dict(zip(self._coef_names(), self.design.xnames, strict=True))
        if isinstance(parm, str):
            parm = alias.get(parm, parm)
        elif parm is not None and not isinstance(parm, (int, np.integer)):
            parm = [alias.get(p, p) if isinstance(p, str) else p for p in parm]
        out = confint(self, parm=parm, level=level, method=method, **kwargs)
        back = {v: k for k, v in alias.items()}
        return out.rename(index=lambda nm: back.get(nm, nm))

    # -- presentation ---------------------------------------------------------------
    def summary(self, ddf: str | None = None, digits: int = 4,
                correlation: bool | None = None, signif_stars: bool = True):
        """A summary laid out like lme4's / lmerTest's ``summary(lmer(...))`` (print it).

        Parameters
        ----------
        ddf
            ``None`` (lmerTest's layout with Satterthwaite t-tests), ``"Satterthwaite"``,
            ``"Kenward-Roger"`` or ``"lme4"`` (lme4's own layout, t values without df),
            as lmerTest's ``summary(m, ddf = ...)``.
        digits
            Significant digits (R's ``max(3, getOption("digits") - 3)`` = 4).
        correlation
            Print the correlation of the fixed effects: None for R's rule (at most 12
            fixed effects), True or False.
        signif_stars
            Significance stars beside the p values.

        Returns
        -------
        LmerSummary
        """
        from ._summary import LmerSummary

        out = LmerSummary(self, ddf=ddf, digits=digits, correlation=correlation,
                          signif_stars=signif_stars)
        if getattr(self, "_dask_info", None) is not None:   # exact, without the rows
            from functools import cache

            out.residual_quantiles = cache(lambda: pd.Series(
                self._dask_info.residual_quantiles(self),
                index=["Min", "1Q", "Median", "3Q", "Max"]))
        return out

    def __repr__(self) -> str:
        method = "REML" if self.reml else "ML"
        return (f"<LmerFit {method} {self.formula!r}: nobs={self.nobs},"
                f" objective={self.objective:.4f}>")

    def to_dict(self) -> dict:
        """The main numbers as plain Python objects (for JSON)."""
        vc = self.varcorr()
        vc = vc.astype(object).where(pd.notna(vc), None)
        return {
            "formula": self.formula,
            "reml": self.reml,
            "fixef": {k: float(v) for k, v in self.fixef.items()},
            "fixef_se": dict(zip(self.design.xnames,
                                 map(float, np.sqrt(np.diag(self.vcov().values))),
                                 strict=True)),
            "objective": self.objective,
            "loglik": self.loglik,
            "aic": self.aic,
            "bic": self.bic,
            "sigma": self.sigma,
            "theta": dict(zip(self.structure.theta_names(), map(float, self.theta),
                              strict=True)),
            "varcorr": vc.to_dict(orient="records"),
            "nobs": self.nobs,
            "ngroups": self.ngroups,
            "is_singular": self.is_singular,
            "converged": self.converged,
            "n_evaluations": self.n_evaluations,
            "optimizer": {"method": self.optsum.method, "code": self.optsum.code,
                          "message": self.optsum.message,
                          "n_gradients": self.optsum.n_gradients},
            "messages": self.messages,
        }
