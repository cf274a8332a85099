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
    "d3_like",
    "deep_nesting",
    "kb07_like",
    "maximal_crossed",
    "movielens_like",
    "mrk17_like",
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


def _random_cov(rng: np.random.Generator, sds: np.ndarray, rho: float) -> np.ndarray:
    """A covariance with standard deviations ``sds`` and correlations drawn around ``rho``.

    The correlation matrix is ``rho`` off the diagonal plus a random symmetric perturbation
    of size ``rho / 2``, projected to the nearest positive-definite matrix with unit
    diagonal (eigenvalues clipped at 0.05).
    """
    k = sds.size
    c = np.full((k, k), rho)
    e = rng.uniform(-0.5 * rho, 0.5 * rho, (k, k))
    c = c + 0.5 * (e + e.T)
    np.fill_diagonal(c, 1.0)
    w, v = np.linalg.eigh(c)
    c = (v * np.maximum(w, 0.05)) @ v.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    return c * np.outer(sds, sds)


def _effects(rng: np.random.Generator, m: int, cov: np.ndarray) -> np.ndarray:
    """``m`` draws from ``N(0, cov)`` (``cov`` may be singular)."""
    w, v = np.linalg.eigh(cov)
    return rng.standard_normal((m, cov.shape[0])) @ (v * np.sqrt(np.maximum(w, 0.0))).T


def maximal_crossed(n_subj: int = 73, n_item: int = 240, n_pred: int = 4,
                    fraction: float = 0.95, subj_sds: tuple[float, ...] | None = None,
                    item_sds: tuple[float, ...] | None = None, sigma: float = 1.0,
                    seed: int = 0) -> pd.DataFrame:
    """A subjects x items experiment with a maximal random-effects structure.

    Model (``y ~ 1 + x0 + ... + (1 + x0 + ... | subj) + (1 + x0 + ... | item)``)::

        y = 0.3 + sum_j 0.1 (j + 1) x_j + z' b_subj[subj] + z' b_item[item] + e,
        z = (1, x_0, ..., x_{P-1}),  e ~ N(0, sigma^2)

    with ``b_subj ~ N(0, Sigma_subj)`` and ``b_item ~ N(0, Sigma_item)``: standard
    deviations ``subj_sds`` / ``item_sds`` (default: 0.6 for the intercept, then halving
    down the slopes, the last two slopes with no variance at all, as in real data where
    several slope variances are estimated at zero) and correlations around 0.3.

    Design: a random ``fraction`` of the ``n_subj x n_item`` pairs is observed (each
    subject and each item at least once); the ``P`` two-level predictors are coded
    -0.5/+0.5 and counterbalanced within subjects and within items (a Latin-square-like
    pattern ``x_j = ((subj + item) >> j) & 1``, then a random sign flip per predictor).

    Columns: ``y``, ``x0``..``x{P-1}`` (float64), ``subj`` and ``item`` (int32 labels).
    Shapes used in the benchmarks: kb07-like (56 x 32, 3 predictors, all pairs but
    three: 1,789 rows), mrk17-like (73 x 240, 4 predictors, ~16,600 rows).
    """
    rng = np.random.default_rng(seed)
    k = n_pred + 1

    def default_sds(top: float) -> np.ndarray:
        s = top * 0.5 ** np.arange(k)
        if k >= 4:
            s[-2:] = 0.0
        return s

    ss = default_sds(0.6) if subj_sds is None else np.asarray(subj_sds, float)
    si = default_sds(0.4) if item_sds is None else np.asarray(item_sds, float)
    pairs = np.arange(n_subj * n_item)
    n = int(round(fraction * pairs.size))
    keep = rng.permutation(pairs)[:n]
    s, i = np.divmod(np.sort(keep), n_item)
    # every subject and item at least once: add the missing ones with a random partner
    for miss in np.setdiff1d(np.arange(n_subj), s):
        s, i = np.append(s, miss), np.append(i, rng.integers(n_item))
    for miss in np.setdiff1d(np.arange(n_item), i):
        s, i = np.append(s, rng.integers(n_subj)), np.append(i, miss)
    X = np.empty((s.size, n_pred))
    flips = rng.integers(0, 2, n_pred)
    for j in range(n_pred):
        X[:, j] = (((s + i) >> j) & 1) ^ flips[j]
    X -= 0.5
    Z = np.column_stack([np.ones(s.size), X])
    bs = _effects(rng, n_subj, _random_cov(rng, ss, 0.3))
    bi = _effects(rng, n_item, _random_cov(rng, si, 0.3))
    beta = np.r_[0.3, 0.1 * (np.arange(n_pred) + 1)]
    y = (Z @ beta + np.sum(Z * bs[s], axis=1) + np.sum(Z * bi[i], axis=1)
         + sigma * rng.standard_normal(s.size))
    out = {"y": y}
    out.update({f"x{j}": X[:, j] for j in range(n_pred)})
    out.update({"subj": s.astype(np.int32), "item": i.astype(np.int32)})
    return pd.DataFrame(out)


