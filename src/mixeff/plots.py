"""Diagnostic and presentation figures of fitted models (needs matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` and accepts ``ax=`` to draw
into axes of an existing figure instead:

* :func:`residuals_vs_fitted`: residuals against fitted values, with a smoother;
* :func:`qq_residuals`: normal Q-Q plot of the scaled Pearson residuals;
* :func:`scale_location`: ``sqrt(|scaled residuals|)`` against fitted values;
* :func:`residuals_vs`: residuals against one variable (boxplots for a categorical one);
* :func:`caterpillar`: conditional modes of the random effects with intervals, as lme4's
  ``dotplot(ranef(m, condVar = TRUE))``;
* :func:`fitted_lines`: the data and each group's fitted line, for one or more models;
* :func:`diagnostics`: the first four in a 2 x 2 figure.

:func:`save_all` writes them as PNG files (what ``mixeff plot`` does).

``import mixeff`` does not import this module; ``import mixeff.plots`` needs matplotlib
(``pip install 'mixeff[plot]'``). New figures are made with :mod:`matplotlib.pyplot`, so
they show in notebooks and with ``plt.show()``; :func:`save_all` makes its figures without
pyplot (no window, no backend needed).
"""

from __future__ import annotations

import contextvars
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mixeff.plots needs matplotlib; install it with: pip install 'mixeff[plot]'"
    ) from exc

if TYPE_CHECKING:  # pragma: no cover
    from ._fit import LmerFit

__all__ = [
    "caterpillar",
    "diagnostics",
    "fitted_lines",
    "qq_residuals",
    "residuals_vs",
    "residuals_vs_fitted",
    "residuals_vs_leverage",
    "save_all",
    "scale_location",
]


class HasFitted(Protocol):
    """Any fitted model with fitted values indexed by the rows of its data."""

    def fitted(self) -> pd.Series: ...


# --------------------------------------------------------------------------------------
# figures and axes
# --------------------------------------------------------------------------------------

_OFFSCREEN: contextvars.ContextVar[bool] = contextvars.ContextVar("mixeff_plots_offscreen",
                                                                  default=False)

_POINT_COLOR = "C0"
_SMOOTH_COLOR = "C3"
_GUIDE_COLOR = "0.45"
_LABEL_LEVELS_MAX = 60  # more levels than this: no tick label per level


@contextmanager
def _offscreen() -> Iterator[None]:
    """Within the block, new figures are plain Figures not registered with pyplot."""
    token = _OFFSCREEN.set(True)
    try:
        yield
    finally:
        _OFFSCREEN.reset(token)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    if _OFFSCREEN.get():
        return Figure(figsize=figsize, layout="constrained")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def _root_figure(ax: Axes) -> Figure:
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: climb to the figure holding it
        fig = fig.figure
    return fig


def _one_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The figure and the axes to draw into (a new figure when ``ax`` is None)."""
    if ax is None:
        fig = _new_figure(figsize)
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, not {type(ax).__name__}")
    return _root_figure(ax), ax


def _axes_list(ax: Axes | Sequence[Axes] | np.ndarray, n: int, what: str) -> list[Axes]:
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n:
        raise ValueError(f"{what} draws {n} panel{'s' if n != 1 else ''}; ax holds "
                         f"{len(axes)} axes")
    for a in axes:
        if not isinstance(a, Axes):
            raise TypeError(f"ax must hold matplotlib Axes, not {type(a).__name__}")
    return axes


def _point_style(n: int) -> dict[str, Any]:
    """Marker size and transparency readable for n points."""
    if n <= 300:
        return {"s": 16, "alpha": 0.75}
    if n <= 3000:
        return {"s": 8, "alpha": 0.5}
    return {"s": 2, "alpha": 0.25}


def _wrap(text: str, width: int = 55) -> str:
    """Wrap a title, breaking formulas after their ``+`` signs first."""
    if len(text) <= width:
        return text
    parts = text.split(" + ")
    lines, current = [], parts[0]
    for part in parts[1:]:
        if len(current) + 3 + len(part) > width:
            lines.append(current + " +")
            current = part
        else:
            current += " + " + part
    lines.append(current)
    return "\n".join(textwrap.fill(line, width=width, break_long_words=False)
                     for line in lines)


# --------------------------------------------------------------------------------------
# data of the fit
# --------------------------------------------------------------------------------------


def _rows(fit: Any) -> pd.Index:
    design = getattr(fit, "design", None)
    if design is not None:
        return design.row_index
    return fit.fitted().index


def _column(fit: Any, data: pd.DataFrame | None, name: str) -> pd.Series:
    """The values of ``name`` on the rows the model used, indexed by those rows.

    A column of ``data`` first; else, from the model itself, a grouping factor, the
    response or a column of the fixed-effects model matrix.
    """
    rows = _rows(fit)
    if data is not None and name in data.columns:
        if not data.index.is_unique:
            raise ValueError("the data must have a unique index (the rows of the fit are "
                             "matched by index label)")
        try:
            return data[name].loc[rows]
        except KeyError:
            raise ValueError("the data do not hold the rows the model was fitted to; pass "
                             "the data used for the fit") from None
    design = getattr(fit, "design", None)
    if design is not None:
        for t in design.terms:
            if t.label == name:
                cat = pd.Categorical.from_codes(np.asarray(t.codes), categories=list(t.levels))
                return pd.Series(cat, index=rows, name=name)
        if name == design.response_name:
            return pd.Series(np.asarray(design.y, dtype=float), index=rows, name=name)
        if name in design.xnames:
            j = list(design.xnames).index(name)
            return pd.Series(np.asarray(design.X[:, j], dtype=float), index=rows, name=name)
    where = ("the data" if data is not None
             else "the model (pass data= to use the data's columns)")
    raise ValueError(f"{name!r} is not a column of {where}")


def _fixed_variables(fit: Any) -> list[str]:
    """Data columns used in the fixed part of the formula, in formula order."""
    design = getattr(fit, "design", None)
    if design is None:
        return []
    from ._design import _formulaic_names

    names, _ = _formulaic_names(design.formula.fixed)
    return names


def _grouping_factors(fit: Any) -> list[str]:
    design = getattr(fit, "design", None)
    if design is None:
        return []
    return list(dict.fromkeys(t.label for t in design.terms))


def _is_categorical(fit: Any, name: str, values: pd.Series) -> bool:
    """A non-numeric column, a grouping factor, or a variable used as ``C(name)``."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dtype):
        return True
    if pd.api.types.is_bool_dtype(dtype) or name in _grouping_factors(fit):
        return True
    design = getattr(fit, "design", None)
    if design is not None:
        pattern = rf"(?<![\w.])C\(\s*`?{re.escape(name)}`?\s*[,)]"
        if re.search(pattern, design.formula.fixed):
            return True
    return False


