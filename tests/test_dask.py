"""Fits from Dask data (partitions on worker processes) equal the in-memory fits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mixeff

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

FORMULA = "y ~ 1 + x + f + c + (1 + x | u) + (1 | i)"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20261125)
    n = 2400
    nu, ni = 48, 15
    u = rng.integers(0, nu, n)
    i = rng.integers(0, ni, n)
    df = pd.DataFrame({
        "u": u,
        "i": np.array([f"item{k:02d}" for k in range(ni)], dtype=object)[i],
        "x": rng.normal(size=n),
        "f": rng.choice(["lo", "mid", "hi"], n),
        "c": pd.Categorical(rng.choice(["z", "a", "m"], n), categories=["z", "a", "m"]),
        "w": rng.uniform(0.5, 2.0, n),
        "o": rng.normal(scale=0.1, size=n),
    })
    b0 = rng.normal(size=nu)
    b1 = rng.normal(scale=0.3, size=nu)
    bi = rng.normal(scale=0.7, size=ni)
    df["y"] = (1.0 + 0.5 * df.x + df.f.map({"lo": 0.0, "mid": 0.4, "hi": 1.0}).to_numpy()
               + b0[u] + b1[u] * df.x + bi[i] + rng.normal(size=n))
    df["x2"] = 2.0 * df["x"] - 1.0        # collinear with the intercept and x
    df.loc[[3, 50, 700], "x"] = np.nan     # rows dropped for missing values
    df.loc[[9], "f"] = None
    return df


def _split(df: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    return [df.iloc[ix] for ix in np.array_split(np.arange(len(df)), k)]


def _pieces(df: pd.DataFrame, how: str) -> list[pd.DataFrame]:
    rng = np.random.default_rng(7)
    if how == "one":
        return [df]
    if how == "many":
        return _split(df, 17)
    if how == "shuffled":
        parts = _split(df.iloc[rng.permutation(len(df))], 9)
        return [parts[k] for k in rng.permutation(len(parts))]
    if how == "levels":  # sorted by u then split: each partition sees a few levels of u,
        # items missing from some; empty partitions between them; in reverse order
        s = df.sort_values(["u", "i"], kind="stable")
        parts = _split(s, 11)
        out = []
        for p in reversed(parts):
            out += [p, df.iloc[:0]]
        return [df.iloc[:0]] + out
    raise ValueError(how)


def _ddf(df: pd.DataFrame, how: str):
    pieces = _pieces(df, how)
    return dd.from_map(lambda k: pieces[k], list(range(len(pieces))), meta=df.iloc[:0],
                       enforce_metadata=False)


def _optimum(fit, steps: int = 8) -> tuple[np.ndarray, float, np.ndarray]:
    """theta, objective and beta at the optimum of the fit's criterion, solved tightly.

    The optimiser stops where the objective values no longer tell points apart (its line
    search gives up at a flat optimum: theta is then known to ~1e-7 relative, the
    objective to ~1e-12). Two fits whose blocks differ only by the order of the sums can
    stop at points ~1e-7 apart; Newton steps on the analytic gradient (Hessian from
    central differences of it) take both to the same optimum to ~1e-10.
    """
    obj = fit._obj
    th = np.asarray(fit.theta, dtype=float).copy()
    for _ in range(steps):
        g = obj.gradient(th)
        if np.max(np.abs(g)) < 1e-10:
            break
        h = 1e-5 * np.maximum(np.abs(th), 1e-2)
        H = np.empty((th.size, th.size))
        for j in range(th.size):
            e = np.zeros_like(th)
            e[j] = h[j]
            H[:, j] = (obj.gradient(th + e) - obj.gradient(th - e)) / (2 * h[j])
        th = th - np.linalg.solve(0.5 * (H + H.T), g)
    sol = obj.solve(th)
    return th, float(sol.objective), np.asarray(sol.beta)


def _same_fit(fd, fm, tol: float = 1e-8) -> None:
    assert fd.nobs == fm.nobs
    assert abs(fd.objective - fm.objective) < tol
    assert list(fd.fixef.index) == list(fm.fixef.index)
    # the fits as returned (the Newton step after the optimiser takes both to the optimum)
    np.testing.assert_allclose(fd.fixef.to_numpy(), fm.fixef.to_numpy(), rtol=tol, atol=0)
    np.testing.assert_allclose(fd.theta, fm.theta, rtol=tol, atol=0)
    assert fd.sigma == pytest.approx(fm.sigma, rel=tol)
    # the optimum of the two criteria (the blocks): equal to tol
    th_d, obj_d, beta_d = _optimum(fd)
    th_m, obj_m, beta_m = _optimum(fm)
    assert abs(obj_d - obj_m) < tol
    np.testing.assert_allclose(th_d, th_m, rtol=tol, atol=0)
    np.testing.assert_allclose(beta_d, beta_m, rtol=tol, atol=0)
    np.testing.assert_allclose(fd.blocks.XtX, fm.blocks.XtX, rtol=1e-12)
    assert np.array_equal(fd.blocks.m_indptr, fm.blocks.m_indptr)
    assert np.array_equal(fd.blocks.m_indices, fm.blocks.m_indices)
    np.testing.assert_allclose(fd.blocks.vals, fm.blocks.vals, rtol=1e-12, atol=1e-12)
    assert fd.structure.theta_names() == fm.structure.theta_names()
    assert fd.messages == fm.messages
    for lab, frame in fm.ranef(condvar=False).items():
        other = fd.ranef(condvar=False)[lab]
        assert list(other.index) == list(frame.index)
        np.testing.assert_allclose(other.to_numpy(), frame.to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(data):
    return mixeff.lmer(FORMULA, data)


@pytest.mark.parametrize("how", ["one", "many", "shuffled", "levels"])
def test_partitionings_equal_in_memory(client, data, reference, how):
    fit = mixeff.lmer(FORMULA, _ddf(data, how))
    _same_fit(fit, reference)


def test_level_partition_sees_subsets(data):
    pieces = _pieces(data, "levels")
    assert any(len(p) == 0 for p in pieces)
    nonempty = [p for p in pieces if len(p)]
    assert all(p["u"].nunique() < data["u"].nunique() for p in nonempty)


def test_parquet_glob_and_weights_offset(client, data, tmp_path):
    data = data.copy()
    data.loc[[11, 12, 1500], "w"] = 0.0       # dropped with a message, as in memory
    for k, p in enumerate(_pieces(data, "levels")):
        p.to_parquet(tmp_path / f"part-{k:03d}.parquet")
    form = "y ~ 1 + x + f + c + (1 + x | u) + (1 | i) + (1 | c)"
    fm = mixeff.lmer(form, data, weights="w", offset="o", reml=False)
    fd = mixeff.lmer(form, str(tmp_path / "part-*.parquet"), weights="w", offset="o",
                     reml=False)
    _same_fit(fd, fm)
    np.testing.assert_allclose(fd.coef_table().to_numpy(), fm.coef_table().to_numpy(),
                               rtol=1e-5)
    with pytest.raises(NotImplementedError, match="Kenward-Roger"):
        fd.anova(ddf="Kenward-Roger")
    assert "Weights: w" in str(fd.summary())
    fdir = mixeff.lmer(form, tmp_path, weights="w", offset="o", reml=False)   # a directory
    assert abs(fdir.objective - fm.objective) < 1e-8


def test_collinear_columns_dropped_as_in_memory(client, data):
    form = "y ~ 1 + x + x2 + f + (1 | u) + (1 | i)"
    fm = mixeff.lmer(form, data)
    fd = mixeff.lmer(form, _ddf(data, "levels"))
    assert fm.design.dropped_xnames == ["x2"]
    assert fd.design.dropped_xnames == fm.design.dropped_xnames
    _same_fit(fd, fm)


def test_interaction_and_numeric_factor(client, data):
    d = data.assign(g=data["u"] % 4, h=np.where(data["u"] % 3 == 0, "p", "q"))
    form = "np.log(y + 10) ~ 1 + x + C(g) + offset(0.1 * x) + (1 | i) + (1 | u:h)"
    fm = mixeff.lmer(form, d)
    fd = mixeff.lmer(form, _ddf(d, "levels"))
    _same_fit(fd, fm)


def test_rows_back_as_dask_collections(client, data, reference):
    fit = mixeff.lmer(FORMULA, _ddf(data, "shuffled"))
    fv = fit.fitted()
    assert type(fv).__module__.split(".")[0] in ("dask", "dask_expr")
    fv = fv.compute().sort_index()
    ref = reference.fitted().sort_index()
    assert list(fv.index) == list(ref.index)
    np.testing.assert_allclose(fv.to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-6)
    res = fit.residuals(type="pearson", scaled=True).compute().sort_index()
    np.testing.assert_allclose(res.to_numpy(),
                               reference.residuals(type="pearson", scaled=True)
                               .sort_index().to_numpy(), rtol=1e-6, atol=1e-6)
    aug = fit.augment().compute().sort_index()
    ref_aug = reference.augment().sort_index()
    assert list(aug.columns) == list(ref_aug.columns)
    for col in (".fitted", ".resid", ".hat", ".cooksd", ".fixed", ".wtres"):
        np.testing.assert_allclose(aug[col].to_numpy(), ref_aug[col].to_numpy(), rtol=1e-5,
                                   atol=1e-6)
    h = fit.hatvalues().compute().sort_index()
    np.testing.assert_allclose(h.to_numpy(), reference.hatvalues().sort_index().to_numpy(),
                               rtol=1e-5, atol=1e-7)
    cd = fit.cooks_distance().compute().sort_index()
    np.testing.assert_allclose(cd.to_numpy(),
                               reference.cooks_distance().sort_index().to_numpy(), rtol=1e-5,
                               atol=1e-8)
    # the summary and inference run on the reduced blocks
    np.testing.assert_allclose(fit.coef_table().to_numpy(), reference.coef_table().to_numpy(),
                               rtol=1e-5)
    assert "REML criterion" in str(fit.summary())
    from mixeff._summary import quantile7

    np.testing.assert_allclose(fit.summary().residual_quantiles().to_numpy(),
                               quantile7(res.to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(fit._dask_info.residual_quantiles(fit, nbins=4),
                               quantile7(res.to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(fit.summary().residual_quantiles().to_numpy(),
                               reference.summary().residual_quantiles().to_numpy(), rtol=1e-5)


def test_inference_on_the_blocks(client, data):
    form = "y ~ 1 + x * f + c + (1 | u) + (1 | i)"
    fm = mixeff.lmer(form, data)
    fd = mixeff.lmer(form, _ddf(data, "levels"))
    for typ in (1, 2, 3):
        a, b = fd.anova(type=typ), fm.anova(type=typ)
        assert list(a.index) == list(b.index)
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-5)
    a, b = fd.anova(ddf="Kenward-Roger"), fm.anova(ddf="Kenward-Roger")
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-5)
    np.testing.assert_allclose(fd.confint(method="Wald").to_numpy(),
                               fm.confint(method="Wald").to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fd.predict(data.head(20)).to_numpy(),
                               fm.predict(data.head(20)).to_numpy(), rtol=1e-6, atol=1e-6)
    small = fd.update(". ~ . - c")       # refits from the Dask data
    assert small.nobs == fd.nobs
    assert type(small.fitted()).__module__.split(".")[0] in ("dask", "dask_expr")
    a, b = fd.ranova(), fm.ranova()
    assert list(a.index) == list(b.index)
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="Dask"):
        fd.simulate(1)


@pytest.mark.parametrize("form", ["y ~ x + (1 + x | u) + (1 | i)",
                                  "y ~ x + (0 + x | u) + (1 | i)",
                                  "y ~ x + (x || u) + (1 | c)",
                                  "y ~ x + f + (1 | u)"])
def test_ranova(client, data, form):
    fm = mixeff.lmer(form, data, reml=False)
    fd = mixeff.lmer(form, _ddf(data, "levels"), reml=False)
    for reduce_terms in (True, False):
        a, b = fd.ranova(reduce_terms), fm.ranova(reduce_terms)
        assert list(a.index) == list(b.index)
        assert a.attrs == b.attrs
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6,
                                   atol=1e-6)


def test_response_far_from_zero(client):
    """The sums of y - X beta0 keep the digits y'y would cancel (as the in-memory fit)."""
    rng = np.random.default_rng(5)
    n = 3000
    d = pd.DataFrame({"u": rng.integers(0, 50, n), "x": rng.normal(size=n)})
    d["y"] = 1e5 + 2 * d.x + 1e-3 * (rng.normal(size=50)[d.u] + rng.normal(size=n))
    fm = mixeff.lmer("y ~ x + (1 | u)", d)
    fd = mixeff.lmer("y ~ x + (1 | u)", _ddf(d, "shuffled"))
    assert fd.blocks.shift is not None
    assert abs(fd.objective - fm.objective) < 1e-6
    np.testing.assert_allclose(fd.theta, fm.theta, rtol=1e-6)
    np.testing.assert_allclose(fd.fixef.to_numpy(), fm.fixef.to_numpy(), rtol=1e-9)
    assert fd.sigma == pytest.approx(fm.sigma, rel=1e-6)


