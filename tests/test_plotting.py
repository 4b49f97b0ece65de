"""plot_history draws headless figures whose axes, lines and legends say what the history holds."""

import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from PIL import Image

import gdtools as gd
import jax.numpy as jnp
import optax
from gdtools.errors import InputError
from gdtools.history import History
from gdtools import plotting
from gdtools.plotting import plot_history


def smooth_history(n=12, *, meta=None, path=None, dim=2):
    """A deterministic run: loss halves each iteration, 4 evaluations an iteration."""
    h = History(path, meta={"estimator": {"name": "central"}, "optimizer": "adam"}
                if meta is None else meta)
    for i in range(n):
        h.record_iteration(iteration=i, nfev=4 * (i + 1), time=0.5 * i, loss=2.0 ** -i,
                           grad_norm=3.0 * 2.0 ** -i, x=np.full(dim, float(i)))
    return h


def noisy_history(n=10, *, repeats=3, failed_at=(), seed=0, noise=0.1):
    """A black-box run: two probes an iteration with `repeats` samples, named log/int params."""
    rng = np.random.default_rng(seed)
    h = History(meta={"estimator": "spsa", "optimizer": "sgd",
                      "space": {"rate": {"low": 1e-4, "high": 1.0, "log": True, "int": False},
                                "threads": {"low": 1, "high": 16, "log": False, "int": True}}})
    nfev = 0
    for i in range(n):
        rate = 0.5 * 0.8 ** i
        for probe in range(2):
            failed = (i, probe) in failed_at
            samples = [] if failed else list(1.0 + noise * rng.standard_normal(repeats))
            h.record_evaluation(iteration=i, x=[0.0, 0.0],
                                value=None if failed else float(np.mean(samples)),
                                samples=samples, statistic="mean",
                                spread=None if failed else float(np.std(samples)),
                                status="failed" if failed else "ok",
                                params={"rate": rate * (1.1 if probe else 0.9), "threads": 4 + probe},
                                error="exit code 1" if failed else None)
            nfev += 1
        h.record_iteration(iteration=i, nfev=nfev, time=float(i), loss=1.0 + 1.0 / (i + 1),
                           grad_norm=1.0 / (i + 1), x=[np.log(rate), 4.0],
                           params={"rate": rate, "threads": 4})
    return h


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_single_history_raw_and_best_lines_with_labels():
    h = smooth_history()
    h.iterations[5]["loss"] = 10.0  # a step that made things worse: best must not follow it
    fig = plot_history(h)
    [ax] = fig.axes
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "loss"
    assert ax.get_yscale() == "linear"
    raw, best = ax.get_lines()
    np.testing.assert_array_equal(raw.get_ydata(), h.loss)
    np.testing.assert_array_equal(best.get_ydata(), h.best_loss)
    assert best.get_ydata()[5] == 2.0 ** -4
    assert legend_texts(ax) == ["central + adam", "raw", "best so far"]


def test_the_closing_measurement_of_the_result_is_a_marker_not_part_of_the_curve():
    h = noisy_history(n=5)
    h.record_iteration(iteration=5, nfev=11, time=5.0, loss=0.5, grad_norm=None, x=[0.0, 4.0],
                       final=True)
    ax = plot_history(h, x="evals").axes[0]
    raw, best, star = [line for line in ax.get_lines() if line.get_marker() != "x"]
    assert list(raw.get_xdata()) == [2, 4, 6, 8, 10]
    assert star.get_marker() == "*" and list(star.get_xdata()) == [11]
    assert list(best.get_xdata()) == [2, 4, 6, 8, 10]
    assert best.get_ydata()[-1] == pytest.approx(min(h.loss[:-1]))
    assert "final measurement of the result" in legend_texts(ax)


def test_a_black_box_runs_start_is_drawn_at_its_own_evaluation_on_the_evals_axis():
    # iteration 0 holds the start's measurement, evaluation 1, but was drawn after the first
    # gradient's probes (at 7 for central differences in 3-d), away from its own dot
    res = gd.minimize(lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2)), np.zeros(3), gradient="central",
                      max_evals=30)
    raw = plot_history(res.history, x="evals").axes[0].get_lines()[0]
    assert raw.get_xdata()[0] == 1 and raw.get_ydata()[0] == res.history.evaluations[0]["value"]
    assert list(raw.get_xdata()[1:]) == [r["nfev"] for r in res.history.iterations[1:] if not r.get("final")]


def test_best_false_draws_only_the_raw_curve():
    fig = plot_history(smooth_history(), best=False)
    [ax] = fig.axes
    assert len(ax.get_lines()) == 1
    assert "best so far" not in legend_texts(ax)


@pytest.mark.parametrize("x, field, label", [("evals", "nfev", "objective evaluations"),
                                             ("time", "time", "time (s, compilation left out)"),
                                             ("iteration", "iteration", "iteration")])
def test_x_axis_uses_the_named_field(x, field, label):
    h = smooth_history()
    ax = plot_history(h, x=x).axes[0]
    assert ax.get_xlabel() == label
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), h.column(field))


def test_log_axis_and_its_validation():
    ax = plot_history(smooth_history(), log=True).axes[0]
    assert ax.get_yscale() == "log"
    h = smooth_history()
    h.iterations[3]["loss"] = -1.0
    with pytest.raises(InputError, match=r"log=True.*-1"):
        plot_history(h, log=True)


def test_a_loss_of_exactly_0_is_left_off_the_log_axis_and_marked():
    # a run that reached its minimum exactly (0) beside others: log=True was refused for the figure
    reached = smooth_history(6)
    reached.iterations[4]["loss"] = reached.iterations[5]["loss"] = 0.0
    ax = plot_history([smooth_history(), reached], log=True, labels=["a", "b"]).axes[0]
    assert ax.get_yscale() == "log"
    ticks = [line for line in ax.get_lines() if line.get_marker() == "|"]
    assert len(ticks) == 1 and list(ticks[0].get_xdata()) == [4.0, 5.0]
    assert "loss exactly 0, off the log axis (2)" in legend_texts(ax)
    for line in ax.get_lines():  # nothing drawn at 0 (the best so far ends where it reaches 0)
        if line.get_marker() != "|":
            assert not (np.asarray(line.get_ydata(), dtype=float) == 0).any()
    linear = plot_history(reached).axes[0]  # a linear axis draws the zeros as they are
    assert not [line for line in linear.get_lines() if line.get_marker() == "|"]
    only_zeros = smooth_history(2)
    for record in only_zeros.iterations:
        record["loss"] = 0.0
    with pytest.raises(InputError, match=r"log=True.*0 wherever"):
        plot_history(only_zeros, log=True)


def test_band_is_loss_plus_minus_median_sd_of_repeated_evaluations():
    h = noisy_history(repeats=4)
    ax = plot_history(h).axes[0]
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    expected_sd = []
    for i in range(len(h)):
        sds = [np.std(r["samples"], ddof=1) for r in h.evaluations if r["iteration"] == i]
        expected_sd.append(np.median(sds))
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    assert vertices[:, 1].max() == pytest.approx(np.max(h.loss + expected_sd))
    assert vertices[:, 1].min() == pytest.approx(np.min(h.loss - expected_sd))
    assert "± sd of one evaluation" in legend_texts(ax)


