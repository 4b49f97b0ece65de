import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gdtools.errors import InputError
from gdtools.space import Choice, Int, Real, Space


def imu_space():
    return Space(rate=Int(10, 1000, log=True), batch=Int(1, 512, log=True), alpha=Real(0.0, 1.0),
                 gain=Real(1e-3, 10.0, log=True))


def test_names_keep_order_and_describe():
    space = imu_space()
    assert space.names == ("rate", "batch", "alpha", "gain")
    assert space.describe()["rate"] == {"low": 10, "high": 1000, "log": True, "int": True}
    assert space.describe()["alpha"] == {"low": 0.0, "high": 1.0, "log": False, "int": False}
    assert Space.from_description(space.describe()) == space


def test_center_is_middle_of_own_scale_and_ints_are_python_ints():
    c = imu_space().center()
    assert c["rate"] == 100 and type(c["rate"]) is int
    assert c["batch"] == round(math.sqrt(512)) and type(c["batch"]) is int
    assert c["alpha"] == pytest.approx(0.5) and type(c["alpha"]) is float
    assert c["gain"] == pytest.approx(math.sqrt(1e-3 * 10.0))


def test_to_unit_linear_and_log():
    space = imu_space()
    u = space.to_unit({"rate": 100, "batch": 1, "alpha": 0.25, "gain": 10.0})
    assert u.dtype == np.float64
    np.testing.assert_allclose(u, [0.5, 0.0, 0.25, 1.0], atol=1e-12)


def test_from_unit_clips_and_rounds():
    space = imu_space()
    p = space.from_unit([-3.0, 7.0, 1.5, -0.1])
    assert p == {"rate": 10, "batch": 512, "alpha": 1.0, "gain": pytest.approx(1e-3)}
    p = space.from_unit([0.5004, 0.5, 0.5, 0.5])
    assert p["rate"] == 100


@pytest.mark.parametrize("params, words", [
    ({"rate": 100, "batch": 4, "alpha": 0.5, "gain": 1.0, "speed": 3}, ["unknown", "'speed'"]),
    ({"rate": 100, "batch": 4, "alpha": 0.5}, ["missing", "'gain'"]),
    ({"rate": 5, "batch": 4, "alpha": 0.5, "gain": 1.0}, ["'rate'", "5", "[10, 1000]"]),
    ({"rate": 100, "batch": 4, "alpha": 1.5, "gain": 1.0}, ["'alpha'", "1.5", "[0.0, 1.0]"]),
    ({"rate": 100.5, "batch": 4, "alpha": 0.5, "gain": 1.0}, ["'rate'", "integer", "100.5"]),
    ({"rate": "100", "batch": 4, "alpha": 0.5, "gain": 1.0}, ["'rate'", "number", "'100'"]),
    ({"rate": 100, "batch": 4, "alpha": float("nan"), "gain": 1.0}, ["'alpha'", "nan"]),
    # a whole number no float holds: an OverflowError from float(), not this message
    ({"rate": 10**400, "batch": 4, "alpha": 0.5, "gain": 1.0}, ["'rate'", "finite number", "[10, 1000]"]),
    ({"rate": 100, "batch": 4, "alpha": -10**400, "gain": 1.0}, ["'alpha'", "finite number", "[0.0, 1.0]"]),
])
def test_to_unit_errors_name_parameter_value_and_bounds(params, words):
    with pytest.raises(InputError) as info:
        imu_space().to_unit(params)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("make, words", [
    (lambda: Real(1.0, 1.0), ["low", "high", "1.0"]),
    (lambda: Int(5, 2), ["low", "high", "5", "2"]),
    (lambda: Real(0.0, 1.0, log=True), ["log", "low", "0.0"]),
    (lambda: Int(-3, 10, log=True), ["log", "-3"]),
    (lambda: Real("a", 1.0), ["low", "'a'"]),
    (lambda: Real(0.0, float("inf")), ["high", "inf"]),
    (lambda: Int(1.5, 4), ["low", "whole", "1.5"]),
    (lambda: Int(1, 10**300), ["high", "2**53", "at most"]),
    (lambda: Int(1, 10**400), ["high", "2**53", "at most"]),
    (lambda: Int(-1e300, 1), ["low", "2**53", "at most"]),
    # a quarter of its integers came back from their unit positions as their neighbours
    (lambda: Int(-2 ** 53, 2 ** 53), ["range", "low=-9007199254740992", "2**53", "narrow it"]),
    (lambda: Real(-1e308, 1e308), ["range", "wider than a float", "log scale"]),
    (lambda: Space(), ["at least one"]),
    (lambda: Space(rate=(1, 10)), ["'rate'", "Real", "Int", "(1, 10)"]),
])
def test_construction_errors(make, words):
    with pytest.raises(InputError) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_round_unit_snaps_to_the_rounded_point():
    space = Space(n=Int(0, 10), x=Real(0.0, 1.0))
    r = space.round_unit([0.33, 0.123])
    np.testing.assert_allclose(r, [0.3, 0.123])
    assert space.from_unit(r) == space.from_unit([0.33, 0.123])


