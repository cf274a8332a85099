"""The CHOLMOD adapter: correctness against dense algebra, refactor-in-place, both APIs.

The real backend (whatever scikit-sparse is installed; 0.4.x here) is checked against
numpy on small random SPD matrices. The scikit-sparse 0.5 code path cannot be run for
real without SuiteSparse 7, so it is driven through ``FakeCholmod05``, a small dense
imitation of the 0.5 ``CholeskyFactor`` API (as read from scikit-sparse's
``src/sksparse/cholmod.pyx``): same constructor keywords, ``factorize`` in place that
ends a supernodal factor as a simplicial one, read-only ``perm``/``factor`` views,
``copy``, ``solve`` (A x = b only), ``CholmodNotPositiveDefiniteError``.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from mixeff import _cholmod as C
from mixeff._cholmod import (
    NotPositiveDefinite,
    SparseCholesky,
    backend_version,
    sparse_cholesky_available,
)

HAVE_BACKEND = sparse_cholesky_available()
needs_backend = pytest.mark.skipif(not HAVE_BACKEND, reason="scikit-sparse not available")


def _api() -> str | None:
    try:
        return C._load()[1]
    except ImportError:
        return None


needs_04 = pytest.mark.skipif(_api() != "0.4", reason="needs scikit-sparse 0.4.x")


def random_spd(n: int = 80, density: float = 0.04, seed: int = 0) -> sp.csc_matrix:
    """``B'B + I`` with a seeded sparse random ``B``: full symmetric CSC, SPD."""
    rng = np.random.default_rng(seed)
    B = sp.random(n, n, density=density, random_state=rng, format="csc")
    A = (B.T @ B + sp.identity(n)).tocsc()
    A.sort_indices()
    return sp.csc_matrix(A)


def in_triangle(A: sp.csc_matrix, triangle: str) -> sp.csc_matrix:
    if triangle == "lower":
        return sp.csc_matrix(sp.tril(A, format="csc"))
    if triangle == "upper":
        return sp.csc_matrix(sp.triu(A, format="csc"))
    return A


