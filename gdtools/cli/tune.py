"""``gdtools tune``: find the settings that make a program run fastest.

    gdtools tune --param rate=10:1000:log:int --param alpha=0:1 [--start rate=100] [--repeats 5]
                 [--budget 200] [--gradient spsa|central|forward] [--workers 4] [--history run.jsonl]
                 [--resume] [--plot loss.png] [--seed 0] [--objective time|stdout] [--timeout S]
                 [--quiet] -- ./prog --rate {rate} --alpha {alpha}

Each ``--param NAME=LOW:HIGH[:log][:int]`` declares a parameter (``NAME=A,B,C`` one of listed
values, searched in that order); ``{NAME}`` in the command is replaced by its value (inside that one argument; no shell is involved). Progress goes to stderr; the
result table to stdout. At the end the start point and the best settings are measured again, side by
side, so the reported speedup compares like with like.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys

from gdtools.output_path import check_output_file, figure_file
from gdtools.errors import InputError
from gdtools.space import DEFAULT_BUDGET

GRADIENTS = ("spsa", "central", "forward")

_SPEC_HELP = ("NAME=LOW:HIGH[:log][:int] or NAME=A,B,C (one of listed values, searched in that order), "
              "e.g. rate=10:1000:log:int, alpha=0:1 or codec=lz4,zstd,gzip")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "tune",
        help="tune a program's settings for speed (or for the last number it prints)",
        description="Tune the settings of a program by gradient descent on its measured run time. "
                    "Put the command after '--', with {name} where each parameter's value goes.",
        epilog="example: gdtools tune --param rate=10:1000:log:int --param batch=1:512:log:int "
               "-- ./prog --rate {rate} --batch {batch}",
    )
    parser.add_argument("--param", action="append", default=[], metavar="SPEC",
                        help=f"a parameter to tune: {_SPEC_HELP} (repeat for each parameter)")
    parser.add_argument("--start", action="append", default=[], metavar="NAME=VALUE",
                        help="start value of a parameter (default: the middle of its range, in its "
                             "own scale)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per evaluation (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before them (1)")
    parser.add_argument("--statistic", default="median", choices=("median", "mean", "min"),
                        help="statistic of the repeats that is minimised (median)")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help=f"evaluations the search may spend ({DEFAULT_BUDGET}; the final comparison is extra)")
    parser.add_argument("--gradient", default="spsa", choices=GRADIENTS,
                        help="gradient estimate: spsa (2 evaluations a step, any number of "
                             "parameters; default), central (2 per parameter) or forward (1 per "
                             "parameter + 1)")
    parser.add_argument("--perturbation", type=float, default=None, metavar="C",
                        help="probe size as a fraction of each parameter's range (SPSA's c, the "
                             "finite-difference step); default: set from the measured noise")
    parser.add_argument("--workers", type=int, default=1,
                        help="evaluations run at once (default 1; concurrent runs disturb one "
                             "another's timings)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run evaluations on a dask.distributed scheduler (tcp://host:8786)")
    parser.add_argument("--history", metavar="FILE",
                        help="write every evaluation to this JSON Lines file as it happens (a new file; "
                             "an existing one is continued with --resume, never replaced)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run recorded in --history instead of starting over")
    parser.add_argument("--plot", metavar="FILE", help="write the loss curve to this image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random perturbations (0)")
    parser.add_argument("--objective", default="time", choices=("time", "stdout"),
                        help="minimise the wall time (default) or the last number the program "
                             "prints on stdout")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="kill a run after S seconds; the evaluation counts as failed")
    parser.add_argument("--max-failures", type=int, default=3,
                        help="stop after this many consecutive failed evaluations, or iterations "
                             "spoilt by a failed probe; a failing start is retried as often (3)")
    parser.add_argument("--penalty", type=float, default=None,
                        help="instead of stopping, give failed evaluations this value")
    parser.add_argument("--final-rounds", type=int, default=None,
                        help="runs of the start and best settings in the final side-by-side "
                             "comparison (default: --repeats, at least 3)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("program", nargs=argparse.REMAINDER, metavar="-- PROGRAM ARGS",
                        help="-- then the program and its arguments, with {name} placeholders")
    parser.set_defaults(func=run)
    return parser


# -- parsing --------------------------------------------------------------------------------------

def _number(text: str, spec: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--param {spec!r}: {what} {text!r} is not a number; expected {_SPEC_HELP}") from None
    if not math.isfinite(value):
        raise InputError(f"--param {spec!r}: {what} {text!r} must be finite")
    return value


def _reads_as_a_range(text: str) -> bool:
    """Whether ``text`` is ``LOW:HIGH[:log][:int]`` with LOW and HIGH numbers."""
    fields = [field.strip() for field in text.split(":")]
    try:
        [float(field) for field in fields[:2]]
    except ValueError:
        return False
    return len(fields) >= 2 and all(field.lower() in ("log", "int") for field in fields[2:])


def parse_param(spec: str):
    """``"rate=10:1000:log:int"`` -> ``("rate", Int(10, 1000, log=True))``;
    ``"codec=lz4,zstd"`` -> ``("codec", Choice(["lz4", "zstd"]))``."""
    from gdtools.space import Choice, Int, Real

    name, eq, rest = spec.partition("=")
    if not eq or not name.strip():
        raise InputError(f"--param {spec!r}: expected {_SPEC_HELP}")
    name = name.strip()
    if "," in rest and _reads_as_a_range(rest.replace(",", ".")):
        raise InputError(f"--param {spec!r}: a range written with a decimal comma; write it with decimal "
                         f"points, {name}={rest.strip().replace(',', '.')}")
    if "," in rest:  # the values as the command will get them: text
        values = [value.strip() for value in rest.split(",")]
        if "" in values:
            raise InputError(f"--param {spec!r}: an empty value in the list; expected {_SPEC_HELP}")
        try:
            return name, Choice(values)
        except InputError as exc:
            raise InputError(f"--param {spec!r}: {exc}") from None
    fields = rest.split(":")
    if len(fields) < 2:
        raise InputError(f"--param {spec!r}: give both bounds, LOW:HIGH; expected {_SPEC_HELP}")
    low, high = (_number(fields[0].strip(), spec, "LOW"), _number(fields[1].strip(), spec, "HIGH"))
    flags = [f.strip().lower() for f in fields[2:]]
    unknown = [f for f in flags if f not in ("log", "int")]
    if unknown:
        raise InputError(f"--param {spec!r}: unknown flag {unknown[0]!r}; the flags are 'log' and 'int'")
    repeated = [f for f in ("log", "int") if flags.count(f) > 1]
    if repeated:
        raise InputError(f"--param {spec!r}: the flag {repeated[0]!r} is given twice")
    kind = Int if "int" in flags else Real
    try:
        return name, kind(low, high, log="log" in flags)
    except InputError as exc:
        raise InputError(f"--param {spec!r}: {exc}") from None


def parse_space(specs):
    from gdtools.space import Space

    if not specs:
        raise InputError(f"give at least one --param {_SPEC_HELP}")
    params = {}
    for spec in specs:
        name, param = parse_param(spec)
        if name in params:
            raise InputError(f"--param {spec!r}: parameter {name!r} is declared twice")
        params[name] = param
    return Space(**params)


def parse_start(items, space) -> dict:
    """``["rate=100"]`` -> the start point, the middle of the space for parameters not given."""
    from gdtools.space import Choice

    start = space.center()
    given = set()
    for item in items:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise InputError(f"--start {item!r}: expected NAME=VALUE, e.g. rate=100")
        name = name.strip()
        if name not in space.params:
            raise InputError(f"--start {item!r}: unknown parameter {name!r}; the parameters are "
                             f"{list(space.names)}")
        if name in given:
            raise InputError(f"--start {item!r}: parameter {name!r} is given twice")
        given.add(name)
        choice = space.params[name]
        if isinstance(choice, Choice):  # one of its values, as written in --param
            if choice.index(text.strip()) is None:
                raise InputError(f"--start {item!r}: {text.strip()!r} is not one of {name}'s values "
                                 f"{','.join(choice.values)}")
            start[name] = text.strip()
            continue
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--start {item!r}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"--start {item!r}: the value must be a finite number")
        start[name] = int(value) if space.params[name].is_int and value == round(value) else value
    try:
        space.check(start)
    except InputError as exc:
        raise InputError(f"--start: {exc}") from None
    return start


def _command(args) -> list[str]:
    command = list(args.program)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InputError("give the program to tune after '--', e.g. -- ./prog --rate {rate}")
    return command


def _check_options(args) -> None:
    for name in ("budget", "workers", "max_failures", "repeats"):
        value = getattr(args, name)
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.warmup < 0:
        raise InputError(f"--warmup must be at least 0, got {args.warmup}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.penalty is not None and not math.isfinite(args.penalty):
        raise InputError(f"--penalty must be a finite number, got {args.penalty}")
    if args.final_rounds is not None and args.final_rounds < 1:
        raise InputError(f"--final-rounds must be at least 1, got {args.final_rounds}")
    if args.perturbation is not None and not 0 < args.perturbation <= 0.5:
        raise InputError(f"--perturbation must be in (0, 0.5] (a fraction of each parameter's "
                         f"range), got {args.perturbation}")
    if args.resume and not args.history:
        raise InputError("--resume needs --history FILE, the run to continue")
    if args.resume and not os.path.exists(args.history):
        raise InputError(f"--resume: history file {args.history!r} does not exist")
    if args.resume:
        _check_same_measurement(args)
    elif args.history and os.path.isfile(args.history) and os.path.getsize(args.history) > 0:
        # what it holds may be hours of measurements: never replaced without being asked
        raise InputError(f"--history {args.history!r} already exists: add --resume to continue the run it "
                         f"holds, or remove it (or give another file) to start a new one")
    if args.workers > 1 and args.dask:
        raise InputError("give either --workers or --dask, not both")
    if args.history:
        check_output_file("--history", args.history)
    if args.plot:
        args.plot = figure_file("--plot", args.plot)
        if args.history and os.path.realpath(args.plot) == os.path.realpath(args.history):
            raise InputError(f"--plot and --history name the same file, {args.history!r}: the figure "
                             f"would overwrite the measurements; give two files")


def _check_same_measurement(args) -> None:
    """A resumed run must measure as the recorded one did: the same objective (wall time or the
    number printed), the same number of runs per evaluation (--repeats) and the same statistic of
    them, or one history would mix two kinds of values or two precisions. Wall times are recorded
    as noisy, so a timed history is told from a printed-number one; a printed-number history is
    told by its meta's ``measured`` entry (what its values are; a history written before gdtools
    recorded that is not checked). (--warmup is not recorded.)"""
    from gdtools.history import History

    history = History.load(args.history)
    recorded = (history.meta.get("measured") or {}).get("objective")
    if recorded in ("time", "stdout") and recorded != args.objective:
        raise InputError(f"--resume: {args.history!r} was measured with --objective {recorded}; "
                         f"this command has --objective {args.objective}")
    for record in history.evaluations:
        samples = record.get("samples")
        if record.get("status") != "ok" or not isinstance(samples, list):
            continue
        if record.get("noisy") and args.objective != "time":
            raise InputError(f"--resume: {args.history!r} was measured with --objective time (wall times); "
                             f"this command has --objective {args.objective}")
        if len(samples) == 2 and samples[0] == samples[1] and not _is_number(record.get("spread")):
            continue  # a printed number that repeated (spread left unknown): its runs stopped early
        if len(samples) != args.repeats:
            raise InputError(f"--resume: {args.history!r} was measured with --repeats {len(samples)} "
                             f"(timed runs per evaluation); this command has --repeats {args.repeats}: "
                             f"give --repeats {len(samples)} to continue it")
        if record.get("statistic") not in (None, args.statistic):
            raise InputError(f"--resume: {args.history!r} was measured with --statistic "
                             f"{record['statistic']}; this command has --statistic {args.statistic}")
        return


def _is_number(value) -> bool:
    """A finite number (a history's "NaN" loads as nan, an old record's missing field as None)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _recorded_evaluations(path: str) -> list | None:
    """The evaluation records of the history file at ``path``, or None if it cannot be read."""
    from gdtools.history import History

    try:
        return History.load(path).evaluations
    except (OSError, InputError):
        return None


