"""Numba kernels: every loop over rows, levels or factor entries lives here.

All kernels are compiled with ``cache=True`` so that a new process loads the machine
code from disk instead of compiling it again.

Block storage used throughout: the symmetric ``q x q`` matrix ``A = Z'WZ`` is held as a
list of dense blocks, one per pair of levels that share at least one row. Block ``b``
couples level ``blk_rl[b]`` of term ``blk_rt[b]`` (rows) with level ``blk_cl[b]`` of term
``blk_ct[b]`` (columns), with ``blk_rt[b] >= blk_ct[b]`` so that all blocks lie in the
lower triangle; its ``k_r x k_c`` values are stored row-major at ``vals[blk_vo[b]:]``.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

# ---------------------------------------------------------------------------------
# Cross-product blocks, one pass over the rows
# ---------------------------------------------------------------------------------


@njit(cache=True)
def diag_block_sums(codes, mat, w, m):
    """Per level ``a``: ``sum_i w_i z_i z_i'`` over the rows of level ``a`` (m x k x k)."""
    n, k = mat.shape
    out = np.zeros((m, k, k))
    for i in range(n):
        a = codes[i]
        wi = w[i]
        for r in range(k):
            v = wi * mat[i, r]
            for c in range(k):
                out[a, r, c] += v * mat[i, c]
    return out


@njit(cache=True)
def pair_block_sums(pair_of_row, mat_r, mat_c, w, npairs):
    """Per level pair: ``sum_i w_i z_r,i z_c,i'`` (npairs x k_r x k_c)."""
    n, kr = mat_r.shape
    kc = mat_c.shape[1]
    out = np.zeros((npairs, kr, kc))
    for i in range(n):
        b = pair_of_row[i]
        wi = w[i]
        for r in range(kr):
            v = wi * mat_r[i, r]
            for c in range(kc):
                out[b, r, c] += v * mat_c[i, c]
    return out


@njit(cache=True)
def term_cross_sums(codes, mat, w, XY, m):
    """Per level: ``sum_i w_i z_i [x_i y_i]'`` (m x k x (p+1)), the blocks of Z'W[X y]."""
    n, k = mat.shape
    p1 = XY.shape[1]
    out = np.zeros((m, k, p1))
    for i in range(n):
        a = codes[i]
        wi = w[i]
        for r in range(k):
            v = wi * mat[i, r]
            for j in range(p1):
                out[a, r, j] += v * XY[i, j]
    return out


@njit(cache=True)
def term_linear_predictor(codes, mat, b):
    """Per row: ``z_i' b[level_i]`` for one term, ``b`` of shape (m, k)."""
    n, k = mat.shape
    out = np.empty(n)
    for i in range(n):
        a = codes[i]
        s = 0.0
        for c in range(k):
            s += mat[i, c] * b[a, c]
        out[i] = s
    return out


# ---------------------------------------------------------------------------------
# Lambda' A Lambda + I into a fixed sparsity pattern
# ---------------------------------------------------------------------------------