def test_on_a_log_axis_noise_larger_than_the_loss_does_not_stretch_the_axis_down():
    h = noisy_history(repeats=4, noise=3.0)  # y - sd < 0 at most iterations
    floor = min(h.loss) / plotting.LOG_BAND_FLOOR
    ax = plot_history(h, log=True).axes[0]
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    lower = np.concatenate([p.vertices for p in band.get_paths()])[:, 1].min()
    assert lower == pytest.approx(floor)  # clipped there, not at some tiny positive y - sd
    assert floor / 2 < ax.get_ylim()[0] <= floor
    h_values = noisy_history(repeats=4, noise=0.7)  # every value positive, some spreads larger
    values = np.array([r["value"] for r in h_values.evaluations])
    spreads = np.array([np.std(r["samples"], ddof=1) for r in h_values.evaluations])
    assert values.min() > 0 and (values - spreads).min() < values.min() / plotting.LOG_BAND_FLOOR
    points = plot_history(h_values, y="value", log=True).axes[0]
    [bars] = [c for c in points.collections if isinstance(c, LineCollection)]
    ends = np.concatenate([seg[:, 1] for seg in bars.get_segments()])
    assert ends.min() == pytest.approx(values.min() / plotting.LOG_BAND_FLOOR)  # error bars clipped alike
    linear = plot_history(h).axes[0]
    [band] = [c for c in linear.collections if isinstance(c, PolyCollection)]
    assert np.concatenate([p.vertices for p in band.get_paths()])[:, 1].min() < 0  # y - sd as it is


def test_a_long_legend_sits_above_the_loss_panel_and_a_short_one_inside_it():
    def extents(fig):
        fig.draw_without_rendering()
        renderer = fig._get_renderer()
        ax = fig.axes[0]
        return (ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer),
                fig.bbox)

    legend, panel, page = extents(plot_history(smooth_history()))  # 3 entries
    assert panel.contains(*legend.min) and panel.contains(*legend.max)

    fig = plot_history(noisy_history(failed_at=[(2, 1)]), x="evals")
    plotting.mark_values(fig, {"start, measured again": 1.9, "best, measured again": 1.1})
    legend, panel, page = extents(fig)
    assert len(fig.axes[0].get_legend().get_texts()) == 7
    assert legend.y0 >= panel.y1  # over no curve
    assert page.contains(*legend.min) and page.contains(*legend.max)  # and on the page


def test_long_labels_neither_overlap_in_the_legend_nor_cover_the_panel():
    # labels of a sentence each: two columns of half the panel's width wrote one over the other,
    # and a legend inside the panel, wider than it, covered its curves and its tick labels
    long = ["SPSA with a learning rate of 0.01 and a perturbation of 0.1, seed 0, on the 5-d sphere",
            "central differences with the default L-BFGS and its Armijo line search, tol=1e-6",
            "smoothing", "forward differences with adam, a learning rate of 0.1 and a step of 1e-4"]
    longest = "a label that goes on and on, " * 6  # wider than the page: it takes several lines
    for runs, labels in (([smooth_history() for _ in long], long),
                         ([smooth_history()], long[:1]), ([smooth_history()], [longest])):
        fig = plot_history(runs, labels=labels)
        fig.draw_without_rendering()
        renderer = fig._get_renderer()
        legend = fig.axes[0].get_legend()
        boxes = [t.get_window_extent(renderer) for t in legend.get_texts()]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        box = legend.get_window_extent(renderer)
        assert box.y0 >= fig.axes[0].get_window_extent(renderer).y1  # above the panel
        assert fig.bbox.contains(*box.min) and fig.bbox.contains(*box.max)
    # short labels keep their places: inside the panel when few, above in two columns when many
    assert plot_history(smooth_history()).axes[0].get_legend()._ncols == 1


def test_the_legend_says_when_the_raw_loss_is_a_mean_of_probes():
    # SPSA's iteration loss is the mean of its two probes around x: it levels off a perturbation's
    # worth above f(x), decades above the final star on a log axis, and read as a stall
    texts = legend_texts(plot_history(noisy_history()).axes[0])
    assert "raw (SPSA: mean of the probes around x)" in texts
    h = History(meta={"estimator": {"name": "central"}})
    for i in range(3):
        h.record_iteration(iteration=i, nfev=i + 1, time=float(i), loss=1.0 / (i + 1), grad_norm=1.0)
    assert "raw" in legend_texts(plot_history(h).axes[0])
    assert "mean of the probes" not in " ".join(legend_texts(plot_history(noisy_history(), y="value").axes[0]))
    smoothing = noisy_history()
    smoothing.meta["estimator"] = "smoothing"
    ax = plot_history(noisy_history()).axes[0]
    plot_history(smoothing, ax=ax)  # a second call into the same axes: both named
    assert "raw (SPSA and smoothing: mean of the probes around x)" in legend_texts(ax)


def test_no_band_without_repeats_or_when_switched_off():
    for h, band in [(noisy_history(repeats=1), True), (noisy_history(repeats=3), False)]:
        ax = plot_history(h, band=band).axes[0]
        assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert "± sd of one evaluation" not in legend_texts(ax)


@pytest.mark.parametrize("x, expected", [("iteration", [2.0, 7.0]), ("evals", [6.0, 15.0])])
def test_failed_evaluations_are_marked_where_they_happened(x, expected):
    h = noisy_history(failed_at=[(2, 1), (7, 0)])
    ax = plot_history(h, x=x).axes[0]
    [marks] = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert marks.get_color() == "red"
    np.testing.assert_array_equal(marks.get_xdata(), expected)
    assert "failed evaluation (2)" in legend_texts(ax)


def test_several_histories_one_colour_and_label_each(tmp_path):
    a = smooth_history()
    b = smooth_history(meta={})
    c = smooth_history(meta={}, path=tmp_path / "third.jsonl")
    ax = plot_history([a, b, c], x="evals").axes[0]
    assert len(ax.get_lines()) == 6
    assert legend_texts(ax)[:3] == ["central + adam", "run 2", "third.jsonl"]
    colours = {line.get_color() for line in ax.get_lines()}
    assert len(colours) == 3


def test_default_label_names_the_optimizer_the_engine_chose():
    # histories before the engine named its pick say only "default": left out
    h = smooth_history(meta={"estimator": {"name": "spsa", "c": None}, "optimizer": "default"})
    assert legend_texts(plot_history(h).axes[0])[0] == "spsa"
    h = gd.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(3)).history
    assert legend_texts(plot_history(h).axes[0])[0] == "autodiff + L-BFGS"
    # optax transformations by what they are, not one name for all
    runs = [gd.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(3), optimizer=opt, max_iters=5).history
            for opt in (optax.adam(1e-2), optax.sgd(0.1))]
    assert legend_texts(plot_history(runs).axes[0])[:2] == ["autodiff + optax adam, lr 0.01",
                                                            "autodiff + optax sgd, lr 0.1"]


def test_runs_of_one_method_with_different_seeds_are_told_apart_by_seed():
    runs = [smooth_history(meta={"estimator": "spsa", "optimizer": "default (Spall's gain)", "seed": s})
            for s in (3, 7)]
    assert legend_texts(plot_history(runs).axes[0])[:2] == ["spsa + Spall's gain (seed 3)",
                                                            "spsa + Spall's gain (seed 7)"]
    # equal (or missing) seeds cannot tell them apart: by position then
    same = [smooth_history(meta={"estimator": "spsa", "seed": 3}) for _ in range(2)]
    assert legend_texts(plot_history(same).axes[0])[:2] == ["spsa (#1)", "spsa (#2)"]


def test_the_starts_of_a_batch_are_labelled_by_their_batch_index():
    # they were "#1", "#2", ... while their meta numbers them from 0
    runs = gd.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros((3, 2)), batch=True, max_iters=5)
    labels = legend_texts(plot_history([r.history for r in runs]).axes[0])[:3]
    assert [label.rsplit(" (", 1)[1] for label in labels] == ["start 0)", "start 1)", "start 2)"]