def _only_failures(path: str) -> bool:
    """Whether the history file at ``path`` exists and holds no successful evaluation."""
    evaluations = _recorded_evaluations(path)
    return evaluations is not None and not any(record.get("status", "ok") == "ok" for record in evaluations)


def _nothing_measured(path: str) -> bool:
    """Whether the history file at ``path`` exists and holds no evaluation at all."""
    return _recorded_evaluations(path) == []


def _penalty_words(penalty, evaluations) -> str:
    """What stood for the failed evaluations: ``--penalty``, or less where it was capped (once
    something was measured, a failure counts at most as far beyond the worst value measured as that
    is from the best, or twice the worst: the smallest such cap is the first value's)."""
    if penalty is None:
        return ""
    first = next((r.get("value") for r in evaluations if r.get("status") == "ok" and _is_number(r.get("value"))),
                 None)
    if first is None or penalty <= first + max(abs(first), 1e-12):
        return f", each counted as --penalty {penalty:g}"
    return f", each counted as --penalty {penalty:g} or less: at most about as far beyond the worst value measured as that is from the best"


def _check_budget(args, estimator, n: int) -> None:
    """The budget must pay for one step: the start, one gradient estimate and the final measurement."""
    need = 1 + estimator.evaluations(n) + 1
    if args.budget < need:
        raise InputError(f"--budget {args.budget} is too small to take a step: {args.gradient} on {n} "
                         f"parameter{'s' if n > 1 else ''} needs {need} evaluations (the start, "
                         f"{need - 2} for one gradient estimate, and the final measurement)")