def test_min_step_linear_int_is_one_unit_and_real_is_zero():
    space = Space(n=Int(0, 10), x=Real(0.0, 1.0))
    step = space.min_step([0.5, 0.5])
    assert step[0] == pytest.approx(0.1, rel=1e-6) and step[0] >= 0.1
    assert step[1] == 0.0


@settings(max_examples=300, deadline=None)
@given(u=st.floats(0.0, 1.0), low=st.integers(1, 50), width=st.integers(1, 5000),
       log=st.booleans())
def test_min_step_always_moves_the_rounded_integer(u, low, width, log):
    """The integer rule: a probe of at least min_step, either way, never lands on the same int."""
    space = Space(n=Int(low, low + width, log=log))
    h = space.min_step([u])[0]
    assert 0.0 < h <= 1.0
    here = space.from_unit([u])["n"]
    up, down = space.from_unit([u + h])["n"], space.from_unit([u - h])["n"]
    if u + h <= 1.0:
        assert up >= here + 1 or up == low + width
    if u - h >= 0.0:
        assert down <= here - 1 or down == low
    # at least one side always moves (a central difference is never 0/0)
    assert up != down


def test_min_step_log_int_is_largest_at_small_values():
    space = Space(n=Int(1, 1000, log=True))
    small, large = space.min_step([0.1])[0], space.min_step([0.9])[0]
    assert small > 10 * large


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(10, 1000), batch=st.integers(1, 512), alpha=st.floats(0.0, 1.0),
       gain=st.floats(1e-3, 10.0))
def test_round_trip_user_unit_user(rate, batch, alpha, gain):
    space = imu_space()
    params = {"rate": rate, "batch": batch, "alpha": alpha, "gain": gain}
    u = space.to_unit(params)
    assert np.all((u >= 0) & (u <= 1))
    back = space.from_unit(u)
    assert back["rate"] == rate and back["batch"] == batch
    assert back["alpha"] == pytest.approx(alpha, abs=1e-12)
    assert back["gain"] == pytest.approx(gain, rel=1e-9)


def test_from_unit_wrong_length_is_an_error():
    with pytest.raises(InputError, match="4 entries"):
        imu_space().from_unit([0.5, 0.5])


def test_space_pickles():
    space = imu_space()
    assert pickle.loads(pickle.dumps(space)) == space


def test_log_scale_rounding_noise_does_not_reach_the_values():
    # exp(log(0.1) / 2 + log(10) / 2) is 1.0000000000000002 in floating point
    assert Space(y=Real(0.1, 10.0, log=True)).center() == {"y": 1.0}


def test_log_range_wider_than_a_float_keeps_its_middle_and_ends():
    # high / low = 1e300 / 1e-300 overflows to inf: the middle was the top (1e300, which
    # `gdtools tune --param x=1e-300:1e300:log` started from) and every unit position nan
    space = Space(x=Real(1e-300, 1e300, log=True))
    assert space.center()["x"] == pytest.approx(1.0, rel=1e-12)
    assert space.to_unit({"x": 1e300}) == pytest.approx([1.0])
    assert space.to_unit({"x": 1e-300}) == pytest.approx([0.0])
    assert space.to_unit({"x": 1e150})[0] == pytest.approx(0.75)
    assert space.from_unit([0.25])["x"] == pytest.approx(1e-150, rel=1e-12)


@pytest.mark.parametrize("param", [Real(1e-6, 1.0, log=True), Real(5.9e-39, 8.56e-24, log=True),
                                   Real(-1790830832299721.0, 0.0), Real(-1e20, 1.0),
                                   Int(1, 10 ** 15, log=True), Int(-2 ** 53, 0)])
def test_the_ends_of_the_unit_range_are_the_bounds_exactly(param):
    # exp(log(1e-6) + log(1e6)) is 0.999999999999999 after the 15-digit rounding: the top of
    # Real(1e-6, 1.0, log=True) reached the program's command line as --p 0.999999999999999
    space = Space(p=param)
    assert space.from_unit([0.0]) == {"p": param.low}
    assert space.from_unit([1.0]) == {"p": param.high}
    assert space.from_unit([-0.5]) == {"p": param.low} and space.from_unit([1.5]) == {"p": param.high}


@pytest.mark.parametrize("param, value", [(Real(1.5e-06, 4.9, log=True), 0.74),
                                          (Real(1.7e-07, 150.0, log=True), 8.38),
                                          (Real(0.0012, 420000.0, log=True), 952.0),
                                          (Real(0.018, 7400000.0, log=True), 791000.0)])
def test_a_value_comes_back_from_its_unit_position_as_written(param, value):
    # the log scale's rounding noise is a few units of the 15th digit: --start a=0.74 was run
    # as --a 0.739999999999999
    space = Space(a=param)
    assert space.from_unit(space.to_unit({"a": value})) == {"a": value}


