import json
import math

import numpy as np
import pytest

import gdtools as gd
from gdtools.history import MAX_RECORDED_X, History


def _sample_history(path=None):
    h = gd.History(path, meta={"estimator": {"name": "spsa"}, "seed": 3})
    h.record_evaluation(iteration=0, x=np.array([0.1, 1 / 3]), value=1.2345678901234567,
                        samples=[1.2, 1.3, 1.25], statistic="median", spread=0.05, status="ok")
    h.record_evaluation(iteration=0, x=[0.2, 0.4], value=math.nan, samples=[], status="failed",
                        error="exit code 3: boom")
    for k in range(3):
        h.record_iteration(iteration=k, nfev=2 * k + 1, time=0.1 * k, loss=1.0 / (k + 1) + 1e-17,
                           grad_norm=np.float32(0.5), x=np.array([k, math.pi]))
    h.record_iteration(iteration=3, nfev=7, time=0.3, loss=math.inf, grad_norm=None, x=None)
    return h


def test_save_and_load_round_trip_exactly(tmp_path):
    h = _sample_history()
    h.save(tmp_path / "h.jsonl")
    loaded = gd.History.load(tmp_path / "h.jsonl")
    assert loaded == h
    assert loaded.iterations[1]["loss"] == 1.0 / 2 + 1e-17
    assert loaded.evaluations[0]["x"][1] == 1 / 3
    assert math.isnan(loaded.evaluations[1]["value"]) and loaded.iterations[3]["loss"] == math.inf


def test_saving_a_field_added_after_the_run_keeps_the_run_s_file(tmp_path):
    # A JAX number added to the records (a noise-free loss computed after the run) made save() raise
    # a TypeError halfway through the file it had already emptied: the run's own file lost its
    # iterations (found by h72)
    import jax.numpy as jnp

    path = tmp_path / "run.jsonl"
    _sample_history().save(path)
    h = gd.History.load(path)
    for record in h.iterations:
        record["true_loss"] = jnp.float32(0.25)
    h.save(path)
    assert gd.History.load(path).column("true_loss").tolist() == [0.25] * 4
    before = path.read_text()
    h.iterations[2]["note"] = object()
    with pytest.raises(gd.InputError, match=r"cannot save the history.*\(iteration\).*left as it was"):
        h.save(path)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


def test_saving_to_a_symbolic_link_writes_the_file_it_points_to(tmp_path):
    # save() wrote a partial file beside the link and moved it onto the link: the link became a
    # file of its own and the run's file it pointed to was left as it was (found by h75)
    import os

    real = tmp_path / "runs" / "run.jsonl"
    real.parent.mkdir()
    _sample_history().save(real)
    link = tmp_path / "latest.jsonl"
    os.symlink(real, link)
    h = gd.History.load(link)
    h.meta["note"] = "checked"
    h.save(link)
    assert os.path.islink(link) and gd.History.load(real).meta["note"] == "checked"
    assert sorted(p.name for p in real.parent.iterdir()) == ["run.jsonl"]


def test_file_is_appended_as_records_arrive_and_reloads(tmp_path):
    path = tmp_path / "live.jsonl"
    h = _sample_history(path)
    # Without closing: each line is already flushed, as after a kill -9.
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "meta" and len(lines) == 1 + 2 + 4
    assert gd.History.load(path) == h


def test_a_line_cut_by_a_crash_is_ignored_but_other_garbage_is_an_error(tmp_path):
    path = tmp_path / "cut.jsonl"
    _sample_history(path)
    with open(path, "a") as f:
        f.write('{"kind": "iteration", "itera')
    assert len(gd.History.load(path)) == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "meta"}\nnot json\n{"kind": "iteration"}\n')
    with pytest.raises(gd.InputError, match="line 2"):
        gd.History.load(bad)


