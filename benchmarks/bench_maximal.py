"""Crossed vector-valued random effects ("maximal" models), side by side with lme4.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_maximal.py            # kb07-, mrk17- and d3-like
    .venv/bin/python benchmarks/bench_maximal.py --cases kb07_like,mrk17_like

Runs ``run_side_by_side.py`` on the cases of the class (``MAXIMAL_CASES``: seeded
simulators in ``simulate.py``), every tool in a fresh process, one BLAS thread each, in
the same run, and writes the section ``bench_maximal`` of ``benchmarks/RESULTS.md``: fit
seconds (mixeff's include its convergence checks, lme4's its derivative stencil), the
ratio lme4 / mixeff, the optima, evaluations and the share of mixeff's fit spent in the
checks; with MixedModels.jl's published figures for the real data sets quoted beside.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import put_section  # noqa: E402
from run_side_by_side import CASES, MAXIMAL_CASES  # noqa: E402

#: MixedModels.jl's published figures for the real data sets (filled from their sources).
PUBLISHED: list[tuple[str, str, str]] = [
    ("kb07, 4-dim terms on subj and item (20 theta), ML", "517.6 ms, 781 evaluations, "
     "592 us per evaluation (Julia 1.1.0, MixedModels ~v2.0, 2019; hardware not stated); "
     "lme4 \"over 6 seconds\" on the same model",
     "github.com/dmbates/JuliaWorkshop Complexity.ipynb; nextjournal.com/dmbates/"
     "complexity-in-fitting-linear-mixed-models"),
    ("d3, `1 + u + (1 + u | g) + (1 + u | h) + (1 + u | i)`", "49.0 s (Julia 1.0.0, Intel "
     "Core i5-3570, 4 cores, 2018)", "MixedModels.jl docs/src/benchmarks.md"),
    ("mrk17_exp1 maximal", "no published fit time found", "MixedModels.jl benchmark/ suite "
     "defines the model; results are not stored"),
]


def _s(x) -> str:
    if x is None:
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def render(res: dict) -> str:
    """The RESULTS.md section from ``run_side_by_side``'s results.json."""
    m = res["machine"]
    lines = [
        "## Crossed vector-valued random effects (maximal models)",
        "",
        f"`benchmarks/bench_maximal.py`, run {res['started']} on {m['cpu']} "
        f"({m['cores']} cores), one BLAS thread for every tool, one fit at a time, same "
        "run. mixeff's time includes its convergence checks (derivatives from the analytic "
        "gradient), lme4's its own post-fit derivative stencil (`calc.derivs`).",
        "",
        "| case | rows | theta | mixeff | lme4 | lme4/mixeff | objective lme4 − mixeff "
        "| evaluations mixeff / lme4 | mixeff checks share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in res["cases"].items():
        mx = c["tools"].get("mixeff", {})
        r = c["tools"].get("lme4", {})
        t_m = mx.get("median") if mx.get("status") == "ok" else None
        t_r = r.get("median") if r.get("status") in ("ok", "partial") else None
        ratio = f"{t_r / t_m:.1f}x" if t_m and t_r else (r.get("error") or "—")
        diff = (f"{r['objective'] - mx['objective']:+.2e}"
                if mx.get("objective") is not None and r.get("objective") is not None else "—")
        share = (f"{mx['checks_seconds'] / t_m:.0%}" if t_m and mx.get("checks_seconds")
                 else "—")
        ntheta = len(mx.get("theta") or [])
        lines.append(f"| {CASES[name].label} | {c['rows']:,} | {ntheta} | {_s(t_m)} | "
                     f"{_s(t_r) if t_r else r.get('error', '—')} | {ratio} | {diff} | "
                     f"{mx.get('nfev', '—')} / {r.get('nfev', '—')} | {share} |")
    peers = [(n, t, c["tools"][t]) for n, c in res["cases"].items()
             for t in ("mixedlm", "lme-python") if t in c["tools"]]
    if peers:
        lines += ["", "Python peers on the same data: " + "; ".join(
            f"{t} on {n}: {_s(v.get('median')) if v.get('status') == 'ok' else v.get('error')}"
            for n, t, v in peers) + "."]
    if PUBLISHED:
        lines += ["", "MixedModels.jl's published figures on the real data sets (other "
                  "hardware; quoted, not measured here):", ""]
        lines += [f"- {a}: {b} ({src})" for a, b, src in PUBLISHED]
    return "\n".join(lines)


def breakdown(name: str = "mrk17_like", reps: int = 7) -> dict:
    """Per-evaluation times of mixeff on case ``name`` near its optimum (one BLAS thread).

    The value (fill, factorisation, solves), the gradient beyond it (selected inverse,
    traces), the factorisation alone, the selected inverse alone, and for scale a dense
    LAPACK Cholesky of the whole ``q x q`` matrix ``M``. Medians of ``reps``.
    """
    import statistics
    import warnings

    import numpy as np
    import simulate
    from run_side_by_side import SEED
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    import mixeff

    case = CASES[name]
    df = simulate.CASES[case.source.split(":")[1]](seed=SEED, **case.kwargs)
    for c in case.factors:
        df[c] = df[c].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mixeff.lmer(case.formula, df)
    obj = fit._obj
    rng = np.random.default_rng(0)

    def point():
        return fit.theta + 1e-7 * rng.random(fit.theta.size)

    def med(fn) -> float:
        ts = []
        for _ in range(reps):
            x = point()
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    with threadpool_limits(1):
        value = med(lambda x: obj.solve(x))
        both = med(lambda x: obj.piece_gradients(x))
        obj.solve(point())
        mdata = obj._mdata.copy()
        fact = med(lambda x: obj._chol.factorize_values(mdata))
        selinv = med(lambda x: (obj._chol.factorize_values(mdata),
                                obj._chol.selected_inverse())) - fact
        A = np.asarray(obj._chol.L().toarray())
        M = A @ A.T
        dense = med(lambda x: lapack.dpotrf(M, lower=1))
    return {"case": name, "q": int(fit.blocks.q), "path": obj.factorization,
            "value": value, "value_gradient": both, "factorization": fact,
            "selected_inverse": selinv, "dense_cholesky": dense}


def render_breakdown(b: dict) -> str:
    """A paragraph of the per-evaluation breakdown."""
    return (f"Per evaluation on {CASES[b['case']].label} (q = {b['q']:,}, {b['path']} path, "
            f"medians near the optimum): value {_s(b['value'])}, value and gradient "
            f"{_s(b['value_gradient'])} ({b['value_gradient'] / b['dense_cholesky']:.1f}x "
            f"a dense LAPACK Cholesky of the whole {b['q']:,}² matrix, {_s(b['dense_cholesky'])}"
            f"); of which the Schur factorisation {_s(b['factorization'])} and the selected "
            f"inverse {_s(b['selected_inverse'])}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(MAXIMAL_CASES))
    ap.add_argument("--tools", default="mixeff,lme4,mixedlm,lme-python")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out-dir", default=str(HERE / "partial" / "maximal"))
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    cmd = [sys.executable, str(HERE / "run_side_by_side.py"), "--cases", args.cases,
           "--tools", args.tools, "--repeat", str(args.repeat), "--out-dir", str(out)]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    res = json.loads((out / "results.json").read_text())
    text = render(res)
    if "mrk17_like" in args.cases.split(","):
        text += "\n\n" + render_breakdown(breakdown("mrk17_like"))
    print(text)
    print(f"[{time.monotonic() - t0:.0f} s]")
    if not args.no_write:
        put_section(HERE / "RESULTS.md", "bench_maximal", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
