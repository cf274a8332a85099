"""Figures of mixeff.plots and the ``mixeff plot`` command (need matplotlib, Agg backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv
from scipy.stats import norm

import mixeff
from mixeff.cli import main

PLANT = "height ~ week * C(temp) + (1 | plant_id)"
SLEEP = "Reaction ~ Days + (Days | Subject)"
FIVE = {"residuals_vs_fitted.png", "qq.png", "scale_location.png", "caterpillar.png",
        "fitted_lines.png"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plots():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mixeff import plots

    return plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="module")
def plant() -> pd.DataFrame:
    return mixeff.datasets.load_plant_growth()


@pytest.fixture(scope="module")
def plant_fit(plant):
    return mixeff.lmer(PLANT, plant)


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return load_csv("sleepstudy.csv", factors=["Subject"])


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return mixeff.lmer(SLEEP, sleep)


def by_gid(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def offsets(ax) -> np.ndarray:
    (pts,) = by_gid(ax, "points")
    return np.asarray(pts.get_offsets())


# -- import ------------------------------------------------------------------------------


def test_import_mixeff_does_not_import_matplotlib():
    code = (
        "import sys, mixeff\n"
        "d = mixeff.datasets.load_plant_growth()\n"
        "f = mixeff.lmer('height ~ week + (1 | plant_id)', d)\n"
        "f.summary(); f.ranef()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    src = str(Path(mixeff.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# -- residual plots ----------------------------------------------------------------------


def test_residuals_vs_fitted(plots, plant_fit):
    from matplotlib.figure import Figure

    fig = plots.residuals_vs_fitted(plant_fit)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    xy = offsets(ax)
    np.testing.assert_allclose(xy[:, 0], plant_fit.fitted())
    np.testing.assert_allclose(xy[:, 1], plant_fit.residuals(type="pearson"))
    assert len(by_gid(ax, "smooth")) == 1 and len(by_gid(ax, "reference")) == 1
    labels = [t.get_text() for t in by_gid(ax, "label")]
    r = plant_fit.residuals().abs().sort_values(ascending=False)
    assert labels == [str(i) for i in r.index[:3]]
    assert ax.get_title() and ax.get_xlabel() == "Fitted values"
    fig = plots.residuals_vs_fitted(plant_fit, smooth=False, n_label=0)
    assert not by_gid(fig.axes[0], "smooth") and not by_gid(fig.axes[0], "label")


def test_qq_residuals(plots, sleep_fit):
    fig = plots.qq_residuals(sleep_fit)
    (ax,) = fig.axes
    xy = offsets(ax)
    n = sleep_fit.nobs
    r = np.sort(sleep_fit.residuals(type="pearson", scaled=True).to_numpy())
    np.testing.assert_allclose(xy[:, 1], r)
    np.testing.assert_allclose(xy[:, 0], norm.ppf((np.arange(1, n + 1) - 0.5) / n))
    # reference line through the quartiles (R's qqline)
    (line,) = by_gid(ax, "reference")
    q1, q3 = np.quantile(r, [0.25, 0.75])
    assert line._slope == pytest.approx((q3 - q1) / (norm.ppf(0.75) - norm.ppf(0.25)))
    assert "Q-Q" in ax.get_title()


def test_ppoints_small_n(plots):
    np.testing.assert_allclose(plots._ppoints(5), (np.arange(1, 6) - 3 / 8) / (5 + 1 / 4))


def test_scale_location(plots, plant_fit):
    fig = plots.scale_location(plant_fit)
    (ax,) = fig.axes
    xy = offsets(ax)
    np.testing.assert_allclose(xy[:, 0], plant_fit.fitted())
    np.testing.assert_allclose(
        xy[:, 1], np.sqrt(np.abs(plant_fit.residuals(type="pearson", scaled=True))))
    assert ax.get_ylim()[0] == 0.0


def test_residuals_vs_numeric(plots, plant, plant_fit):
    fig = plots.residuals_vs(plant_fit, "week", plant)
    (ax,) = fig.axes
    xy = offsets(ax)
    np.testing.assert_allclose(xy[:, 0], plant["week"])
    np.testing.assert_allclose(xy[:, 1], plant_fit.residuals())
    assert ax.get_xlabel() == "week" and ax.get_title() == "Residuals vs week"


def test_residuals_vs_categorical(plots, plant, plant_fit):
    # temp is numeric in the data but C(temp) in the formula: boxplots per level
    fig = plots.residuals_vs(plant_fit, "temp", plant)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "15", "20"]
    r = plant_fit.residuals()
    medians = [line.get_ydata()[0] for line in ax.lines if len(line.get_xdata()) == 2
               and line.get_color() == plots._SMOOTH_COLOR]
    expected = [np.median(r[plant["temp"] == t]) for t in (10, 15, 20)]
    np.testing.assert_allclose(medians, expected)
    assert len(offsets(ax)) == 240
    # forced numeric
    fig = plots.residuals_vs(plant_fit, "temp", plant, categorical=False)
    np.testing.assert_allclose(offsets(fig.axes[0])[:, 0], plant["temp"])


def test_residuals_vs_grouping_factor_without_data(plots, sleep_fit):
    fig = plots.residuals_vs(sleep_fit, "Subject")
    (ax,) = fig.axes
    levels = list(sleep_fit.ranef()["Subject"].index)
    assert [t.get_text() for t in ax.get_xticklabels()] == levels


def test_residuals_vs_unknown(plots, plant, plant_fit):
    with pytest.raises(ValueError, match="'nope' is not a column of the data"):
        plots.residuals_vs(plant_fit, "nope", plant)
    with pytest.raises(ValueError, match="pass data="):
        plots.residuals_vs(plant_fit, "temp")


def test_residuals_vs_rows_matched_by_label(plots, sleep, sleep_fit):
    shuffled = sleep.sample(frac=1.0, random_state=1)
    a = offsets(plots.residuals_vs(sleep_fit, "Days", sleep).axes[0])
    b = offsets(plots.residuals_vs(sleep_fit, "Days", shuffled).axes[0])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="rows the model was fitted to"):
        plots.residuals_vs(sleep_fit, "Days", sleep.iloc[:50])


# -- caterpillar -------------------------------------------------------------------------


def _check_caterpillar_panel(ax, modes: pd.Series, sds: pd.Series, order=None):
    (points,) = by_gid(ax, "modes")
    (intervals,) = by_gid(ax, "intervals")
    x, y = points.get_xdata(), points.get_ydata()
    m = len(modes)
    assert len(x) == m
    if order is None:
        order = np.argsort(modes.to_numpy(), kind="stable")
    np.testing.assert_allclose(x, modes.to_numpy()[order])
    np.testing.assert_allclose(y, np.arange(m))
    segs = np.asarray(intervals.get_segments())
    z = norm.ppf(0.975)
    np.testing.assert_allclose(segs[:, 0, 0], modes.to_numpy()[order] - z * sds.to_numpy()[order])
    np.testing.assert_allclose(segs[:, 1, 0], modes.to_numpy()[order] + z * sds.to_numpy()[order])
    np.testing.assert_allclose(segs[:, 0, 1], np.arange(m))
    return order


def test_caterpillar_one_column(plots, plant_fit):
    fig = plots.caterpillar(plant_fit)
    (ax,) = fig.axes
    re = plant_fit.ranef()["plant_id"]
    sd = re.attrs["condsd"]
    order = _check_caterpillar_panel(ax, re["(Intercept)"], sd["(Intercept)"])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(re.index[order])
    assert np.all(np.diff(re["(Intercept)"].to_numpy()[order]) >= 0)
    assert ax.get_ylabel() == "plant_id" and ax.get_title() == "(Intercept)"


def test_caterpillar_two_columns_share_order(plots, sleep_fit):
    fig = plots.caterpillar(sleep_fit, "Subject")
    assert len(fig.axes) == 2
    re = sleep_fit.ranef()["Subject"]
    sd = re.attrs["condsd"]
    order = _check_caterpillar_panel(fig.axes[0], re["(Intercept)"], sd["(Intercept)"])
    _check_caterpillar_panel(fig.axes[1], re["Days"], sd["Days"], order=order)
    assert [ax.get_title() for ax in fig.axes] == ["(Intercept)", "Days"]


def test_caterpillar_level_and_unsorted(plots, plant_fit):
    fig = plots.caterpillar(plant_fit, level=0.5, sort=False)
    re = plant_fit.ranef()["plant_id"]
    (points,) = by_gid(fig.axes[0], "modes")
    np.testing.assert_allclose(points.get_xdata(), re["(Intercept)"])
    (intervals,) = by_gid(fig.axes[0], "intervals")
    half = np.diff(np.asarray(intervals.get_segments())[:, :, 0], axis=1).ravel() / 2
    np.testing.assert_allclose(half, norm.ppf(0.75) * re.attrs["condsd"]["(Intercept)"])


def test_caterpillar_several_factors():
    pytest.importorskip("matplotlib")
    from mixeff import plots

    pen = load_csv("Penicillin.csv", factors=["plate", "sample"])
    fit = mixeff.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    fig = plots.caterpillar(fit)
    assert len(fig.axes) == 2
    re = fit.ranef()
    for ax, g in zip(fig.axes, ["plate", "sample"], strict=True):
        assert ax.get_ylabel() == g
        _check_caterpillar_panel(ax, re[g]["(Intercept)"], re[g].attrs["condsd"]["(Intercept)"])


def test_caterpillar_errors(plots, plant_fit):
    with pytest.raises(ValueError, match="not a grouping factor"):
        plots.caterpillar(plant_fit, "nope")
    with pytest.raises(ValueError, match="level"):
        plots.caterpillar(plant_fit, level=1.5)
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="1 panel"):
        plots.caterpillar(plant_fit, ax=axes)


# -- fitted lines ------------------------------------------------------------------------


def test_fitted_lines_one_model(plots, plant, plant_fit):
    fig = plots.fitted_lines(plant_fit, plant, x="week", group="plant_id")
    (ax,) = fig.axes
    xy = offsets(ax)
    np.testing.assert_allclose(xy[:, 0], plant["week"])
    np.testing.assert_allclose(xy[:, 1], plant["height"])
    (lines,) = by_gid(ax, "fitted")
    segs = lines.get_segments()
    assert len(segs) == 30  # one line per plant
    fitted = plant_fit.fitted()
    for seg, (_, rows) in zip(segs, plant.groupby("plant_id"), strict=True):
        rows = rows.sort_values("week")
        np.testing.assert_allclose(seg[:, 0], rows["week"])
        np.testing.assert_allclose(seg[:, 1], fitted.loc[rows.index])
    assert ax.get_xlabel() == "week" and ax.get_ylabel() == "height"
    assert PLANT in ax.get_title().replace("\n", " ")


def test_fitted_lines_lm_vs_lmer(plots, plant, plant_fit):
    lm_fit = mixeff.lm("height ~ week * C(temp)", plant)
    fig = plots.fitted_lines({"lm": lm_fit, "lmer": plant_fit}, plant, x="week",
                             group="plant_id", color_by="temp")
    assert [ax.get_title() for ax in fig.axes] == ["lm", "lmer"]
    lm_segs = by_gid(fig.axes[0], "fitted")[0].get_segments()
    assert len(lm_segs) == 30
    # the naive model gives every plant of a temperature the same line
    temp_of = plant.groupby("plant_id")["temp"].first().to_numpy()
    for t in (10, 15, 20):
        same = [s for s, tt in zip(lm_segs, temp_of, strict=True) if tt == t]
        for s in same[1:]:
            np.testing.assert_allclose(s, same[0])
    legend = fig.axes[-1].get_legend()
    assert legend.get_title().get_text() == "temp"
    assert [t.get_text() for t in legend.get_texts()] == ["10", "15", "20"]
    # same colour for a plant's points and line, by temperature
    (lmer_lines,) = by_gid(fig.axes[1], "fitted")
    colors = lmer_lines.get_colors()
    assert len({tuple(c) for c in colors}) == 3


def test_fitted_lines_sequence_and_default_y(plots, sleep, sleep_fit):
    fig = plots.fitted_lines([sleep_fit], sleep, "Days", "Subject")
    (ax,) = fig.axes
    assert ax.get_title().startswith("lmer: ")
    assert len(by_gid(ax, "fitted")[0].get_segments()) == 18
    np.testing.assert_allclose(offsets(ax)[:, 1], sleep["Reaction"])


def test_fitted_lines_without_data(plots, sleep_fit):
    # x a column of the model matrix, group a grouping factor: no data needed
    fig = plots.fitted_lines(sleep_fit, None, "Days", "Subject")
    assert len(by_gid(fig.axes[0], "fitted")[0].get_segments()) == 18


def test_fitted_lines_categorical_x_single_level_dash(plots):
    dye = load_csv("Dyestuff.csv", factors=["Batch"])
    fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", dye)
    fig = plots.fitted_lines(fit, dye, x="Batch", group="Batch")
    (ax,) = fig.axes
    segs = by_gid(ax, "fitted")[0].get_segments()
    assert len(segs) == 6
    fitted = fit.fitted().groupby(dye["Batch"]).first()
    for i, seg in enumerate(segs):  # a horizontal dash at each batch's fitted value
        np.testing.assert_allclose(seg[:, 1], fitted.iloc[i])
        np.testing.assert_allclose(seg[:, 0], [i - 0.3, i + 0.3])
    assert [t.get_text() for t in ax.get_xticklabels()] == list("ABCDEF")


def test_fitted_lines_errors(plots, plant, plant_fit):
    with pytest.raises(ValueError, match="'nope'"):
        plots.fitted_lines(plant_fit, plant, x="nope", group="plant_id")
    with pytest.raises(TypeError, match="fitted"):
        plots.fitted_lines([plant_fit, object()], plant, x="week", group="plant_id")


# -- diagnostics, ax, save_all -----------------------------------------------------------


def test_diagnostics(plots, plant, plant_fit):
    fig = plots.diagnostics(plant_fit)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == [
        "Residuals vs fitted", "Normal Q-Q of scaled residuals", "Scale-location",
        "Residuals vs plant_id"]
    assert PLANT in fig._suptitle.get_text()  # get_suptitle() needs matplotlib 3.8
    fig = plots.diagnostics(plant_fit, "week", plant)
    assert fig.axes[3].get_title() == "Residuals vs week"


def test_draw_into_given_axes(plots, sleep, sleep_fit):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3)
    assert plots.residuals_vs_fitted(sleep_fit, ax=axes[0, 0]) is fig
    assert plots.qq_residuals(sleep_fit, ax=axes[0, 1]) is fig
    assert plots.scale_location(sleep_fit, ax=axes[0, 2]) is fig
    assert plots.residuals_vs(sleep_fit, "Days", sleep, ax=axes[1, 0]) is fig
    assert plots.caterpillar(sleep_fit, ax=axes[1, 1:]) is fig
    assert len(fig.axes) == 6
    assert by_gid(axes[1, 2], "modes")
    fig2, axes2 = plt.subplots(2, 2)
    assert plots.diagnostics(sleep_fit, ax=axes2) is fig2
    fig3, ax3 = plt.subplots()
    assert plots.fitted_lines(sleep_fit, sleep, "Days", "Subject", ax=ax3) is fig3


def test_lowess_recovers_a_line_and_resists_outliers(plots):
    x = np.linspace(0.0, 10.0, 200)
    y = 2.0 + 0.5 * x
    grid, curve = plots._lowess(x, y)
    np.testing.assert_allclose(curve, 2.0 + 0.5 * grid, atol=1e-10)
    y_out = y.copy()
    y_out[::25] += 50.0
    grid, curve = plots._lowess(x, y_out)
    np.testing.assert_allclose(curve, 2.0 + 0.5 * grid, atol=0.05)
    assert plots._lowess(np.ones(10), np.arange(10.0)) is None


def _assert_png(path: Path):
    assert path.is_file()
    with path.open("rb") as fh:
        assert fh.read(8) == PNG_MAGIC


def test_save_all_with_data(plots, plant, plant_fit, tmp_path):
    out = tmp_path / "figs" / "plant"
    paths = plots.save_all(plant_fit, out, data=plant)
    names = [p.name for p in paths]
    assert FIVE <= set(names)
    assert {"diagnostics.png", "residuals_vs_week.png", "residuals_vs_temp.png"} <= set(names)
    assert len(names) == len(set(names)) == 8
    for p in paths:
        assert p.parent == out
        _assert_png(p)
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules[
        "matplotlib.pyplot"].get_fignums()


def test_save_all_without_data(plots, sleep_fit, tmp_path):
    paths = plots.save_all(sleep_fit, tmp_path, dpi=60)
    assert {p.name for p in paths} == FIVE | {"diagnostics.png"}
    for p in paths:
        _assert_png(p)


def test_save_all_defaults(plots, plant, plant_fit):
    assert plots._default_x(plant_fit, plant, "plant_id") == "week"
    assert plots._between_group_factor(plant_fit, plant, "plant_id", "week") == "temp"
    cake = load_csv("cake.csv", factors=["replicate", "recipe", "temperature"])
    fit = mixeff.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", cake)
    # recipe is constant within each recipe:replicate group; temperature varies
    assert plots._default_x(fit, cake, "recipe:replicate") == "temperature"
    assert plots._between_group_factor(fit, cake, "recipe:replicate",
                                       "temperature") == "recipe"


# -- command line ------------------------------------------------------------------------


def test_cli_plot_example(plots, capsys, tmp_path):
    out = tmp_path / "out"
    code = main(["plot", "--example", "plant_growth", PLANT, "--out", str(out), "--dpi", "50"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    paths = [Path(line) for line in stdout.splitlines()]
    assert FIVE <= {p.name for p in paths}
    assert "residuals_vs_temp.png" in {p.name for p in paths}
    for p in paths:
        assert p.parent == out
        _assert_png(p)


def test_cli_plot_csv_options(plots, capsys, tmp_path, sleep):
    csv = tmp_path / "sleep.csv"
    sleep.to_csv(csv, index=False)
    out = tmp_path / "sleep_figs"
    code = main(["plot", str(csv), SLEEP, "--out", str(out), "--x", "Days",
                 "--group", "Subject", "--factor", "Subject", "--ml", "--dpi", "50"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    names = {Path(line).name for line in stdout.splitlines()}
    assert names == FIVE | {"diagnostics.png", "residuals_vs_Days.png"}
    assert all((out / n).is_file() for n in names)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--x", "nope"], "mixeff: error: --x column 'nope' is not a column of the data\n"),
        (["--group", "nope"], "mixeff: error: 'nope' is not a column of the data\n"),
        (["--color-by", "nope"],
         "mixeff: error: --color-by column 'nope' is not a column of the data\n"),
    ],
)
def test_cli_plot_bad_columns(plots, capsys, tmp_path, extra, message):
    code = main(["plot", "--example", "plant_growth", PLANT, "--out", str(tmp_path), *extra])
    stdout, stderr = capsys.readouterr()
    assert code == 2
    assert stderr == message
    assert stdout == ""


def test_cli_plot_usage(capsys):
    code = main(["plot", "--example", "plant_growth", PLANT])  # no --out
    _, err = capsys.readouterr()
    assert code == 2 and "--out" in err
    code = main(["plot", "--help"])
    out, _ = capsys.readouterr()
    assert code == 0 and "--group" in out and "--x" in out
