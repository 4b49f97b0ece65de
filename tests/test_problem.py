import numpy as np

import gdtools as gd
from gdtools.problem import _space_problem


def test_unit_neighbours_says_where_probes_are_an_integers_neighbours():
    space = gd.Space(n=gd.Int(1, 100, log=True), m=gd.Int(0, 10), x=gd.Real(-1, 1))
    problem = _space_problem({"n": 3, "m": 3, "x": 0.5}, bounds=None, space=space, stochastic=False)
    x = problem.x0
    h = problem.min_step(x)
    # the move that takes n from 3 to 2 takes it to 5 above; m moves to 2 and 4; x is no integer
    assert space.from_unit(x + h)["n"] == 5
    np.testing.assert_array_equal(problem.unit_neighbours(x, x + h, x - h), [False, True, False])
    at_10 = space.to_unit({"n": 10, "m": 3, "x": 0.5})
    h = problem.min_step(at_10)
    np.testing.assert_array_equal(problem.unit_neighbours(at_10, at_10 + h, at_10 - h), [True, True, False])


def test_unit_neighbours_of_a_choice_are_the_values_next_to_it_in_its_list():
    space = gd.Space(codec=gd.Choice(["lz4", "zstd", "gzip", "xz"]), x=gd.Real(-1, 1))
    problem = _space_problem({"codec": "zstd", "x": 0.5}, bounds=None, space=space, stochastic=False)
    x = problem.x0
    h = problem.min_step(x)
    np.testing.assert_array_equal(problem.unit_neighbours(x, x + h, x - h), [True, False])
    np.testing.assert_array_equal(problem.unit_neighbours(x, x + 2 * h, x - h), [False, False])