def test_same_method_twice_gets_told_apart_and_labels_override():
    ax = plot_history([smooth_history(), smooth_history()]).axes[0]
    assert legend_texts(ax)[:2] == ["central + adam (#1)", "central + adam (#2)"]
    ax = plot_history([smooth_history(), smooth_history()], labels=["seed 0", "seed 1"]).axes[0]
    assert legend_texts(ax)[:2] == ["seed 0", "seed 1"]
    with pytest.raises(InputError, match="`labels` has 1 entries for 2 histories"):
        plot_history([smooth_history(), smooth_history()], labels=["one"])


def test_named_params_get_one_panel_each_with_log_axis_from_space():
    h = noisy_history(failed_at=[(3, 0)])
    fig = plot_history(h, params=True)
    loss_ax, rate_ax, threads_ax = fig.axes
    assert (rate_ax.get_ylabel(), threads_ax.get_ylabel()) == ("rate", "threads")
    assert rate_ax.get_yscale() == "log" and threads_ax.get_yscale() == "linear"
    fig.canvas.draw()  # tick labels exist once drawn: plain numbers, not powers of ten
    labels = [t.get_text() for t in rate_ax.get_yticklabels() if t.get_text()]
    assert "0.1" in labels and not any("10^" in label for label in labels)
    trajectory, probes, failed = rate_ax.get_lines()
    np.testing.assert_allclose(trajectory.get_ydata(), [r["params"]["rate"] for r in h.iterations])
    assert len(probes.get_xdata()) == len(h.evaluations) - 1
    assert failed.get_marker() == "x" and len(failed.get_xdata()) == 1
    assert threads_ax.get_xlabel() == "iteration" and loss_ax.get_xlabel() == ""


def test_parameters_beyond_the_panels_shown_are_named_not_dropped_silently():
    # a run of 10 named parameters got panels for the first 8 and no word of the other two
    h = History(meta={"estimator": "spsa"})
    names = [f"p{j}" for j in range(10)]
    for i in range(3):
        h.record_iteration(iteration=i, nfev=2 * i + 1, time=0.1 * i, loss=1.0 / (i + 1),
                           params={name: float(i + j) for j, name in enumerate(names)})
    fig = plot_history(h, params=True)
    assert [ax.get_ylabel() for ax in fig.axes[1:]] == names[:8]
    title = fig.axes[1].get_title(loc="left")
    assert "8 of 10" in title and "p8, p9" in title
    assert plot_history(noisy_history(), params=True).axes[1].get_title(loc="left") == ""


def test_unit_cube_x_is_mapped_to_user_units_through_the_space():
    h = History(meta={"space": {"rate": {"low": 0.01, "high": 100.0, "log": True, "int": False},
                                "threads": {"low": 1, "high": 9, "log": False, "int": True}}})
    for i, u in enumerate([[0.0, 0.0], [0.5, 0.5], [1.0, 0.8]]):
        h.record_iteration(iteration=i, nfev=2 * (i + 1), time=float(i), loss=1.0, x=u)
    _, rate_ax, threads_ax = plot_history(h, params=True).axes
    np.testing.assert_allclose(rate_ax.get_lines()[0].get_ydata(), [0.01, 1.0, 100.0])
    np.testing.assert_allclose(threads_ax.get_lines()[0].get_ydata(), [1, 5, 7])
    assert rate_ax.get_yscale() == "log"


def test_unnamed_params_are_the_coordinates_of_x():
    h = smooth_history(dim=3)
    fig = plot_history(h, params=True)
    assert len(fig.axes) == 2
    x_ax = fig.axes[1]
    assert len(x_ax.get_lines()) == 3
    assert legend_texts(x_ax) == ["x[0]", "x[1]", "x[2]"]


def test_grad_norm_panel_log_scaled():
    h = smooth_history()
    fig = plot_history(h, grad_norm=True, params=True)
    assert len(fig.axes) == 3
    g = fig.axes[2]
    assert g.get_ylabel() == "gradient norm" and g.get_yscale() == "log"
    np.testing.assert_array_equal(g.get_lines()[0].get_ydata(), h.column("grad_norm"))


def test_value_view_plots_every_evaluation_and_its_running_best():
    h = noisy_history(failed_at=[(1, 1)])
    ax = plot_history(h, y="value", x="evals").axes[0]
    points, best = [line for line in ax.get_lines() if line.get_marker() != "x"]
    assert len(points.get_xdata()) == len(h.evaluations)
    values = np.array([np.nan if r["value"] is None else r["value"] for r in h.evaluations])
    assert best.get_ydata()[-1] == pytest.approx(np.nanmin(values))
    assert ax.get_ylabel() == "evaluated value"
    [bars] = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bars.get_segments()) == len(h.evaluations)


def test_y_may_name_another_iteration_field():
    h = smooth_history()
    for record in h.iterations:
        record["true_loss"] = record["loss"] / 2
    ax = plot_history(h, y="true_loss").axes[0]
    assert ax.get_ylabel() == "true loss"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), h.loss / 2)


def test_y_may_name_a_field_computed_with_jax_or_numpy():
    # a noise-free loss computed with jax.numpy (a JAX scalar) or NumPy float32 was refused as no
    # numeric field: "`y` must be one of 'loss', 'value', 'grad_norm'" (found by h72)
    import jax.numpy as jnp

    h = smooth_history()
    for i, record in enumerate(h.iterations):
        record["true_loss"] = jnp.float32(record["loss"] / 2) if i % 2 else np.float32(record["loss"] / 2)
        record["flag"] = np.bool_(True)
    ax = plot_history(h, y="true_loss").axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), h.loss / 2)
    with pytest.raises(InputError, match="`y` must be one of 'loss', 'value', 'grad_norm', 'true_loss'"):
        plot_history(h, y="flag")


def test_the_noise_band_of_the_measured_loss_is_not_drawn_around_another_field():
    # a noise-free loss added after a run measured with repeats was drawn with the measurements'
    # band around it, "± sd of one evaluation", as if it were that noisy
    h = noisy_history(noise=0.3)
    for record in h.iterations:
        record["true_loss"] = record["loss"] - 0.9
    ax = plot_history(h, y="true_loss").axes[0]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert "± sd of one evaluation" not in legend_texts(ax)
    assert [c for c in plot_history(h).axes[0].collections if isinstance(c, PolyCollection)]  # the loss keeps it


def test_draws_into_a_given_axes():
    from matplotlib.figure import Figure
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_history(smooth_history(), ax=ax) is fig
    assert len(ax.get_lines()) == 2
    with pytest.raises(InputError, match="`ax` holds only the loss panel"):
        plot_history(smooth_history(), ax=ax, params=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": "nfev"}, r"`x` must be one of 'iteration', 'evals', 'time'; got 'nfev'"),
    ({"y": "nope"}, r"`y` must be one of 'loss', 'value', 'grad_norm'.*got 'nope'"),
])
def test_unknown_axes_name_the_argument_and_the_choices(kwargs, message):
    with pytest.raises(InputError, match=message):
        plot_history(smooth_history(), **kwargs)


def test_empty_and_wrong_inputs_say_what_is_missing():
    with pytest.raises(InputError, match="no iteration records"):
        plot_history(History())
    evaluations_only = noisy_history()
    evaluations_only.iterations.clear()
    with pytest.raises(InputError, match="plot them with y='value'"):
        plot_history(evaluations_only)
    with pytest.raises(InputError, match="`histories` is empty"):
        plot_history([])
    with pytest.raises(InputError, match=r"`histories\[1\]` is a dict"):
        plot_history([smooth_history(), {}])
    no_nfev = smooth_history()
    del no_nfev.iterations[0]["nfev"]
    with pytest.raises(InputError, match="without `nfev`"):
        plot_history(no_nfev, x="evals")
    with pytest.raises(InputError, match="no evaluation records"):
        plot_history(smooth_history(), y="value")