def test_non_history_files_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(gd.InputError, match="cannot read history"):
        gd.History.load(tmp_path / "missing.jsonl")
    picture = tmp_path / "loss.png"  # a PNG given where the history goes: said so, not a codec error
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(gd.InputError, match="is not a history file: it is not text"):
        gd.History.load(picture)
    other = tmp_path / "other.jsonl"
    other.write_text('{"a": 1}\n')
    with pytest.raises(gd.InputError, match=r"'.*other.jsonl' is not a gdtools history file \(line 1 is not a "
                                            r"history record: it has no \"kind\"\)"):
        gd.History.load(other)
    other.write_text('{"kind": "meta"}\n[1, 2]\n')  # JSON, but not a record: not "unknown record kind None"
    with pytest.raises(gd.InputError, match=r"not a gdtools history file \(line 2 is not a history record: "
                                            r"it is not a JSON object\)"):
        gd.History.load(other)
    other.write_text('{"kind": "meta"}\n{"kind": "checkpoint"}\n')  # a kind from a newer gdtools, say
    with pytest.raises(gd.InputError, match="line 2: unknown record kind 'checkpoint'"):
        gd.History.load(other)


def test_columns_best_loss_and_trajectory():
    h = gd.History()
    for k, loss in enumerate([3.0, 5.0, 2.0, math.nan, 4.0]):
        h.record_iteration(iteration=k, nfev=k, time=k, loss=loss, grad_norm=1.0, x=[k])
    np.testing.assert_array_equal(h.best_loss, [3.0, 3.0, 2.0, 2.0, 2.0])
    assert h.x.shape == (5, 1)


def test_large_vectors_are_not_stored_per_iteration():
    h = gd.History()
    h.record_iteration(iteration=0, x=np.zeros(MAX_RECORDED_X + 1), loss=1.0)
    assert h.iterations[0]["x"] is None and h.x is None


