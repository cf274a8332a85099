"""Derivatives in theta of the pieces of the profiled deviance, from one set of evaluations.

At a point theta, one evaluation of the core gives ``log|L|^2``, ``log|R_X|^2``, the
penalised residual sum of squares ``r^2`` and the unscaled covariance of the fixed effects
``C = (R_X'R_X)^{-1}``. Central differences on the ``2 k^2 + 1`` points of lme4's
``deriv12`` stencil (the centre, ``theta +- h_i e_i`` and ``theta +- h_i e_i +- h_j e_j``)
give the gradients and Hessians of all of them at once, and the Jacobian of ``C``.

Everything that needs second-order information at the optimum is derived from this one
object by the chain rule: the REML/ML objective's gradient and Hessian (convergence
checks) and the Hessian of the deviance in ``(theta, sigma)`` with the Jacobian of
``vcov(beta)`` (Satterthwaite's degrees of freedom, :mod:`mixeff._satterthwaite`), whose
``sigma`` parts are analytic.

With several theta entries the stencil's ``2 k^2 + 1`` evaluations cost more than ``k + 1``
analytic gradients of the pieces (:meth:`~mixeff._objective.LmmObjective.piece_gradients`):
:func:`gradient_derivatives` takes the Hessians as forward differences of those gradients,
with steps of ``1e-6`` (relative) where the analytic gradient's rounding is still far
below the truncation error (measured on a 30-theta crossed model: 1.7e-6 relative to the
central differences, against 1.5e-4 at steps of 1e-4). :func:`derivatives` picks the
cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

__all__ = ["ThetaDerivatives", "derivatives", "gradient_derivatives", "theta_derivatives"]


@dataclass
class ThetaDerivatives:
    """Values, gradients and Hessians in theta of ``(log|L|^2, log|R_X|^2, r^2)``.

    Attributes
    ----------
    theta, step
        The point and the difference steps ``h_i``.
    value
        ``(3,)`` values at theta.
    grad
        ``(3, k)`` gradients.
    hess
        ``(3, k, k)`` Hessians.
    C, dC
        ``(R_X'R_X)^{-1}`` (p x p) and its derivatives (p x p x k).
    n_evaluations
        Evaluations of the core used.
    """

    theta: np.ndarray
    step: np.ndarray
    value: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    C: np.ndarray
    dC: np.ndarray
    n_evaluations: int

    def objective_derivs(self, reml: bool, n: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of the REML criterion or ML deviance (chain rule)."""
        nu = (n - p) if reml else n
        w = np.array([1.0, 1.0 if reml else 0.0, 0.0])
        r2 = self.value[2]
        gr2, hr2 = self.grad[2], self.hess[2]
        g = w @ self.grad + nu * gr2 / r2
        H = np.tensordot(w, self.hess, axes=1) + nu * (hr2 / r2 - np.outer(gr2, gr2) / r2**2)
        return g, 0.5 * (H + H.T)

    def recentre(self, objective, theta: np.ndarray) -> None:
        """Move to a nearby ``theta`` (a Newton step away): values and ``C`` evaluated
        there, gradients moved to first order by the Hessians, which are kept."""
        theta = np.asarray(theta, dtype=float)
        dt = theta - self.theta
        self.value, self.C = _pieces(objective, theta)
        self.grad = self.grad + self.hess @ dt
        self.theta = theta.copy()
        self.n_evaluations += 1


def _pieces(objective, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = objective.solve(theta)
    p = s.RX.shape[0]
    if p:
        Ri = sla.solve_triangular(s.RX, np.eye(p))
        C = Ri @ Ri.T
    else:
        C = np.zeros((0, 0))
    return np.array([s.ldL2, s.ldRX2, s.r2]), C


def default_steps(theta: np.ndarray) -> np.ndarray:
    """Steps ``1e-3 * max(|theta_i|, 0.1)``: truncation and rounding errors both ~1e-7."""
    return 1e-3 * np.maximum(np.abs(theta), 0.1)


def theta_derivatives(objective, theta: np.ndarray,
                      step: np.ndarray | None = None) -> ThetaDerivatives:
    """Central differences of the core's pieces at ``theta`` (``2 k^2 + 1`` evaluations).

    The stencil may cross a lower bound of theta: the pieces are even functions of the
    sign of a diagonal entry of a scalar term and smooth in the entries of vector terms,
    as in lmerTest's differences (which use numDeriv without bounds).
    """
    theta = np.asarray(theta, dtype=float)
    k = theta.size
    h = default_steps(theta) if step is None else np.asarray(step, dtype=float)
    v0, C0 = _pieces(objective, theta)
    p = C0.shape[0]
    grad = np.empty((3, k))
    hess = np.empty((3, k, k))
    dC = np.empty((p, p, k))
    E = np.diag(h)
    vp = np.empty((k, 3))
    vm = np.empty((k, 3))
    for i in range(k):
        vp[i], Cp = _pieces(objective, theta + E[i])
        vm[i], Cm = _pieces(objective, theta - E[i])
        grad[:, i] = (vp[i] - vm[i]) / (2 * h[i])
        hess[:, i, i] = (vp[i] - 2 * v0 + vm[i]) / h[i] ** 2
        dC[:, :, i] = (Cp - Cm) / (2 * h[i])
    for i in range(k):
        for j in range(i):
            fpp, _ = _pieces(objective, theta + E[i] + E[j])
            fmm, _ = _pieces(objective, theta - E[i] - E[j])
            fpm, _ = _pieces(objective, theta + E[i] - E[j])
            fmp, _ = _pieces(objective, theta - E[i] + E[j])
            hij = (fpp - fpm - fmp + fmm) / (4 * h[i] * h[j])
            hess[:, i, j] = hij
            hess[:, j, i] = hij
    objective.solve(theta)    # leave the core at theta
    return ThetaDerivatives(theta.copy(), h, v0, grad, hess, C0, dC, 2 * k * k + 1)


def gradient_derivatives(objective, theta: np.ndarray,
                         step: np.ndarray | None = None) -> ThetaDerivatives:
    """Derivatives of the pieces from ``k + 1`` analytic gradients (forward differences).

    ``step`` defaults to ``1e-6 * max(|theta_i|, 0.1)``; the steps go up from ``theta``,
    so the points stay within the lower bounds. The Hessians are symmetrised; ``dC`` comes
    from the same points.
    """
    theta = np.asarray(theta, dtype=float)
    k = theta.size
    h = 1e-6 * np.maximum(np.abs(theta), 0.1) if step is None else np.asarray(step, float)
    sol, g0 = objective.piece_gradients(theta)
    v0, C0 = _pieces(objective, theta)
    p = C0.shape[0]
    hess = np.empty((3, k, k))
    dC = np.empty((p, p, k))
    for i in range(k):
        x = theta.copy()
        x[i] += h[i]
        _, gi = objective.piece_gradients(x)
        _, Ci = _pieces(objective, x)
        hess[:, :, i] = (gi - g0) / h[i]
        dC[:, :, i] = (Ci - C0) / h[i]
    hess = 0.5 * (hess + hess.transpose(0, 2, 1))
    objective.solve(theta)    # leave the core at theta
    return ThetaDerivatives(theta.copy(), h, v0, g0, hess, C0, dC, k + 1)


def derivatives(objective, theta: np.ndarray) -> ThetaDerivatives:
    """The cheaper of :func:`theta_derivatives` (``2 k^2 + 1`` evaluations, for ``k <= 3``
    theta entries) and :func:`gradient_derivatives` (``k + 1`` gradients, each a few
    evaluations' worth)."""
    if np.asarray(theta).size <= 3:
        return theta_derivatives(objective, theta)
    return gradient_derivatives(objective, theta)
