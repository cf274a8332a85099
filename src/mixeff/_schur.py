"""Schur-complement factorisation: eliminate the first term directly, factor the rest densely.

The terms are stored by decreasing number of levels, so the first term's block of
``M = Lambda' A Lambda + I`` is block diagonal (one ``k x k`` block per level: levels of
one factor never share a row). Partition

    M = [[D, B'], [B, C]],   L = [[L_D, 0], [E, L_S]],
    D = L_D L_D' (blockwise),  E = B L_D^{-T},  S = C - E E' = L_S L_S'.

``L_D`` and ``E`` cost a pass over the stored entries (Numba); the Schur complement ``S``
of the remaining terms is accumulated densely and factored by LAPACK. Two large crossed
factors make ``S`` dense anyway (every pair of levels of the smaller factor shares a level
of the larger one), so this is the natural factorisation there; it is chosen when the
pattern of ``S`` is measured to be dense (see :func:`schur_density`), and CHOLMOD on the
whole matrix otherwise. The class has the interface of
:class:`~mixeff._cholmod.SparseCholesky` (``perm`` is the identity).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import prange
from scipy.linalg import blas, lapack

from ._forksafe import numba_parallel_ok
from ._jit import njit

__all__ = ["DenseSchurCholesky", "dense_coupling", "schur_density"]


@njit(cache=True)
def _eliminate_first_term(indptr, indices, data, q1, k1, Ld, E, S, sweep):
    """Blockwise Cholesky of D, ``E = B L_D^{-T}`` and ``S = C - E E'`` (lower, in place).

    ``data`` holds the lower triangle of ``M`` in CSC (sorted rows); ``E`` receives its
    values at the positions of the entries of ``B`` (rows >= q1 of the first q1 columns).
    With ``sweep`` False, ``S`` is left at ``C`` (the caller subtracts ``E E'`` with
    :func:`_subtract_sweep_parallel`).
    """
    _fill_complement(indptr, indices, data, q1, S)
    m1 = q1 // k1
    y = np.empty(k1)
    for a in range(m1):
        c0 = a * k1
        if not _factor_level(indptr, data, a, k1, Ld):
            return False
        # rows of B in this level block: the same rows in each of its k1 columns
        nb = indptr[c0 + 1] - indptr[c0] - k1
        for t in range(nb):
            # forward substitution L_Da y = B[row, block]'
            for c in range(k1):
                s = data[indptr[c0 + c] + (k1 - c) + t]
                for l in range(c):
                    s -= Ld[a, c, l] * y[l]
                y[c] = s / Ld[a, c, c]
            for c in range(k1):
                E[indptr[c0 + c] + (k1 - c) + t] = y[c]
    if sweep:
        _panel_sweep(indptr, indices, E, q1, k1, S, E[:0], False)
    return True


@njit(cache=True, inline="always")
def _factor_level(indptr, data, a, k1, Ld):
    """``Ld[a]``: the Cholesky factor of level ``a``'s ``k1 x k1`` block of ``D``.

    The block's lower triangle is read from the leading entries of its columns in
    ``data`` (CSC, sorted rows). False when the block is not positive definite.
    """
    c0 = a * k1
    for c in range(k1):
        p0 = indptr[c0 + c]
        for r in range(c, k1):
            Ld[a, r, c] = data[p0 + r - c]
        for r in range(c):
            Ld[a, r, c] = 0.0
    for c in range(k1):
        s = Ld[a, c, c]
        for l in range(c):
            s -= Ld[a, c, l] * Ld[a, c, l]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        Ld[a, c, c] = d
        for r in range(c + 1, k1):
            s = Ld[a, r, c]
            for l in range(c):
                s -= Ld[a, r, l] * Ld[a, c, l]
            Ld[a, r, c] = s / d
    return True


@njit(cache=True)
def _fill_complement(indptr, indices, data, q1, S):
    """``S`` (lower triangle) set to ``C``, the block of ``M`` after the first term."""
    q2 = S.shape[0]
    for j in range(q2):
        for i in range(j, q2):
            S[i, j] = 0.0
    for j in range(q1, q1 + q2):
        for p in range(indptr[j], indptr[j + 1]):
            S[indices[p] - q1, j - q1] = data[p]


@njit(cache=True)
def _factor_first_term(indptr, data, q1, k1, Ld):
    """Every level's block of ``D`` factored (:func:`_factor_level`); False on failure."""
    for a in range(q1 // k1):
        if not _factor_level(indptr, data, a, k1, Ld):
            return False
    return True


@njit(cache=True)
def _solve_blocks_right(Ld, X, inverse_transpose):
    """Columns of dense ``X`` (``n x q1``, Fortran order) times ``L_D^{-T}`` or ``L_D^{-1}``.

    Level by level on its ``k1`` columns: ``X_a <- X_a L_Da^{-T}`` (forward substitution
    in each row, ``inverse_transpose`` True) or ``X_a <- X_a L_Da^{-1}`` (backward). The
    inner loops run down contiguous columns.
    """
    m1, k1, _ = Ld.shape
    n = X.shape[0]
    for a in range(m1):
        o = a * k1
        if inverse_transpose:
            for c in range(k1):
                for l in range(c):
                    f = Ld[a, c, l]
                    for i in range(n):
                        X[i, o + c] -= f * X[i, o + l]
                d = 1.0 / Ld[a, c, c]
                for i in range(n):
                    X[i, o + c] *= d
        else:
            for c in range(k1 - 1, -1, -1):
                for l in range(c + 1, k1):
                    f = Ld[a, l, c]
                    for i in range(n):
                        X[i, o + c] -= f * X[i, o + l]
                d = 1.0 / Ld[a, c, c]
                for i in range(n):
                    X[i, o + c] *= d


@njit(cache=True, inline="always")
def _diagonal_block_inverse(Y, Ld, a, k1):
    """``Y <- L_Da^{-T} Y L_Da^{-1}`` in place (``Y`` = ``I + E_a' G_a``, k1 x k1)."""
    for r in range(k1):
        for c in range(k1 - 1, -1, -1):
            s = Y[r, c]
            for l in range(c + 1, k1):
                s -= Y[r, l] * Ld[a, l, c]
            Y[r, c] = s / Ld[a, c, c]
    for j in range(k1):
        for c in range(k1 - 1, -1, -1):
            s = Y[c, j]
            for l in range(c + 1, k1):
                s -= Ld[a, l, c] * Y[l, j]
            Y[c, j] = s / Ld[a, c, c]


@njit(cache=True)
def _diagonal_blocks_dense(indptr, Ld, E, G, k1, Z):
    """``M^{-1}[a, a] = L_Da^{-T} (I + E_a' G_a) L_Da^{-1}`` for every level, into ``Z``.

    ``E`` and ``G = S^{-1} E`` are dense (``q2 x q1``); written at the positions of the
    diagonal blocks' lower triangles in ``M``'s pattern.
    """
    m1 = Ld.shape[0]
    n = E.shape[0]
    Y = np.empty((k1, k1))
    for a in range(m1):
        o = a * k1
        for c in range(k1):
            for d in range(k1):
                s = 1.0 if c == d else 0.0
                for i in range(n):
                    s += E[i, o + c] * G[i, o + d]
                Y[c, d] = s
        _diagonal_block_inverse(Y, Ld, a, k1)
        for c in range(k1):
            for r in range(c, k1):
                Z[indptr[o + c] + (r - c)] = Y[r, c]


@njit(cache=True, parallel=True)
def _subtract_sweep_parallel(indptr, indices, E, q1, k1, S):
    """``S -= E E'`` as :func:`_panel_sweep`, with the panels shared among threads.

    Panels write disjoint columns of ``S``. A panel's cursor into each level's sorted
    rows is found by bisection; panels are taken in pairs from both ends (the lower
    triangle gives the first columns the most pairs), so that the threads' shares even
    out under prange's static schedule.
    """
    q2 = S.shape[0]
    m1 = q1 // k1
    width = max(8, min(256, 131072 // max(q2, 1)))
    npan = (q2 + width - 1) // width
    for pp in prange((npan + 1) // 2):
        for side in range(2):
            pi = pp if side == 0 else npan - 1 - pp
            if side == 1 and pi == pp:
                break
            j0 = pi * width
            j1 = j0 + width
            for a in range(m1):
                c0 = a * k1
                b0 = indptr[c0] + k1
                bend = indptr[c0 + 1]
                lo, hi = b0, bend
                while lo < hi:
                    mid = (lo + hi) // 2
                    if indices[mid] - q1 < j0:
                        lo = mid + 1
                    else:
                        hi = mid
                t2 = lo
                while t2 < bend:
                    r2 = indices[t2] - q1
                    if r2 >= j1:
                        break
                    _subtract_pairs(indptr, indices, E, q1, k1, S, c0, b0, bend, t2, r2)
                    t2 += 1


@njit(cache=True)
def _panel_sweep(indptr, indices, E, q1, k1, D, G, read):
    """Visit the row pairs of every level of the first term, panel by panel of ``D``.

    Level ``a`` couples the ``nb`` rows (sorted) it shares with the other terms. With
    ``read`` False: ``D -= E_a E_a'`` (``D`` = ``S``, lower triangle). With ``read`` True:
    ``G_a += D[rows_a, rows_a] E_a`` (``D`` = lower triangle of ``S^{-1}``, ``G`` stored
    like ``E``). Done level by level, the accesses scatter over all of ``D`` (6,000 levels
    of 166 rows each into a 4,000 x 4,000 ``D``: 0.6 s of cache misses); done panel by
    panel (all levels' pairs in columns ``j0..j0+width``, a cursor per level into its
    sorted rows) they stay in a block of ``D`` that fits in cache, four times faster.
    """
    q2 = D.shape[0]
    m1 = q1 // k1
    width = max(8, min(256, 131072 // max(q2, 1)))
    cur = np.empty(m1, np.int64)
    acc = np.empty(k1)
    for a in range(m1):
        cur[a] = indptr[a * k1] + k1
    for j0 in range(0, q2, width):
        j1 = j0 + width
        for a in range(m1):
            c0 = a * k1
            b0 = indptr[c0] + k1
            bend = indptr[c0 + 1]
            t2 = cur[a]
            while t2 < bend:
                r2 = indices[t2] - q1
                if r2 >= j1:
                    break
                if read:
                    _read_pairs(indptr, indices, E, q1, k1, D, G, c0, b0, bend, t2, r2, acc)
                else:
                    _subtract_pairs(indptr, indices, E, q1, k1, D, c0, b0, bend, t2, r2)
                t2 += 1
            cur[a] = t2


@njit(cache=True, inline="always")
def _subtract_pairs(indptr, indices, E, q1, k1, S, c0, b0, bend, t2, r2):
    """``S[r1, r2] -= E_a[r1] . E_a[r2]`` for the rows ``r1 >= r2`` of level ``a``."""
    if k1 == 1:
        e2 = E[t2]
        for t1 in range(t2, bend):
            S[indices[t1] - q1, r2] -= E[t1] * e2
    else:
        u2 = t2 - b0
        for u1 in range(u2, bend - b0):
            s = 0.0
            for c in range(k1):
                o = indptr[c0 + c] + (k1 - c)
                s += E[o + u1] * E[o + u2]
            S[indices[b0 + u1] - q1, r2] -= s


@njit(cache=True, inline="always")
def _read_pairs(indptr, indices, E, q1, k1, Sinv, G, c0, b0, bend, t2, r2, acc):
    """``G_a[r1] += Sinv[r1, r2] E_a[r2]`` and ``G_a[r2] += Sinv[r1, r2] E_a[r1]``."""
    u2 = t2 - b0
    if k1 == 1:
        e2 = E[t2]
        acc1 = 0.0
        for t1 in range(t2 + 1, bend):
            sv = Sinv[indices[t1] - q1, r2]
            G[t1] += sv * e2
            acc1 += sv * E[t1]
        G[t2] += acc1 + Sinv[r2, r2] * e2
    else:
        for c in range(k1):
            acc[c] = 0.0
        for u1 in range(u2, bend - b0):
            sv = Sinv[indices[b0 + u1] - q1, r2]
            for c in range(k1):
                o = indptr[c0 + c] + (k1 - c)
                G[o + u1] += sv * E[o + u2]
                if u1 != u2:
                    acc[c] += sv * E[o + u1]
        for c in range(k1):
            G[indptr[c0 + c] + (k1 - c) + u2] += acc[c]


@njit(cache=True)
def _selected_inverse_first_term(indptr, indices, Ld, E, Sinv, q1, k1, Z):
    """``M^{-1}`` on the first ``q1`` columns of the pattern of ``M``, given ``S^{-1}``.

    With ``L^{-1} = [[L_D^{-1}, 0], [-L_S^{-1} E L_D^{-1}, L_S^{-1}]]``, per level ``a``
    (its ``nb`` rows in the other terms, ``E_a`` = nb x k1, ``G_a = S^{-1}[rows, rows] E_a``):

        M^{-1}[rows, a]   = -G_a L_Da^{-1}
        M^{-1}[a, a]      = L_Da^{-T} (I + E_a' G_a) L_Da^{-1}

    ``Sinv`` holds the lower triangle of ``S^{-1}``. Cost ``sum_a nb_a^2 k1``, the same
    as the elimination; written into ``Z`` at the positions of ``M``'s entries.
    """
    m1 = q1 // k1
    nbmax = 0
    for a in range(m1):
        nbmax = max(nbmax, indptr[a * k1 + 1] - indptr[a * k1] - k1)
    Gall = np.zeros(E.shape[0])
    _panel_sweep(indptr, indices, E, q1, k1, Sinv, Gall, True)
    G = np.empty((nbmax, k1))
    Y = np.empty((k1, k1))
    for a in range(m1):
        c0 = a * k1
        b0 = indptr[c0] + k1
        nb = indptr[c0 + 1] - b0
        for c in range(k1):
            o = indptr[c0 + c] + (k1 - c)
            for t in range(nb):
                G[t, c] = Gall[o + t]
        # Y = I + E_a' G_a (before G is overwritten)
        for c in range(k1):
            o = indptr[c0 + c] + (k1 - c)
            for d in range(k1):
                s = 1.0 if c == d else 0.0
                for t in range(nb):
                    s += E[o + t] * G[t, d]
                Y[c, d] = s
        # rows of G times L_Da^{-1}: x L = g, last column first
        for t in range(nb):
            for c in range(k1 - 1, -1, -1):
                s = G[t, c]
                for l in range(c + 1, k1):
                    s -= G[t, l] * Ld[a, l, c]
                G[t, c] = s / Ld[a, c, c]
            for c in range(k1):
                Z[indptr[c0 + c] + (k1 - c) + t] = -G[t, c]
        _diagonal_block_inverse(Y, Ld, a, k1)
        for c in range(k1):
            for r in range(c, k1):
                Z[indptr[c0 + c] + (r - c)] = Y[r, c]


@njit(cache=True)
def _block_solve(Ld, b, transpose):
    """Solve ``L_D x = b`` (or ``L_D' x = b``) blockwise, in place on ``b`` (q1 x ncol)."""
    m1, k1, _ = Ld.shape
    ncol = b.shape[1]
    for a in range(m1):
        o = a * k1
        for j in range(ncol):
            if not transpose:
                for c in range(k1):
                    s = b[o + c, j]
                    for l in range(c):
                        s -= Ld[a, c, l] * b[o + l, j]
                    b[o + c, j] = s / Ld[a, c, c]
            else:
                for c in range(k1 - 1, -1, -1):
                    s = b[o + c, j]
                    for l in range(c + 1, k1):
                        s -= Ld[a, l, c] * b[o + l, j]
                    b[o + c, j] = s / Ld[a, c, c]


@njit(cache=True)
def _dense_lower_solve(Lc, b, transpose):
    """Solve ``Lc x = b`` or ``Lc' x = b`` in place (``Lc`` dense lower, ``b`` n x ncol).

    Compiled loops for a small ``S`` (see :meth:`DenseSchurCholesky._solve_S`): the
    right-hand sides are few (``p + 1``) and LAPACK's call overhead would dominate.
    """
    n = Lc.shape[0]
    ncol = b.shape[1]
    if not transpose:
        # by columns of Lc (its storage order): x_l, then the updates of the rows below
        x = np.empty(ncol)
        for l in range(n):
            d = Lc[l, l]
            for j in range(ncol):
                b[l, j] /= d
                x[j] = b[l, j]
            for i in range(l + 1, n):
                li = Lc[i, l]
                for j in range(ncol):
                    b[i, j] -= li * x[j]
        return
    for j in range(ncol):
        for i in range(n - 1, -1, -1):
            s = b[i, j]
            for l in range(i + 1, n):
                s -= Lc[l, i] * b[l, j]
            b[i, j] = s / Lc[i, i]


DENSE_COUPLING = 0.2
"""Smallest fraction of structurally non-zero entries in the block ``B`` (the first term's
levels against the other terms' random effects) for which :class:`DenseSchurCholesky`
holds ``E`` densely and forms ``E E'`` with BLAS: the sparse sweep does ``rho^2`` of the
dense flops but at a small fraction of BLAS's speed."""
DENSE_COUPLING_BYTES = 1 << 28
"""Largest dense ``E`` (and ``S^{-1} E``) in bytes, 256 MiB."""


def dense_coupling(nnz_b: int, q1: int, q2: int) -> bool:
    """Whether ``E`` should be dense: ``B`` at least :data:`DENSE_COUPLING` full and a
    ``q2 x q1`` matrix within :data:`DENSE_COUPLING_BYTES`."""
    size = q1 * q2
    return (size > 0 and nnz_b >= DENSE_COUPLING * size
            and 8 * size <= DENSE_COUPLING_BYTES)


def schur_density(indptr: np.ndarray, indices: np.ndarray, q1: int, k1: int,
                  max_pairs: int = 50_000_000) -> float:
    """Fraction of the lower triangle of ``S`` that is structurally non-zero.

    Counted exactly (a sparse product of the pattern of ``B``) unless the bound
    ``sum_a n_a^2`` exceeds ``max_pairs``, in which case 1.0 (dense) is returned.
    """
    q = indptr.size - 1
    q2 = q - q1
    if q2 == 0:
        return 1.0
    cols = np.repeat(np.arange(q), np.diff(indptr))
    inB = (cols < q1) & (indices >= q1) & (cols % k1 == 0)
    counts = np.bincount(cols[inB] // k1, minlength=q1 // k1)
    if float(np.sum(counts.astype(float) ** 2)) > max_pairs:
        return 1.0
    Bp = sp.csr_matrix((np.ones(int(inB.sum())), (indices[inB] - q1, cols[inB] // k1)),
                       shape=(q2, q1 // k1))
    inC = cols >= q1
    Cp = sp.csr_matrix((np.ones(int(inC.sum())), (indices[inC] - q1, cols[inC] - q1)),
                       shape=(q2, q2))
    pat = (Bp @ Bp.T + Cp + Cp.T).tocsr()
    return (pat.nnz + q2) / 2.0 / (q2 * (q2 + 1) / 2.0)


class DenseSchurCholesky:
    """``M = L L'`` through the Schur complement of the first term, dense LAPACK for ``S``.

    Parameters
    ----------
    A : scipy.sparse.csc_matrix
        Lower triangle of ``M`` with sorted row indices, in the layout of
        :mod:`mixeff._blocks` (first term in the leading ``q1`` rows and columns).
    q1, k1
        Size of the first term's block and its number of columns per level.
    threads
        Threads for the elimination's ``S -= E E'`` (Numba); the dense factorisation
        uses the BLAS library's own threads. 1: the serial sweep.
    """

    def __init__(self, A: sp.csc_matrix, q1: int, k1: int, threads: int = 1):
        self.threads = max(1, int(threads))
        self.indptr = np.asarray(A.indptr, dtype=np.int64)
        self.indices = np.asarray(A.indices, dtype=np.int64)
        q = A.shape[0]
        self.q1, self.k1 = int(q1), int(k1)
        self.q2 = q - self.q1
        self._Ld = np.zeros((self.q1 // self.k1, self.k1, self.k1))
        self._E = np.zeros(self.indices.size)
        self._S = np.zeros((self.q2, self.q2), order="F")
        cols = np.repeat(np.arange(q), np.diff(self.indptr))
        self._bmask = (cols < self.q1) & (self.indices >= self.q1)
        self._Ecsr = None
        self._b_rows = self.indices[self._bmask] - self.q1
        self._b_cols = cols[self._bmask]
        self._b_csr = sp.csr_matrix(
            (np.zeros(self._b_rows.size), (self._b_rows, self._b_cols)),
            shape=(self.q2, self.q1))
        # position of each B entry (CSC order) in the CSR data of E
        tagged = sp.csr_matrix(
            (np.arange(1, self._b_rows.size + 1, dtype=float), (self._b_rows, self._b_cols)),
            shape=(self.q2, self.q1))
        tagged.sort_indices()
        self._b_csr.sort_indices()
        self._csr_take = tagged.data.astype(np.int64) - 1
        self._b_pos = np.flatnonzero(self._bmask)
        # B nearly dense (every level of the first term meets most levels of the others:
        # subjects x items experiments): E held as a dense q2 x q1 matrix, S -= E E' by
        # BLAS syrk (see dense_coupling)
        self._Ed = None
        if dense_coupling(self._b_rows.size, self.q1, self.q2):
            self._Ed = np.zeros((self.q2, self.q1), order="F")
        self._e_stale = False   # dense E not yet copied to the pattern's positions
        self._logdet = float("nan")
        self.perm = np.arange(q)
        self.n_factorizations = 0
        self._selinv = None

    def factorize_values(self, data: np.ndarray) -> None:
        """Factor ``M`` given the values of its lower triangle in the analysed pattern."""
        if self._Ed is not None:
            self._eliminate_dense_coupling(data)
        else:
            self._eliminate_sparse_coupling(data)
        ld = 2.0 * float(np.sum(np.log(np.einsum("mii->mi", self._Ld))))
        if self.q2:
            c, info = lapack.dpotrf(self._S, lower=1, clean=1, overwrite_a=1)
            if info != 0:
                raise np.linalg.LinAlgError("Schur complement is not positive definite")
            self._S = c
            ld += 2.0 * float(np.sum(np.log(np.diag(c))))
        self._logdet = ld
        self._selinv = None
        self.n_factorizations += 1

    def _eliminate_sparse_coupling(self, data: np.ndarray) -> None:
        """``L_D``, ``E`` on the pattern of ``B`` and ``S = C - E E'`` (Numba sweeps)."""
        # (Numba's OpenMP layer terminates a forked child on its next parallel kernel)
        par = self.threads > 1 and self.q2 > 0 and numba_parallel_ok()
        ok = _eliminate_first_term(self.indptr, self.indices, data, self.q1, self.k1,
                                   self._Ld, self._E, self._S, not par)
        if not ok:
            raise np.linalg.LinAlgError("first-term block of M is not positive definite")
        if par:
            import numba

            before = numba.get_num_threads()
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
            try:
                _subtract_sweep_parallel(self.indptr, self.indices, self._E, self.q1,
                                         self.k1, self._S)
            finally:
                numba.set_num_threads(before)
        self._b_csr.data[:] = self._E[self._b_pos][self._csr_take]

    def _eliminate_dense_coupling(self, data: np.ndarray) -> None:
        """``L_D``, dense ``E = B L_D^{-T}`` and ``S = C - E E'`` by BLAS ``syrk``."""
        if not _factor_first_term(self.indptr, data, self.q1, self.k1, self._Ld):
            raise np.linalg.LinAlgError("first-term block of M is not positive definite")
        Ed = self._Ed
        Ed[self._b_rows, self._b_cols] = data[self._b_pos]
        _solve_blocks_right(self._Ld, Ed, True)
        _fill_complement(self.indptr, self.indices, data, self.q1, self._S)
        self._S = blas.dsyrk(-1.0, Ed, beta=1.0, c=self._S, lower=1, overwrite_c=1)
        self._e_stale = True

    def _e_values(self) -> np.ndarray:
        """``E`` at the positions of ``B``'s entries (as the sparse path stores it)."""
        if self._e_stale:
            self._E[self._b_pos] = self._Ed[self._b_rows, self._b_cols]
            self._e_stale = False
        return self._E

    def logdet(self) -> float:
        """``log det M``."""
        return self._logdet

    def _as2d(self, b):
        b = np.asarray(b, dtype=np.float64)
        return (b[:, None] if b.ndim == 1 else b).copy(), b.ndim == 1

    def _solve_S(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        """``L_S^{-1} b`` or ``L_S^{-T} b`` (a new array).

        LAPACK ``trtrs`` for a large ``S`` (it reads the factor once for all right-hand
        sides: 8.6 ms against 15-27 ms for the loops at 4,000 x 4,000), the compiled
        loops below that, where LAPACK's call overhead would dominate.
        """
        if self.q2 >= 256:
            x, info = lapack.dtrtrs(self._S, b, lower=1, trans=1 if transpose else 0)
            if info != 0:
                raise np.linalg.LinAlgError("singular Schur factor")
            return x
        x = np.ascontiguousarray(b, dtype=np.float64).copy()
        _dense_lower_solve(self._S, x, transpose)
        return x

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """``x = L^{-1} b``."""
        x, vec = self._as2d(b)
        x1 = x[: self.q1]
        _block_solve(self._Ld, x1, False)
        if self.q2:
            Bx = self._Ed @ x1 if self._Ed is not None else self._b_csr @ x1
            x[self.q1 :] = self._solve_S(x[self.q1 :] - Bx, False)
        return x[:, 0] if vec else x

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """``x = L^{-T} b``."""
        x, vec = self._as2d(b)
        if self.q2:
            x2 = self._solve_S(x[self.q1 :], True)
            x[self.q1 :] = x2
            x[: self.q1] -= (self._Ed.T @ x2 if self._Ed is not None
                             else self._b_csr.T @ x2)
        x1 = np.ascontiguousarray(x[: self.q1])
        _block_solve(self._Ld, x1, True)
        x[: self.q1] = x1
        return x[:, 0] if vec else x

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``x = M^{-1} b``."""
        return self.solve_Lt(self.solve_L(b))

    def L(self) -> sp.csc_matrix:
        """The factor as a sparse lower-triangular CSC matrix (sorted rows)."""
        m1, k1 = self._Ld.shape[0], self.k1
        a, r, c = np.nonzero(np.tril(np.ones((k1, k1), dtype=bool))[None].repeat(m1, 0))
        rows = [a * k1 + r, self._b_rows + self.q1]
        cols = [a * k1 + c, self._b_cols]
        vals = [self._Ld[a, r, c], self._e_values()[self._b_pos]]
        if self.q2:
            ii, jj = np.tril_indices(self.q2)
            rows.append(ii + self.q1)
            cols.append(jj + self.q1)
            vals.append(self._S[ii, jj])
        q = self.q1 + self.q2
        L = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(q, q))
        L.sort_indices()
        return L

    def selected_inverse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``M^{-1}`` where the gradient and conditional variances need it.

        Returns ``(indptr, indices, Z, Sinv)``: the first ``q1`` columns on the pattern of
        ``M`` (CSC, lower triangle) and the lower triangle of ``S^{-1}`` (LAPACK ``potri``)
        for the rest. Kept until the next factorisation.
        """
        if self._selinv is None:
            if self.q2:
                Sinv, info = lapack.dpotri(self._S, lower=1)
                if info != 0:
                    raise np.linalg.LinAlgError("Schur complement is singular")
            else:
                Sinv = np.zeros((0, 0))
            nz = int(self.indptr[self.q1])
            Z = np.zeros(nz)
            if self._Ed is not None:
                # dense E: G = S^-1 E by BLAS; M^-1[rows, a] = -G_a L_Da^-1 and the
                # diagonal blocks L_Da^-T (I + E_a' G_a) L_Da^-1
                G = blas.dsymm(1.0, Sinv, self._Ed, lower=1)
                _diagonal_blocks_dense(self.indptr, self._Ld, self._Ed, G, self.k1, Z)
                _solve_blocks_right(self._Ld, G, False)
                Z[self._b_pos] = -G[self._b_rows, self._b_cols]
            else:
                _selected_inverse_first_term(self.indptr, self.indices, self._Ld, self._E,
                                             Sinv, self.q1, self.k1, Z)
            self._selinv = (self.indptr[: self.q1 + 1], self.indices[:nz], Z, Sinv)
        return self._selinv

    def nnz_L(self) -> int:
        """Entries of the factor (dense lower triangle of ``L_S`` included)."""
        return int(self._Ld.shape[0] * self.k1 * (self.k1 + 1) // 2 + self._b_rows.size
                   + self.q2 * (self.q2 + 1) // 2)
