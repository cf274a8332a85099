"""Confidence intervals (lme4's ``confint``): Wald, likelihood profile, parametric bootstrap.

References: the ``confint_wald`` and ``confint_profile`` rows of every model file in
``tests/references/lme4`` (lme4 1.1-31). Wald intervals must agree to 1e-6 (plus the
1e-4 SE by which the fits may differ); profile
intervals to 1e-3 relative: lme4 interpolates a profile computed on a grid with splines,
we find the crossings on the exact profile (lme4's spline error is about 1e-4 here).

Two models are compared only in part, because lme4's own profile is off there (its
warnings are stored under ``aux_warnings.confint_profile``):

* ``sleepstudy_weights_reml``: lme4 profiles the fixed effects of a weighted model with a
  predictor object that drops the weights (the intervals come out 30-60 times too
  narrow, with "non-monotonic profile" warnings). Our fixed-effect intervals are checked
  instead against refits with the coefficient moved into the offset.
* ``plant_slopes_reml`` (singular: correlation -1, slope SD near 0): along the profile of
  ``.sig01`` the optimal correlation jumps from -1 to +1, a kink lme4's spline
  smooths over; its interval is narrower than the exact one (lower end 0.6366 against
  0.6136, where R's own deviance function gives an increase of 1.959964^2). The other
  rows agree, including ``.sig02 = [-1, 1]`` and ``.sig03`` from 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_lme4_reference import MODELS, fitted, load_data, r_name

import mixeff
from mixeff._confint import (
    Profiler,
    _boot_interval,
    _norm_inter,
    confint,
    minimize_bounded,
    parameter_names,
    simulate,
)

PROFILE_MODELS = [n for n in MODELS if n != "insteval_reml"]   # lme4 skipped InstEval
Z975 = float(stats.norm.ppf(0.975))


def _reference(ref: dict, key: str) -> pd.DataFrame:
    return pd.DataFrame(ref[key]).set_index("term").astype(float)


def _ours(ci: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    ci = ci.rename(index=r_name)
    assert list(ci.index) == list(ref.index)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    return ci


@pytest.fixture(scope="module")
def profiles():
    cache: dict[str, pd.DataFrame] = {}

    def get(name):
        if name not in cache:
            fit, _ = fitted(name)
            cache[name] = confint(fit, method="profile")
        return cache[name]

    return get


# --------------------------------------------------------------------------------------
# Wald
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_wald_matches_lme4(name):
    fit, ref = fitted(name)
    theirs = _reference(ref, "confint_wald")
    ours = _ours(confint(fit, method="Wald"), theirs)
    nvp = fit.structure.ntheta + 1
    assert ours.iloc[:nvp].isna().all().all()
    assert theirs.iloc[:nvp].isna().all().all()
    # 1e-6 relative, plus what the fits themselves may differ by (estimates within 1e-4 of
    # their SE, as the core reference tests allow): sleepstudy_ml, penicillin_reml and
    # the weighted model differ at 5e-5 SE, InstEval at 8e-5 SE, the rest far less
    a, b = ours.iloc[nvp:].to_numpy(), theirs.iloc[nvp:].to_numpy()
    se = (b[:, 1] - b[:, 0]) / (2.0 * Z975)
    assert np.all(np.abs(a - b) <= 1e-6 * np.abs(b) + 1e-4 * se[:, None])


def test_wald_level_and_labels():
    fit, _ = fitted("sleepstudy_reml")
    ci = confint(fit, method="wald", level=0.9, parm="beta_")
    assert list(ci.columns) == ["5 %", "95 %"]
    se = np.sqrt(np.diag(fit.vcov()))
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(ci["95 %"], fit.fixef + z * se, rtol=1e-12)
    assert list(confint(fit, method="Wald", level=0.99).columns) == ["0.5 %", "99.5 %"]


# --------------------------------------------------------------------------------------
# profile
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILE_MODELS)
def test_profile_matches_lme4(name, profiles):
    fit, ref = fitted(name)
    theirs = _reference(ref, "confint_profile")
    ours = _ours(profiles(name), theirs)
    rows = list(theirs.index)
    if name == "sleepstudy_weights_reml":
        rows = rows[: fit.structure.ntheta + 1]          # see the module docstring
    if name == "plant_slopes_reml":
        rows = [r for r in rows if r != ".sig01"]
    a, b = ours.loc[rows].to_numpy(), theirs.loc[rows].to_numpy()
    # relative to the value, or to the half-width for ends near zero (plant_slopes temp20:
    # 0.0132585 against lme4's 0.0132750; R's deviance confirms ours, zeta -1.959964
    # against -1.959928)
    scale = np.maximum(np.abs(b), (b[:, 1:] - b[:, :1]) / 2)
    assert np.all(np.abs(a - b) <= 1e-3 * scale), pd.DataFrame(np.abs(a - b) / scale,
                                                                 index=rows)


def test_profile_bounds_as_lme4(profiles):
    # a zero SD estimate (dyestuff2) or a profile that does not reach the cutoff before
    # zero (pastes .sig02, plant slopes .sig03): lower end 0; correlation stuck at -1
    assert profiles("dyestuff2_reml").loc[".sig01", "2.5 %"] == 0.0
    assert profiles("pastes_reml").loc[".sig02", "2.5 %"] == 0.0
    slopes = profiles("plant_slopes_reml")
    assert list(slopes.loc[".sig02"]) == [-1.0, 1.0]
    assert slopes.loc[".sig03", "2.5 %"] == 0.0


def test_profile_plant_slopes_sig01_is_exact(profiles):
    """Our ``.sig01`` interval is wider than lme4's spline answer, and exact.

    R, ``devfun2(m)`` of lme4 at sd1 = 0.6135980705649925, cor = +1,
    sd2 = 0.014413077196896024, sigma = 0.643426645310523 gives base + 3.841459 (a
    zeta of -1.959964); our lower end is that sd1.
    """
    fit, ref = fitted("plant_slopes_reml")
    ours = profiles("plant_slopes_reml").loc[".sig01"]
    theirs = _reference(ref, "confint_profile").loc[".sig01"]
    assert ours["2.5 %"] < theirs["2.5 %"] and ours["97.5 %"] > theirs["97.5 %"]
    assert ours["2.5 %"] == pytest.approx(0.6135980705649925, rel=1e-6)
    # our ML deviance at R's point: the same increase
    prof = Profiler(fit)
    sd1, sd2, sig = 0.6135980705649925, 0.014413077196896024, 0.643426645310523
    theta = np.array([sd1, sd2, 0.0]) / sig            # cor = +1: Cholesky factor [sd1 0; sd2 0]
    sol = prof.obj.solve(theta)
    n = prof.n
    dev = sol.ldL2 + sol.r2 / sig**2 + n * np.log(2 * np.pi * sig**2)
    assert dev - prof.base == pytest.approx(3.841459, abs=1e-5)


def test_profile_weighted_fixed_effects_against_offset_refits(profiles):
    """Fixed-effect ends for the weighted model: refit with the coefficient in the offset.

    The ML deviance of the model with ``beta_j`` moved into the offset (a design-level
    refit, independent of the profile's algebra on the blocks) exceeds the ML optimum by
    ``qnorm(0.975)^2`` at both ends. (R's lmer gives the same, 1.959964 at 237.5357,
    265.2492 and 7.404143, 13.53926; lme4's profile gives much narrower intervals.)
    """
    fit, ref = fitted("sleepstudy_weights_reml")
    ours = profiles("sleepstudy_weights_reml")
    data = load_data("sleepstudy.csv", ["Subject"])
    levels = ref["factor_levels"]["Subject"]
    codes = pd.Categorical(data["Subject"], categories=levels).codes
    data["w"] = 1 + ((codes + 1) % 3) / 2
    base = _objective(fit.refit(reml=False))
    for b in ours.loc["(Intercept)"]:
        m = mixeff.lmer("Reaction ~ 0 + Days + (Days | Subject)", data, reml=False,
                        weights="w", offset=np.full(len(data), b))
        assert np.sqrt(_objective(m) - base) == pytest.approx(Z975, abs=2e-5)
    for b in ours.loc["Days"]:
        m = mixeff.lmer("Reaction ~ 1 + (Days | Subject)", data, reml=False, weights="w",
                        offset=b * data["Days"].to_numpy(float))
        assert np.sqrt(_objective(m) - base) == pytest.approx(Z975, abs=2e-5)


def _objective(m) -> float:
    """A fit's objective, re-minimised from its theta (leaves a theta_ii = 0 saddle the
    core optimiser can stop on: the lower-end intercept refit above does)."""
    _, f = minimize_bounded(lambda t: (m._obj(t), m._obj.gradient(t)), m.theta,
                            m.structure.lower_bounds())
    return min(f, m.objective)


def test_profile_of_reml_fit_is_that_of_the_ml_fit(profiles):
    np.testing.assert_allclose(profiles("sleepstudy_reml"), profiles("sleepstudy_ml"),
                               rtol=1e-5)


def test_profile_zeta_at_the_ends():
    fit, _ = fitted("penicillin_reml")
    prof = Profiler(fit)
    for name in (".sig02", ".sigma", "(Intercept)"):
        lo, hi = prof.interval(name)
        assert prof.zeta(name, lo) == pytest.approx(-Z975, abs=1e-5)
        assert prof.zeta(name, hi) == pytest.approx(Z975, abs=1e-5)
        zs = [z for _, z in sorted(prof.points[name])]
        assert np.all(np.diff(zs) >= -1e-6)           # monotone


def test_profile_selected_parameters_and_level():
    fit, ref = fitted("sleepstudy_intercept_reml")
    ci = confint(fit, parm=["Days", ".sigma"], level=0.9)
    assert list(ci.index) == [".sigma", "Days"]
    assert list(ci.columns) == ["5 %", "95 %"]
    full = confint(fit, parm="theta_")
    assert list(full.index) == [".sig01", ".sigma"]
    theirs = _reference(ref, "confint_profile")
    np.testing.assert_allclose(full, theirs.loc[[".sig01", ".sigma"]], rtol=1e-3)
    # a 90% interval lies inside the 95% one
    wide = confint(fit, parm=[".sigma", "Days"])
    assert np.all(ci["5 %"] > wide["2.5 %"]) and np.all(ci["95 %"] < wide["97.5 %"])


def test_fit_method_and_errors():
    fit, _ = fitted("dyestuff_reml")
    pd.testing.assert_frame_equal(fit.confint(method="Wald"), confint(fit, method="Wald"))
    with pytest.raises(ValueError, match="method"):
        confint(fit, method="bayes")
    with pytest.raises(KeyError, match="unknown parameter"):
        confint(fit, parm="Days")
    with pytest.raises(ValueError, match="level"):
        confint(fit, level=95)
    assert parameter_names(fit) == [".sig01", ".sigma", "(Intercept)"]


# --------------------------------------------------------------------------------------
# parametric bootstrap
# --------------------------------------------------------------------------------------


def test_boot_is_reproducible_with_a_seed():
    fit, _ = fitted("dyestuff_reml")
    a = confint(fit, method="boot", nsim=25, seed=11, progress=False)
    b = confint(fit, method="boot", nsim=25, seed=11, progress=False)
    c = confint(fit, method="boot", nsim=25, seed=12, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    reps = a.attrs["replicates"]
    assert reps.shape == (25, 3) and list(reps.columns) == [".sig01", ".sigma", "(Intercept)"]


def test_boot_progress_bar(capsys):
    fit, _ = fitted("dyestuff_reml")
    confint(fit, method="boot", nsim=5, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "5/5" in err
    confint(fit, method="boot", nsim=5, seed=1, progress=False)
    assert capsys.readouterr().err == ""


def test_boot_close_to_profile_on_sleepstudy(profiles):
    fit, _ = fitted("sleepstudy_reml")
    boot = confint(fit, method="boot", nsim=200, seed=2024, progress=False)
    prof = profiles("sleepstudy_reml")
    width = (prof["97.5 %"] - prof["2.5 %"]).to_numpy()
    diff = np.abs(boot.to_numpy() - prof.to_numpy())
    assert np.all(diff <= 0.25 * width[:, None]), pd.DataFrame(diff / width[:, None],
                                                                index=prof.index)


def _simulated_data(seed: int = 5) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    m, k = 40, 8
    truth = {"sd0": 2.0, "sd1": 0.6, "cor": 0.3, "sigma": 1.0, "b0": 10.0, "b1": 1.5}
    cov = np.array([[truth["sd0"] ** 2, truth["cor"] * truth["sd0"] * truth["sd1"]],
                    [truth["cor"] * truth["sd0"] * truth["sd1"], truth["sd1"] ** 2]])
    b = rng.multivariate_normal([0, 0], cov, size=m)
    g = np.repeat(np.arange(m), k)
    x = np.tile(np.arange(k, dtype=float), m)
    y = (truth["b0"] + b[g, 0] + (truth["b1"] + b[g, 1]) * x
         + truth["sigma"] * rng.standard_normal(m * k))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{i:02d}" for i in g]}), truth


def test_boot_sanity_on_a_simulated_model():
    data, _ = _simulated_data()
    fit = mixeff.lmer("y ~ x + (x | g)", data)
    ci = confint(fit, method="boot", nsim=100, seed=3, progress=False)
    reps = ci.attrs["replicates"]
    assert reps.notna().all().all()
    # the spread of the refitted fixed effects is their standard error
    se = np.sqrt(np.diag(fit.vcov()))
    ratio = reps[["(Intercept)", "x"]].std().to_numpy() / se
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio
    # REML variance estimates are nearly unbiased: replicates centre on the estimate
    assert reps[".sigma"].mean() == pytest.approx(fit.sigma, rel=0.03)
    assert np.all(ci["2.5 %"] < ci["97.5 %"])


def test_boot_coverage_on_simulated_models():
    """90% percentile intervals cover the true slope and sigma in most of 30 data sets.

    Each data set: 15 groups of 6, ``y = 1 + 0.5 x + b_g + e`` with ``sd(b) = sd(e) = 1``;
    60 bootstrap replicates each. Nominal coverage 27 of 30; 23 or more is expected with
    probability 0.99 (binomial), and the seeds are fixed.
    """
    covered = np.zeros(2, dtype=int)
    for k in range(30):
        rng = np.random.default_rng(100 + k)
        g = np.repeat(np.arange(15), 6)
        x = rng.uniform(-1, 1, g.size)
        y = 1 + 0.5 * x + rng.standard_normal(15)[g] + rng.standard_normal(g.size)
        data = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
        fit = mixeff.lmer("y ~ x + (1 | g)", data)
        ci = confint(fit, parm=[".sigma", "x"], level=0.9, method="boot", nsim=60, seed=k,
                     progress=False)
        covered += (ci["5 %"] < [1.0, 0.5]).to_numpy() & (ci["95 %"] > [1.0, 0.5]).to_numpy()
    assert np.all(covered >= 23), covered


def test_simulated_responses_have_the_model_moments():
    data, _ = _simulated_data()
    fit = mixeff.lmer("y ~ x + (x | g)", data)
    Y = simulate(fit, nsim=4000, seed=9)
    rows = np.flatnonzero(data["g"] == "s00")
    x = data["x"].to_numpy()[rows]
    Z = np.column_stack([np.ones(rows.size), x])
    S = fit.structure.covariances(fit.theta, fit.sigma)[0]
    expected = Z @ S @ Z.T + fit.sigma**2 * np.eye(rows.size)
    emp = np.cov(Y[rows])
    assert np.max(np.abs(emp - expected)) < 0.08 * np.max(np.abs(expected))
    np.testing.assert_allclose(Y.mean(axis=1), fit.design.X @ fit.fixef.to_numpy(),
                               atol=5 * np.sqrt(np.max(np.diag(expected)) / 4000))
    # rows of different groups are independent
    other = np.flatnonzero(data["g"] == "s01")[0]
    assert abs(np.corrcoef(Y[rows[0]], Y[other])[0, 1]) < 0.06


def test_percentile_interpolation_as_boot_package():
    # R: boot:::norm.inter(t, alpha) (boot 1.3-28)
    t = np.array([3.1, 0.2, 5.5, 2.2, 4.7, 1.9, 0.8, 3.3, 2.8, 4.1, 6.0, 1.1, 2.5])
    np.testing.assert_allclose(_norm_inter(t, np.array([0.025, 0.975])), [0.2, 6.0])
    np.testing.assert_allclose(_norm_inter(t, np.array([0.1, 0.9])),
                               [0.477142358697292, 5.769048034418923], rtol=1e-12)
    t2 = np.sin(np.arange(1, 100) * 3.3)
    np.testing.assert_allclose(_norm_inter(t2, np.array([0.025, 0.5, 0.975])),
                               [-0.997342667066297, -0.025633165423796, 0.997824971787358],
                               rtol=1e-12)
    # missing replicates are dropped
    np.testing.assert_allclose(_norm_inter(np.append(t, np.nan), np.array([0.1, 0.9])),
                               [0.477142358697292, 5.769048034418923], rtol=1e-12)


def test_boot_interval_types():
    t = np.sin(np.arange(1, 100) * 3.3)
    perc = _boot_interval(t, 0.1, 0.95, "perc")
    basic = _boot_interval(t, 0.1, 0.95, "basic")
    np.testing.assert_allclose(basic, 0.2 - perc[::-1])
    norm = _boot_interval(t, 0.1, 0.95, "norm")
    half = np.std(t, ddof=1) * Z975
    centre = 0.1 - (np.mean(t) - 0.1)
    np.testing.assert_allclose(norm, [centre - half, centre + half])
    fit, _ = fitted("dyestuff_reml")
    ci = confint(fit, method="boot", nsim=20, seed=1, progress=False, boot_type="basic")
    reps = ci.attrs["replicates"]["(Intercept)"].to_numpy()
    np.testing.assert_allclose(ci.loc["(Intercept)"],
                               _boot_interval(reps, fit.fixef.iloc[0], 0.95, "basic"))
    with pytest.raises(ValueError, match="boot_type"):
        confint(fit, method="boot", nsim=2, progress=False, boot_type="bca")
