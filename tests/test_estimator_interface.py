"""The custom-estimator example of docs/estimators.md, run as written there, and what the engine
says of a custom estimate of the wrong kind."""

import re
from pathlib import Path

import numpy as np
import pytest

import gdtools as gd


def test_the_documented_custom_estimator_runs_and_solves_its_problem():
    doc = (Path(__file__).parent.parent / "docs" / "estimators.md").read_text()
    code = re.search(r"## Writing your own estimator\n\n```python\n(.*?)```", doc, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/estimators.md", "exec"), namespace)
    res = namespace["res"]
    assert res.nfev <= 2000
    np.testing.assert_allclose(res.x, 1.0, atol=0.05)


class _Returns(gd.estimators.GradientEstimator):
    """A custom estimator whose estimate returns what it is given (2 probes a step)."""
    stochastic = True

    def __init__(self, make):
        self.make = make

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
        evaluate(np.stack([x + 0.1, x - 0.1]))
        return self.make(x)


@pytest.mark.parametrize("make, match", [
    (lambda x: gd.estimators.Estimate(value=0.0, grad=list(x - 1), nfev=2), "gradient of type list"),
    (lambda x: gd.estimators.Estimate(value=0.0, grad=x - 1, nfev=None), "nfev=None"),
    (lambda x: (0.0, x - 1, 2), "returned tuple, not a gdtools.estimators.Estimate"),
    (lambda x: None, "returned NoneType"),  # a forgotten return
])
def test_a_custom_estimate_of_the_wrong_kind_is_one_input_error(make, match):
    # a list as grad failed deep in optax (a pytree structure error), nfev=None in the budget's
    # arithmetic (TypeError), a tuple or a missing return on `.grad` (AttributeError)
    fun = lambda x: float(np.sum((x - 1) ** 2))  # noqa: E731
    with pytest.raises(gd.InputError, match=match):
        gd.minimize(fun, np.zeros(3), gradient=_Returns(make), max_evals=40)


class _CallsFun(gd.estimators.GradientEstimator):
    """Forward differences by calling ``fun`` directly, as the signature estimate(fun, x, ...) invites."""

    def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
        f0 = fun(x)
        grad = np.array([(fun(x + 1e-6 * e) - f0) / 1e-6 for e in np.eye(len(x))])
        return gd.estimators.Estimate(value=f0, grad=grad, nfev=len(x) + 1)


def test_a_black_box_estimator_that_calls_fun_is_told_to_use_evaluate():
    # fun was None for an estimator that is not traceable: "'NoneType' object is not callable"
    fun = lambda x: float(np.sum((x - 1) ** 2))  # noqa: E731
    with pytest.raises(gd.InputError, match=r"evaluate\(points\)"):
        gd.minimize(fun, np.zeros(3), gradient=_CallsFun(), max_evals=40)


def test_a_custom_estimator_that_makes_nan_from_finite_probes_is_one_input_error():
    # the engine took it for failed probes: measured it twice more, then 'failed' with "3 gradient
    # estimates in a row had a failed probe ... the last error: None", though no probe had failed
    fun = lambda x: float(np.sum((x - 1) ** 2))  # noqa: E731
    nan_grad = lambda x: gd.estimators.Estimate(value=0.0, grad=np.full_like(x, np.nan), nfev=2)  # noqa: E731
    with pytest.raises(gd.InputError, match="not finite .* every probe it measured gave a finite value") as info:
        gd.minimize(fun, np.zeros(3), gradient=_Returns(nan_grad), max_evals=40)
    assert len(info.value.history.evaluations) == 3  # the start and one estimate's 2 probes


def test_failed_probes_still_get_measured_again():
    # (a nan from a failed probe is not the estimator's: the run goes on)
    calls = []

    def fun(x):
        calls.append(1)
        return float("nan") if len(calls) in (2, 3) else float(np.sum((x - 1) ** 2))

    res = gd.minimize(fun, np.zeros(3), gradient="spsa", max_evals=40)
    assert res.status == "max_evals" and res.nfev == len(calls)


def test_the_documented_custom_estimator_runs_on_a_space():
    # the engine passed min_step= to every estimator on a Space: the docs' Coordinate, whose
    # estimate has the documented keywords only, raised "unexpected keyword argument 'min_step'"
    doc = (Path(__file__).parent.parent / "docs" / "estimators.md").read_text()
    code = re.search(r"## Writing your own estimator\n\n```python\n(.*?)```", doc, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/estimators.md", "exec"), namespace)
    space = gd.Space(a=gd.Real(0.0, 2.0), b=gd.Int(1, 10))
    fun = lambda p: (p["a"] - 1.0) ** 2 + 0.1 * p["b"]  # noqa: E731
    res = gd.minimize(fun, space=space, gradient=namespace["Coordinate"](), max_evals=100)
    assert res.nfev <= 100 and abs(res.x["a"] - 1.0) < 0.1


def test_probe_points_of_another_length_are_one_input_error():
    # evaluate() measured the rows as they came: 4-vectors reached an objective of 3 parameters
    seen = []

    def fun(x):
        seen.append(len(x))
        return float(np.sum((np.asarray(x) - 1) ** 2))

    wrong_length = lambda x: gd.estimators.Estimate(value=0.0, grad=x - 1, nfev=2)  # noqa: E731

    class Longer(_Returns):
        def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
            evaluate(np.zeros((2, len(x) + 1)))
            return self.make(x)

    with pytest.raises(gd.InputError, match=r"shape \(m, 3\).* gave shape \(2, 4\)"):
        gd.minimize(fun, np.zeros(3), gradient=Longer(wrong_length), max_evals=40)
    assert seen == [3]  # the start only


def test_an_estimator_that_measures_nothing_under_max_evals_alone_is_refused():
    """A custom estimate with nfev=0 never spends max_evals: with no max_iters the run went on for
    ever (found by helper-53's review)."""
    class NoProbes(gd.estimators.GradientEstimator):
        stochastic = True

        def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
            return gd.estimators.Estimate(value=np.nan, grad=2 * (x - 1), nfev=0)

    def f(x):
        return float(np.sum((np.asarray(x) - 1) ** 2))

    with pytest.raises(gd.InputError, match="measured nothing .*max_iters"):
        gd.minimize(f, np.zeros(3), gradient=NoProbes(), max_evals=40)
    res = gd.minimize(f, np.zeros(3), gradient=NoProbes(), max_evals=40, max_iters=20)  # a budget that ends it
    assert res.nit == 20


def test_an_evaluations_count_that_is_no_count_is_one_input_error():
    # evaluations(n) returning None failed in the budget's arithmetic: a TypeError mid-run
    class NoCount(gd.estimators.GradientEstimator):
        def evaluations(self, n):
            return None

        def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
            values = evaluate(np.vstack([x]))
            return gd.estimators.Estimate(value=float(values[0]), grad=2 * (x - 1), nfev=1)

    with pytest.raises(gd.InputError, match=r"NoCount's evaluations\(3\) returned None"):
        gd.minimize(lambda x: float(np.sum((x - 1) ** 2)), np.zeros(3), gradient=NoCount(), max_evals=40)


def test_settings_given_as_numpy_numbers_or_one_per_coordinate_are_recorded(tmp_path):
    # describe() kept Python scalars only: Central(step=[0.1, 0.2]) was recorded as {'name':
    # 'central'} and SPSA(c=np.float32(0.25)) without its c, so the history did not say which steps
    # ran, and a resume with other steps was taken for the recorded run
    assert gd.estimators.Central(step=[0.1, 0.2]).describe()["step"] == [0.1, 0.2]
    assert gd.estimators.Central(step=np.array([0.1, 0.2])).describe()["step"] == [0.1, 0.2]
    assert gd.estimators.SPSA(c=np.float32(0.25)).describe()["c"] == 0.25
    path = tmp_path / "run.jsonl"

    def fun(x):
        return float(np.sum((np.asarray(x) - 1.0) ** 2))

    gd.minimize(fun, np.zeros(2), gradient=gd.estimators.Central(step=[0.1, 0.1]), max_evals=12, history=path)
    with pytest.raises(gd.InputError, match=r"step: \[0.1, 0.1\] recorded, \[0.5, 0.5\] given"):
        gd.minimize(fun, np.zeros(2), gradient=gd.estimators.Central(step=[0.5, 0.5]), max_evals=12,
                    history=path, resume=True)


def test_grouped_evaluation_gives_each_group_a_key_and_names_groups_it_cannot_take():
    import jax

    class Grouped(gd.estimators.GradientEstimator):
        """Two pairs along the first coordinate, measured with evaluate.grouped(points, groups)."""
        stochastic = True

        def __init__(self, groups):
            self.groups = groups

        def estimate(self, fun, x, *, key, iteration, evaluate, noise=0.0, scale=None, bounds=None):
            e = np.zeros_like(x)
            e[0] = 0.1
            values = evaluate.grouped(np.stack([x + e, x + e, x - e, x - e]), self.groups)
            grad = np.zeros_like(x)
            grad[0] = np.mean(values[:2] - values[2:]) / 0.2
            return gd.estimators.Estimate(value=float(np.mean(values)), grad=grad, nfev=4)

    keys = []

    def fun(x, key):
        keys.append(tuple(np.asarray(jax.random.key_data(key)).ravel().tolist()))
        return float(np.sum(x ** 2))

    gd.minimize(fun, np.ones(2), gradient=Grouped(np.array([0, 1, 0, 1])), max_iters=1, noise=0.0)
    probes = keys[1:5]  # (after the start)
    assert probes[0] == probes[2] != probes[1] == probes[3]
    for groups in ([0, 1, 0], [0.0, 1.0, 0.0, 1.0], [0, -1, 0, -1]):
        with pytest.raises(gd.InputError, match=r"evaluate.grouped\(points, groups\) takes a whole number"):
            gd.minimize(fun, np.ones(2), gradient=Grouped(np.array(groups)), max_iters=1, noise=0.0)