def _levels(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 for missing) and level labels, in the categories' order.

    Categories keep their order; other values are sorted (numbers numerically).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat.remove_unused_categories().array
    else:
        uniq = pd.unique(values.dropna())
        try:
            cats = sorted(uniq)
        except TypeError:
            cats = sorted(uniq, key=str)
        cat = pd.Categorical(values, categories=cats)
    return np.asarray(cat.codes), [str(c) for c in cat.categories]


def _model_name(fit: Any) -> str:
    kind = {"LmerFit": "lmer", "LmFit": "lm"}.get(type(fit).__name__, type(fit).__name__)
    formula = getattr(fit, "formula", None)
    return f"{kind}: {formula}" if formula else kind


# --------------------------------------------------------------------------------------
# smoother and labels
# --------------------------------------------------------------------------------------


def _local_linear(x: np.ndarray, y: np.ndarray, robust: np.ndarray, at: float, r: int,
                  span: float) -> float:
    d = np.abs(x - at)
    h = float(np.partition(d, r - 1)[r - 1])
    if h <= 0.0:
        h = float(d.max()) or 1.0
    t = d / (1.000001 * h)
    w = np.clip(1.0 - t * t * t, 0.0, None)
    w = w * w * w * robust
    sw = w.sum()
    if sw <= 0.0:
        return np.nan
    xm = float(w @ x) / sw
    ym = float(w @ y) / sw
    dx = x - xm
    sxx = float(w @ dx**2)
    if sxx <= 1e-12 * span**2 * sw:
        return ym
    return ym + float(w @ (dx * (y - ym))) / sxx * (at - xm)