def new_values(A: sp.csc_matrix, seed: int) -> sp.csc_matrix:
    """Same pattern, different SPD values: ``D A D + c I`` restricted to A's pattern."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 2.0, A.shape[0])
    A2 = A.copy()
    coo = A2.tocoo()
    A2.data = (A.data * d[coo.row] * d[coo.col]).astype(float)  # same order: CSC->COO
    A2 = A2 + sp.diags(np.full(A.shape[0], rng.uniform(0.1, 3.0)))
    A2 = sp.csc_matrix(A2)
    A2.sort_indices()
    assert np.array_equal(A2.indptr, A.indptr) and np.array_equal(A2.indices, A.indices)
    return A2


def check_factor(ch: SparseCholesky, A: sp.csc_matrix, rng: np.random.Generator) -> None:
    """Every result of ``ch`` against dense numpy for the full symmetric ``A``."""
    Ad = A.toarray()
    n = Ad.shape[0]
    perm = ch.perm
    assert sorted(perm.tolist()) == list(range(n))
    assert ch.logdet() == pytest.approx(np.linalg.slogdet(Ad)[1], rel=1e-10, abs=1e-9)
    L = ch.L()
    assert isinstance(L, sp.csc_matrix) and L.has_sorted_indices
    Ld = L.toarray()
    assert np.allclose(Ld, np.tril(Ld))
    assert np.all(np.diag(Ld) > 0)  # the LL' factor, not LDL's unit-diagonal L
    assert np.allclose(Ld @ Ld.T, Ad[np.ix_(perm, perm)], atol=1e-10 * abs(Ad).max())
    assert ch.nnz_L() == L.nnz
    b = rng.standard_normal(n)
    B = rng.standard_normal((n, 3))
    for rhs in (b, B):
        x = ch.solve(rhs)
        assert x.shape == rhs.shape
        assert np.allclose(x, np.linalg.solve(Ad, rhs), rtol=1e-9, atol=1e-10)
        y = ch.solve_L(rhs[perm])
        assert y.shape == rhs.shape
        assert np.allclose(y, sla.solve_triangular(Ld, rhs[perm], lower=True), atol=1e-10)
        z = ch.solve_Lt(y)
        assert np.allclose(z, sla.solve_triangular(Ld.T, y, lower=False), atol=1e-10)
        back = np.empty_like(z)
        back[perm] = z  # A^{-1} b = P' L^{-T} L^{-1} P b
        assert np.allclose(back, x, atol=1e-9)


# ---------------------------------------------------------------------------------
# Real backend
# ---------------------------------------------------------------------------------


@needs_backend
def test_backend_reported():
    text = backend_version()
    assert text.startswith("scikit-sparse ")
    assert "API " + _api() in text


@needs_backend
@pytest.mark.parametrize("triangle", ["full", "lower", "upper"])
@pytest.mark.parametrize("mode", ["supernodal", "simplicial", "auto"])
def test_factor_matches_dense(mode, triangle):
    A = random_spd(90, seed=1)
    ch = SparseCholesky(in_triangle(A, triangle), supernodal=mode)
    assert ch.triangle == triangle
    ch.factorize(in_triangle(A, triangle))
    check_factor(ch, A, np.random.default_rng(2))


@needs_backend
@pytest.mark.parametrize("triangle", ["full", "lower", "upper"])
@pytest.mark.parametrize("mode", ["supernodal", "simplicial"])
def test_refactor_in_place_changes_results(mode, triangle):
    """The stale-factor trap: a refactor must change logdet and solves, repeatedly."""
    A1 = random_spd(70, seed=3)
    ch = SparseCholesky(in_triangle(A1, triangle), supernodal=mode)
    ch.factorize_values(in_triangle(A1, triangle).data)
    ld1 = ch.logdet()
    b = np.random.default_rng(4).standard_normal(A1.shape[0])
    x1 = ch.solve(b)
    seen = [ld1]
    for seed in (10, 11, 12, 13):
        Ak = new_values(A1, seed)
        ch.factorize_values(in_triangle(Ak, triangle).data)
        ld = ch.logdet()
        assert ld == pytest.approx(np.linalg.slogdet(Ak.toarray())[1], rel=1e-10)
        assert all(abs(ld - s) > 1e-6 for s in seen)
        assert not np.allclose(ch.solve(b), x1)
        check_factor(ch, Ak, np.random.default_rng(seed))
        seen.append(ld)
    ch.factorize_values(in_triangle(A1, triangle).data)  # back to the first values
    assert ch.logdet() == pytest.approx(ld1, rel=1e-12)
    assert np.allclose(ch.solve(b), x1, rtol=1e-10)
    assert ch.n_factorizations == 6


@needs_04
def test_raw_04_cholesky_returns_new_factor():
    """Why the adapter only calls cholesky_inplace: 0.4's cholesky() leaves self stale."""
    from sksparse import cholmod

    A1 = random_spd(40, seed=5)
    A2 = new_values(A1, 6)
    f = cholmod.analyze(A1, mode="simplicial")
    f.cholesky_inplace(A1)
    ld1 = f.logdet()
    g = f.cholesky(A2)
    assert g is not f
    assert f.logdet() == pytest.approx(ld1)  # unchanged: the stale result
    assert g.logdet() == pytest.approx(np.linalg.slogdet(A2.toarray())[1])


class _Spy:
    """Forward everything to ``obj``; log method calls (name, kwargs)."""

    def __init__(self, obj, log):
        self._obj = obj
        self._log = log

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def wrapped(*args, **kwargs):
            self._log.append((name, kwargs))
            out = attr(*args, **kwargs)
            return _Spy(out, self._log) if name in ("analyze", "copy") else out

        return wrapped


@needs_04
@pytest.mark.parametrize("mode", ["supernodal", "simplicial"])
def test_04_adapter_calls_only_inplace_and_ll_solves(monkeypatch, mode):
    from sksparse import cholmod

    log: list = []
    monkeypatch.setattr(C, "_import_cholmod", lambda: _Spy(cholmod, log))
    A = random_spd(50, seed=7)
    ch = SparseCholesky(A, supernodal=mode)
    assert ch.nnz_L() > 0  # before any factorisation: works on a copy
    for seed in (1, 2):
        ch.factorize(new_values(A, seed))
        ch.logdet()
        ch.solve_L(np.ones(50))
        ch.solve_Lt(np.ones((50, 2)))
        ch.solve(np.ones(50))
        ch.L()
    check_factor(ch, new_values(A, 2), np.random.default_rng(0))
    names = [name for name, _ in log]
    assert "cholesky" not in names and "cholesky_AAt" not in names
    assert names.count("cholesky_inplace") >= 2
    assert set(names) <= {
        "analyze", "P", "copy", "cholesky_inplace", "D", "logdet", "solve_L", "solve_Lt",
        "solve_A", "L",
    }
    for name, kwargs in log:
        if name in ("solve_L", "solve_Lt"):
            assert kwargs == {"use_LDLt_decomposition": False}


