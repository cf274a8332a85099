"""A crossed design of 20 million rows fitted from Parquet partitions through Dask.

The rows are simulated partition by partition on the Dask workers and written straight to
Parquet (no process ever holds more than one partition); the workers are then restarted
(fresh peak memory) and ``mixeff.lmer`` fits ``y ~ 1 + x + (1 | u) + (1 | i)`` from the
Parquet glob with a ``LocalCluster`` of worker processes. Measured: wall time of each
stage, peak resident memory (VmHWM / ru_maxrss) of the client process (which also runs
the scheduler) and of each worker process.

Design: ``u`` has 20,000 levels and ``i`` 2,000; each ``u`` is seen on 50 items drawn at
random (1,000 rows per ``u``), so ``Z'Z`` holds about 1,000,000 level pairs. The rows of a
partition come from 500 consecutive units: each partition sees 2.5 % of the levels of
``u``. True values: intercept 1, slope 0.5, SD(u) 1, SD(i) 0.5, residual SD 1.

Run::

    .venv/bin/python benchmarks/bench_dask.py                   # 20M rows, 40 partitions
    .venv/bin/python benchmarks/bench_dask.py --rows 2000000    # quicker
    .venv/bin/python benchmarks/bench_dask.py --write-results   # and (re)write the
                                                                # section of RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from results_md import put_section

HERE = Path(__file__).resolve().parent
N_U, N_I, ITEMS_PER_U = 20_000, 2_000, 50
FORMULA = "y ~ 1 + x + (1 | u) + (1 | i)"


def _write_partition(k: int, nparts: int, nrows: int, out: str,
                     items_per_u: int = ITEMS_PER_U) -> int:
    """Simulate partition ``k`` (its block of units) and write it as Parquet."""
    import pandas as pd

    b_u = np.random.default_rng(1).normal(0.0, 1.0, N_U)
    c_i = np.random.default_rng(2).normal(0.0, 0.5, N_I)
    per_u = nrows // N_U
    u0, u1 = k * N_U // nparts, (k + 1) * N_U // nparts
    rng = np.random.default_rng(1000 + k)
    units = np.repeat(np.arange(u0, u1), per_u)
    items_of = np.stack([np.random.default_rng(10_000 + u).choice(N_I, items_per_u,
                                                                   replace=False)
                         for u in range(u0, u1)])
    items = items_of[units - u0, rng.integers(0, items_per_u, units.size)]
    x = rng.normal(size=units.size)
    y = 1.0 + 0.5 * x + b_u[units] + c_i[items] + rng.normal(size=units.size)
    df = pd.DataFrame({"u": units.astype(np.int32), "i": items.astype(np.int32), "x": x,
                       "y": y})
    df.to_parquet(os.path.join(out, f"part-{k:04d}.parquet"), index=False)
    return len(df)


def _peak_rss_mib() -> dict:
    """Peak resident memory of this process: VmHWM and ru_maxrss, in MiB."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmHWM", "VmRSS")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return out


