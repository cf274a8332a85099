"""Fits compared with stored lme4 1.1-31 references (tests/references/make_references.R).

Tolerances are those of the core-engine issue: objective no more than 1e-6 above lme4's
(lower is fine: a better optimum), fixed effects within 1e-4 of their standard error,
standard deviations within 1e-4 relative, the same singular verdict and number of rows.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv, load_reference, richardson

import mixeff

# name: (csv, factor columns, python formula, reml, extra keyword arguments)
MODELS = {
    "sleepstudy_reml": ("sleepstudy.csv", ["Subject"], "Reaction ~ Days + (Days | Subject)",
                        True, {}),
    "sleepstudy_ml": ("sleepstudy.csv", ["Subject"], "Reaction ~ Days + (Days | Subject)",
                      False, {}),
    "sleepstudy_uncorr_reml": ("sleepstudy.csv", ["Subject"],
                               "Reaction ~ Days + (Days || Subject)", True, {}),
    "sleepstudy_intercept_reml": ("sleepstudy.csv", ["Subject"],
                                  "Reaction ~ Days + (1 | Subject)", True, {}),
    "sleepstudy_weights_reml": ("sleepstudy.csv", ["Subject"],
                                "Reaction ~ Days + (Days | Subject)", True, {"weights": "w"}),
    "sleepstudy_offset_reml": ("sleepstudy.csv", ["Subject"],
                               "Reaction ~ Days + (1 | Subject) + offset(0.5 * Days)", True, {}),
    "dyestuff_reml": ("Dyestuff.csv", ["Batch"], "Yield ~ 1 + (1 | Batch)", True, {}),
    "dyestuff2_reml": ("Dyestuff2.csv", ["Batch"], "Yield ~ 1 + (1 | Batch)", True, {}),
    "penicillin_reml": ("Penicillin.csv", ["plate", "sample"],
                        "diameter ~ 1 + (1 | plate) + (1 | sample)", True, {}),
    "penicillin_ml": ("Penicillin.csv", ["plate", "sample"],
                      "diameter ~ 1 + (1 | plate) + (1 | sample)", False, {}),
    "pastes_reml": ("Pastes.csv", ["batch", "cask"], "strength ~ 1 + (1 | batch/cask)", True, {}),
    "cake_reml": ("cake.csv", ["replicate", "recipe", "temperature"],
                  "angle ~ recipe * temperature + (1 | recipe:replicate)", True, {}),
    "insteval_reml": ("InstEval.csv", ["s", "d", "service", "dept"],
                      "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", True, {}),
    "plant_reml": ("plant_growth", [], "height ~ week * C(temp) + (1 | plant_id)", True, {}),
    "plant_ml": ("plant_growth", [], "height ~ week * C(temp) + (1 | plant_id)", False, {}),
    "plant_slopes_reml": ("plant_growth", [], "height ~ week * C(temp) + (week | plant_id)",
                          True, {}),
}


def r_name(name: str) -> str:
    """Map a formulaic column name to R's (``C(temp)[T.15]`` -> ``temp15``)."""
    parts = []
    for part in name.split(":"):
        m = re.fullmatch(r"(?:C\()?([^()\[]+?)\)?\[(?:T\.)?(.+)\]", part)
        parts.append(m.group(1) + m.group(2) if m else part)
    return ":".join(parts)


def load_data(csv: str, factors: list[str]) -> pd.DataFrame:
    if csv == "plant_growth":
        return mixeff.datasets.load_plant_growth()
    return load_csv(csv, factors)


_FITS: dict[str, tuple[mixeff.LmerFit, dict]] = {}