def test_loaded_file_plots_and_saves_a_valid_png(tmp_path):
    smooth_history(path=tmp_path / "run.jsonl").close()
    fig = plot_history(History.load(tmp_path / "run.jsonl"), x="evals", log=True, grad_norm=True)
    out = tmp_path / "loss.png"
    fig.savefig(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 100


def test_headless_and_lazy(tmp_path):
    # A fresh interpreter: importing gdtools.plotting loads no matplotlib; plotting uses no pyplot.
    code = (
        "import sys, gdtools.history, gdtools.plotting\n"
        "assert 'matplotlib' not in sys.modules\n"
        "h = gdtools.history.History(meta={})\n"
        "h.record_iteration(iteration=0, nfev=1, time=0.0, loss=1.0)\n"
        f"gdtools.plotting.plot_history(h).savefig({str(tmp_path / 'a.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {**os.environ, "MPLBACKEND": "TkAgg", "DISPLAY": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))
    assert (tmp_path / "a.png").stat().st_size > 0


def test_gd_plotting_is_reachable_from_the_package_before_anything_plotted():
    # docs/tuning.md names gd.plotting.mark_values; in a fresh interpreter that had not yet called
    # gd.plot_history, `gd.plotting` raised AttributeError. It loads lazily, as gd.timing does.
    code = (
        "import sys, gdtools as gd\n"
        "mark_values = gd.plotting.mark_values\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))


def test_plots_a_real_black_box_run_with_repeats():
    # The one test that goes through the engine: its records must be what plot_history reads.
    import gdtools as gd

    rng = np.random.default_rng(0)

    def fun(x):
        samples = tuple(float(np.sum((np.asarray(x) - 1.0) ** 2) + 1.0 + 0.05 * rng.standard_normal())
                        for _ in range(3))
        return gd.Measurement(value=float(np.mean(samples)), samples=samples, statistic="mean",
                              spread=float(np.std(samples, ddof=1)))

    res = gd.minimize(fun, np.zeros(2), gradient="spsa", max_evals=20, seed=0)
    fig = plot_history(res.history, x="evals", params=True, grad_norm=True)
    loss_ax, x_ax, g_ax = fig.axes
    [star] = [line for line in loss_ax.get_lines() if line.get_marker() == "*"]
    assert list(star.get_xdata()) == [res.nfev] and list(star.get_ydata()) == [res.fun]
    assert [c for c in loss_ax.collections if isinstance(c, PolyCollection)]  # repeats -> band
    assert len(x_ax.get_lines()) == 2 and g_ax.get_ylabel() == "gradient norm"
    assert legend_texts(loss_ax)[0] == "spsa + Spall's gain"


def test_a_result_stands_for_its_history():
    import jax.numpy as jnp

    import gdtools as gd

    runs = [gd.minimize(lambda x: jnp.sum((x - c) ** 2), jnp.zeros(2), optimizer="adam", max_iters=20,
                        tol=0.0) for c in (1.0, 2.0)]
    [ax] = plot_history(runs[0]).axes
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), runs[0].history.loss)
    [ax] = plot_history(runs, best=False).axes
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [list(r.history.loss) for r in runs]


def test_a_run_too_short_for_lines_lists_no_lines_in_its_legend():
    h = History(meta={"estimator": "spsa"})
    h.record_iteration(iteration=0, nfev=1, time=0.0, loss=2.0, grad_norm=None, x=[0.0])
    h.record_iteration(iteration=0, nfev=2, time=0.1, loss=1.9, grad_norm=None, x=[0.0], final=True)
    ax = plot_history(h).axes[0]
    assert "raw" not in legend_texts(ax) and "best so far" not in legend_texts(ax)
    assert "final measurement of the result" in legend_texts(ax)


def test_a_run_without_two_finite_values_lists_no_lines_in_its_legend():
    # every loss nan (a run that failed from its start): the legend listed "raw" and "best so far"
    # lines, and the panel had none
    h = smooth_history(5)
    for record in h.iterations:
        record["loss"] = float("nan")
    ax = plot_history(h).axes[0]
    assert "raw" not in legend_texts(ax) and "best so far" not in legend_texts(ax)
    assert "nan or infinite loss (5)" in legend_texts(ax)
    failed = History(meta={"estimator": "spsa"})
    for i in range(3):
        failed.record_evaluation(iteration=0, x=[0.0], value=None, samples=[], status="failed", error="boom")
    ax = plot_history(failed, y="value").axes[0]
    assert "each evaluation" not in legend_texts(ax) and "best so far" not in legend_texts(ax)


def test_mark_values_adds_labelled_reference_lines_and_skips_nan():
    from gdtools.plotting import mark_values

    fig = plot_history(smooth_history())
    mark_values(fig, {"start, measured again": 3.0, "never measured": float("nan"), "best": 1.5})
    ax = fig.axes[0]
    assert legend_texts(ax)[-2:] == ["start, measured again", "best"]
    levels = [line.get_ydata()[0] for line in ax.get_lines() if line.get_label() in ("start, measured again", "best")]
    assert levels == [3.0, 1.5]


def test_a_reference_value_a_log_axis_cannot_show_is_not_listed_as_a_line():
    # gdtools plot --log of a tuning run whose best setting, measured again, printed -0.01: the
    # legend listed a dashed "best ..., measured again" line that was nowhere in the figure
    from gdtools.plotting import mark_values

    fig = plot_history(smooth_history(), log=True)
    mark_values(fig, {"start, measured again": 3.0, "best, measured again": -0.01})
    ax = fig.axes[0]
    assert legend_texts(ax)[-2:] == ["start, measured again",
                                     "best, measured again: -0.01 (not on the log axis)"]
    assert [line.get_ydata()[0] for line in ax.get_lines() if "measured again" in line.get_label()] == [3.0]
    handle = ax.get_legend().legend_handles[-1]
    assert handle.get_linestyle() == "None" and handle.get_marker() in ("None", None, "")


def test_a_nan_value_recorded_as_ok_by_an_older_gdtools_is_marked_failed():
    h = noisy_history()
    h.evaluations[3]["value"] = float("nan")  # status stays "ok", as older files have it
    ax = plot_history(h, x="evals").axes[0]
    [marks] = [line for line in ax.get_lines() if line.get_marker() == "x"]
    np.testing.assert_array_equal(marks.get_xdata(), [4.0])
    assert "failed evaluation (1)" in legend_texts(ax)


def test_a_nan_or_infinite_loss_is_marked_where_it_happened():
    h = smooth_history(6)
    h.iterations[4]["loss"] = float("nan")
    h.iterations[5]["loss"] = float("inf")
    ax = plot_history(h).axes[0]
    [marks] = [line for line in ax.get_lines() if line.get_marker() == "v"]
    np.testing.assert_array_equal(marks.get_xdata(), [4.0, 5.0])
    assert "nan or infinite loss (2)" in legend_texts(ax)


def test_a_loss_left_nan_by_failed_evaluations_is_marked_as_failures_not_as_divergence():
    # both probes of iteration 3 failed, so it has no loss: it was marked twice, with the failures'
    # crosses and a "nan or infinite loss" triangle, the mark of a run that diverged
    h = noisy_history(failed_at=[(3, 0), (3, 1)])
    h.iterations[3]["loss"] = float("nan")
    ax = plot_history(h).axes[0]
    assert not [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert "failed evaluation (2)" in legend_texts(ax)
    assert not any(text.startswith("nan or infinite") for text in legend_texts(ax))
    h.iterations[5]["loss"] = float("inf")  # no evaluation of iteration 5 failed: that one diverged
    ax = plot_history(h).axes[0]
    [marks] = [line for line in ax.get_lines() if line.get_marker() == "v"]
    np.testing.assert_array_equal(marks.get_xdata(), [5.0])


def test_a_run_of_one_iteration_shows_its_point_on_a_sensible_axis():
    h = History(meta={"estimator": "autodiff"})
    h.record_iteration(iteration=0, nfev=1, time=0.0, loss=0.0, grad_norm=0.0, x=[1.0])
    ax = plot_history(h).axes[0]
    assert ax.get_lines()[0].get_marker() == "o"
    # its own tick alone: no iteration -1, no tick at 0.5 (it was -1..1, ticks -1, 0, 1)
    low, high = ax.get_xlim()
    assert low < 0 < high and high - low >= 1
    assert [tick for tick in ax.get_xticks() if low <= tick <= high] == [0]
    low, high = plot_history(h, x="time").axes[0].get_xlim()
    assert -0.1 < low < 0 and high >= 1  # no negative seconds beyond the margin
    longer = plot_history(smooth_history()).axes[0]
    assert longer.get_lines()[0].get_marker() in ("None", None, "")  # lines need no markers


def test_runs_drawn_into_one_axes_by_several_calls_take_new_colours_and_keep_their_labels():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plot_history(noisy_history(failed_at=[(2, 1)]), ax=ax, labels=["first"])
    [first_marks] = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert first_marks.get_color() == "red"  # one run so far: failures in red
    plot_history(noisy_history(failed_at=[(5, 0)], seed=1), ax=ax, labels=["second"])
    texts = legend_texts(ax)
    assert texts[:2] == ["first", "second"] and "failed evaluation (2)" in texts
    curves = [line for line in ax.get_lines() if line.get_marker() in ("None", None, "")]
    assert len({line.get_color() for line in curves}) == 2
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [m.get_color() for m in marks] == [curves[0].get_color(), curves[-1].get_color()]  # each run's own


def test_runs_in_files_of_one_name_in_different_folders_are_told_apart_by_folder(tmp_path):
    runs = []
    for folder in ("exp1", "exp2"):
        (tmp_path / folder).mkdir()
        runs.append(smooth_history(path=tmp_path / folder / "run.jsonl"))
    assert legend_texts(plot_history(runs).axes[0])[:2] == ["central + adam (exp1/run.jsonl)",
                                                            "central + adam (exp2/run.jsonl)"]


def test_a_dict_of_runs_is_labelled_by_its_keys():
    ax = plot_history({"spsa run": smooth_history(), "central run": noisy_history()}).axes[0]
    assert legend_texts(ax)[:2] == ["spsa run", "central run"]


def test_messages_name_the_run_by_label_and_file(tmp_path):
    h = History(tmp_path / "neg.jsonl", meta={"estimator": "spsa"})
    for i in range(3):
        h.record_iteration(iteration=i, nfev=i + 1, time=0.0, loss=-1.0 + i, grad_norm=1.0, x=[0.0])
    with pytest.raises(InputError, match=r"of 'spsa' \(neg.jsonl\) reaches -1"):
        plot_history(h, log=True)


def test_params_that_are_not_numbers_are_an_input_error():
    h = noisy_history()
    h.iterations[2]["params"] = {"rate": "oops", "threads": 4}
    with pytest.raises(InputError, match="parameters cannot be plotted"):
        plot_history(h, params=True)


def test_the_time_axis_says_compilation_is_left_out_and_when_times_are_interpolated():
    compiled = gd.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(3)).history
    fig = plot_history([compiled, smooth_history()], x="time")
    assert fig.axes[0].get_xlabel() == "time (s, compilation left out); compiled runs: per-iteration times interpolated"
    assert plot_history(smooth_history(), x="time").axes[0].get_xlabel() == "time (s, compilation left out)"


def test_a_resumed_run_places_its_evaluations_by_their_place_in_the_run(tmp_path):
    path = tmp_path / "res.jsonl"
    f = lambda x: float(np.sum((np.asarray(x) - 0.5) ** 2))  # noqa: E731
    gd.minimize(f, np.zeros(2), gradient="spsa", max_evals=16, history=path)
    res = gd.minimize(f, np.zeros(2), gradient="spsa", max_evals=32, history=path, resume=True)
    loaded = gd.History.load(path)
    assert any(r["eval"] != r["index"] for r in loaded.evaluations)  # renumbered in the file
    ax = plot_history(loaded, x="evals", y="value").axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "."][0]
    assert max(dots.get_xdata()) == res.nfev
    np.testing.assert_array_equal(sorted(dots.get_xdata()), np.arange(1, res.nfev + 1))