# -- running --------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if isinstance(value, (int, str)):
        return str(value)
    return f"{value:.6g}"


def _print_best_so_far(history, objective) -> None:
    """On Ctrl-C during the search: the best setting measured so far and its command (a run without
    --history kept nothing else), said to be one measurement, not compared side by side."""
    if history is None:
        return
    ok = [r for r in history.evaluations if r.get("status", "ok") == "ok" and r.get("value") is not None
          and math.isfinite(r["value"]) and r.get("params")]
    if not ok:
        return
    best = min(ok, key=lambda r: r["value"])
    command = getattr(objective, "command", None)
    kind = "one noisy measurement" if best.get("noisy") else "one measurement"  # a wall time; a number printed
    print(f"interrupted after {_count(len(history.evaluations), 'evaluation')}; the best setting measured so far: "
          f"{dict(best['params'])}, {best['value']:.6g} ({kind}, not compared side by side)"
          + (f"; its command: {shlex.join(command(best['params']))}" if command is not None else ""))


def _cli_names(message: str, args, start: dict | None = None) -> str:
    """The engine's message with its Python arguments named as the CLI user set them (and x0, where
    ``start`` is given, as the start's settings)."""
    if start is not None and "at x0, the start point" in message:
        settings = " ".join(f"{name}={value}" for name, value in start.items())
        how = ("the default start; set another with --start NAME=VALUE" if not args.start else
               f"{' '.join(f'--start {item}' for item in args.start)}"
               + ("" if len(args.start) == len(start) else ", the default for the others"))
        message = (message.replace("the objective did not return a finite value at x0, the start point",
                                   f"the program did not give a value at the start, {settings} ({how})")
                   .replace("at x0, the start point", f"at the start, {settings}")
                   .replace("Nothing to optimise from there", "Nothing to tune from there"))
    message = (message.replace(f"(max_evals={args.budget})", f"(--budget {args.budget})")
               .replace(f"max_failures={args.max_failures}", f"--max-failures {args.max_failures}"))
    message = message.replace("recorded its parameters in another order", "recorded its --param options in another order")
    message = re.sub(r"^seed must be", "--seed must be", message)
    if not args.history:  # there is no file: the engine's history is this command's memory only
        message = message.replace("Everything measured so far is in the history.",
                                  "Add --history FILE to keep what is measured.")
    if "another gradient estimator (c: " in message:  # the estimator setting this command sets
        return (message.replace("another gradient estimator (c: ", "another --perturbation (")
                .replace("(None recorded", "(the default recorded").replace(", None given)", ", the default given)"))
    return message.replace("another gradient estimator (", "another --gradient (", 1)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _within_noise(a, b) -> bool:
    """Whether two side-by-side measurements differ by less than twice the noise of their
    difference (each one's noise: the standard error of a median or mean of its runs, the spread
    of its runs for a minimum; False when either failed or cannot show its noise)."""
    if a.status != "ok" or b.status != "ok":
        return False
    noise = math.hypot(a.noise, b.noise)
    return math.isfinite(noise) and abs(a.value - b.value) < 2.0 * noise