@needs_backend
@pytest.mark.parametrize("mode", ["supernodal", "simplicial", "auto"])
def test_not_positive_definite(mode):
    """0.4's simplicial factor is LDL' and CHOLMOD does not flag a negative pivot there."""
    A = random_spd(60, seed=8)
    ch = SparseCholesky(A, supernodal=mode)
    lam_min = np.linalg.eigvalsh(A.toarray())[0]
    bad = A - sp.diags(np.full(60, lam_min + 0.5))
    bad = sp.csc_matrix(bad)
    bad.sort_indices()
    with pytest.raises(np.linalg.LinAlgError) as info:
        ch.factorize(bad)
    assert isinstance(info.value, NotPositiveDefinite)
    with pytest.raises(RuntimeError, match="failed"):
        ch.logdet()
    with pytest.raises(RuntimeError):
        ch.solve(np.ones(60))
    ch.factorize(A)  # recovers
    check_factor(ch, A, np.random.default_rng(9))
    # NaN/Inf are not always stopped by CHOLMOD (OpenBLAS's dpotrf lets NaN through)
    cols = np.repeat(np.arange(60), np.diff(A.indptr))
    off = np.flatnonzero(A.indices > cols)[7]  # a lower-triangle off-diagonal entry
    diag = np.flatnonzero(A.indices == cols)[11]
    for k, v in ((off, np.nan), (diag, np.nan), (diag, np.inf), (off, -np.inf)):
        vals = A.data.copy()
        vals[k] = v
        with pytest.raises(NotPositiveDefinite):
            ch.factorize_values(vals)
        with pytest.raises(RuntimeError):
            ch.solve_L(np.ones(60))
    ch.factorize(A)
    check_factor(ch, A, np.random.default_rng(10))


@needs_backend
def test_not_factorised_yet():
    ch = SparseCholesky(random_spd(20, seed=1))
    with pytest.raises(RuntimeError, match="not factorised"):
        ch.logdet()


@needs_backend
def test_perm_convention_arrow():
    """Arrow matrix (dense first row/column): AMD moves the hub last, no fill."""
    n = 30
    A = sp.lil_matrix((n, n))
    A.setdiag(np.full(n, float(n)))
    A[0, :] = 1.0
    A[:, 0] = 1.0
    A[0, 0] = float(n)
    A = sp.csc_matrix(A)
    nat = SparseCholesky(A, ordering="natural")
    assert np.array_equal(nat.perm, np.arange(n))
    ch = SparseCholesky(A, ordering="amd")
    ch.factorize(A)
    assert ch.perm[-1] == 0
    assert ch.L().nnz == 2 * n - 1  # no fill with the hub last
    nat.factorize(A)
    assert nat.L().nnz == n * (n + 1) // 2  # full fill without ordering
    check_factor(ch, A, np.random.default_rng(1))
    assert not ch.perm.flags.writeable


