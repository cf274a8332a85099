"""The profiled REML criterion / ML deviance of a linear mixed model and its gradient.

One evaluation for a given theta (DESIGN.md section 1):

1. fill ``M = Lambda' A Lambda + I`` into its fixed pattern (Numba, :mod:`._kernels`);
2. refactor ``P M P' = L L'`` with CHOLMOD, symbolic analysis reused (:mod:`._cholmod`);
3. ``[R_ZX c_u] = L^{-1} P Lambda' Z'W[X y]``, then the small dense algebra:
   ``R_X' R_X = X'WX - R_ZX' R_ZX``, ``beta``, and the penalised residual sum of squares
   ``r^2 = y'Wy - |c_u|^2 - |R_X^{-T}(X'Wy - R_ZX' c_u)|^2``.

    ML deviance      ``log|L|^2 + n (1 + log(2 pi r^2 / n)) - sum(log w)``
    REML criterion   ``log|L|^2 + log|R_X|^2 + (n-p) (1 + log(2 pi r^2 / (n-p))) - sum(log w)``

The gradient (derived in ``docs/maths.md``) needs ``M^{-1}`` only on the pattern of ``A``;
it is read from the selected inverse of the factor (Takahashi recurrences).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack

from . import _kernels as K
from ._blocks import Blocks
from ._cholmod import SparseCholesky
from ._errors import DataError
from ._schur import DenseSchurCholesky, schur_density

__all__ = ["LmmObjective", "SchurBreakdown", "SelectedInverse", "Solution"]


class SchurBreakdown(DataError, np.linalg.LinAlgError):
    """The Schur path's factorisation failed where ``factorization="schur"`` was asked for.

    With ``"auto"`` the objective moves to CHOLMOD instead (see :class:`LmmObjective`).
    """

_LOG2PI = float(np.log(2.0 * np.pi))
_potrf, _trtrs, _potri = lapack.dpotrf, lapack.dtrtrs, lapack.dpotri


@dataclass
class Solution:
    """Everything one evaluation at ``theta`` leaves behind."""

    theta: np.ndarray
    objective: float
    ldL2: float
    ldRX2: float
    r2: float
    beta: np.ndarray
    RX: np.ndarray        # upper triangular, R_X' R_X = X'WX - R_ZX' R_ZX
    RZX: np.ndarray       # q x p, permuted order (rows of L)
    cu: np.ndarray        # q, permuted order
    tmpl: np.ndarray
    dbeta: np.ndarray     # beta - beta0 (the shifted response's coefficients; cu is its)


class SelectedInverse(NamedTuple):
    """``M^{-1}`` on the factor's pattern: read entries with :meth:`entries`.

    Columns ``j < q1`` (permuted order) are stored on the pattern (``indptr``, ``indices``,
    ``Z``); the trailing ``j >= q1`` block densely (lower triangle of ``dense``).
    """

    indptr: np.ndarray
    indices: np.ndarray
    Z: np.ndarray
    pinv: np.ndarray
    dense: np.ndarray
    q1: int

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``M^{-1}[rows[i], cols[i]]`` (original order); pairs must be on the pattern."""
        return K.minv_entries(*self, np.asarray(rows, np.int64), np.asarray(cols, np.int64))


