"""Convergence checks after the optimiser stops, as lme4's ``checkConv``.

At the optimum the gradient is taken analytically and the Hessian by central
differences of the gradient when the optimiser used gradients and theta has at most three
entries; otherwise both come from the derivatives of the objective's pieces
(:func:`mixeff._derivs.derivatives`: a stencil of evaluations for few theta, forward
differences of the pieces' analytic gradients for more), which are kept for
Satterthwaite's degrees of freedom. A Newton step with them takes theta the last bit of
the way to the optimum. For the parameters not on a bound, the gradient
scaled by the Cholesky factor of the Hessian must be small (lme4's ``check.conv.grad``,
tolerance 0.002) and the Hessian positive definite and well conditioned (``check.conv.hess``,
lme4's ``checkHess``: no eigenvalue below 1e-6 in size, none above 1e6, no ratio of the
smallest to the largest below 1e-6).
"""

from __future__ import annotations

import numpy as np

from ._optimizer import at_bound

__all__ = ["check_convergence", "hessian_from_gradient"]


def hessian_from_gradient(objective, theta: np.ndarray, lower: np.ndarray,
                          step: float = 1e-4) -> np.ndarray:
    """Hessian of the objective by differences of its analytic gradient.

    Central differences, one-sided forward ones for entries within ``step`` of their
    lower bound; symmetrised.
    """
    k = theta.size
    H = np.empty((k, k))
    for i in range(k):
        h = step * max(1.0, abs(theta[i]))
        e = np.zeros(k)
        e[i] = h
        if theta[i] - h < lower[i]:
            H[:, i] = (objective.gradient(theta + e) - objective.gradient(theta)) / h
        else:
            H[:, i] = (objective.gradient(theta + e) - objective.gradient(theta - e)) / (2 * h)
    return 0.5 * (H + H.T)


def _newton_polish(objective, optsum, free: np.ndarray, g: np.ndarray,
                   H: np.ndarray) -> bool:
    """One Newton step on the free entries from where a gradient optimiser stopped.

    L-BFGS-B stops once the objective no longer tells points apart, with theta ~1e-7
    (relative) from the optimum: two fits on blocks that differ only in the order of their
    sums (a Dask fit and the in-memory one) stop that far apart. The gradient is known
    far better than the objective's differences, so a Newton step with the Hessian the
    checks compute anyway takes theta to the optimum. Kept only when the step is small,
    stays within the bounds and the objective does not increase beyond rounding; then
    ``optsum.theta`` and ``optsum.fmin`` are updated and True is returned.
    """
    Hf = H[np.ix_(free, free)]
    try:
        cf = np.linalg.cholesky(0.5 * (Hf + Hf.T))
    except np.linalg.LinAlgError:
        return False
    step = -np.linalg.solve(cf.T, np.linalg.solve(cf, g[free]))
    theta = optsum.theta.copy()
    if not (np.all(np.isfinite(step))
            and np.all(np.abs(step) <= 1e-3 * np.maximum(1.0, np.abs(theta[free])))):
        return False
    theta[free] += step
    if np.any(theta < optsum.lower):
        return False
    f = float(objective(theta))
    if not f <= optsum.fmin + 64 * np.finfo(float).eps * max(1.0, abs(optsum.fmin)):
        objective.solve(optsum.theta)
        return False
    optsum.theta, optsum.fmin = theta, f
    return True