@needs_backend
def test_pattern_variants_int64_unsorted_duplicates():
    A = random_spd(50, seed=11)
    L = sp.tril(A, format="csc")
    # int64 indices
    L64 = sp.csc_matrix((L.data, L.indices.astype(np.int64), L.indptr.astype(np.int64)),
                        shape=L.shape)
    ch = SparseCholesky(L64)
    ch.factorize(L64)
    check_factor(ch, A, np.random.default_rng(0))
    # unsorted row indices within columns, then new values given in that same order
    rng = np.random.default_rng(12)
    order = np.concatenate([
        L.indptr[j] + rng.permutation(L.indptr[j + 1] - L.indptr[j]) for j in range(50)
    ])
    U = sp.csc_matrix((L.data[order], L.indices[order], L.indptr), shape=L.shape)
    assert not U.has_sorted_indices
    ch = SparseCholesky(U)
    A2 = new_values(A, 13)
    L2 = sp.tril(A2, format="csc")
    ch.factorize_values(L2.data[order])
    check_factor(ch, A2, rng)
    # duplicate entries are summed, as scipy does: split each diagonal entry in two
    ind, dat, ptr = [], [], [0]
    for j in range(50):
        r = L.indices[L.indptr[j] : L.indptr[j + 1]]
        v = L.data[L.indptr[j] : L.indptr[j + 1]]
        ind += [j, *r]  # the diagonal is r[0]: stored twice, half each
        dat += [v[0] / 2, v[0] / 2, *v[1:]]
        ptr.append(len(ind))
    D = sp.csc_matrix((np.array(dat), np.array(ind), np.array(ptr)), shape=L.shape)
    assert D.nnz == L.nnz + 50 and not D.has_canonical_format
    ch = SparseCholesky(D)
    ch.factorize_values(D.data)
    check_factor(ch, A, rng)


@needs_backend
def test_factorize_checks_pattern_and_lengths():
    A = random_spd(30, seed=14)
    ch = SparseCholesky(A)
    with pytest.raises(ValueError, match="pattern"):
        ch.factorize(sp.csc_matrix(sp.tril(A)))
    with pytest.raises(ValueError, match="length"):
        ch.factorize_values(A.data[:-1])
    ch.factorize_values(A.data)
    with pytest.raises(ValueError):
        ch.solve(np.ones(29))


@needs_backend
@pytest.mark.parametrize("mode", ["supernodal", "simplicial"])
def test_nnz_L_before_and_after(mode):
    A = random_spd(60, seed=15)
    ch = SparseCholesky(A, supernodal=mode)
    before = ch.nnz_L()
    ch.factorize(A)
    assert before == ch.L().nnz
    ch2 = SparseCholesky(A, supernodal=mode)
    ch2.factorize(A)
    assert ch2.nnz_L() == before


def test_bad_arguments():
    A = random_spd(10, seed=0)
    with pytest.raises(ValueError):
        SparseCholesky(A, supernodal="fast")
    with pytest.raises(ValueError):
        SparseCholesky(A, ordering="random")


@needs_backend
def test_bad_matrix():
    with pytest.raises(ValueError):
        SparseCholesky(sp.csc_matrix(np.ones((3, 4))))
    with pytest.raises(TypeError):
        SparseCholesky(np.eye(3))


def test_unavailable(monkeypatch):
    def boom():
        raise ImportError("no sksparse here")

    monkeypatch.setattr(C, "_import_cholmod", boom)
    assert not sparse_cholesky_available()
    assert backend_version().startswith("scikit-sparse not available")
    with pytest.raises(ImportError, match="scikit-sparse"):
        SparseCholesky(random_spd(5))


def test_unknown_api(monkeypatch):
    monkeypatch.setattr(C, "_import_cholmod", lambda: object())
    assert not sparse_cholesky_available()
    with pytest.raises(ImportError, match="neither"):
        SparseCholesky(random_spd(5))


# ---------------------------------------------------------------------------------
# scikit-sparse 0.5 API through a fake
# ---------------------------------------------------------------------------------


class _CholmodError(Exception):
    pass


class _CholmodNotPositiveDefiniteError(_CholmodError):
    pass


def _symbolic_pattern(S: np.ndarray) -> np.ndarray:
    """Boolean lower-triangular pattern of the Cholesky factor of pattern ``S``."""
    P = np.tril(S.astype(bool))
    n = P.shape[0]
    for k in range(n):
        rows = np.flatnonzero(P[k + 1 :, k]) + k + 1
        for a in rows:
            P[a, rows[rows < a]] = True
        P[k, k] = True
    return P


