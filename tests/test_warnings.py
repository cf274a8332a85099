"""Fit-time warnings: singular fits and failed convergence checks, pointed at the user's line.

lme4 1.1-31 says "boundary (singular) fit: see help('isSingular')" when it fits Dyestuff2's
``Yield ~ 1 + (1 | Batch)`` (the Batch variance is estimated as zero) and reports failed
convergence checks as warnings of the ``lmer()`` call. mixeff warns both through Python's
warnings, attributed to the caller's line whatever path made the fit.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from refdata import load_csv

import mixeff
from mixeff import SingularFitWarning

SINGULAR = "boundary (singular) fit: see help('isSingular')"


def _dyestuff2():
    return load_csv("Dyestuff2.csv", ["Batch"])


def _sleep():
    return load_csv("sleepstudy.csv", ["Subject"])


def _line() -> int:
    """Line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


def _only(record, category):
    got = [w for w in record if issubclass(w.category, category)]
    assert len(got) == 1, [str(w.message) for w in record]
    return got[0]


def test_singular_fit_warns_at_the_call():
    d = _dyestuff2()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
    w = _only(rec, SingularFitWarning)
    assert str(w.message) == SINGULAR
    assert w.filename == __file__ and w.lineno == line
    assert fit.is_singular and SINGULAR in fit.messages
    assert not any(issubclass(x.category, mixeff.ConvergenceWarning) for x in rec)


def test_singular_warning_is_exported_and_filterable():
    assert mixeff.SingularFitWarning is SingularFitWarning
    assert issubclass(SingularFitWarning, UserWarning)
    assert not issubclass(SingularFitWarning, mixeff.ConvergenceWarning)
    d = _dyestuff2()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularFitWarning)
        with pytest.raises(SingularFitWarning, match=r"boundary \(singular\) fit"):
            mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
    assert not rec and fit.is_singular


def test_regular_fit_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = mixeff.lmer("Reaction ~ Days + (Days | Subject)", _sleep())
    assert not fit.is_singular and fit.converged


def test_refit_and_update_warn_at_the_call():
    d = _dyestuff2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        ml = fit.refit(reml=False)
    w = _only(rec, SingularFitWarning)
    assert (w.filename, w.lineno) == (__file__, line) and not ml.reml
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit.update(". ~ .", data=d, reml=False)
    w = _only(rec, SingularFitWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit.refit(d["Yield"].to_numpy() * 2.0)
    w = _only(rec, SingularFitWarning)
    assert (w.filename, w.lineno) == (__file__, line)


def test_anova_refit_gives_no_fit_time_warning():
    """anova() refits REML models by ML quietly, as lme4's refitML does."""
    d = _dyestuff2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m0 = mixeff.lmer("Yield ~ 1 + (1 | Batch)", d)
        d2 = d.assign(x=np.arange(len(d)) % 3)
        m1 = mixeff.lmer("Yield ~ x + (1 | Batch)", d2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixeff.anova(m0, m1)


@pytest.fixture
def failing_checks(monkeypatch):
    """Convergence checks that always fail (the message lme4 gives for a large gradient)."""
    import mixeff._checks as checks

    msg = "Model failed to converge with max|grad| = 0.1 (tol = 0.002, component 1)"
    monkeypatch.setattr(checks, "check_convergence", lambda obj, optsum: [msg])
    return msg


def test_convergence_warning_points_to_lmer_call(failing_checks):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit = mixeff.lmer("Reaction ~ Days + (Days | Subject)", _sleep())
    w = _only(rec, mixeff.ConvergenceWarning)
    assert str(w.message) == failing_checks
    assert (w.filename, w.lineno) == (__file__, line)
    assert not fit.converged
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit.refit(reml=False)
    w = _only(rec, mixeff.ConvergenceWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit.update(". ~ . - Days")
    w = _only(rec, mixeff.ConvergenceWarning)
    assert (w.filename, w.lineno) == (__file__, line)


def test_convergence_warning_points_to_call_dask(failing_checks):
    dd = pytest.importorskip("dask.dataframe")
    import dask

    ddf = dd.from_pandas(_sleep(), npartitions=3)
    with dask.config.set(scheduler="sync"), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit = mixeff.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    w = _only(rec, mixeff.ConvergenceWarning)
    assert (w.filename, w.lineno) == (__file__, line)
    assert not fit.converged


def test_singular_warning_dask():
    dd = pytest.importorskip("dask.dataframe")
    import dask

    ddf = dd.from_pandas(_dyestuff2(), npartitions=2)
    with dask.config.set(scheduler="sync"), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        line = _line() + 1
        fit = mixeff.lmer("Yield ~ 1 + (1 | Batch)", ddf)
    w = _only(rec, SingularFitWarning)
    assert (w.filename, w.lineno) == (__file__, line) and fit.is_singular


def test_command_line_prints_the_message_not_a_warning(capsys):
    """``mixeff fit`` shows lme4's line in its summary, without a Python warning."""
    from refdata import data_dir

    from mixeff.cli import main

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        code = main(["fit", str(data_dir() / "Dyestuff2.csv"), "Yield ~ 1 + (1 | Batch)"])
    out = capsys.readouterr()
    assert code == 0
    assert out.out.rstrip().endswith(SINGULAR)
    assert not [w for w in rec if issubclass(w.category, SingularFitWarning)]
