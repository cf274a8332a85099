"""predict / simulate / refit / update compared with lme4 1.1-31 and with fresh fits.

* ``predict``: the cases stored by ``tests/references/make_predict_references.R``
  (``predict_<model>.json``): fitted rows, new rows of known and unknown levels, missing
  values, ``re.form = NA`` and partial ``re.form`` formulas, crossed and nested factors, an
  interaction grouping factor, offsets. Population-level predictions agree to 1e-8
  relative; predictions with random effects to 1e-3 of the response's SD (our optimum and
  lme4's differ in theta by up to ~1e-5), as the fitted values in ``test_lme4_reference``.
  Errors where R errors. The mechanics are also checked exactly: predicting the fitted
  rows as new data gives the fitted values.
* ``simulate``: moments of many draws against the model's; seeds.
* ``refit``: equal to a fresh ``lmer`` fit on data with the new response; the design and
  the Z/X blocks are reused, not rebuilt.
* ``update``: the R ``update()`` calls stored in the references (formula text, criterion,
  fixed effects) and argument handling.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import load_csv, load_reference

import mixeff
from mixeff import DataError, FormulaError, MixeffError
from mixeff._predict import predict, refit, simulate, update, update_formula

SS_FORMULA = "Reaction ~ Days + (Days | Subject)"

# reference name: (csv, factor columns, python formula, lmer keyword arguments)
MODELS = {
    "sleepstudy_reml": ("sleepstudy.csv", ["Subject"], SS_FORMULA, {}),
    "sleepstudy_ml": ("sleepstudy.csv", ["Subject"], SS_FORMULA, {"reml": False}),
    "sleepstudy_uncorr": ("sleepstudy.csv", ["Subject"], "Reaction ~ Days + (Days || Subject)",
                          {}),
    "sleepstudy_weights": ("sleepstudy.csv", ["Subject"], SS_FORMULA, {"weights": "w"}),
    "sleepstudy_offset": ("sleepstudy.csv", ["Subject"],
                          "Reaction ~ Days + (1 | Subject) + offset(0.5 * Days)", {}),
    "plant_reml": ("plant_growth", [], "height ~ week * C(temp) + (1 | plant_id)", {}),
    "plant_slopes": ("plant_growth", [], "height ~ week * C(temp) + (week | plant_id)", {}),
    "penicillin_reml": ("Penicillin.csv", ["plate", "sample"],
                        "diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    "pastes_reml": ("Pastes.csv", ["batch", "cask"], "strength ~ 1 + (1 | batch/cask)", {}),
    "cake_reml": ("cake.csv", ["replicate", "recipe", "temperature"],
                  "angle ~ recipe * temperature + (1 | recipe:replicate)", {}),
}


def load_data(csv: str, factors: list[str]) -> pd.DataFrame:
    if csv == "plant_growth":
        return mixeff.datasets.load_plant_growth()
    data = load_csv(csv, factors)
    if csv == "sleepstudy.csv":
        # R: w <- 1 + (as.integer(Subject) %% 3) / 2, levels in numeric order
        levels = sorted(data["Subject"].unique(), key=int)
        codes = pd.Categorical(data["Subject"], categories=levels).codes
        data["w"] = 1 + ((codes + 1) % 3) / 2
    return data


_FITS: dict[str, tuple[mixeff.LmerFit, pd.DataFrame, dict]] = {}


def model(name: str) -> tuple[mixeff.LmerFit, pd.DataFrame, dict]:
    if name not in _FITS:
        csv, factors, formula, kw = MODELS[name]
        data = load_data(csv, factors)
        _FITS[name] = (mixeff.lmer(formula, data, **kw), data, load_reference(f"predict_{name}"))
    return _FITS[name]


def newdata_of(case: dict, name: str) -> pd.DataFrame | None:
    if case["newdata"] is None:
        return None
    cols = {}
    for k, vals in case["newdata"].items():
        if all(v is None or isinstance(v, (int, float)) for v in vals):
            cols[k] = np.array([np.nan if v is None else v for v in vals], dtype=float)
        else:
            cols[k] = pd.array(vals, dtype=object)
    nd = pd.DataFrame(cols)
    if name.startswith("plant"):
        nd["temp"] = nd["temp"].astype(int)  # R's factor(temp): the fit's C(temp) levels
    return nd


def values(x: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=float)


CASES = [(name, i) for name in MODELS for i in range(len(load_reference(f"predict_{name}")
                                                          ["cases"]))]


@pytest.mark.parametrize(("name", "i"), CASES,
                         ids=[f"{n}-{load_reference(f'predict_{n}')['cases'][i]['label']}"
                              for n, i in CASES])
def test_predict_matches_lme4(name, i):
    fit, data, ref = model(name)
    case = ref["cases"][i]
    nd = newdata_of(case, name)
    kw = {"re_form": case["re_form"], "allow_new_levels": case["allow_new_levels"]}
    if "error" in case:
        with pytest.raises(DataError):
            predict(fit, nd, **kw)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = predict(fit, nd, **kw)
    want = values(case["prediction"])
    assert isinstance(pred, pd.Series)
    assert len(pred) == len(want)
    np.testing.assert_array_equal(np.isnan(pred.to_numpy()), np.isnan(want))
    scale = float(np.std(fit.design.y))
    population = case["re_form"] == "NA"
    tol = 1e-8 * scale if population else 1e-3 * scale
    np.testing.assert_allclose(pred.to_numpy(), want, rtol=0, atol=tol)
    if nd is not None:
        assert pred.index.equals(nd.index)
    else:
        assert pred.index.equals(fit.design.row_index)


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_on_the_fitted_rows_as_newdata(name):
    fit, data, _ = model(name)
    used = data.loc[fit.design.row_index]
    np.testing.assert_allclose(predict(fit, used).to_numpy(), fit.fitted().to_numpy(),
                               rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(predict(fit).to_numpy(), fit.fitted().to_numpy(), rtol=1e-13)
    pop = fit._linear_predictor(include_re=False)
    np.testing.assert_allclose(predict(fit, used, re_form="~0").to_numpy(), pop, rtol=1e-12)
    np.testing.assert_allclose(predict(fit, re_form="NA").to_numpy(), pop, rtol=1e-13)


def test_predict_re_form_spellings_and_index():
    fit, data, _ = model("sleepstudy_reml")
    nd = data.iloc[[5, 17, 40]].set_index(pd.Index(["a", "b", "c"]))
    pop = predict(fit, nd, re_form="NA")
    for spelling in ["~0", "~ 0", "NA", float("nan"), "0", "~-1"]:
        np.testing.assert_array_equal(predict(fit, nd, re_form=spelling), pop)
    assert list(pop.index) == ["a", "b", "c"]
    full = predict(fit, nd)
    both = predict(fit, nd, re_form="~(1 | Subject)") + predict(fit, nd,
                                                                re_form="(0 + Days | Subject)")
    np.testing.assert_allclose(both - pop, full, rtol=1e-12)
    # a new level with allow_new_levels is the population prediction
    nd2 = pd.DataFrame({"Days": [3.0], "Subject": ["nobody"]})
    np.testing.assert_allclose(predict(fit, nd2, allow_new_levels=True),
                               predict(fit, nd2, re_form="NA"))
    # numeric labels of the grouping factor match text labels
    nd3 = pd.DataFrame({"Days": [1.0, 2.0], "Subject": [308, 372]})
    nd4 = nd3.assign(Subject=["308", "372"])
    np.testing.assert_array_equal(predict(fit, nd3), predict(fit, nd4))
    assert predict(fit, nd.iloc[:0]).shape == (0,)


def test_predict_errors():
    fit, data, _ = model("sleepstudy_reml")
    nd = pd.DataFrame({"Days": [1.0], "Subject": ["999"]})
    with pytest.raises(DataError, match=r"'999'.*'Subject'.*allow_new_levels"):
        predict(fit, nd)
    with pytest.raises(DataError, match="no column 'Days'"):
        predict(fit, nd[["Subject"]])
    with pytest.raises(DataError, match="no column 'Subject'"):
        predict(fit, nd[["Days"]])
    with pytest.raises(DataError, match="missing values"):
        predict(fit, pd.DataFrame({"Days": [1.0], "Subject": [None]}))
    with pytest.raises(FormulaError, match="grouping factor 'plate'"):
        predict(fit, re_form="~(1 | plate)")
    with pytest.raises(FormulaError, match="only contain random-effects terms"):
        predict(fit, re_form="~ Days + (1 | Subject)")
    with pytest.raises(FormulaError):
        predict(fit, re_form=3)
    with pytest.raises(DataError, match="DataFrame"):
        predict(fit, {"Days": [1.0]})
    fit_i = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data)
    with pytest.raises(FormulaError, match="'Days'.*not in the model"):
        predict(fit_i, data.iloc[:3], re_form="~(0 + Days | Subject)")
    unc, _, _ = model("sleepstudy_uncorr")  # terms (1 | Subject) and (0 + Days | Subject)
    unc.data = None   # as a fit from arrays, which keeps no data
    with pytest.raises(MixeffError, match="pass the data as newdata"):
        predict(unc, re_form="~(Days | Subject)")
    unc.data = data  # a fit that keeps its data evaluates such a term on the fitted rows
    try:
        np.testing.assert_allclose(predict(unc, re_form="~(Days | Subject)"), unc.fitted(),
                                   rtol=1e-12)
    finally:
        del unc.data


def test_predict_unseen_categorical_level():
    fit, _, _ = model("plant_reml")
    nd = pd.DataFrame({"week": [1.0, 2.0], "temp": [10, 25], "plant_id": ["p01", "p02"]})
    with pytest.raises(DataError, match=r"column 'temp'.*25.*not seen"):
        predict(fit, nd)
    fit_c, _, _ = model("cake_reml")
    nd = pd.DataFrame({"recipe": ["A", "D"], "temperature": ["175", "175"],
                       "replicate": ["1", "1"]})
    with pytest.raises(DataError, match=r"column 'recipe'.*'D'"):
        predict(fit_c, nd, re_form="NA")


def test_predict_missing_values_give_nan():
    fit, _, _ = model("plant_reml")
    nd = pd.DataFrame({"week": [1.0, np.nan, 2.0, 3.0],
                       "temp": pd.array([10, 15, None, 20], dtype="Int64"),
                       "plant_id": ["p01", "p02", "p03", "p04"]})
    pred = predict(fit, nd)
    assert np.isnan(pred.to_numpy()).tolist() == [False, True, True, False]
    ok = predict(fit, nd.iloc[[0, 3]].astype({"temp": int}))
    np.testing.assert_allclose(pred.iloc[[0, 3]].to_numpy(), ok.to_numpy(), rtol=1e-14)
    # a missing grouping value with allow_new_levels: that term contributes 0
    pen, _, _ = model("penicillin_reml")
    nd = pd.DataFrame({"plate": ["a", None], "sample": ["A", "A"]})
    p = predict(pen, nd, allow_new_levels=True)
    np.testing.assert_allclose(p.iloc[1], predict(pen, nd.iloc[[1]],
                                                  re_form="~(1 | sample)",
                                                  allow_new_levels=True).iloc[0])


def test_predict_offsets():
    fit, data, _ = model("sleepstudy_offset")
    nd = pd.DataFrame({"Days": [0.0, 10.0], "Subject": ["308", "308"]})
    beta = fit.fixef
    np.testing.assert_allclose(predict(fit, nd, re_form="NA"),
                               beta["(Intercept)"] + nd["Days"] * (beta["Days"] + 0.5))
    # an offset= argument is not applied to new data (as lme4), with a warning
    fit2 = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data, offset=0.5 * data["Days"])
    np.testing.assert_allclose(predict(fit2).to_numpy(), fit2.fitted().to_numpy())
    with pytest.warns(UserWarning, match="offset= argument is not applied"):
        p = predict(fit2, nd, re_form="NA")
    np.testing.assert_allclose(p, fit2.fixef["(Intercept)"] + nd["Days"] * fit2.fixef["Days"])


def test_predict_stateful_transforms():
    _, data, _ = model("sleepstudy_reml")
    fit = mixeff.lmer("Reaction ~ center(Days) + (center(Days) | Subject)", data)
    sub = data.iloc[[0, 1, 50]]
    # the centring uses the fitted data's mean, not that of the three new rows
    np.testing.assert_allclose(predict(fit, sub).to_numpy(),
                               fit.fitted().iloc[[0, 1, 50]].to_numpy(), rtol=1e-12)
    fit2 = mixeff.lmer("Reaction ~ Days + (scale(Days) | Subject)", data)
    with pytest.raises(DataError, match="stateful transform"):
        predict(fit2, sub)
    np.testing.assert_allclose(predict(fit2, sub, re_form="NA"),
                               fit2._linear_predictor(False)[[0, 1, 50]])


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------


def test_simulate_shape_and_seed():
    fit, _, _ = model("sleepstudy_reml")
    s = simulate(fit, 3, seed=42)
    assert list(s.columns) == ["sim_1", "sim_2", "sim_3"]
    assert s.index.equals(fit.design.row_index)
    pd.testing.assert_frame_equal(s, simulate(fit, 3, seed=42))
    assert not np.allclose(s.to_numpy(), simulate(fit, 3, seed=43).to_numpy())
    rng = np.random.default_rng(5)
    pd.testing.assert_frame_equal(simulate(fit, 2, seed=rng),
                                  simulate(fit, 2, seed=np.random.default_rng(5)))
    with pytest.raises(ValueError):
        simulate(fit, 0)


def test_simulate_moments():
    fit, _, _ = model("sleepstudy_reml")
    nsim = 20000
    cond = simulate(fit, nsim, seed=1, use_u=True).to_numpy()
    se = fit.sigma / np.sqrt(nsim)
    assert np.max(np.abs(cond.mean(axis=1) - fit.fitted().to_numpy())) < 5 * se
    np.testing.assert_allclose(cond.std(axis=1).mean(), fit.sigma, rtol=0.01)
    marg = simulate(fit, nsim, seed=2).to_numpy()
    pop = fit._linear_predictor(include_re=False)
    # rows 0 and 9: same subject, Days 0 and 9 -> var and cov from the (Days|Subject) term
    S = fit.structure.covariances(fit.theta, fit.sigma)[0]
    z0, z9 = np.array([1.0, 0.0]), np.array([1.0, 9.0])
    want = np.array([[z0 @ S @ z0 + fit.sigma**2, z0 @ S @ z9],
                     [z9 @ S @ z0, z9 @ S @ z9 + fit.sigma**2]])
    np.testing.assert_allclose(np.cov(marg[[0, 9]]), want, rtol=0.05)
    assert np.max(np.abs(marg.mean(axis=1) - pop)) < 6 * np.sqrt(want[1, 1] / nsim)
    # different subjects are independent
    assert abs(np.corrcoef(marg[0], marg[10])[0, 1]) < 0.05


def test_simulate_weights_scale_the_residuals():
    fit, data, _ = model("sleepstudy_weights")
    sims = simulate(fit, 20000, seed=3, use_u=True).to_numpy()
    w = fit.design.weights
    sd = sims.std(axis=1)
    for wv in np.unique(w):
        np.testing.assert_allclose(sd[w == wv].mean(), fit.sigma / np.sqrt(wv), rtol=0.02)


# --------------------------------------------------------------------------------------
# refit
# --------------------------------------------------------------------------------------


def assert_same_fit(a: mixeff.LmerFit, b: mixeff.LmerFit) -> None:
    """The same optimum: X'Wy is summed in another order than in a fresh fit (a few ulp),
    which moves where the optimiser stops within its tolerance, not the optimum."""
    assert a.reml == b.reml
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-7)
    se = np.sqrt(np.diag(b.vcov().to_numpy()))
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=0, atol=1e-5 * float(se.max()))
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-6)
    np.testing.assert_allclose(a.fitted().to_numpy(), b.fitted().to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "sleepstudy_ml", "sleepstudy_weights",
                                  "sleepstudy_offset", "penicillin_reml", "pastes_reml"])
def test_refit_equals_a_fresh_fit(name):
    fit, data, _ = model(name)
    csv, factors, formula, kw = MODELS[name]
    rng = np.random.default_rng(11)
    response = fit.design.response_name
    y = data[response] * 0.8 + rng.normal(0, float(np.std(data[response])) / 3, len(data))
    new = refit(fit, y.to_numpy())
    fresh = mixeff.lmer(formula, data.assign(**{response: y}), **kw)
    assert_same_fit(new, fresh)
    np.testing.assert_array_equal(new.design.y, y.to_numpy())
    # only the response changed: design pieces and Z/X blocks are shared, not rebuilt
    assert new.design.X is fit.design.X
    assert new.design.terms is fit.design.terms
    assert new.blocks.vals is fit.blocks.vals
    assert new.blocks.ZtX is fit.blocks.ZtX
    assert new.blocks.XtX is fit.blocks.XtX
    # the original fit is untouched
    np.testing.assert_array_equal(fit.design.y, data[response].to_numpy())


def test_refit_to_own_response_and_series_alignment():
    fit, data, _ = model("sleepstudy_reml")
    same = refit(fit, fit.design.y)
    assert_same_fit(same, fit)
    y = pd.Series(fit.design.y * 2.0, index=fit.design.row_index)
    shuffled = y.sample(frac=1.0, random_state=1)
    a = refit(fit, y)
    b = refit(fit, shuffled)
    np.testing.assert_array_equal(a.design.y, b.design.y)
    np.testing.assert_allclose(a.fixef, 2.0 * fit.fixef, rtol=1e-6)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "sleepstudy_ml", "penicillin_reml"])
def test_refit_by_another_criterion(name):
    fit, data, _ = model(name)
    other = refit(fit, reml=not fit.reml)
    fresh = fit.refit(reml=not fit.reml)  # the fit's own method: a fresh fit of the design
    assert other.reml is (not fit.reml)
    assert other.objective == fresh.objective
    np.testing.assert_array_equal(other.theta, fresh.theta)
    np.testing.assert_array_equal(other.fixef, fresh.fixef)
    assert other.blocks is fit.blocks and other.design is fit.design
    again = refit(fit)
    assert again.objective == fresh.refit(reml=fit.reml).objective
    # a new response and another criterion at once
    csv, factors, formula, kw = MODELS[name]
    y = data[fit.design.response_name] ** 1.1
    both = refit(fit, y, reml=not fit.reml)
    want = mixeff.lmer(formula, data.assign(**{fit.design.response_name: y}),
                       **{**kw, "reml": not fit.reml})
    assert_same_fit(both, want)


def test_refit_errors():
    fit, _, _ = model("sleepstudy_reml")
    with pytest.raises(DataError, match="180 rows"):
        refit(fit, np.ones(10))
    y = fit.design.y.copy()
    y[3] = np.nan
    with pytest.raises(DataError, match="missing"):
        refit(fit, y)
    with pytest.raises(DataError, match="constant"):
        refit(fit, np.ones(fit.nobs))
    with pytest.raises(DataError, match="cover"):
        refit(fit, pd.Series(fit.design.y[:50]))
    with pytest.raises(DataError, match="one-dimensional"):
        refit(fit, np.ones((fit.nobs, 2)))


def test_refit_of_a_fit_with_dropped_rows():
    _, data, _ = model("sleepstudy_reml")
    d = data.copy()
    d.loc[[3, 77], "Days"] = np.nan
    fit = mixeff.lmer(SS_FORMULA, d)
    y = d["Reaction"] + 10 * np.cos(np.arange(len(d)))
    new = refit(fit, y)  # a Series over all the data rows: aligned to the used ones
    assert_same_fit(new, mixeff.lmer(SS_FORMULA, d.assign(Reaction=y)))


# --------------------------------------------------------------------------------------
# update
# --------------------------------------------------------------------------------------

UPDATES = {
    "sleepstudy_reml": {"minus Days": (". ~ . - Days", {}),
                        "intercept only re": (". ~ . - (Days | Subject) + (1 | Subject)", {}),
                        "log response": ("log(.) ~ .", {}),
                        "ML": (None, {"reml": False}),
                        "new formula": ("Reaction ~ 1 + (1 | Subject)", {})},
    "plant_reml": {"additive": (". ~ . - week:C(temp)", {}),
                   "random slopes": (". ~ . - (1 | plant_id) + (week | plant_id)", {})},
}


@pytest.mark.parametrize(("name", "label"), [(n, lab) for n, d in UPDATES.items() for lab in d])
def test_update_matches_r(name, label):
    fit, data, ref = model(name)
    (case,) = [u for u in ref["updates"] if u["label"] == label]
    formula, kw = UPDATES[name][label]
    new = update(fit, formula, data=data, **kw)
    assert new.reml == case["reml"]
    assert new.objective <= case["objective"] + 1e-6
    np.testing.assert_allclose(new.objective, case["objective"], rtol=1e-7)
    assert len(new.fixef) == len(case["fixef"])
    scale = np.sqrt(np.diag(new.vcov().to_numpy()))
    np.testing.assert_allclose(new.fixef.to_numpy(), list(case["fixef"].values()), rtol=0,
                               atol=1e-4 * float(scale.max()))
    if name.startswith("sleepstudy") and formula is not None:
        assert new.formula == case["formula"] or formula == "Reaction ~ 1 + (1 | Subject)"


def test_update_formula_text():
    pf = model("sleepstudy_reml")[0].design.formula
    assert update_formula(pf, ". ~ . - Days") == "Reaction ~ (Days | Subject)"
    assert update_formula(pf, ". ~ . + I(Days**2)") == \
        "Reaction ~ Days + I(Days ** 2) + (Days | Subject)"
    assert update_formula(pf, ". ~ . - 1") == "Reaction ~ 0 + Days + (Days | Subject)"
    assert update_formula(pf, "~ . - (Days | Subject) + (1|Subject)") == \
        "Reaction ~ Days + (1|Subject)"
    assert update_formula(pf, ". ~ . - (1 + Days | Subject)") == "Reaction ~ Days"
    assert update_formula(pf, "sqrt(.) ~ .") == "sqrt(Reaction) ~ Days + (Days | Subject)"
    assert update_formula(pf, "~ 1 + (1 | Subject)") == "Reaction ~ 1 + (1 | Subject)"
    assert update_formula(pf, ". ~ . + offset(Days)") == \
        "Reaction ~ Days + offset(Days) + (Days | Subject)"
    pf2 = model("sleepstudy_offset")[0].design.formula
    assert update_formula(pf2, ". ~ . - offset(0.5 * Days)") == "Reaction ~ Days + (1 | Subject)"
    pf3 = model("pastes_reml")[0].design.formula
    assert update_formula(pf3, ". ~ . - (1 | batch/cask) + (1 | batch)") == \
        "strength ~ (1 | batch)"
    with pytest.warns(UserWarning, match="nothing removed"):
        update_formula(pf, ". ~ . - (1 | Days)")
    with pytest.raises(FormulaError):
        update_formula(pf, ". - Days")
    with pytest.raises(FormulaError):
        update_formula(pf, ". ~ - .")


def test_update_arguments():
    fit, data, _ = model("sleepstudy_reml")
    kept, fit.data = fit.data, None   # as a fit from arrays, which keeps no data
    try:
        with pytest.raises(DataError, match="data="):
            update(fit, ". ~ . - Days")
    finally:
        fit.data = kept
    assert fit.data is not None   # lmer keeps its data, so none is needed
    assert update(fit, ". ~ . - Days").formula == "Reaction ~ (Days | Subject)"
    wfit, wdata, _ = model("sleepstudy_weights")
    with pytest.raises(DataError, match="weights"):
        update(wfit, ". ~ .", data=wdata)
    w2 = update(wfit, ". ~ .", data=wdata, weights="w")
    np.testing.assert_allclose(w2.objective, wfit.objective, rtol=1e-10)
    ofit = mixeff.lmer("Reaction ~ Days + (1 | Subject)", data, offset=0.5 * data["Days"])
    with pytest.raises(DataError, match="offset"):
        update(ofit, ". ~ .", data=data)
    assert update(fit, data=data, reml=False).reml is False
