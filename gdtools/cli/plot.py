"""``gdtools plot``: loss curves of one or more history files, written to an image.

    gdtools plot run.jsonl [other.jsonl ...] -o loss.png [--x evals] [--log] [--params] [--grad-norm]
                 [--y value] [--labels a,b | --label A --label B] [--no-best] [--no-band]

The format follows the extension of ``-o`` (PNG, SVG, PDF, ...). A file that cannot be read, or a
figure that cannot be drawn from it, is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from gdtools.output_path import figure_file
from gdtools.errors import InputError


#: The widest image written, in pixels (Matplotlib's Agg canvas stops at 2**16).
MAX_PIXELS = 32_768

#: The library's words for its arguments, and the options a command-line user set instead.
_OPTIONS = (("`y` ", "--y "), ("`x` ", "--x "), ("x='time', y='value'", "--x time --y value"),
            ("x='evals'", "--x evals"), ("x='time'", "--x time"), ("y='value'", "--y value"),
            ("y='loss'", "--y loss"), ("log=True", "--log"), ("use log=False", "drop --log"))


def _as_options(message: str) -> str:
    for words, option in _OPTIONS:
        message = message.replace(words, option)
    return message


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plot",
        help="draw the loss curves of history files",
        description="Draw the loss curves of one or more history files (JSON Lines written by "
                    "gd.minimize(history=...) or gdtools tune) into one figure.",
    )
    parser.add_argument("histories", nargs="+", metavar="HISTORY", help="history files (.jsonl)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="image to write; the format follows the extension (png, svg, pdf)")
    parser.add_argument("--x", default="iteration", choices=("iteration", "evals", "time"),
                        help="horizontal axis (default: iteration; evals compares estimators fairly)")
    parser.add_argument("--y", default="loss", metavar="FIELD",
                        help="'loss' (default), 'value' (every evaluation) or another numeric "
                             "field of the iteration records")
    parser.add_argument("--log", action="store_true", help="logarithmic vertical axis")
    parser.add_argument("--params", action="store_true", help="add parameter trajectory panels")
    parser.add_argument("--grad-norm", action="store_true", help="add a gradient norm panel")
    parser.add_argument("--labels", metavar="A,B,...",
                        help="comma-separated legend labels, one per history file")
    parser.add_argument("--label", action="append", metavar="TEXT",
                        help="one legend label, given once per history file in order (a label may "
                             "hold commas); instead of --labels")
    parser.add_argument("--no-best", dest="best", action="store_false",
                        help="do not draw the best-so-far curve")
    parser.add_argument("--no-band", dest="band", action="store_false",
                        help="do not shade the noise band of repeated evaluations")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster output (150)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from gdtools.history import History
    from gdtools.plotting import mark_values, measured_again, plot_history

    labels = None
    if args.labels is not None and args.label is not None:
        raise InputError("give the legend labels with --labels or with --label, not both")
    if args.labels is not None or args.label is not None:
        option = "--labels" if args.labels is not None else "--label"
        labels = ([label.strip() for label in args.labels.split(",")] if args.labels is not None
                  else list(args.label))
        if len(labels) != len(args.histories):
            raise InputError(f"{option} has {len(labels)} labels for {len(args.histories)} "
                             "history files; give one per file")
    if args.dpi <= 0:
        raise InputError(f"--dpi must be positive; got {args.dpi}")
    histories = [History.load(path) for path in args.histories]
    try:
        fig = plot_history(histories, x=args.x, y=args.y, log=args.log, params=args.params,
                           grad_norm=args.grad_norm, labels=labels, best=args.best, band=args.band)
    except InputError as exc:  # the library names its arguments; the CLI user set the options
        raise InputError(_as_options(str(exc))) from None
    if len(histories) == 1 and args.y == "loss":  # a tuning run's side-by-side measurements, as tune drew them
        again = measured_again(histories[0].meta)
        if again:
            mark_values(fig, again)
    largest = max(fig.get_size_inches())
    if largest * args.dpi > MAX_PIXELS:
        raise InputError(f"--dpi {args.dpi} makes a {largest * args.dpi:,.0f} px wide image; this figure "
                         f"takes --dpi {int(MAX_PIXELS // largest)} at most")
    written = figure_file("-o", args.output)
    try:
        fig.savefig(written, dpi=args.dpi)
    except ValueError as exc:  # an extension Matplotlib has no writer for
        raise InputError(f"-o {args.output!r}: {exc}") from None
    except OSError as exc:
        raise InputError(f"-o {args.output!r}: cannot write: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # a writer that needs a program it cannot run (PGF's LaTeX)
        raise InputError(f"-o {args.output!r}: cannot write: {exc}") from None
    print(f"wrote {written}", file=sys.stderr)
    return 0