@njit(cache=True)
def fill_lambda_a_lambda(out, tmpl, kdim, blk_rt, blk_ct, blk_diag, blk_vo, vals, blk_po, pos):
    """Write the values of ``Lambda' A Lambda + I`` into ``out`` (a CSC data array).

    Block ``b`` of ``A`` becomes ``T_r' A_b T_c`` (templates of its row and column
    terms); entry ``(i, j)`` of it goes to ``out[pos[blk_po[b] + i * k_c + j]]``, skipped
    when that position is negative (upper triangle of a diagonal block). Diagonal
    blocks get the identity added.
    """
    nb = blk_rt.shape[0]
    kmax = tmpl.shape[1]
    tmp = np.empty((kmax, kmax))
    for b in range(nb):
        tr = blk_rt[b]
        tc = blk_ct[b]
        kr = kdim[tr]
        kc = kdim[tc]
        vo = blk_vo[b]
        po = blk_po[b]
        if kr == 1 and kc == 1:
            v = tmpl[tr, 0, 0] * vals[vo] * tmpl[tc, 0, 0]
            if blk_diag[b]:
                v += 1.0
            out[pos[po]] = v
            continue
        # tmp = A_b T_c  (kr x kc); T_c lower triangular
        for i in range(kr):
            for j in range(kc):
                s = 0.0
                for l in range(j, kc):
                    s += vals[vo + i * kc + l] * tmpl[tc, l, j]
                tmp[i, j] = s
        # out = T_r' tmp; (T_r')[i, l] = T_r[l, i], nonzero for l >= i
        for i in range(kr):
            for j in range(kc):
                dst = pos[po + i * kc + j]
                if dst < 0:
                    continue
                s = 0.0
                for l in range(i, kr):
                    s += tmpl[tr, l, i] * tmp[l, j]
                if blk_diag[b] and i == j:
                    s += 1.0
                out[dst] = s


@njit(cache=True)
def apply_lambda_t(tmpl, kdim, offsets, nlev, B, transpose):
    """Multiply the rows of ``B`` (q x c) by ``Lambda'`` (``transpose``) or ``Lambda``."""
    out = np.empty_like(B)
    ncol = B.shape[1]
    for t in range(kdim.shape[0]):
        k = kdim[t]
        o = offsets[t]
        for a in range(nlev[t]):
            base = o + a * k
            for i in range(k):
                for j in range(ncol):
                    s = 0.0
                    if transpose:
                        for l in range(i, k):
                            s += tmpl[t, l, i] * B[base + l, j]
                    else:
                        for l in range(0, i + 1):
                            s += tmpl[t, i, l] * B[base + l, j]
                    out[base + i, j] = s
    return out


# ---------------------------------------------------------------------------------
# Selected inverse (Takahashi recurrences) and the gradient traces
# ---------------------------------------------------------------------------------


@njit(cache=True)
def selected_inverse(indptr, indices, data):
    """Entries of ``(L L')^{-1}`` on the pattern of the lower factor ``L`` (CSC).

    Takahashi's recurrences, from the last column backwards: for column ``j`` with
    below-diagonal rows ``S``, ``Z[i, j] = -sum_{k in S} Z[i, k] L[k, j] / L[j, j]`` and
    ``Z[j, j] = 1 / L[j, j]**2 - sum_{k in S} L[k, j] Z[k, j] / L[j, j]``. Row indices in
    each column must be sorted with the diagonal first.
    """
    n = indptr.shape[0] - 1
    Z = np.zeros_like(data)
    where = np.full(n, -1, dtype=np.int64)
    acc = np.zeros(n)
    for j in range(n - 1, -1, -1):
        p0 = indptr[j]
        p1 = indptr[j + 1]
        ljj = data[p0]
        for p in range(p0 + 1, p1):
            where[indices[p]] = p
            acc[indices[p]] = 0.0
        for p in range(p0 + 1, p1):
            kk = indices[p]
            lkj = data[p]
            # column kk of Z holds Z[r, kk] for r >= kk on the pattern
            for pp in range(indptr[kk], indptr[kk + 1]):
                r = indices[pp]
                if where[r] < 0:
                    continue
                z = Z[pp]
                acc[r] += z * lkj
                if r != kk:
                    acc[kk] += z * data[where[r]]
        s = 0.0
        for p in range(p0 + 1, p1):
            i = indices[p]
            zij = -acc[i] / ljj
            Z[p] = zij
            s += data[p] * zij
        Z[p0] = (1.0 / ljj - s) / ljj
        for p in range(p0 + 1, p1):
            where[indices[p]] = -1
    return Z