def test_a_cleared_axes_starts_afresh_and_a_lone_point_keeps_the_runs_before_it():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    for n in (10, 11, 12):  # a live plot: clear, draw the run so far
        ax.clear()
        plot_history(smooth_history(n), ax=ax, labels=["run"])
    assert legend_texts(ax)[:1] == ["run"] and "run" not in legend_texts(ax)[1:]
    first_colour = plot_history(smooth_history(), labels=["x"]).axes[0].get_lines()[0].get_color()
    assert ax.get_lines()[0].get_color() == first_colour
    one = History(meta={"estimator": "autodiff"})
    one.record_iteration(iteration=0, nfev=1, time=0.0, loss=0.5, grad_norm=0.0, x=[1.0])
    plot_history(one, ax=ax, labels=["one point"])
    assert ax.get_xlim()[1] > 10  # the earlier run's 12 iterations still in view


def test_a_run_drawn_into_an_axes_after_a_lone_point_is_in_view():
    # the lone point's range was fixed limits: the next run drawn into the axes was cut off at 1
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    one = History(meta={"estimator": "autodiff"})
    one.record_iteration(iteration=0, nfev=1, time=0.0, loss=0.5, grad_norm=0.0, x=[1.0])
    plot_history(one, ax=ax)
    plot_history(smooth_history(12), ax=ax)
    assert ax.get_xlim()[1] >= 11


def test_a_field_some_records_lack_is_not_marked_nan():
    h = smooth_history(10)
    for i, record in enumerate(h.iterations):
        if i % 3 == 0:
            record["lr"] = 0.1 / (i + 1)
    h.iterations[9]["lr"] = float("nan")
    ax = plot_history(h, y="lr").axes[0]
    [marks] = [line for line in ax.get_lines() if line.get_marker() == "v"]
    np.testing.assert_array_equal(marks.get_xdata(), [9.0])
    assert "nan or infinite lr (1)" in legend_texts(ax)


def test_a_result_that_stands_in_for_a_failed_final_measurement_is_a_hollow_star():
    calls = []

    def fails_last(x):  # the 12th evaluation, the final measurement of the result, fails
        calls.append(1)
        if len(calls) == 12:
            raise RuntimeError("crashed")
        return float(np.sum((np.asarray(x) - 0.5) ** 2)) + 1.0

    res = gd.minimize(fails_last, np.zeros(2), gradient="spsa", max_evals=12, on_failure=100.0)
    assert res.history.iterations[-1]["final"] == "best measured"
    ax = plot_history(res).axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_markerfacecolor() == "none"
    texts = legend_texts(ax)
    assert "result: the best point measured during the run" in texts and "final measurement of the result" not in texts