class FakeCholeskyFactor:
    """Dense imitation of ``sksparse.cholmod.CholeskyFactor`` (0.5)."""

    instances: list = []

    def __init__(self, A, *, lower=True, order="default", sym_kind=None,
                 supernodal_mode=None):
        if not isinstance(A, sp.csc_array):
            warnings.warn("Input matrix not in CSC array format.", sp.SparseEfficiencyWarning,
                          stacklevel=2)
            A = sp.csc_array(A)
        assert sym_kind in (None, "sym")
        self.is_lower = lower
        self.kwargs = {"lower": lower, "order": order, "supernodal_mode": supernodal_mode}
        tri = sp.csc_array(sp.tril(A) if lower else sp.triu(A))
        tri.data = np.ones_like(tri.data)  # the pattern counts, not the values
        S = (tri + tri.T).toarray() != 0
        S[np.diag_indices_from(S)] = True
        n = A.shape[0]
        if order in ("natural", None):
            p = np.arange(n, dtype=np.int32)
        else:
            p = reverse_cuthill_mckee(sp.csr_matrix(S.astype(float)),
                                      symmetric_mode=True).astype(np.int32)
        p.setflags(write=False)
        self._perm = p
        self._pattern = _symbolic_pattern(S[np.ix_(p, p)])
        self._super = supernodal_mode == "supernodal"
        self._L = None
        self.calls: list = []  # (is_super at the call, beta)
        FakeCholeskyFactor.instances.append(self)

    @property
    def is_super(self):
        return self._super

    @property
    def is_ll(self):
        return True

    @property
    def is_numeric(self):
        return self._L is not None

    @property
    def perm(self):
        return self._perm

    @property
    def colcount(self):
        return self._pattern.sum(axis=0)

    @property
    def nnz(self):
        return int(np.sum(self.colcount))

    @property
    def factor(self):
        if self._L is None:
            raise ValueError("The factor has no numerical values.")
        return self._L

    def copy(self):
        other = copy.deepcopy(self)
        other.calls = []
        FakeCholeskyFactor.instances.append(other)
        return other

    def factorize(self, A, ldl=None, beta=0.0):
        if not isinstance(A, sp.csc_array):
            warnings.warn("not a csc_array", sp.SparseEfficiencyWarning, stacklevel=2)
            A = sp.csc_array(A)
        assert ldl in (None, False)
        self.calls.append((self._super, beta))
        # like validate_csc_input: flags reset, canonicalised in place
        A.has_sorted_indices = False
        A.has_canonical_format = False
        A.sum_duplicates()
        tri = (sp.tril(A) if self.is_lower else sp.triu(A)).toarray()
        M = tri + tri.T - np.diag(np.diag(tri))
        p = self._perm
        M = M[np.ix_(p, p)] + beta * np.eye(M.shape[0])
        n = M.shape[0]
        L = np.zeros_like(M)
        self._L = None
        for j in range(n):  # column Cholesky, reports the failing column like CHOLMOD
            d = M[j, j] - L[j, :j] @ L[j, :j]
            if not d > 0:
                raise _CholmodNotPositiveDefiniteError(
                    f"Input matrix is not positive definite. (code 1) Failed at column {j}."
                )
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (M[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
        # store on the symbolic pattern (explicit zeros kept), padded like nzmax > nnz
        mask = self._pattern
        indptr = np.zeros(n + 1, dtype=np.int32)
        indptr[1:] = np.cumsum(mask.sum(axis=0))
        rows = np.concatenate([np.flatnonzero(mask[:, j]) for j in range(n)]).astype(np.int32)
        vals = np.concatenate([L[mask[:, j], j] for j in range(n)])
        rows = np.concatenate([rows, np.zeros(3, np.int32)])
        vals = np.concatenate([vals, np.full(3, np.nan)])
        for a in (indptr, rows, vals):
            a.setflags(write=False)
        self._L = sp.csc_array((vals, rows, indptr), shape=(n, n))
        self._dense = M
        self._super = False  # final_super = False: ends simplicial
        return self

    def solve(self, b):
        if self._L is None:
            raise _CholmodError("Factor is symbolic.")
        if not isinstance(b, np.ndarray):
            raise ValueError("b must be an ndarray or sparse matrix.")
        p = self._perm
        y = np.linalg.solve(self._dense, b[p])
        x = np.empty_like(y)
        x[p] = y
        return x


class FakeCholmod05:
    """Module-like namespace with the 0.5 names the adapter uses."""

    __name__ = "sksparse.cholmod"
    CholeskyFactor = FakeCholeskyFactor
    CholmodError = _CholmodError
    CholmodNotPositiveDefiniteError = _CholmodNotPositiveDefiniteError


@pytest.fixture
def fake05(monkeypatch):
    FakeCholeskyFactor.instances = []
    monkeypatch.setattr(C, "_import_cholmod", lambda: FakeCholmod05)
    return FakeCholmod05


def test_fake05_detected(fake05):
    assert C._api_of(fake05) == "0.5"
    assert sparse_cholesky_available()


@pytest.mark.parametrize("triangle", ["full", "lower", "upper"])
@pytest.mark.parametrize("mode", ["supernodal", "simplicial"])
def test_fake05_results_and_refactor(fake05, mode, triangle):
    A1 = random_spd(40, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a SparseEfficiencyWarning for csc_matrix
        ch = SparseCholesky(in_triangle(A1, triangle), supernodal=mode)
        assert ch.api == "0.5"
        symbolic = FakeCholeskyFactor.instances[0]
        assert symbolic.kwargs == {
            "lower": triangle != "upper", "order": "default", "supernodal_mode": mode,
        }
        assert np.array_equal(ch.perm, symbolic.perm)
        assert not np.array_equal(ch.perm, np.arange(40))  # a real permutation
        nnz_before = ch.nnz_L()
        seen = []
        for seed in (None, 22, 23, 24):
            Ak = A1 if seed is None else new_values(A1, seed)
            data = in_triangle(Ak, triangle).data
            keep = data.copy()
            ch.factorize_values(data)
            assert np.array_equal(data, keep)  # caller's array untouched
            check_factor(ch, Ak, np.random.default_rng(seed))
            assert all(abs(ch.logdet() - s) > 1e-6 for s in seen)
            seen.append(ch.logdet())
    assert nnz_before == ch.nnz_L()
    if mode == "supernodal":
        # the symbolic analysis stays supernodal and is never factorised itself;
        # each numeric factorisation runs supernodal, on a fresh copy
        assert symbolic.is_super and symbolic.calls == []
        numeric = [f for f in FakeCholeskyFactor.instances if f.calls]
        assert len(numeric) == 4
        assert all(f.calls == [(True, 0.0)] for f in numeric)
    else:
        assert symbolic.calls == [(False, 0.0)] * 4  # refactored in place
        assert len(FakeCholeskyFactor.instances) == 1


def test_fake05_not_positive_definite(fake05):
    A = random_spd(30, seed=25)
    ch = SparseCholesky(A, supernodal="supernodal")
    lam_min = np.linalg.eigvalsh(A.toarray())[0]
    bad = sp.csc_matrix(A - sp.diags(np.full(30, lam_min + 0.5)))
    bad.sort_indices()
    with pytest.raises(NotPositiveDefinite) as info:
        ch.factorize(bad)
    assert isinstance(info.value, np.linalg.LinAlgError)
    assert isinstance(info.value.column, int)
    with pytest.raises(RuntimeError):
        ch.logdet()
    ch.factorize(A)
    check_factor(ch, A, np.random.default_rng(0))


def test_fake05_postordered_and_natural(fake05):
    A = random_spd(20, seed=26)
    ch = SparseCholesky(A, ordering="natural")
    assert np.array_equal(ch.perm, np.arange(20))
    ch.factorize(A)
    check_factor(ch, A, np.random.default_rng(1))
    SparseCholesky(A, ordering="postordered")  # a 0.5-only ordering name


# ---------------------------------------------------------------------------------
# The triangular-solve kernels used with the 0.5 backend
# ---------------------------------------------------------------------------------


def test_csc_triangular_kernels():
    A = random_spd(50, seed=27).toarray()
    Ld = np.linalg.cholesky(A)
    Ld[np.abs(Ld) < 0.05] = 0.0
    np.fill_diagonal(Ld, np.abs(np.diag(Ld)) + 0.5)
    L = sp.csc_matrix(Ld)
    L.sort_indices()
    B = np.random.default_rng(3).standard_normal((50, 4))
    X = B.copy()
    C._csc_lower_solve(L.indptr, L.indices, L.data, X)
    assert np.allclose(X, sla.solve_triangular(Ld, B, lower=True))
    Y = B.copy()
    C._csc_lower_t_solve(L.indptr, L.indices, L.data, Y)
    assert np.allclose(Y, sla.solve_triangular(Ld.T, B, lower=False))