def test_record_iterations_in_bulk_equals_one_record_at_a_time(tmp_path):
    rng = np.random.default_rng(0)
    columns = dict(iteration=np.arange(4), nfev=np.array([1, 3, 5, 7]), time=np.linspace(0, 1, 4),
                   loss=rng.normal(size=4).astype(np.float32), grad_norm=np.array([1.0, np.nan, np.inf, 0.5]))
    for xs in (rng.normal(size=(4, 3)), None, np.zeros((4, MAX_RECORDED_X + 1))):
        one, bulk = gd.History(tmp_path / "one.jsonl"), gd.History(tmp_path / "bulk.jsonl")
        for i in range(4):
            one.record_iteration(**{k: v[i] for k, v in columns.items()}, x=None if xs is None else xs[i])
        bulk.record_iterations(**columns, x=xs)
        one.close(), bulk.close()
        assert json.dumps(bulk.iterations) == json.dumps(one.iterations)
        assert (tmp_path / "bulk.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()


def test_bulk_records_in_memory_read_the_same_before_and_after_they_become_dicts():
    rng = np.random.default_rng(1)

    def columns(start, size):
        return dict(iteration=np.arange(start, start + size), nfev=np.arange(size) * 2 + 1,
                    loss=rng.normal(size=size), grad_norm=np.abs(rng.normal(size=size)))

    first, second = columns(0, 5), columns(5, 3)
    xs1, xs2 = rng.normal(size=(5, 2)), rng.normal(size=(3, 2))
    reference = gd.History()
    for cols, xs in ((first, xs1), (second, xs2)):
        for i in range(len(xs)):
            reference.record_iteration(**{k: v[i] for k, v in cols.items()}, x=xs[i])
    lazy = gd.History()
    lazy.record_iterations(**first, x=xs1)
    lazy.record_iterations(**second, x=xs2)
    # read from the columns, before any record is built
    assert len(lazy) == len(reference) == 8
    for name in ("iteration", "nfev", "loss", "grad_norm", "time"):
        np.testing.assert_array_equal(lazy.column(name), reference.column(name))
    np.testing.assert_array_equal(lazy.best_loss, reference.best_loss)
    np.testing.assert_array_equal(lazy.x, reference.x)
    # a single record after the blocks keeps its place, and the records are the same dicts
    lazy.record_iteration(iteration=8, loss=0.0, x=[0.0, 0.0], final=True)
    reference.record_iteration(iteration=8, loss=0.0, x=[0.0, 0.0], final=True)
    assert lazy == reference and json.dumps(lazy.iterations) == json.dumps(reference.iterations)


def test_bulk_records_without_x_have_no_trajectory():
    h = gd.History()
    h.record_iterations(iteration=np.arange(3), loss=np.ones(3), x=None)
    assert h.x is None and len(h) == 3 and h.iterations[2]["x"] is None


def test_records_one_at_a_time_and_in_bulk_mix_in_order():
    """One History reused: a record, a bulk block, another record, another block; every reading
    (columns, trajectory, length, records) sees them in the order they came."""
    h, reference = gd.History(), gd.History()
    steps = [("one", 0), ("bulk", (1, 3)), ("one", 4), ("bulk", (5, 7))]
    for kind, where in steps:
        rows = [where] if kind == "one" else list(range(where[0], where[1] + 1))
        for target in (h, reference):
            if kind == "one" or target is reference:
                for k in rows:
                    target.record_iteration(iteration=k, loss=float(k) ** 2, x=[k, -k])
            else:
                target.record_iterations(iteration=np.array(rows), loss=np.array(rows, float) ** 2,
                                         x=np.array([[k, -k] for k in rows]))
    assert len(h) == 8
    np.testing.assert_array_equal(h.loss, np.arange(8.0) ** 2)
    np.testing.assert_array_equal(h.column("iteration"), np.arange(8))
    np.testing.assert_array_equal(h.x, reference.x)
    assert json.dumps(h.iterations) == json.dumps(reference.iterations)


def test_bulk_records_need_columns_of_one_length_and_may_be_x_alone():
    h = gd.History()
    with pytest.raises(gd.InputError, match="one length"):
        h.record_iterations(iteration=np.arange(3), loss=np.ones(2))
    h.record_iterations(x=np.zeros((2, 3)))
    assert len(h) == 2 and h.x.shape == (2, 3) and h.iterations[1] == {"kind": "iteration", "x": [0.0] * 3}


def test_a_copy_or_a_pickle_of_a_history_with_bulk_records_keeps_them_once():
    import copy
    import pickle

    h = gd.History()
    h.record_iterations(iteration=np.arange(3), loss=np.ones(3))
    c = copy.copy(h)
    assert len(c.iterations) == 3 and len(h.iterations) == 3
    again = pickle.loads(pickle.dumps(h))
    assert again == h and len(again) == 3
    # a History pickled before records could be pending stored them as `iterations`
    old = object.__new__(gd.History)
    old.__setstate__({"meta": {}, "iterations": [{"kind": "iteration", "loss": 1.0}], "evaluations": [],
                      "path": None, "_file": None})
    assert len(old) == 1 and old.loss[0] == 1.0


def test_resume_after_a_line_cut_by_a_crash_appends_on_a_line_of_its_own(tmp_path):
    import numpy as np

    path = tmp_path / "run.jsonl"
    gd.minimize(lambda x: float(np.sum(np.asarray(x) ** 2)), np.ones(2), gradient="spsa", max_evals=12,
                history=str(path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:6]) + "\n" + lines[6][:40])  # killed while writing line 7
    gd.minimize(lambda x: float(np.sum(np.asarray(x) ** 2)), np.ones(2), gradient="spsa", max_evals=12,
                history=str(path), resume=True)
    resumed = gd.History.load(path)  # every line reads: the cut one is gone, not glued to the next
    assert len(resumed.evaluations) == 12
    assert all(line.startswith("{") and line.endswith("}") for line in path.read_text().splitlines())


def test_resume_after_an_unreadable_last_line_with_its_newline_leaves_a_readable_file(tmp_path):
    # load() skips an unreadable last line with or without its newline; only the one without was
    # cut when the run resumed, so one with it stayed, in the middle once the resumed run appended
    # after it, and the file could no longer be loaded (gdtools plot and a second --resume failed)
    import numpy as np

    path = tmp_path / "run.jsonl"
    fun = lambda x: float(np.sum(np.asarray(x) ** 2))  # noqa: E731
    gd.minimize(fun, np.ones(2), gradient="spsa", max_evals=12, history=str(path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:6]) + "\n" + lines[6][:40] + "\n")
    gd.minimize(fun, np.ones(2), gradient="spsa", max_evals=12, history=str(path), resume=True)
    resumed = gd.History.load(path)
    assert len(resumed.evaluations) == 12
    assert all(line.startswith("{") and line.endswith("}") for line in path.read_text().splitlines())