def test_evaluations_without_an_iteration_yet_are_drawn_on_their_wall_clock():
    # a run stopped in its first gradient (or a tune plotted while it runs): refused once the time
    # axis moved to the iteration clock; drawn on the evaluations' own clock, as before
    h = History(meta={"estimator": "spsa"})
    for i, (start, end) in enumerate([(100.0, 100.5), (100.5, 101.25), (101.25, 102.0)]):
        h.record_evaluation(iteration=0, x=[float(i)], value=1.0 + i, samples=[1.0 + i], status="ok",
                            t_start=start, t_end=end)
    ax = plot_history(h, x="time", y="value").axes[0]
    dots = ax.get_lines()[0]
    assert list(dots.get_xdata()) == [0.5, 1.25, 2.0] and list(dots.get_ydata()) == [1.0, 2.0, 3.0]


def test_on_the_time_axis_evaluations_sit_on_the_iteration_clock_in_every_panel():
    # The wall clock of t_start/t_end holds JAX's compilation (here 5 s before the first probe) and
    # the pause before a resume; the iteration records' `time` leaves them out, and the iterate
    # lines of the params panel use it. Evaluation dots once sat seconds to the right of the lines.
    h = noisy_history(n=4)
    clock = 1000.0
    for r in h.evaluations:
        clock += 5.0 if r["eval"] == 1 else 0.1
        r["t_start"], r["t_end"] = clock - 0.1, clock
    h.record_evaluation(iteration=4, x=[0.0, 0.0], value=1.2, samples=[], status="ok",
                        params={"rate": 0.2, "threads": 4}, t_start=clock + 0.5, t_end=clock + 0.7)
    fig = plot_history(h, x="time", y="value", params=True)
    it_time = {r["iteration"]: r["time"] for r in h.iterations}  # 0, 1, 2, 3
    expected = [it_time[r["iteration"]] for r in h.evaluations[:-1]] + [3.0 + 0.7]  # a stopped iteration:
    dots = [line for line in fig.axes[0].get_lines() if line.get_marker() == "."][0]  # seconds after the last
    np.testing.assert_allclose(np.sort(dots.get_xdata()), expected)
    probes = [line for line in fig.axes[1].get_lines() if line.get_marker() == "."][0]
    np.testing.assert_allclose(probes.get_xdata(), expected)
    line = [line for line in fig.axes[1].get_lines() if line.get_marker() in ("None", None, "")][0]
    assert set(np.asarray(probes.get_xdata())[:-1]) == set(line.get_xdata())  # dots on the iterate line's clock
    assert fig.axes[-1].get_xlabel() == "time (s, compilation left out); evaluations at the end of their iteration"


def test_calls_into_one_axes_must_share_its_axes():
    # a later call with another x once drew onto the same axes and took the x label: a run against
    # evaluations and one against iterations under one label
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plot_history(smooth_history(), ax=ax, x="evals")
    lines = list(ax.get_lines())
    for kwargs, message in [({"x": "iteration"}, "drawn with x='evals'; this call asks for x='iteration'"),
                            ({"x": "evals", "log": True}, "drawn with log=False; this call asks for log=True"),
                            ({"x": "evals", "y": "grad_norm"}, "y='loss'; this call asks for y='grad_norm'")]:
        with pytest.raises(InputError, match=message):
            plot_history(smooth_history(), ax=ax, **kwargs)
    assert ax.get_lines() == lines and ax.get_xlabel() == "objective evaluations"  # nothing drawn
    plot_history(smooth_history(), ax=ax, x="evals")  # the same axes: overlaid
    ax.clear()
    plot_history(smooth_history(), ax=ax, x="time", log=True)  # a cleared axes takes any


def test_calls_into_one_axes_tell_runs_of_one_method_apart_as_a_list_does():
    # a loop of calls over two seeds of one method once gave two identical legend entries
    from matplotlib.figure import Figure

    meta = lambda seed: {"estimator": {"name": "spsa"}, "optimizer": "sgd", "seed": seed}  # noqa: E731
    runs = [smooth_history(meta=meta(0)), smooth_history(meta=meta(1))]
    listed = legend_texts(plot_history(runs).axes[0])[:2]
    assert listed == ["spsa + sgd (seed 0)", "spsa + sgd (seed 1)"]
    ax = Figure().add_subplot()
    for run in runs:
        plot_history(run, ax=ax)
    assert legend_texts(ax)[:2] == listed
    plot_history(smooth_history(meta={"estimator": "central"}), ax=ax, labels=["mine"])
    plot_history(smooth_history(meta=meta(2)), ax=ax)  # a given label is left as it is
    assert legend_texts(ax)[:4] == listed + ["mine", "spsa + sgd (seed 2)"]


@pytest.mark.parametrize("field, kwargs", [("loss", {}), ("grad_norm", {"grad_norm": True}),
                                           ("nfev", {"x": "evals"})])
def test_a_list_where_a_number_belongs_is_an_input_error_naming_the_record(field, kwargs):
    # a list-valued loss made a 2-D column, and an IndexError escaped from deep in the plotting
    h = smooth_history(4)
    for record in h.iterations:  # lists of one length: a 2-D column, no complaint from NumPy
        record[field] = [1.0, 2.0]
    with pytest.raises(InputError, match=rf"'{field}' of iteration record 1 is \[1.0, 2.0\], not a number"):
        plot_history(h, **kwargs)
    h.iterations[0][field] = 1.0  # lists among numbers
    with pytest.raises(InputError, match=rf"'{field}' of iteration record 2 is \[1.0, 2.0\], not a number"):
        plot_history(h, **kwargs)


def test_failed_probes_in_the_params_panels_take_their_runs_colour_as_in_the_loss_panel():
    one = noisy_history(failed_at=[(2, 1)])
    lone = plot_history(one, params=True)
    assert [m.get_color() for m in lone.axes[1].get_lines() if m.get_marker() == "x"] == ["red"]
    fig = plot_history([one, noisy_history(failed_at=[(5, 0)], seed=1)], params=True)
    loss_marks = [m.get_color() for m in fig.axes[0].get_lines() if m.get_marker() == "x"]
    for ax in fig.axes[1:3]:
        assert [m.get_color() for m in ax.get_lines() if m.get_marker() == "x"] == loss_marks
    assert len(set(loss_marks)) == 2 and "red" not in loss_marks


def test_a_tuning_history_is_labelled_with_what_tune_measured():
    h = noisy_history(n=4)
    assert plot_history(h).axes[0].get_ylabel() == "loss"  # no "measured": a history from before it
    h.meta["measured"] = {"objective": "time", "statistic": "median", "repeats": 3}
    for y in ("loss", "value"):
        assert plot_history(h, y=y).axes[0].get_ylabel() == "run time (s, median of 3 runs)"
    h.meta["measured"] = {"objective": "time", "statistic": "median", "repeats": 1}
    assert plot_history(h).axes[0].get_ylabel() == "run time (s, one run)"  # not "median of 1 run"
    h.meta["measured"]["repeats"] = 3
    printed = noisy_history(n=4)
    printed.meta["measured"] = {"objective": "stdout", "statistic": "mean", "repeats": 1}
    assert plot_history(printed).axes[0].get_ylabel() == "the number the program printed"
    assert plot_history([h, printed]).axes[0].get_ylabel() == "loss"  # two units: the plain word
    assert plot_history([h, noisy_history(n=4)]).axes[0].get_ylabel() == "loss"
    assert plot_history(h, y="grad_norm").axes[0].get_ylabel() == "grad norm"


