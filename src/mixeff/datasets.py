"""Data sets shipped with mixeff, and the seeded generator of the teaching example.

``plant_growth`` is a simulated data set shaped like the classic teaching example of
mixed models: 30 plants grown at three temperatures (10, 15 and 20 degrees, ten plants
each), the height of every plant measured weekly from week 0 to week 7. Plants differ in
their baseline height (a random intercept per plant), so the 240 rows are not 240
independent observations.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["load_plant_growth", "simulate_plant_growth"]


def simulate_plant_growth(seed: int = 20261125) -> pd.DataFrame:
    """Simulate the plant-growth teaching data set.

    Parameters
    ----------
    seed
        Seed of the random generator; the shipped CSV is ``simulate_plant_growth()``.

    Returns
    -------
    pandas.DataFrame
        Columns ``plant_id`` (``"p01"``..``"p30"``), ``temp`` (10, 15, 20), ``week`` (0..7)
        and ``height`` (cm, rounded to 0.01).
    """
    rng = np.random.default_rng(seed)
    n_plants, weeks = 30, np.arange(8)
    temps = np.repeat([10, 15, 20], n_plants // 3)
    # Population growth: 1.2 cm/week at 10 degrees, faster when warmer.
    base = {10: 4.0, 15: 4.5, 20: 5.0}
    slope = {10: 1.2, 15: 1.6, 20: 1.9}
    plant_sd, resid_sd = 1.1, 0.6
    intercepts = rng.normal(0.0, plant_sd, n_plants)
    rows = []
    for i in range(n_plants):
        t = int(temps[i])
        noise = rng.normal(0.0, resid_sd, weeks.size)
        h = base[t] + intercepts[i] + slope[t] * weeks + noise
        for w, hw in zip(weeks, h, strict=True):
            rows.append((f"p{i + 1:02d}", t, int(w), round(float(hw), 2)))
    return pd.DataFrame(rows, columns=["plant_id", "temp", "week", "height"])


def load_plant_growth() -> pd.DataFrame:
    """Load the shipped plant-growth data (see :func:`simulate_plant_growth`).

    Returns
    -------
    pandas.DataFrame
        240 rows: ``plant_id``, ``temp``, ``week``, ``height``.
    """
    with resources.files("mixeff").joinpath("data/plant_growth.csv").open("r") as fh:
        return pd.read_csv(fh)
