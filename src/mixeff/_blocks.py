"""Cross-product blocks of ``[Z X y]``: the only way the rows enter a fit.

``build_blocks`` makes one pass over the rows per term (and per pair of terms) in Numba
kernels and returns everything an evaluation of the objective needs: ``A = Z'WZ`` as
dense level-pair blocks plus its fixed lower-triangular CSC pattern, ``Z'WX``, ``Z'Wy``,
``X'WX``, ``X'Wy`` and ``y'Wy``. No dense ``n x q`` matrix is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._lambda import ReStructure

__all__ = ["Blocks", "ResponseShift", "build_blocks"]


@dataclass
class ResponseShift:
    """Sums of the response after subtracting its least-squares fit ``X beta0``.

    ``y'Wy - |c_u|^2 - |...|^2`` loses every digit the residuals are below ``|y|``: with
    ``y = 1e5 + 1e-3 e`` or a response a linear function of ``X`` up to 1e-8, ``r^2``
    cancels to noise. The objective works with ``y0 = y - X beta0`` instead, whose sums
    (``Z'Wy0``, ``X'Wy0``, ``y0'Wy0``) are accumulated from the rows, and adds ``beta0``
    back to the fixed effects: the model is the same, the cancellation is gone.
    """

    beta0: np.ndarray
    Zty: np.ndarray
    Xty: np.ndarray
    yty: float


@dataclass
class Blocks:
    """Sufficient statistics of a linear mixed model (see module docstring).

    Attributes
    ----------
    re
        Layout of the random-effects terms and of theta.
    kdim, offsets, nlev
        Per term: number of columns, first index in the random-effects vector, levels.
    blk_rt, blk_rl, blk_ct, blk_cl, blk_diag, blk_vo, vals
        The blocks of ``A`` (see :mod:`mixeff._kernels`).
    blk_po, pos
        Where each block entry goes in the CSC data array of ``M``'s lower triangle
        (``-1`` for entries above the diagonal).
    m_indptr, m_indices
        Fixed CSC pattern of the lower triangle of ``M = Lambda' A Lambda + I``.
    A_full
        ``A`` as a symmetric CSR matrix (used for products in the gradient).
    ZtX, Zty
        ``Z'WX`` (q x p) and ``Z'Wy`` (q,).
    XtX, Xty, yty
        ``X'WX``, ``X'Wy`` and ``y'Wy``.
    n, p
        Number of rows and of fixed-effect columns.
    sum_log_w
        ``sum(log(w))`` of the prior weights (0 without weights).
    shift
        The response's sums after subtracting its weighted least-squares fit on ``X``
        (see :class:`ResponseShift`); None when only the sums above are known.
    """

    re: ReStructure
    kdim: np.ndarray
    offsets: np.ndarray
    nlev: np.ndarray
    blk_rt: np.ndarray
    blk_rl: np.ndarray
    blk_ct: np.ndarray
    blk_cl: np.ndarray
    blk_diag: np.ndarray
    blk_vo: np.ndarray
    vals: np.ndarray
    blk_po: np.ndarray
    pos: np.ndarray
    m_indptr: np.ndarray
    m_indices: np.ndarray
    A_full: sp.csr_matrix
    ZtX: np.ndarray
    Zty: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: int
    p: int
    sum_log_w: float
    shift: ResponseShift | None = None

    @property
    def q(self) -> int:
        """Number of random effects."""
        return self.re.q

    @property
    def nnz_m(self) -> int:
        """Number of stored entries of the lower triangle of ``M``."""
        return int(self.m_indices.shape[0])


def build_blocks(
    re: ReStructure,
    codes: list[np.ndarray],
    mats: list[np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
) -> Blocks:
    """Accumulate the cross-product blocks of a model.

    Parameters
    ----------
    re
        Term layout, terms already in storage (lme4) order.
    codes, mats
        Per term (same order): level code of each row (int) and the ``n x k`` term matrix.
    X, y
        Fixed-effects model matrix (n x p) and response (offset already subtracted).
    weights
        Prior weights (n,) or None.

    Returns
    -------
    Blocks
    """
    n, p = X.shape
    w = np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    nt = len(re.terms)
    kdim = np.array([t.k for t in re.terms], dtype=np.int64)
    offsets = np.array([t.offset for t in re.terms], dtype=np.int64)
    nlev = np.array([t.nlevels for t in re.terms], dtype=np.int64)
    codes = [np.ascontiguousarray(c, dtype=np.int64) for c in codes]
    mats = [np.ascontiguousarray(m, dtype=np.float64) for m in mats]
    XY = np.empty((n, p + 2))
    XY[:, :p] = X
    XY[:, p] = y
    beta0, XY[:, p + 1] = _response_shift(X, y, w)

    # Blocks of A: diagonal (same term, same level), then each observed pair of levels
    # of each pair of terms; their pattern is laid out by assemble_blocks.
    diag = [K.diag_block_sums(codes[t], mats[t], w, int(nlev[t])) for t in range(nt)]
    pairs = {}
    for s in range(nt):
        for t in range(s):
            key = codes[s] * nlev[t] + codes[t]
            uniq, inv = np.unique(key, return_inverse=True)
            pairs[(s, t)] = (uniq, K.pair_block_sums(inv.astype(np.int64), mats[s], mats[t], w,
                                                     uniq.size))

    # Z'W[X y y0] and [X y y0]'W[X y y0]
    ZtXY = np.empty((re.q, p + 2))
    for t in range(nt):
        blk = K.term_cross_sums(codes[t], mats[t], w, XY, int(nlev[t]))
        ZtXY[offsets[t] : offsets[t] + nlev[t] * kdim[t]] = blk.reshape(-1, p + 2)
    XYtXY = XY.T @ (XY * w[:, None])
    blocks = assemble_blocks(re, diag, pairs, ZtXY[:, : p + 1], XYtXY[: p + 1, : p + 1], n,
                             float(np.sum(np.log(w))) if weights is not None else 0.0)
    blocks.shift = ResponseShift(beta0=beta0, Zty=np.ascontiguousarray(ZtXY[:, p + 1]),
                                 Xty=XYtXY[:p, p + 1].copy(), yty=float(XYtXY[p + 1, p + 1]))
    return blocks


def _response_shift(X: np.ndarray, y: np.ndarray, w: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``beta0`` (the least-squares fit of ``y`` on ``X``) and ``y - X beta0``.

    A response far from zero against its spread (``1e12 + 1e-3 e``: the spread is a few
    units in the last place of ``1e12``) loses its digits in ``X beta0``, whose rounding
    is as large as the residuals. When ``X`` has a constant column (the intercept), a data
    value ``c`` near the middle of ``y`` is subtracted first, exactly (Sterbenz: ``y_i - c``
    is exact where ``y_i`` is within a factor 2 of ``c``), the fit is made on ``y - c``,
    and ``c`` goes back into the constant column's coefficient.
    """
    n, p = X.shape
    if p == 0:
        return np.zeros(0), y
    c, j = 0.0, None
    if n:
        lo, hi = float(np.min(y)), float(np.max(y))
        mid = 0.5 * lo + 0.5 * hi
        if abs(mid) > 8.0 * (hi - lo):
            const = np.flatnonzero(np.all(X == X[0], axis=0) & (X[0] != 0))
            if const.size:
                j = int(const[0])
                c = float(y[int(np.argmin(np.abs(y - mid)))])
    y1 = y - c if j is not None else y
    beta0 = _least_squares(X, y1, w)
    y0 = y1 - X @ beta0
    if j is not None:
        beta0[j] += c / X[0, j]
    return beta0, y0


def _least_squares(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients of ``y`` on ``X`` (full column rank).

    Normal equations refined twice against residuals formed from the rows, which brings
    them to the accuracy of a QR solution at the cost of three passes over ``X``.
    """
    import scipy.linalg as sla

    XtW = (X * w[:, None]).T
    try:
        cf = sla.cho_factor(XtW @ X)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    beta = sla.cho_solve(cf, XtW @ y)
    for _ in range(2):
        beta = beta + sla.cho_solve(cf, XtW @ (y - X @ beta))
    return beta


def assemble_blocks(
    re: ReStructure,
    diag: list[np.ndarray],
    pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
    ZtXY: np.ndarray,
    XYtXY: np.ndarray,
    n: int,
    sum_log_w: float = 0.0,
) -> Blocks:
    """:class:`Blocks` from sums accumulated elsewhere (e.g. reduced over data partitions).

    Gives what :func:`build_blocks` gives on the same rows (up to the order of the sums).

    Parameters
    ----------
    re
        Term layout, terms in storage (lme4) order.
    diag
        Per term: ``(m, k, k)`` sums ``sum_i w_i z_i z_i'`` over the rows of each level.
    pairs
        For each pair of terms ``(s, t)`` with ``s > t``: the observed level pairs as sorted
        unique keys ``level_s * m_t + level_t`` and their ``(npairs, k_s, k_t)`` sums.
    ZtXY
        ``Z'W[X y]``, ``(q, p + 1)`` (response last, offset already subtracted).
    XYtXY
        ``[X y]'W[X y]``, ``(p + 1, p + 1)``.
    n
        Number of rows.
    sum_log_w
        ``sum(log(w))`` of the prior weights (0 without weights).
    """
    p = XYtXY.shape[0] - 1
    nt = len(re.terms)
    kdim = np.array([t.k for t in re.terms], dtype=np.int64)
    offsets = np.array([t.offset for t in re.terms], dtype=np.int64)
    nlev = np.array([t.nlevels for t in re.terms], dtype=np.int64)
    rt, rl, ct, cl, dg, vlist = [], [], [], [], [], []
    for t in range(nt):
        m = int(nlev[t])
        rt.append(np.full(m, t))
        ct.append(np.full(m, t))
        rl.append(np.arange(m))
        cl.append(np.arange(m))
        dg.append(np.ones(m, dtype=bool))
        vlist.append(np.asarray(diag[t], dtype=np.float64).reshape(m, -1))
    for s in range(nt):
        for t in range(s):
            uniq, pv = pairs[(s, t)]
            uniq = np.asarray(uniq, dtype=np.int64)
            rt.append(np.full(uniq.size, s))
            ct.append(np.full(uniq.size, t))
            rl.append(uniq // nlev[t])
            cl.append(uniq % nlev[t])
            dg.append(np.zeros(uniq.size, dtype=bool))
            vlist.append(np.asarray(pv, dtype=np.float64).reshape(uniq.size, -1))
    blk_rt = np.concatenate(rt).astype(np.int64)
    blk_ct = np.concatenate(ct).astype(np.int64)
    blk_rl = np.concatenate(rl).astype(np.int64)
    blk_cl = np.concatenate(cl).astype(np.int64)
    blk_diag = np.concatenate(dg)
    sizes = kdim[blk_rt] * kdim[blk_ct]
    blk_vo = np.zeros(blk_rt.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=blk_vo[1:])
    vals = np.concatenate([v.ravel() for v in vlist]) if vlist else np.zeros(0)
    del vlist, rt, rl, ct, cl, dg

    total = int(sizes.sum())
    ent_blk = np.repeat(np.arange(blk_rt.size), sizes)
    local = np.arange(total) - np.repeat(blk_vo, sizes)
    kc = kdim[blk_ct][ent_blk]
    i_loc = local // kc
    j_loc = local % kc
    del local
    rows = offsets[blk_rt][ent_blk] + blk_rl[ent_blk] * kdim[blk_rt][ent_blk] + i_loc
    cols = offsets[blk_ct][ent_blk] + blk_cl[ent_blk] * kc + j_loc
    del i_loc, j_loc, kc
    keep = rows >= cols
    q = re.q
    ent_id = np.flatnonzero(keep)
    Mlow = sp.csc_matrix(
        (ent_id.astype(np.float64) + 1.0, (rows[keep], cols[keep])), shape=(q, q)
    )
    del ent_id, keep
    Mlow.sort_indices()
    pos = np.full(total, -1, dtype=np.int64)
    pos[Mlow.data.astype(np.int64) - 1] = np.arange(Mlow.data.size)
    m_indptr = Mlow.indptr.astype(np.int64)
    m_indices = Mlow.indices.astype(np.int64)
    del Mlow

    off = ~blk_diag[ent_blk]
    A_full = sp.csr_matrix(
        (
            np.concatenate([vals, vals[off]]),
            (np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]])),
        ),
        shape=(q, q),
    )
    ZtXY = np.asarray(ZtXY, dtype=np.float64)
    XYtXY = np.asarray(XYtXY, dtype=np.float64)
    return Blocks(
        re=re,
        kdim=kdim,
        offsets=offsets,
        nlev=nlev,
        blk_rt=blk_rt,
        blk_rl=blk_rl,
        blk_ct=blk_ct,
        blk_cl=blk_cl,
        blk_diag=blk_diag,
        blk_vo=blk_vo,
        vals=vals,
        blk_po=blk_vo.copy(),
        pos=pos,
        m_indptr=m_indptr,
        m_indices=m_indices,
        A_full=A_full,
        ZtX=np.ascontiguousarray(ZtXY[:, :p]),
        Zty=np.ascontiguousarray(ZtXY[:, p]),
        XtX=XYtXY[:p, :p].copy(),
        Xty=XYtXY[:p, p].copy(),
        yty=float(XYtXY[p, p]),
        n=int(n),
        p=p,
        sum_log_w=float(sum_log_w),
    )