def test_evaluation_counts_get_whole_ticks():
    fig = plot_history(noisy_history(n=3), x="evals")  # 6 evaluations: ticks at 1.5, 2.5, ... were drawn
    fig.draw_without_rendering()
    ticks = fig.axes[-1].get_xticks()
    assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks), ticks


def test_five_to_ten_unnamed_coordinates_of_one_run_are_told_apart_by_colour():
    # they were x[0]..x[4] in one colour, solid, alpha 0.5: a legend of identical entries
    for dim in (5, 10):
        x_ax = plot_history(smooth_history(dim=dim), params=True).axes[1]
        handles, texts = x_ax.get_legend_handles_labels()
        assert texts == [f"x[{j}]" for j in range(dim)]
        looks = {(h.get_color(), h.get_linestyle(), h.get_alpha()) for h in handles}
        assert len(looks) == dim
    few = plot_history(smooth_history(dim=3), params=True).axes[1].get_legend_handles_labels()[0]
    assert len({h.get_linestyle() for h in few}) == 3 and len({h.get_color() for h in few}) == 1


def test_a_gradient_norm_of_zero_keeps_the_log_axis_and_is_marked_not_drawn():
    # one norm of exactly 0 (a converged run) switched the panel to a linear axis, flattening the rest
    h = smooth_history()
    h.iterations[-1]["grad_norm"] = 0.0
    g = plot_history(h, grad_norm=True).axes[1]
    assert g.get_yscale() == "log"
    curve, = [line for line in g.get_lines() if line.get_marker() in ("None", None, "")]
    np.testing.assert_array_equal(curve.get_ydata()[:-1], h.column("grad_norm")[:-1])
    assert np.isnan(curve.get_ydata()[-1])
    mark, = [line for line in g.get_lines() if line.get_marker() == "|"]
    assert list(mark.get_xdata()) == [11.0]
    assert legend_texts(g) == ["gradient norm 0 (1)"]
    at_minimum = smooth_history()
    for record in at_minimum.iterations:
        record["grad_norm"] = 0.0
    # a batch start already at its minimum (norm 0 only) beside runs with positive norms: log still
    assert plot_history([h, at_minimum], grad_norm=True).axes[1].get_yscale() == "log"
    for record in h.iterations:
        record["grad_norm"] = 0.0  # nothing positive to show on a log axis
    assert plot_history(h, grad_norm=True).axes[1].get_yscale() == "linear"


def drawn_points(line):
    """The points a line shows: its segments' ends, and its markers (all, or those of markevery)."""
    ys = np.asarray(line.get_ydata(), dtype=float)
    shown = set()
    if line.get_linestyle() not in ("None", "", " "):
        finite = np.isfinite(ys)
        joined = finite & (np.r_[False, finite[:-1]] | np.r_[finite[1:], False])
        shown |= set(np.flatnonzero(joined).tolist())
    if line.get_marker() not in ("None", None, ""):
        every = line.get_markevery()
        marked = range(len(ys)) if every is None else every
        shown |= {int(i) for i in marked if np.isfinite(ys[int(i)])}
    return shown


def test_a_recorded_value_between_iterations_that_recorded_none_is_drawn_in_every_panel():
    # a lone iteration's coordinates and gradient norm, and a norm between two iterations whose
    # gradient failed (nan), were lines through one point: drawn as nothing, the panels left empty
    one = History(meta={"estimator": "spsa"})
    one.record_iteration(iteration=0, nfev=1, time=0.0, loss=2.0, grad_norm=1.0, x=[1.0, 2.0])
    fig = plot_history(one, params=True, grad_norm=True)
    for panel in fig.axes[1:]:
        assert {i for line in panel.get_lines() for i in drawn_points(line)} == {0}, panel.get_ylabel()
        assert all(len(drawn_points(line)) == 1 for line in panel.get_lines())
    gaps = noisy_history(n=6)
    for i in (1, 3):
        gaps.iterations[i]["grad_norm"] = float("nan")
        gaps.iterations[i]["loss"] = float("nan")
    fig = plot_history(gaps, params=True, grad_norm=True, best=False)
    [norms] = [line for line in fig.axes[-1].get_lines() if len(line.get_ydata()) == 6]
    assert drawn_points(norms) == {0, 2, 4, 5}
    [raw] = [line for line in fig.axes[0].get_lines() if len(line.get_ydata()) == 6]
    assert drawn_points(raw) == {0, 2, 4, 5}
    # lines that join their points need no markers
    assert plot_history(smooth_history(), grad_norm=True).axes[1].get_lines()[0].get_marker() in ("None", None, "")


def test_runs_beyond_the_colour_cycle_are_told_apart_by_line_style():
    # the 11th and 12th runs took the colours of the 1st and 2nd, solid like them: a legend of two
    # identical entries, and curves nobody could tell apart
    runs = [smooth_history() for _ in range(12)]
    fig = plot_history(runs, labels=[f"run {i}" for i in range(12)], grad_norm=True)
    ax, g = fig.axes
    handles = [h for h in ax.get_legend().legend_handles if h.get_label().startswith("run ")]
    looks = [(h.get_color(), h.get_linestyle()) for h in handles]
    assert len(set(looks)) == 12
    best_lines = [line for line in ax.get_lines() if line.get_linewidth() == 2]
    assert [(line.get_color(), line.get_linestyle()) for line in best_lines] == looks
    assert [(line.get_color(), line.get_linestyle()) for line in g.get_lines()] == looks
    # runs drawn into one axes by calls one after another continue the same sequence
    _, ax = plt_axes()
    for i in range(11):
        plot_history(smooth_history(), ax=ax, labels=[f"run {i}"])
    handles = ax.get_legend().legend_handles
    assert (handles[10].get_color(), handles[10].get_linestyle()) == looks[10]


def plt_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    return fig, fig.subplots()


def test_a_legend_of_many_runs_makes_the_figure_taller_not_the_panel_smaller():
    # 12 runs' legend above the panel took 8 of the figure's 3.6 inches' rows: the curves were left
    # a strip of an inch and a half, their tick labels written over each other
    def panel_height(count, **kwargs):
        fig = plot_history([smooth_history() for _ in range(count)], labels=[f"run {i}" for i in range(count)],
                           **kwargs)
        fig.draw_without_rendering()
        return fig.axes[0].get_window_extent(fig._get_renderer()).height / fig.dpi, fig

    few, fig = panel_height(6)  # 4 rows of two columns: the figure as it always was
    assert fig.get_figheight() == 3.6
    for count in (12, 30):
        many, fig = panel_height(count)
        assert many >= 0.9 * few, (count, many, few)
    taller, fig = panel_height(30, grad_norm=True)
    assert fig.axes[1].get_window_extent(fig._get_renderer()).height / fig.dpi > 1.0  # the panels below too
    fig.set_size_inches(12, 9)  # a size of the user's own survives the reference lines added later
    plotting.mark_values(fig, {"start, measured again": 1.0})
    assert tuple(fig.get_size_inches()) == (12, 9)


def test_the_panel_width_a_legend_is_fitted_to_does_not_grow_once_the_figure_is_drawn():
    # mark_values after savefig reckoned the panel a fifth wider than before (the layout had widened
    # it past the subplot parameters) and could pick two columns that overlap
    fig = plot_history(smooth_history())
    before = plotting._panel_width(fig.axes[0])
    fig.draw_without_rendering()
    assert plotting._panel_width(fig.axes[0]) == before