class LmmObjective:
    """Profiled deviance as a function of theta, on precomputed blocks.

    Parameters
    ----------
    blocks
        The model's cross-product blocks.
    reml
        REML criterion (True) or ML deviance (False).
    supernodal
        CHOLMOD mode passed to :class:`~mixeff._cholmod.SparseCholesky`.
    factorization
        ``"cholmod"`` (CHOLMOD on the whole matrix, the general path), ``"schur"`` (the
        first term eliminated directly, dense LAPACK on the Schur complement; see
        :mod:`mixeff._schur`) or ``"auto"``: Schur when its complement is small or
        measured to be dense, CHOLMOD otherwise. When the Schur factorisation breaks
        down at some theta (its first-term blocks or its complement numerically not
        positive definite, e.g. at extreme theta of a model with more random effects
        than rows), ``"auto"`` moves the objective to CHOLMOD for the rest of its life
        and evaluates again; an explicit ``"schur"`` raises :class:`SchurBreakdown`.
    threads
        Threads for the Schur path's elimination (see
        :class:`~mixeff._schur.DenseSchurCholesky`); the fit passes its BLAS thread count.
    memory_limit
        Bytes the factorisation may use; None: the memory available to the process
        (:mod:`mixeff._memory`). A path that does not fit is not taken: ``"auto"`` takes
        the other one if it fits, otherwise a :class:`~mixeff.DataError` gives the
        figures before anything large is allocated.

    Attributes
    ----------
    n_evaluations, n_gradients
        Counters of objective and gradient evaluations.
    factorization
        The path in use, ``"cholmod"`` or ``"schur"``.
    requested_factorization
        The ``factorization`` asked for.
    """

    def __init__(self, blocks: Blocks, reml: bool = True, supernodal: str = "auto",
                 factorization: str = "auto", threads: int = 1,
                 memory_limit: int | str | None = None):
        self.blocks = blocks
        self.reml = bool(reml)
        self.n_evaluations = 0
        self.n_gradients = 0
        b = blocks
        self._mdata = np.zeros(b.nnz_m)
        # the response's sums, after its least-squares fit on X when the rows gave them
        sh = b.shift
        if sh is not None:
            self._beta0, self._Zty, self._Xty, self._yty = sh.beta0, sh.Zty, sh.Xty, sh.yty
        else:
            self._beta0, self._Zty, self._Xty, self._yty = np.zeros(b.p), b.Zty, b.Xty, b.yty
        self._ZtXY = np.empty((b.q, b.p + 1))
        self._ZtXY[:, : b.p] = b.ZtX
        self._ZtXY[:, b.p] = self._Zty
        theta0 = b.re.start_theta()
        self._fill(b.re.templates(theta0))
        pattern = sp.csc_matrix((self._mdata.copy(), b.m_indices, b.m_indptr), shape=(b.q, b.q))
        self.requested_factorization = factorization
        self._supernodal = supernodal
        from ._memory import parse_memory_limit

        self.memory_limit = parse_memory_limit(memory_limit)
        self.factorization = self._choose_factorization(factorization)
        self._chol = self._new_factor(pattern, threads)
        self._set_perm()
        self._last: Solution | None = None
        self._trace_pos = None
        # the optimiser's values and gradients ("auto"): level by level for one
        # random-effects term (no sparse matrix, no factor), dense algebra for a few random
        # effects over several terms; solve() (the fit object's factor) stays general
        self._fast: _OneTerm | _SmallDense | None = None
        if factorization == "auto" and len(b.re.terms) == 1:
            self._fast = _OneTerm(b, self._ZtXY)
        elif factorization == "auto" and b.q <= SMALL_DENSE_Q:
            self._fast = _SmallDense(b, self._ZtXY)
        self._fast_last = None

    def _set_perm(self) -> None:
        self.perm = np.asarray(self._chol.perm, dtype=np.int64)
        self.pinv = np.empty_like(self.perm)
        self.pinv[self.perm] = np.arange(self.perm.size)

    def _factorize(self, theta: np.ndarray) -> None:
        """Factor the filled ``M``; a Schur breakdown moves ``"auto"`` to CHOLMOD."""
        try:
            self._chol.factorize_values(self._mdata)
        except np.linalg.LinAlgError as err:
            self._last = None   # the factor no longer holds the kept solution's theta
            if not isinstance(self._chol, DenseSchurCholesky):
                raise
            if self.requested_factorization != "auto":
                raise SchurBreakdown(
                    "the Schur-complement factorisation broke down at theta = "
                    f"{np.array2string(theta, precision=6)} ({err}); "
                    "factorization='auto' or 'cholmod' uses CHOLMOD on the whole matrix"
                ) from err
            b = self.blocks
            pattern = sp.csc_matrix((self._mdata.copy(), b.m_indices, b.m_indptr),
                                    shape=(b.q, b.q))
            self._chol = self._new_cholmod(pattern, fallback=False)
            self.factorization = "cholmod"
            self._set_perm()
            self._chol.factorize_values(self._mdata)

    def _choose_factorization(self, requested: str) -> str:
        if requested in ("cholmod", "schur"):
            return requested
        if requested != "auto":
            raise ValueError("factorization must be 'auto', 'cholmod' or 'schur'")
        b = self.blocks
        t0 = b.re.terms[0]
        q2 = b.q - t0.size
        if q2 <= 500:
            return "schur"
        if q2 > 12_000:
            return "cholmod"
        dens = schur_density(b.m_indptr, b.m_indices, t0.size, t0.k)
        return "schur" if dens >= 0.2 else "cholmod"

    def _new_factor(self, pattern: sp.csc_matrix, threads: int):
        """The factor object of the chosen path, within the memory budget.

        The dense Schur complement is sized before it is allocated, CHOLMOD's factor from
        its symbolic analysis; ``"auto"`` moves to the other path when the chosen one does
        not fit and the other does, otherwise a :class:`~mixeff.DataError` tells how much
        is needed (:mod:`mixeff._memory`).
        """
        from . import _memory as mem

        b = self.blocks
        t0 = b.re.terms[0]
        q2 = b.q - t0.size
        if self.factorization == "schur":
            need = mem.schur_bytes(q2)
            if mem.fits(need, self.memory_limit):
                return DenseSchurCholesky(pattern, t0.size, t0.k, threads=threads)
            if self.requested_factorization == "schur":
                raise mem.memory_error(
                    f"the dense Schur path ({q2:,} x {q2:,} doubles for the random effects "
                    "outside the first term, kept twice)", need, self.memory_limit,
                    "factorization='auto' or 'cholmod' factors the sparse matrix with "
                    "CHOLMOD instead, which needs less when the design is not fully crossed")
            self.factorization = "cholmod"
            return self._new_cholmod(pattern, fallback=False)
        return self._new_cholmod(pattern, fallback=self.requested_factorization == "auto",
                                 threads=threads)

    def _new_cholmod(self, pattern: sp.csc_matrix, fallback: bool, threads: int = 1):
        """CHOLMOD's symbolic analysis, and its factor's predicted size checked."""
        from . import _memory as mem

        chol = SparseCholesky(pattern, supernodal=self._supernodal)
        b = self.blocks
        if mem.fits(mem.cholmod_bytes(b.q * (b.q + 1) // 2), self.memory_limit):
            return chol   # even a dense factor fits: nothing to count
        have, _ = mem.budget(self.memory_limit)
        if have is None:
            return chol
        per = mem.CHOLMOD_BYTES_PER_ENTRY
        cap = 4.0 * have / per
        entries = mem.factor_entries(b.m_indptr, b.m_indices, chol.perm, cap)
        need = mem.cholmod_bytes(entries)
        if need <= have:
            return chol
        t0 = b.re.terms[0]
        q2 = b.q - t0.size
        schur = mem.schur_bytes(q2)
        if fallback and mem.fits(schur, self.memory_limit):
            self.factorization = "schur"
            return DenseSchurCholesky(pattern, t0.size, t0.k, threads=threads)
        more = "more than " if entries > cap else ""
        raise mem.memory_error(
            f"the sparse Cholesky factor of the {b.q:,} random effects "
            f"({more}{entries:,} entries predicted by CHOLMOD's symbolic analysis; "
            f"the dense Schur path would need {mem.format_bytes(schur)})",
            need, self.memory_limit,
            "Fewer random effects (fewer levels of the crossed grouping factors, e.g. rare "
            "levels pooled) or a machine with more memory; memory_limit= replaces the "
            "detected budget if it is wrong", at_least=entries > cap)

    @property
    def nnz_factor(self) -> int:
        """Number of stored entries of the Cholesky factor ``L``."""
        return int(self._chol.nnz_L())

    # -- pieces ---------------------------------------------------------------------
    def _fill(self, tmpl: np.ndarray) -> None:
        b = self.blocks
        K.fill_lambda_a_lambda(
            self._mdata, tmpl, b.kdim, b.blk_rt, b.blk_ct, b.blk_diag, b.blk_vo, b.vals,
            b.blk_po, b.pos,
        )

    def _lambda_t(self, tmpl: np.ndarray, B: np.ndarray, transpose: bool) -> np.ndarray:
        b = self.blocks
        B2 = B if B.ndim == 2 else B[:, None]
        out = K.apply_lambda_t(tmpl, b.kdim, b.offsets, b.nlev, np.ascontiguousarray(B2),
                               transpose)
        return out if B.ndim == 2 else out[:, 0]

    def solve(self, theta: np.ndarray) -> Solution:
        """Evaluate at ``theta`` and keep the pieces (factor, beta, r^2...).

        The factor holds the last ``theta`` evaluated: asking again for that ``theta``
        (the optimiser's final point, the centre of a difference stencil, the fit
        object) returns the kept solution without refactoring.
        """
        theta = np.asarray(theta, dtype=np.float64)
        last = self._last
        if last is not None and last.theta.shape == theta.shape and \
                np.array_equal(last.theta, theta):
            return last
        b = self.blocks
        p = b.p
        tmpl = b.re.templates(theta)
        self._fill(tmpl)
        self._factorize(theta)
        self.n_evaluations += 1
        rhs = self._lambda_t(tmpl, self._ZtXY, True)[self.perm]
        sol = self._chol.solve_L(rhs)
        RZX = sol[:, :p]
        cu = sol[:, p]
        ldL2 = self._chol.logdet()
        S = b.XtX - RZX.T @ RZX
        Sy = self._Xty - RZX.T @ cu
        obj, _, ldRX2, r2, RX, dbeta = self._profile(ldL2, S, Sy, self._yty - float(cu @ cu))
        s = Solution(theta.copy(), obj, ldL2, ldRX2, r2, self._beta0 + dbeta, RX, RZX,
                     cu, tmpl, dbeta)
        self._last = s
        return s

    def _profile(self, ldL2: float, S: np.ndarray, Sy: np.ndarray, r2u: float):
        """The fixed effects profiled out: from ``log|L|^2``, ``S = R_X' R_X``,
        ``X'Wy - R_ZX' c_u`` and ``y'Wy - |c_u|^2``, the objective, ``log|R_X|^2``,
        ``r^2``, ``R_X`` and the coefficients of the shifted response."""
        b = self.blocks
        n, p = b.n, b.p
        if p > 0:
            # compiled: numpy's and LAPACK's call overheads cost more than the p x p
            # algebra of a small model
            ok, RX, dbeta, ldRX2, r2 = K.profile_fixed(S, Sy, r2u)
            if not ok:
                RX = _jittered_cholesky(S)
                z, _ = _trtrs(RX, Sy, lower=0, trans=1)
                dbeta, _ = _trtrs(RX, z, lower=0, trans=0)
                ldRX2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(RX)))))
                r2 = r2u - float(z @ z)
        else:
            RX = np.zeros((0, 0))
            dbeta = np.zeros(0)
            ldRX2 = 0.0
            r2 = r2u
        r2 = max(r2, np.finfo(float).tiny)
        if self.reml:
            nmp = n - p
            obj = ldL2 + ldRX2 + nmp * (1.0 + _LOG2PI + np.log(r2 / nmp))
        else:
            obj = ldL2 + n * (1.0 + _LOG2PI + np.log(r2 / n))
        return float(obj - b.sum_log_w), ldL2, ldRX2, r2, RX, dbeta

    def __call__(self, theta: np.ndarray) -> float:
        """The objective (REML criterion or ML deviance) at ``theta``."""
        theta = np.asarray(theta, dtype=np.float64)
        if self._fast is not None:
            out = self._fast_value(theta)
            if out is not None:
                return out[0]
        return self.solve(theta).objective

    def _fast_value(self, theta: np.ndarray):
        """The fast path's evaluation at ``theta`` (the last one kept), or None.

        None when its factorisation breaks down (extreme theta): the general path (and
        its fallback to CHOLMOD) then serves the objective for the rest of its life.
        """
        key = theta.tobytes()
        last = self._fast_last
        if last is not None and last[0] == key:
            return last[1]
        out = self._fast.value(self, theta)
        self.n_evaluations += 1
        if out is None:
            self._fast = None
            return None
        self._fast_last = (key, out)
        return out

    def u_hat(self, sol: Solution) -> np.ndarray:
        """Spherical conditional modes ``u`` (original order) at a solution."""
        v = sol.cu - (sol.RZX @ sol.dbeta if self.blocks.p else 0.0)
        w = self._chol.solve_Lt(v)
        u = np.empty_like(w)
        u[self.perm] = w
        return u

    def selected_inverse(self, theta: np.ndarray) -> SelectedInverse:
        """``M^{-1}`` on the (permuted) pattern of the factor at ``theta``.

        From the Takahashi recurrences on CHOLMOD's factor, or on the Schur path from
        ``S^{-1}`` and the first term's blocks (:meth:`DenseSchurCholesky.selected_inverse`).
        """
        self.solve(theta)
        if isinstance(self._chol, DenseSchurCholesky):
            indptr, indices, Z, dense = self._chol.selected_inverse()
            return SelectedInverse(indptr, indices, Z, self.pinv, dense, self._chol.q1)
        L = self._chol.L()
        indptr, indices = L.indptr.astype(np.int64), L.indices.astype(np.int64)
        Z = K.selected_inverse(indptr, indices, L.data)
        return SelectedInverse(indptr, indices, Z, self.pinv, np.zeros((0, 0)), self.blocks.q)

    def condvar_blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        """Diagonal blocks of ``M^{-1}`` per term (m x k x k), for conditional variances."""
        si = self.selected_inverse(theta)
        b = self.blocks
        return [
            K.minv_diag_blocks(*si, int(b.offsets[t]), int(b.kdim[t]), int(b.nlev[t]))
            for t in range(len(b.re.terms))
        ]

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """Analytic gradient of the objective with respect to theta."""
        theta = np.asarray(theta, dtype=np.float64)
        if self._fast is not None:
            out = self._fast_value(theta)
            if out is not None:
                self.n_gradients += 1
                return self._fast.gradient(self, out)
        d_ldL2, d_ldRX2, d_r2, sol = self._piece_gradients(theta, self.reml)
        b = self.blocks
        scale = (b.n - b.p) if self.reml else b.n
        return d_ldL2 + d_ldRX2 + scale * d_r2 / sol.r2   # d_ldRX2 is 0 for ML

    def piece_gradients(self, theta: np.ndarray) -> tuple[Solution, np.ndarray]:
        """The solution at ``theta`` and the analytic gradients of its pieces.

        Returns ``(solution, G)`` with ``G`` of shape ``(3, ntheta)``: the gradients of
        ``log|L|^2``, ``log|R_X|^2`` and ``r^2`` (the objective combines them as in
        :meth:`_profile`). Always on the general path (the fast paths give only the
        combination); used for derivatives at the optimum (:mod:`mixeff._derivs`).
        """
        d_ldL2, d_ldRX2, d_r2, sol = self._piece_gradients(
            np.asarray(theta, dtype=np.float64), True)
        return sol, np.vstack([d_ldL2, d_ldRX2, d_r2])

    def _piece_gradients(self, theta: np.ndarray, with_rx: bool):
        """Gradients of ``log|L|^2``, ``log|R_X|^2`` (zeros unless ``with_rx`` and p > 0)
        and ``r^2`` at ``theta``, and the solution there (docs/maths.md)."""
        sol = self.solve(theta)
        self.n_gradients += 1
        b = self.blocks
        p = b.p
        tmpl = sol.tmpl
        si = self.selected_inverse(theta)
        nd = si.dense.shape[0]
        key = (self.factorization, si.indptr.shape[0], si.indices.shape[0], nd)
        if self._trace_pos is None or self._trace_pos[0] != key:
            # where the trace reads M^-1: fixed by the pattern, found once
            self._trace_pos = (key, K.trace_positions(
                si.indptr, si.indices, si.pinv, si.q1, nd, b.kdim, b.offsets, b.blk_rt,
                b.blk_rl, b.blk_ct, b.blk_cl, b.blk_diag))
        G = K.trace_minv_lambda_a(
            si.Z, si.dense, self._trace_pos[1], tmpl, b.kdim, b.offsets,
            b.blk_rt, b.blk_rl, b.blk_ct, b.blk_cl, b.blk_diag, b.blk_vo, b.vals,
        )
        u = self.u_hat(sol)
        lam_u = self._lambda_t(tmpl, u, False)
        zres = self._Zty - b.A_full @ lam_u
        if p:
            zres -= b.ZtX @ sol.dbeta
        nt = len(b.re.terms)
        kmax = tmpl.shape[1]
        H = np.zeros((nt, kmax, kmax))
        with_rx = with_rx and p > 0
        if with_rx:
            Wp = self._chol.solve_Lt(sol.RZX)
            W = np.empty_like(Wp)
            W[self.perm] = Wp
            Kt = b.ZtX - b.A_full @ self._lambda_t(tmpl, W, False)
            Cinv, _ = _potri(sol.RX, lower=0)
            Cinv = np.triu(Cinv) + np.triu(Cinv, 1).T
            U = W @ Cinv
        dr2 = np.zeros((nt, kmax, kmax))
        for t, term in enumerate(b.re.terms):
            k, o, m = term.k, term.offset, term.nlevels
            ut = u[o : o + m * k].reshape(m, k)
            zt = zres[o : o + m * k].reshape(m, k)
            dr2[t, :k, :k] = -2.0 * (zt.T @ ut)          # [r, c]
            if with_rx:
                Ut = U[o : o + m * k].reshape(m, k, p)
                Kk = Kt[o : o + m * k].reshape(m, k, p)
                # sum over levels m and columns j of Ut[m, c, j] Kk[m, r, j] (a matrix
                # product: einsum's generic loop was 0.3 ms at 5,000 levels)
                H[t, :k, :k] = (Ut.transpose(1, 0, 2).reshape(k, -1)
                                @ Kk.transpose(1, 0, 2).reshape(k, -1).T)
        ti, ri, ci = b.re.theta_term, b.re.theta_row, b.re.theta_col
        return 2.0 * G[ti, ci, ri], -2.0 * H[ti, ci, ri], dr2[ti, ri, ci], sol


