r"""Kenward-Roger adjusted covariance of the fixed effects and denominator df.

Reproduces pbkrtest 0.5.2 (``vcovAdj``, ``Lb_ddf``, ``KRmodcomp``) and the way lmerTest
3.1-3 uses it for ``summary(m, ddf = "Kenward-Roger")``, ``contest(m, L, ddf =
"Kenward-Roger")`` and ``anova(m, ddf = "Kenward-Roger")`` -- without forming any
``n x n`` matrix: everything reduces to the ``q x q``, ``q x p`` and ``p x p``
cross-products the fit already has.

What pbkrtest computes
----------------------
The marginal covariance of ``y`` is written as ``Sigma = sum_i gamma_i G_i`` with one
variance parameter per distinct entry ``(r, s)`` (``r >= s``) of each term's covariance
matrix ``sigma^2 T T'`` and one for the residual variance ``sigma^2``:

* random-effect entry of term ``t``: ``G_i = Z E_i Z'`` with ``E_i`` the ``q x q``
  matrix that is ``I_m (x) (e_r e_s' + e_s e_r')`` (``I_m (x) e_r e_r'`` when ``r = s``)
  on the term's block and zero elsewhere;
* residual: ``G_0 = I``.

With ``Phi = vcov(beta)`` (lme4's), pbkrtest forms

    P_i = -X' Sigma^-1 G_i Sigma^-1 X
    Q_ij = X' Sigma^-1 G_i Sigma^-1 G_j Sigma^-1 X
    K_ij = tr(Sigma^-1 G_i Sigma^-1 G_j)
    I_ij = K_ij - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)
    W = 2 I^-1  (MASS::ginv when the smallest |eigenvalue| of I is <= 1e-10)
    U = sum_ij W_ij (Q_ij - P_i Phi P_j)
    Phi_A = Phi + 2 Phi U Phi.

The df of ``L beta`` follow from ``Theta = L'(L Phi L')^-1 L`` and
``A1 = sum_ij W_ij tr(Theta Phi P_i Phi) tr(Theta Phi P_j Phi)``,
``A2 = sum_ij W_ij tr(Theta Phi P_i Phi Theta Phi P_j Phi)`` (see :func:`kr_adjust`).

Reduction to small blocks
-------------------------
Write ``Sigma = sigma^2 V`` with ``V = I + Z Lambda Lambda' Z'``. Let ``A = Z'Z``,
``B = Z'X``, ``C = X'X``, ``M = Lambda' A Lambda + I`` (``q x q``, the matrix the fit
factorises) and ``P = Lambda M^-1 Lambda'``. Woodbury gives ``V^-1 = I - Z P Z'``. Put
``N = I - P A``; then ``V^-1 Z = Z N`` and ``X_1 = V^-1 X = X - Z P B``, so

    S   = Z' V^-1 Z   = A N = A - A P A
    R   = Z' V^-1 X   = B - A P B
    SN  = Z' V^-2 Z   = (V^-1 Z)'(V^-1 Z) = N' A N = S N        (N'A = A N)
    T2  = Z' V^-2 X   = N' R = R - A P R
    X2  = X' V^-2 X   = X_1' X_1 = C - 2 B'P B + B'P A P B
    X3  = X' V^-3 X   = X_1' V^-1 X_1 = X2 - R' P R
    tr V^-2           = n - 2 tr(P A) + tr(P A P A).

With ``F_i = E_i R`` (``q x p``, non-zero only on the rows of the term of ``i``):

    P_i  = -sigma^-4 R' F_i            P_0  = -sigma^-4 X2
    Q_ij =  sigma^-6 F_i' S F_j        Q_i0 =  sigma^-6 F_i' T2 = Q_0i'
                                       Q_00 =  sigma^-6 X3
    K_ij =  sigma^-4 tr(E_i S E_j S)   K_i0 =  sigma^-4 tr(E_i S N)
                                       K_00 =  sigma^-4 tr V^-2.

``tr(E_i S E_j S)`` only needs the block ``S_tu`` of ``S`` for the terms ``t``, ``u`` of
``i`` and ``j``: with ``S_tu[l, a, m, c]`` (level ``l``, column ``a`` of ``t``; level
``m``, column ``c`` of ``u``) it is ``sum_{abcd} E_i[a,b] E_j[c,d] sum_{lm} S_tu[l,b,m,c]
S_tu[l,a,m,d]``; ``tr(E_i S N)`` only needs the diagonal level blocks of ``S N``.
The work is dense ``q x q`` algebra: ``M^-1`` applied to the ``q`` columns of
``Lambda' A`` (through the fit's sparse Cholesky factor of ``M``, or a dense one),
products with the sparse ``A`` and the level-block sums above; ``O(q^3)`` time at worst
and a few ``q x q`` arrays of memory (InstEval, ``q = 4128``: about 3 s and 0.9 GB).
Models with more than :data:`DENSE_Q_LIMIT` random effects are refused.

Prior weights
-------------
pbkrtest builds ``Sigma`` from the unweighted ``Z`` and ``G_0 = I`` whatever the prior
weights, while ``Phi`` is the weighted fit's ``vcov``; lmerTest inherits this. That is
the default here (``weighted=False``: unweighted cross-products). With ``weighted=True``
the model's own ``Sigma = sigma^2 (Z Lambda Lambda' Z' + W^-1)`` with ``G_0 = W^-1`` is
used: scaling ``Z`` and ``X`` by ``W^(1/2)`` turns it into the case above with the
weighted cross-products ``Z'WZ``, ``Z'WX``, ``X'WX`` (and ``Sigma^-1 = (W - W Z Lambda
M^-1 Lambda' Z' W) / sigma^2``). Without weights the two agree.

How lmerTest uses it
--------------------
* t tests (``summary``, ``contest(joint = FALSE)``; lmerTest's ``contest1D``): estimate
  ``l'beta``, standard error ``sqrt(l' Phi_A l)``, df ``Lb_ddf(l, Phi, Phi_A)``, ``t`` the
  ratio, two-sided p value from ``t_df``.
* F tests (``contest(joint = TRUE)``, ``anova``; lmerTest's ``contestMD`` through
  ``KRmodcomp``): ``L`` is reduced to full row rank (a basis of its row space), ``q`` its
  rank, ``F_U = beta'L'(L Phi_A L')^-1 L beta / q`` (with the *adjusted* covariance),
  ``F = F.scaling * F_U``, ``Mean Sq = F_U sigma^2``, ``Sum Sq = q Mean Sq``, ``DenDF`` the
  KR df and the p value from ``F(q, DenDF)``.

Kenward-Roger needs a REML fit: as lmerTest, ML fits are refused (pbkrtest's
``vcovAdj`` would silently refit by REML; use ``fit.refit(reml=True)`` for that).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy import stats

from ._errors import MixeffError

if TYPE_CHECKING:  # pragma: no cover
    from ._blocks import Blocks
    from ._fit import LmerFit
    from ._lambda import ReStructure

__all__ = [
    "KRInfo",
    "KenwardRogerError",
    "kr_adjust",
    "kr_coef_table",
    "kr_contest",
    "kr_ddf",
    "kr_info",
    "kr_info_at",
    "kr_vcov",
]

#: Largest number of random effects handled by the dense ``q x q`` path.
DENSE_Q_LIMIT = 5000

_T_COLUMNS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
_F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


class KenwardRogerError(MixeffError, ValueError):
    """Kenward-Roger inference is not available for this fit (ML fit, q too large)."""


@dataclass
class KRInfo:
    """Everything the Kenward-Roger tests of one fit share (pbkrtest's ``vcovAdj``).

    Attributes
    ----------
    vcov
        ``Phi``, the unadjusted covariance of the fixed effects (p x p).
    vcov_adj
        ``Phi_A``, the Kenward-Roger adjusted covariance (p x p).
    P
        ``P_i = -X' Sigma^-1 G_i Sigma^-1 X`` per variance parameter (g x p x p).
    Q
        ``Q_ij = X' Sigma^-1 G_i Sigma^-1 G_j Sigma^-1 X`` (g x g x p x p).
    K
        ``K_ij = tr(Sigma^-1 G_i Sigma^-1 G_j)`` (g x g).
    information
        pbkrtest's ``IE2`` (g x g); ``W = 2 IE2^-1``.
    W
        ``W`` (g x g), the asymptotic covariance of the variance parameters.
    condition
        Smallest absolute eigenvalue of ``information`` (pbkrtest's ``condi``).
    names
        Names of the variance parameters: one per covariance entry of each term
        (lme4's theta names), then ``"Residual"``.
    weighted
        Whether the prior weights entered ``Sigma`` (see the module docstring).
    """

    vcov: np.ndarray
    vcov_adj: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    information: np.ndarray
    W: np.ndarray
    condition: float
    names: list[str]
    weighted: bool


# --------------------------------------------------------------------------------------
# the small-block algebra
# --------------------------------------------------------------------------------------


def _lambda_matrix(structure: ReStructure, theta: np.ndarray) -> sp.csr_matrix:
    """``Lambda`` as a sparse ``q x q`` block-diagonal matrix."""
    tmpl = structure.templates(np.asarray(theta, dtype=float))
    parts = [sp.kron(sp.identity(t.nlevels, format="csr"), tmpl[ti, : t.k, : t.k],
                     format="csr")
             for ti, t in enumerate(structure.terms)]
    if not parts:
        return sp.csr_matrix((0, 0))
    return sp.block_diag(parts, format="csr")


def _selectors(k: int) -> np.ndarray:
    """``E`` of each covariance entry of a ``k``-column term, theta order (n x k x k)."""
    out = []
    for c in range(k):
        for r in range(c, k):
            E = np.zeros((k, k))
            E[r, c] = 1.0
            E[c, r] = 1.0
            out.append(E)
    return np.asarray(out).reshape(-1, k, k)


def _ginv(M: np.ndarray) -> np.ndarray:
    """Moore-Penrose inverse with MASS::ginv's tolerance (sqrt(eps) relative)."""
    U, d, Vt = np.linalg.svd(M)
    keep = d > max(np.sqrt(np.finfo(float).eps) * (d[0] if d.size else 0.0), 0.0)
    return (Vt[keep].T / d[keep]) @ U[:, keep].T


def kr_info_at(A: sp.spmatrix, B: np.ndarray, C: np.ndarray, n: int,
               structure: ReStructure, theta: np.ndarray, sigma: float,
               vcov: np.ndarray, weighted: bool = False,
               solve_m: Callable[[np.ndarray], np.ndarray] | None = None) -> KRInfo:
    """pbkrtest's ``vcovAdj`` from cross-products, at given variance parameters.

    Parameters
    ----------
    A
        ``Z'Z`` (or ``Z'WZ``), symmetric ``q x q`` (sparse or dense).
    B
        ``Z'X`` (or ``Z'WX``), ``q x p``.
    C
        ``X'X`` (or ``X'WX``), ``p x p``.
    n
        Number of observations.
    structure
        Layout of the random-effects terms.
    theta, sigma
        Relative covariance parameters and residual standard deviation.
    vcov
        ``Phi``, the covariance of the fixed effects used by pbkrtest (lme4's ``vcov``).
    weighted
        Recorded in the result only (the caller chose the cross-products).
    solve_m
        ``b -> M^-1 b`` for ``M = Lambda' A Lambda + I`` at ``theta`` and a dense ``q x r``
        ``b`` (e.g. the fit's sparse Cholesky factor); by default ``M`` is factorised
        densely.

    Returns
    -------
    KRInfo
    """
    B = np.asarray(B, dtype=float)
    C = np.asarray(C, dtype=float)
    Phi = np.asarray(vcov, dtype=float)
    q, p = B.shape
    terms = structure.terms
    s2 = float(sigma) ** 2
    A = sp.csr_matrix(A)
    names = list(structure.theta_names()) + ["Residual"]

    Lam = _lambda_matrix(structure, theta)
    if solve_m is None:
        M = (Lam.T @ A @ Lam).toarray()
        M[np.diag_indices(q)] += 1.0
        cho = sla.cho_factor(M, lower=True)
        del M

        def solve_m(b: np.ndarray) -> np.ndarray:
            return sla.cho_solve(cho, b)

    def p_times(b: np.ndarray) -> np.ndarray:                # P b = Lambda M^-1 Lambda' b
        if b.shape[1] == 0:
            return np.zeros_like(b)
        return Lam @ solve_m(np.ascontiguousarray(Lam.T @ b))

    PA = Lam @ solve_m((Lam.T @ A).toarray())                # P A
    trV2 = n - 2.0 * np.trace(PA) + float(np.sum(PA * PA.T))  # tr V^-2
    N = PA                                                   # N = I - P A, in place
    N *= -1.0
    N[np.diag_indices(q)] += 1.0
    del PA
    S = A @ N                                                # Z'V^-1 Z
    S = 0.5 * (S + S.T)
    PB = p_times(B)
    R = B - A @ PB                                           # Z'V^-1 X
    PR = p_times(R)
    T2 = R - A @ PR                                          # Z'V^-2 X
    X2 = C - 2.0 * (B.T @ PB) + PB.T @ (A @ PB)              # X'V^-2 X
    X2 = 0.5 * (X2 + X2.T)
    X3 = X2 - R.T @ PR                                       # X'V^-3 X
    X3 = 0.5 * (X3 + X3.T)

    # Per random-effect variance parameter: F_i = E_i R, its term's slice and selector.
    sel = [_selectors(t.k) for t in terms]
    F_all = np.zeros((q, 0))
    Fs = []
    Pr = []
    Kr0 = []
    for t, E in zip(terms, sel, strict=True):
        rows = slice(t.offset, t.offset + t.size)
        Rt = R[rows].reshape(t.nlevels, t.k, p)
        Ft = np.einsum("iab,lbx->ilax", E, Rt)              # (n_par, m, k, p)
        Pr.extend(-np.einsum("lax,ilay->ixy", Rt, Ft) / s2**2)
        # tr(E_i S N): level-summed diagonal blocks of S N
        St = S[rows].reshape(t.nlevels, t.k, q)
        Nt = N[:, rows].reshape(q, t.nlevels, t.k)
        D2 = np.einsum("lax,xlb->ab", St, Nt)
        Kr0.extend(np.einsum("iab,ba->i", E, D2) / s2**2)
        for Fi in Ft:
            full = np.zeros((q, p))
            full[rows] = Fi.reshape(t.size, p)
            Fs.append(full)
    nr = len(Fs)
    g = nr + 1
    if nr:
        F_all = np.concatenate(Fs, axis=1)                   # q x (nr p)

    Pm = np.empty((g, p, p))
    Qm = np.empty((g, g, p, p))
    Km = np.empty((g, g))
    if nr:
        Pm[:nr] = np.asarray(Pr)
        SF = S @ F_all
        Qrr = (F_all.T @ SF).reshape(nr, p, nr, p).transpose(0, 2, 1, 3) / s2**3
        Qm[:nr, :nr] = Qrr
        Qr0 = (F_all.T @ T2).reshape(nr, p, p) / s2**3
        Qm[:nr, nr] = Qr0
        Qm[nr, :nr] = Qr0.transpose(0, 2, 1)
        # K_ij between random-effect parameters, term pair by term pair
        i0 = 0
        for t, Et in zip(terms, sel, strict=True):
            rt = slice(t.offset, t.offset + t.size)
            j0 = 0
            for u, Eu in zip(terms, sel, strict=True):
                ru = slice(u.offset, u.offset + u.size)
                S4 = S[rt, ru].reshape(t.nlevels, t.k, u.nlevels, u.k)
                base = np.einsum("lbmc,lamd->abcd", S4, S4)
                Km[i0 : i0 + len(Et), j0 : j0 + len(Eu)] = np.einsum(
                    "iab,abcd,jcd->ij", Et, base, Eu) / s2**2
                j0 += len(Eu)
            i0 += len(Et)
        Km[:nr, nr] = Kr0
        Km[nr, :nr] = Kr0
    Pm[nr] = -X2 / s2**2
    Qm[nr, nr] = X3 / s2**3
    Km[nr, nr] = trV2 / s2**2
    Km = 0.5 * (Km + Km.T)

    # pbkrtest's information matrix, W and the adjustment
    PhiP = np.einsum("ab,ibc->iac", Phi, Pm)                 # Phi P_i
    IE2 = (Km - 2.0 * np.einsum("ab,ijab->ij", Phi, Qm)
           + np.einsum("iab,jba->ij", PhiP, PhiP))
    IE2 = 0.5 * (IE2 + IE2.T)
    condi = float(np.min(np.abs(np.linalg.eigvalsh(IE2))))
    W = 2.0 * (np.linalg.inv(IE2) if condi > 1e-10 else _ginv(IE2))
    W = 0.5 * (W + W.T)
    PPhiP = np.einsum("iab,bc,jcd->ijad", Pm, Phi, Pm)       # P_i Phi P_j
    U = np.einsum("ij,ijab->ab", W, Qm - PPhiP)
    U = 0.5 * (U + U.T)
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    PhiA = 0.5 * (PhiA + PhiA.T)
    return KRInfo(vcov=Phi, vcov_adj=PhiA, P=Pm, Q=Qm, K=Km, information=IE2, W=W,
                  condition=condi, names=names, weighted=bool(weighted))


# --------------------------------------------------------------------------------------
# fits
# --------------------------------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _check_fit(fit: LmerFit) -> None:
    """Refuse ML fits (as lmerTest) and models too large for the dense path."""
    if not fit.reml:
        raise KenwardRogerError(
            "Kenward-Roger's method is only available for REML model fits (as in"
            " lmerTest); refit with fit.refit(reml=True)")
    q = fit.structure.q
    if q > DENSE_Q_LIMIT:
        raise KenwardRogerError(
            f"Kenward-Roger is implemented with dense q x q algebra; this model has"
            f" q = {q} random effects (limit {DENSE_Q_LIMIT})")
    from . import _memory as mem

    limit = getattr(getattr(fit, "_obj", None), "memory_limit", None)
    need = mem.KR_DENSE_COPIES * 8.0 * q * q
    if not mem.fits(need, limit):
        err = mem.memory_error(
            f"Kenward-Roger's dense algebra ({mem.KR_DENSE_COPIES} matrices of {q:,} x {q:,} "
            "doubles)", need, limit, "Satterthwaite's method (ddf='Satterthwaite') needs no "
            "q x q matrices")
        raise KenwardRogerError(str(err))


def _cross_products(fit: LmerFit, weighted: bool) -> Blocks:
    """The fit's blocks, or unweighted ones (pbkrtest's Sigma) for a weighted fit."""
    d = fit.design
    if weighted or d.weights is None:
        return fit.blocks
    from ._blocks import build_blocks

    terms = [d.terms[i] for i in fit.term_order]
    return build_blocks(fit.structure, [t.codes for t in terms], [t.matrix for t in terms],
                        d.X, d.y, None)


def _fit_solver(fit: LmerFit) -> Callable[[np.ndarray], np.ndarray] | None:
    """``b -> M^-1 b`` through the fit's own sparse factor, refactored at its theta.

    The factor is checked on a probe vector (``M`` applied through the sparse blocks);
    None (dense factorisation) when it is unavailable or fails the check.
    """
    obj = fit._obj
    chol = getattr(obj, "_chol", None)
    if chol is None or not hasattr(chol, "solve"):
        return None
    obj.solve(fit.theta)
    q = fit.structure.q

    def solve_m(b: np.ndarray) -> np.ndarray:
        return np.asarray(chol.solve(b), dtype=float).reshape(b.shape)

    Lam = _lambda_matrix(fit.structure, fit.theta)
    probe = np.cos(np.arange(q, dtype=float) + 0.5)
    y = solve_m(probe)
    resid = Lam.T @ (fit.blocks.A_full @ (Lam @ y)) + y - probe
    if not np.linalg.norm(resid) <= 1e-8 * np.linalg.norm(probe):
        return None
    return solve_m


def kr_info(fit: LmerFit, *, weighted: bool = False) -> KRInfo:
    """Kenward-Roger quantities of a REML fit (cached on the fit).

    Parameters
    ----------
    fit
        A REML :class:`~mixeff.LmerFit`.
    weighted
        Use the prior weights in ``Sigma`` (``False``, the default, ignores them as
        pbkrtest does; the two agree for unweighted fits).

    Returns
    -------
    KRInfo

    Raises
    ------
    KenwardRogerError
        For ML fits and models with more than :data:`DENSE_Q_LIMIT` random effects.
    """
    _check_fit(fit)
    weighted = bool(weighted) and fit.design.weights is not None
    key = (weighted, np.asarray(fit.theta, dtype=float).tobytes(), float(fit.sigma))
    store = _CACHE.setdefault(fit, {})
    if key not in store:
        b = _cross_products(fit, weighted)
        solve_m = _fit_solver(fit) if b is fit.blocks else None
        store[key] = kr_info_at(b.A_full, b.ZtX, b.XtX, b.n, fit.structure, fit.theta,
                                fit.sigma, fit.vcov().to_numpy(), weighted=weighted,
                                solve_m=solve_m)
    return store[key]


def kr_vcov(fit: LmerFit, *, weighted: bool = False) -> np.ndarray:
    """Kenward-Roger adjusted covariance matrix of the fixed effects.

    pbkrtest's ``vcovAdj(m)`` for a REML fit.

    Parameters
    ----------
    fit
        A REML :class:`~mixeff.LmerFit`.
    weighted
        See :func:`kr_info`.

    Returns
    -------
    numpy.ndarray
        ``p x p``, in the order of the fixed effects.
    """
    if fit.blocks.p == 0:
        _check_fit(fit)
        return np.zeros((0, 0))
    return kr_info(fit, weighted=weighted).vcov_adj.copy()


# --------------------------------------------------------------------------------------
# df and tests
# --------------------------------------------------------------------------------------


def _kr_stats(info: KRInfo, L: np.ndarray, q: int) -> dict:
    """pbkrtest's df computation for a full-row-rank ``L`` with ``q`` as given."""
    Phi = info.vcov
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    ThetaPhi = Theta @ Phi
    u = np.einsum("ab,ibc,cd->iad", ThetaPhi, info.P, Phi)  # Theta Phi P_i Phi
    tr = np.einsum("iaa->i", u)
    A1 = float(tr @ info.W @ tr)
    A2 = float(np.einsum("ij,iab,jba->", info.W, u, u))
    with np.errstate(all="ignore"):
        A1 = np.float64(A1)
        A2 = np.float64(A2)
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3.0 * q + 2.0 * (1.0 - g)
        c1 = g / den
        c2 = (q - g) / den
        c3 = (q + 2 - g) / den
        V0 = 1.0 + c1 * B
        V1 = 1.0 - c2 * B
        V2 = 1.0 - c3 * B
        if abs(V0) < 1e-10:
            V0 = np.float64(0.0)
        num = 1.0 - A2 / q
        ratio = np.float64(1.0) if (abs(num) < 1e-14 and abs(V1) < 1e-14) else num / V1
        rho = ratio**2 * V0 / V2 / q
        ddf = 4.0 + (q + 2) / (q * rho - 1.0)
        scaling = 1.0 if abs(ddf - 2.0) < 0.01 else ddf * (1.0 - A2 / q) / (ddf - 2.0)
    return {"A1": float(A1), "A2": float(A2), "ddf": float(ddf),
            "F.scaling": float(scaling)}


def kr_ddf(info: KRInfo, L: np.ndarray) -> float:
    """Kenward-Roger denominator df of ``L beta`` (pbkrtest's ``Lb_ddf``).

    Parameters
    ----------
    info
        From :func:`kr_info`.
    L
        One contrast (vector) or a full-row-rank matrix; the number of rows is used as
        the numerator df, as ``Lb_ddf`` does.

    Returns
    -------
    float
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return _kr_stats(info, L, L.shape[0])["ddf"]


def _row_basis(L: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank of ``L`` (Matrix::rankMatrix) and a full-row-rank ``L`` with its row space."""
    if L.size == 0:
        return L, 0
    U, d, Vt = np.linalg.svd(L, full_matrices=False)
    if d[0] <= 0:
        return L[:0], 0
    rank = int(np.sum(d >= max(L.shape) * np.finfo(float).eps * d[0]))
    if rank < L.shape[0]:
        return Vt[:rank], rank
    return L, rank


def kr_adjust(info: KRInfo, L: np.ndarray, beta: np.ndarray) -> dict:
    """Kenward-Roger F test of ``L beta = 0`` (pbkrtest's ``KRmodcomp`` with a matrix).

    Parameters
    ----------
    info
        From :func:`kr_info`.
    L
        Contrast matrix (rows need not be independent: a basis of the row space is
        used, as pbkrtest's ``force_full_rank``).
    beta
        Fixed-effect estimates.

    Returns
    -------
    dict
        ``ndf`` (rank of ``L``), ``ddf``, ``F.scaling``, ``FstatU`` (the Wald statistic
        with the adjusted covariance over ``ndf``), ``Fstat`` (scaled), ``p.value``,
        ``A1``, ``A2``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    Lr, q = _row_basis(L)
    if q == 0:
        return {"ndf": 0, "ddf": np.nan, "F.scaling": np.nan, "FstatU": np.nan,
                "Fstat": np.nan, "p.value": np.nan, "A1": np.nan, "A2": np.nan}
    out = _kr_stats(info, Lr, q)
    Lb = Lr @ np.asarray(beta, dtype=float)
    wald = float(Lb @ np.linalg.solve(Lr @ info.vcov_adj @ Lr.T, Lb))
    FU = wald / q
    F = out["F.scaling"] * FU
    out.update(ndf=q, FstatU=FU, Fstat=F, **{"p.value": _f_sf(F, q, out["ddf"])})
    return out


def _f_sf(F: float, d1: int, d2: float) -> float:
    """Upper tail of ``F(d1, d2)`` (R's ``pf(F, d1, d2, lower.tail = FALSE)``)."""
    if not (np.isfinite(F) and d2 > 0):
        return np.nan
    if np.isinf(d2):
        return float(stats.chi2.sf(F * d1, d1))
    return float(stats.f.sf(F, d1, d2))


def _t_p(t: float, df: float) -> float:
    """Two-sided p value of ``t`` on ``df`` degrees of freedom."""
    if not (np.isfinite(t) and df > 0):
        return np.nan
    if np.isinf(df):
        return float(2.0 * stats.norm.sf(abs(t)))
    return float(2.0 * stats.t.sf(abs(t), df))


def _t_row(info: KRInfo, beta: np.ndarray, l: np.ndarray) -> dict:
    """lmerTest's ``contest1D`` with Kenward-Roger: one row of the t table."""
    est = float(l @ beta)
    var = float(l @ info.vcov_adj @ l)
    if not np.any(l) or not float(l @ info.vcov @ l) > 0:
        return {"Estimate": est, "Std. Error": np.sqrt(max(var, 0.0)), "df": np.nan,
                "t value": np.nan, "Pr(>|t|)": np.nan}
    se = float(np.sqrt(var))
    df = kr_ddf(info, l)
    t = est / se if se > 0 else np.nan
    return {"Estimate": est, "Std. Error": se, "df": df, "t value": t,
            "Pr(>|t|)": _t_p(t, df)}


def _contrasts(fit: LmerFit, L) -> np.ndarray:
    """``L`` as a 2-D float array with one column per fixed effect."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    p = fit.blocks.p
    if L.ndim != 2 or L.shape[1] != p:
        raise ValueError(f"L has {L.shape[-1]} columns; the model has {p} fixed effects")
    return L


def kr_coef_table(fit: LmerFit, *, weighted: bool = False) -> pd.DataFrame:
    """Fixed-effects t tests with Kenward-Roger df and adjusted standard errors.

    lmerTest's ``summary(m, ddf = "Kenward-Roger")$coefficients``.

    Parameters
    ----------
    fit
        A REML :class:`~mixeff.LmerFit`.
    weighted
        See :func:`kr_info`.

    Returns
    -------
    pandas.DataFrame
        Indexed by fixed-effect name; columns ``Estimate``, ``Std. Error``, ``df``,
        ``t value``, ``Pr(>|t|)``.
    """
    names = list(fit.design.xnames)
    if not names:
        _check_fit(fit)
        return pd.DataFrame(columns=_T_COLUMNS, index=pd.Index([], dtype=object),
                            dtype=float)
    info = kr_info(fit, weighted=weighted)
    beta = np.asarray(fit._sol.beta, dtype=float)
    rows = [_t_row(info, beta, e) for e in np.eye(len(names))]
    return pd.DataFrame(rows, index=names, columns=_T_COLUMNS)


def kr_contest(fit: LmerFit, L, joint: bool = True, *, weighted: bool = False
               ) -> pd.DataFrame:
    """Kenward-Roger tests of ``L beta = 0`` as lmerTest's ``contest``.

    Parameters
    ----------
    fit
        A REML :class:`~mixeff.LmerFit`.
    L
        One contrast (vector) or a matrix with one row per contrast and one column per
        fixed effect.
    joint
        One F test of all rows (lmerTest's ``contestMD`` through pbkrtest's
        ``KRmodcomp``) or one t test per row (``contest1D``).
    weighted
        See :func:`kr_info`.

    Returns
    -------
    pandas.DataFrame
        ``joint=True``: one row with ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
        ``F value``, ``Pr(>F)``, where ``F value`` is pbkrtest's scaled F statistic and
        ``Mean Sq`` the unscaled one times ``sigma^2``. ``joint=False``: one row per
        contrast with ``Estimate``, ``Std. Error``, ``df``, ``t value``, ``Pr(>|t|)``.
    """
    L = _contrasts(fit, L)
    if L.shape[1] == 0 or L.shape[0] == 0:
        _check_fit(fit)
        if joint:
            return pd.DataFrame([{"Sum Sq": np.nan, "Mean Sq": np.nan, "NumDF": 0,
                                  "DenDF": np.nan, "F value": np.nan, "Pr(>F)": np.nan}],
                                columns=_F_COLUMNS)
        return pd.DataFrame(columns=_T_COLUMNS, dtype=float)
    info = kr_info(fit, weighted=weighted)
    beta = np.asarray(fit._sol.beta, dtype=float)
    if not joint:
        return pd.DataFrame([_t_row(info, beta, l) for l in L], columns=_T_COLUMNS)
    st = kr_adjust(info, L, beta)
    ms = st["FstatU"] * fit.sigma**2
    row = {"Sum Sq": ms * st["ndf"], "Mean Sq": ms, "NumDF": int(st["ndf"]),
           "DenDF": st["ddf"], "F value": st["Fstat"], "Pr(>F)": st["p.value"]}
    return pd.DataFrame([row], columns=_F_COLUMNS)