def test_runs_of_one_estimator_with_other_settings_are_told_apart_by_them():
    # SPSA() against SPSA(n_perturbations=4) from one seed read "spsa + Spall's gain (#1)" and "(#2)":
    # the legend of an estimator comparison did not say which run was which setting
    def run(**settings):
        return smooth_history(meta={"estimator": {"name": "spsa", "c": None, "n_perturbations": 1, **settings},
                                    "optimizer": "default (Spall's gain)", "seed": 0})

    runs = [run(), run(n_perturbations=4), run(c=0.1)]
    assert legend_texts(plot_history(runs).axes[0])[:3] == [
        "spsa + Spall's gain (c=None, n_perturbations=1)", "spsa + Spall's gain (c=None, n_perturbations=4)",
        "spsa + Spall's gain (c=0.1, n_perturbations=1)"]
    # the same settings twice: by position, as before
    assert legend_texts(plot_history([run(), run()]).axes[0])[:2] == ["spsa + Spall's gain (#1)",
                                                                      "spsa + Spall's gain (#2)"]


def test_runs_of_one_optax_optimizer_with_other_settings_are_told_apart_by_them():
    # two exponential decays both read "autodiff + optax adam > schedule (#1)" and "(#2)": the
    # legend of a schedule comparison did not say which run was which schedule
    from gdtools.optax_description import describe_transformation

    def run(optimizer):
        return smooth_history(meta={"estimator": "autodiff", "optimizer": describe_transformation(optimizer)})

    decays = [run(optax.adam(optax.exponential_decay(0.1, 10, rate))) for rate in (0.5, 0.9)]
    assert legend_texts(plot_history(decays).axes[0])[:2] == [
        "autodiff + optax adam > schedule (decay_rate=0.5)", "autodiff + optax adam > schedule (decay_rate=0.9)"]
    # another schedule altogether: named, not its settings
    schedules = [run(optax.adam(optax.cosine_decay_schedule(0.1, 10))),
                 run(optax.adam(optax.linear_schedule(0.1, 0.0, 10)))]
    assert legend_texts(plot_history(schedules).axes[0])[:2] == [
        "autodiff + optax adam > schedule (learning_rate=cosine_decay_schedule)",
        "autodiff + optax adam > schedule (learning_rate=polynomial_schedule)"]
    betas = [run(optax.adam(0.1, b1=b1)) for b1 in (0.8, 0.9)]
    assert legend_texts(plot_history(betas).axes[0])[:2] == ["autodiff + optax adam, lr 0.1 (b1=0.8)",
                                                             "autodiff + optax adam, lr 0.1 (b1=0.9)"]
    # the same optimizer twice: by position, as before
    same = [run(optax.adam(0.1)), run(optax.adam(0.1))]
    assert legend_texts(plot_history(same).axes[0])[:2] == ["autodiff + optax adam, lr 0.1 (#1)",
                                                            "autodiff + optax adam, lr 0.1 (#2)"]


def test_a_choice_panel_names_its_values_at_their_places_in_the_list_across_runs():
    f = lambda p: {"lz4": 3.0, "zstd": 1.0, "gzip": 2.0, "xz": 0.5}[p["codec"]] + p["x"] ** 2  # noqa: E731
    spaces = [gd.Space(codec=gd.Choice(codecs), x=gd.Real(-1, 1)) for codecs in (["lz4", "zstd", "gzip"], ["lz4", "xz"])]
    runs = [gd.minimize(f, space=space, gradient="central", max_evals=20).history for space in spaces]
    fig = plot_history(runs, params=True)
    codec_ax = fig.axes[1]
    assert codec_ax.get_ylabel() == "codec"
    fig.canvas.draw()
    assert [t.get_text() for t in codec_ax.get_yticklabels()] == ["lz4", "zstd", "gzip", "xz"]
    places = {"lz4": 0, "zstd": 1, "gzip": 2, "xz": 3}
    trajectories = [line for line in codec_ax.get_lines() if line.get_linestyle() != "None"]
    for run, space, trajectory in zip(runs, spaces, trajectories):
        codecs = [space.from_unit(r["x"])["codec"] for r in run.iterations]
        assert codecs[-1] in ("zstd", "xz")
        np.testing.assert_array_equal(trajectory.get_ydata(), [places[c] for c in codecs])
    probes = [line for line in codec_ax.get_lines() if line.get_marker() == "."]
    assert {float(v) for line in probes for v in line.get_ydata()} <= {0.0, 1.0, 2.0, 3.0}


def test_a_run_over_an_int_is_drawn_beside_a_run_over_a_list_of_the_same_numbers():
    # `--param threads=1:16:log:int` beside `--param threads=1,2,4,8,16`: the Int run's values,
    # looked up in the list ('4' is text there, 4 a number), were all missing: its line vanished
    f = lambda p: (float(p["threads"]) - 4) ** 2  # noqa: E731
    spaces = [gd.Space(threads=gd.Choice(["1", "2", "4", "8", "16"])), gd.Space(threads=gd.Int(1, 16, log=True))]
    runs = [gd.minimize(f, space=space, gradient="central", max_evals=12).history for space in spaces]
    fig = plot_history(runs, params=True)
    threads_ax = fig.axes[1]
    trajectories = [line for line in threads_ax.get_lines() if line.get_linestyle() != "None"]
    assert len(trajectories) == 2
    for run, space, trajectory in zip(runs, spaces, trajectories):
        threads = [float(space.from_unit(r["x"])["threads"]) for r in run.iterations]
        np.testing.assert_array_equal(trajectory.get_ydata(), threads)


def test_a_list_of_numbers_as_text_and_the_same_list_of_numbers_share_their_places():
    # a `gdtools tune --param threads=1,2,4` run (text) beside a gd.Choice([1, 2, 4]) run: the axis
    # named each value twice, '1 2 4 1 2 4', and drew the two runs at different heights for one setting
    f = lambda p: (float(p["threads"]) - 2) ** 2  # noqa: E731
    spaces = [gd.Space(threads=gd.Choice(["1", "2", "4"])), gd.Space(threads=gd.Choice([1, 2, 4]))]
    runs = [gd.minimize(f, space=space, gradient="central", max_evals=8).history for space in spaces]
    fig = plot_history(runs, params=True)
    threads_ax = fig.axes[1]
    fig.canvas.draw()
    assert [t.get_text() for t in threads_ax.get_yticklabels()] == ["1", "2", "4"]
    trajectories = [line for line in threads_ax.get_lines() if line.get_linestyle() != "None"]
    for run, space, trajectory in zip(runs, spaces, trajectories):
        places = [[1, 2, 4].index(int(space.from_unit(r["x"])["threads"])) for r in run.iterations]
        np.testing.assert_array_equal(trajectory.get_ydata(), places)


def test_lists_of_increasing_numbers_are_merged_in_increasing_order():
    # `--param bs=32,64,128` beside `--param bs=16,32,64`: 16 was placed above 128 ('32 64 128 16')
    f = lambda p: (float(p["bs"]) - 64) ** 2  # noqa: E731
    spaces = [gd.Space(bs=gd.Choice(["32", "64", "128"])), gd.Space(bs=gd.Choice(["16", "32", "64"]))]
    runs = [gd.minimize(f, space=space, gradient="central", max_evals=8).history for space in spaces]
    fig = plot_history(runs, params=True)
    bs_ax = fig.axes[1]
    fig.canvas.draw()
    assert [t.get_text() for t in bs_ax.get_yticklabels()] == ["16", "32", "64", "128"]
    trajectories = [line for line in bs_ax.get_lines() if line.get_linestyle() != "None"]
    for run, space, trajectory in zip(runs, spaces, trajectories):
        places = [["16", "32", "64", "128"].index(space.from_unit(r["x"])["bs"]) for r in run.iterations]
        np.testing.assert_array_equal(trajectory.get_ydata(), places)