def _cell(m) -> str:
    """A measured value to four significant digits, ± its spread to the same decimals."""
    if m.status != "ok":
        return "failed"
    digits = max(0, 3 - math.floor(math.log10(abs(m.value)))) if m.value else 3
    spread = f" ± {m.spread:.{digits}f}" if math.isfinite(m.spread) else ""
    return f"{m.value:.{digits}f}{spread}"


def _table(space, start, best, m_start, m_best, unit: str, objective: str) -> str:
    rows = [("parameter", "start", "best")]
    rows += [(name, _fmt(start[name]), _fmt(best[name])) for name in space.names]

    rows.append((f"{'time' if objective == 'time' else 'value'} ({m_best.statistic}{unit})",
                 _cell(m_start), _cell(m_best)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _executor(args):
    if args.dask:
        try:
            from dask.distributed import Client
        except ImportError:
            raise InputError("--dask needs dask.distributed: pip install 'dask[distributed]'") from None
        try:
            client = Client(args.dask)
        except Exception as exc:  # a bad address, or no scheduler there
            raise InputError(f"--dask {args.dask!r}: cannot connect to a dask scheduler there "
                             f"({type(exc).__name__}: {exc})") from None
        chosen: list = []

        def on_one_worker(run, params):
            # the side-by-side rounds, one at a time on one worker: the hardware the search timed.
            # One alive now: a worker that died during the search (restarted by its nanny under
            # another address, or gone) held its rounds for ever when it was chosen at the start;
            # should it die during them, the others take them over.
            alive = sorted(client.scheduler_info().get("workers", {}))
            if not chosen or chosen[0] not in alive:
                chosen[:] = alive[:1]
            return client.submit(run, params, pure=False, workers=chosen or None,
                                 allow_other_workers=bool(chosen)).result()

        return client.get_executor(), lambda interrupted=False: client.close(), on_one_worker
    if args.workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=args.workers)
        # Interrupted: the programs running were killed; do not wait for the queued ones.
        return (pool, lambda interrupted=False: pool.shutdown(wait=not interrupted, cancel_futures=interrupted),
                None)
    return None, lambda interrupted=False: None, None


def _progress(total, quiet):
    try:
        from gdtools.cli.progress import progress_bar
    except ImportError:  # pragma: no cover - the module ships with gdtools
        from tqdm import tqdm
        return tqdm(total=total, desc="tune", unit="eval", disable=quiet, file=sys.stderr)
    return progress_bar(total, desc="tune", quiet=quiet, unit="eval")


def run(args) -> int:
    import gdtools as gd
    from gdtools.history import History
    from gdtools.timing import (best_measured, last_iterate, pick_best, remeasure, stop_running_programs,
                                time_command)

    command = _command(args)
    if not args.param and any(a == "--param" or a.startswith("--param=") for a in command):
        # argparse hands everything from the program on to the program
        raise InputError(f"give at least one --param {_SPEC_HELP}, before the program: the options "
                         f"after it ({shlex.join(command[:1])} ... --param ...) are the program's")
    space = parse_space(args.param)
    start = parse_start(args.start, space)
    _check_options(args)
    objective = time_command(command, space, repeats=args.repeats, warmup=args.warmup,
                             timeout=args.timeout, objective=args.objective, statistic=args.statistic)
    unit = ", s" if args.objective == "time" else ""
    _check_budget(args, gd.estimators.resolve(args.gradient), len(space.names))

    # (a bad --dask address fails here, before the progress bar; `run_on` runs the side-by-side
    # rounds on the cluster, whose client stays open for them)
    executor, close, run_on = _executor(args)
    bar = _progress(args.budget, args.quiet)
    best_seen = [math.inf]

    def callback(state):
        if math.isfinite(state.fun):
            best_seen[0] = min(best_seen[0], state.fun)
        # the text first: a line the update prints shows this iteration's loss beside its count
        bar.set_postfix_str(f"current {state.fun:.4g}  best {best_seen[0]:.4g}", refresh=False)
        bar.update(max(0, min(state.nfev, args.budget) - bar.n))
        return None

    gradient = args.gradient
    if args.perturbation is not None:
        gradient = (gd.estimators.SPSA(c=args.perturbation) if args.gradient == "spsa" else
                    gd.estimators.resolve(args.gradient).__class__(step=args.perturbation))
    interrupted = False
    try:
        res = gd.minimize(objective, start, space=space, gradient=gradient, seed=args.seed,
                          max_evals=args.budget, executor=executor, history=args.history,
                          resume=args.resume,
                          on_failure="stop" if args.penalty is None else args.penalty,
                          max_failures=args.max_failures, callback=callback)
        # The callback runs after each iteration; the final measurement of the result comes after
        # the last one: count it too, so a finished bar shows every evaluation made.
        bar.update(max(0, min(res.nfev, args.budget) - bar.n))
        if not any(r.get("status", "ok") == "ok" for r in res.history.evaluations):
            # every run failed (a setup mistake), --penalty standing for each: as a start that
            # fails without it, an error, not a search whose start is compared side by side
            raise InputError(f"{res.message} Nothing to tune from there")
    except InputError as exc:  # named as the CLI user set them
        message = _cli_names(str(exc), args, start)
        if args.history and not args.resume and _only_failures(args.history):
            # a new file that holds nothing but a start that failed (a setup mistake): kept, it
            # would refuse the same command once the program is fixed, and --resume would replay
            # the failures instead of running it
            os.remove(args.history)
            message += f" ({args.history}, which held only the failed runs, was removed)"
        raise InputError(message) from None
    except KeyboardInterrupt as exc:
        interrupted = True
        close(interrupted)       # Ctrl-C: no queued run starts (pending futures cancelled) ...
        stop_running_programs()  # ... and the programs being timed stop too
        _print_best_so_far(getattr(exc, "history", None), objective)  # without --history, all there is
        if args.history and not args.resume and _nothing_measured(args.history):
            # stopped in its first evaluation (a wrong option seen at once): a new file of nothing
            # but its meta line would refuse the corrected command, and holds nothing to lose
            os.remove(args.history)
        raise
    finally:
        bar.close()
        if not interrupted and (run_on is None or sys.exc_info()[0] is not None):
            close()  # (a cluster's client stays open for the side-by-side rounds, unless this failed)

    measured_values = [r.get("value") for r in res.history.evaluations if r.get("status") == "ok"]
    if len(measured_values) >= 3 and len(set(measured_values)) == 1:
        print(f"gdtools tune: warning: all {len(measured_values)} evaluations measured the same value, "
              f"{measured_values[0]:.6g}: the settings seem not to change it (is that the number the "
              f"program prints for its result, and do the placeholders reach it?)", file=sys.stderr)

    if args.resume and "side_by_side" in res.history.meta:
        # a finished run resumed: the side-by-side of its first end is not this end's
        History.append_meta(args.history, side_by_side=None)

    # Compare the start with the tuner's final point and its best-measured point, side by side.
    candidates, labels = [start], ["start"]
    # A result that stands in for a final point that failed, was worse or was never measured (the
    # budget ran out) is the best-measured point itself; the final point is then the last iterate.
    stand_in = bool(res.history.iterations) and res.history.iterations[-1].get("final") == "best measured"
    found = ((("final point", last_iterate(res.history, space)), ("best-measured point", res.x))
             if stand_in else (("final point", res.x), ("best-measured point", best_measured(res.history))))
    for label, point in found:
        if point is not None and dict(point) not in candidates:
            candidates.append(dict(point))
            labels.append(label)
    rounds = args.final_rounds if args.final_rounds is not None else max(3, args.repeats)
    if not args.quiet:
        print(f"gdtools tune: comparing {_count(len(candidates), 'setting')} side by side, "
              f"{'up to ' if args.objective != 'time' else ''}{_count(rounds, 'run')} each", file=sys.stderr)
    failed = sum(1 for r in res.history.evaluations if r.get("status") == "failed")
    failures = (f" ({failed} failed{_penalty_words(args.penalty, res.history.evaluations)})" if failed else "")
    searched = (f"{_cli_names(res.message, args)} {_count(res.nfev, 'evaluation')}{failures}, "
                f"{_count(res.nit, 'iteration')}.")
    try:
        measured = remeasure(objective, candidates, rounds=rounds, warmup=min(1, args.warmup), run_on=run_on)
    except KeyboardInterrupt:  # the search is done: its answer is printed, not lost
        stop_running_programs()
        print(searched)
        print(f"interrupted while measuring the settings again side by side; the search's final point: "
              f"{dict(res.x)} (best command: {shlex.join(objective.command(res.x))})")
        if args.history:
            print(f"history: {args.history}")
        raise
    finally:
        if run_on is not None:
            close()
    # rounds run: fewer than asked where printed numbers repeated exactly (see remeasure); the
    # samples leave out the runs that failed, which ran too ('2 runs each ... (1 of 3 runs failed)')
    rounds = measured.rounds
    best_i = pick_best(measured)
    print(searched)
    if best_i is None:
        print(f"None of the {_count(len(candidates), 'setting')} could be measured again: every run failed "
              f"(up to {_count(rounds, 'run')} each; a setting whose first two runs failed "
              f"is not run again): "
              + "; ".join(f"{label}: {m.error}" for label, m in zip(labels, measured)))
        if args.history:
            print(f"history: {args.history}")
        if args.plot:  # the search's curve, without side-by-side lines: none was measured
            _plot(res.history, args.plot, {})
        return 1
    m_start, m_best = measured[0], measured[best_i]
    best = candidates[best_i]
    if args.history:  # kept with the run, so that `gdtools plot` draws them too
        History.append_meta(args.history, side_by_side={
            "rounds": rounds, "best": labels[best_i],
            "settings": {label: {"params": dict(point), "value": m.value, "spread": m.spread,
                                 "samples": list(m.samples), "status": m.status, "error": m.error}
                         for label, point, m in zip(labels, candidates, measured)}})

    print(_table(space, start, best, m_start, m_best, unit, args.objective))
    side = ", ".join(f"{label} {_cell(m)}" + (f" ({m.error.split(';')[0]})" if m.status == "ok" and m.error else "")
                     for label, m in zip(labels, measured))
    passed_over = any(m.status == "ok" and m.value < m_best.value for m in measured)
    print(f"side by side ({_count(rounds, 'run')} each): {side}; "
          f"best: the {labels[best_i]}" + (" (the fastest that never failed)" if passed_over else ""))
    close_calls = [label for i, (label, m) in enumerate(zip(labels, measured))
                   if i != best_i and _within_noise(m, m_best)]
    if close_calls:
        print(f"within the measurement noise of the best: the {' and the '.join(close_calls)} (apart by less "
              f"than twice the noise of the difference); more --final-rounds would tell them apart")
    if m_start.status == "ok" and m_best.status == "ok" and m_best.value > 0 and m_start.value > 0:
        word = "speedup" if args.objective == "time" else "improvement (start / best)"
        print(f"{word}: {m_start.value / m_best.value:.2f}x")
    elif m_start.status != "ok":
        print(f"the start point failed when measured again: {m_start.error}")
    else:
        print("no ratio: it needs positive values (the start's and the best's)")
    # "worse" is the search's verdict from one measurement at each end; the side-by-side rounds
    # just measured are the better evidence, and a setting they show faster than the start beyond
    # the noise is what the user ran the search for
    overruled = (res.status == "worse" and best_i != 0 and m_start.status == "ok" and m_best.status == "ok"
                 and math.isfinite(math.hypot(m_start.noise, m_best.noise))  # rounds that show their noise
                 and m_best.value < m_start.value and not _within_noise(m_start, m_best))
    if overruled:
        print(f"the search's last iterate measured worse than its start, but side by side the "
              f"{labels[best_i]} beats the start beyond the noise: exit status 0")
    print("best command: " + shlex.join(objective.command(best)))
    if args.history:
        print(f"history: {args.history}")
    if args.plot:
        # The side-by-side measurements the table reports, so the figure tells the same story.
        again = {"start, measured again": m_start.value}
        if best_i:
            again[f"best ({labels[best_i]}), measured again"] = m_best.value
        _plot(res.history, args.plot, again)  # a start that failed again is nan: not drawn
    return 0 if res.success or overruled else 1


def _plot(history, path: str, again: dict) -> None:
    """The loss curve of the search, with the side-by-side values ``again`` ({label: value}) marked."""
    from gdtools.plotting import mark_values, plot_history

    # labelled by meta["measured"], which gd.minimize records from the timed objective
    fig = plot_history(history, x="evals", params=True)
    if again:
        mark_values(fig, again)
    fig.savefig(path, dpi=120)
    print(f"loss curve: {path}")
