"""Fit the same models on the same data with mixeff, lme4 and the Python peers, side by side.

Usage (from the repository root; the nox session ``bench`` runs the default)::

    .venv/bin/python benchmarks/run_side_by_side.py              # everything (~25 min)
    .venv/bin/python benchmarks/run_side_by_side.py --quick      # small data sets only
    .venv/bin/python benchmarks/run_side_by_side.py --cases insteval,crossed --no-r
    .venv/bin/python benchmarks/run_side_by_side.py --repeat 5 --cap 60

What is measured
    Every fit runs in a fresh subprocess per (tool, case) that loads the data first and then
    times only the fit call: ``mixeff.lmer`` (design + blocks + optimisation + the fit
    object), lme4's ``lmer()`` inside ``Rscript`` (``proc.time`` around the call, the data
    already read with ``data.table::fread`` and factors made), ``statsmodels`` MixedLM
    (model construction + ``fit``), ``mixedlm.lmer`` and ``lme_python.lmer``.
    The first fit of a process is reported apart (for mixeff it includes Numba's
    compilation or cache loading; the other tools are warmed up on ``sleepstudy`` first),
    then up to ``--repeat`` more fits run while they fit in ``--budget`` seconds, and the
    table shows their median (the first fit when it is the only one). A foreign fit that
    takes longer than ``--cap`` seconds (``--r-cap`` for lme4) is killed and reported
    as ``>cap``.

    Peak memory is the growth of the process's resident set during one fit: the kernel's
    high-water mark is reset (``/proc/self/clear_refs``) just before the fit and
    ``VmHWM - VmRSS(before)`` is read after it (the same way in Python and in R), on a
    fit of its own after the timed ones, from a collected heap; the timed fits run back
    to back without forced garbage collection.

Everything is written to ``--out-dir`` (default: ``benchmarks/`` for the full run,
``benchmarks/partial/`` otherwise): ``RESULTS.md``, ``results.json`` and, with the
scaling runs, ``fit_time_vs_rows.png``. Ratios are measured in the same run, on the same
machine, one fit at a time; absolute seconds vary with the machine's load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from results_md import kept_sections

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_DIR = Path(os.environ.get("MIXEFF_BENCH_DATA", "/work/shared/data"))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

SEED = 20261125
MARK = "@@BENCH "
TOOLS = ("mixeff", "lme4", "statsmodels", "mixedlm", "lme-python")
PY_MODULE = {"mixeff": "mixeff", "statsmodels": "statsmodels", "mixedlm": "mixedlm",
             "lme-python": "lme_python"}
DIST = {"mixeff": "mixeff", "statsmodels": "statsmodels", "mixedlm": "mixedlm",
        "lme-python": "lme-python"}


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """One model on one data set.

    ``source`` is ``"csv:<file in DATA_DIR>"`` or ``"sim:<generator in simulate.py>"``;
    ``factors`` are the columns every tool must treat as categorical; ``statsmodels`` is
    how to state the model for MixedLM (None: not attempted, ``sm_note`` says why);
    ``formula_for`` gives another spelling of the same model for a tool that needs one.
    """

    name: str
    label: str
    formula: str
    factors: tuple[str, ...]
    source: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    statsmodels: dict[str, Any] | None = None
    sm_note: str = ""
    formula_for: dict[str, str] = field(default_factory=dict)
    note_for: dict[str, str] = field(default_factory=dict)
    small: bool = False
    r_cap: float | None = None
    main: bool = True


def _scaled_crossed(n: int) -> dict[str, int]:
    """Sizes of the crossed design at ``n`` rows, same shape as 300k x 20k x 2k."""
    return {"n": n, "n_a": n // 15, "n_b": n // 150}


CASES: dict[str, Case] = {c.name: c for c in [
    Case("sleepstudy", "sleepstudy `(Days|Subject)`", "Reaction ~ Days + (Days | Subject)",
         ("Subject",), "csv:sleepstudy.csv", small=True,
         statsmodels={"formula": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"}),
    Case("penicillin", "Penicillin, crossed", "diameter ~ 1 + (1 | plate) + (1 | sample)",
         ("plate", "sample"), "csv:Penicillin.csv", small=True,
         statsmodels={"formula": "diameter ~ 1", "groups": None, "re_formula": "0",
                      "vc_formula": {"plate": "0 + C(plate)", "sample": "0 + C(sample)"}}),
    Case("pastes", "Pastes, nested `(1|batch/cask)`", "strength ~ 1 + (1 | batch/cask)",
         ("batch", "cask", "sample"), "csv:Pastes.csv", small=True,
         statsmodels={"formula": "strength ~ 1", "groups": "batch", "re_formula": "1",
                      "vc_formula": {"cask": "0 + C(cask)"}}),
    Case("insteval", "InstEval `service+(1|s)+(1|d)+(1|dept:service)`",
         "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
         ("s", "d", "studage", "lectage", "service", "dept"), "csv:InstEval.csv",
         sm_note="three crossed factors: not attempted in statsmodels"),
    Case("random_slopes", "random slopes, 100k rows, 5k groups", "y ~ 1 + x + (1 + x | g)",
         ("g",), "sim:random_slopes", {"n": 100_000, "n_groups": 5_000},
         statsmodels={"formula": "y ~ x", "groups": "g", "re_formula": "~x"}),
    Case("crossed", "crossed, 300k rows, 20k x 2k levels", "y ~ 1 + x + (1 | a) + (1 | b)",
         ("a", "b"), "sim:crossed", _scaled_crossed(300_000),
         sm_note="large crossed design: not attempted in statsmodels"),
    Case("movielens_like", "MovieLens-like, 1M rows, 6k users x 4k items",
         "y ~ 1 + x + (1 | u) + (1 | i)", ("u", "i"), "sim:movielens_like",
         {"n": 1_000_000, "n_users": 6000, "n_items": 4000},
         sm_note="large crossed design: not attempted in statsmodels"),
    Case("deep_nesting", "deep nesting `(1|a/b/c)`, 500k rows, 50/1k/10k groups",
         "y ~ 1 + x + (1 | a/b/c)", ("a", "b", "c"), "sim:deep_nesting", {"n": 500_000},
         sm_note="three nested levels at 500k rows: not attempted in statsmodels",
         formula_for={"lme-python": "y ~ 1 + x + (1 | a) + (1 | a:b) + (1 | a:b:c)"},
         note_for={"lme-python": "fitted as `(1|a) + (1|a:b) + (1|a:b:c)`: lme-python "
                                 "0.2.7 rejects `a/b/c` (\"Nested RE column 'b/c' not found\")"}),
    # crossed vector-valued random effects ("maximal" models: benchmarks/bench_maximal.py)
    Case("kb07_like", "kb07-like, 56 x 32, 4 x 4 blocks on both factors",
         "y ~ 1 + x0 + x1 + x2 + (1 + x0 + x1 + x2 | subj) + (1 + x0 + x1 + x2 | item)",
         ("subj", "item"), "sim:kb07_like", main=False,
         sm_note="crossed vector-valued terms: not attempted in statsmodels"),
    Case("mrk17_like", "mrk17-like, 73 x 240, 5 x 5 blocks on both factors",
         "y ~ 1 + x0 + x1 + x2 + x3 + (1 + x0 + x1 + x2 + x3 | subj)"
         " + (1 + x0 + x1 + x2 + x3 | item)",
         ("subj", "item"), "sim:mrk17_like", main=False, r_cap=1200.0,
         sm_note="crossed vector-valued terms: not attempted in statsmodels"),
    Case("d3_like", "d3-like, 130k rows, 3,600 x 3,300 x 500, 2 x 2 blocks on each",
         "y ~ 1 + u + (1 + u | g) + (1 + u | h) + (1 + u | i)",
         ("g", "h", "i"), "sim:d3_like", main=False, r_cap=3600.0,
         sm_note="three crossed vector-valued terms: not attempted in statsmodels"),
]}
MAIN_CASES = [c for c in CASES if CASES[c].main]
MAXIMAL_CASES = [c for c in CASES if not CASES[c].main]
SCALING_ROWS = (10_000, 30_000, 100_000, 300_000)
for _n in SCALING_ROWS[:-1]:
    CASES[f"crossed_{_n // 1000}k"] = Case(
        f"crossed_{_n // 1000}k", f"crossed, {_n // 1000}k rows", CASES["crossed"].formula,
        ("a", "b"), "sim:crossed", _scaled_crossed(_n))
SCALING = [f"crossed_{n // 1000}k" for n in SCALING_ROWS[:-1]] + ["crossed"]
BREAKDOWN = ("insteval", "crossed")
THREADS_CASES = ("penicillin", "insteval", "movielens_like")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def load_case(case: Case):
    """The case's data as a DataFrame (factor columns as str for the shipped data sets)."""
    import pandas as pd

    kind, _, what = case.source.partition(":")
    if kind == "csv":
        df = pd.read_csv(DATA_DIR / what)
        for col in case.factors:
            df[col] = df[col].astype(str)
        return df
    import simulate

    return simulate.CASES[what](seed=SEED, **case.kwargs)