def check_convergence(objective, optsum, tol_grad: float = 2e-3,
                      max_theta: int = 50, tol_hess: float = 1e-6) -> list[str]:
    """lme4-style convergence warnings for a finished optimisation (empty if fine).

    Uses the analytic gradient when the optimiser did (it is then cheap relative to the
    fit), differences of the objective otherwise. As lme4's ``checkConv``: the gradient
    scaled by the Cholesky factor of the Hessian (``check.conv.grad``, ``tol_grad``), then
    the Hessian's eigenvalues (``check.conv.hess``, lme4's ``checkHess``, ``tol_hess``):
    negative ones, ones near zero, a very large one or a large ratio between the largest
    and the smallest (both "nearly unidentifiable: rescale variables?").

    As lme4 (``is.singular`` in ``checkConv``), a singular fit is not checked further and
    no derivatives are taken (Satterthwaite takes them when asked); the optimiser's
    restarts from the interior (:func:`mixeff._optimizer.minimize_theta`) see that it is
    not a point short of the optimum. Only a singular fit whose theta was optimised on the
    scale of badly scaled covariates gets lme4's "very large eigenvalue" advice.
    """
    msgs: list[str] = []
    if not optsum.success:
        msgs.append(f"optimizer ({optsum.method}) convergence code: {optsum.code}"
                    f" ({optsum.message})")
    theta = optsum.theta
    if theta.size == 0 or theta.size > max_theta:
        return msgs
    lower = optsum.lower
    free = ~at_bound(theta, lower)
    if not np.any(free):
        return msgs
    b = objective.blocks
    if b.re.is_singular(theta) and optsum.scale is None:
        # As lme4's checkConv: a singular fit gets the "boundary (singular) fit" message
        # (fit.messages) and no gradient or Hessian checks (next to a rank-deficient
        # covariance matrix the free parameters are often nearly degenerate at a genuine
        # optimum), so no derivatives are taken here; Satterthwaite takes them when asked.
        return msgs
    if optsum.n_gradients > 0 and theta.size <= 3:
        # a few theta of a gradient fit: differences of the (fast path's) gradient
        g = objective.gradient(theta)
        H = hessian_from_gradient(objective, theta, lower)
        if _newton_polish(objective, optsum, free, g, H):
            theta = optsum.theta
            g = objective.gradient(theta)
    else:
        # the derivatives of the deviance's pieces, kept on the record for later use
        # (Satterthwaite): a stencil of evaluations for few theta, differences of the
        # pieces' analytic gradients for more (see mixeff._derivs.derivatives)
        from ._derivs import derivatives

        optsum.derivs = derivatives(objective, theta)
        g, H = optsum.derivs.objective_derivs(objective.reml, b.n, b.p)
        if _newton_polish(objective, optsum, free, g, H):
            theta = optsum.theta
            optsum.derivs.recentre(objective, theta)
            g, H = optsum.derivs.objective_derivs(objective.reml, b.n, b.p)
    objective.solve(theta)
    g = g[free]
    H = H[np.ix_(free, free)]
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        return msgs + ["Gradient or Hessian of the objective contains NaN or infinite values"]
    if b.re.is_singular(theta):
        # a singular fit on badly scaled covariates (theta optimised on their scale):
        # no checks either but lme4's advice for a very large eigenvalue, which comes
        # from the scale (a random slope of Days * 1e8, whose theta reads as singular)
        if np.linalg.eigvalsh(H)[-1] * tol_hess > 1:
            msgs.append("Model is nearly unidentifiable: very large eigenvalue\n"
                        " - Rescale variables?")
        return msgs
    # check.conv.grad: scaled gradient solve(chol(H), g), compared as min(|scaled|, |raw|)
    try:
        R = np.linalg.cholesky(H).T
    except np.linalg.LinAlgError:
        msgs.append("unable to evaluate scaled gradient")
    else:
        scgrad = np.linalg.solve(R, g)
        mingrad = np.minimum(np.abs(scgrad), np.abs(g))
        mx = float(np.max(mingrad))
        if mx > tol_grad:
            comp = int(np.argmax(mingrad)) + 1
            msgs.append(f"Model failed to converge with max|grad| = {mx:.6g}"
                        f" (tol = {tol_grad:g}, component {comp})")
    # check.conv.hess (lme4's checkHess)
    ev = np.linalg.eigvalsh(H)
    nneg = int(np.sum(ev < -tol_hess))
    if nneg:
        msgs.append(f"Model failed to converge: degenerate Hessian with {nneg} negative"
                    " eigenvalues")
    elif np.any(np.abs(ev) < tol_hess) or "unable to evaluate scaled gradient" in msgs:
        msgs.append("Hessian is numerically singular: parameters are not uniquely determined")
    else:
        if ev[-1] * tol_hess > 1:
            msgs.append("Model is nearly unidentifiable: very large eigenvalue\n"
                        " - Rescale variables?")
        if ev[0] / ev[-1] < tol_hess:
            msgs.append("Model is nearly unidentifiable: large eigenvalue ratio\n"
                        " - Rescale variables?")
    return msgs