def test_a_finished_run_resumed_with_more_budget_continues_in_one_clean_history(tmp_path):
    space = gd.Space(x=gd.Int(1, 100), y=gd.Real(0.1, 10.0, log=True))
    fun = lambda p: (p["x"] - 30) ** 2 / 100 + (p["y"] - 3) ** 2  # noqa: E731
    path = str(tmp_path / "run.jsonl")
    first = gd.minimize(fun, space=space, gradient="spsa", max_evals=8, history=path)
    again = gd.minimize(fun, space=space, gradient="spsa", max_evals=8, history=path, resume=True)
    assert again.x == first.x and again.fun == first.fun  # replayed to the same end, nothing measured
    more = gd.minimize(fun, space=space, gradient="spsa", max_evals=16, history=path, resume=True)
    h = gd.History.load(path)
    assert [r["iteration"] for r in h.iterations] == list(range(more.nit + 1))  # no gap, no stale end
    assert sum(bool(r.get("final")) for r in h.iterations) == 1
    assert sorted(r["index"] for r in h.evaluations) == list(range(more.nfev))  # one record per index


def test_a_fact_learnt_during_a_file_backed_run_reaches_the_file(tmp_path):
    path = tmp_path / "run.jsonl"
    h = History(path, meta={"estimator": "central", "optimizer": "default (L-BFGS, Armijo line search)"})
    h.record_evaluation(x=[0.5], value=1.0, status="ok")
    h.update_meta(optimizer="default (Spall's gain)")
    h.record_iteration(iteration=0, nfev=1, time=0.0, loss=1.0, grad_norm=0.1, x=[0.5])
    h.close()
    loaded = History.load(path)
    assert loaded.meta["optimizer"] == "default (Spall's gain)" and loaded.meta["estimator"] == "central"
    assert len(loaded.evaluations) == 1 and len(loaded.iterations) == 1


def test_a_run_resumed_with_more_budget_measures_only_the_new_evaluations(tmp_path):
    """The decaying gain's schedule depends on the budget it was built for; a resume with another
    budget keeps the recorded schedule, so the recorded evaluations replay instead of being
    measured again (the first steps of a larger budget differ, and the whole run was re-measured)."""
    space = gd.Space(x=gd.Int(1, 200), y=gd.Real(0.1, 10.0, log=True))
    calls = []

    def fun(p):
        calls.append(p)
        return (p["x"] - 30) ** 2 / 100 + (p["y"] - 3) ** 2

    path = str(tmp_path / "run.jsonl")
    first = gd.minimize(fun, space=space, max_evals=30, history=path)
    measured = len(calls)
    calls.clear()
    more = gd.minimize(fun, space=space, max_evals=40, history=path, resume=True)
    assert more.nfev == 40 and len(calls) <= 40 - first.nfev + 1  # the new evaluations (and a final one)
    assert measured <= first.nfev + 1
    h = gd.History.load(path)
    assert h.meta["gain_iterations"] > 0
    with pytest.raises(gd.InputError, match="budget of 20 evaluations .* already spent 40"):  # a smaller budget cannot resume it
        gd.minimize(fun, space=space, max_evals=20, history=path, resume=True)
    assert sorted(r["index"] for r in h.evaluations) == list(range(more.nfev))


