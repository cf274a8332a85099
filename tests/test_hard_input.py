"""Inputs that used to escape as other libraries' errors or fit the wrong model (issue 19,
item 5); each now fits as lme4 does or raises a clear mixeff error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv, load_reference

import mixeff
from mixeff.cli import main


def _float_groups() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    g = rng.choice([0.1, 0.2, 0.3, 0.1 + 0.2, 0.5, 0.7], n)
    d = pd.DataFrame({"g": g, "x": rng.normal(size=n)})
    d["y"] = d.x + np.select([np.isclose(g, v) for v in (0.1, 0.2, 0.3, 0.5, 0.7)],
                             [-1.0, 0.5, 1.0, 0.0, -0.3]) + rng.normal(size=n)
    return d


def test_float_levels_printed_alike_are_one_level_as_in_r():
    """0.3 and 0.1 + 0.2 both print as "0.3": R's factor() (so lme4) makes them one level
    (``factor(c(0.3, 0.1 + 0.2))`` has the single level "0.3")."""
    d = _float_groups()
    assert (d.g == 0.1 + 0.2).any() and (d.g == 0.3).any()
    fit = mixeff.lmer("y ~ x + (1 | g)", d)
    rounded = mixeff.lmer("y ~ x + (1 | g)", d.assign(g=d.g.round(12)))
    re = fit.ranef(condvar=False)["g"]
    assert list(re.index) == ["0.1", "0.2", "0.3", "0.5", "0.7"]
    assert fit.ngroups == {"g": 5}
    assert fit.objective == rounded.objective
    np.testing.assert_array_equal(re.to_numpy(), rounded.ranef(condvar=False)["g"].to_numpy())
    assert any("'0.3'" in m and "one level" in m for m in fit.design.messages)
    # predict (the pandas error "Reindexing only valid with uniquely valued Index")
    np.testing.assert_allclose(fit.predict(d), fit.fitted().to_numpy(), rtol=1e-12)
    new = pd.DataFrame({"x": [0.0, 0.0], "g": [0.1 + 0.2, 0.3]})
    p = fit.predict(new)
    assert p[0] == p[1] == pytest.approx(fit.fixef["(Intercept)"] + re.loc["0.3"].iloc[0])


def test_missing_parquet_path_and_unmatched_glob(tmp_path):
    d = _float_groups()
    with pytest.raises(mixeff.DataError, match="data path .*nothere.parquet' does not exist"):
        mixeff.lmer("y ~ x + (1 | g)", str(tmp_path / "nothere.parquet"))
    with pytest.raises(mixeff.DataError, match=r"no files match the data glob .*\*\.parquet"):
        mixeff.lmer("y ~ x + (1 | g)", str(tmp_path / "sub" / "*.parquet"))
    assert len(d)


def test_csv_glob_and_csv_path_are_clear_errors(tmp_path):
    d = _float_groups()
    d.iloc[:100].to_csv(tmp_path / "a.csv", index=False)
    d.iloc[100:].to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(mixeff.DataError, match=r"matches files that are not Parquet \(\.csv.*"
                       r"pandas\.read_csv"):
        mixeff.lmer("y ~ x + (1 | g)", str(tmp_path / "*.csv"))
    with pytest.raises(mixeff.DataError, match=r"is a path but not of Parquet data.*"
                       r"pandas\.read_csv"):
        mixeff.lmer("y ~ x + (1 | g)", str(tmp_path / "a.csv"))


def test_corrupt_parquet_file_is_a_data_error(tmp_path):
    pytest.importorskip("dask.dataframe")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not a parquet file at all")
    with pytest.raises(mixeff.DataError, match="cannot read the Parquet data"):
        mixeff.lmer("y ~ x + (1 | g)", str(bad))


def test_all_zero_weights_say_so():
    d = _float_groups()
    with pytest.raises(mixeff.DataError, match="all 200 weights are zero"):
        mixeff.lmer("y ~ x + (1 | g)", d, weights=np.zeros(len(d)))
    w = np.zeros(len(d))
    w[:5] = np.nan
    with pytest.raises(mixeff.DataError, match="195 have weight zero and the other 5 a "
                       "missing value"):
        mixeff.lmer("y ~ x + (1 | g)", d, weights=w)


def test_response_far_from_zero_with_tiny_spread_is_fitted():
    """``y = 1e12 + 1e-5 * Reaction``: the spread is ~20 units in the last place of 1e12.

    lme4's own fit of ``y`` is inaccurate (its sums lose the spread: a Days slope of 0
    and a singular fit; see the R script); its fit of ``y - 1e12`` (exact in floating
    point) is the answer on these numbers, and mixeff's fit of ``y`` must equal it to the
    tolerances of the lme4 reference tests.
    """
    ref = load_reference("large_offset_reml")["shifted_fit"]
    num = {k: np.array([float(v) for v in ref[k]]) for k in
           ("theta", "sigma", "fixef", "std_errors", "sdcor", "objective")}
    ss = load_csv("sleepstudy.csv", ["Subject"])
    ss["y"] = 1e12 + 1e-5 * ss["Reaction"]
    fit = mixeff.lmer("y ~ Days + (Days | Subject)", ss)
    assert fit.objective <= num["objective"][0] + 1e-6
    assert fit.objective == pytest.approx(num["objective"][0], abs=1e-5)
    assert fit.sigma == pytest.approx(num["sigma"][0], rel=1e-4)
    assert fit.fixef["Days"] == pytest.approx(num["fixef"][1], abs=1e-4 * num["std_errors"][1])
    # the intercept: 1e12 + 0.0025, to the spacing of doubles at 1e12 (1.2e-4)
    assert abs(fit.fixef["(Intercept)"] - 1e12 - num["fixef"][0]) <= np.spacing(1e12)
    vc = fit.varcorr()
    sds = vc[vc["name2"].isna()]["sd_cor"].to_numpy()
    # R's order = "lower.tri": sd (Intercept), cor, sd Days, residual sd
    np.testing.assert_allclose(sds, num["sdcor"][[0, 2, 3]], rtol=1e-4, atol=1e-4 * fit.sigma)
    cor = vc[vc["name2"].notna()]["sd_cor"].to_numpy()
    np.testing.assert_allclose(cor, num["sdcor"][[1]], atol=1e-3)
    # still constant up to rounding: refused
    with pytest.raises(mixeff.DataError, match="is constant"):
        mixeff.lmer("y ~ Days + (Days | Subject)", ss.assign(y=1e12 + 0.0 * ss["Days"]))


@pytest.mark.parametrize("bad", ["no", "yes", "FALSE", None, 0, 1, 1.0, [True]])
def test_reml_must_be_a_bool(bad):
    d = _float_groups()
    with pytest.raises(mixeff.DataError, match=r"reml must be True or False, not "):
        mixeff.lmer("y ~ x + (1 | g)", d, reml=bad)


def test_reml_numpy_bool_accepted():
    d = _float_groups()
    a = mixeff.lmer("y ~ x + (1 | g)", d, reml=np.False_)
    assert a.reml is False
    assert a.objective == mixeff.lmer("y ~ x + (1 | g)", d, reml=False).objective


@pytest.mark.parametrize("dpi", ["100000", "0", "-3", "1201"])
def test_cli_plot_dpi_out_of_range(dpi, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code = main(["plot", "--example", "plant_growth", "height ~ week + (1 | plant_id)",
                 "--out", str(tmp_path), "--dpi", dpi])
    assert code == 2
    err = capsys.readouterr().err
    assert "--dpi must be between 1 and 1200" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