# ---------------------------------------------------------------------------------------
# Worker side: runs in a subprocess, prints one MARK-prefixed JSON line per event
# ---------------------------------------------------------------------------------------


def _emit(**event: Any) -> None:
    sys.stdout.write(MARK + json.dumps(event, default=float) + "\n")
    sys.stdout.flush()


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in kB (Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, val = line.split(":")
                    out[key] = int(val.split()[0])
    except OSError:
        pass
    return out


def _reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark of this process."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so that the next fit's growth shows.

    Without it a fit reuses the pages an earlier fit freed (glibc keeps them, and raises
    its mmap threshold after the first large free) and its peak growth reads near 0.
    """
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measured(fn, clean: bool = True):
    """Run ``fn()`` once: (result, wall s, CPU s, base_kb, peak_kb, peak_reset).

    ``clean``: collect garbage and trim the heap first, so that the peak growth is the
    fit's own (the memory measurement). Timed repetitions skip it: a full ``gc.collect()``
    just before the clock starts leaves the CPU caches cold and made a 2 ms fit take
    3.6 ms (every operation's first call after it pays ~0.1 ms).
    """
    import gc

    if clean:
        gc.collect()
        _malloc_trim()
    reset = _reset_peak()
    base = _proc_status().get("VmRSS", 0)
    c0 = time.process_time()
    t0 = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = _proc_status().get("VmHWM", 0)
    return res, dt, cpu, base, peak, reset


def _fitter(tool: str, case: Case, df):
    """A function ``fit(df)`` for ``tool``; it returns ``describe()``, to be called after
    the timing, which reads the objective, evaluations... off the fitted model."""
    formula = case.formula_for.get(tool, case.formula)
    if tool == "mixeff":
        import mixeff

        # the "default" variant (thread variables unset): every core, lmer(blas_threads=None)
        kw = {} if os.environ.get("OPENBLAS_NUM_THREADS") else {"blas_threads": None}

        def fit(d):
            f = mixeff.lmer(formula, d, **kw)
            o = f.optsum
            return lambda: {"objective": f.objective, "nfev": f.n_evaluations,
                    "ngrad": int(o.n_gradients), "optimizer": o.method,
                    "converged": bool(f.converged), "optimizer_seconds": o.elapsed,
                    "checks_seconds": float(f.timings.get("checks", float("nan"))),
                    "theta": [float(v) for v in f.theta], "n": int(f.blocks.n),
                    "q": int(f.blocks.q), "nnz_factor": int(f._obj.nnz_factor),
                    "messages": list(f.messages)[:3]}
        return fit
    if tool == "mixedlm":
        import mixedlm

        def fit(d):
            r = mixedlm.lmer(formula, d)
            return lambda: {"objective": float(r.REMLcrit() if callable(r.REMLcrit)
                                               else r.REMLcrit), "nfev": int(r.function_evals),
                    "optimizer": str(r.optimizer), "converged": bool(r.converged),
                    "theta": [float(v) for v in r.theta]}
        return fit
    if tool == "lme-python":
        import lme_python

        def fit(d):
            r = lme_python.lmer(formula, d)
            return lambda: {"objective": float(r.reml_criterion), "nfev": r.iterations,
                    "converged": bool(r.converged), "theta": list(r.theta or [])}
        return fit
    if tool == "statsmodels":
        import statsmodels.formula.api as smf

        spec = dict(case.statsmodels)
        if spec.get("groups") is None:
            df["__one__"] = 1
            spec["groups"] = "__one__"

        def fit(d):
            import warnings

            model = smf.mixedlm(spec["formula"], d, groups=spec["groups"],
                                re_formula=spec.get("re_formula"),
                                vc_formula=spec.get("vc_formula"))
            calls = [0]
            loglike = model.loglike

            def counted(*a, **k):
                calls[0] += 1
                return loglike(*a, **k)

            model.loglike = counted
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = model.fit(reml=True)
            return lambda: {"objective": float(-2.0 * r.llf), "nfev": calls[0],
                    "converged": bool(r.converged), "optimizer": str(r.method),
                    "messages": sorted({str(w.message)[:120] for w in caught})[:3]}
        return fit
    raise ValueError(f"unknown tool {tool!r}")


def _warmup_frame():
    import pandas as pd

    df = pd.read_csv(DATA_DIR / "sleepstudy.csv")
    df["Subject"] = df["Subject"].astype(str)
    return df


def _versions(tool: str) -> dict[str, str]:
    out = {}
    for dist in ("numpy", "scipy", "pandas", "numba", "scikit-sparse", DIST.get(tool, tool)):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _read_frame(path: str):
    import pandas as pd

    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_pickle(path)


def worker(tool: str, case_name: str, data: str, repeat: int, budget: float) -> None:
    """Load the data, fit ``case`` with ``tool`` (first + up to ``repeat`` more), report."""
    case = CASES[case_name]
    _emit(event="info", versions=_versions(tool), python=platform.python_version())
    t0 = time.perf_counter()
    df = _read_frame(data)
    fit = _fitter(tool, case, df)
    if tool != "mixeff":  # the other tools are warmed up; mixeff's first fit is reported
        warm = _warmup_frame()
        _fitter(tool, CASES["sleepstudy"], warm)(warm)()
    _emit(event="ready", load_seconds=time.perf_counter() - t0, rows=len(df))
    spent = 0.0
    last = 0.0
    warm = 0
    for i in range(repeat + 1):
        if i >= 2 and spent + last > budget:
            break
        describe, dt, cpu, base, peak, reset = _measured(lambda: fit(df), clean=i == 0)
        res = describe()
        spent += dt if i > 0 else 0.0
        last = dt
        warm += i > 0
        _emit(event="fit", kind="first" if i == 0 else "warm", seconds=dt, cpu_seconds=cpu,
              base_kb=base, peak_kb=peak, peak_reset=reset, **res)
        if i == 0 and dt > budget:
            break
        if i == 0 and tool == "mixeff":
            from mixeff._cholmod import backend_version

            _emit(event="info", cholmod=backend_version(), numpy_blas=_numpy_blas())
    if warm and spent + last <= budget:
        # the memory measurement: one more fit from a collected, trimmed heap
        describe, dt, cpu, base, peak, reset = _measured(lambda: fit(df), clean=True)
        _emit(event="fit", kind="memory", seconds=dt, cpu_seconds=cpu, base_kb=base,
              peak_kb=peak, peak_reset=reset, **describe())
    _emit(event="done")


def _numpy_blas() -> str:
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception as exc:  # noqa: BLE001 - informative only
        return f"unknown ({exc})"


# -- mixeff per-evaluation breakdown -----------------------------------------------------


class _StageTimer:
    """Wrap module-level functions/classes of mixeff so that each call is timed.

    Works from the outside: ``fit_design`` imports its stages from their modules at call
    time, so replacing the module attributes is seen by the next fit. Classes are
    replaced by timed subclasses (``isinstance`` keeps working).
    """

    def __init__(self, targets: list[tuple[str, str, str]]):
        self.targets = targets
        self.times: dict[str, float] = {}
        self._saved: list[tuple[Any, str, Any]] = []
        self.missing: list[str] = []

    def __enter__(self):
        import importlib

        for modname, attr, label in self.targets:
            try:
                mod = importlib.import_module(modname)
                orig = getattr(mod, attr)
            except (ImportError, AttributeError):
                self.missing.append(f"{modname}.{attr}")
                continue
            self._saved.append((mod, attr, orig))
            setattr(mod, attr, self._wrap(orig, label))
        return self

    def _wrap(self, orig, label):
        times = self.times
        if isinstance(orig, type):
            class Timed(orig):  # type: ignore[misc, valid-type]
                def __init__(self, *a, **k):
                    t = time.perf_counter()
                    super().__init__(*a, **k)
                    times[label] = times.get(label, 0.0) + time.perf_counter() - t

            Timed.__name__ = orig.__name__
            Timed.__qualname__ = orig.__qualname__
            return Timed

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - t
        return timed

    def __exit__(self, *exc):
        for mod, attr, orig in reversed(self._saved):
            setattr(mod, attr, orig)
        return False


def _median_time(fn, reps: int, min_total: float = 0.0, setup=None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``reps`` calls (after one untimed call);
    ``setup()``, when given, runs untimed before each call."""
    if setup is not None:
        setup()
    fn()
    ts = []
    for _ in range(reps):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _fresh_solve(obj, theta) -> None:
    """A solve at ``theta`` that really factors (the objective keeps its last solution, and
    the Schur factor its selected inverse, until the next factorisation)."""
    obj._last = None
    obj.solve(theta)


def breakdown_worker(case_name: str, data: str, reps: int) -> None:
    """Time the stages of one fit and the pieces of one evaluation at the optimum."""
    import mixeff

    case = CASES[case_name]
    df = _read_frame(data)
    fit = mixeff.lmer(case.formula, df)  # compile / warm up
    _emit(event="ready", rows=len(df))
    stages = [
        ("mixeff._design", "build_design", "design (formula, model frame, X, Z codes)"),
        ("mixeff._blocks", "build_blocks", "blocks (Z'Z, Z'X, X'X, ... one pass over rows)"),
        ("mixeff._objective", "LmmObjective", "objective set-up (pattern, CHOLMOD analysis)"),
        ("mixeff._optimizer", "minimize_theta", "optimiser (all evaluations)"),
        ("mixeff._checks", "check_convergence", "convergence checks"),
        ("mixeff._fit", "LmerFit", "fit object (final solve)"),
    ]
    with _StageTimer(stages) as st:
        t = time.perf_counter()
        fit = mixeff.lmer(case.formula, df)
        total = time.perf_counter() - t
    _emit(event="stages", total=total, stages=st.times, missing=st.missing,
          nfev=fit.n_evaluations, ngrad=int(fit.optsum.n_gradients),
          optimizer=fit.optsum.method)
    out: dict[str, Any] = {}
    try:
        obj = fit._obj
        b = fit.blocks
        theta = fit.theta
        tmpl = b.re.templates(theta)
        out["q"] = int(b.q)
        out["nnz_M"] = int(b.nnz_m)
        out["nnz_L"] = int(obj.nnz_factor)
        out["factorization"] = (f"{getattr(obj, 'factorization', '?')} "
                                f"({type(obj._chol).__name__}"
                                + (f", {obj._chol.mode}" if hasattr(obj._chol, "mode") else "")
                                + ")")
        # Each repetition times the pieces in the order solve() runs them, then a whole
        # solve(); "rest" is that repetition's whole minus its pieces.
        pieces = {
            "fill": lambda: obj._fill(tmpl),
            "factorize": lambda: obj._chol.factorize_values(obj._mdata),
            "rhs": lambda: obj._lambda_t(tmpl, obj._ZtXY, True)[obj.perm],
        }
        rhs = obj._lambda_t(tmpl, obj._ZtXY, True)[obj.perm]
        pieces["solve_L"] = lambda: obj._chol.solve_L(rhs)
        # a whole solve: the kept solution is dropped first, or solve() would return it
        pieces["solve_total"] = lambda: (setattr(obj, "_last", None), obj.solve(theta))
        for fn in pieces.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in [*pieces, "rest"]}
        for _ in range(reps):
            for key, fn in pieces.items():
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
            times["rest"].append(times["solve_total"][-1] - sum(
                times[k][-1] for k in ("fill", "factorize", "rhs", "solve_L")))
        out.update({k: statistics.median(v) for k, v in times.items()})
        # selected inverse and gradient each after a fresh factorisation (untimed), as in
        # the optimiser: nothing computed for an earlier call is reused
        out["selected_inverse"] = _median_time(lambda: obj.selected_inverse(theta),
                                               max(3, reps // 4),
                                               setup=lambda: _fresh_solve(obj, theta))
        out["gradient"] = _median_time(lambda: obj.gradient(theta), max(3, reps // 4),
                                       setup=lambda: _fresh_solve(obj, theta))
    except Exception as exc:  # noqa: BLE001 - internal API may move; report, don't die
        out["error"] = f"{type(exc).__name__}: {exc}"
    _emit(event="evaluation", **out)
    _emit(event="done")


# ---------------------------------------------------------------------------------------
# lme4 worker (R)
# ---------------------------------------------------------------------------------------

R_WORKER = r"""
args <- commandArgs(trailingOnly = TRUE)
data_path <- args[1]
form <- as.formula(args[2])
facs <- if (nzchar(args[3])) strsplit(args[3], ",")[[1]] else character(0)
nrep <- as.integer(args[4])
budget <- as.numeric(args[5])
ndev <- as.integer(args[6])
options(warn = 1)
suppressPackageStartupMessages({library(lme4); library(data.table)})
mark <- "@@BENCH "
emit <- function(x) {
  cat(mark, jsonlite::toJSON(x, auto_unbox = TRUE, digits = NA, null = "null"), "\n", sep = "")
  flush(stdout())
}
vm <- function(key) {
  l <- grep(paste0("^", key, ":"), readLines("/proc/self/status"), value = TRUE)
  if (length(l)) as.numeric(gsub("[^0-9]", "", l)) else NA
}
reset_peak <- function() {
  ok <- try(cat("5", file = "/proc/self/clear_refs"), silent = TRUE)
  !inherits(ok, "try-error")
}
si <- sessionInfo()
emit(list(event = "info", R = R.version.string,
          versions = list(lme4 = as.character(packageVersion("lme4")),
                          Matrix = as.character(packageVersion("Matrix")),
                          data.table = as.character(packageVersion("data.table"))),
          BLAS = si$BLAS, LAPACK = La_library(), LAPACK_version = La_version()))
t0 <- proc.time()[["elapsed"]]
d <- as.data.frame(fread(data_path))
for (v in facs) d[[v]] <- factor(d[[v]])
invisible(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))  # warm-up
emit(list(event = "ready", load_seconds = proc.time()[["elapsed"]] - t0, rows = nrow(d)))
spent <- 0
last <- 0
m <- NULL
fit_once <- function(kind, clean) {
  if (clean) invisible(gc())
  reset <- reset_peak()
  base <- vm("VmRSS")
  p1 <- proc.time()
  m <- lmer(form, data = d, REML = TRUE)
  p2 <- proc.time() - p1
  dt <- p2[["elapsed"]]
  peak <- vm("VmHWM")
  conv <- m@optinfo$conv
  msgs <- as.character(unlist(c(conv$lme4$messages, m@optinfo$warnings)))
  emit(list(event = "fit", kind = kind, seconds = dt,
            cpu_seconds = p2[["user.self"]] + p2[["sys.self"]],
            base_kb = base, peak_kb = peak, peak_reset = reset,
            objective = as.numeric(REMLcrit(m)), nfev = m@optinfo$feval,
            optimizer = m@optinfo$optimizer,
            converged = (conv$opt == 0) && length(conv$lme4$messages) == 0,
            theta = unname(getME(m, "theta")),
            messages = as.list(head(msgs, 3)),
            q = nrow(getME(m, "Zt")), n = nrow(d)))
  m <<- m
  dt
}
# timed fits back to back; gc() only before the first and before the memory fit
warm <- 0
for (i in 0:nrep) {
  if (i >= 2 && spent + last > budget) break
  dt <- fit_once(if (i == 0) "first" else "warm", i == 0)
  if (i > 0) { spent <- spent + dt; warm <- warm + 1 }
  last <- dt
  if (i == 0 && dt > budget) break
}
if (warm > 0 && spent + last <= budget) invisible(fit_once("memory", TRUE))
if (ndev > 0 && !is.null(m)) {
  devf <- lmer(form, data = d, REML = TRUE, devFunOnly = TRUE)
  th <- getME(m, "theta")
  invisible(devf(th))
  t1 <- proc.time()[["elapsed"]]
  for (k in seq_len(ndev)) devf(th)
  emit(list(event = "devfun", seconds = (proc.time()[["elapsed"]] - t1) / ndev, reps = ndev))
}
emit(list(event = "done"))
"""


# ---------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------


def run_worker(cmd: list[str], cap: float, startup_cap: float = 600.0,
               log=None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a worker, collect its events; kill it when one fit exceeds ``cap`` seconds."""
    load0 = _loadavg()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, start_new_session=True, env=env)
    lines: queue.Queue = queue.Queue()
    err_tail: list[str] = []

    def read_out():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def read_err():
        for line in proc.stderr:
            err_tail.append(line)
            del err_tail[:-40]

    threads = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=read_err, daemon=True)]
    for th in threads:
        th.start()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + startup_cap
    timed_out = None
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            timed_out = "startup" if not any(e["event"] == "ready" for e in events) else "fit"
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        if line is None:
            break
        if not line.startswith(MARK):
            continue
        try:
            ev = json.loads(line[len(MARK):])
        except json.JSONDecodeError:
            continue
        events.append(ev)
        if log and ev.get("event") == "fit":
            log(f"      {ev['kind']:5s} fit {ev['seconds']:9.3f} s  objective "
                f"{ev.get('objective')}  evaluations {ev.get('nfev')}")
        if ev["event"] in ("ready", "fit"):
            deadline = time.monotonic() + cap
        if ev["event"] == "done":
            break
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for th in threads:
        th.join(timeout=5)
    return {"events": events, "timed_out": timed_out, "returncode": proc.returncode,
            "stderr": "".join(err_tail)[-3000:], "cap": cap, "load": [load0, _loadavg()]}


def _loadavg() -> float | None:
    """The 1-minute load average of the machine (Linux)."""
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def summarise(run: dict[str, Any], tool: str = "") -> dict[str, Any]:
    """Reduce a worker's events to the numbers of the tables.

    Time: median of the fits after the first (the first when it is the only one). Memory:
    the largest growth over the fits that start from a collected heap, the first and the
    "memory" fit after the timed ones. The first is left out for mixeff when the memory
    fit ran (it includes ~150 MB of one-off Numba code loading); it is the one that counts
    for R, which keeps the heap an earlier fit grew (its later fits grow by ~0).
    """
    fits = [e for e in run["events"] if e["event"] == "fit"]
    info: dict[str, Any] = {}
    for e in run["events"]:
        if e["event"] == "info":
            info.update({k: v for k, v in e.items() if k != "event"})
    out: dict[str, Any] = {"info": info, "n_fits": len(fits), "cap": run["cap"],
                           "load": run.get("load")}
    if not fits:
        if run["timed_out"] == "fit":
            out["status"] = "cap"
            out["error"] = f">{run['cap']:.0f} s (killed)"
        else:
            out["status"] = "error"
            tail = run["stderr"].strip().splitlines()
            msg = next((ln for ln in reversed(tail) if "Error" in ln or "error" in ln),
                       tail[-1] if tail else f"exit code {run['returncode']}")
            out["error"] = msg.strip()[:300]
            out["stderr"] = run["stderr"][-1500:]
        return out
    first = fits[0]
    warm = [f for f in fits if f["kind"] == "warm"]
    use = warm or [first]
    last = use[-1]
    memory = [f for f in fits if f["kind"] == "memory"]
    mem_fits = memory if (tool == "mixeff" and memory) else [first, *memory]
    mem_fits = [f for f in mem_fits if f.get("peak_reset") and f.get("peak_kb")]
    cpu = [f["cpu_seconds"] / f["seconds"] for f in use
           if f.get("cpu_seconds") is not None and f["seconds"] > 0]
    out.update({
        "status": "ok" if run["timed_out"] is None else "partial",
        "first": first["seconds"],
        "median": statistics.median(f["seconds"] for f in use),
        "runs": len(use),
        "objective": last.get("objective"),
        "nfev": last.get("nfev"),
        "ngrad": last.get("ngrad"),
        "optimizer": last.get("optimizer"),
        "checks_seconds": last.get("checks_seconds"),
        "converged": last.get("converged"),
        "messages": last.get("messages") or [],
        "peak_mb": max((f["peak_kb"] - f["base_kb"]) / 1024.0 for f in mem_fits)
        if mem_fits else None,
        "peak_abs_mb": max((f.get("peak_kb") or 0) for f in fits) / 1024.0,
        "peak_includes_first": tool == "mixeff" and not any(f["kind"] == "memory"
                                                               for f in fits),
        "cpu_share": statistics.median(cpu) if cpu else None,
        "theta": last.get("theta"),
        "n": last.get("n"),
        "q": last.get("q"),
        "nnz_factor": last.get("nnz_factor"),
        "optimizer_seconds": last.get("optimizer_seconds"),
        # every fit's raw numbers, so that the tables can be summarised again
        "fits": [{k: f.get(k) for k in ("kind", "seconds", "cpu_seconds", "base_kb",
                                         "peak_kb", "peak_reset")} for f in fits],
    })
    if run["timed_out"] == "fit":
        out["error"] = f"a later fit exceeded {run['cap']:.0f} s (killed)"
    for e in run["events"]:
        if e["event"] == "devfun":
            out["devfun_seconds"] = e["seconds"]
    return out


def machine_info() -> dict[str, Any]:
    """CPU, memory, OS and Python-side library versions of this machine."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(),
                            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as fh:
            models = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1])
        info["memory_gb"] = round(kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    vers = {}
    for dist in ("mixeff", "numpy", "scipy", "pandas", "numba", "scikit-sparse", "formulaic",
                 "statsmodels", "mixedlm", "lme-python", "pyarrow", "matplotlib"):
        try:
            vers[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            vers[dist] = None
    info["versions"] = vers
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        info["git"] = head + (" (plus uncommitted changes in src/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = "unknown"
    return info


def tool_available(tool: str, no_r: bool) -> str | None:
    """None if ``tool`` can run here, else the reason it cannot."""
    if tool == "lme4":
        if no_r:
            return "skipped (--no-r)"
        from shutil import which

        return None if which("Rscript") else "Rscript not found"
    mod = PY_MODULE[tool]
    if importlib.util.find_spec(mod) is None:
        return f"not installed (pip install {DIST[tool]})"
    return None


def write_data(case: Case, tmp: Path) -> tuple[Path, Path, Any]:
    """Write the case's data for the Python workers (Parquet) and for R (CSV)."""
    df = load_case(case)
    try:
        import pyarrow  # noqa: F401

        py_path = tmp / f"{case.name}.parquet"
        df.to_parquet(py_path, index=False)
    except ImportError:
        py_path = tmp / f"{case.name}.pkl"
        df.to_pickle(py_path)
    csv_path = tmp / f"{case.name}.csv"
    df.to_csv(csv_path, index=False, float_format="%.17g")
    return py_path, csv_path, df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mixeff side by side with lme4 and Python peers")
    ap.add_argument("--quick", action="store_true", help="small data sets only")
    ap.add_argument("--cases", default=None,
                    help=f"comma-separated subset of {','.join(MAIN_CASES)},scaling,breakdown,"
                         "threads")
    ap.add_argument("--no-r", action="store_true", help="skip lme4")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated tools to run")
    ap.add_argument("--repeat", type=int, default=3, help="timed fits after the first (median)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of repeated fits per tool and case (after the first)")
    ap.add_argument("--cap", type=float, default=120.0,
                    help="seconds after which a Python peer's fit is killed")
    ap.add_argument("--r-cap", type=float, default=300.0,
                    help="seconds after which an lme4 fit is killed")
    ap.add_argument("--mixeff-cap", type=float, default=900.0,
                    help="seconds after which a mixeff fit is killed")
    ap.add_argument("--breakdown-reps", type=int, default=15)
    ap.add_argument("--scaling-repeat", type=int, default=1,
                    help="timed fits after the first in the scaling and thread comparisons")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="OPENBLAS/OMP/MKL_NUM_THREADS for every worker (0: leave the "
                         "environment as it is)")
    ap.add_argument("--out-dir", default=None)
    # worker modes (internal)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker == "breakdown":
        breakdown_worker(args.case, args.data, args.breakdown_reps)
        return 0
    if args.worker:
        worker(args.worker, args.case, args.data, args.repeat, args.budget)
        return 0

    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = set(wanted) - set(CASES) - {"scaling", "breakdown", "threads"}
        if unknown:
            ap.error(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
        full = False
    elif args.quick:
        wanted = [c for c in MAIN_CASES if CASES[c].small]
        full = False
    else:
        wanted = MAIN_CASES + ["scaling", "breakdown", "threads"]
        full = True
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    out_dir = Path(args.out_dir) if args.out_dir else (HERE if full else HERE / "partial")
    out_dir.mkdir(parents=True, exist_ok=True)

    t_start = time.monotonic()
    worker_env = dict(os.environ)
    default_env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if args.blas_threads > 0:
        worker_env.update({k: str(args.blas_threads) for k in THREAD_VARS})

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:7.1f} s] {msg}", flush=True)

    avail = {t: tool_available(t, args.no_r) for t in tools}
    results: dict[str, Any] = {
        "machine": machine_info(), "args": vars(args), "cases": {}, "scaling": {},
        "breakdown": {}, "tools": tools,
        "unavailable": {t: why for t, why in avail.items() if why},
        "blas_threads": args.blas_threads, "threads": {},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    log(f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores")
    for t, why in results["unavailable"].items():
        log(f"{t}: {why}")

    with tempfile.TemporaryDirectory(prefix="mixeff-bench-") as tmpdir:
        tmp = Path(tmpdir)
        r_script = tmp / "lme4_worker.R"
        r_script.write_text(R_WORKER)

        def run_tool(tool: str, case: Case, py_path: Path, csv_path: Path,
                     ndev: int = 0, env: dict[str, str] | None = None,
                     repeat: int | None = None) -> dict[str, Any]:
            repeat = args.repeat if repeat is None else repeat
            if tool == "lme4":
                cmd = ["Rscript", str(r_script), str(csv_path), case.formula,
                       ",".join(case.factors), str(repeat), str(args.budget), str(ndev)]
                cap = max(args.r_cap, case.r_cap or 0.0)
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool,
                       "--case", case.name, "--data", str(py_path), "--repeat",
                       str(repeat), "--budget", str(args.budget)]
                cap = args.mixeff_cap if tool == "mixeff" else args.cap
            log(f"  {tool} ...")
            res = summarise(run_worker(cmd, cap, log=log, env=env or worker_env), tool)
            if res["status"] not in ("ok",):
                log(f"    {tool}: {res['status']}: {res.get('error')}")
            return res

        def run_case(name: str, case_tools: list[str], ndev: int = 0,
                     env: dict[str, str] | None = None, repeat: int | None = None,
                     ) -> dict[str, Any]:
            """Fit case ``name`` with each entry of ``case_tools``: a tool name, or
            ``tool@default`` for that tool with the BLAS thread counts left unset."""
            case = CASES[name]
            log(f"case {name}: preparing data")
            py_path, csv_path, df = write_data(case, tmp)
            rows = len(df)
            del df
            res: dict[str, Any] = {"rows": rows, "label": case.label, "tools": {},
                                   "formula": case.formula}
            for key in case_tools:
                tool, _, variant = key.partition("@")
                if avail.get(tool):
                    res["tools"][key] = {"status": "unavailable", "error": avail[tool]}
                    continue
                if tool == "statsmodels" and case.statsmodels is None:
                    res["tools"][key] = {"status": "skipped", "error": case.sm_note}
                    continue
                if variant:
                    log(f"  ({tool}: BLAS thread counts left at the libraries' defaults)")
                r = run_tool(tool, case, py_path, csv_path,
                             ndev=ndev if tool == "lme4" else 0,
                             env=default_env if variant else env, repeat=repeat)
                if tool in case.note_for:
                    r["note"] = case.note_for[tool]
                res["tools"][key] = r
            py_path.unlink(missing_ok=True)
            csv_path.unlink(missing_ok=True)
            return res

        for name in [c for c in wanted if c in CASES]:
            ndev = 10 if ("breakdown" in wanted and name in BREAKDOWN) else 0
            results["cases"][name] = run_case(name, tools, ndev=ndev)

        if "scaling" in wanted:
            # All sizes measured one after the other (the machine's load drifts).
            for name in SCALING:
                results["scaling"][name] = run_case(
                    name, [t for t in tools if t in ("mixeff", "lme4")],
                    repeat=args.scaling_repeat)

        if "breakdown" in wanted and "mixeff" in tools:
            for name in BREAKDOWN:
                case = CASES[name]
                log(f"breakdown {name}")
                py_path, csv_path, _ = write_data(case, tmp)
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "breakdown",
                       "--case", name, "--data", str(py_path), "--breakdown-reps",
                       str(args.breakdown_reps)]
                run = run_worker(cmd, args.mixeff_cap, env=worker_env)
                bd: dict[str, Any] = {}
                for e in run["events"]:
                    if e["event"] in ("stages", "evaluation"):
                        bd[e["event"]] = {k: v for k, v in e.items() if k != "event"}
                if not bd:
                    bd["error"] = run["stderr"][-1500:]
                lme4 = results["cases"].get(name, {}).get("tools", {}).get("lme4", {})
                bd["lme4_devfun_seconds"] = lme4.get("devfun_seconds")
                bd["lme4_nfev"] = lme4.get("nfev")
                results["breakdown"][name] = bd
                py_path.unlink(missing_ok=True)
                csv_path.unlink(missing_ok=True)

        if "threads" in wanted and args.blas_threads != 1:
            log("threads: skipped (only meaningful with --blas-threads 1)")
        elif "threads" in wanted:
            # One thread and the libraries' defaults back to back, per tool.
            for name in THREADS_CASES:
                log(f"threads {name}")
                keys = [k for t in tools if t in ("mixeff", "lme4") for k in (t, f"{t}@default")]
                results["threads"][name] = run_case(name, keys, repeat=args.scaling_repeat)

    results["elapsed_seconds"] = time.monotonic() - t_start
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    png = None
    if results["scaling"]:
        png = plot_scaling(results, out_dir / "fit_time_vs_rows.png")
    md = out_dir / "RESULTS.md"
    md.write_text(render_markdown(results, png) + kept_sections(md))
    log(f"wrote {out_dir / 'RESULTS.md'}" + (f" and {png}" if png else ""))
    return 0


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 0.1:
        return f"{x * 1000:.1f} ms"
    if x < 100:
        return f"{x:.2f} s"
    return f"{x:.0f} s"


def _cell_time(r: dict[str, Any] | None, ref: float | None = None) -> str:
    if not r:
        return "—"
    if r.get("status") in ("ok", "partial"):
        s = _fmt_s(r["median"])
        if ref:
            s += f" (×{r['median'] / ref:.2g})"
        if r.get("n_fits", 0) == 1:
            s += " ¹"
        return s
    if r.get("status") == "cap":
        return f">{r['cap']:.0f} s (cap)"
    if r.get("status") == "error":
        return "error ²"
    return "n/a ³" if r.get("status") in ("skipped", "unavailable") else "—"


def _objdiff(r: dict[str, Any] | None, ref: float | None) -> str:
    if not r or r.get("status") not in ("ok", "partial") or r.get("objective") is None:
        return "—"
    if ref is None:
        return f"{r['objective']:.6f}"
    d = r["objective"] - ref
    return f"{d:+.2g}" if d else "0"


def _mem(r: dict[str, Any] | None) -> str:
    if not r or r.get("status") not in ("ok", "partial"):
        return "—"
    if r.get("peak_mb") is None:
        return f"{r.get('peak_abs_mb', 0):.0f} (abs)"
    mb = max(r["peak_mb"], 0.0)
    return (f"{mb:.1f}" if mb < 10 else f"{mb:.0f}") + (" ⁴" if r.get("peak_includes_first")
                                                        else "")


def _cond(r: dict[str, Any] | None) -> str:
    if not r or r.get("status") not in ("ok", "partial", "cap"):
        return "—"
    share = r.get("cpu_share")
    load = (r.get("load") or [None])[0]
    a = "—" if share is None else f"{share:.2f}"
    b = "?" if load is None else f"{load:.1f}"
    return f"{a} @ {b}"


def _esc(text: str) -> str:
    """Escape the table separator inside a Markdown table cell."""
    return text.replace("|", "\\|")


def render_markdown(res: dict[str, Any], png: Path | None) -> str:
    m = res["machine"]
    tools = res["tools"]
    peers = [t for t in tools if t != "mixeff"]
    L: list[str] = []
    L.append("# mixeff side by side: lme4, statsmodels, mixedlm, lme-python")
    L.append("")
    L.append(f"Generated by `benchmarks/run_side_by_side.py` on {res['started']} "
             f"(total run {res['elapsed_seconds'] / 60:.1f} min; mixeff at git "
             f"{m.get('git')}). Re-run: `.venv/bin/python benchmarks/run_side_by_side.py` "
             "(or `nox -s bench`). Absolute seconds depend on the machine and its load "
             "(shared, noisy, 2 cores); the ratios come from fits run one at a time in the "
             "same run.")
    L.append("")
    L.append("## Machine and libraries")
    L.append("")
    L.append(f"- CPU: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB RAM; "
             f"Linux {m.get('kernel')}; Python {m.get('python')}")
    mx_info: dict[str, Any] = {}
    r_info: dict[str, Any] = {}
    for c in res["cases"].values():
        mx_info.update(c["tools"].get("mixeff", {}).get("info", {}))
        r_info.update(c["tools"].get("lme4", {}).get("info", {}))
    L.append(f"- numpy BLAS: {mx_info.get('numpy_blas', 'n/a')}")
    L.append(f"- CHOLMOD (mixeff): {mx_info.get('cholmod', 'n/a')}")
    if r_info:
        rv = r_info.get("versions", {})
        L.append(f"- R: {r_info.get('R')}; lme4 {rv.get('lme4')}, Matrix {rv.get('Matrix')}, "
                 f"data.table {rv.get('data.table')}; BLAS `{r_info.get('BLAS')}`, LAPACK "
                 f"`{r_info.get('LAPACK')}` ({r_info.get('LAPACK_version')})")
    else:
        L.append("- R: not run")
    v = m.get("versions", {})
    L.append("- Python packages: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    bt = res.get("blas_threads")
    L.append("- BLAS threads: " + (f"`OPENBLAS_NUM_THREADS={bt}` (also OMP_, MKL_) for every "
                                   "tool, R included" if bt else "libraries' defaults"))
    if res["unavailable"]:
        L.append("- Not run: " + "; ".join(f"{k}: {w}" for k, w in res["unavailable"].items()))
    L.append("")

    L.append("## Fit time")
    L.append("")
    L.append("Median seconds of the fit call (data already loaded; the repeated fits run back "
             "to back, without a forced garbage collection in between, in Python and in R); "
             "in brackets the time relative to mixeff's median (×2 = twice as long as "
             "mixeff). `first` is mixeff's first fit in a fresh process (Numba compilation "
             "or cache loading included); the other tools were warmed up on sleepstudy "
             "before.")
    L.append("")
    hdr = ["case", "rows", "q", "mixeff first", "mixeff median", *peers, "lme4/mixeff"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    notes: list[str] = []
    for _name, c in res["cases"].items():
        mx = c["tools"].get("mixeff", {})
        ref = mx.get("median") if mx.get("status") in ("ok", "partial") else None
        row = [_esc(c["label"]), f"{c['rows']:,}", f"{mx.get('q'):,}" if mx.get("q") else "—",
               _fmt_s(mx.get("first")) if ref else _cell_time(mx),
               _cell_time(mx)]
        for t in peers:
            r = c["tools"].get(t)
            row.append(_cell_time(r, ref))
            if r and r.get("status") not in ("ok",) and r.get("error"):
                notes.append(f"{c['label']} / {t}: {r['error']}")
            if r and r.get("note"):
                notes.append(f"{c['label']} / {t}: {r['note']}")
        lm = c["tools"].get("lme4", {})
        if ref and lm.get("status") in ("ok", "partial"):
            row.append(f"**{lm['median'] / ref:.2f}**")
        elif ref and lm.get("status") == "cap":
            row.append(f"**>{lm['cap'] / ref:.1f}**")
        else:
            row.append("—")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("¹ one fit only (the first took longer than the repeat budget). "
             "² failed, see notes. ³ not run, see notes.")
    L.append("")
    if notes:
        L.append("Notes:")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
        L.append("")

    L.append("## Objective evaluations and optimum reached")
    L.append("")
    L.append("Evaluations: mixeff `fit.n_evaluations` (optimiser in brackets; gradients "
             "counted apart), lme4 `m@optinfo$feval`, statsmodels calls of `loglike`, "
             "mixedlm `function_evals`, lme-python `iterations`. Objective: mixeff's REML "
             "criterion and each peer's difference to it (lme4 `REMLcrit`, statsmodels "
             "`-2 llf`, mixedlm `REMLcrit()`, lme-python `reml_criterion`); a negative "
             "difference means the peer found a lower criterion than mixeff.")
    L.append("")
    hdr = ["case", "mixeff evals", *[f"{t} evals" for t in peers], "mixeff REML crit.",
           *[f"{t} − mixeff" for t in peers]]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for _name, c in res["cases"].items():
        mx = c["tools"].get("mixeff", {})
        ok = mx.get("status") in ("ok", "partial")
        ev = (f"{mx.get('nfev')} ({mx.get('optimizer')}"
              + (f", {mx.get('ngrad')} grad." if mx.get("ngrad") else "") + ")") if ok else "—"
        row = [_esc(c["label"]), ev]
        for t in peers:
            r = c["tools"].get(t, {})
            row.append(str(r.get("nfev")) if r.get("status") in ("ok", "partial") else "—")
        ref = mx.get("objective") if ok else None
        row.append(f"{ref:.4f}" if ref is not None else "—")
        for t in peers:
            row.append(_objdiff(c["tools"].get(t), ref))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    conv = []
    for _name, c in res["cases"].items():
        for t, r in c["tools"].items():
            if r.get("status") in ("ok", "partial") and (r.get("converged") is False
                                                        or r.get("messages")):
                conv.append(f"{c['label']} / {t}: converged={r.get('converged')}; "
                            + "; ".join(str(x) for x in r.get("messages", []))[:300])
    if conv:
        L.append("Convergence messages:")
        L.append("")
        L.extend(f"- {x}" for x in conv)
        L.append("")

    L.append("## Peak memory")
    L.append("")
    L.append("Growth of the resident set during one fit (MB): the largest over the fits that "
             "start from a collected heap (`gc.collect()` and `malloc_trim`, R's `gc()`), the "
             "first and one more after the timed ones (mixeff: that one alone when it ran; "
             "R keeps the heap an earlier fit grew, so its first fit is the one that shows "
             "it). The kernel's high-water mark is reset just before the fit, "
             "`VmHWM − VmRSS(before)` is read after it; the data and the libraries are "
             "already loaded.")
    L.append("")
    hdr = ["case", "mixeff", *peers]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for _name, c in res["cases"].items():
        row = [_esc(c["label"]), _mem(c["tools"].get("mixeff"))]
        row += [_mem(c["tools"].get(t)) for t in peers]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    L.append("⁴ mixeff's only fit, the first of its process: includes ~150 MB of one-off "
             "Numba code loading. Otherwise mixeff's first fit is left out of its column.")
    L.append("")

    L.append("## Measurement conditions")
    L.append("")
    L.append("CPU share of the timed fits (process CPU seconds / wall seconds, median; with "
             "one BLAS thread, well below 1 means the process waited for a core) @ the "
             "machine's 1-minute load average when the worker started. The machine is "
             "shared: read the timings of a row together with this.")
    L.append("")
    hdr = ["case", "mixeff", *peers]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for _name, c in res["cases"].items():
        row = [_esc(c["label"]), _cond(c["tools"].get("mixeff"))]
        row += [_cond(c["tools"].get(t)) for t in peers]
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    if res["breakdown"]:
        L.extend(_render_breakdown(res))
    if res.get("threads"):
        L.extend(_render_threads(res))
    if res["scaling"]:
        L.append("## Fit time against rows (crossed design)")
        L.append("")
        L.append("`y ~ 1 + x + (1|a) + (1|b)` with n rows, n/15 levels of `a` and n/150 of "
                 "`b` (the 300k case's shape); all sizes measured one after the other, "
                 "median of the fits after the first (`--scaling-repeat`).")
        L.append("")
        L.append("| rows | q | mixeff | lme4 | lme4/mixeff | CPU share @ load (mixeff; lme4) |")
        L.append("|---|---|---|---|---|---|")
        for _name, c in res["scaling"].items():
            mx = c["tools"].get("mixeff", {})
            lm = c["tools"].get("lme4", {})
            ratio = (f"{lm['median'] / mx['median']:.2f}" if mx.get("median")
                     and lm.get("median") else "—")
            q = f"{mx['q']:,}" if mx.get("q") else "—"
            L.append(f"| {c['rows']:,} | {q} | {_cell_time(mx)} | {_cell_time(lm)} | {ratio} "
                     f"| {_cond(mx)}; {_cond(lm)} |")
        L.append("")
        if png:
            L.append(f"![fit time against rows]({png.name})")
            L.append("")
    return "\n".join(L) + "\n"


def _render_breakdown(res: dict[str, Any]) -> list[str]:
    L = ["## Where mixeff's time goes", ""]
    L.append("Per evaluation, at the optimum θ̂, median of repeated calls of the pieces of "
             "`LmmObjective.solve` timed from the outside: fill of Λ'AΛ + I into the fixed "
             "pattern (`_fill`), the numeric factorisation (`_chol.factorize_values`: CHOLMOD "
             "on the whole matrix, or the Schur path of `mixeff._schur`), "
             "the right-hand side P Λ'Z'[X y] (`_lambda_t` + permutation), the triangular "
             "solve (`_chol.solve_L`); \"rest\" is a whole `solve(θ)` minus these, in the same "
             "repetition (small dense algebra for R_X, β, r², log-determinants, "
             "bookkeeping; timing noise can make it slightly negative). lme4's time "
             "per evaluation is its `devFunOnly` function at the same θ̂.")
    L.append("")
    names = list(res["breakdown"])
    L.append("| per evaluation | " + " | ".join(names) + " |")
    L.append("|---|" + "---|" * len(names))

    def ev(name, key):
        return res["breakdown"][name].get("evaluation", {}).get(key)

    def ms(x):
        return "—" if x is None else f"{x * 1000:.2f} ms"

    rows = [("q (random effects)", lambda n: f"{ev(n, 'q'):,}" if ev(n, "q") else "—"),
            ("nnz of M (lower) / of L", lambda n: f"{ev(n, 'nnz_M'):,} / {ev(n, 'nnz_L'):,}"
             if ev(n, "nnz_M") else "—"),
            ("factorisation path", lambda n: str(ev(n, "factorization") or "—")),
            ("fill Λ'AΛ + I", lambda n: ms(ev(n, "fill"))),
            ("numeric factorisation (`_chol.factorize_values`)",
             lambda n: ms(ev(n, "factorize"))),
            ("right-hand side PΛ'Z'[X y]", lambda n: ms(ev(n, "rhs"))),
            ("solve L⁻¹ (`_chol.solve_L`)", lambda n: ms(ev(n, "solve_L"))),
            ("rest (dense algebra, bookkeeping)", lambda n: ms(ev(n, "rest"))),
            ("**one objective evaluation `solve(θ)`**", lambda n: ms(ev(n, "solve_total"))),
            ("gradient (after a solve)", lambda n: ms(ev(n, "gradient"))),
            ("  of which selected inverse", lambda n: ms(ev(n, "selected_inverse"))),
            ("lme4: one evaluation (devfun)",
             lambda n: ms(res["breakdown"][n].get("lme4_devfun_seconds"))),
            ]
    for label, f in rows:
        L.append(f"| {label} | " + " | ".join(f(n) for n in names) + " |")
    L.append("")
    L.append("Stages of one whole `mixeff.lmer` call (warm process):")
    L.append("")
    L.append("| stage | " + " | ".join(names) + " |")
    L.append("|---|" + "---|" * len(names))
    stage_labels: list[str] = []
    for n in names:
        for k in res["breakdown"][n].get("stages", {}).get("stages", {}):
            if k not in stage_labels:
                stage_labels.append(k)
    for k in stage_labels:
        cells = []
        for n in names:
            st = res["breakdown"][n].get("stages", {})
            v = st.get("stages", {}).get(k)
            cells.append("—" if v is None else _fmt_s(v))
        L.append(f"| {k} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        st = res["breakdown"][n].get("stages", {})
        cells.append(_fmt_s(st.get("total")) if st else "—")
    L.append("| **total** | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        st = res["breakdown"][n].get("stages", {})
        if not st:
            cells.append("—")
            continue
        cells.append(f"{st.get('nfev')} evaluations + {st.get('ngrad')} gradients "
                     f"({st.get('optimizer')})")
    L.append("| optimiser work | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        st = res["breakdown"][n].get("stages", {})
        e = res["breakdown"][n].get("evaluation", {})
        opt = st.get("stages", {}).get("optimiser (all evaluations)")
        if not st or opt is None or e.get("solve_total") is None:
            cells.append("—")
            continue
        work = st["nfev"] * e["solve_total"] + st["ngrad"] * (e.get("gradient") or 0.0)
        cells.append(f"{_fmt_s(work)} of {_fmt_s(opt)}")
        st.setdefault("explained", work)
    L.append("| evaluations × time per evaluation (+ gradients), of optimiser time | "
             + " | ".join(cells) + " |")
    cells = []
    for n in names:
        lm_n = res["breakdown"][n].get("lme4_nfev")
        lm_t = res["breakdown"][n].get("lme4_devfun_seconds")
        cells.append(f"{lm_n} × {_fmt_s(lm_t)}" if lm_n and lm_t else "—")
    L.append("| lme4: evaluations × time per evaluation | " + " | ".join(cells) + " |")
    L.append("")
    for n in names:
        if res["breakdown"][n].get("evaluation", {}).get("error"):
            L.append(f"- {n}: breakdown failed: {res['breakdown'][n]['evaluation']['error']}")
        if res["breakdown"][n].get("stages", {}).get("missing"):
            L.append(f"- {n}: stages not found (internal API moved): "
                     f"{res['breakdown'][n]['stages']['missing']}")
    L.append("")
    return L


def _render_threads(res: dict[str, Any]) -> list[str]:
    L = ["## BLAS threads", ""]
    L.append("The tables above ran every tool with one BLAS thread. Here each tool runs with "
             "one thread and then with the thread counts left at the libraries' defaults "
             "(OpenBLAS: one thread per core; mixeff: `lmer(..., blas_threads=None)`, which "
             "also shares the Schur path's elimination among the cores), back to back "
             "(median of the fits after the first):")
    L.append("")
    L.append("| case | mixeff, 1 thread | mixeff, default | lme4, 1 thread | lme4, default "
             "| CPU share @ load (same order) |")
    L.append("|---|---|---|---|---|---|")
    for c in res["threads"].values():
        row = [_esc(c["label"])]
        keys = [k for t in ("mixeff", "lme4") for k in (t, f"{t}@default")]
        row += [_cell_time(c["tools"].get(k)) for k in keys]
        row.append("; ".join(_cond(c["tools"].get(k)) for k in keys))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Why this is watched: mixeff's process holds up to three OpenBLAS libraries, "
             "each with its own pool of threads (numpy's and scipy's bundled "
             "`scipy-openblas64`/`scipy-openblas32`, and the system one under CHOLMOD). "
             "OpenBLAS threads keep spinning for a while after a call; when the next call "
             "goes to another library they compete with the spinning ones for the cores. On "
             "this machine under load that cost mixeff 10x (Penicillin) to 27x (InstEval) "
             "with the default thread counts (2026-11-25, before mixeff limited its own "
             "threads with threadpoolctl). The difference depends on the load "
             "(last column). Large dense factorisations (MovieLens-like: a 4,000 x 4,000 "
             "Schur complement) gain from the second core; small and medium ones do not.")
    L.append("")
    return L


def plot_scaling(res: dict[str, Any], path: Path) -> Path | None:
    """Log-log plot of fit time against rows for mixeff and lme4 (crossed design)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for tool, style in (("mixeff", "o-"), ("lme4", "s--")):
        xs, ys = [], []
        for c in res["scaling"].values():
            r = c["tools"].get(tool, {})
            if r.get("status") in ("ok", "partial"):
                xs.append(c["rows"])
                ys.append(r["median"])
        if xs:
            ax.plot(xs, ys, style, label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows (levels: rows/15 × rows/150)")
    ax.set_ylabel("fit time, median (s)")
    ax.set_title("y ~ 1 + x + (1|a) + (1|b), crossed")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
