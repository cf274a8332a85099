"""Where theta becomes Lambda.

The relative covariance factor Lambda is block diagonal: a random-effects term with ``k``
columns and ``m`` levels contributes ``m`` copies of one ``k x k`` lower-triangular
template ``T``, whose lower-triangle entries, read column by column, are the term's
slice of theta. The covariance of the term's random effects for one level is
``sigma**2 * T @ T.T``.

This module holds that bookkeeping (term order, offsets, theta layout, bounds, start
values) and the small conversions between theta, templates and variance components.
Nothing here touches the rows of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReStructure", "TermInfo", "lme4_term_order"]


def lme4_term_order(nlevels: list[int]) -> list[int]:
    """Order of the random-effects terms as lme4 uses it.

    lme4 reorders the terms by decreasing number of levels when they are not already in
    non-increasing order (``rev(order(nl))`` in ``mkReTrms``, which also reverses ties).

    Parameters
    ----------
    nlevels
        Number of levels of each term, in formula order.

    Returns
    -------
    list of int
        Indices of the formula's terms in lme4's order.
    """
    nl = np.asarray(nlevels)
    if nl.size > 1 and np.any(np.diff(nl) > 0):
        return [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    return list(range(nl.size))


@dataclass(frozen=True)
class TermInfo:
    """Shape of one random-effects term in the random-effects vector.

    Attributes
    ----------
    label
        Grouping factor's name as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    colnames
        Names of the term's columns (``"(Intercept)"``, ``"Days"``).
    nlevels
        Number of levels ``m`` of the grouping factor.
    offset
        First index of the term in the random-effects vector (length ``m * k``, level
        major: index ``offset + level * k + column``).
    theta_offset
        First index of the term's slice of theta (length ``k * (k + 1) / 2``).
    """

    label: str
    colnames: tuple[str, ...]
    nlevels: int
    offset: int
    theta_offset: int

    @property
    def k(self) -> int:
        """Number of columns of the term."""
        return len(self.colnames)

    @property
    def ntheta(self) -> int:
        """Number of theta entries of the term."""
        return self.k * (self.k + 1) // 2

    @property
    def size(self) -> int:
        """Number of random effects of the term, ``m * k``."""
        return self.nlevels * self.k


class ReStructure:
    """Layout of all random-effects terms (in lme4's order) and of theta.

    Parameters
    ----------
    labels, colnames, nlevels
        Per term, in the order the terms are to be stored (already lme4-ordered).
    """

    def __init__(self, labels: list[str], colnames: list[list[str]], nlevels: list[int]):
        terms = []
        off = 0
        toff = 0
        for lab, cn, m in zip(labels, colnames, nlevels, strict=True):
            t = TermInfo(lab, tuple(cn), int(m), off, toff)
            terms.append(t)
            off += t.size
            toff += t.ntheta
        self.terms: tuple[TermInfo, ...] = tuple(terms)
        self.q = off
        self.ntheta = toff
        # For each theta entry: term index, row and column inside the template.
        th_term, th_row, th_col = [], [], []
        for ti, t in enumerate(self.terms):
            for c in range(t.k):
                for r in range(c, t.k):
                    th_term.append(ti)
                    th_row.append(r)
                    th_col.append(c)
        self.theta_term = np.asarray(th_term, dtype=np.int64)
        self.theta_row = np.asarray(th_row, dtype=np.int64)
        self.theta_col = np.asarray(th_col, dtype=np.int64)
        self.kmax = max((t.k for t in self.terms), default=1)

    # -- theta layout ---------------------------------------------------------------
    @property
    def is_diagonal_theta(self) -> np.ndarray:
        """Boolean mask of the theta entries that sit on a template's diagonal."""
        return self.theta_row == self.theta_col

    def start_theta(self) -> np.ndarray:
        """lme4's start values: 1 on the diagonal of each template, 0 elsewhere."""
        return self.is_diagonal_theta.astype(np.float64)

    def lower_bounds(self) -> np.ndarray:
        """Lower bounds: 0 for diagonal entries, ``-inf`` for the others."""
        return np.where(self.is_diagonal_theta, 0.0, -np.inf)

    def templates(self, theta: np.ndarray) -> np.ndarray:
        """Stack the templates into one ``(nterms, kmax, kmax)`` array (zero padded)."""
        out = np.zeros((len(self.terms), self.kmax, self.kmax))
        out[self.theta_term, self.theta_row, self.theta_col] = theta
        return out

    def theta_names(self) -> list[str]:
        """Names of the theta entries as lme4's ``getME(m, "theta")``."""
        names = []
        for ti, r, c in zip(self.theta_term, self.theta_row, self.theta_col, strict=True):
            t = self.terms[ti]
            if r == c:
                names.append(f"{t.label}.{t.colnames[r]}")
            else:
                names.append(f"{t.label}.{t.colnames[r]}.{t.colnames[c]}")
        return names

    # -- variance components --------------------------------------------------------
    def covariances(self, theta: np.ndarray, sigma: float) -> list[np.ndarray]:
        """Covariance matrix ``sigma**2 T T'`` of each term's random effects."""
        tmpl = self.templates(theta)
        out = []
        for ti, t in enumerate(self.terms):
            T = tmpl[ti, : t.k, : t.k]
            out.append(sigma**2 * (T @ T.T))
        return out

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's ``isSingular``: some diagonal theta entry below ``tol``."""
        return bool(np.any(theta[self.is_diagonal_theta] < tol))
