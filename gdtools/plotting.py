"""Loss curves and run reports: :func:`plot_history`.

One figure shows one run or several side by side: the raw loss of each iteration (thin, faint), the
running best (solid), a shaded band where the objective was measured with repeats (noise made
visible), red crosses for failed evaluations, a star for the engine's closing measurement of the
result (kept apart from the curve: for SPSA and smoothing the iteration losses are means of probes
around ``x``, not ``f(x)``), and optional panels for the parameter trajectories and the gradient
norm. Matplotlib is imported inside the function, so ``import gdtools`` never loads it,
and the figure is drawn on the headless Agg canvas; nothing is shown, the figure is returned::

    fig = gd.plot_history([run_spsa.history, run_central.history], x="evals", log=True)
    fig.savefig("loss.png", dpi=150)

Reading the band: at each iteration, the evaluation records of that iteration that hold two or
more ``samples`` each give the standard deviation of one measurement (the sample standard
deviation of their repeats); the band is ``y ± the median of those``. It is the noise of a single
evaluation, not an error bar on the mean, so a curve that moves by less than the band's width has
not clearly moved at all.
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import Mapping, Sequence

import numpy as np

from gdtools.errors import InputError
from gdtools.history import History
from gdtools.optax_description import differing_settings, short_description

X_AXES = ("iteration", "evals", "time")
#: ``y`` may also name any other numeric field of the iteration records (e.g. one added by a callback).
Y_BUILTIN = ("loss", "value")

_X_LABELS = {"iteration": "iteration", "evals": "objective evaluations", "time": "time (s, compilation left out)"}
#: With more coordinates than this, an unnamed parameter vector is drawn without a legend.
_MAX_LEGEND_COORDS = 10
#: Named parameters get one panel each, up to this many; beyond it, the first ones are shown (and
#: the others named above them).
_MAX_PARAM_PANELS = 8
#: A loss-panel legend of more entries than this goes above the panel, in two columns where its
#: labels fit side by side (see _place_legend), where the
#: figure's layout makes room for it (constrained layout, as plot_history's own figures have): in a
#: panel full of curves, bands and reference lines, loc="best" finds no corner that long a legend
#: leaves free, and it covers the data.
_LEGEND_INSIDE_MAX = 4
#: Rows of a legend above the panel that plot_history's figure holds at its own height; each row
#: beyond them makes the figure this many inches taller, so the panels keep their height.
_LEGEND_ROWS_FREE = 4
_LEGEND_ROW_INCHES = 0.19
#: The line style of each pass through the colour cycle: runs beyond its colours (10 by default)
#: take them again, dashed, then dotted, ..., so that no two runs in a figure look the same.
_RUN_LINESTYLES = ("-", "--", ":", "-.")


def plot_history(
    histories: History | Sequence[History],
    *,
    x: str = "iteration",
    y: str = "loss",
    best: bool = True,
    band: bool = True,
    log: bool = False,
    params: bool = False,
    grad_norm: bool = False,
    labels: Sequence[str] | None = None,
    ax=None,
):
    """Draw the loss curve of one run, or of several runs in one figure.

    Args:
      histories: a :class:`~gdtools.History` or a sequence of them (one curve each, one colour each);
        a :class:`~gdtools.Result` stands for its history; a dict ``{label: run}`` labels its runs.
      x: the horizontal axis: ``"iteration"``; ``"evals"``, the cumulative number of objective
        evaluations (``nfev``), the honest axis for comparing estimators since an SPSA step costs 2
        evaluations and a central-difference step ``2n``; or ``"time"``, seconds since the start on
        the iteration records' clock (JAX's compilation left out), where each evaluation sits at the
        time of its iteration's record.
      y: ``"loss"``, the loss of each iteration; ``"value"``, every evaluation record's value as a
        point (black-box runs, like Optuna's optimisation history); or the name of another numeric
        field of the iteration records, such as a noise-free loss added after the run.
      best: also draw the running best (minimum so far) as a solid line; the raw values go faint.
      band: shade ``y ± the typical standard deviation of one evaluation`` where evaluations were
        repeated (see the module docstring); with ``y="value"``, error bars on each point instead;
        none around another field (a noise-free loss does not have the measurements' noise).
      log: logarithmic vertical axis (no plotted value may then be negative; values of exactly 0
        are left off it and marked with a tick along the bottom edge). A band's lower
        edge stops a factor :data:`LOG_BAND_FLOOR` (10) below the run's lowest value: noise as large
        as the value would reach zero, which a log axis cannot show.
      params: add panels of the parameter trajectories: the iteration records' ``params`` (user
        units) when present, else their ``x`` mapped to user units through ``meta["space"]`` (the
        unit-cube point of a :class:`~gdtools.space.Space`), else the raw coordinates of ``x``;
        the evaluated points are faint dots when evaluation records hold ``params``; a parameter
        that ``meta["space"]`` marks as ``log`` gets a logarithmic axis.
      grad_norm: add a panel of the gradient norm, on a log axis unless none is positive (norms of
        exactly 0 are left off it and marked along the bottom edge).
      labels: one legend label per history; by default the estimator and optimizer named in each
        history's ``meta``, else the file name.
      ax: a Matplotlib ``Axes`` to draw the loss panel into (only without extra panels). Calls into
        one axes overlay their runs as one call with a list would (next colours, one legend, default
        labels told apart); they must use the same ``x``, ``y`` and ``log`` (``ax.clear()`` resets).

    Returns:
      the ``matplotlib.figure.Figure`` (save it with ``fig.savefig("loss.png")``).

    Raises:
      InputError: an unknown ``x`` or ``y``, ``labels`` of the wrong length, ``ax`` with extra
        panels or already holding runs drawn with another ``x``, ``y`` or ``log``, ``log=True``
        with negative values (or none above 0), or a history without the records asked for.
    """
    if isinstance(histories, Mapping):  # {label: run}, as a user names runs to compare
        labels = list(map(str, histories)) if labels is None else labels
        histories = list(histories.values())
    runs = _as_list(histories)
    if x not in X_AXES:
        raise InputError(f"`x` must be one of {', '.join(map(repr, X_AXES))}; got {x!r}")
    _check_y(runs, y)
    if ax is not None and (params or grad_norm):
        raise InputError("`ax` holds only the loss panel; leave `ax=None` to get the "
                         "`params`/`grad_norm` panels in a new figure")
    # Runs drawn into this axes by earlier calls (ax=...): the new ones take the next colours and
    # join their legend entries, so that a loop of calls overlays runs as one call would. Kept on
    # the axes, and forgotten once their lines are gone from it (ax.clear() between calls).
    state = _axes_state(ax) if ax is not None else _new_state()
    if state["runs"] and state["view"] != (x, y, bool(log)):
        keys = [k for k, held, asked in zip(("x", "y", "log"), state["view"], (x, y, bool(log))) if held != asked]
        held = ", ".join(f"{k}={v!r}" for k, v in zip(("x", "y", "log"), state["view"]) if k in keys)
        asked = ", ".join(f"{k}={v!r}" for k, v in zip(("x", "y", "log"), (x, y, bool(log))) if k in keys)
        raise InputError(f"`ax` already holds runs drawn with {held}; this call asks for {asked}: runs "
                         "overlaid in one axes need the same x, y and log (draw into another axes, or "
                         "call ax.clear() first)")
    facts = [_label_facts(run, len(state["runs"]) + i) for i, run in enumerate(runs)]
    earlier_defaults = [f for _, f in state["defaults"]]
    names = _labels(facts, labels, earlier=earlier_defaults)
    series = [_series_or_error(run, name, x=x, y=y) for run, name in zip(runs, names)]
    if log:
        _check_positive(series, y)
    param_names = _param_names(runs) if params else []
    hidden = param_names[_MAX_PARAM_PANELS:]  # named above the panels, not dropped without a word
    param_names = param_names[:_MAX_PARAM_PANELS]

    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    if ax is None:
        n_param_panels = max(1, len(param_names)) if params else 0
        n_panels = 1 + n_param_panels + int(grad_norm)
        ratios = [2.2] + [1.0] * (n_panels - 1)
        # A Figure not registered with pyplot: headless, no GUI backend, freed with its last reference.
        fig = Figure(figsize=(8, 3.6 + 1.9 * (n_panels - 1)), layout="constrained")
        # (its height without a legend's extra rows, and the height it was last given for them)
        fig.__dict__["_gdtools_height"] = (fig.get_figheight(), fig.get_figheight())
        axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": ratios})[:, 0]
        main_ax = axes[0]
    else:
        fig, main_ax, axes = ax.figure, ax, [ax]
    main_ax.__dict__["_gdtools_plot"] = state
    state["view"] = (x, y, bool(log))
    earlier = state["runs"]
    drawn_before = list(main_ax.lines)
    linestyles = [_RUN_LINESTYLES[(len(earlier) + i) // len(colors) % len(_RUN_LINESTYLES)]
                  for i in range(len(series))]
    colors = colors[len(earlier) % len(colors):] + colors[:len(earlier) % len(colors)]
    several = len(earlier) + len(series) > 1

    style = {"raw": False, "band": False, "failed": 0, "nonfinite": 0, "zero": 0, "final": False,
             "stand_in": False, "probes": ""}
    if y == "loss":  # SPSA's and smoothing's iteration losses are means of probes around x, not f(x)
        kinds = sorted({_describe(run.meta.get("estimator")) for run in runs} & set(PROBE_MEAN_ESTIMATORS))
        style["probes"] = " and ".join(PROBE_MEAN_ESTIMATORS[kind] for kind in kinds)
    for i, s in enumerate(series):
        color = colors[i % len(colors)]
        _draw_main(main_ax, s, color=color, ls=linestyles[i], marks_color=color if several else "red", best=best,
                   band=band, y=y, style=style, log=log)
    if several:  # marks an earlier call drew red, for one run, take their run's colour now
        for line, color in state["marks"]:
            line.set_color(color)
            line.set_markerfacecolor(color)
    state["lines"].extend(line for line in main_ax.lines if line not in drawn_before)
    before = state["style"]  # what earlier calls drew here, for the legend
    probes = " and ".join(dict.fromkeys(part for text in (before.get("probes") or "", style["probes"])
                                        for part in text.split(" and ") if part))
    style = {key: value + before.get(key, 0) if key in ("failed", "nonfinite", "zero")
             else value or before.get(key, False) for key, value in style.items()}
    style["probes"] = probes  # SPSA's and smoothing's, from this call and the earlier ones
    state["style"] = style

    # A tuning run's loss and values are what it measured: its units (the same for every run here,
    # those drawn by earlier calls too, or the plain word)
    units = {measured_label(run.meta) for run in runs} if y in ("loss", "value") else {None}
    if state.get("units") is not None:
        units |= state["units"]
    state["units"] = units
    main_ax.set_ylabel(units.pop() if len(units) == 1 and None not in units else _y_label(y))
    if log:
        main_ax.set_yscale("log")
    main_ax.grid(True, which="major", alpha=0.3)

    handles = [Line2D([], [], color=colors[i % len(colors)], lw=2, ls=linestyles[i], label=s["label"])
               for i, s in enumerate(series)]
    if labels is None and earlier_defaults:
        # the earlier runs' labels, told apart from the new runs' as one call with them all would
        for (handle, _), name in zip(state["defaults"], _labels(earlier_defaults + facts, None)):
            handle.set_label(name)
    earlier.extend(handles)
    if labels is None:
        state["defaults"].extend(zip(handles, facts))
    handles = list(earlier)
    gray = "0.35"
    if style["raw"]:
        handles.append(Line2D([], [], color=gray, lw=1, alpha=0.45,
                              marker="." if y == "value" else None,
                              ls="none" if y == "value" else "-",
                              label="each evaluation" if y == "value" else
                              f"raw ({style['probes']}: mean of the probes around x)" if style["probes"] else "raw"))
        handles.append(Line2D([], [], color=gray, lw=2, label="best so far"))
    if style["final"]:
        handles.append(Line2D([], [], color=gray, marker="*", ms=10, ls="none",
                              label="final measurement of the result"))
    if style["stand_in"]:
        handles.append(Line2D([], [], color=gray, marker="*", ms=10, ls="none", markerfacecolor="none",
                              label="result: the best point measured during the run"))
    if style["band"]:
        handles.append(Patch(color=gray, alpha=0.2, label="± sd of one evaluation"))
    marks = gray if several else "red"  # with several runs each run's marks take its colour
    if style["failed"]:
        handles.append(Line2D([], [], color=marks, marker="x", ls="none",
                              label=f"failed evaluation ({style['failed']})"))
    if style["nonfinite"]:
        handles.append(Line2D([], [], color=marks, marker="v", markeredgecolor="black", markeredgewidth=0.5,
                              ls="none", label=f"nan or infinite {_y_label(y)} ({style['nonfinite']})"))
    if style["zero"]:
        handles.append(Line2D([], [], color=gray, marker="|", ms=8, ls="none",
                              label=f"{_y_label(y)} exactly 0, off the log axis ({style['zero']})"))
    _place_legend(main_ax, handles)

    panel = 1
    try:
        if params:
            panel_axes = axes[panel:panel + max(1, len(param_names))]
            _draw_params(panel_axes, runs, series, param_names, x=x, colors=colors, linestyles=linestyles)
            if hidden:
                panel_axes[0].set_title(f"parameters: the first {len(param_names)} of "
                                        f"{len(param_names) + len(hidden)} (not shown: {', '.join(hidden[:5])}"
                                        f"{', ...' if len(hidden) > 5 else ''})",
                                        loc="left", fontsize="small")
            panel += len(panel_axes)
        if grad_norm:
            _draw_grad_norm(axes[panel], runs, series, x=x, colors=colors, linestyles=linestyles)
    except (TypeError, ValueError, KeyError) as exc:
        # A hand-edited or foreign file: valid JSON, but not the numbers a history holds.
        raise InputError(f"a history has a record whose {'parameters' if params else 'gradient norm'} cannot "
                         f"be plotted ({type(exc).__name__}: {exc})") from None
    compiled = x == "time" and any(run.meta.get("engine") == "compiled" for run in runs)
    # evaluations drawn as points (values, probes) sit at their iteration's time: the label says so
    placed = x == "time" and (y == "value" or params and any(
        isinstance(r.get("params"), dict) for run in runs for r in run.evaluations))
    axes[-1].set_xlabel(_X_LABELS[x] + ("; compiled runs: per-iteration times interpolated" if compiled else "")
                        + ("; evaluations at the end of their iteration" if placed else ""))
    lone_x = {float(v) for s in series for v in np.asarray(s["x"])[np.isfinite(s["x"])]}
    if len(lone_x) == 1 and len(earlier) == len(series):  # one point on the axis (and no earlier run's):
        # a range around it, not +-0.05 of it: half a count either side (its own tick alone, no
        # iteration -1), a second of time from 0 at the lowest (no negative seconds); as data
        # limits, not fixed ones, so that runs drawn into the axes later still widen it
        middle = lone_x.pop()
        low, high = (middle - 0.5, middle + 0.5) if x in ("iteration", "evals") else (max(0.0, middle - 1), middle + 1)
        main_ax.update_datalim([(low, 0.0), (high, 0.0)], updatey=False)
        main_ax.autoscale_view(scaley=False)
    if ax is None and x in ("iteration", "evals"):  # counts: no tick at 2.5
        from matplotlib.ticker import MaxNLocator
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # (a lone count's tick alone)
    return fig


def mark_values(fig, values, *, styles=(":", "--", "-.")):
    """Horizontal reference lines on the loss panel of a :func:`plot_history` figure, one per
    ``label -> value`` (nan values are skipped), added to its legend: e.g. the start and the best
    setting measured again side by side at the end of a tuning run, beside the search's own curve.
    A value of 0 or less on a log axis has no line: the legend gives it as a number."""
    from matplotlib.lines import Line2D

    ax = fig.axes[0]
    legend = ax.get_legend()
    handles = list(legend.legend_handles) if legend is not None else []
    for i, (label, value) in enumerate(values.items()):
        if value is None or not np.isfinite(value):
            continue
        if value <= 0 and ax.get_yscale() == "log":
            handles.append(Line2D([], [], ls="none", label=f"{label}: {value:.4g} (not on the log axis)"))
            continue
        handles.append(ax.axhline(value, color="black", lw=1.2, ls=styles[i % len(styles)], label=label))
    _place_legend(ax, handles)
    return fig


def _place_legend(ax, handles) -> None:
    """The loss panel's legend: in the panel's least crowded corner, or above it when it is long
    (see _LEGEND_INSIDE_MAX) or wide (an entry wider than half the panel covers its curves), in two
    columns where the labels fit in them side by side (spread over the panel's width, wider ones
    were written over each other), else in one."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    above = isinstance(ax.figure.get_layout_engine(), ConstrainedLayoutEngine)
    width = _panel_width(ax)
    if above:  # a label wider than the panel runs off the page: it takes as many lines as it needs
        frame = _legend_width([[]])  # the handle and the padding beside a label
        for handle in handles:
            label = str(handle.get_label())
            text = _legend_width([[handle]]) - frame
            if text > width - frame and "\n" not in label:
                fits = 0.95 * len(label) * (width - frame) / text  # characters a line holds, about
                handle.set_label(textwrap.fill(label, max(20, int(fits))))
    rows = math.ceil(len(handles) / 2)
    if above and (len(handles) > _LEGEND_INSIDE_MAX or _legend_width([handles]) > width / 2):
        ncol = 2 if len(handles) > 1 and _legend_width([handles[:rows], handles[rows:]]) <= width else 1
        ax.legend(handles=handles, fontsize="small", loc="lower left", bbox_to_anchor=(0, 1.02, 1, 0),
                  mode="expand", ncol=ncol, borderaxespad=0)
        lines = [str(h.get_label()).count("\n") + 1 for h in handles]
        rows = sum(lines) if ncol == 1 else max(sum(lines[:rows]), sum(lines[rows:]))
    else:
        ax.legend(handles=handles, fontsize="small", loc="best")
        rows = 0
    # plot_history's own figure grows, not its panels; one its user resized (before mark_values) keeps
    # the user's size
    base, given = ax.figure.__dict__.get("_gdtools_height", (None, None))
    if base is not None and ax.figure.get_figheight() == given:
        height = base + max(0, rows - _LEGEND_ROWS_FREE) * _LEGEND_ROW_INCHES
        ax.figure.set_figheight(height)
        ax.figure.__dict__["_gdtools_height"] = (base, ax.figure.get_figheight())


def _panel_width(ax) -> float:
    """About how wide ``ax`` will be once the figure's layout is done, in points: its share of the
    width its figure gives its axes, less a tenth of the figure for the vertical axis' labels (the
    layout runs only when the figure is drawn, where it would cost as much as drawing)."""
    params = ax.figure.subplotpars
    # (at most all of it: once drawn, the layout has widened the axes past the subplot parameters)
    share = min(ax.get_position().width / max(params.right - params.left, 1e-9), 1.0)
    return 0.9 * share * ax.figure.get_figwidth() * 72


def _legend_width(columns) -> float:
    """The width in points of a small-font legend with these columns of handles: each column its
    widest label and a handle beside it, and the frame's padding."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    size = FontProperties(size="small").get_size_in_points()

    def text_width(label: str) -> float:
        try:
            # (drawn on a canvas, text runs about 5% wider than its outline)
            return 1.06 * TextPath((0, 0), label, size=size).get_extents().width
        except Exception:  # (a label Matplotlib's mathtext cannot parse: an estimate by its length)
            return 0.6 * size * len(label)

    widest = [max((text_width(str(h.get_label())) for h in column), default=0.0) for column in columns]
    return sum(widest) + size * (2.8 * len(widest) + 0.8)


def measured_again(meta: dict) -> dict:
    """``label -> value`` of the side-by-side measurements ``gdtools tune`` recorded in a history's
    meta (``side_by_side``): the start, and the best setting when it is not the start, for
    :func:`mark_values`. Empty when there are none."""
    side = meta.get("side_by_side")
    if not isinstance(side, dict) or not isinstance(side.get("settings"), dict):
        return {}
    settings, best = side["settings"], side.get("best")
    values = {}
    for label, measured in settings.items():
        value = measured.get("value") if isinstance(measured, dict) else None
        if not isinstance(value, (int, float)):
            value = math.nan  # a failed measurement ("NaN" in the file): not drawn
        if label == "start":
            values["start, measured again"] = value
        elif label == best:
            values[f"best ({label}), measured again"] = value
    return values


# -- validation and labels -------------------------------------------------------------------------

def _history_of(run):
    """A History, or a Result's (anything with a ``history`` that is one), else ``run`` itself."""
    history = getattr(run, "history", None)
    return history if isinstance(history, History) else run


def _as_list(histories) -> list[History]:
    single = isinstance(histories, History) or isinstance(getattr(histories, "history", None), History)
    runs = [histories] if single else histories
    try:
        runs = [_history_of(run) for run in runs]
    except TypeError:
        raise InputError(f"`histories` must be a History or a list of them; got "
                         f"{type(histories).__name__}") from None
    if not runs:
        raise InputError("`histories` is empty: pass at least one History")
    for i, run in enumerate(runs):
        if not isinstance(run, History):
            raise InputError(f"`histories[{i}]` is a {type(run).__name__}, not a History "
                             "(load a file with gd.History.load(path))")
    return runs


def _numeric_fields(run: History) -> set[str]:
    fields = set()
    for record in run.iterations:
        for key, value in record.items():
            if _is_number(value):
                fields.add(key)
    return fields


def _is_number(value) -> bool:
    """A real number: a Python one, or a NumPy or JAX scalar (a field computed after the run with
    them, before it was saved); not a bool."""
    if isinstance(value, (int, float)):
        return not isinstance(value, bool)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return getattr(value, "shape", None) == () and kind in ("i", "u", "f")


def _check_y(runs: list[History], y: str) -> None:
    if y in Y_BUILTIN:
        return
    available = set.intersection(*(_numeric_fields(run) for run in runs))
    if isinstance(y, str) and y in available:
        return
    extra = sorted(available - {"loss", "iteration", "nfev", "time"})
    allowed = ", ".join(map(repr, Y_BUILTIN + tuple(extra)))
    raise InputError(f"`y` must be one of {allowed} (a numeric field of the iteration records); "
                     f"got {y!r}")


def _describe(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def default_label(run: History, index: int = 0) -> str:
    """The label a run gets by default: its estimator and optimizer, else its file name."""
    optimizer = _describe(run.meta.get("optimizer"))
    if optimizer and optimizer.startswith("default (") and optimizer.endswith(")"):
        optimizer = optimizer[len("default ("):-1]  # the one the engine picked, e.g. "L-BFGS"
    elif optimizer:
        optimizer = short_description(optimizer)  # an optax transformation: "optax adam, lr 0.001"
    parts = [_describe(run.meta.get("estimator")), optimizer]
    # A bare "default" (older histories) says only that the engine picked it.
    parts = [p for p in parts if p and p != "default"]
    if parts:
        return " + ".join(parts)
    if run.path:
        return os.path.basename(run.path)
    return f"run {index + 1}"


def _label_facts(run: History, index: int) -> tuple:
    """What a run's default label is made of: its default label, seed, file and start of a batch."""
    return (default_label(run, index), run.meta.get("seed"), run.path, run.meta.get("batch_index"),
            run.meta.get("estimator"), run.meta.get("optimizer"))


def _differing_settings(estimators: list) -> list[str] | None:
    """For runs of one estimator recorded with their settings (dicts), each run's settings where
    those differ between the runs (``"c=0.1, n_perturbations=1"``); None unless that tells every
    run apart."""
    if not all(isinstance(e, dict) for e in estimators):
        return None
    keys = [k for k in dict.fromkeys(k for e in estimators for k in e) if k != "name"]
    differing = [k for k in keys if len({repr(e.get(k)) for e in estimators}) > 1]
    settings = [", ".join(f"{k}={e.get(k)}" for k in differing) for e in estimators]
    return settings if differing and len(set(settings)) == len(settings) else None


def _labels(facts: list[tuple], labels, *, earlier: Sequence[tuple] = ()) -> list[str]:
    """The legend labels of runs described by ``facts`` (see :func:`_label_facts`): ``labels``, or by
    default their :func:`default_label`, told apart from each other and from the ``earlier`` runs
    with default labels in the same axes."""
    if labels is None:
        every = list(earlier) + list(facts)
        names = [name for name, *_ in every]
        # Two runs of the same method (a seed study, a resumed run, an estimator's or optimizer's
        # settings compared) still need telling apart: by the estimator's settings where those
        # differ, else by the optax optimizer's, else by their seeds, else by file name, else by
        # position.
        original = list(names)
        for i, name in enumerate(original):
            same = [j for j, other in enumerate(original) if other == name]
            if len(same) > 1:
                seeds = [every[j][1] for j in same]
                paths = [every[j][2] for j in same]
                starts = [every[j][3] for j in same]
                settings = _differing_settings([every[j][4] if len(every[j]) > 4 else None for j in same])
                if settings is None:  # optax transformations that differ in a setting the label leaves out
                    settings = differing_settings([every[j][5] if len(every[j]) > 5 else None for j in same])
                if settings is not None:
                    suffix = settings[same.index(i)]
                elif None not in seeds and len(set(map(str, seeds))) == len(seeds):
                    suffix = f"seed {every[i][1]}"
                elif None not in paths and len(set(paths)) == len(paths):
                    suffix = _short_paths(paths)[same.index(i)]
                elif None not in starts and len(set(map(str, starts))) == len(starts):
                    suffix = f"start {every[i][3]}"  # batch=True's starts, numbered as batch_index
                else:
                    suffix = f"#{i + 1}"
                names[i] = f"{name} ({suffix})"
        return names[len(earlier):]
    if isinstance(labels, str):
        labels = [labels]
    labels = [str(label) for label in labels]
    if len(labels) != len(facts):
        raise InputError(f"`labels` has {len(labels)} entries for {len(facts)} histories; "
                         "give one label per history")
    return labels


def _new_state() -> dict:
    return {"runs": [], "marks": [], "style": {}, "lines": [], "defaults": [], "view": None, "units": None}


def _axes_state(ax) -> dict:
    """What earlier calls drew into ``ax``: their legend handles, marks, legend style, lines, the
    runs with default labels (handle, facts) and the axes they were drawn with (x, y, log); a new
    one where there were none or their lines are gone (``ax.clear()``)."""
    state = ax.__dict__.get("_gdtools_plot")
    if state is None or not all(line in ax.lines for line in state["lines"]):
        state = _new_state()
    return state


def _short_paths(paths: list[str]) -> list[str]:
    """The shortest ending of each of these different paths that tells it from the others:
    ``run.jsonl`` where the names differ, ``e1/run.jsonl`` and ``e2/run.jsonl`` where only folders do."""
    parts = [os.path.normpath(os.path.abspath(path)).split(os.sep) for path in paths]
    for depth in range(1, max(map(len, parts)) + 1):
        tails = [os.sep.join(p[-depth:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return list(paths)


def measured_label(meta: dict) -> str | None:
    """What the values of a ``gdtools tune`` run are, from its history's ``meta["measured"]``
    (``objective``, ``statistic``, ``repeats``): ``"run time (s, median of 3 runs)"`` or ``"the number
    the program printed"``; None for other histories (and tuning runs recorded before it was kept)."""
    measured = meta.get("measured")
    if not isinstance(measured, dict):
        return None
    if measured.get("objective") == "time":
        statistic, repeats = measured.get("statistic"), measured.get("repeats")
        counted = isinstance(repeats, int) and not isinstance(repeats, bool)
        if counted and repeats == 1:
            return "run time (s, one run)"
        if counted and isinstance(statistic, str):
            return f"run time (s, {statistic} of {repeats} runs)"
        return "run time (s)"
    if measured.get("objective") == "stdout":
        return "the number the program printed"
    return None


def _y_label(y: str) -> str:
    return {"loss": "loss", "value": "evaluated value"}.get(y, y.replace("_", " "))


# -- the data behind each curve -------------------------------------------------------------------

def _iteration_x(run: History, called: str, x: str) -> np.ndarray:
    if x == "iteration":
        xs = run.column("iteration")
        return np.where(np.isnan(xs), np.arange(len(xs), dtype=float), xs)
    if x == "evals":
        xs = run.column("nfev")
        if np.isnan(xs).any():
            raise InputError(f"x='evals': history {called} has iteration records without `nfev`")
        first = run.evaluations[0] if run.evaluations else None
        if (first is not None and xs[0] > 1 and run.iterations[0].get("iteration") == 0
                and first.get("value") is not None and run.iterations[0].get("loss") == first.get("value")):
            # A black box's iteration 0 holds the start's own measurement, the run's first
            # evaluation: drawn there, where its dot is, not after the first gradient's probes.
            xs = xs.copy()
            xs[0] = 1.0
        return xs
    xs = run.column("time")
    if np.isnan(xs).any():
        raise InputError(f"x='time': history {called} has iteration records without `time`")
    return xs


def _evaluation_sd(records: list[dict]) -> float:
    """Median over records with repeats of the sample sd of their samples (nan if none)."""
    sds = []
    for record in records:
        samples = record.get("samples")
        if isinstance(samples, list) and len(samples) >= 2:
            values = np.asarray([np.nan if v is None else v for v in samples], dtype=float)
            values = values[np.isfinite(values)]
            if len(values) >= 2:
                sds.append(float(np.std(values, ddof=1)))
    return float(np.median(sds)) if sds else np.nan


def _evaluation_number(record: dict) -> int:
    """An evaluation's place in its run, from 0: its ``index`` (a resumed run that measured again
    from some point on numbers its records in the file after the ones it replaced), else ``eval``."""
    index = record.get("index")
    return int(record["eval"] if index is None else index)


def _failed(record: dict) -> bool:
    """A failed evaluation: its status says so, or its value is nan or infinite (files written
    before the engine recorded such values as failed)."""
    value = record.get("value")
    return record.get("status", "ok") != "ok" or (isinstance(value, (int, float)) and not np.isfinite(value))


def _evals_x(run: History, records: list[dict], x: str, it_x: np.ndarray, it_numbers: np.ndarray) -> np.ndarray:
    """Where these evaluation records sit on the horizontal axis (nan where one cannot be placed).

    On the time axis an evaluation sits at the time of its iteration's record, on the iteration
    clock, which leaves JAX's compilation (and the pause before a resume) out: the time by which it
    was done. The evaluations after the last record (a run stopped mid-iteration) follow it by the
    wall-clock seconds since the last evaluation of a recorded iteration ended."""
    if x == "evals":
        return np.array([_evaluation_number(r) for r in records], dtype=float) + 1.0
    iterations = [r.get("iteration") for r in records]
    if x == "iteration":
        return np.array([np.nan if i is None else i for i in iterations], dtype=float)
    at = {}  # iteration number -> time of its (first) record
    for number, t in zip(it_numbers.tolist(), np.asarray(it_x, dtype=float).tolist()):
        if np.isfinite(number):
            at.setdefault(int(number), t)
    if not at:
        return np.full(len(records), np.nan)
    last = max(at)
    ends = [r.get("t_end") for r in run.evaluations
            if isinstance(r.get("iteration"), (int, float)) and r["iteration"] <= last
            and isinstance(r.get("t_end"), (int, float))]
    t_ref = max(ends) if ends else None
    out = np.empty(len(records))
    for k, (record, i) in enumerate(zip(records, iterations)):
        if i is None:
            out[k] = np.nan
        elif int(i) in at:
            out[k] = at[int(i)]
        else:
            t_end = record.get("t_end")
            later = (t_end - t_ref if t_ref is not None and isinstance(t_end, (int, float))
                     and i > last else 0.0)
            out[k] = at[last] + max(0.0, later)
    return out


def _wall_clock(records: list[dict]) -> np.ndarray:
    """Each record's end, in seconds since the first record's start (nan where not recorded)."""
    starts = [r["t_start"] for r in records if isinstance(r.get("t_start"), (int, float))]
    if not starts:
        return np.full(len(records), np.nan)
    t0 = min(starts)
    return np.array([r["t_end"] - t0 if isinstance(r.get("t_end"), (int, float)) else np.nan for r in records])


def _called(run: History, label: str) -> str:
    """How a message names a run: its legend label, and its file when it has one."""
    name = os.path.basename(run.path) if run.path else None
    return f"{label!r}" + (f" ({name})" if name and name not in label else "")


def _main_series(run: History, label: str, *, x: str, y: str) -> dict:
    series = {"label": label, "called": _called(run, label)}
    called = series["called"]
    if y == "value":
        if not run.evaluations:
            raise InputError(f"y='value': history {called} has no evaluation records "
                             "(only black-box runs record evaluations; use y='loss')")
        if x == "time":
            # the iteration clock, as the iterate lines of the params panel use it: the wall clock
            # of t_start/t_end holds JAX's compilation and the pause before a resume
            if run.iterations:
                it_time = _iteration_x(run, called, x)
                xs = _evals_x(run, run.evaluations, x, it_time, run.column("iteration"))
            else:
                # no iteration yet (a run stopped in its first gradient, a tune watched live): the
                # wall clock of the evaluations, from the first one's start
                xs = _wall_clock(run.evaluations)
        else:
            xs = _evals_x(run, run.evaluations, x, np.zeros(0), np.zeros(0))
        values = run.column("value", records="evaluations")
        failed = np.array([_failed(r) for r in run.evaluations])
        values = np.where(failed, np.nan, values)
        sd = np.array([_evaluation_sd([r]) for r in run.evaluations])
        order = np.argsort(xs, kind="stable")
        try:
            it_x = _iteration_x(run, called, x) if run.iterations else None
        except InputError:
            it_x = None
        series.update(x=xs, y=values, sd=sd, failed_x=xs[failed], order=order, it_x=it_x,
                      final=np.zeros(len(xs), dtype=bool), nonfinite_x=np.zeros(0),
                      stand_in=np.zeros(len(xs), dtype=bool))
        return series

    if not run.iterations:
        hint = (" (it has evaluation records: plot them with y='value')" if run.evaluations else "")
        raise InputError(f"history {called} has no iteration records to plot{hint}")
    xs = _iteration_x(run, called, x)
    values = run.column(y)
    it_numbers = run.column("iteration")
    by_iteration: dict[int, list[dict]] = {}
    for record in run.evaluations:
        if record.get("iteration") is not None:
            by_iteration.setdefault(int(record["iteration"]), []).append(record)
    # the noise of the measured loss: a field of another quantity (a noise-free loss added after the
    # run) does not have it
    sd = np.array([_evaluation_sd(by_iteration.get(int(n), [])) if np.isfinite(n) and y == "loss" else np.nan
                   for n in it_numbers])
    failed_x = _evals_x(run, [r for r in run.evaluations if _failed(r)], x, xs, it_numbers)
    final = np.array([bool(r.get("final")) for r in run.iterations])
    # a closing record of the best point measured during the run, standing in for the result's own
    # measurement (which failed, or came out worse than the start)
    stand_in = np.array([r.get("final") == "best measured" for r in run.iterations])
    present = np.array([r.get(y) is not None for r in run.iterations])  # a field some records lack is no nan
    # A loss left nan by its iteration's failed evaluations is marked by their crosses; the triangle
    # is for a loss that went nan or infinite of itself (a run that diverged)
    failing = {int(r["iteration"]) for r in run.evaluations
               if isinstance(r.get("iteration"), (int, float)) and _failed(r)} if y == "loss" else set()
    by_failure = np.array([bool(np.isfinite(n)) and int(n) in failing for n in it_numbers], dtype=bool)
    series.update(x=xs, y=values, sd=sd, failed_x=failed_x, order=None, it_x=xs, final=final,
                  nonfinite_x=xs[present & ~np.isfinite(values) & ~final & ~by_failure], stand_in=stand_in)
    return series


def _series_or_error(run: History, label: str, *, x: str, y: str) -> dict:
    try:
        return _main_series(run, label, x=x, y=y)
    except InputError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        # A hand-edited or foreign file: valid JSON, but not the numbers a history holds.
        raise InputError(f"history {_called(run, label)} has a record that cannot be plotted "
                         f"({type(exc).__name__}: {exc})") from None


def _running_min(values: np.ndarray) -> np.ndarray:
    filled = np.where(np.isfinite(values), values, np.inf)
    best = np.minimum.accumulate(filled) if len(filled) else filled
    return np.where(np.isfinite(best), best, np.nan)


def _alone(values) -> dict:
    """Line keywords that mark the finite values with no finite neighbour: a line through one point
    draws nothing (a run of one iteration, a gradient norm between two iterations that have none)."""
    finite = np.isfinite(np.asarray(values, dtype=float))
    alone = finite & ~np.r_[False, finite[:-1]] & ~np.r_[finite[1:], False]
    return {"marker": "o", "ms": 3, "markevery": np.flatnonzero(alone).tolist()} if alone.any() else {}


def _check_positive(series: list[dict], y: str) -> None:
    """Values of exactly 0 (a run that reached its minimum) are left off a log axis and marked;
    a negative value has no honest place on it, nor does a figure with nothing positive."""
    for s in series:
        values = s["y"][np.isfinite(s["y"])]
        if len(values) and values.min() < 0:
            raise InputError(f"log=True needs values that are positive (or exactly 0), but {y!r} of {s['called']} "
                             f"reaches {values.min():.6g}; use log=False")
    if not any((s["y"] > 0).any() for s in series) and any((s["y"] == 0).any() for s in series):
        raise InputError(f"log=True needs positive values, but {y!r} is 0 wherever it was recorded; "
                         f"use log=False")


# -- drawing ---------------------------------------------------------------------------------------

#: Estimators whose iteration loss is the mean of probes around x (f near x, a little above it
#: near a minimum), not f(x): the legend says so. Their names in the legend.
PROBE_MEAN_ESTIMATORS = {"spsa": "SPSA", "smoothing": "smoothing"}

#: On a log axis a band's lower edge, y - sd, stops this factor below the run's lowest value: noise
#: as large as the value reaches zero, which a log axis cannot show, and stretching the axis down
#: to the nearest positive edge squashed every curve into the top of the panel.
LOG_BAND_FLOOR = 10.0


def _draw_main(ax, s: dict, *, color, ls, marks_color, best: bool, band: bool, y: str, style: dict,
               log: bool = False) -> None:
    xs, values, sd = s["x"], s["y"], s["sd"]
    if s["order"] is not None:
        xs, values, sd = xs[s["order"]], values[s["order"]], sd[s["order"]]
    positive = values[np.isfinite(values) & (values > 0)]
    floor = positive.min() / LOG_BAND_FLOOR if log and positive.size else -np.inf
    # A value of exactly 0 has no place on a log axis: left off it (the best so far ends where it
    # reaches 0) and marked along the bottom edge where the run reached it
    zero = (values == 0) if log else np.zeros(len(values), dtype=bool)
    best_so_far = lambda v: np.where(log & (_running_min(v) == 0), np.nan, _running_min(v))  # noqa: E731
    exact, values = values, np.where(zero, np.nan, values)
    if y == "value":
        # Every evaluation is a point; the best-so-far line is what the search achieved.
        ax.plot(xs, values, ls="none", marker=".", ms=4, color=color, alpha=0.45 if best else 0.9)
        if band and np.isfinite(sd).any():
            up = np.where(np.isfinite(sd), sd, 0.0)
            down = np.minimum(up, np.maximum(values - floor, 0.0))
            ax.errorbar(xs, values, yerr=np.vstack([down, up]), fmt="none", ecolor=color, alpha=0.3, lw=0.8)
            style["band"] = True
        # one point draws no line, and failures (nan) none at all
        style["raw"] = style["raw"] or (best and int(np.isfinite(values).sum()) >= 2)
        if best:
            ax.plot(xs, best_so_far(exact), color=color, lw=2, ls=ls, drawstyle="steps-post")
    else:
        # The engine's closing record measures the result itself; for SPSA and smoothing the
        # iteration losses are means of probes around x, so it is drawn apart, not joined on.
        final = s["final"]
        lone = int(np.isfinite(values[~final]).sum()) == 1  # a line through one point draws nothing
        ax.plot(xs[~final], values[~final], color=color, lw=1 if best else 2, ls=ls,
                alpha=0.45 if best and not lone else 1.0,
                **({"marker": "o", "ms": 5} if lone else _alone(values[~final])))
        if band and np.isfinite(sd[~final]).any():
            ax.fill_between(xs[~final], np.maximum(values - sd, floor)[~final], (values + sd)[~final],
                            where=np.isfinite(sd[~final]), color=color, alpha=0.2, lw=0,
                            interpolate=False)
            style["band"] = True
        if best:
            ax.plot(xs[~final], best_so_far(exact[~final]), color=color, lw=2, ls=ls)
            # one point draws no line, and nan or infinite losses none at all
            style["raw"] = style["raw"] or int(np.isfinite(values[~final]).sum()) >= 2
        measured = final & ~s["stand_in"] & ~zero  # (a closing measurement of 0 is marked as one)
        if measured.any():
            ax.plot(xs[measured], values[measured], ls="none", marker="*", ms=11, color=color,
                    markeredgecolor="black", markeredgewidth=0.5)
            style["final"] = True
        if s["stand_in"].any():  # a hollow star: not a measurement made at the end
            ax.plot(xs[s["stand_in"]], values[s["stand_in"]], ls="none", marker="*", ms=11, color=color,
                    markerfacecolor="none", markeredgewidth=1.2)
            style["stand_in"] = True
    failed_x = s["failed_x"][np.isfinite(s["failed_x"])] if len(s["failed_x"]) else s["failed_x"]
    # Failures and nan or infinite losses have no place on the value axis: they are marked where
    # they happened along the bottom edge of the panel (in the run's colour when runs are compared).
    edge = dict(ls="none", ms=6, transform=ax.get_xaxis_transform(), clip_on=False)
    if zero.any():  # in the run's colour: a value reached, not a failure
        ax.plot(xs[zero], np.full(int(zero.sum()), 0.03), **{**edge, "ms": 8}, marker="|", color=color)
        style["zero"] += int(zero.sum())
    marks = ax.__dict__["_gdtools_plot"]["marks"]  # (artist, the run's colour)
    if len(failed_x):
        line, = ax.plot(failed_x, np.full(len(failed_x), 0.03), marker="x", color=marks_color, **edge)
        marks.append((line, color))
        style["failed"] += len(failed_x)
    if len(s["nonfinite_x"]):
        line, = ax.plot(s["nonfinite_x"], np.full(len(s["nonfinite_x"]), 0.03), marker="v", color=marks_color,
                        markeredgecolor="black", markeredgewidth=0.5, **edge)
        marks.append((line, color))
        style["nonfinite"] += len(s["nonfinite_x"])


def _space(run: History) -> dict:
    space = run.meta.get("space")
    return space if isinstance(space, dict) else {}


def _param_names(runs: list[History]) -> list[str]:
    names: list[str] = []
    for run in runs:
        for record in list(run.iterations) + list(run.evaluations):
            params = record.get("params")
            if isinstance(params, dict):
                names.extend(k for k in params if k not in names)
        names.extend(k for k in _space(run) if k not in names)
    return names


def _is_log_param(runs: list[History], name: str) -> bool:
    return any(bool((_space(run).get(name) or {}).get("log")) for run in runs)


def _is_int_param(runs: list[History], name: str) -> bool:
    return any(bool((_space(run).get(name) or {}).get("int")) for run in runs)


def _choice_param(runs: list[History], name: str) -> list[str] | None:
    """The values of a parameter that is a Choice in the runs' spaces, named as the panel's ticks
    name them (all runs' lists, in their order; a value written alike in two lists, ``4`` and
    ``"4"``, has one place; lists of increasing numbers merged in increasing order), or None."""
    labels, numeric_elsewhere, increasing = [], False, True
    for run in runs:
        param = _space(run).get(name)
        if not isinstance(param, dict):
            continue
        if "choices" not in param:
            numeric_elsewhere = True
        numbers = [_number_or_none(value) for value in param.get("choices") or []]
        increasing = increasing and None not in numbers and all(a < b for a, b in zip(numbers, numbers[1:]))
        for value in param.get("choices") or []:
            if str(value) not in labels:
                labels.append(str(value))
    if not labels or (numeric_elsewhere and all(_number_or_none(v) is not None for v in labels)):
        return None  # (a list of numbers beside an Int or a Real of that name: drawn as the numbers)
    return sorted(labels, key=_number_or_none) if increasing else labels


def _number_or_none(value) -> float | None:
    """A value of a Choice as a finite number (``4`` or the text ``"4"``), or None (text, booleans)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _as_numbers(values: list, listed: list[str] | None) -> np.ndarray:
    """Parameter values as the numbers a panel draws them at: a Choice's values at the places of
    their names in ``listed`` (the panel's ticks); without one, the numbers themselves (a list's
    numbers as text, "4", at 4)."""
    if listed is not None:
        places = {label: i for i, label in enumerate(listed)}
        values = [None if v is None else places.get(str(v)) for v in values]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _draw_params(axes, runs, series, names, *, x: str, colors, linestyles) -> None:
    if not names:
        # Unnamed parameters: the coordinates of the flat vector x, all in one panel.
        ax = axes[0]
        drawn = 0
        for i, (run, s) in enumerate(zip(runs, series)):
            xs = run.x
            if xs is None or s["it_x"] is None:
                continue
            style_cycle = ["-", "--", ":", "-."]
            # a lone run's coordinates have a legend: up to 4 told apart by line style in the run's
            # colour, up to 10 by colour (one of the colour cycle's each), beyond that none
            own_colours = len(runs) == 1 and 4 < xs.shape[1] <= _MAX_LEGEND_COORDS
            for j in range(xs.shape[1]):
                ax.plot(s["it_x"], xs[:, j], color=colors[j % len(colors)] if own_colours else colors[i % len(colors)],
                        lw=1, ls=style_cycle[j % len(style_cycle)] if xs.shape[1] <= 4 else "-",
                        alpha=1.0 if xs.shape[1] <= 4 or own_colours else 0.5,
                        label=f"x[{j}]" if len(runs) == 1 and xs.shape[1] <= _MAX_LEGEND_COORDS
                        else None, **_alone(xs[:, j]))
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no parameter vectors recorded", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
        elif ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", ncol=min(5, len(ax.get_legend_handles_labels()[0])))
        ax.set_ylabel("x")
        ax.grid(True, alpha=0.3)
        return

    for ax, name in zip(axes, names):
        listed = _choice_param(runs, name)
        for i, (run, s) in enumerate(zip(runs, series)):
            color = colors[i % len(colors)]
            ys = _iterate_params(run).get(name)
            if ys is not None:
                ys = _as_numbers(ys, listed)
            if s["it_x"] is not None and ys is not None:
                ax.plot(s["it_x"], ys, color=color, lw=1.5, ls=linestyles[i], **_alone(ys))
            evals = [r for r in run.evaluations if isinstance(r.get("params"), dict)
                     and r["params"].get(name) is not None]
            if evals:
                ex = _probe_x(run, evals, s, x)
                ey = _as_numbers([r["params"][name] for r in evals], listed)
                failed = np.array([_failed(r) for r in evals])
                ax.plot(ex[~failed], ey[~failed], ls="none", marker=".", ms=3, color=color,
                        alpha=0.35)
                if failed.any():  # red for one run; with several, the run's colour, as in the loss panel
                    ax.plot(ex[failed], ey[failed], ls="none", marker="x", ms=5,
                            color=color if len(runs) > 1 else "red")
        if listed is not None:  # the values by name, at their places in the list
            ax.set_yticks(range(len(listed)), listed)
            ax.set_ylim(-0.5, len(listed) - 0.5)
        elif _is_log_param(runs, name):
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            # Parameter values read as numbers (2, 5, 10, 20), not as powers of ten.
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif _is_int_param(runs, name):
            from matplotlib.ticker import MaxNLocator
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)


def _iterate_params(run: History) -> dict[str, list]:
    """The iterate of each iteration in user units (None where a record has none): its ``params``,
    else ``x`` mapped by the space."""
    names = []
    for record in run.iterations:
        if isinstance(record.get("params"), dict):
            names.extend(k for k in record["params"] if k not in names)
    if names:
        return {name: [(r.get("params") or {}).get(name) for r in run.iterations] for name in names}
    space, xs = _space(run), run.x
    if not space or xs is None or xs.ndim != 2 or xs.shape[1] != len(space):
        return {}
    from gdtools.space import Space

    try:
        user = Space.from_description(space)
    except (InputError, KeyError, TypeError):
        return {}
    # x is the optimiser's unit-cube point; show the user value the objective was given.
    rows = [user.from_unit(u) for u in xs]
    return {name: [row[name] for row in rows] for name in space}


def _probe_x(run: History, evals: list[dict], s: dict, x: str) -> np.ndarray:
    if s["order"] is not None:  # y="value": the main panel already places every evaluation
        lookup = {id(r): xv for r, xv in zip(run.evaluations, s["x"])}
        return np.array([lookup.get(id(r), np.nan) for r in evals], dtype=float)
    it_numbers = run.column("iteration")
    return _evals_x(run, evals, x, s["x"], it_numbers)


def _draw_grad_norm(ax, runs, series, *, x: str, colors, linestyles) -> None:
    positive, some_positive = True, False
    lines = []  # (x, norms, colour, line style) of each run with norms
    zeros = 0
    for i, (run, s) in enumerate(zip(runs, series)):
        if s["it_x"] is None:
            continue
        norms = run.column("grad_norm")
        if not np.isfinite(norms).any():
            continue
        lines.append((s["it_x"], norms, colors[i % len(colors)], linestyles[i]))
        finite = norms[np.isfinite(norms)]
        # a norm of exactly 0 (a converged run) has no place on a log axis: left off it, not a
        # reason for a linear axis that flattens every other norm; a negative one is no norm
        positive = positive and bool((finite >= 0).all())
        some_positive = some_positive or bool((finite > 0).any())
    positive = positive and some_positive  # (a run that started at its minimum has only a 0)
    for it_x, norms, color, ls in lines:
        if positive:
            zero = norms == 0
            norms = np.where(zero, np.nan, norms)
            if zero.any():  # marked along the bottom edge, where the run reached it
                ax.plot(np.asarray(it_x)[zero], np.full(int(zero.sum()), 0.03), ls="none", marker="|", ms=8,
                        color=color, transform=ax.get_xaxis_transform(), clip_on=False)
                zeros += int(zero.sum())
        ax.plot(it_x, norms, color=color, lw=1.2, ls=ls, **_alone(norms))
    if not lines:
        ax.text(0.5, 0.5, "no gradient norms recorded", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    elif positive:
        ax.set_yscale("log")
        if zeros:
            from matplotlib.lines import Line2D

            ax.legend(handles=[Line2D([], [], color="0.35", marker="|", ms=8, ls="none",
                                      label=f"gradient norm 0 ({zeros})")], fontsize="small", loc="best")
    ax.set_ylabel("gradient norm")
    ax.grid(True, alpha=0.3)
