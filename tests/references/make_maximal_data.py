"""Write the data of the maximal-model references (tests/data/maximal/*.csv).

Run from the repository root: ``.venv/bin/python tests/references/make_maximal_data.py``,
then ``Rscript tests/references/make_maximal_references.R`` fits them with lme4. The
designs come from the seeded simulator of the benchmarks (``benchmarks/simulate.py``,
``maximal_crossed``); the CSVs are kept in the repository, so the tests do not depend on
numpy's random streams staying the same across versions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from simulate import kb07_like, maximal_crossed  # noqa: E402

OUT = REPO / "tests" / "data" / "maximal"

#: name -> (data frame, lme4 formula, REML, weights column or None)
def datasets() -> dict:
    """The reference designs."""
    small3 = maximal_crossed(20, 16, 3, fraction=0.8, seed=11)
    small2w = maximal_crossed(15, 12, 2, fraction=0.9, seed=12)
    small2w["w"] = np.round(np.random.default_rng(12).uniform(0.5, 3.0, len(small2w)), 3)
    small4 = maximal_crossed(24, 20, 4, fraction=0.9, seed=13)
    return {
        "kb07_like": kb07_like(seed=0),
        "small3": small3,
        "small2w": small2w,
        "small4": small4,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, df in datasets().items():
        df.to_csv(OUT / f"{name}.csv", index=False, float_format="%.15g")
        print(name, len(df), "rows")


if __name__ == "__main__":
    main()