def fitted(name: str):
    if name not in _FITS:
        ref = load_reference(name)
        csv, factors, formula, reml, kw = MODELS[name]
        data = load_data(csv, factors)
        if kw.get("weights") == "w":
            levels = ref["factor_levels"]["Subject"]
            codes = pd.Categorical(data["Subject"], categories=levels).codes
            data["w"] = 1 + ((codes + 1) % 3) / 2
        _FITS[name] = (mixeff.lmer(formula, data, reml=reml, **kw), ref)
    return _FITS[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_objective_not_above_lme4(name):
    fit, ref = fitted(name)
    assert fit.reml == ref["reml"]
    assert fit.objective <= ref["objective"] + 1e-6, (fit.objective, ref["objective"])
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.is_singular == ref["is_singular"]


@pytest.mark.parametrize("name", list(MODELS))
def test_fixed_effects_within_a_ten_thousandth_of_their_se(name):
    fit, ref = fitted(name)
    ours = fit.fixef.rename(index=r_name)
    theirs = pd.Series(ref["fixef"], index=ref["fixef_names"])
    se = pd.Series(ref["std_errors"], index=ref["fixef_names"])
    assert sorted(ours.index) == sorted(theirs.index)
    ours = ours[theirs.index]
    np.testing.assert_array_less(np.abs(ours - theirs) / se, 1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_variance_components(name):
    fit, ref = fitted(name)
    ours = fit.varcorr()
    theirs = pd.DataFrame(ref["varcorr"])
    assert len(ours) == len(theirs)
    assert list(ours["group"]) == list(theirs["grp"])
    def name(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else x

    for (_, o), (_, t) in zip(ours.iterrows(), theirs.iterrows(), strict=True):
        assert name(o["name1"]) == name(t["var1"])
        assert name(o["name2"]) == name(t["var2"])
        if name(t["var2"]) is None:   # a standard deviation
            assert o["sd_cor"] == pytest.approx(t["sdcor"], rel=1e-4, abs=1e-4 * fit.sigma)
        elif not ref["is_singular"]:   # a correlation
            assert o["sd_cor"] == pytest.approx(t["sdcor"], abs=1e-3)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)


@pytest.mark.parametrize("name", [n for n in MODELS if n != "insteval_reml"])
def test_fitted_values_and_conditional_modes(name):
    fit, ref = fitted(name)
    scale = fit.sigma
    np.testing.assert_allclose(fit.fitted().to_numpy(), ref["fitted"], rtol=0, atol=1e-3 * scale)
    re_ours = fit.ranef()
    for grp, r in ref["ranef"].items():
        label = grp
        ours = re_ours[label]
        theirs = pd.DataFrame(r["values"], index=r["levels"], columns=r["columns"])
        ours = ours.loc[theirs.index]
        np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0,
                                   atol=1e-3 * scale)
        cv = np.asarray(r["condvar"], dtype=float)
        ocv = ours.attrs["condvar"] if "condvar" in ours.attrs else re_ours[label].attrs["condvar"]
        order = pd.Index(re_ours[label].index).get_indexer(theirs.index)
        np.testing.assert_allclose(ocv[order], cv, rtol=2e-3, atol=1e-6 * scale**2)


@pytest.mark.parametrize("name", list(MODELS))
def test_analytic_gradient_on_reference_model(name):
    """The analytic gradient equals Richardson differences at and away from the optimum."""
    fit, _ = fitted(name)
    obj = fit._obj
    lower = fit.structure.lower_bounds()
    # keep every evaluation inside the bounds: move boundary entries inwards
    base = np.where(np.isfinite(lower), np.maximum(fit.theta, 0.05), fit.theta)
    for theta in (base, base * 1.3 + 0.05):
        g = obj.gradient(theta)
        fd = richardson(obj, theta, h=1e-4)
        # Rounding: both sides are sums of terms that cancel at the optimum; allow an
        # error of 1e-9 of the objective's magnitude per unit of theta.
        noise = 1e-9 * abs(obj(theta))
        np.testing.assert_allclose(g, fd, rtol=1e-5,
                                   atol=1e-5 * max(1.0, np.abs(fd).max()) + noise)
    obj.solve(fit.theta)


@pytest.mark.parametrize("name", list(MODELS))
def test_factorization_paths_agree(name):
    """CHOLMOD on the whole matrix and the Schur + dense path give the same numbers."""
    from mixeff._objective import LmmObjective

    fit, _ = fitted(name)
    paths = {f: LmmObjective(fit.blocks, reml=fit.reml, factorization=f)
             for f in ("cholmod", "schur")}
    for theta in (fit.theta, fit.theta * 0.7 + 0.1):
        sols = {f: o.solve(theta) for f, o in paths.items()}
        a, b = sols["cholmod"], sols["schur"]
        assert a.objective == pytest.approx(b.objective, rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(paths["cholmod"].u_hat(a), paths["schur"].u_hat(b),
                                   rtol=1e-7, atol=1e-10)
    g = {f: o.gradient(fit.theta * 0.7 + 0.1) for f, o in paths.items()}
    np.testing.assert_allclose(g["cholmod"], g["schur"], rtol=1e-7, atol=1e-7)
