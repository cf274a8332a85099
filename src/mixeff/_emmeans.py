"""Estimated marginal means and their contrasts, as R's ``emmeans``.

``fit.emmeans("temp")`` builds emmeans' *reference grid*: every level of each factor of
the fixed part, each numeric covariate at its mean over the fitted rows (or at the values
given by ``at=``). The model's prediction at each grid point is ``x_g' beta``; an
estimated marginal mean (EMM) of a level of ``temp`` averages these predictions over
the grid points of that level, with equal weights over the other factors' levels (and
over several ``at=`` values of a covariate not asked for). Each EMM is thus a linear
function ``l' beta`` of the fixed effects, and so is every contrast of EMMs, ``c' L
beta``; their standard errors and degrees of freedom are those of a contrast of the fixed
effects:

* ``ddf="Kenward-Roger"`` (the default for REML fits, as emmeans for lmer models): the
  adjusted covariance of pbkrtest's ``vcovAdj`` and its ``Lb_ddf`` df
  (:mod:`._kenward_roger`);
* ``ddf="Satterthwaite"`` (the default for ML fits): ``vcov`` and lmerTest's
  Satterthwaite df of ``l' beta`` (:mod:`._satterthwaite`);
* ``ddf="asymptotic"``: ``vcov`` and infinite df (z tests); the default, as in
  emmeans, for models of more than 3000 observations.

Multiplicity adjustments, within each ``by`` group as emmeans does: ``"tukey"`` (the
studentized range with as many means as the group has; for families other than one set
of pairwise comparisons emmeans, and mixeff, use ``"sidak"`` instead), ``"dunnettx"``
(emmeans' approximation of Dunnett's test, the default of ``trt.vs.ctrl``),
``"sidak"``, ``"bonferroni"``, ``"holm"`` (its intervals are Bonferroni's, as emmeans'
are) and ``"none"``. Confidence intervals use the same adjustment.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = ["EMMeans", "emmeans", "ADJUSTMENTS", "CONTRASTS"]

#: The values of ``adjust=``.
ADJUSTMENTS = ("tukey", "dunnettx", "sidak", "bonferroni", "holm", "none")
#: The named contrast families.
CONTRASTS = ("pairwise", "revpairwise", "trt.vs.ctrl")
_DDF = {"kenward-roger": "Kenward-Roger", "satterthwaite": "Satterthwaite",
        "asymptotic": "asymptotic"}
_C_CALL = re.compile(r"^C\(\s*`?([^,`()]+?)`?\s*(?:,.*)?\)$", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _names(x: str | Sequence[str] | None, what: str) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    out = list(x)
    if not all(isinstance(v, str) for v in out):
        raise DataError(f"{what} must be a column name or a list of column names")
    return out


# -- the reference grid -------------------------------------------------------------------

def _factor_levels(fit: LmerFit) -> dict[str, list]:
    """Levels of the data columns the fixed part codes as factors (in the fit's order)."""
    spec = fit.design.fixed_spec
    state = getattr(spec, "encoder_state", None) or {}
    out: dict[str, list] = {}
    for expr, (kind, st) in state.items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in st:
            continue
        m = _C_CALL.match(expr)
        col = m.group(1).strip() if m else expr
        out.setdefault(col, list(st["categories"]))
    return out


def _fitted_rows(fit: LmerFit, data: pd.DataFrame | None) -> pd.DataFrame:
    if data is None:
        data = getattr(fit, "data", None)
    if data is None:
        raise DataError("emmeans() needs the data the model was fitted to: pass data=... "
                        "(the fit keeps no reference to its data)")
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    try:
        return data.loc[fit.design.row_index]
    except KeyError:
        raise DataError("data does not hold the rows the model was fitted to (their index "
                        "labels are missing)") from None


def reference_grid(fit: LmerFit, at: Mapping[str, Any] | None = None,
                   data: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """emmeans' reference grid of a fit: one row per combination of the variables' values.

    Factors take all their levels, numeric variables their mean over the fitted rows;
    ``at`` replaces either by given values. Returns the grid (the first variable varying
    fastest, as R's ``expand.grid``) and the names of the factor variables.
    """
    from ._design import _formulaic_names, _known_function

    if getattr(fit, "_dask_info", None) is not None:
        fit._dask_info.unavailable("emmeans()")
    if fit.design.fixed_spec is None:
        raise DataError("this fit has no model spec of its fixed part (made from arrays?), "
                        "so emmeans() cannot evaluate it on a reference grid")
    at = dict(at or {})
    variables = list(dict.fromkeys(_formulaic_names(fit.design.formula.fixed)[0]))
    unknown = [k for k in at if k not in variables]
    if unknown:
        raise DataError(f"at= names {', '.join(map(repr, unknown))}, not a variable of the "
                        f"fixed part (its variables: {', '.join(map(repr, variables))})")
    levels = _factor_levels(fit)
    rows = None
    values: dict[str, list] = {}
    factors: list[str] = []
    for v in variables:
        if v in levels:
            factors.append(v)
            if v in at:
                given = list(np.atleast_1d(at[v]))
                known = {str(lv): lv for lv in levels[v]}
                bad = [g for g in given if str(g) not in known]
                if bad:
                    raise DataError(f"at={{{v!r}: ...}}: level(s) {bad} not among the "
                                    f"levels of {v!r} ({levels[v]})")
                values[v] = [known[str(g)] for g in given]
            else:
                values[v] = list(levels[v])
            continue
        if v in at:
            values[v] = [float(x) for x in np.atleast_1d(at[v])]
            continue
        if rows is None:
            rows = _fitted_rows(fit, data)
        if v not in rows.columns:
            if _known_function(v):   # e.g. the "np" of np.log(x)
                continue
            raise DataError(f"the data have no column {v!r}")
        col = rows[v]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            factors.append(v)
            values[v] = sorted(pd.unique(col.dropna()).tolist())
        else:
            values[v] = [float(np.mean(col.to_numpy(dtype=float)))]
    names = [v for v in variables if v in values]
    # expand.grid: the first variable varies fastest
    combos = list(itertools.product(*[values[v] for v in reversed(names)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=names)
    return grid, factors


def _grid_matrix(fit: LmerFit, grid: pd.DataFrame) -> np.ndarray:
    """The fixed-effects model matrix of the grid rows (columns as ``fit.design.xnames``)."""
    from ._design import _formulaic_names, _rename
    from ._predict import _check_categories, _materialize, _NewData

    d = fit.design
    what = "the fixed-effects part"
    nd = _NewData(fit, grid)
    cols = nd.variables(_formulaic_names(d.formula.fixed)[0], what)
    frame = nd.frame(cols, what)
    _check_categories(d.fixed_spec, nd)
    mm = _materialize(d.fixed_spec, frame, what)
    where = {nm: j for j, nm in enumerate(_rename(mm.columns))}
    return np.column_stack([mm.iloc[:, where[nm]].to_numpy(dtype=np.float64)
                            for nm in d.xnames]) if d.xnames else np.zeros((len(grid), 0))


# -- inference for rows of L ----------------------------------------------------------------

#: emmeans' ``pbkrtest.limit`` and ``lmerTest.limit``: above this many observations its
#: default df are asymptotic.
DF_LIMIT = 3000


def _check_ddf(fit: LmerFit, ddf: str | None) -> str:
    if ddf is None:
        if fit.nobs > DF_LIMIT:
            return "asymptotic"
        return "Kenward-Roger" if fit.reml else "Satterthwaite"
    key = str(ddf).lower().replace("_", "-")
    if key not in _DDF:
        raise DataError("ddf must be 'Kenward-Roger', 'Satterthwaite' or 'asymptotic', "
                        f"not {ddf!r}")
    return _DDF[key]


def _estimates(fit: LmerFit, L: np.ndarray, ddf: str) -> pd.DataFrame:
    """Estimate, SE and df of each row of ``L`` (``l' beta``)."""
    if ddf == "asymptotic":
        V = fit.vcov().to_numpy()
        est = L @ fit._sol.beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))
        return pd.DataFrame({"estimate": est, "SE": se, "df": np.full(len(L), np.inf)})
    t = fit.contest(L, ddf=ddf, joint=False)
    return pd.DataFrame({"estimate": t["Estimate"].to_numpy(float),
                         "SE": t["Std. Error"].to_numpy(float),
                         "df": t["df"].to_numpy(float)})


def _t_quantile(p: float, df: np.ndarray) -> np.ndarray:
    from scipy import stats

    return np.where(np.isinf(df), stats.norm.ppf(p), stats.t.ppf(p, np.where(
        np.isinf(df), 1.0, df)))


def _grouped(df: np.ndarray, f) -> np.ndarray:
    """``f(df)`` evaluated once per distinct df (to 10 significant digits).

    The studentized-range quantiles take ~0.1 s each; the df of a family's contrasts
    often agree to rounding, and a relative change of 1e-10 in df moves the quantile by
    far less than its own accuracy.
    """
    out = np.empty(len(df))
    keys = [float(f"{d:.10g}") for d in df]
    cache: dict[float, float] = {}
    for i, k in enumerate(keys):
        if k not in cache:
            cache[k] = f(float(df[i]))
        out[i] = cache[k]
    return out


def _ptukey_sf(q: float, k: int, df: float) -> float:
    from scipy import stats

    if not np.isfinite(q):
        return np.nan
    return float(stats.studentized_range.sf(q, k, df if np.isfinite(df) else 1e7))


def _qtukey(level: float, k: int, df: float) -> float:
    from scipy import stats

    return float(stats.studentized_range.ppf(level, k, df if np.isfinite(df) else 1e7))


def _pdunnx(x: float, k: int, df: float) -> float:
    """emmeans' approximation of Dunnett's distribution function, k comparisons."""
    from scipy import stats

    twt = (k - 1) / k
    ntuk = (1 + np.sqrt(1 + 8 * k)) / 2
    tukey = 1.0 - _ptukey_sf(np.sqrt(2.0) * x, ntuk, df)
    sidak = stats.f.cdf(x * x, 1, df if np.isfinite(df) else 1e7) ** k
    return twt * tukey + (1 - twt) * sidak


def _qdunnx(level: float, k: int, df: float) -> float:
    from scipy import optimize, stats

    if k < 1.005:
        return float(stats.t.ppf(1 - 0.5 * (1 - level), df))
    ntuk = (1 + np.sqrt(1 + 8 * k)) / 2
    lo = _qtukey(level, ntuk, df) / np.sqrt(2.0)
    hi = float(np.sqrt(stats.f.ppf(level ** (1 / k), 1, df)))
    a, b = min(lo, hi), max(lo, hi)
    if b - a < 1e-12:
        return a
    return float(optimize.brentq(lambda x: _pdunnx(x, k, df) - level, a, b, xtol=1e-12))


def _adjust(t: np.ndarray, df: np.ndarray, adjust: str, level: float, nmeans: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted two-sided p values and CI half-width multipliers of one family."""
    from scipy import stats

    m = len(t)
    dfs = np.where(np.isinf(df), np.inf, df)
    with np.errstate(invalid="ignore"):
        p = np.where(np.isinf(dfs), 2 * stats.norm.sf(np.abs(t)),
                     2 * stats.t.sf(np.abs(t), np.where(np.isinf(dfs), 1.0, dfs)))
    alpha = 1.0 - level
    if adjust == "none" or m <= 1 and adjust != "tukey":
        return p, _t_quantile(1 - alpha / 2, dfs)
    if adjust == "bonferroni":
        return np.minimum(1.0, m * p), _t_quantile(1 - alpha / (2 * m), dfs)
    if adjust == "holm":
        order = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        out = np.empty(m)
        out[order] = adj
        return out, _t_quantile(1 - alpha / (2 * m), dfs)
    if adjust == "sidak":
        return (1.0 - (1.0 - p) ** m,
                _t_quantile(1 - (1 - level ** (1 / m)) / 2, dfs))
    if adjust == "tukey":
        pt = np.array([_ptukey_sf(np.sqrt(2.0) * abs(ti), nmeans, d)
                       for ti, d in zip(t, dfs, strict=True)])
        crit = _grouped(dfs, lambda d: _qtukey(level, nmeans, d) / np.sqrt(2.0))
        return pt, crit
    if adjust == "dunnettx":
        pd_ = np.array([1.0 - _pdunnx(abs(ti), m, d) for ti, d in zip(t, dfs, strict=True)])
        crit = _grouped(dfs, lambda d: _qdunnx(level, m, d))
        return pd_, crit
    raise DataError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, "
                    f"not {adjust!r}")  # pragma: no cover - checked before


# -- the EMM object ------------------------------------------------------------------------

def _parse_specs(text: str) -> tuple[list[str], list[str]]:
    """``"~ a * b | c"`` (R's ``~ a * b | c``) as specs ``[a, b]`` and by ``[c]``."""
    body = text.strip()
    if not body.startswith("~"):
        raise DataError(f"specs formula must start with '~': {text!r}")
    left, _, right = body[1:].partition("|")

    def names(part: str) -> list[str]:
        out = [p.strip() for p in re.split(r"[*:+]", part) if p.strip()]
        bad = [p for p in out if not re.fullmatch(r"[\w.]+", p)]
        if bad:
            raise DataError(f"specs formula {text!r}: {bad[0]!r} is not a column name")
        return out

    specs = names(left)
    if not specs:
        raise DataError(f"specs formula {text!r} names no variable")
    return specs, names(right)


def _label(var: str, value: Any) -> str:
    """emmeans' label of a level: the variable's name before a number-like level."""
    if isinstance(value, float | np.floating):
        s = np.format_float_positional(float(value), trim="-")
    else:
        s = str(value)
    return f"{var}{s}" if _NUMBER.match(s) else s


class EMMeans:
    """Estimated marginal means of a fitted model (``emmeans::emmeans``).

    Made by :meth:`mixeff.LmerFit.emmeans`. ``str()`` prints the table.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per mean: the ``specs`` and ``by`` columns, ``emmean``, ``SE``, ``df``,
        ``lower.CL``, ``upper.CL`` (emmeans' ``summary`` columns).
    L : pandas.DataFrame
        The rows ``l`` with ``emmean = l' beta`` (columns: fixed-effect names).
    grid : pandas.DataFrame
        The reference grid.
    ddf : str
        ``"Kenward-Roger"``, ``"Satterthwaite"`` or ``"asymptotic"``.
    level : float
        Confidence level of the intervals.
    """

    def __init__(self, fit: LmerFit, specs, by=None, at=None, ddf: str | None = None,
                 level: float = 0.95, data: pd.DataFrame | None = None):
        self.fit = fit
        if isinstance(specs, str) and "~" in specs:
            specs, by2 = _parse_specs(specs)
            if by2 and by is not None:
                raise DataError("give by= or '| by' in the specs formula, not both")
            by = by2 or by
        self.specs = _names(specs, "specs")
        self.by = _names(by, "by")
        if not self.specs:
            raise DataError("emmeans() needs at least one variable in specs")
        self.ddf = _check_ddf(fit, ddf)
        self.notes: list[str] = []
        if ddf is None and self.ddf == "asymptotic":
            self.notes.append(f"df calculations disabled because the number of observations "
                              f"exceeds {DF_LIMIT} (as emmeans); pass ddf= to enable them")
        if not 0 < level < 1:
            raise DataError(f"level must lie between 0 and 1, not {level!r}")
        self.level = float(level)
        grid, factors = reference_grid(fit, at, data)
        self.grid = grid
        self._factors = factors
        both = self.specs + self.by
        missing = [v for v in both if v not in grid.columns]
        if missing:
            raise DataError(f"{', '.join(map(repr, missing))} is not a variable of the fixed "
                            f"part (its variables: {', '.join(map(repr, grid.columns))})")
        if len(set(both)) != len(both):
            raise DataError("a variable appears twice in specs and by")
        X = _grid_matrix(fit, grid)
        # one EMM per combination of the specs' and by's values, first specs fastest,
        # then the by groups
        order_vars = self.by[::-1] + self.specs[::-1]   # slowest first
        keys = grid[both]
        combos = list(itertools.product(*[pd.unique(grid[v]).tolist() for v in order_vars]))
        rows, L = [], []
        for combo in combos:
            sel = np.ones(len(grid), dtype=bool)
            for v, val in zip(order_vars, combo, strict=True):
                sel &= (keys[v] == val).to_numpy()
            L.append(X[sel].mean(axis=0))
            rows.append(dict(zip(order_vars, combo, strict=True)))
        Lm = np.array(L).reshape(len(L), X.shape[1])
        self.L = pd.DataFrame(Lm, columns=list(fit.design.xnames))
        est = _estimates(self.fit, Lm, self.ddf)
        crit = _t_quantile(1 - (1 - self.level) / 2, est["df"].to_numpy())
        tab = pd.DataFrame(rows)[both]
        tab["emmean"] = est["estimate"].to_numpy()
        tab["SE"] = est["SE"].to_numpy()
        tab["df"] = est["df"].to_numpy()
        tab["lower.CL"] = tab["emmean"] - crit * tab["SE"]
        tab["upper.CL"] = tab["emmean"] + crit * tab["SE"]
        self.table = tab
        self._labels = [" ".join(_label(v, r[v]) for v in self.specs) for r in rows]

    # -- contrasts -----------------------------------------------------------------------
    def _groups(self) -> list[np.ndarray]:
        if not self.by:
            return [np.arange(len(self.table))]
        key = self.table[self.by].astype(str).agg("\x1f".join, axis=1)
        return [np.flatnonzero((key == k).to_numpy()) for k in pd.unique(key)]

    def contrast(self, method: str | Mapping[str, Sequence[float]] = "pairwise",
                 adjust: str | None = None, ref: int | str = 0,
                 level: float | None = None) -> pd.DataFrame:
        """Contrasts of the means within each ``by`` group (``emmeans::contrast``).

        Parameters
        ----------
        method
            ``"pairwise"`` (each mean minus each later one), ``"revpairwise"`` (the
            reverse), ``"trt.vs.ctrl"`` (each mean minus the reference ``ref``) or a
            mapping of contrast names to coefficients, one per mean of a group.
        adjust
            One of ``"tukey"``, ``"dunnettx"``, ``"sidak"``, ``"bonferroni"``, ``"holm"``,
            ``"none"``. Default: emmeans' (``"tukey"`` for pairwise, ``"dunnettx"`` for
            ``trt.vs.ctrl``, ``"none"`` for custom contrasts). ``"tukey"`` on anything but
            pairwise comparisons becomes ``"sidak"``, as in emmeans.
        ref
            Position (or label) of the control mean for ``trt.vs.ctrl``.
        level
            Confidence level of the intervals (default: the EMMs').

        Returns
        -------
        pandas.DataFrame
            ``contrast``, the ``by`` columns, ``estimate``, ``SE``, ``df``, ``lower.CL``,
            ``upper.CL``, ``t.ratio``, ``p.value`` (emmeans' ``summary(..., infer =
            c(TRUE, TRUE))``); ``attrs`` hold ``adjust``, ``ddf``, ``level`` and notes.
        """
        level = self.level if level is None else float(level)
        groups = self._groups()
        k = len(groups[0])
        labels = self._labels[: k]
        pairwise = False
        if isinstance(method, str):
            if method in ("pairwise", "revpairwise"):
                pairwise = True
                pairs = list(itertools.combinations(range(k), 2))
                if method == "revpairwise":
                    pairs = [(j, i) for i, j in pairs]
                C = np.zeros((len(pairs), k))
                for r, (i, j) in enumerate(pairs):
                    C[r, i], C[r, j] = 1.0, -1.0
                names = [f"{labels[i]} - {labels[j]}" for i, j in pairs]
                default = "tukey"
            elif method == "trt.vs.ctrl":
                if isinstance(ref, str):
                    if ref not in labels:
                        raise DataError(f"ref={ref!r} is not one of the means {labels}")
                    ref = labels.index(ref)
                if not 0 <= int(ref) < k:
                    raise DataError(f"ref={ref!r} is out of range for {k} means")
                ref = int(ref)
                others = [j for j in range(k) if j != ref]
                C = np.zeros((len(others), k))
                for r, j in enumerate(others):
                    C[r, j], C[r, ref] = 1.0, -1.0
                names = [f"{labels[j]} - {labels[ref]}" for j in others]
                default = "dunnettx"
            else:
                raise DataError(f"method must be one of {', '.join(map(repr, CONTRASTS))} "
                                f"or a mapping of names to coefficients, not {method!r}")
        elif isinstance(method, Mapping):
            names = [str(n) for n in method]
            try:
                C = np.array([np.asarray(c, dtype=float) for c in method.values()])
            except (TypeError, ValueError):
                raise DataError("custom contrasts must be numbers") from None
            if C.ndim != 2 or C.shape[1] != k:
                raise DataError(f"each custom contrast needs {k} coefficients (one per mean:"
                                f" {', '.join(labels)})")
            default = "none"
        else:
            raise DataError("method must be a name or a mapping of names to coefficients")
        adjust = default if adjust is None else str(adjust).lower()
        if adjust not in ADJUSTMENTS:
            raise DataError(f"adjust must be one of {', '.join(map(repr, ADJUSTMENTS))}, "
                            f"not {adjust!r}")
        notes = []
        if adjust == "tukey" and not pairwise:
            notes.append('adjust = "tukey" was changed to "sidak" because "tukey" is only '
                         "appropriate for one set of pairwise comparisons")
            adjust = "sidak"
        if adjust == "holm":
            notes.append("Conf-level adjustment: bonferroni method (holm has none)")
        Lall = self.L.to_numpy()
        parts = []
        for g in groups:
            Lc = C @ Lall[g]
            est = _estimates(self.fit, Lc, self.ddf)
            t = est["estimate"].to_numpy() / est["SE"].to_numpy()
            p, crit = _adjust(t, est["df"].to_numpy(), adjust, level, k)
            part = pd.DataFrame({"contrast": names})
            for v in self.by:
                part[v] = [self.table[v].iloc[g[0]]] * len(names)
            part["estimate"] = est["estimate"].to_numpy()
            part["SE"] = est["SE"].to_numpy()
            part["df"] = est["df"].to_numpy()
            part["lower.CL"] = part["estimate"] - crit * part["SE"]
            part["upper.CL"] = part["estimate"] + crit * part["SE"]
            part["t.ratio"] = t
            part["p.value"] = p
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        out.attrs.update(adjust=adjust, ddf=self.ddf, level=level,
                         notes=self.notes + notes,
                         coefficients=pd.DataFrame(C, index=names, columns=labels))
        return out

    def pairs(self, adjust: str | None = None, level: float | None = None) -> pd.DataFrame:
        """Pairwise comparisons (``pairs(emm)``): :meth:`contrast` with ``"pairwise"``."""
        return self.contrast("pairwise", adjust=adjust, level=level)

    # -- display ---------------------------------------------------------------------------
    def _footer(self) -> list[str]:
        ddf = {"Kenward-Roger": "kenward-roger", "Satterthwaite": "satterthwaite",
               "asymptotic": "asymptotic"}[self.ddf]
        return [*(f"Note: {n}" for n in self.notes), f"Degrees-of-freedom method: {ddf}",
                f"Confidence level used: {self.level:g}"]

    def __str__(self) -> str:
        return "\n".join([self.table.to_string(index=False), *self._footer()])

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        foot = "<br>".join(self._footer())
        return self.table.to_html(index=False) + f"<p>{foot}</p>"


def emmeans(fit: LmerFit, specs, by=None, at=None, ddf: str | None = None,
            level: float = 0.95, data: pd.DataFrame | None = None) -> EMMeans:
    """Estimated marginal means; see :meth:`mixeff.LmerFit.emmeans`."""
    return EMMeans(fit, specs, by=by, at=at, ddf=ddf, level=level, data=data)
