"""Sparse Cholesky factorisation through scikit-sparse's CHOLMOD wrapper.

One adapter, :class:`SparseCholesky`, over the two incompatible scikit-sparse APIs:

* **0.4.x** (here: 0.4.16 built against Debian 12's SuiteSparse 5.12 / CHOLMOD 3.0.14):
  ``sksparse.cholmod.analyze(A, mode=..., ordering_method=..., use_long=...)`` returns a
  symbolic ``Factor``; ``Factor.cholesky_inplace(A)`` refactors *that* object,
  ``Factor.P()``, ``Factor.logdet()``, ``Factor.solve_L(b, use_LDLt_decomposition=...)``,
  ``Factor.solve_Lt``, ``Factor.solve_A``, ``Factor.L()``.
* **0.5.x** (needs SuiteSparse >= 7): ``sksparse.cholmod.CholeskyFactor(A, lower=...,
  order=..., supernodal_mode=...)`` is the symbolic analysis,
  ``CholeskyFactor.factorize(A, ldl=None, beta=0.0)`` refactors it in place and returns
  ``self``; ``.perm``, ``.factor`` (read-only lower-triangular CSC view), ``.colcount``,
  ``.is_super``, ``.copy()``, ``.solve(b)`` (only ``A x = b``), ``.logdet()``; errors are
  ``CholmodNotPositiveDefiniteError`` etc. There is no ``solve_L``/``solve_Lt``/``apply_P``.

The API is selected by feature detection (``CholeskyFactor`` with ``factorize`` -> 0.5,
``analyze`` + ``Factor.cholesky_inplace`` -> 0.4), never by parsing a version string.

Pitfalls handled here (do not "simplify" them away):

* 0.4 ``Factor.cholesky(A)`` returns a *new* factor and leaves the analysed one as it
  was; only ``cholesky_inplace`` refactors. Keeping the old object evaluates a stale
  factor. The adapter only ever calls ``cholesky_inplace``.
* 0.4 ``solve_L``/``solve_Lt`` default to ``use_LDLt_decomposition=True``: they solve with
  the *unit-diagonal* L of ``L D L'`` and, as a side effect, convert the factor in place
  to a simplicial LDL' one, so every later refactorisation is simplicial (measured: a
  dense 1156 block refactors in 14 ms before, 130 ms after one default ``solve_L``).
  The adapter always passes ``use_LDLt_decomposition=False``.
* 0.4 computes a *simplicial* factor as LDL' (it never sets ``Common->final_ll``) and
  CHOLMOD's simplicial LDL' does not report an indefinite matrix: ``cholesky_inplace``
  succeeds with negative entries in D (``logdet()`` then is NaN). Nor does OpenBLAS's
  ``dpotrf`` stop at NaN in the supernodal case. The adapter therefore computes the
  log-determinant with every factorisation from the pivots (``Factor.D()``) and raises
  :class:`NotPositiveDefinite` unless all are positive and the result finite. The LL'
  solves convert a simplicial LDL' factor in place to LL' (O(nnz(L)), once per
  factorisation; exact), and the next ``cholesky_inplace`` computes LDL' again.
* 0.5 ``factorize`` sets ``Common->final_super = False``: the first numeric factorisation
  of a supernodal symbolic factor ends by converting it to a simplicial one, and CHOLMOD
  then refactors a simplicial factor with the (much slower, no BLAS) simplicial
  algorithm. For a supernodal analysis the adapter therefore keeps the symbolic factor
  untouched and factorises a fresh ``copy()`` of it each time (``cholmod_copy_factor`` of
  a symbolic factor: O(n + size of the supernodal structure)), replacing the previous
  numeric factor.

Which triangle CHOLMOD reads
    0.4.x builds its CHOLMOD view of a symmetric matrix with ``stype = -1``: only the
    **lower** triangle (with the diagonal) is read, entries above the diagonal are
    ignored. 0.5.x reads the lower triangle for ``lower=True`` (``stype = -1``) and the
    upper one for ``lower=False`` (``stype = +1``). :class:`SparseCholesky` accepts the
    full symmetric matrix, its lower triangle or its upper triangle; given a full matrix
    it reads the lower triangle (the upper part is ignored, its symmetry is not checked).

Permutation convention
    ``L @ L.T == A[perm][:, perm]``, i.e. ``P A P' = L L'`` with ``P = I[perm]``:
    ``(P b) = b[perm]``, and a vector ``y`` in permuted order goes back by
    ``x[perm] = y``.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import re
import warnings
from importlib import metadata
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._forksafe import call_openmp
from ._jit import njit

__all__ = [
    "NotPositiveDefinite",
    "SparseCholesky",
    "backend_version",
    "sparse_cholesky_available",
]

_MODES = ("auto", "supernodal", "simplicial")
_ORDERINGS = ("default", "best", "natural", "amd", "metis", "nesdis", "colamd", "postordered")


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The matrix handed to CHOLMOD is not (numerically) positive definite.

    Parameters
    ----------
    message
        What failed.
    column
        0-based column of the *permuted* matrix at which the factorisation broke down,
        when the backend reports it.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


# ---------------------------------------------------------------------------------
# Backend discovery
# ---------------------------------------------------------------------------------


def _import_cholmod() -> Any:
    """Import ``sksparse.cholmod`` (a seam for the tests, which substitute fakes)."""
    return importlib.import_module("sksparse.cholmod")


def _api_of(mod: Any) -> str | None:
    """``"0.5"``, ``"0.4"`` or None, from the attributes the module offers."""
    cf = getattr(mod, "CholeskyFactor", None)
    if cf is not None and hasattr(cf, "factorize"):
        return "0.5"
    fac = getattr(mod, "Factor", None)
    if hasattr(mod, "analyze") and fac is not None and hasattr(fac, "cholesky_inplace"):
        return "0.4"
    return None


def _load() -> tuple[Any, str]:
    try:
        mod = _import_cholmod()
    except ImportError as exc:
        raise ImportError(
            "mixeff needs scikit-sparse (sksparse.cholmod, CHOLMOD) for sparse Cholesky "
            "factorisations: pip install scikit-sparse (with SuiteSparse installed)"
        ) from exc
    api = _api_of(mod)
    if api is None:
        raise ImportError(
            "sksparse.cholmod offers neither the 0.4 API (analyze, Factor.cholesky_inplace) "
            "nor the 0.5 API (CholeskyFactor.factorize)"
        )
    return mod, api


def sparse_cholesky_available() -> bool:
    """Whether a usable scikit-sparse CHOLMOD wrapper can be imported.

    Returns
    -------
    bool
        True if ``sksparse.cholmod`` imports and offers the 0.4 or the 0.5 API.
    """
    try:
        _load()
    except Exception:  # any failure (ImportError, broken build...) means "not available"
        return False
    return True


def _loaded_libraries() -> list[str]:
    """Real paths of the shared libraries mapped into this process (Linux only)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "/" in line and ".so" in line}
    except OSError:
        return []
    return sorted({os.path.realpath(p) for p in paths})