def generate(client, out: Path, nrows: int, nparts: int, items_per_u: int) -> float:
    stamp = out / "STAMP.json"
    want = {"rows": nrows, "parts": nparts, "n_u": N_U, "n_i": N_I, "k": items_per_u}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return 0.0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    futs = client.map(_write_partition, range(nparts), nparts=nparts, nrows=nrows,
                      out=str(out), items_per_u=items_per_u, pure=False)
    total = sum(client.gather(futs))
    assert total == nrows, total
    stamp.write_text(json.dumps(want))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--parts", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-memory", default="8GiB")
    ap.add_argument("--dir", default="/tmp/mixeff_bench_dask")
    ap.add_argument("--items-per-u", type=int, default=ITEMS_PER_U,
                    help="items each u is seen on (sets the number of level pairs in Z'Z)")
    ap.add_argument("--tag", default="", help="results_dask_TAG.json, an extra run listed "
                    "in the section of RESULTS.md (the main run has no tag)")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()

    import dask
    import distributed

    import mixeff

    out = Path(args.dir) / f"rows{args.rows}_parts{args.parts}_k{args.items_per_u}"
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                       processes=True, memory_limit=args.worker_memory,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        t_gen = generate(client, out, args.rows, args.parts, args.items_per_u)
        client.restart()            # fresh worker processes: their peaks are the fit's
        client_before = _peak_rss_mib()
        on_disk = sum(f.stat().st_size for f in out.glob("*.parquet"))

        t0 = time.perf_counter()
        fit = mixeff.lmer(FORMULA, str(out / "part-*.parquet"))
        t_fit = time.perf_counter() - t0
        client_after_fit = _peak_rss_mib()

        t0 = time.perf_counter()
        coef = fit.coef_table()
        t_coef = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = fit.residuals(type="pearson", scaled=True)
        r_mean, r_sd, r_n = dask.compute(r.mean(), r.std(), r.count())
        t_resid = time.perf_counter() - t0
        t0 = time.perf_counter()
        (trace_h,) = dask.compute(fit.hatvalues().sum())
        t_hat = time.perf_counter() - t0

        client_peak = _peak_rss_mib()
        workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                             / 1024)
        vc = fit.varcorr()
        res = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                  capture_output=True, text=True).stdout.strip(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}"
                       " GiB",
            "versions": {"dask": dask.__version__, "distributed": distributed.__version__,
                         "mixeff": mixeff.__version__},
            "rows": args.rows, "partitions": args.parts, "workers": args.workers,
            "items_per_u": args.items_per_u,
            "parquet_mib": on_disk / 2**20, "formula": FORMULA,
            "levels": fit.ngroups, "q": int(fit.blocks.q),
            "zz_blocks": int(fit.blocks.blk_rt.size), "nnz_lower_m": int(fit.blocks.nnz_m),
            "t_generate_s": t_gen, "t_fit_s": t_fit, "fit_timings_s": fit.timings,
            "t_coef_table_s": t_coef, "t_residuals_s": t_resid, "t_hat_s": t_hat,
            "trace_hat": float(trace_h),
            "n_evaluations": fit.n_evaluations, "optimizer": fit.optsum.method,
            "converged": fit.converged,
            "objective": fit.objective, "fixef": fit.fixef.to_dict(),
            "se": coef["Std. Error"].to_dict(), "df": coef["df"].to_dict(),
            "sd": {(f"{g}.{n}" if isinstance(n, str) else g): float(s) for g, n, s in
                   zip(vc["group"], vc["name1"], vc["sd_cor"], strict=True)},
            "resid_pearson_scaled": {"mean": float(r_mean), "sd": float(r_sd),
                                     "n": int(r_n)},
            "client_peak_mib_before_fit": client_before,
            "client_peak_mib_after_fit": client_after_fit,
            "client_peak_mib": client_peak,
            "worker_peak_mib": {str(k): float(v) for k, v in workers.items()},
        }
    finally:
        client.close()
        cluster.close()
    print(json.dumps(res, indent=1, default=str))
    name = f"results_dask_{args.tag}.json" if args.tag else "results_dask.json"
    (HERE / name).write_text(json.dumps(res, indent=1, default=str) + "\n")
    if args.write_results:
        write_section(json.loads((HERE / "results_dask.json").read_text()))


