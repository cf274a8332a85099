"""Seeded simulators of the large benchmark designs.

Each generator returns a :class:`pandas.DataFrame` drawn with ``numpy.random.default_rng``
from the model written in its docstring, so the same ``seed`` gives the same rows on every
machine. Grouping columns are integer level labels (``int32``); mixeff, lme4 (after
``factor()``) and the other packages treat them as categorical. Every level of every
grouping factor occurs in at least one row, so the number of random effects is exactly the
number of levels asked for.

Command line::

    python benchmarks/simulate.py crossed --n 300000 --seed 1 --out crossed.parquet
    python benchmarks/simulate.py movielens_like --out ml.csv

The output format follows the file extension (``.parquet`` or ``.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CASES",
    "FORMULAS",
    "crossed",
    "deep_nesting",
    "movielens_like",
    "random_slopes",
    "write_frame",
]


def _covering_draw(rng: np.random.Generator, n: int, m: int,
                   p: np.ndarray | None = None) -> np.ndarray:
    """``n`` level codes in ``0..m-1``, each level at least once, the rest drawn from ``p``.

    The first ``m`` positions of the draw hold a permutation of the levels, the other
    ``n - m`` are independent draws (uniform when ``p`` is None); the result is shuffled.
    """
    if n < m:
        raise ValueError(f"need at least as many rows ({n}) as levels ({m})")
    codes = np.empty(n, dtype=np.int64)
    codes[:m] = rng.permutation(m)
    codes[m:] = rng.choice(m, size=n - m, p=p) if p is not None else rng.integers(0, m, n - m)
    rng.shuffle(codes)
    return codes


def movielens_like(n: int = 1_000_000, n_users: int = 6000, n_items: int = 4000,
                   seed: int = 0) -> pd.DataFrame:
    """Ratings-like data with two large crossed factors and skewed activity.

    Model (REML fit ``y ~ 1 + x + (1 | u) + (1 | i)``)::

        y = 3.6 + 0.3 x + b_u[u] + b_i[i] + e
        b_u ~ N(0, 0.45^2),  b_i ~ N(0, 0.5^2),  e ~ N(0, 0.9^2),  x ~ N(0, 1)

    Design, shaped like MovieLens-1M (6,040 users, 3,706 films, 1,000,209 ratings):

    * users: each rates at least ``min(20, n // n_users)`` items and at most half of the
      items; the remaining rows are shared out with lognormal(0, 1.1) activity weights,
      so a few users rate a thousand items or more and most rate a few dozen;
    * items: Zipf-Mandelbrot popularity, weight ``(rank + 30)^-1.1`` with the ranks
      shuffled over the item ids; every item is rated at least once;
    * a (user, item) pair occurs at most once (duplicated draws are redrawn, first by
      popularity, then uniformly; in the unlikely case that 40 rounds leave some, they
      stay).

    Columns: ``y`` (float64), ``x`` (float64), ``u`` and ``i`` (int32 level labels).
    """
    rng = np.random.default_rng(seed)
    if n < n_users + n_items:
        raise ValueError("n must be at least n_users + n_items")
    cap = n_items // 2
    if n > cap * n_users:
        raise ValueError("n too large: a user can rate at most half of the items")
    # Users: a floor per user, the rest by lognormal activity, at most half the items
    # each (the excess of capped users is shared out again among the others).
    floor = min(20, n // n_users)
    activity = rng.lognormal(0.0, 1.1, n_users)
    counts = np.full(n_users, floor, dtype=np.int64)
    left = n - counts.sum()
    while left > 0:
        w = np.where(counts < cap, activity, 0.0)
        counts += rng.multinomial(left, w / w.sum())
        np.minimum(counts, cap, out=counts)
        left = n - counts.sum()
    users = np.repeat(np.arange(n_users), counts)
    # Items: Zipf-Mandelbrot popularity over shuffled ids.
    rank = rng.permutation(n_items)
    pop = (rank + 30.0) ** -1.1
    pop /= pop.sum()
    items = rng.choice(n_items, size=n, p=pop)
    # Rows that carry the "every item at least once" guarantee: one row per item, taken
    # from distinct random rows; they are never redrawn below.
    fixed = np.zeros(n, dtype=bool)
    cover = rng.choice(n, size=n_items, replace=False)
    items[cover] = rng.permutation(n_items)
    fixed[cover] = True
    # Redraw the items of duplicated (user, item) pairs, by popularity for a few rounds,
    # then uniformly (very active users have taken most popular items); fixed rows stay.
    order = np.argsort(~fixed, kind="stable")  # fixed rows first: they win np.unique
    for round_ in range(40):
        key = users[order] * n_items + items[order]
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        rows = order[dup]
        items[rows] = (rng.choice(n_items, size=rows.size, p=pop) if round_ < 4
                       else rng.integers(0, n_items, rows.size))
    x = rng.standard_normal(n)
    bu = rng.normal(0.0, 0.45, n_users)
    bi = rng.normal(0.0, 0.5, n_items)
    y = 3.6 + 0.3 * x + bu[users] + bi[items] + rng.normal(0.0, 0.9, n)
    perm = rng.permutation(n)
    return pd.DataFrame({
        "y": y[perm],
        "x": x[perm],
        "u": users[perm].astype(np.int32),
        "i": items[perm].astype(np.int32),
    })


def crossed(n: int = 300_000, n_a: int = 20_000, n_b: int = 2_000,
            seed: int = 0) -> pd.DataFrame:
    """Two crossed factors with uniformly drawn levels (an unbalanced, incomplete grid).

    Model (REML fit ``y ~ 1 + x + (1 | a) + (1 | b)``)::

        y = 1 + 0.5 x + a_eff[a] + b_eff[b] + e
        a_eff ~ N(0, 0.8^2),  b_eff ~ N(0, 0.6^2),  e ~ N(0, 1),  x ~ N(0, 1)

    Levels of ``a`` and ``b`` are drawn independently and uniformly per row (every level at
    least once), so at the defaults each ``a`` level has ~15 rows spread over ~15 ``b``
    levels: ``Z'Z`` has ~300k off-diagonal pairs and the factor has a large dense part.

    Columns: ``y``, ``x`` (float64), ``a``, ``b`` (int32 level labels).
    """
    rng = np.random.default_rng(seed)
    a = _covering_draw(rng, n, n_a)
    b = _covering_draw(rng, n, n_b)
    x = rng.standard_normal(n)
    ea = rng.normal(0.0, 0.8, n_a)
    eb = rng.normal(0.0, 0.6, n_b)
    y = 1.0 + 0.5 * x + ea[a] + eb[b] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(np.int32), "b": b.astype(np.int32)})


def random_slopes(n: int = 100_000, n_groups: int = 5_000, seed: int = 0) -> pd.DataFrame:
    """Correlated random intercepts and slopes in one grouping factor.

    Model (REML fit ``y ~ 1 + x + (1 + x | g)``)::

        y = 2 + 0.5 x + b0[g] + b1[g] x + e,   e ~ N(0, 1),  x ~ N(0, 1)
        (b0, b1) ~ N(0, [[1.0^2, 0.4*1.0*0.5], [0.4*1.0*0.5, 0.5^2]])

    i.e. standard deviations 1.0 and 0.5 and a true correlation of 0.4. Group sizes vary
    (uniform draw, every group at least once; ~20 rows per group at the defaults).

    Columns: ``y``, ``x`` (float64), ``g`` (int32 level labels).
    """
    rng = np.random.default_rng(seed)
    g = _covering_draw(rng, n, n_groups)
    sd = np.array([1.0, 0.5])
    corr = np.array([[1.0, 0.4], [0.4, 1.0]])
    cov = corr * np.outer(sd, sd)
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    x = rng.standard_normal(n)
    y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(np.int32)})


def deep_nesting(n: int = 500_000, n_a: int = 50, n_b: int = 20, n_c: int = 10,
                 seed: int = 0) -> pd.DataFrame:
    """Three nested factors, with labels that repeat inside their parents.

    Model (REML fit ``y ~ 1 + x + (1 | a/b/c)``, i.e. ``(1|a) + (1|a:b) + (1|a:b:c)``)::

        y = 5 + 0.4 x + e_a[a] + e_ab[a, b] + e_abc[a, b, c] + e
        e_a ~ N(0, 1),  e_ab ~ N(0, 0.7^2),  e_abc ~ N(0, 0.5^2),  e ~ N(0, 1),  x ~ N(0, 1)

    ``n_a`` levels of ``a``, ``n_b`` levels of ``b`` inside each ``a`` and ``n_c`` levels
    of ``c`` inside each ``a:b`` (defaults 50, 1,000 and 10,000 groups). ``b`` is labelled
    ``0..n_b-1`` inside every ``a`` (and ``c`` likewise), so the nesting must come from the
    formula (``a/b/c``), not from unique labels. Rows are spread uniformly over the
    innermost cells, each cell at least once (~50 rows per cell at the defaults).

    Columns: ``y``, ``x`` (float64), ``a``, ``b``, ``c`` (int32 level labels).
    """
    rng = np.random.default_rng(seed)
    n_cells = n_a * n_b * n_c
    cell = _covering_draw(rng, n, n_cells)
    ab = cell // n_c
    a = ab // n_b
    b = ab % n_b
    c = cell % n_c
    x = rng.standard_normal(n)
    ea = rng.normal(0.0, 1.0, n_a)
    eab = rng.normal(0.0, 0.7, n_a * n_b)
    eabc = rng.normal(0.0, 0.5, n_cells)
    y = 5.0 + 0.4 * x + ea[a] + eab[ab] + eabc[cell] + rng.standard_normal(n)
    return pd.DataFrame({
        "y": y, "x": x,
        "a": a.astype(np.int32), "b": b.astype(np.int32), "c": c.astype(np.int32),
    })


CASES = {
    "movielens_like": movielens_like,
    "crossed": crossed,
    "random_slopes": random_slopes,
    "deep_nesting": deep_nesting,
}

#: lme4 formula and grouping columns of each simulated design.
FORMULAS = {
    "movielens_like": ("y ~ 1 + x + (1 | u) + (1 | i)", ["u", "i"]),
    "crossed": ("y ~ 1 + x + (1 | a) + (1 | b)", ["a", "b"]),
    "random_slopes": ("y ~ 1 + x + (1 + x | g)", ["g"]),
    "deep_nesting": ("y ~ 1 + x + (1 | a/b/c)", ["a", "b", "c"]),
}


def write_frame(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as Parquet or CSV, chosen by the extension of ``path``."""
    path = Path(path)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False, float_format="%.17g")
    else:
        raise ValueError(f"unknown output format {path.suffix!r}: use .parquet or .csv")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate one design and write it to a file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=sorted(CASES))
    ap.add_argument("--out", required=True, help="output file, .parquet or .csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=None, help="number of rows (default: the case's)")
    args = ap.parse_args(argv)
    kwargs = {"seed": args.seed}
    if args.n is not None:
        kwargs["n"] = args.n
    df = CASES[args.name](**kwargs)
    write_frame(df, args.out)
    formula, groups = FORMULAS[args.name]
    levels = ", ".join(f"{g}: {df[g].nunique()}" for g in groups)
    print(f"{args.name}: {len(df)} rows ({levels}) -> {args.out}   model {formula}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
