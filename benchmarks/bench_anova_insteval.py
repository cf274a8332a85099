"""Satterthwaite Type III ANOVA on InstEval, fit included: mixeff against lmerTest.

Both run in this process's run, one after the other, on the same CSV, each with one BLAS
thread (``OPENBLAS_NUM_THREADS=1`` for R). Timed: ``lmer`` + ``anova`` (R: lmerTest's
``lmer`` then ``anova(m, type = 3)``; mixeff: ``mixeff.lmer`` then ``fit.anova(type=3)``),
data already loaded. Prints the table and the ratio; ``--out FILE`` appends it (markdown).

    python benchmarks/bench_anova_insteval.py [--repeat 3] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from results_md import put_section

import mixeff

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "lme4" / "InstEval.csv"
FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"

R_SCRIPT = r"""
suppressMessages(library(lmerTest))
d <- read.csv("{csv}")
for (v in c("s", "d", "service", "dept")) d[[v]] <- factor(d[[v]])
reps <- {repeat}
tt <- numeric(reps)
for (i in seq_len(reps)) {{
  t0 <- proc.time()[["elapsed"]]
  m <- lmer(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service), data = d)
  a <- anova(m, type = 3)
  tt[i] <- proc.time()[["elapsed"]] - t0
}}
cat(sprintf("R %.6f %.10g %.10g\n", median(tt), a[["F value"]][1], a[["DenDF"]][1]))
"""


def run_r(repeat: int) -> tuple[float, float, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT.format(csv=DATA, repeat=repeat))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True, env=env,
                         check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("R ")][-1].split()
    return float(line[1]), float(line[2]), float(line[3])


def run_mixeff(repeat: int) -> tuple[float, float, float]:
    d = pd.read_csv(DATA, dtype={c: str for c in ("s", "d", "service", "dept")})
    mixeff.lmer(FORMULA, d)   # warm up (Numba cache, imports)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fit = mixeff.lmer(FORMULA, d)
        a = fit.anova(type=3)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(a["F value"].iloc[0]), float(a["DenDF"].iloc[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tm, fm, dm = run_mixeff(args.repeat)
    tr, fr, dr = run_r(args.repeat)
    text = (
        "\n## Satterthwaite Type III ANOVA on InstEval, fit included\n\n"
        f"Medians of {args.repeat} runs each, one BLAS thread, same machine, same run"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n\n"
        "| | seconds | F (service) | DenDF |\n|---|---|---|---|\n"
        f"| lmerTest 3.1-3 (`lmer` + `anova`) | {tr:.2f} | {fr:.6f} | {dr:.4f} |\n"
        f"| mixeff (`lmer` + `anova`) | {tm:.2f} | {fm:.6f} | {dm:.4f} |\n\n"
        f"lmerTest / mixeff: **{tr / tm:.1f}x**\n"
    )
    print(text)
    if args.out:
        put_section(args.out, "bench_anova_insteval", text)


if __name__ == "__main__":
    main()