@settings(max_examples=300, deadline=None)
@given(low=st.floats(1e-9, 1e3), decades=st.floats(0.1, 9.0), position=st.floats(0.0, 1.0),
       digits=st.integers(1, 6), log=st.booleans())
def test_short_values_survive_the_round_trip_through_the_unit_cube(low, decades, position, digits, log):
    low = float(f"{low:.2g}")
    high = float(f"{low * 10 ** decades:.2g}")
    if not low < high:
        return
    value = float(f"{low + position * (high - low):.{digits}g}")
    if not low <= value <= high:
        return
    space = Space(a=Real(low, high, log=log))
    assert space.from_unit(space.to_unit({"a": value})) == {"a": value}


def test_a_choice_gives_the_objective_its_values_and_moves_one_value_along_its_list_at_least():
    space = Space(codec=Choice(["lz4", "zstd", "gzip"]), on=Choice([False, True]), n=Int(1, 100, log=True))
    assert space.center() == {"codec": "zstd", "on": False, "n": 10}
    u = space.to_unit({"codec": "gzip", "on": True, "n": 10})
    np.testing.assert_allclose(u, [1.0, 1.0, 0.5])
    assert space.from_unit(u) == {"codec": "gzip", "on": True, "n": 10}
    assert space.positions(u) == [2, 1, 10]
    codecs = ["lz4", "zstd", "gzip"]
    for i, codec in enumerate(codecs):  # the smallest move reaches the next value on each side
        at = space.to_unit({"codec": codec, "on": False, "n": 10})
        step = np.array([space.min_step(at)[0], 0, 0])
        assert space.from_unit(at - step)["codec"] == codecs[max(i - 1, 0)]
        assert space.from_unit(at + step)["codec"] == codecs[min(i + 1, 2)]


@pytest.mark.parametrize("values, words", [
    ("lz4", ["list of values", "'lz4'"]),
    (["lz4"], ["at least two"]),
    ([1, 1.0], ["listed twice", "1"]),
    (["a", None], ["strings, booleans or finite numbers", "None"]),
    ([0.5, float("nan")], ["finite", "nan"]),
    ({"a": 1, "b": 2}, ["list of values"]),
    # a set's order changes from one Python process to the next (string hashing): another search
    # each time, and a resume refused for 'another order' of the values the user wrote once
    ({"lz4", "zstd", "gzip"}, ["a set has no order", "in a list"]),
    (frozenset([1, 2]), ["a set has no order"]),
])
def test_choice_construction_errors(values, words):
    with pytest.raises(InputError) as info:
        Choice(values)
    for word in words:
        assert word in str(info.value)


def test_a_choice_tells_true_from_1_but_not_1_from_1_point_0_and_keeps_plain_values():
    assert Choice([1, True]) != Choice([True, 1]) and Choice([1, 2]) == Choice([1.0, 2.0])
    flags = Choice([False, True])
    assert flags.index(True) == 1 and flags.index(1) is None and flags.index("True") is None
    plain = Choice(np.array([8, 16, 32]))
    assert plain.values == (8, 16, 32) and all(type(v) is int for v in plain.values)
    assert Space(b=plain).from_unit([1.0]) == {"b": 32}


def test_a_value_not_in_a_choice_is_named_with_the_values():
    space = Space(codec=Choice(["lz4", "zstd"]))
    with pytest.raises(InputError, match=r"'codec' = 'bz2' is not one of its values \['lz4', 'zstd'\]"):
        space.to_unit({"codec": "bz2"})


def test_a_choice_round_trips_through_describe_and_json():
    import json

    space = Space(codec=Choice(["lz4", "zstd"]), level=Choice([1, 3, 9]), on=Choice([False, True]), x=Real(0, 1))
    again = Space.from_description(json.loads(json.dumps(space.describe())))
    assert again == space and again.params["on"].values == (False, True)
    assert again != Space(codec=Choice(["zstd", "lz4"]), level=Choice([1, 3, 9]), on=Choice([False, True]),
                          x=Real(0, 1))
    assert pickle.loads(pickle.dumps(space)) == space


@pytest.mark.parametrize("low", [3_000_000_000_000_000, 2 ** 53 - 10])
def test_every_integer_of_a_narrow_log_range_near_2_53_keeps_its_own_unit_position(low):
    # log(v / low) rounds v / low to a multiple of 2.2e-16, a whole unit and more there: every odd
    # offset of Int(3e15, 3e15 + 8, log=True) came back from its unit position as the next even one
    # (a start of low + 1 was run as low + 2, and a forward difference from it 'converged' at once)
    space = Space(n=Int(low, low + 8, log=True))
    for v in range(low, low + 9):
        u = space.to_unit({"n": v})
        assert space.from_unit(u) == {"n": v}
        h = space.min_step(u)[0]  # the one-unit rule still reaches both neighbours
        if v < low + 8:
            assert space.from_unit(u + h)["n"] == v + 1
        if v > low:
            assert space.from_unit(u - h)["n"] == v - 1