def render(res: dict) -> str:
    ft = res["fit_timings_s"]
    cp = res["client_peak_mib"]
    wp = res["worker_peak_mib"]
    sd = res["sd"]
    fx = res["fixef"]
    lines = [
        "## Beyond one machine: 20 million rows from Parquet partitions through Dask",
        "",
        f"Generated by `benchmarks/bench_dask.py --write-results` on {res['date_utc']} UTC "
        f"(mixeff at git {res['git']}; dask {res['versions']['dask']}; machine "
        f"{res['machine']}, shared). A `distributed.LocalCluster` of {res['workers']} worker "
        "processes (one thread each) on this machine; the client process also runs the "
        "scheduler. The rows were simulated partition by partition on the workers and "
        "written straight to Parquet; the workers were restarted before the fit, so their "
        "peaks are the fit's.",
        "",
        f"Model `{res['formula']}`: {res['rows']:,} rows in {res['partitions']} Parquet "
        f"files ({res['parquet_mib']:.0f} MiB on disk); u {res['levels']['u']:,} levels, "
        f"i {res['levels']['i']:,} levels (q = {res['q']:,}); each u is seen on "
        f"{res.get('items_per_u', ITEMS_PER_U)} items, so Z'Z holds "
        f"{res['zz_blocks'] - res['q']:,} level pairs; "
        "each partition holds the rows of 2.5 % of the levels of u.",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| pass 1 over the partitions: level sets | {ft['levels']:.1f} |",
        f"| pass 2: per-partition cross-product blocks, tree-reduced | {ft['sums']:.1f} |",
        f"| blocks from the reduced sums (client) | {ft['blocks']:.2f} |",
        f"| symbolic analysis + optimisation ({res['n_evaluations']} evaluations, "
        f"{res['optimizer']}) + checks | "
        f"{ft['analysis'] + ft['optimizer'] + ft['checks'] + ft['fit_object']:.1f} |",
        f"| **`mixeff.lmer(formula, 'part-*.parquet')` total** | **{res['t_fit_s']:.1f}** |",
        f"| `coef_table()` (Satterthwaite df, on the blocks) | {res['t_coef_table_s']:.1f} |",
        f"| scaled residuals' mean and SD, partition by partition (a third pass) | "
        f"{res['t_residuals_s']:.1f} |",
        f"| hat values partition by partition, their sum (trace of H: "
        f"{res['trace_hat']:,.1f}) | {res['t_hat_s']:.1f} |",
        "",
        "| process | peak resident memory (MiB) |",
        "|---|---|",
        f"| client + scheduler, before the fit (imports, cluster) | "
        f"{res['client_peak_mib_before_fit'].get('VmHWM', float('nan')):.0f} |",
        f"| client + scheduler, after the fit | "
        f"{res['client_peak_mib_after_fit'].get('VmHWM', float('nan')):.0f} |",
        f"| client + scheduler, at the end | {cp.get('VmHWM', cp['ru_maxrss']):.0f} |",
    ]
    for k, (addr, v) in enumerate(sorted(wp.items())):
        lines.append(f"| worker {k} ({addr}) | {v:.0f} |")
    lines += [
        "",
        f"Estimates: intercept {fx['(Intercept)']:.4f} (true 1), slope {fx['x']:.5f} "
        f"(true 0.5), SD(u) {sd['u.(Intercept)']:.4f} (true 1), SD(i) "
        f"{sd['i.(Intercept)']:.4f} (true 0.5), residual SD {sd['Residual']:.5f} "
        f"(true 1); REML criterion {res['objective']:.4f}; converged: {res['converged']}. "
        f"Scaled Pearson residuals over {res['resid_pearson_scaled']['n']:,} rows: mean "
        f"{res['resid_pearson_scaled']['mean']:.2g}, SD "
        f"{res['resid_pearson_scaled']['sd']:.4f}.",
        "",
        "The client never holds rows: its memory is set by the level sets and the reduced "
        "blocks (Z'Z holds one entry per observed level pair, so a design where almost "
        "every row is a new pair, e.g. ratings, needs client memory in proportion to the "
        "rows after all). Raw numbers: `benchmarks/results_dask.json`. "
        + _extra_runs() +
        "(`run_side_by_side.py` keeps this marked section when it rewrites the file; "
        "`bench_dask.py --write-results` replaces it.)",
    ]
    return "\n".join(lines) + "\n"


def _extra_runs() -> str:
    """A table of the tagged runs (``results_dask_TAG.json``), e.g. more level pairs."""
    runs = [json.loads(f.read_text()) for f in sorted(HERE.glob("results_dask_*.json"))]
    if not runs:
        return ""
    rows = ["", "", "Other runs (same design, more items per u, so more level pairs in Z'Z; "
            "`bench_dask.py --items-per-u K --tag NAME`):", "",
            "| rows | items per u | level pairs in Z'Z | levels + blocks + fit (s) | "
            "optimisation (s) | client peak (MiB) | worker peaks (MiB) |",
            "|---|---|---|---|---|---|---|"]
    for r in runs:
        ft = r["fit_timings_s"]
        rows.append(f"| {r['rows']:,} | {r['items_per_u']} | {r['zz_blocks'] - r['q']:,} | "
                    f"{r['t_fit_s']:.1f} | {ft['optimizer']:.1f} | "
                    f"{r['client_peak_mib'].get('VmHWM', r['client_peak_mib']['ru_maxrss']):.0f}"
                    f" | {', '.join(f'{v:.0f}' for v in r['worker_peak_mib'].values())} |")
    return "\n".join(rows) + "\n\n"


def write_section(res: dict) -> None:
    put_section(HERE / "RESULTS.md", "bench_dask", render(res))

if __name__ == "__main__":
    main()
