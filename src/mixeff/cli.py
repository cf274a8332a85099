"""The ``mixeff`` command line.

::

    mixeff fit DATA.csv "FORMULA" [--ml] [--json] [--factor COL ...] [--weights COL]
                                  [--offset COL] [--ddf {Satterthwaite,Kenward-Roger,lme4}]
    mixeff fit --example plant_growth "height ~ week * C(temp) + (1 | plant_id)"
    mixeff plot DATA.csv "FORMULA" --out DIR [--x COL] [--group COL] [--color-by COL]
                                             [--ml] [--factor COL ...] [--weights COL]
                                             [--offset COL] [--dpi N]
    python -m mixeff ...

``fit`` reads the CSV file with pandas (or loads a data set shipped with mixeff), fits the
model with :func:`mixeff.lmer` and prints the summary as lme4's ``summary()`` does, or with
``--json`` one JSON object with the main numbers (:meth:`mixeff.LmerFit.to_dict`).

``plot`` fits the model the same way and writes its figures as PNG files into ``DIR``
(:func:`mixeff.plots.save_all`; needs matplotlib), printing the path of each file.

Errors in the input (a missing file, an unknown column, a formula that does not parse)
print ``mixeff: error: <message>`` on standard error and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

PROG = "mixeff"


class CliError(Exception):
    """An input problem reported as ``mixeff: error: ...`` with exit status 2."""


def _examples() -> dict[str, Callable[[], Any]]:
    from . import datasets

    return {"plant_growth": datasets.load_plant_growth}


EXAMPLES = ("plant_growth",)
DDF = ("Satterthwaite", "Kenward-Roger", "lme4")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one sub-command per action (``fit``, ``plot``)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Linear mixed-effects models with lme4's answers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = sub.add_parser(
        "fit",
        help="fit a linear mixed model and print its summary",
        description=(
            "Fit a linear mixed model (as lme4's lmer) and print its summary. "
            "Give a CSV file and a formula, or --example NAME and a formula."
        ),
        epilog=(
            'example: mixeff fit --example plant_growth '
            '"height ~ week * C(temp) + (1 | plant_id)"'
        ),
    )
    fit.add_argument("data", nargs="?", metavar="DATA.csv",
                     help="CSV file with a header line (omit with --example)")
    fit.add_argument("formula", metavar="FORMULA",
                     help='lme4 model formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--example", choices=EXAMPLES, metavar="NAME",
                     help=f"use a data set shipped with mixeff ({', '.join(EXAMPLES)})")
    fit.add_argument("--ml", action="store_true",
                     help="fit by maximum likelihood instead of REML")
    fit.add_argument("--json", action="store_true",
                     help="print the results as one JSON object instead of the summary")
    fit.add_argument("--factor", action="extend", nargs="+", default=[], metavar="COL",
                     help="treat these columns as categorical (repeat the option or "
                          "separate names with commas; put it after DATA and FORMULA)")
    fit.add_argument("--ddf", choices=DDF, default=None,
                     help="t-tests of the fixed effects: Satterthwaite (default when "
                          "available), Kenward-Roger, or lme4 (t values only)")
    fit.add_argument("--weights", metavar="COL", help="column of prior weights")
    fit.add_argument("--offset", metavar="COL", help="column of a known offset")
    fit.set_defaults(handler=_cmd_fit, subparser=fit)

    plot = sub.add_parser(
        "plot",
        help="fit a linear mixed model and write its diagnostic figures as PNG files",
        description=(
            "Fit a linear mixed model (as with 'mixeff fit') and write its figures into "
            "DIR: residuals vs fitted, normal Q-Q, scale-location, caterpillar plot of "
            "the random effects, fitted lines per group, the 2 x 2 diagnostics and the "
            "residuals against each fixed-effect variable. Needs matplotlib "
            "(pip install 'mixeff[plot]')."
        ),
        epilog=(
            'example: mixeff plot --example plant_growth '
            '"height ~ week * C(temp) + (1 | plant_id)" --out figures'
        ),
    )
    plot.add_argument("data", nargs="?", metavar="DATA.csv",
                      help="CSV file with a header line (omit with --example)")
    plot.add_argument("formula", metavar="FORMULA",
                      help='lme4 model formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    plot.add_argument("--out", required=True, metavar="DIR",
                      help="folder for the PNG files (created if missing)")
    plot.add_argument("--example", choices=EXAMPLES, metavar="NAME",
                      help=f"use a data set shipped with mixeff ({', '.join(EXAMPLES)})")
    plot.add_argument("--ml", action="store_true",
                      help="fit by maximum likelihood instead of REML")
    plot.add_argument("--factor", action="extend", nargs="+", default=[], metavar="COL",
                      help="treat these columns as categorical (repeat the option or "
                           "separate names with commas; put it after DATA and FORMULA)")
    plot.add_argument("--weights", metavar="COL", help="column of prior weights")
    plot.add_argument("--offset", metavar="COL", help="column of a known offset")
    plot.add_argument("--x", metavar="COL",
                      help="horizontal axis of the fitted-lines figure (default: the first "
                           "numeric fixed-effect variable)")
    plot.add_argument("--group", metavar="COL",
                      help="one fitted line per level of this column (default: the first "
                           "grouping factor)")
    plot.add_argument("--color-by", metavar="COL",
                      help="colour the fitted-lines figure by this column (default: a "
                           "categorical fixed effect constant within each group, if any)")
    plot.add_argument("--dpi", type=int, default=150, metavar="N",
                      help=f"resolution of the PNG files, 1 to {MAX_DPI} (default 150)")
    plot.set_defaults(handler=_cmd_plot, subparser=plot)
    return parser


def _read_data(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The data and its display name, from ``--example`` or the CSV path."""
    import pandas as pd

    if args.example is not None:
        if args.data is not None:
            parser.error("give either DATA.csv or --example, not both")
        return _examples()[args.example](), args.example, args.formula
    if args.data is None:
        parser.error("give the data file and the formula (or --example NAME and the formula)")
    path, formula = args.data, args.formula
    try:
        data = pd.read_csv(path)
    except FileNotFoundError:
        raise CliError(f"data file '{path}' not found") from None
    except IsADirectoryError:
        raise CliError(f"data file '{path}' is a directory") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise CliError(f"cannot read data file '{path}': {exc}") from None
    return data, Path(path).name, formula


