"""The ``mixeff`` command line, run in-process through :func:`mixeff.cli.main`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mixeff
from mixeff._summary import LmerSummary
from mixeff.cli import _json_safe, main

FORMULA = "height ~ week * C(temp) + (1 | plant_id)"
JSON_KEYS = {"fixef", "fixef_se", "objective", "loglik", "aic", "bic", "sigma", "theta",
             "varcorr", "nobs", "ngroups", "is_singular", "converged", "n_evaluations",
             "optimizer", "messages"}


@pytest.fixture(scope="module")
def plant_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "plant.csv"
    mixeff.datasets.load_plant_growth().to_csv(path, index=False)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_prints_summary(capsys, plant_csv):
    code, out, err = run(capsys, "fit", str(plant_csv), FORMULA, "--ddf", "lme4")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert lines[1] == f"Formula: {FORMULA}"
    assert lines[2] == "   Data: plant.csv"
    assert lines[4].startswith("REML criterion at convergence: 563.")
    assert "Number of obs: 240, groups:  plant_id, 30" in lines
    assert "Fixed effects:" in lines and "Correlation of Fixed Effects:" in lines
    i = lines.index("Fixed effects:")
    assert lines[i + 1].split() == ["Estimate", "Std.", "Error", "t", "value"]
    # the printed summary is the library's
    fit = mixeff.lmer(FORMULA, mixeff.datasets.load_plant_growth())
    fit.data_name = "plant.csv"
    assert out == str(LmerSummary(fit, ddf="lme4")) + "\n"


def test_fit_default_layout(capsys, plant_csv):
    code, out, _ = run(capsys, "fit", str(plant_csv), FORMULA)
    assert code == 0
    fit = mixeff.lmer(FORMULA, mixeff.datasets.load_plant_growth())
    if callable(getattr(fit, "coef_table", None)):  # lmerTest layout with Satterthwaite df
        assert out.startswith("Linear mixed model fit by REML. t-tests use Satterthwaite's")
        assert "Pr(>|t|)" in out
    else:
        assert out.startswith("Linear mixed model fit by REML ['lmerMod']")


def test_fit_json(capsys, plant_csv):
    code, out, _ = run(capsys, "fit", str(plant_csv), FORMULA, "--json")
    assert code == 0
    res = json.loads(out)
    assert JSON_KEYS <= set(res)
    assert res["reml"] is True
    assert res["nobs"] == 240
    assert res["ngroups"] == {"plant_id": 30}
    assert set(res["fixef"]) == set(res["fixef_se"])
    assert len(res["fixef"]) == 6


def test_fit_ml_json_matches_library(capsys, plant_csv):
    code, out, _ = run(capsys, "fit", str(plant_csv), FORMULA, "--ml", "--json")
    assert code == 0
    res = json.loads(out)
    fit = mixeff.lmer(FORMULA, mixeff.datasets.load_plant_growth(), reml=False)
    assert res["reml"] is False
    assert res["objective"] == pytest.approx(fit.objective, rel=1e-10)
    assert res["fixef"] == pytest.approx(fit.to_dict()["fixef"], rel=1e-8)


def test_fit_ml_summary_has_aic_table(capsys, plant_csv):
    code, out, _ = run(capsys, "fit", str(plant_csv), FORMULA, "--ml", "--ddf", "lme4")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Linear mixed model fit by maximum likelihood  ['lmerMod']"
    assert lines[4].split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]


def test_fit_example(capsys):
    code, out, _ = run(capsys, "fit", "--example", "plant_growth", FORMULA, "--ddf", "lme4")
    assert code == 0
    assert out.splitlines()[2] == "   Data: plant_growth"
    code, out, _ = run(capsys, "fit", "--example", "plant_growth", FORMULA, "--json")
    assert code == 0 and json.loads(out)["nobs"] == 240


def test_factor_weights_offset(capsys, plant_csv):
    code, out, _ = run(capsys, "fit", str(plant_csv), "height ~ week * temp + (1 | plant_id)",
                       "--factor", "temp", "plant_id", "--weights", "week1",
                       "--offset", "zero")
    # the columns week1 and zero do not exist: an input error, not a traceback
    assert code == 2
    code, out, _ = run(capsys, "fit", str(plant_csv), "height ~ week * temp + (1 | plant_id)",
                       "--factor", "temp,plant_id")
    assert code == 0
    assert "temp[T.15]" in out


def test_weights_and_offset_lines(capsys, tmp_path):
    data = mixeff.datasets.load_plant_growth()
    data["w"] = 1.0 + (data["week"] % 2)
    data["off"] = 0.1 * data["week"]
    path = tmp_path / "plant_w.csv"
    data.to_csv(path, index=False)
    code, out, _ = run(capsys, "fit", str(path), FORMULA, "--weights", "w", "--offset", "off",
                       "--ddf", "lme4")
    assert code == 0
    lines = out.splitlines()
    assert lines[2:5] == ["   Data: plant_w.csv", "Weights: w", " Offset: off"]


@pytest.mark.parametrize(
    ("formula", "needle"),
    [
        ("height ~ wek + (1 | plant_id)", "'wek'"),
        ("height ~ week + (1 | plant)", "'plant'"),
        ("height ~ week + (1 | plant_id", "parentheses"),
    ],
)
def test_bad_formula_exit_2(capsys, plant_csv, formula, needle):
    code, out, err = run(capsys, "fit", str(plant_csv), formula)
    assert code == 2
    assert out == ""
    assert err.startswith("mixeff: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_missing_file_exit_2(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    code, out, err = run(capsys, "fit", str(missing), FORMULA)
    assert code == 2
    assert err == f"mixeff: error: data file '{missing}' not found\n"


def test_unknown_factor_column(capsys, plant_csv):
    code, _, err = run(capsys, "fit", str(plant_csv), FORMULA, "--factor", "nope")
    assert code == 2
    assert err == "mixeff: error: --factor column 'nope' is not a column of the data\n"


@pytest.mark.parametrize(
    "argv",
    [
        [],                                                   # no command
        ["fit", FORMULA],                                     # no data
        ["fit", "--example", "plant_growth", "x.csv", FORMULA],  # both
        ["fit", "--example", "nope", FORMULA],                # unknown example
        ["frobnicate"],                                       # unknown command
        ["fit", "--example", "plant_growth", FORMULA, "--ddf", "x"],  # unknown ddf
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "usage: mixeff" in err


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "fit" in out
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0 and "--example" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"mixeff {mixeff.__version__}"


def test_json_safe():
    obj = {"a": float("nan"), "b": [np.float64(1.5), np.int64(2)], "c": np.array([np.inf, 1])}
    assert _json_safe(obj) == {"a": None, "b": [1.5, 2], "c": [None, 1.0]}


def test_python_dash_m():
    src = str(Path(mixeff.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "mixeff", "--version"], capture_output=True,
                         text=True, env=env, check=False)
    assert res.returncode == 0
    assert res.stdout.strip() == f"mixeff {mixeff.__version__}"