def test_errors_are_clear(client, data):
    with pytest.raises(mixeff.DataError, match="name of a column"):
        mixeff.lmer(FORMULA, _ddf(data, "many"), weights=np.ones(len(data)))
    with pytest.raises(mixeff.FormulaError, match="stateful"):
        mixeff.lmer("y ~ scale(x) + (1 | u)", _ddf(data, "many"))
    with pytest.raises(mixeff.FormulaError, match="not a column"):
        mixeff.lmer("y ~ x + (1 | nope)", _ddf(data, "many"))


def test_bad_values_in_a_partition_raise_through_the_cluster(client, data):
    d = data.copy()
    d.loc[2000, "x"] = np.inf
    with pytest.raises(mixeff.DataError, match="infinite"):
        mixeff.lmer(FORMULA, _ddf(d, "many"))
    d = data.assign(x=data["x"] * 1e-200)
    with pytest.raises(mixeff.DataError, match="too small") as err:
        mixeff.lmer(FORMULA, _ddf(d, "many"))
    with pytest.raises(mixeff.DataError) as err_mem:
        mixeff.lmer(FORMULA, d)
    assert str(err.value) == str(err_mem.value)
    d = data.assign(x=np.nan)
    with pytest.raises(mixeff.DataError, match="no rows left"):
        mixeff.lmer(FORMULA, _ddf(d, "many"))


