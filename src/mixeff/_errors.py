"""Exceptions raised by mixeff.

Every error a user can provoke with bad input is one of these, raised by mixeff itself
with a message naming the column, level or formula position at fault.
"""

from __future__ import annotations


class MixeffError(Exception):
    """Base class of all errors raised by mixeff."""


class FormulaError(MixeffError, ValueError):
    """A model formula that cannot be parsed or does not fit the data.

    Parameters
    ----------
    message
        What is wrong.
    formula
        The formula text, when known.
    position
        0-based character offset of the fault in ``formula``, when known.
    """

    def __init__(self, message: str, formula: str | None = None, position: int | None = None):
        self.formula = formula
        self.position = position
        text = message
        if formula is not None and position is not None:
            pos = max(0, min(position, len(formula)))
            text = (
                f"{message} at position {pos} of the formula\n"
                f"    {formula}\n"
                f"    {' ' * pos}^"
            )
        elif formula is not None:
            text = f"{message} in formula {formula!r}"
        super().__init__(text)


class DataError(MixeffError, ValueError):
    """Data that cannot be used for the requested model (missing column, bad values...)."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped without meeting its convergence criteria."""