def kb07_like(seed: int = 0) -> pd.DataFrame:
    """kb07-shaped: 56 subjects x 32 items, three predictors, 1,789 rows (see
    :func:`maximal_crossed`)."""
    return maximal_crossed(56, 32, 3, fraction=1789 / (56 * 32), seed=seed)


def mrk17_like(seed: int = 0) -> pd.DataFrame:
    """mrk17_exp1-shaped: 73 subjects x 240 items, four predictors, ~16,600 rows (see
    :func:`maximal_crossed`)."""
    return maximal_crossed(73, 240, 4, fraction=0.95, seed=seed)


def d3_like(n: int = 130_000, n_g: int = 3600, n_h: int = 3300, n_i: int = 500,
            seed: int = 0) -> pd.DataFrame:
    """Three crossed factors, each with a correlated random intercept and slope.

    Model (``y ~ 1 + u + (1 + u | g) + (1 + u | h) + (1 + u | i)``), shaped like
    MixedModels.jl's ``d3`` benchmark (130,418 rows; 4,000+ x 3,000+ x 500 levels)::

        y = 1 + 0.2 u + b_g[g]'(1, u) + b_h[h]'(1, u) + b_i[i]'(1, u) + e,  e ~ N(0, 1)
        b_g ~ N(0, diag(0.5, 0.2) R diag(0.5, 0.2)), b_h: SDs (0.4, 0.1), b_i: (0.3, 0.15),
        correlations 0.3;  u ~ N(0, 1) per row.

    Every level occurs at least once; levels drawn uniformly. Columns ``y``, ``u``,
    ``g``, ``h``, ``i``.
    """
    rng = np.random.default_rng(seed)
    g = _covering_draw(rng, n, n_g)
    h = _covering_draw(rng, n, n_h)
    i = _covering_draw(rng, n, n_i)
    u = rng.standard_normal(n)
    Z = np.column_stack([np.ones(n), u])
    y = 1.0 + 0.2 * u + rng.standard_normal(n)
    for codes, sds, m in ((g, (0.5, 0.2), n_g), (h, (0.4, 0.1), n_h), (i, (0.3, 0.15), n_i)):
        cov = np.array([[1.0, 0.3], [0.3, 1.0]]) * np.outer(sds, sds)
        y += np.sum(Z * _effects(rng, m, cov)[codes], axis=1)
    return pd.DataFrame({"y": y, "u": u, "g": g.astype(np.int32), "h": h.astype(np.int32),
                         "i": i.astype(np.int32)})


CASES = {
    "movielens_like": movielens_like,
    "crossed": crossed,
    "random_slopes": random_slopes,
    "deep_nesting": deep_nesting,
    "kb07_like": kb07_like,
    "mrk17_like": mrk17_like,
    "d3_like": d3_like,
}

#: lme4 formula and grouping columns of each simulated design.
FORMULAS = {
    "movielens_like": ("y ~ 1 + x + (1 | u) + (1 | i)", ["u", "i"]),
    "crossed": ("y ~ 1 + x + (1 | a) + (1 | b)", ["a", "b"]),
    "random_slopes": ("y ~ 1 + x + (1 + x | g)", ["g"]),
    "deep_nesting": ("y ~ 1 + x + (1 | a/b/c)", ["a", "b", "c"]),
    "kb07_like": ("y ~ 1 + x0 + x1 + x2 + (1 + x0 + x1 + x2 | subj)"
                  " + (1 + x0 + x1 + x2 | item)", ["subj", "item"]),
    "mrk17_like": ("y ~ 1 + x0 + x1 + x2 + x3 + (1 + x0 + x1 + x2 + x3 | subj)"
                   " + (1 + x0 + x1 + x2 + x3 | item)", ["subj", "item"]),
    "d3_like": ("y ~ 1 + u + (1 + u | g) + (1 + u | h) + (1 + u | i)", ["g", "h", "i"]),
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