class _OneTerm:
    """Per-level blocks of a model with a single random-effects term.

    ``A`` (``m x k x k``): the diagonal blocks of ``Z'WZ`` (the only non-zero ones);
    ``BC`` (``m x k x (p+1)``): the rows of ``Z'W[X y]`` by level. With one term ``M``
    is block diagonal, so an evaluation is a loop over levels (:func:`~mixeff._kernels.
    single_term_sums`, :func:`~mixeff._kernels.single_term_gradient`): a few microseconds
    for a small model where the general path's sparse steps cost tens.
    """

    def __init__(self, blocks: Blocks, ZtXY: np.ndarray):
        term = blocks.re.terms[0]
        k, m = term.k, term.nlevels
        idx = np.arange(m * k).reshape(m, k)
        rows = np.broadcast_to(idx[:, :, None], (m, k, k)).ravel()
        cols = np.broadcast_to(idx[:, None, :], (m, k, k)).ravel()
        self.A = np.ascontiguousarray(
            np.asarray(blocks.A_full[rows, cols], dtype=np.float64).reshape(m, k, k))
        self.BC = np.ascontiguousarray(ZtXY.reshape(m, k, ZtXY.shape[1]))
        self.rows = np.ascontiguousarray(blocks.re.theta_row, dtype=np.int64)
        self.cols = np.ascontiguousarray(blocks.re.theta_col, dtype=np.int64)

    def value(self, obj: LmmObjective, theta: np.ndarray):
        """``(objective, r^2, dbeta, R_X, T)`` at ``theta``; None on a breakdown (a
        level's ``T'A_jT + I`` numerically not positive definite)."""
        T = obj.blocks.re.templates(theta)[0]
        ldL2, S, Sy, r2u = K.single_term_sums(T, self.A, self.BC, obj.blocks.XtX, obj._Xty,
                                              obj._yty)
        if not np.isfinite(ldL2):
            return None
        f, _, _, r2, RX, dbeta = obj._profile(ldL2, S, Sy, r2u)
        return f, r2, dbeta, RX, T

    def gradient(self, obj: LmmObjective, out) -> np.ndarray:
        """The analytic gradient from :meth:`value`'s ``out``, level by level."""
        _, r2, dbeta, RX, T = out
        b = obj.blocks
        scale = (b.n - b.p) if obj.reml else b.n
        return K.single_term_gradient(T, self.A, self.BC, dbeta, RX, obj.reml and b.p > 0,
                                      self.rows, self.cols, 2.0 * scale / r2)