def _lowess(x: np.ndarray, y: np.ndarray, frac: float = 2.0 / 3.0, iterations: int = 3,
            n_eval: int = 80, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray] | None:
    """Robust locally linear smoother (Cleveland's LOWESS) evaluated on a grid.

    Tricube weights over the ``frac`` nearest points, bisquare robustness weights
    (``iterations`` rounds), as R's ``lowess`` (which ``plot.lm`` draws), but evaluated at
    ``n_eval`` points across the range of ``x``, and on every k-th point in the order
    of ``x`` beyond ``max_points`` points, so that it stays fast for large data.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[ok], kind="stable")
    x, y = x[ok][order], y[ok][order]
    if x.size > max_points:
        step = int(np.ceil(x.size / max_points))
        x, y = x[step // 2 :: step], y[step // 2 :: step]
    n = x.size
    if n < 6:
        return None
    span = float(x.max() - x.min())
    if not span > 0.0:
        return None
    r = min(n, max(3, int(np.ceil(frac * n))))
    grid = np.linspace(x.min(), x.max(), n_eval)
    robust = np.ones(n)
    curve = np.empty(n_eval)
    for it in range(iterations + 1):
        curve = np.array([_local_linear(x, y, robust, g, r, span) for g in grid])
        if it == iterations:
            break
        res = y - np.interp(x, grid, curve)
        s = float(np.median(np.abs(res)))
        if s <= 0.0:
            break
        u = np.clip(res / (6.0 * s), -1.0, 1.0)
        robust = (1.0 - u**2) ** 2
    return grid, curve


def _add_smooth(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    sm = _lowess(x, y)
    if sm is not None:
        ax.plot(sm[0], sm[1], color=_SMOOTH_COLOR, lw=1.6, gid="smooth", label="smoother")


def _label_extremes(ax: Axes, x: np.ndarray, y: np.ndarray, labels: Sequence[Any],
                    score: np.ndarray, n_label: int) -> None:
    """Write the row labels of the ``n_label`` points with the largest score."""
    if n_label <= 0 or x.size == 0:
        return
    idx = np.argsort(-np.abs(score), kind="stable")[:n_label]
    mid = 0.5 * (np.nanmin(x) + np.nanmax(x))
    for i in idx:
        right = x[i] <= mid
        ax.annotate(str(labels[i]), (x[i], y[i]), xytext=(4 if right else -4, 2),
                    textcoords="offset points", ha="left" if right else "right",
                    va="bottom", fontsize=8, color="0.25", gid="label")


def _scatter(ax: Axes, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
    style = _point_style(x.size)
    style.update(kwargs)
    ax.scatter(x, y, color=_POINT_COLOR, linewidths=0, gid="points", **style)


def _residual_label(fit: Any) -> str:
    design = getattr(fit, "design", None)
    weighted = design is not None and design.weights is not None
    return "Pearson residuals" if weighted else "Residuals"


# --------------------------------------------------------------------------------------
# residual plots
# --------------------------------------------------------------------------------------


def residuals_vs_fitted(fit: LmerFit, *, smooth: bool = True, n_label: int = 3,
                        ax: Axes | None = None) -> Figure:
    """Residuals against fitted values.

    The Pearson residuals (the response residuals ``y - fitted`` when there are no
    weights) against the fitted values ``X beta + Z b``, as lme4's ``plot(m)``, with a
    dashed line at zero and a robust smoother (as R's ``plot.lm``). A trend in the
    smoother suggests a missing term; a funnel, a variance that changes with the mean.

    Parameters
    ----------
    fit
        The fitted model (:func:`mixeff.lmer`).
    smooth
        Draw the LOWESS smoother.
    n_label
        Label this many points with the largest absolute residuals by their row label.
    ax
        Axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _one_axes(ax, (6.0, 4.5))
    f = fit.fitted().to_numpy(dtype=float)
    r = fit.residuals(type="pearson").to_numpy(dtype=float)
    _scatter(ax, f, r)
    ax.axhline(0.0, color=_GUIDE_COLOR, ls="--", lw=1, zorder=1, gid="reference")
    if smooth:
        _add_smooth(ax, f, r)
    _label_extremes(ax, f, r, list(_rows(fit)), r, n_label)
    ax.set_xlabel("Fitted values")
    ax.set_ylabel(_residual_label(fit))
    ax.set_title("Residuals vs fitted")
    return fig


def _ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: ``(i - a) / (n + 1 - 2a)``, ``a = 3/8`` for ``n <= 10``."""
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def qq_residuals(fit: LmerFit, *, n_label: int = 3, ax: Axes | None = None) -> Figure:
    """Normal Q-Q plot of the scaled Pearson residuals.

    The sorted residuals divided by sigma against the normal quantiles at R's
    ``ppoints``, with the reference line through the first and third quartiles (R's
    ``qqline``). Points off the line in the tails show heavier or lighter tails than
    the normal distribution the model assumes.

    Parameters
    ----------
    fit
        The fitted model.
    n_label
        Label this many points with the largest absolute residuals by their row label.
    ax
        Axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy.stats import norm

    fig, ax = _one_axes(ax, (5.5, 5.0))
    r = fit.residuals(type="pearson", scaled=True).to_numpy(dtype=float)
    labels = np.asarray(list(_rows(fit)), dtype=object)
    ok = np.isfinite(r)
    r, labels = r[ok], labels[ok]
    order = np.argsort(r, kind="stable")
    rs = r[order]
    q = norm.ppf(_ppoints(rs.size))
    _scatter(ax, q, rs)
    if rs.size >= 2:
        y1, y2 = np.quantile(rs, [0.25, 0.75])
        x1, x2 = norm.ppf([0.25, 0.75])
        slope = (y2 - y1) / (x2 - x1)
        ax.axline((x1, y1), slope=slope, color=_GUIDE_COLOR, ls="--", lw=1.2, zorder=1,
                  gid="reference")
    _label_extremes(ax, q, rs, labels[order], rs, n_label)
    ax.set_xlabel("Theoretical normal quantiles")
    ax.set_ylabel("Scaled Pearson residuals")
    ax.set_title("Normal Q-Q of scaled residuals")
    return fig


def scale_location(fit: LmerFit, *, smooth: bool = True, n_label: int = 3,
                   ax: Axes | None = None) -> Figure:
    """Scale-location plot: ``sqrt(|scaled residuals|)`` against fitted values.

    The standardised residuals are the Pearson residuals divided by sigma (lme4's
    scaled residuals; no leverage correction). A rising smoother shows a residual spread
    that grows with the fitted value.

    Parameters
    ----------
    fit
        The fitted model.
    smooth
        Draw the LOWESS smoother.
    n_label
        Label this many points with the largest values by their row label.
    ax
        Axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _one_axes(ax, (6.0, 4.5))
    f = fit.fitted().to_numpy(dtype=float)
    s = np.sqrt(np.abs(fit.residuals(type="pearson", scaled=True).to_numpy(dtype=float)))
    _scatter(ax, f, s)
    if smooth:
        _add_smooth(ax, f, s)
    _label_extremes(ax, f, s, list(_rows(fit)), s, n_label)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("Fitted values")
    ax.set_ylabel(r"$\sqrt{|\mathrm{scaled\ residuals}|}$")
    ax.set_title("Scale-location")
    return fig


def residuals_vs(fit: LmerFit, variable: str, data: pd.DataFrame | None = None, *,
                 categorical: bool | None = None, smooth: bool = True,
                 ax: Axes | None = None) -> Figure:
    """Residuals against one explanatory variable.

    A scatter plot with a smoother for a numeric variable; for a categorical one a
    boxplot of the residuals per level (with the residuals as jittered points; only the
    points and each level's median above 60 levels). Structure left in the residuals
    (a trend, levels off zero, unequal spread) suggests a term or a variance model the
    model lacks.

    Parameters
    ----------
    fit
        The fitted model.
    variable
        A column of ``data``; without ``data``, a grouping factor of the model (or the
        name of a column of the fixed-effects model matrix).
    data
        The data the model was fitted to (rows are matched by index label).
    categorical
        Treat the variable as categorical. By default: non-numeric columns, grouping
        factors and variables used as ``C(variable)`` in the formula are.
    smooth
        Draw the smoother (numeric variables).
    ax
        Axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``variable`` is neither a column of ``data`` nor part of the model.
    """
    values = _column(fit, data, variable)
    r = fit.residuals(type="pearson").to_numpy(dtype=float)
    if categorical is None:
        categorical = _is_categorical(fit, variable, values)
    if categorical:
        codes, labels = _levels(values)
        width = min(11.0, max(5.0, 1.2 + 0.3 * len(labels)))
        fig, ax = _one_axes(ax, (width, 4.5))
        _category_panel(ax, codes, labels, r)
    else:
        fig, ax = _one_axes(ax, (6.0, 4.5))
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        _scatter(ax, x, r)
        if smooth:
            _add_smooth(ax, x, r)
    ax.axhline(0.0, color=_GUIDE_COLOR, ls="--", lw=1, zorder=1, gid="reference")
    ax.set_xlabel(variable)
    ax.set_ylabel(_residual_label(fit))
    ax.set_title(f"Residuals vs {variable}")
    return fig


def residuals_vs_leverage(fit: Any, *, smooth: bool = True, n_label: int = 3,
                          ax: Axes | None = None) -> Figure:
    """Standardised residuals against leverage, R's fourth ``plot(lm)`` panel.

    The Pearson residuals divided by ``sigma sqrt(1 - h)`` (R's ``rstandard``) against
    the leverages ``h`` (:meth:`~mixeff.LmFit.hatvalues`), with dashed contours of
    Cook's distance 0.5 and 1 (``p`` the number of coefficients). Points beyond them
    change the fit markedly when left out. Rows with leverage 1 are left out, as R does.

    Parameters
    ----------
    fit
        A fitted model with ``hatvalues()`` (:func:`mixeff.lm` or :func:`mixeff.lmer`).
    smooth
        Draw the LOWESS smoother.
    n_label
        Label this many points with the largest Cook's distances by their row label.
    ax
        Axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _one_axes(ax, (6.0, 4.5))
    h = fit.hatvalues().to_numpy(dtype=float)
    r = fit.residuals(type="pearson").to_numpy(dtype=float)
    keep = h < 1.0 - 1e-10
    labels = np.asarray(list(_rows(fit)), dtype=object)[keep]
    h, r = h[keep], r[keep]
    rs = r / (fit.sigma * np.sqrt(1.0 - h))
    p = len(getattr(fit.design, "xnames", ())) or 1
    cook = rs**2 * h / (p * (1.0 - h))
    _scatter(ax, h, rs)
    ax.axhline(0.0, color=_GUIDE_COLOR, ls="--", lw=1, zorder=1, gid="reference")
    if smooth and h.size > 3:
        _add_smooth(ax, h, rs)
    hmax = float(h.max()) if h.size else 1.0
    hh = np.linspace(max(1e-3, 0.01 * hmax), hmax * 1.05, 100)
    for level in (0.5, 1.0):
        bound = np.sqrt(level * p * (1.0 - hh) / hh)
        for sign in (1.0, -1.0):
            ax.plot(hh, sign * bound, color="#d62728", ls=":", lw=1, gid=f"cook{level:g}")
    lim = 1.1 * max(np.abs(rs).max() if rs.size else 1.0, 1.0)
    ax.set_ylim(-lim, lim)
    ax.set_xlim(0.0, hmax * 1.08)
    _label_extremes(ax, h, rs, list(labels), cook, n_label)
    ax.set_xlabel("Leverage")
    ax.set_ylabel("Standardised residuals")
    ax.set_title("Residuals vs leverage (Cook's distance 0.5, 1 dotted)")
    return fig


def _category_panel(ax: Axes, codes: np.ndarray, labels: list[str], r: np.ndarray) -> None:
    """Boxplots (or medians, for many levels) of ``r`` per level with jittered points."""
    m = len(labels)
    pos = np.arange(m, dtype=float)
    groups = [r[codes == i] for i in range(m)]
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, size=codes.size)
    used = codes >= 0
    style = _point_style(int(used.sum()))
    style["alpha"] = min(style["alpha"], 0.45)
    ax.scatter(codes[used] + jitter[used], r[used], color=_POINT_COLOR, linewidths=0,
               zorder=2, gid="points", **style)
    if m <= _LABEL_LEVELS_MAX:
        ax.boxplot(groups, positions=pos, widths=0.6, showfliers=False,
                   medianprops={"color": _SMOOTH_COLOR, "lw": 1.5},
                   boxprops={"color": "0.2"}, whiskerprops={"color": "0.2"},
                   capprops={"color": "0.2"}, manage_ticks=False, zorder=3)
        ax.set_xticks(pos, labels=labels)
        longest = max((len(s) for s in labels), default=0)
        if m * (longest + 1) > 45:
            ax.tick_params(axis="x", labelrotation=90,
                           labelsize=8 if m > 20 else None)
    else:
        med = np.array([np.median(g) if g.size else np.nan for g in groups])
        ax.plot(pos, med, "_", color=_SMOOTH_COLOR, ms=6, zorder=3, gid="medians")
        ax.set_xticks([])
        ax.set_xlabel(f"{m} levels")
    ax.set_xlim(-0.7, m - 0.3)


# --------------------------------------------------------------------------------------
# random effects
# --------------------------------------------------------------------------------------


def caterpillar(fit: LmerFit, group: str | None = None, *, level: float = 0.95,
                sort: bool = True, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Conditional modes of the random effects with intervals ("caterpillar plot").

    As lme4's ``dotplot(ranef(m, condVar = TRUE))``: for every level of a grouping
    factor, its conditional mode (BLUP) with the interval ``mode +- z * condsd``
    (``z = 1.96`` for 95%), one panel per random-effect column (intercept, slopes). Levels
    are sorted by the first column, and all panels of a factor share that order, so a
    row reads across panels. Intervals that miss the dashed zero line mark levels that
    differ clearly from the population average.

    Parameters
    ----------
    fit
        The fitted model.
    group
        Grouping factor to draw (as in ``fit.ranef()``); all of them by default, one row
        of panels each.
    level
        Coverage of the normal intervals from the conditional standard deviations.
    sort
        Order the levels by the first column (else in the order of ``fit.ranef()``).
    ax
        Axes to draw into, one per panel; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Unknown ``group``, a ``level`` outside (0, 1), or ``ax`` with the wrong number
        of axes.
    """
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    z = float(norm.ppf(0.5 + level / 2.0))
    re_all = fit.ranef(condvar=True)
    if group is None:
        groups = list(re_all)
    elif group in re_all:
        groups = [group]
    else:
        raise ValueError(f"{group!r} is not a grouping factor of the model "
                         f"({', '.join(map(repr, re_all))})")
    ncols = max(re_all[g].shape[1] for g in groups)
    npanels = sum(re_all[g].shape[1] for g in groups)

    if ax is None:
        heights = [float(np.clip(0.6 + 0.19 * min(re_all[g].shape[0], _LABEL_LEVELS_MAX),
                                 2.2, 7.0)) for g in groups]
        longest = max(len(str(v)) for g in groups for v in re_all[g].index)
        label_w = 0.3 + 0.075 * min(longest, 30)
        width = label_w + 0.9 + 3.0 * ncols
        fig = _new_figure((width, sum(heights) + 0.7))
        gs = fig.add_gridspec(len(groups), ncols, height_ratios=heights)
        rows_axes: list[list[Axes]] = []
        for i, g in enumerate(groups):
            row: list[Axes] = []
            for j in range(re_all[g].shape[1]):
                row.append(fig.add_subplot(gs[i, j], sharey=row[0] if row else None))
            rows_axes.append(row)
        fig.suptitle(_wrap(f"Conditional modes with {level:.0%} intervals",
                           int(10 * width)), fontsize=11)
    else:
        flat = _axes_list(ax, npanels, "caterpillar")
        fig = _root_figure(flat[0])
        rows_axes, o = [], 0
        for g in groups:
            k = re_all[g].shape[1]
            rows_axes.append(flat[o : o + k])
            o += k

    for g, row in zip(groups, rows_axes, strict=True):
        df = re_all[g]
        sd = df.attrs["condsd"]
        m = df.shape[0]
        order = (np.argsort(df.iloc[:, 0].to_numpy(), kind="stable") if sort
                 else np.arange(m))
        ypos = np.arange(m, dtype=float)
        few = m <= _LABEL_LEVELS_MAX
        for j, a in enumerate(row):
            mode = df.iloc[order, j].to_numpy(dtype=float)
            half = z * sd.iloc[order, j].to_numpy(dtype=float)
            a.axvline(0.0, color=_GUIDE_COLOR, ls="--", lw=1, zorder=1, gid="reference")
            a.hlines(ypos, mode - half, mode + half, color=_POINT_COLOR,
                     lw=1.3 if few else 0.5, alpha=0.7 if few else 0.4, zorder=2,
                     gid="intervals", label=f"{level:.0%} interval")
            a.plot(mode, ypos, "o", color=_POINT_COLOR, ms=4.5 if few else 1.5, zorder=3,
                   gid="modes", label="conditional mode")
            a.set_ylim(-0.8, m - 0.2)
            a.set_title(f"{g}: {df.columns[j]}" if len(groups) > 1 else str(df.columns[j]),
                        fontsize=10)
            a.set_xlabel("Conditional mode")
            a.grid(axis="y", color="0.92", lw=0.6, zorder=0)
            if j == 0:
                if few:
                    a.set_yticks(ypos, labels=[str(v) for v in df.index[order]])
                    a.tick_params(axis="y", labelsize=8 if m > 30 else 9, length=0)
                else:
                    a.set_yticks([])
                a.set_ylabel(g if few else f"{g} ({m} levels)")
            else:
                a.tick_params(axis="y", labelleft=False, length=0)
    return fig


# --------------------------------------------------------------------------------------
# fitted values
# --------------------------------------------------------------------------------------


def _palette(n: int) -> list[Any]:
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    cmap = matplotlib.colormaps["viridis"]  # tab20's pale half is hard to see on white
    return [cmap(v) for v in np.linspace(0.0, 0.85, n)]


def _as_fits(fits: Any) -> list[tuple[str, Any]]:
    if hasattr(fits, "fitted"):
        return [(_model_name(fits), fits)]
    if isinstance(fits, Mapping):
        out = [(str(k), v) for k, v in fits.items()]
    else:
        out = [(_model_name(f), f) for f in fits]
    if not out:
        raise ValueError("fits is empty")
    for name, f in out:
        if not callable(getattr(f, "fitted", None)):
            raise TypeError(f"{name}: a fitted model with a fitted() method is needed")
    return out


def fitted_lines(fits: HasFitted | Sequence[HasFitted] | Mapping[str, HasFitted],
                 data: pd.DataFrame | None, x: str, group: str, y: str | None = None, *,
                 color_by: str | None = None,
                 ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """The data and each group's fitted values joined over ``x``, one panel per model.

    Points are the observations; for each level of ``group`` the model's fitted values
    are joined in the order of ``x``. Side by side, a model that ignores the grouping
    (``mixeff.lm``: one line per combination of fixed effects) and a mixed model (a line
    per group, pulled towards each group's data) show what the random effects add.

    Parameters
    ----------
    fits
        A fitted model with a ``fitted()`` method returning values indexed by the rows of
        ``data`` (:func:`mixeff.lmer`, :func:`mixeff.lm`), a sequence of them, or a
        mapping from panel title to model.
    data
        The data the models were fitted to. Without it, ``x``, ``group`` and ``y`` must
        be part of the (first) model: a grouping factor, the response or a column of its
        fixed-effects model matrix.
    x
        Column on the horizontal axis (numeric; a categorical column gets one position per
        level).
    group
        Column whose levels get one line each.
    y
        Column of observed values; the model's response by default.
    color_by
        Colour points and lines by this column (e.g. a treatment constant within each
        group) instead of one colour per group.
    ax
        Axes to draw into, one per model; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A column that is neither in ``data`` nor in the model, or ``ax`` with the wrong
        number of axes.
    """
    panels = _as_fits(fits)
    if ax is None:
        n = len(panels)
        fig = _new_figure((1.2 + 4.6 * n + (1.3 if color_by else 0.0), 4.6))
        axes = list(np.ravel(fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)))
    else:
        axes = _axes_list(ax, len(panels), "fitted_lines")
        fig = _root_figure(axes[0])

    first = panels[0][1]
    # colour keys from the first model's rows; the same colours in every panel
    key_col = color_by if color_by is not None else group
    _, key_labels = _levels(_column(first, data, key_col))
    colors = _palette(len(key_labels))
    color_of = dict(zip(key_labels, colors, strict=True))
    x_labels: list[str] | None = None

    for (title, fit), a in zip(panels, axes, strict=True):
        fv = fit.fitted()
        rows = fv.index
        xs = _column(fit, data, x).reindex(rows)
        gs = _column(fit, data, group).reindex(rows)
        if y is not None:
            ys = _column(fit, data, y).reindex(rows).to_numpy(dtype=float)
        elif getattr(fit, "design", None) is not None:
            ys = np.asarray(fit.design.y, dtype=float)
        else:
            raise ValueError("give y: the model does not say what its response is")
        keys = _column(fit, data, key_col).reindex(rows).astype(str).to_numpy()
        if _is_categorical(fit, x, xs):
            xcodes, x_labels = _levels(xs)
            xv = np.where(xcodes >= 0, xcodes, np.nan).astype(float)
        else:
            xv = pd.to_numeric(xs, errors="coerce").to_numpy(dtype=float)
        f = fv.to_numpy(dtype=float)
        gcodes, _ = _levels(gs)
        point_colors = [color_of.get(k, "0.5") for k in keys]
        style = _point_style(len(xv))
        style["alpha"] = min(style["alpha"], 0.6)
        a.scatter(xv, ys, c=point_colors, linewidths=0, zorder=2, gid="points", **style)

        span = np.nanmax(xv) - np.nanmin(xv) if np.isfinite(xv).any() else 0.0
        half = 0.3 if x_labels is not None else 0.02 * (span or 1.0)
        segments, seg_colors = [], []
        for gi in range(gcodes.max() + 1 if gcodes.size else 0):
            idx = np.flatnonzero((gcodes == gi) & np.isfinite(xv) & np.isfinite(f))
            if idx.size == 0:
                continue
            # mean fitted value per x within the group, joined in x order
            ux, inv = np.unique(xv[idx], return_inverse=True)
            fy = np.bincount(inv, weights=f[idx]) / np.bincount(inv)
            if ux.size == 1:  # one x position: a short horizontal dash
                seg = np.array([[ux[0] - half, fy[0]], [ux[0] + half, fy[0]]])
            else:
                seg = np.column_stack([ux, fy])
            segments.append(seg)
            seg_colors.append(color_of.get(keys[idx[0]], "0.5"))
        many = len(segments) > 40
        lc = LineCollection(segments, colors=seg_colors, linewidths=0.7 if many else 1.4,
                            alpha=0.6 if many else 0.9, zorder=3, gid="fitted")
        a.add_collection(lc)
        a.autoscale_view()
        a.set_title(_wrap(title), fontsize=10)
        a.set_xlabel(x)
        if x_labels is not None:
            a.set_xticks(np.arange(len(x_labels)), labels=x_labels)
    ylabel = y if y is not None else getattr(getattr(first, "design", None),
                                             "response_name", "response")
    axes[0].set_ylabel(ylabel)

    if color_by is not None or len(key_labels) <= 10:
        handles = [Line2D([], [], color=c, marker="o", ms=5, lw=1.4, label=lab)
                   for lab, c in zip(key_labels, colors, strict=True)]
        axes[-1].legend(handles=handles, title=key_col, loc="upper left",
                        bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False,
                        fontsize=9, title_fontsize=9)
    return fig


# --------------------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------------------


def diagnostics(fit: LmerFit, variable: str | None = None, data: pd.DataFrame | None = None,
                *, ax: Sequence[Axes] | None = None) -> Figure:
    """The four residual plots in a 2 x 2 figure.

    :func:`residuals_vs_fitted`, :func:`qq_residuals`, :func:`scale_location` and
    :func:`residuals_vs` (against ``variable``, by default the first grouping factor:
    residuals per group, which should centre on zero). For a linear model
    (:func:`mixeff.lm`) without ``variable`` the fourth panel is
    :func:`residuals_vs_leverage`, as R's ``plot(lm)``.

    Parameters
    ----------
    fit
        The fitted model.
    variable
        Variable of the fourth panel (see :func:`residuals_vs`); the first grouping
        factor by default.
    data
        The data the model was fitted to, to use its columns.
    ax
        Four axes to draw into; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _grouping_factors(fit)
    if variable is None and groups:
        variable = groups[0]
    if ax is None:
        fig = _new_figure((11.0, 8.5))
        axes = list(np.ravel(fig.subplots(2, 2)))
        fig.suptitle(_wrap(f"Diagnostics: {fit.formula}", 90), fontsize=12)
    else:
        axes = _axes_list(ax, 4, "diagnostics")
        fig = _root_figure(axes[0])
    residuals_vs_fitted(fit, ax=axes[0])
    qq_residuals(fit, ax=axes[1])
    scale_location(fit, ax=axes[2])
    if variable is None:   # a linear model: R's plot(lm) fourth panel
        residuals_vs_leverage(fit, ax=axes[3])
    else:
        residuals_vs(fit, variable, data, ax=axes[3])
    return fig


def _file_part(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "variable"


def _constant_within(values: pd.Series, groups: pd.Series) -> bool:
    keys = np.asarray(groups.astype(str))
    return bool(values.groupby(keys, observed=True).nunique().max() <= 1)


def _default_x(fit: Any, data: pd.DataFrame | None, group: str) -> str:
    """The first numeric fixed-effect variable, else the first categorical one that
    varies within the groups, else the first categorical one, else the group."""
    g = _column(fit, data, group)
    within, between = None, None
    for v in _fixed_variables(fit):
        try:
            values = _column(fit, data, v)
        except ValueError:
            continue
        if not _is_categorical(fit, v, values):
            return v
        if within is None and not _constant_within(values, g):
            within = v
        between = between or v
    return within or between or group


def _between_group_factor(fit: Any, data: pd.DataFrame | None, group: str,
                          x: str) -> str | None:
    """The first categorical fixed-effect variable constant within every group."""
    try:
        g = _column(fit, data, group)
    except ValueError:
        return None
    for v in _fixed_variables(fit):
        if v == x:
            continue
        try:
            values = _column(fit, data, v)
        except ValueError:
            continue
        if not _is_categorical(fit, v, values) or values.nunique() < 2:
            continue
        if _constant_within(values, g):
            return v
    return None


_AUTO = "auto"


def save_all(fit: LmerFit, outdir: str | Path, data: pd.DataFrame | None = None,
             x: str | None = None, group: str | None = None, *,
             color_by: str | None = _AUTO, dpi: int = 150) -> list[Path]:
    """Write the figures of a fitted model as PNG files.

    Files: ``residuals_vs_fitted.png``, ``qq.png``, ``scale_location.png``,
    ``caterpillar.png``, ``fitted_lines.png``, ``diagnostics.png`` and, when ``data`` is
    given, ``residuals_vs_<variable>.png`` for each variable of the fixed effects. For a
    linear model (:func:`mixeff.lm`): ``residuals_vs_leverage.png`` instead of the
    caterpillar and fitted-lines figures.

    Parameters
    ----------
    fit
        The fitted model.
    outdir
        Folder for the files (created if missing; existing files are replaced).
    data
        The data the model was fitted to.
    x
        Horizontal axis of the fitted-lines figure: by default the first numeric
        variable of the fixed effects (else the first categorical one, else the first
        grouping factor).
    group
        One fitted line per level of this column: the first grouping factor by default.
    color_by
        Colour of the fitted-lines figure: ``"auto"`` (default) colours by the first
        categorical fixed-effect variable that is constant within each group (a
        treatment of whole groups), if any; None gives one colour per group.
    dpi
        Resolution of the PNG files.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order above.

    Raises
    ------
    ValueError
        ``x``, ``group`` or ``color_by`` is neither a column of ``data`` nor part of
        the model.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    mixed = bool(_grouping_factors(fit)) or group is not None
    if mixed:
        if group is None:
            group = _grouping_factors(fit)[0]
        if x is None:
            x = _default_x(fit, data, group)
        if color_by == _AUTO:
            color_by = _between_group_factor(fit, data, group, x)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = out / name
        fig.savefig(path, dpi=dpi)
        written.append(path)

    with _offscreen():
        save(residuals_vs_fitted(fit), "residuals_vs_fitted.png")
        save(qq_residuals(fit), "qq.png")
        save(scale_location(fit), "scale_location.png")
        if mixed:
            save(caterpillar(fit), "caterpillar.png")
            save(fitted_lines(fit, data, x=x, group=group, color_by=color_by),
                 "fitted_lines.png")
        else:   # a model without random effects (mixeff.lm): R's fourth lm plot
            save(residuals_vs_leverage(fit), "residuals_vs_leverage.png")
        save(diagnostics(fit, data=data), "diagnostics.png")
        if data is not None:
            for v in _fixed_variables(fit):
                if v in data.columns:
                    save(residuals_vs(fit, v, data), f"residuals_vs_{_file_part(v)}.png")
    return written
