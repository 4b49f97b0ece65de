import jax.numpy as jnp
import optax
import pytest

from gdtools.optax_description import (MAX_LENGTH, UNDESCRIBED, describe_transformation, differing_parts,
                                        short_description)


def test_adam_is_described_by_its_factories_and_settings():
    assert describe_transformation(optax.adam(1e-3)) == (
        "optax: scale_by_adam(b1=0.9, b2=0.999, eps=1e-08, eps_root=0.0, mu_dtype=None, nesterov=False)"
        " > scale(step_size=-0.001)")


@pytest.mark.parametrize("a, b", [
    (optax.adam(1e-3), optax.sgd(1e-3)),
    (optax.adam(1e-3), optax.adam(1e-2)),
    (optax.adam(1e-3), optax.adam(1e-3, b1=0.8)),
    (optax.sgd(0.1), optax.sgd(0.1, momentum=0.9)),
    (optax.adam(optax.exponential_decay(1e-2, 100, 0.5)), optax.adam(optax.exponential_decay(1e-2, 100, 0.9))),
    (optax.chain(optax.clip(1.0), optax.adam(1e-2)), optax.adam(1e-2)),
])
def test_different_optimizers_get_different_descriptions(a, b):
    assert describe_transformation(a) != describe_transformation(b)


def test_equal_optimizers_built_twice_get_the_same_description():
    assert describe_transformation(optax.adamw(1e-3)) == describe_transformation(optax.adamw(1e-3))
    assert describe_transformation(optax.lbfgs()) == describe_transformation(optax.lbfgs())


@pytest.mark.parametrize("optimizer, label", [
    (optax.adam(1e-3), "optax adam, lr 0.001"),
    (optax.adam(jnp.float32(1e-3)), "optax adam, lr 0.001"),  # as short as float32 allows
    (optax.sgd(0.1), "optax sgd, lr 0.1"),
    (optax.sgd(0.1, momentum=0.9), "optax trace, lr 0.1"),
    (optax.chain(optax.clip(1.0), optax.adam(1e-2)), "optax clip > adam, lr 0.01"),
    (optax.adam(optax.exponential_decay(1e-2, 100, 0.5)), "optax adam > schedule"),
    (optax.inject_hyperparams(optax.adam)(learning_rate=0.01), "optax adam (injected hyperparameters)"),
])
def test_short_description_names_the_parts_and_the_learning_rate(optimizer, label):
    assert short_description(describe_transformation(optimizer)) == label


def test_other_names_pass_through_the_short_form():
    assert short_description("adam") == "adam" and short_description(UNDESCRIBED) == UNDESCRIBED


def test_unreadable_transformations_are_not_described():
    assert describe_transformation(object()) is None  # no update to read


def test_numpy_numbers_read_as_the_same_numbers_written_plainly():
    import numpy as np

    assert describe_transformation(optax.adam(np.float64(0.1))) == describe_transformation(optax.adam(0.1))
    assert short_description(describe_transformation(optax.sgd(np.float32(0.5)))) == "optax sgd, lr 0.5"


def test_very_deep_descriptions_are_cut():
    deep = optax.adam(1e-3)
    for _ in range(40):
        deep = optax.chain(optax.clip(1.0), deep)
    text = describe_transformation(deep)
    assert len(text) == MAX_LENGTH and text.endswith("...")


def test_differing_parts_are_what_a_message_names():
    adam1, adam2 = describe_transformation(optax.adam(0.1)), describe_transformation(optax.adam(0.01))
    assert differing_parts(adam1, adam2) == ("scale(step_size=-0.1)", "scale(step_size=-0.01)")
    sgd = describe_transformation(optax.sgd(0.1))
    assert differing_parts(adam1, sgd) == (adam1.removeprefix("optax: ").split(" > ")[0], "identity")
    adamw = describe_transformation(optax.adamw(0.1))  # parts that do not line up: whole
    assert differing_parts(adam1, adamw) == (adam1, adamw)
    assert differing_parts("adam", sgd) == ("adam", sgd)


def test_differing_settings_name_what_tells_optimizers_apart_or_nothing():
    from gdtools.optax_description import differing_settings

    described = lambda *ts: [describe_transformation(t) for t in ts]  # noqa: E731
    assert differing_settings(described(optax.sgd(0.1, momentum=0.9), optax.sgd(0.1, momentum=0.5))) == [
        "decay=0.9", "decay=0.5"]
    sched = [optax.piecewise_constant_schedule(0.1, {5: s}) for s in (0.5, 0.1)]
    assert differing_settings(described(*(optax.adam(s) for s in sched))) == [
        "boundaries_and_scales={5=0.5}", "boundaries_and_scales={5=0.1}"]
    # the same twice, other structures, descriptions cut short or not optax's: nothing to say
    assert differing_settings(described(optax.adam(0.1), optax.adam(0.1))) is None
    assert differing_settings(described(optax.adamw(0.1), optax.lbfgs())) is None
    cut = describe_transformation(optax.adam(0.1))[:60] + "..."
    assert differing_settings([cut, describe_transformation(optax.adam(0.2))]) is None
    assert differing_settings([UNDESCRIBED, "adam"]) is None and differing_settings([None, 3]) is None


def test_differing_settings_name_the_settings_of_a_schedule_two_runs_share_beside_another_kind():
    from gdtools.optax_description import differing_settings

    described = lambda *ts: [describe_transformation(t) for t in ts]  # noqa: E731
    runs = described(optax.adam(optax.exponential_decay(0.1, 10, 0.5)),
                     optax.adam(optax.exponential_decay(0.1, 10, 0.9)),
                     optax.adam(optax.cosine_decay_schedule(0.1, 50)))
    assert differing_settings(runs) == ["learning_rate=exponential_decay, decay_rate=0.5",
                                        "learning_rate=exponential_decay, decay_rate=0.9",
                                        "learning_rate=cosine_decay_schedule"]
    # two kinds, one run each: the kinds alone, as before
    assert differing_settings(runs[1:]) == ["learning_rate=exponential_decay",
                                            "learning_rate=cosine_decay_schedule"]