def test_a_resumed_run_with_more_budget_averages_over_its_own_last_iterates(tmp_path):
    # Polyak averaging (SPSA(average=0.5)) recommends the mean of the last half of this run's
    # iterates; the recorded step schedule of a shorter first run must not move that window
    space = gd.Space(x=gd.Int(1, 200), y=gd.Real(0.1, 10.0, log=True))
    fun = lambda p: (p["x"] - 30) ** 2 / 100 + (p["y"] - 3) ** 2  # noqa: E731
    path = str(tmp_path / "avg.jsonl")
    gd.minimize(fun, space=space, history=path, max_evals=30, gradient=gd.estimators.SPSA(average=0.5))
    gd.minimize(fun, space=space, history=path, max_evals=200, gradient=gd.estimators.SPSA(average=0.5),
                resume=True)
    h = gd.History.load(path)
    xs = np.array([it["x"] for it in h.iterations if not it.get("final")])
    recommended = np.array(h.iterations[-1]["x"])
    assert h.meta["gain_iterations"] < len(xs) // 4  # the first run's short schedule
    np.testing.assert_allclose(recommended, xs[len(xs) // 2:].mean(axis=0), atol=1e-3)


def _strict_json(line):
    """json.loads that refuses NaN and Infinity, as jq, JavaScript and other parsers do."""
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


def test_every_line_is_standard_json_and_nonfinite_numbers_come_back(tmp_path):
    path = tmp_path / "live.jsonl"
    h = gd.History(path, meta={"seed": 1, "note": "NaN", "other": "text:Infinity"})
    h.record_evaluation(iteration=0, x=[math.inf, -math.inf, 0.5], value=math.nan, samples=[1.0, math.nan],
                        status="failed", error="NaN")
    h.record_iteration(iteration=0, nfev=1, time=0.0, loss=-math.inf, grad_norm=math.nan, x=[math.inf, 1.0])
    h.save(tmp_path / "saved.jsonl")
    for name in ("live.jsonl", "saved.jsonl"):
        lines = (tmp_path / name).read_text().splitlines()
        records = [_strict_json(line) for line in lines]
        assert records[1]["value"] == "NaN" and records[1]["x"] == ["Infinity", "-Infinity", 0.5]
        loaded = gd.History.load(tmp_path / name)
        evaluation, iteration = loaded.evaluations[0], loaded.iterations[0]
        assert math.isnan(evaluation["value"]) and evaluation["x"] == [math.inf, -math.inf, 0.5]
        assert evaluation["samples"][0] == 1.0 and math.isnan(evaluation["samples"][1])
        assert evaluation["error"] == "NaN"  # strings stay strings
        assert loaded.meta["note"] == "NaN" and loaded.meta["other"] == "text:Infinity"
        assert iteration["loss"] == -math.inf and math.isnan(iteration["grad_norm"]) and iteration["x"] == [math.inf, 1.0]
        assert loaded == h
    assert h.evaluations[0]["value"] != "NaN"  # the records in memory keep their numbers


def test_a_file_with_bare_nan_from_an_older_gdtools_still_loads(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text('{"kind": "meta", "format": 1}\n'
                    '{"kind": "iteration", "iteration": 0, "nfev": 1, "loss": NaN, "grad_norm": Infinity, "x": null}\n')
    loaded = gd.History.load(path)
    assert math.isnan(loaded.iterations[0]["loss"]) and loaded.iterations[0]["grad_norm"] == math.inf


def test_a_file_holding_two_runs_is_refused_and_a_resumed_run_still_loads(tmp_path):
    # `cat a.jsonl b.jsonl > two.jsonl` once loaded as one run: b's meta merged into a's, and the
    # de-duplication by evaluation index dropped a's records that b numbered the same
    fun = lambda x: float(np.sum((np.asarray(x) - 1.0) ** 2))  # noqa: E731
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    gd.minimize(fun, np.zeros(2), gradient="spsa", max_evals=10, history=str(a))
    gd.minimize(fun, np.zeros(2), gradient="central", max_evals=12, history=str(b))
    first = a.read_text()
    two = tmp_path / "two.jsonl"
    two.write_text(first + b.read_text())
    line = first.count("\n") + 1
    with pytest.raises(gd.InputError, match=rf"two.jsonl' holds more than one run \(a second run starts "
                                            rf"at line {line}\)"):
        gd.History.load(two)
    # a resumed run appends to its file, with later meta lines but no second "format"
    metas_before = a.read_text().count('"kind": "meta"')
    gd.minimize(fun, np.zeros(2), gradient="spsa", max_evals=20, history=str(a), resume=True)
    metas = [json.loads(line) for line in a.read_text().splitlines() if '"kind": "meta"' in line]
    assert "format" in metas[0] and len(metas) > metas_before and not any("format" in m for m in metas[1:])
    assert len(gd.History.load(a).evaluations) == 20


def test_a_finished_run_with_a_meta_line_after_its_end_is_resumed_from_before_its_end(tmp_path):
    # gdtools tune appends its side-by-side (a meta line) after the final iteration record: the
    # final record was then kept on resume, counted as one of the iterations already recorded (the
    # resumed run left one of its own unrecorded) and the file held two final records
    import gdtools as gd

    space = gd.Space(a=gd.Real(0, 1), b=gd.Real(0, 1))
    f = lambda p: (p["a"] - 0.3) ** 2 + (p["b"] - 0.6) ** 2  # noqa: E731
    runs = {}
    for appended in (False, True):
        path = tmp_path / f"run{appended}.jsonl"
        gd.minimize(f, space=space, gradient="spsa", max_evals=20, history=str(path), seed=1)
        if appended:
            History.append_meta(path, side_by_side={"best": "start"})
        gd.minimize(f, space=space, gradient="spsa", max_evals=30, history=str(path), seed=1, resume=True)
        runs[appended] = History.load(path)
    assert [bool(r.get("final")) for r in runs[True].iterations].count(True) == 1
    assert ([{k: v for k, v in r.items() if k != "time"} for r in runs[True].iterations]
            == [{k: v for k, v in r.items() if k != "time"} for r in runs[False].iterations])
    assert runs[True].meta["side_by_side"] == {"best": "start"}  # the meta line itself stays


def test_a_resumed_runs_history_in_memory_holds_each_evaluation_once_as_its_file_does(tmp_path):
    # Resuming a finished run with a larger budget: its final measurement (index 8) stays in the
    # file to be replayed, but the resumed run measured a probe there instead. The file's reader
    # keeps the later record; the history in memory held both, so counts of evaluations (failed
    # ones, the best measured point) read from it counted the stale one too.
    path = str(tmp_path / "run.jsonl")
    rng = np.random.default_rng(0)

    def noisy(p):
        return (p["x"] - 30) ** 2 / 100 + (p["y"] - 3) ** 2 + float(rng.normal(0, 0.01))

    space = gd.Space(x=gd.Int(1, 100), y=gd.Real(0.1, 10, log=True))
    gd.minimize(noisy, space=space, gradient="spsa", max_evals=10, history=path)
    res = gd.minimize(noisy, space=space, gradient="spsa", max_evals=20, history=path, resume=True)
    in_memory = [r["index"] for r in res.history.evaluations]
    assert in_memory == [r["index"] for r in gd.History.load(path).evaluations]
    assert len(in_memory) == len(set(in_memory)) == res.nfev


def test_a_meta_field_named_kind_is_refused_not_written_as_an_unreadable_file(tmp_path):
    # {"kind": "ablation", ...} as the first line took the place of "kind": "meta": load() and
    # `gdtools plot` refused the whole file as no gdtools history
    path = tmp_path / "run.jsonl"
    with pytest.raises(gd.InputError, match="'kind' is reserved"):
        History(path, meta={"kind": "ablation"})
    history = History(path, meta={"run_kind": "ablation"})
    with pytest.raises(gd.InputError, match="'kind' is reserved"):
        history.update_meta(kind="ablation")
    with pytest.raises(gd.InputError, match="'kind' is reserved"):
        History.append_meta(path, kind="ablation")
    history.close()
    assert History.load(path).meta["run_kind"] == "ablation"


def test_histories_compare_equal_when_a_record_holds_a_jax_number(tmp_path):
    import jax.numpy as jnp

    h = _sample_history()
    h.iterations[0]["t"] = jnp.float32(1)  # a field added after the run, computed with JAX
    assert h == h
    h.save(tmp_path / "h.jsonl")
    assert gd.History.load(tmp_path / "h.jsonl") == h  # saved as the plain number it holds
    other = _sample_history()
    other.iterations[0]["t"] = jnp.float32(2)
    assert other != h