def _apply_factors(data, factors: Sequence[str]):
    names = [n.strip() for item in factors for n in item.split(",") if n.strip()]
    for col in names:
        if col not in data.columns:
            raise CliError(f"--factor column '{col}' is not a column of the data")
        # categories in R's order: numeric values numerically, text as sorted strings
        data[col] = data[col].astype("category")
    return data


def _json_safe(obj: Any) -> Any:
    """Plain JSON values: NaN/inf become null, NumPy scalars and arrays Python values."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_safe(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _cmd_fit(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import mixeff

    data, data_name, formula = _read_data(args, parser)
    data = _apply_factors(data, args.factor)
    # allow_python is never passed: a formula given on the command line is never run as
    # Python code (the allow-list of mixeff._expr always applies)
    fit = mixeff.lmer(formula, data, reml=not args.ml, weights=args.weights,
                      offset=args.offset, verbose=True, allow_python=False)
    fit.data_name = data_name
    if args.json:
        print(json.dumps(_json_safe(fit.to_dict()), indent=2, allow_nan=False))
        return 0
    from ._summary import LmerSummary

    try:
        summary = LmerSummary(fit, ddf=args.ddf, weights_label=args.weights,
                              offset_label=args.offset)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(summary)
    return 0


MAX_DPI = 1200
"""Largest ``--dpi`` of ``mixeff plot`` (a 10 x 8 inch figure is then 12,000 x 9,600
pixels, 460 MB of RGBA)."""


def _cmd_plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import mixeff

    if not 0 < args.dpi <= MAX_DPI:
        # the figures are about 10 x 8 inches: at 100,000 dpi matplotlib's renderer asks
        # for terabytes (and ends in MemoryError: std::bad_alloc)
        parser.error(f"--dpi must be between 1 and {MAX_DPI} (print quality is 300-600), "
                     f"not {args.dpi}")
    data, data_name, formula = _read_data(args, parser)
    data = _apply_factors(data, args.factor)
    for option, col in (("--x", args.x), ("--color-by", args.color_by)):
        if col is not None and col not in data.columns:
            raise CliError(f"{option} column '{col}' is not a column of the data")
    try:
        from . import plots
    except ImportError:
        raise CliError("mixeff plot needs matplotlib; install it with: "
                       "pip install 'mixeff[plot]'") from None
    # allow_python is never passed: a formula given on the command line is never run as
    # Python code (the allow-list of mixeff._expr always applies)
    fit = mixeff.lmer(formula, data, reml=not args.ml, weights=args.weights,
                      offset=args.offset, verbose=True, allow_python=False)
    fit.data_name = data_name
    color_by = "auto" if args.color_by is None else args.color_by
    try:
        paths = plots.save_all(fit, args.out, data=data, x=args.x, group=args.group,
                               color_by=color_by, dpi=args.dpi)
    except OSError as exc:
        raise CliError(f"cannot write the figures into '{args.out}': {exc}") from None
    except MemoryError:
        raise CliError(f"not enough memory to draw the figures at {args.dpi} dpi; use a "
                       "lower --dpi") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for path in paths:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for usage errors and errors in the input.
    """
    from ._errors import MixeffError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args.handler(args, args.subparser))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (MixeffError, CliError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