def _c_version(path: str, symbol: str) -> str | None:
    """Call ``int symbol(int version[3])`` (CHOLMOD/SuiteSparse version query) in ``path``."""
    try:
        fn = getattr(ctypes.CDLL(path), symbol)
    except (OSError, AttributeError):
        return None
    v = (ctypes.c_int * 3)()
    fn.restype = ctypes.c_int
    fn(v)
    return f"{v[0]}.{v[1]}.{v[2]}"


def backend_version() -> str:
    """Describe the CHOLMOD backend: scikit-sparse, SuiteSparse, CHOLMOD and BLAS versions.

    Best effort: the SuiteSparse/CHOLMOD/BLAS parts are read from the libraries mapped
    into the process (``/proc/self/maps``) and their version functions, and are left out
    when they cannot be found.

    Returns
    -------
    str
        For example ``"scikit-sparse 0.4.16 (API 0.4; SuiteSparse 5.12.0; CHOLMOD 3.0.14;
        BLAS openblas-pthread/libblas.so.3, openblas-pthread/libopenblasp-r0.3.21.so)"``,
        or ``"scikit-sparse not available (...)"``.
    """
    try:
        mod, api = _load()
    except ImportError as exc:
        return f"scikit-sparse not available ({exc.__cause__ or exc})"
    version = None
    for dist in ("scikit-sparse", "scikit_sparse"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    if version is None:
        pkg = importlib.import_module(mod.__name__.rpartition(".")[0] or mod.__name__)
        version = getattr(pkg, "__version__", "unknown version")
    parts = [f"API {api}"]
    libs = _loaded_libraries()
    for lib in libs:
        base = os.path.basename(lib)
        if base.startswith("libsuitesparseconfig"):
            v = _c_version(lib, "SuiteSparse_version")
            parts.append(f"SuiteSparse {v}" if v else base)
    for lib in libs:
        base = os.path.basename(lib)
        if base.startswith("libcholmod"):
            v = _c_version(lib, "cholmod_version")
            parts.append(f"CHOLMOD {v}" if v else base)
    blas = [
        lib for lib in libs
        if re.match(r"lib(open)?blas|libmkl_rt|libblis|libflexiblas|libatlas|libsatlas",
                    os.path.basename(lib))
        and not re.search(r"(numpy|scipy)[^/]*\.libs", lib)
    ]
    if blas:
        parts.append("BLAS " + ", ".join(os.path.join(*b.split(os.sep)[-2:]) for b in blas))
    return f"scikit-sparse {version} ({'; '.join(parts)})"


# ---------------------------------------------------------------------------------
# Pattern bookkeeping (done once, in __init__)
# ---------------------------------------------------------------------------------


def _backend_pattern(
    indptr: np.ndarray, indices: np.ndarray, n: int, transpose: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    """Canonical CSC pattern handed to CHOLMOD, and where each user entry goes in it.

    Returns ``(b_indptr, b_indices, dest, duplicates)``: ``dest[k]`` is the position of
    user entry ``k`` in the backend data array (None when the user pattern already is
    the canonical backend pattern, the usual case), ``duplicates`` tells whether several
    user entries land on the same position (they are then summed, like scipy does).
    """
    nnz = int(indptr[-1])
    cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    rows = np.asarray(indices[:nnz], dtype=np.int64)
    if transpose:
        rows, cols = cols, rows
    key = cols * n + rows
    ukey, dest = np.unique(key, return_inverse=True)
    dest = dest.reshape(-1)
    itype = np.int32 if max(ukey.size, n) < np.iinfo(np.int32).max else np.int64
    b_indices = (ukey % n).astype(itype)
    counts = np.bincount(ukey // n, minlength=n)
    b_indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(counts, out=b_indptr[1:])
    duplicates = ukey.size != nnz
    if not duplicates and np.array_equal(dest, np.arange(nnz)):
        return b_indptr, b_indices, None, False
    return b_indptr, b_indices, dest, duplicates


# ---------------------------------------------------------------------------------
# Triangular solves on a CSC lower-triangular factor (0.5 backend: no solve_L there)
# ---------------------------------------------------------------------------------


@njit(cache=True)
def _csc_lower_solve(indptr, indices, data, x):  # pragma: no cover - numba
    """In place ``x <- L^{-1} x``; ``L`` CSC lower triangular, diagonal first per column."""
    n, k = x.shape
    for j in range(n):
        p0 = indptr[j]
        d = data[p0]
        for c in range(k):
            x[j, c] /= d
        for p in range(p0 + 1, indptr[j + 1]):
            i = indices[p]
            lij = data[p]
            for c in range(k):
                x[i, c] -= lij * x[j, c]


@njit(cache=True)
def _csc_lower_t_solve(indptr, indices, data, x):  # pragma: no cover - numba
    """In place ``x <- L^{-T} x``; ``L`` CSC lower triangular, diagonal first per column."""
    n, k = x.shape
    for j in range(n - 1, -1, -1):
        p0 = indptr[j]
        for p in range(p0 + 1, indptr[j + 1]):
            i = indices[p]
            lij = data[p]
            for c in range(k):
                x[j, c] -= lij * x[i, c]
        d = data[p0]
        for c in range(k):
            x[j, c] /= d


# ---------------------------------------------------------------------------------
# Backends: the smallest surface SparseCholesky needs from each scikit-sparse API
# ---------------------------------------------------------------------------------


def _checked_logdet(d: np.ndarray, squared: bool) -> float:
    """``log det(A)`` from the pivots ``d`` (``diag(L)``, or its square if ``squared``).

    Raises :class:`NotPositiveDefinite` unless every pivot is positive and the result
    finite: catches what CHOLMOD lets through (negative LDL' pivots, NaN or Inf values,
    which always reach the diagonal of L).
    """
    ok = d > 0
    if not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise NotPositiveDefinite(
            f"matrix is not positive definite (pivot {j} of the permuted matrix is {d[j]:.3g})",
            j,
        )
    ld = float(np.sum(np.log(d)))
    if not squared:
        ld *= 2.0
    if not np.isfinite(ld):
        raise NotPositiveDefinite("matrix has non-finite entries (log-determinant not finite)")
    return ld


class _Backend04:
    """scikit-sparse 0.4.x: ``analyze`` once, ``Factor.cholesky_inplace`` many times."""

    api = "0.4"
    lower = True  # stype = -1 is hard-wired in 0.4's _init_view_sparse

    def __init__(self, mod: Any, A: sp.csc_array, mode: str, ordering: str) -> None:
        self._mod = mod
        self._npd = mod.CholmodNotPositiveDefiniteError
        use_long = A.indices.dtype == np.int64
        if ordering == "postordered":
            raise ValueError("ordering='postordered' needs scikit-sparse >= 0.5")
        self._f = call_openmp(lambda: mod.analyze(A, mode=mode, ordering_method=ordering,
                                                  use_long=use_long))
        self.perm = np.array(self._f.P(), dtype=np.intp)

    def factorize(self, A: sp.csc_array) -> None:
        try:
            # never Factor.cholesky(): returns a new factor. OpenMP inside: see _forksafe
            call_openmp(self._f.cholesky_inplace, A)
        except self._npd as exc:
            col = getattr(exc, "column", None)
            raise NotPositiveDefinite(
                f"matrix is not positive definite (CHOLMOD: {exc})",
                None if col is None else int(col),
            ) from None

    def checked_logdet(self) -> float:
        # D(): the pivots, d of LDL' or diag(L)^2 of LL'. O(n) for a simplicial factor,
        # one Cython loop step per supernode for a supernodal one (~0.2 us each).
        # A simplicial factor ("simplicial", or "auto" when CHOLMOD picks it) is LDL'
        # here (0.4 leaves Common->final_ll at FALSE) and CHOLMOD's LDL' does not stop at
        # a negative pivot; OpenBLAS's dpotrf does not stop at NaN. Hence the check.
        return _checked_logdet(np.asarray(self._f.D()), squared=True)

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        return self._f.solve_L(b, use_LDLt_decomposition=False)

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        return self._f.solve_Lt(b, use_LDLt_decomposition=False)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self._f.solve_A(b)

    def L(self) -> sp.csc_matrix:
        return self._f.L()  # works on a copy of the factor: no in-place conversion

    def nnz_L(self, surrogate: sp.csc_array | None) -> int:
        if surrogate is not None:
            # Not factorised yet: the stored pattern of L does not depend on the values
            # (0.4 leaves the factor "as is", no resymbol), so factor an identity-valued
            # matrix of the same pattern in a *copy*; self._f stays symbolic.
            g = self._f.copy()
            try:
                call_openmp(g.cholesky_inplace, surrogate)
            except self._npd:
                raise RuntimeError(
                    "nnz_L() before the first factorisation needs every diagonal entry "
                    "in the pattern"
                ) from None
            return int(g.L().nnz)
        return int(self._f.L().nnz)


class _Backend05:
    """scikit-sparse 0.5.x: ``CholeskyFactor`` (symbolic) + ``factorize`` (numeric)."""

    api = "0.5"

    def __init__(
        self, mod: Any, A: sp.csc_array, mode: str, ordering: str, lower: bool
    ) -> None:
        self._mod = mod
        self._npd = mod.CholmodNotPositiveDefiniteError
        self.lower = lower
        self._symbolic = call_openmp(lambda: mod.CholeskyFactor(
            A, lower=lower, order=ordering, supernodal_mode=mode
        ))
        self.supernodal = bool(self._symbolic.is_super)
        self.perm = np.array(self._symbolic.perm, dtype=np.intp)
        self._f = None
        self._view: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def factorize(self, A: sp.csc_array) -> None:
        self._view = None
        if self.supernodal:
            # factorize() ends supernodal factors as simplicial ones (final_super=False);
            # refactoring that object would run the simplicial algorithm. Factor a copy
            # of the untouched symbolic analysis instead, and drop the old factor.
            f = self._symbolic.copy()
        else:
            f = self._symbolic  # simplicial: refactor in place, memory reused
        self._f = None
        try:
            call_openmp(lambda: f.factorize(A, ldl=False))  # OpenMP: see _forksafe
        except self._npd as exc:
            m = re.search(r"column (\d+)", str(exc))
            raise NotPositiveDefinite(
                f"matrix is not positive definite (CHOLMOD: {exc})",
                int(m.group(1)) if m else None,
            ) from None
        self._f = f

    def _csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, indices, data)`` of L, diagonal first in each column."""
        if self._view is None:
            V = self._f.factor  # simplicial LL' packed monotonic view, always lower
            indptr = np.asarray(V.indptr)
            nz = int(indptr[-1])
            indices = np.asarray(V.indices)[:nz]
            data = np.asarray(V.data)[:nz]
            n = indptr.size - 1
            if n and not np.array_equal(indices[indptr[:-1]], np.arange(n)):
                S = sp.csc_array((data.copy(), indices.copy(), indptr.copy()), shape=(n, n))
                S.sort_indices()
                indptr, indices, data = S.indptr, S.indices, S.data
            self._view = (indptr, indices, data)
        return self._view

    def checked_logdet(self) -> float:
        indptr, _, data = self._csc()
        return _checked_logdet(data[indptr[:-1]], squared=False)

    def _tri(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        indptr, indices, data = self._csc()
        x = np.array(b, dtype=np.float64, order="C", copy=True)
        x2 = x.reshape(x.shape[0], -1)
        (_csc_lower_t_solve if transpose else _csc_lower_solve)(indptr, indices, data, x2)
        return x

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        return self._tri(b, False)

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        return self._tri(b, True)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self._f.solve(b)

    def L(self) -> sp.csc_matrix:
        indptr, indices, data = self._csc()
        n = indptr.size - 1
        return sp.csc_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(n, n))

    def nnz_L(self, surrogate: sp.csc_array | None) -> int:
        if surrogate is not None:
            return int(np.sum(self._symbolic.colcount))
        return int(self._csc()[0][-1])


# ---------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------


class SparseCholesky:
    """Symbolic analysis once (fill-reducing ordering), numeric factorisation many times.

    ``L L' = A[perm][:, perm]`` with ``L`` lower triangular (the LL' form, never the
    unit-diagonal LDL' one).

    Parameters
    ----------
    A : scipy.sparse.csc_matrix or csc_array
        Symmetric positive definite pattern, given as the full matrix, its lower triangle
        or its upper triangle (with the diagonal). Only the pattern matters for the
        analysis; the values are not factorised here. A full matrix is read through its
        lower triangle (CHOLMOD ignores the entries above the diagonal; symmetry is not
        checked). Any other sparse format is converted to CSC once.
    supernodal : {"auto", "supernodal", "simplicial"}
        CHOLMOD's factorisation method. ``"supernodal"`` uses dense BLAS-3 kernels on
        supernodes (fast when L has dense blocks), ``"simplicial"`` the up-looking
        column algorithm without BLAS (fast for very sparse L), ``"auto"`` lets CHOLMOD
        choose from the flop count of the analysis. The adapter always exposes the LL'
        factor (scikit-sparse 0.4 computes a simplicial factor as LDL'; it is converted
        to LL' in place, exactly, by the first LL' solve after each factorisation).
    ordering : {"default", "best", "natural", "amd", "metis", "nesdis", "colamd"}
        CHOLMOD's fill-reducing ordering. ``"default"`` tries AMD (and METIS if AMD
        gives much fill), ``"best"`` tries them all, ``"natural"`` means no permutation.
        (``"postordered"`` is also accepted by scikit-sparse 0.5.)

    Notes
    -----
    Costs (n = order of A, nnz(A), nnz(L) = entries of the factor, k = columns of b):

    - ``__init__``: O(nnz(A)) pattern bookkeeping, plus CHOLMOD's ordering and symbolic
      analysis (AMD is roughly O(nnz(A)); "best"/METIS cost more). Once.
    - :meth:`factorize_values`: the numeric factorisation (sum over columns of
      colcount^2 flops; supernodal runs them as BLAS-3), plus O(nnz(A)) to permute the
      input (inside CHOLMOD), plus the log-determinant and its check (O(n); with
      scikit-sparse 0.4 and a supernodal factor one Cython loop step per supernode,
      ~0.2 us each). No scipy matrix is built, no index array copied, no pass over the
      values (except a gather for non-canonical or, under 0.4, upper-triangle input;
      and an O(nnz(A)) copy under 0.5). With scikit-sparse 0.5 and a supernodal
      analysis, plus O(nnz(L)) for CHOLMOD's conversion of the result to simplicial
      form and O(n) to copy the symbolic factor.
    - :meth:`factorize`: :meth:`factorize_values` plus an O(nnz(A)) pattern comparison.
    - :meth:`logdet`: O(1), computed by the factorisation.
    - :meth:`solve_L`, :meth:`solve_Lt`: O(nnz(L) k); :meth:`solve`: twice that plus
      O(n k) for the permutations.
    - :meth:`L`: O(nnz(L)) (a copy; for a 0.4 supernodal factor, copy + conversion).
    - :attr:`perm`: O(1), a cached read-only array.
    - :meth:`nnz_L`: O(1) once known; the first call costs one :meth:`L` (0.4 before
      any factorisation: one factorisation of an identity-valued copy).

    A failed factorisation (:class:`NotPositiveDefinite`) leaves the object without a
    valid factor: :meth:`logdet`, the solves and :meth:`L` raise ``RuntimeError`` until
    the next successful factorisation.
    """

    def __init__(
        self,
        A: sp.csc_matrix | sp.csc_array,
        *,
        supernodal: str = "auto",
        ordering: str = "default",
    ) -> None:
        if supernodal not in _MODES:
            raise ValueError(f"supernodal must be one of {_MODES}, got {supernodal!r}")
        if ordering not in _ORDERINGS:
            raise ValueError(f"ordering must be one of {_ORDERINGS}, got {ordering!r}")
        mod, api = _load()
        if not sp.issparse(A):
            raise TypeError("A must be a scipy.sparse matrix (CSC)")
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"A must be square and non-empty, got shape {A.shape}")
        if np.issubdtype(A.dtype, np.complexfloating):
            raise ValueError("complex matrices are not supported")
        if A.format != "csc":
            A = A.tocsc()
        n = int(A.shape[0])
        self.n = n
        self.mode = supernodal
        self.ordering = ordering
        self._u_indptr = np.array(A.indptr, copy=True)
        self._u_indices = np.array(A.indices[: A.indptr[-1]], copy=True)
        nnz = int(self._u_indptr[-1])
        self._nnz_user = nnz

        cols = np.repeat(np.arange(n), np.diff(self._u_indptr))
        has_upper = bool(np.any(self._u_indices < cols))
        has_lower = bool(np.any(self._u_indices > cols))
        self.triangle = "full" if (has_upper and has_lower) else ("upper" if has_upper else "lower")
        # 0.4 only reads the lower triangle: an upper-only input is transposed (once
        # here, and by an index map per call). 0.5 is told which triangle to read.
        transpose = api == "0.4" and self.triangle == "upper"
        b_indptr, b_indices, dest, dup = _backend_pattern(
            self._u_indptr, self._u_indices, n, transpose
        )
        self._dest = dest
        self._dup = dup
        self._take = None if (dest is None or dup) else np.argsort(dest).astype(np.intp)
        m = int(b_indptr[-1])
        # The one matrix object handed to CHOLMOD on every call: only .data changes,
        # so scipy's cached "sorted indices" flag and the index arrays are reused.
        self._A = sp.csc_array(
            (np.zeros(m), b_indices, b_indptr), shape=(n, n), copy=False
        )
        self._A.has_sorted_indices = True
        self._A.has_canonical_format = True
        self._copy_data = api == "0.5"  # 0.5 re-canonicalises its input in place
        self._buf = np.empty(m) if (dest is not None or self._copy_data) else None
        if api == "0.5":
            self._b = _Backend05(mod, self._A, supernodal, ordering,
                                 lower=self.triangle != "upper")
        else:
            self._b = _Backend04(mod, self._A, supernodal, ordering)
        self.api = api
        self._perm = self._b.perm
        self._perm.setflags(write=False)
        self._ok = False
        self._failed = False
        self._logdet: float | None = None
        self._nnz_L: int | None = None
        self.n_factorizations = 0

    # -- factorisation ----------------------------------------------------------------
    def factorize(self, A: sp.csc_matrix | sp.csc_array) -> None:
        """Numeric refactorisation in place with a matrix of the analysed pattern.

        Parameters
        ----------
        A : scipy.sparse.csc_matrix or csc_array
            Same shape and exactly the same CSC pattern (``indptr``, ``indices``) as the
            matrix given to the constructor; only its values are used.

        Raises
        ------
        ValueError
            If the pattern differs from the analysed one.
        NotPositiveDefinite
            (a ``numpy.linalg.LinAlgError``) if the matrix is not positive definite.
        """
        if not sp.issparse(A) or A.format != "csc":
            raise ValueError("A must be a CSC matrix with the analysed pattern")
        if A.shape != (self.n, self.n) or not (
            np.array_equal(A.indptr, self._u_indptr)
            and np.array_equal(A.indices[: self._nnz_user], self._u_indices)
        ):
            raise ValueError("A does not have the CSC pattern of the analysed matrix")
        self.factorize_values(A.data[: self._nnz_user])

    def factorize_values(self, data: np.ndarray) -> None:
        """Numeric refactorisation in place from new values in the analysed CSC pattern.

        The hot path: no scipy matrix is rebuilt and no index array copied; the values
        are handed to CHOLMOD (through a gather only if the constructor's pattern was
        not canonical, or was an upper triangle under scikit-sparse 0.4).

        Parameters
        ----------
        data : numpy.ndarray
            The ``.data`` array (float64, length ``nnz``) of a matrix with exactly the
            pattern given to the constructor (same order of entries).

        Raises
        ------
        ValueError
            If ``data`` has the wrong length.
        NotPositiveDefinite
            (a ``numpy.linalg.LinAlgError``) if the matrix is not positive definite or
            has NaN/Inf values (they always reach the diagonal of L, which is checked).
        """
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 1 or data.shape[0] != self._nnz_user:
            raise ValueError(
                f"data must be a 1-D array of length {self._nnz_user}, got shape {data.shape}"
            )
        self._ok = False
        self._failed = True
        self._logdet = None
        if self._dest is None:
            if self._copy_data:
                np.copyto(self._buf, data)
                vals = self._buf
            else:
                vals = data if data.flags.c_contiguous else np.ascontiguousarray(data)
        elif self._take is not None:
            vals = np.take(data, self._take, out=self._buf)
        else:
            vals = np.bincount(self._dest, weights=data, minlength=self._buf.size)
        self._A.data = vals
        self._b.factorize(self._A)
        self._logdet = self._b.checked_logdet()
        self._ok = True
        self._failed = False
        self.n_factorizations += 1

    def _check(self) -> None:
        if not self._ok:
            if self._failed:
                raise RuntimeError(
                    "the last factorisation failed (see its exception); no valid factor"
                )
            raise RuntimeError("not factorised yet: call factorize() or factorize_values()")

    def _rhs(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        if b.ndim not in (1, 2) or b.shape[0] != self.n:
            raise ValueError(f"b must have shape ({self.n},) or ({self.n}, k), got {b.shape}")
        return b

    # -- results ----------------------------------------------------------------------
    @property
    def perm(self) -> np.ndarray:
        """Fill-reducing permutation: ``L L' = A[perm][:, perm]`` (read-only, intp).

        ``P = I[perm]`` so ``P A P' = A[perm][:, perm]``, ``P b = b[perm]``; a result
        ``y`` in permuted order is put back by ``x[perm] = y``.
        """
        return self._perm

    def logdet(self) -> float:
        """``log det(A)`` (natural log) = ``2 sum(log diag(L))``, computed by the factorisation."""
        self._check()
        return self._logdet

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """``x = L^{-1} b`` for ``b`` already in permuted order (``b_orig[perm]``).

        Parameters
        ----------
        b : numpy.ndarray
            Shape ``(n,)`` or ``(n, k)``.

        Returns
        -------
        numpy.ndarray
            Same shape as ``b``, in permuted order. The LL' factor (not LDL').
        """
        self._check()
        return self._b.solve_L(self._rhs(b))

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """``x = L^{-T} b`` (``b`` and the result in permuted order).

        Parameters
        ----------
        b : numpy.ndarray
            Shape ``(n,)`` or ``(n, k)``.

        Returns
        -------
        numpy.ndarray
            Same shape as ``b``, in permuted order.
        """
        self._check()
        return self._b.solve_Lt(self._rhs(b))

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``x = A^{-1} b`` in the original order.

        Parameters
        ----------
        b : numpy.ndarray
            Shape ``(n,)`` or ``(n, k)``.

        Returns
        -------
        numpy.ndarray
            Same shape as ``b``.
        """
        self._check()
        return np.asarray(self._b.solve(self._rhs(b)))

    def L(self) -> sp.csc_matrix:
        """The lower-triangular factor, ``L L' = A[perm][:, perm]``, as a new CSC matrix.

        Row indices are sorted (so the diagonal comes first in each column). Explicit
        zeros of the symbolic pattern are kept (for a supernodal factor under
        scikit-sparse 0.4 that includes the padding of relaxed supernodes), so the
        pattern is a filled graph, as selected-inverse recurrences need.
        """
        self._check()
        L = self._b.L()
        nz = int(L.indptr[-1])
        if not isinstance(L, sp.csc_matrix) or L.indices.size != nz or L.data.size != nz:
            L = sp.csc_matrix((L.data[:nz], L.indices[:nz], L.indptr), shape=L.shape)
        if not L.has_sorted_indices:
            L.sort_indices()
        if self._nnz_L is None:
            self._nnz_L = int(L.nnz)
        return L

    def nnz_L(self) -> int:
        """Number of entries stored in :meth:`L` (fixed by the analysis; cached)."""
        if self._nnz_L is None:
            if self._ok:
                self._nnz_L = self._b.nnz_L(None)
            else:
                sur = self._A.copy()
                ip, ix = sur.indptr, sur.indices
                cols = np.repeat(np.arange(self.n), np.diff(ip))
                sur.data = (ix == cols).astype(np.float64)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._nnz_L = self._b.nnz_L(sur)
        return self._nnz_L