SMALL_DENSE_Q = 64
"""Largest number of random effects for which the optimiser's evaluations of a model with
several terms use dense algebra (:class:`_SmallDense`). Measured (value and gradient, one
BLAS thread, simulated crossed designs): q = 30 dense 59 us against 100-125 us on the
sparse paths; q = 70 about even (145 us); q = 120 dense 385 us against 175 us."""


class _SmallDense:
    """Dense ``Z'WZ`` and the positions of each theta entry in ``Lambda``, for small q.

    For a few dozen random effects (Penicillin, Pastes, most classroom models) dense
    products and LAPACK on ``q x q`` matrices cost a few microseconds each, less than the
    sparse path's steps; the evaluation and its gradient are the general formulas.
    """

    def __init__(self, blocks: Blocks, ZtXY: np.ndarray):
        re = blocks.re
        self.A = np.ascontiguousarray(blocks.A_full.toarray())
        self.q = blocks.q
        self.diag = np.arange(self.q)
        rows, cols, which = [], [], []
        for i, (t, r, c) in enumerate(zip(re.theta_term, re.theta_row, re.theta_col,
                                          strict=True)):
            term = re.terms[t]
            base = term.offset + np.arange(term.nlevels) * term.k
            rows.append(base + r)
            cols.append(base + c)
            which.append(np.full(term.nlevels, i))
        self.rows = np.concatenate(rows)
        self.cols = np.concatenate(cols)
        self.which = np.concatenate(which)
        self.ntheta = len(re.theta_term)

    def value(self, obj: LmmObjective, theta: np.ndarray):
        """``(objective, r^2, dbeta, R_X, Lambda, A Lambda, L)`` at ``theta``; None on a
        breakdown (``M`` numerically not positive definite: extreme theta, more random
        effects than rows)."""
        b = obj.blocks
        Lam = np.zeros((self.q, self.q))
        Lam[self.rows, self.cols] = theta[self.which]
        AL = self.A @ Lam
        M = Lam.T @ AL
        M[self.diag, self.diag] += 1.0
        L, info = _potrf(M, lower=1, clean=1)
        if info != 0:
            return None
        R, _ = _trtrs(L, Lam.T @ obj._ZtXY, lower=1)
        p = b.p
        RZX, cu = R[:, :p], R[:, p]
        ldL2 = 2.0 * float(np.sum(np.log(L[self.diag, self.diag])))
        f, _, _, r2, RX, dbeta = obj._profile(ldL2, b.XtX - RZX.T @ RZX,
                                              obj._Xty - RZX.T @ cu,
                                              obj._yty - float(cu @ cu))
        return f, r2, dbeta, RX, Lam, AL, L

    def gradient(self, obj: LmmObjective, out) -> np.ndarray:
        """The analytic gradient from :meth:`value`'s ``out`` with dense ``M^{-1}``
        (formulas of ``docs/maths.md``; ``tr(B dLambda)`` sums ``B[c, r]`` over Lambda's
        entries of each theta)."""
        _, r2, dbeta, RX, Lam, AL, L = out
        b = obj.blocks
        n, p = b.n, b.p
        Minv, _ = _potri(L, lower=1)
        Minv = np.tril(Minv) + np.tril(Minv, -1).T
        B = Minv @ AL.T                            # M^-1 Lambda' A
        v = obj._Zty - b.ZtX @ dbeta if p else obj._Zty
        u = Minv @ (Lam.T @ v)
        ze = v - AL @ u                            # Z'W e at the conditional modes
        if obj.reml and p:
            WX = Minv @ (Lam.T @ b.ZtX)
            Cinv, _ = _potri(RX, lower=0)
            Cinv = np.triu(Cinv) + np.triu(Cinv, 1).T
            B = B - (WX @ Cinv) @ (b.ZtX.T - WX.T @ AL.T)
        nt = self.ntheta
        trace = np.bincount(self.which, weights=B[self.cols, self.rows], minlength=nt)
        dr2 = -2.0 * np.bincount(self.which, weights=ze[self.rows] * u[self.cols],
                                 minlength=nt)
        scale = (n - p) if obj.reml else n
        return 2.0 * trace + scale * dr2 / r2


def _jittered_cholesky(S: np.ndarray) -> np.ndarray:
    """Cholesky of a numerically semi-definite ``S`` with a tiny diagonal jitter."""
    d = np.abs(np.diag(S)).max() if S.size else 1.0
    eps = 1e-12 * max(d, 1.0)
    for _ in range(8):
        try:
            return sla.cholesky(S + eps * np.eye(S.shape[0]), lower=False)
        except np.linalg.LinAlgError:
            eps *= 100.0
    raise np.linalg.LinAlgError("fixed-effects cross-product is not positive definite")
