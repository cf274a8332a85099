"""Warnings given at fit time, pointed at the user's call.

lme4 reports a fit on the boundary of the parameter space ("boundary (singular) fit: see
help('isSingular')") and failed convergence checks when the model is fitted. mixeff
gives both through Python's :mod:`warnings`, with categories users can filter
(:class:`~mixeff.SingularFitWarning`, :class:`~mixeff.ConvergenceWarning`), attributed
to the first frame outside mixeff, so that the line shown is the user's ``lmer(...)``,
``fit.refit(...)`` or ``fit.update(...)``, however deep inside mixeff the fit was made.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["SingularFitWarning", "user_stacklevel", "warn_user", "warn_fit"]

_PACKAGE = __name__.rpartition(".")[0]   # "mixeff"


class SingularFitWarning(UserWarning):
    """The fit is on the boundary of the parameter space (lme4's ``isSingular``).

    Some variance is estimated as zero or some correlation as +-1. lme4 gives the same
    news as a message, "boundary (singular) fit: see help('isSingular')". Silence it
    with ``warnings.simplefilter("ignore", mixeff.SingularFitWarning)``.
    """


def _in_package(frame) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes :func:`warnings.warn` name the first non-mixeff frame.

    Counted for a :func:`warnings.warn` call made directly in the caller of this
    function.
    """
    frame = sys._getframe(1)   # the function that will call warnings.warn
    level = 1
    while frame is not None and _in_package(frame):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the user's code."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def _from_cli() -> bool:
    """True when the fit was asked for by mixeff's command line (``mixeff fit``)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == f"{_PACKAGE}.cli":
            return True
        frame = frame.f_back
    return False


def warn_fit(fit) -> None:
    """The fit-time warnings of a fitted model, as lme4 gives them when it fits.

    One :class:`~mixeff.ConvergenceWarning` per failed convergence check (the messages of
    ``fit.optsum``), then a :class:`SingularFitWarning` for a singular fit. Not for fits
    made by the command line, which prints these messages with the summary (and in its
    JSON) instead of as Python warnings.
    """
    from ._errors import ConvergenceWarning

    if _from_cli():
        return

    for msg in fit.optsum.messages:
        warnings.warn(msg, ConvergenceWarning, stacklevel=user_stacklevel())
    if fit.is_singular:
        from ._fit import SINGULAR_MESSAGE

        warnings.warn(SINGULAR_MESSAGE, SingularFitWarning, stacklevel=user_stacklevel())