def test_other_schedulers(data, reference):
    import dask

    with dask.config.set(scheduler="sync"):
        fit = mixeff.lmer(FORMULA, _ddf(data, "shuffled"))
    assert abs(fit.objective - reference.objective) < 1e-8


def test_import_does_not_import_dask():
    code = ("import sys, mixeff; mixeff.lmer; mixeff.LmerFit; "
            "print(any(m == 'dask' or m.startswith('dask.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_derivative_free_fit_as_in_memory(client, data):
    """COBYQA (chosen for large crossed designs) with its data-based start: the same start
    from the reduced blocks, the same path, the same fit."""
    form = "y ~ 1 + x + (1 | u) + (1 | i)"
    fm = mixeff.lmer(form, data, optimizer="COBYQA")
    fd = mixeff.lmer(form, _ddf(data, "levels"), optimizer="COBYQA")
    assert fd.optsum.method == fm.optsum.method == "COBYQA"
    np.testing.assert_allclose(fd.optsum.theta0, fm.optsum.theta0, rtol=1e-10)
    assert abs(fd.objective - fm.objective) < 1e-8
    np.testing.assert_allclose(fd.theta, fm.theta, rtol=1e-8)
    np.testing.assert_allclose(fd.fixef.to_numpy(), fm.fixef.to_numpy(), rtol=1e-8)