@njit(cache=True)
def _lookup(indptr, indices, Z, pinv, dense, q1, a, b):
    """``Minv[a, b]`` (original indices) from a selected inverse.

    Columns ``j < q1`` of the (permuted) lower triangle are stored sparsely on the factor's
    pattern (``indptr``, ``indices``, ``Z``); the trailing block ``j, i >= q1`` densely in
    ``dense`` (the Schur path; ``q1`` = q and an empty ``dense`` otherwise).
    """
    return _read(Z, dense, _position(indptr, indices, pinv, q1, dense.shape[0], a, b))


@njit(cache=True)
def _read(Z, dense, p):
    """The entry of a selected inverse at position ``p`` of :func:`_position`."""
    if p >= 0:
        return Z[p]
    nd = dense.shape[0]
    f = -1 - p
    if f < nd * nd:
        return dense[f % nd, f // nd]
    return 0.0


@njit(cache=True)
def _position(indptr, indices, pinv, q1, nd, a, b):
    """Where ``Minv[a, b]`` is kept (see :func:`_lookup`): an index into ``Z`` (>= 0),
    ``-1 - flat`` for entry ``flat`` of the dense tail (Fortran order), or ``-1 - nd*nd``
    when the pair is not on the pattern (the entry is then not needed: 0)."""
    i = pinv[a]
    j = pinv[b]
    if i < j:
        i, j = j, i
    if j >= q1:
        return -1 - ((i - q1) + (j - q1) * nd)
    lo = indptr[j]
    hi = indptr[j + 1] - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        r = indices[mid]
        if r == i:
            return mid
        if r < i:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1 - nd * nd


@njit(cache=True)
def trace_positions(indptr, indices, pinv, q1, nd, kdim, offsets, blk_rt, blk_rl, blk_ct,
                    blk_cl, blk_diag):
    """The positions (:func:`_position`) :func:`trace_minv_lambda_a` reads, in its order.

    They depend on the pattern only, so a fit computes them once.
    """
    total = 0
    for b in range(blk_rt.shape[0]):
        m = kdim[blk_rt[b]] * kdim[blk_ct[b]]
        total += m if blk_diag[b] else 2 * m
    pos = np.empty(total, dtype=np.int64)
    w = 0
    for b in range(blk_rt.shape[0]):
        ts = blk_rt[b]
        tt = blk_ct[b]
        ks = kdim[ts]
        kt = kdim[tt]
        u0 = offsets[ts] + blk_rl[b] * ks
        a0 = offsets[tt] + blk_cl[b] * kt
        for c in range(kt):
            for i in range(ks):
                pos[w] = _position(indptr, indices, pinv, q1, nd, a0 + c, u0 + i)
                w += 1
        if not blk_diag[b]:
            for c in range(ks):
                for i in range(kt):
                    pos[w] = _position(indptr, indices, pinv, q1, nd, u0 + c, a0 + i)
                    w += 1
    return pos


@njit(cache=True)
def trace_minv_lambda_a(Z, dense, pos, tmpl, kdim, offsets,
                        blk_rt, blk_rl, blk_ct, blk_cl, blk_diag, blk_vo, vals):
    """Per term ``t``: ``G_t[c, r] = sum_a [M^{-1} Lambda' A]_{(a,c),(a,r)}``.

    ``Minv = (Lambda' A Lambda + I)^{-1}`` is read from its selected inverse (``Z`` on the
    factor's pattern, ``dense`` the dense tail) at the positions
    :func:`trace_positions` found; each stored block of ``A`` is used in both
    orientations.
    """
    nt = kdim.shape[0]
    kmax = tmpl.shape[1]
    G = np.zeros((nt, kmax, kmax))
    LA = np.empty((kmax, kmax))
    mv = np.empty(kmax)
    w = 0
    for b in range(blk_rt.shape[0]):
        ts = blk_rt[b]
        tt = blk_ct[b]
        ks = kdim[ts]
        kt = kdim[tt]
        vo = blk_vo[b]
        # orientation 1: (Lambda'A)[(u, i), (a, r)] = (T_s' V)[i, r]
        for i in range(ks):
            for r in range(kt):
                s = 0.0
                for l in range(i, ks):
                    s += tmpl[ts, l, i] * vals[vo + l * kt + r]
                LA[i, r] = s
        for c in range(kt):
            for i in range(ks):
                mv[i] = _read(Z, dense, pos[w])
                w += 1
            for r in range(kt):
                s = 0.0
                for i in range(ks):
                    s += mv[i] * LA[i, r]
                G[tt, c, r] += s
        if blk_diag[b]:
            continue
        # orientation 2: (Lambda'A)[(a, i), (u, r)] = (T_t' V')[i, r]
        for i in range(kt):
            for r in range(ks):
                s = 0.0
                for l in range(i, kt):
                    s += tmpl[tt, l, i] * vals[vo + r * kt + l]
                LA[i, r] = s
        for c in range(ks):
            for i in range(kt):
                mv[i] = _read(Z, dense, pos[w])
                w += 1
            for r in range(ks):
                s = 0.0
                for i in range(kt):
                    s += mv[i] * LA[i, r]
                G[ts, c, r] += s
    return G


@njit(cache=True)
def minv_diag_blocks(indptr, indices, Z, pinv, dense, q1, offset, k, m):
    """Diagonal ``k x k`` blocks of ``Minv`` for one term (m x k x k)."""
    out = np.empty((m, k, k))
    for a in range(m):
        base = offset + a * k
        for r in range(k):
            for c in range(k):
                out[a, r, c] = _lookup(indptr, indices, Z, pinv, dense, q1, base + r, base + c)
    return out


@njit(cache=True)
def minv_entries(indptr, indices, Z, pinv, dense, q1, rows, cols):
    """``Minv[rows[i], cols[i]]`` for each ``i`` (see :func:`_lookup`)."""
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        out[i] = _lookup(indptr, indices, Z, pinv, dense, q1, rows[i], cols[i])
    return out


# --------------------------------------------------------------------------------------
# one grouping term: the whole evaluation level by level (see _objective.SingleTermPath)
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _level_factor(T, A, j, M):
    """``M = T' A_j T + I`` of level ``j``, overwritten by its lower Cholesky factor."""
    k = T.shape[0]
    for a in range(k):
        for b in range(a + 1):
            s = 0.0
            for r in range(a, k):        # T is lower triangular: T[r, a] = 0 for r < a
                ta = T[r, a]
                if ta == 0.0:
                    continue
                for c in range(b, k):
                    s += ta * A[j, r, c] * T[c, b]
            M[a, b] = s + (1.0 if a == b else 0.0)
    for a in range(k):
        d = M[a, a]
        for r in range(a):
            d -= M[a, r] * M[a, r]
        # not positive (extreme theta): NaN, which the caller takes as a breakdown
        d = np.sqrt(d) if d > 0.0 else np.nan
        M[a, a] = d
        for b in range(a + 1, k):
            s = M[b, a]
            for r in range(a):
                s -= M[b, r] * M[a, r]
            M[b, a] = s / d


@njit(cache=True)
def _inverse_from_lower(L, Y, out):
    """``out = (L L')^{-1}`` for a lower-triangular ``L`` (``Y`` receives ``L^{-1}``)."""
    k = L.shape[0]
    for a in range(k):
        for b in range(k):
            Y[a, b] = 0.0
    for b in range(k):
        Y[b, b] = 1.0 / L[b, b]
        for a in range(b + 1, k):
            s = 0.0
            for r in range(b, a):
                s -= L[a, r] * Y[r, b]
            Y[a, b] = s / L[a, a]
    for a in range(k):
        for b in range(k):
            s = 0.0
            for r in range(max(a, b), k):
                s += Y[r, a] * Y[r, b]
            out[a, b] = s


@njit(cache=True)
def single_term_sums(T, A, BC, XtX, Xty, yty):
    """The level-by-level part of one evaluation of a one-term model.

    ``T`` is the term's ``k x k`` template, ``A`` the ``m x k x k`` diagonal blocks of
    ``Z'WZ``, ``BC`` the ``m x k x (p+1)`` rows of ``Z'W[X y]``. For each level
    ``L_j L_j' = T' A_j T + I`` and ``R_j = L_j^{-1} T' BC_j``; returned: the sum of
    ``log |L_j|^2``, ``S = X'WX - sum R_X,j' R_X,j`` (``p x p``), ``X'Wy - sum R_X,j'
    c_j`` and ``y'Wy - sum |c_j|^2`` (``R_X,j``, ``c_j``: the first ``p`` and the last
    column of ``R_j``).
    """
    m, k = A.shape[0], A.shape[1]
    p1 = BC.shape[2]
    p = p1 - 1
    S = XtX.copy()
    Sy = Xty.copy()
    cc = yty
    ld = 0.0
    M = np.zeros((k, k))
    R = np.zeros((k, p1))
    for j in range(m):
        _level_factor(T, A, j, M)
        for a in range(k):
            ld += 2.0 * np.log(M[a, a])
        # R = L^{-1} T' BC_j
        for a in range(k):
            for col in range(p1):
                s = 0.0
                for r in range(a, k):
                    s += T[r, a] * BC[j, r, col]
                for r in range(a):
                    s -= M[a, r] * R[r, col]
                R[a, col] = s / M[a, a]
        for a in range(k):
            ra_y = R[a, p]
            cc -= ra_y * ra_y
            for c1 in range(p):
                ra = R[a, c1]
                Sy[c1] -= ra * ra_y
                for c2 in range(p):
                    S[c1, c2] -= ra * R[a, c2]
    return ld, S, Sy, cc


@njit(cache=True)
def single_term_gradient(T, A, BC, dbeta, RX, reml, rows, cols, coef):
    """The gradient of a one-term model's objective by the template entries.

    With ``M_j = T' A_j T + I``, ``u_j = M_j^{-1} T' (c_j - B_j dbeta)`` (the conditional
    modes) and ``rho_j = c_j - B_j dbeta - A_j T u_j``: ``G1 = sum M_j^{-1} T' A_j``
    (the log-determinant's trace), ``G2 = sum u_j rho_j'`` (the penalised residual sum
    of squares) and, for REML, ``G3 = sum M_j^{-1} T' Q_j (I - T M_j^{-1} T' A_j)`` with
    ``Q_j = B_j C B_j'``, ``C = (R_X' R_X)^{-1}`` (``RX`` upper triangular). The
    derivative by the template entry ``(rows[i], cols[i])`` is ``2 G1[c, r] - 2 G3[c, r]
    - coef G2[c, r]`` with ``coef = 2 scale / r^2`` (see ``docs/maths.md``).
    """
    m, k = A.shape[0], A.shape[1]
    p = BC.shape[2] - 1
    Cinv = np.zeros((p, p))
    if reml and p > 0:
        _inverse_from_lower(RX.T, np.zeros((p, p)), Cinv)   # (R_X' R_X)^{-1}
    G1 = np.zeros((k, k))
    G2 = np.zeros((k, k))
    G3 = np.zeros((k, k))
    M = np.zeros((k, k))
    Minv = np.zeros((k, k))
    P = np.zeros((k, k))
    TtA = np.zeros((k, k))
    v = np.zeros(k)
    u = np.zeros(k)
    rho = np.zeros(k)
    Q = np.zeros((k, k))
    BC_ = np.zeros((k, p))
    Y = np.zeros((k, k))
    TP = np.zeros((k, k))
    for j in range(m):
        _level_factor(T, A, j, M)
        _inverse_from_lower(M, Y, Minv)
        # TtA = T' A_j
        for a in range(k):
            for b in range(k):
                s = 0.0
                for r in range(a, k):
                    s += T[r, a] * A[j, r, b]
                TtA[a, b] = s
        # P = Minv T' A_j ; G1 += P
        for a in range(k):
            for b in range(k):
                s = 0.0
                for r in range(k):
                    s += Minv[a, r] * TtA[r, b]
                P[a, b] = s
                G1[a, b] += s
        # residual of the level: v = c_j - B_j dbeta
        for a in range(k):
            s = BC[j, a, p]
            for c1 in range(p):
                s -= BC[j, a, c1] * dbeta[c1]
            v[a] = s
        # u = Minv T' v ; rho = v - A_j T u
        for a in range(k):
            s = 0.0
            for r in range(k):
                t = 0.0
                for c1 in range(r, k):
                    t += T[c1, r] * v[c1]
                s += Minv[a, r] * t
            u[a] = s
        for a in range(k):
            s = v[a]
            for r in range(k):
                t = 0.0
                for c1 in range(r + 1):
                    t += T[r, c1] * u[c1]
                s -= A[j, a, r] * t
            rho[a] = s
        for a in range(k):
            for b in range(k):
                G2[a, b] += u[a] * rho[b]
        if reml and p > 0:
            for a in range(k):
                for c1 in range(p):
                    s = 0.0
                    for c2 in range(p):
                        s += BC[j, a, c2] * Cinv[c2, c1]
                    BC_[a, c1] = s
            for a in range(k):
                for b in range(k):
                    s = 0.0
                    for c1 in range(p):
                        s += BC_[a, c1] * BC[j, b, c1]
                    Q[a, b] = s
            # Y = Minv T' Q
            for a in range(k):
                for b in range(k):
                    s = 0.0
                    for r in range(k):
                        t = 0.0
                        for c1 in range(r, k):
                            t += T[c1, r] * Q[c1, b]
                        s += Minv[a, r] * t
                    Y[a, b] = s
            # TP = T P ; G3 += Y - Y TP
            for a in range(k):
                for b in range(k):
                    s = 0.0
                    for r in range(a + 1):
                        s += T[a, r] * P[r, b]
                    TP[a, b] = s
            for a in range(k):
                for b in range(k):
                    s = Y[a, b]
                    for r in range(k):
                        s -= Y[a, r] * TP[r, b]
                    G3[a, b] += s
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        r, c = rows[i], cols[i]
        out[i] = 2.0 * G1[c, r] - 2.0 * G3[c, r] - coef * G2[c, r]
    return out


@njit(cache=True)
def profile_fixed(S, Sy, r2u):
    """The ``p x p`` step of an evaluation: ``R_X`` (upper, ``R_X' R_X = S``), the
    coefficients ``dbeta = S^{-1} Sy``, ``log|R_X|^2`` and ``r^2 = r2u - |R_X^{-T} Sy|^2``.

    Returns ``ok = False`` (and the rest unset) when ``S`` is not numerically positive
    definite; the caller then takes the jittered factor.
    """
    p = S.shape[0]
    RX = np.zeros((p, p))
    z = np.zeros(p)
    dbeta = np.zeros(p)
    for a in range(p):
        d = S[a, a]
        for r in range(a):
            d -= RX[r, a] * RX[r, a]
        if not d > 0.0:
            return False, RX, dbeta, 0.0, 0.0
        d = np.sqrt(d)
        RX[a, a] = d
        for b in range(a + 1, p):
            s = S[a, b]
            for r in range(a):
                s -= RX[r, a] * RX[r, b]
            RX[a, b] = s / d
    ld = 0.0
    zz = 0.0
    for a in range(p):          # z = R_X^{-T} Sy
        s = Sy[a]
        for r in range(a):
            s -= RX[r, a] * z[r]
        z[a] = s / RX[a, a]
        zz += z[a] * z[a]
        ld += 2.0 * np.log(RX[a, a])
    for a in range(p - 1, -1, -1):   # dbeta = R_X^{-1} z
        s = z[a]
        for r in range(a + 1, p):
            s -= RX[a, r] * dbeta[r]
        dbeta[a] = s / RX[a, a]
    return True, RX, dbeta, ld, r2u - zz
