"""Quasi-Newton descent with a backtracking line search measured on the host (black boxes).

optax's line searches run inside ``lax.while_loop`` and so need a traceable objective. For a black
box, the direction still comes from an optax transformation (L-BFGS's two-loop recursion,
``optax.scale_by_lbfgs``) and the step length from an Armijo backtracking search whose trial points
are measured by the engine's evaluator, a batch of step lengths at a time so that an executor can
measure them in parallel::

    d = -direction(g)                      (steepest descent if that is not a descent direction,
                                            or, with a fresh memory, if no step along it passes)
    t in {t0, t0*r, t0*r^2, ...}:  accept the largest t with f(x + t d) <= f(x) + c1 * t * g.d
                                            (and f(x + t d) < f(x): a decrease below the
                                            rounding of f is no decrease)
    t0 = min(t_max, grow * t_accepted)     for the next iteration

This is the default optimizer of ``minimize`` for noise-free finite differences (scipy's L-BFGS-B
with finite differences is its peer).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdtools.errors import InputError
from gdtools.transforms import held_at_bound


@dataclasses.dataclass
class LineSearchState:
    direction_state: Any
    step: float


#: L-BFGS's two-loop recursion, the default direction, and its update compiled once per process.
_DEFAULT_DIRECTION = optax.scale_by_lbfgs()
_DEFAULT_UPDATE = jax.jit(_DEFAULT_DIRECTION.update)

#: Machine epsilon of the objective's values unless the engine says otherwise (see step's value_eps).
EPS = float(np.finfo(np.float64).eps)


class LineSearchDescent:
    """Descent along an optax direction with an Armijo backtracking search on the host.

    Args:
      direction: an optax transformation turning the gradient into a search direction
        (default ``optax.scale_by_lbfgs()``).
      c1: Armijo's sufficient-decrease constant.
      shrink: factor between successive trial steps.
      grow: the next search starts at ``grow`` times the accepted step (at most ``max_step``).
      max_step: largest step length tried.
      trials_per_batch: step lengths measured together (in parallel with an executor).
      max_batches: batches tried before giving up on the iteration.
    """

    def __init__(self, direction=None, *, c1=1e-4, shrink=0.5, grow=2.0, max_step=1.0,
                 trials_per_batch=1, max_batches=30):
        if not 0 < c1 < 1 or not 0 < shrink < 1 or grow < 1:
            raise InputError("line search needs 0 < c1 < 1, 0 < shrink < 1 and grow >= 1")
        self.direction = direction if direction is not None else _DEFAULT_DIRECTION
        self.c1, self.shrink, self.grow, self.max_step = c1, shrink, grow, max_step
        self.trials_per_batch, self.max_batches = trials_per_batch, max_batches
        # The default direction's program is shared by every search: jitted per instance, each
        # minimize call compiled it anew (0.44 s of a 0.5 s call on a cheap objective).
        self._update = _DEFAULT_UPDATE if direction is None else jax.jit(direction.update)

    def init(self, x) -> LineSearchState:
        # (the host's precision, float64 under x64, as the gradients and points given to step: a
        # float32 device x0 made a float32 memory that float64 updates were scattered into)
        return LineSearchState(self.direction.init(jnp.asarray(x, dtype=float)), self.max_step)

    def step(self, x, value, grad, state: LineSearchState, evaluate: Callable, project: Callable,
             max_evaluations: int | None = None, bounds=None, value_eps: float = EPS,
             setting: Callable | None = None, integers=None):
        """One iteration: returns ``(new_x, new_value, new_state)``; ``new_x is x`` if no step helped.
        ``max_evaluations``: trial points the search may measure at most (the run's budget).
        ``bounds``: ``(lower, upper)`` arrays, when ``project`` clips to them: coordinates held at a
        bound by the gradient then take no part in the direction, and the sufficient decrease is
        measured along the projected step (Bertsekas' projected Armijo rule). ``value_eps``: the
        relative rounding of the objective's values; the search ends where the decrease a step
        promises is below it (a lower value there would be rounding, not progress). ``setting``:
        the setting a point stands for, hashable (a space's rounded user values; default the point
        itself): trial points that stand for one setting are measured once. ``integers``: which
        coordinates are integer parameters (with a ``setting`` of one value per coordinate): where
        the search leaves every one of them at x's setting, it is made again along the real
        coordinates alone, and the better point kept; one whose setting is a bound's is held there as
        a coordinate on its bound."""
        g = np.asarray(grad, dtype=float)
        held = False if bounds is None else held_at_bound(g, np.asarray(x, dtype=float), *bounds)
        if integers is not None and bounds is not None:
            # An integer parameter whose setting is its bound's (u = 0.36 of Int(0, 1) stands for
            # n = 0) is held there as one on the bound is: moved towards it, its rounding undid the
            # step, while L-BFGS's memory turned its slope into a wrong-signed step for the reals
            # (x in [0, 1] searched down to 0 from 0.13, its minimum at 0.3, for 30 trials)
            held = held | self._integers_at_bound(g, np.asarray(x, dtype=float), bounds, integers, setting)
        g = np.where(held, 0.0, g)
        d, direction_state = self._update(jnp.asarray(g, dtype=float), state.direction_state,
                                          jnp.asarray(x, dtype=float))
        # Coordinates held at a bound stay there. L-BFGS's matrix is not diagonal: it gave them
        # components into the box from the other coordinates' gradients, so they left the bound
        # and came back, iteration after iteration (36 bounded quadratics and Rosenbrocks, n = 5
        # to 20, forward differences: 18,610 evaluations in all, 9,953 with them held; scipy's
        # L-BFGS-B took 6,438).
        d = np.where(held, 0.0, -np.asarray(d, dtype=float))
        left = np.inf if max_evaluations is None else int(max_evaluations)
        steepest = not float(g @ d) < 0  # not a descent direction: steepest descent instead
        if steepest:
            d = -g
        # Values measured in this iteration, by point: trial steps past a bound project onto one
        # point, which an exact objective (the only kind a line search runs on) need not be asked
        # about twice, and x's value is known.
        # (Trial steps along an integer parameter shorter than a unit round back to x's setting:
        # a search on an exact printed number measured n=1 eight times over, 8 of 14 evaluations.)
        setting = setting if setting is not None else (lambda point: point.tobytes())
        known = {setting(np.asarray(x, dtype=float)): float(value)}
        found, left = self._search(x, value, g, d, state.step, evaluate, project, left, bounds, known,
                                   value_eps, setting)
        if found is None and not steepest and left >= 1 and not np.array_equal(d, -g):
            # No step along the quasi-Newton direction (its curvature pairs, made of projected
            # steps, can scale it far off: a 10-d Rosenbrock in a box stalled 0.05 above its
            # minimum with a gradient of 2.8): forget them and search along -g, as L-BFGS-B does.
            # (Not when the direction was -g already, a fresh memory's: the same trial points again.)
            direction_state = self.direction.init(jnp.asarray(x, dtype=float))
            found, left = self._search(x, value, g, -g, self.max_step, evaluate, project, left, bounds,
                                       known, value_eps, setting)
        if (integers is not None and np.any(integers & (d != 0))
                and (found is None or self._integers_stayed(found[0], x, integers, setting))):
            # Every integer parameter ended at x's setting: the step along them promised a decrease
            # that their rounding never let happen, and the search shrank the step until they
            # rounded back, moving the real parameters by the same sliver (an integer at its best
            # setting, whose slope a forward difference measured on its one side, held x at 0.739
            # for 60 evaluations, its minimum at -0.15). Searched again along the reals alone.
            reals = np.where(integers, 0.0, d)
            if not float(g @ reals) < 0:
                reals = np.where(integers, 0.0, -g)
            if float(g @ reals) < 0 and np.any(reals != 0) and left >= 1:
                other, left = self._search(x, value, g, reals, self.max_step, evaluate, project, left, bounds,
                                           known, value_eps, setting)
                if other is not None and (found is None or other[1] < found[1]):
                    found = other
        if found is None:
            return x, value, LineSearchState(direction_state, state.step)
        point, v, s = found
        return point, v, LineSearchState(direction_state, min(self.max_step, self.grow * s))

    @staticmethod
    def _integers_at_bound(g, x, bounds, integers, setting) -> np.ndarray:
        """The integer coordinates whose setting is a bound's that the gradient pushes them past."""
        here = setting(x)
        held = np.zeros(len(x), dtype=bool)
        for i in np.flatnonzero(integers):
            for bound, outward in ((bounds[0], g[i] > 0), (bounds[1], g[i] < 0)):
                if outward:
                    moved = x.copy()
                    moved[i] = bound[i]
                    held[i] |= setting(moved)[i] == here[i]
        return held

    @staticmethod
    def _integers_stayed(point, x, integers, setting) -> bool:
        """Whether every integer coordinate of ``point`` stands for the same value as x's."""
        here = setting(np.asarray(x, dtype=float))
        return all(a == b for a, b, integer in zip(setting(point), here, integers) if integer)

    def _search(self, x, value, g, d, t, evaluate, project, left, bounds, known, value_eps=EPS,
                setting=lambda point: point.tobytes()):
        """Armijo backtracking from step length ``t`` along ``d``: ``((point, value, step) or None,
        trial points left)``. ``known``: values already measured, by ``setting(point)`` (filled as
        it goes)."""
        slope = float(g @ d)
        for _ in range(self.max_batches):
            if left < 1:
                break
            steps = t * self.shrink ** np.arange(int(min(self.trials_per_batch, left)))
            points = np.array([project(x + s * d) for s in steps], dtype=float)
            keys = [setting(point) for point in points]
            new = {}  # the points not measured yet, each once, in the order of their steps
            for key, point in zip(keys, points):
                if key not in known:
                    new.setdefault(key, point)
            if new:
                known.update(zip(new, map(float, evaluate(np.array(list(new.values()))))))
                left -= len(new)
            values = [known[key] for key in keys]
            for s, point, v in zip(steps, points, values):
                decrease = s * slope if bounds is None else min(s * slope, float(g @ (point - x)))
                # strictly lower too: where c1 * decrease is below the rounding of f, Armijo's test
                # alone passed points of exactly f(x), and x crept on without ever stalling
                if np.isfinite(v) and v <= value + self.c1 * decrease and v < value:
                    return (point, float(v), s), left
            t = steps[-1] * self.shrink
            if t * np.max(np.abs(d)) <= 1e-15 * max(1.0, float(np.max(np.abs(x)))):
                break
            if t * abs(slope) < value_eps * abs(value):
                # the decrease promised to first order is below the rounding of f: a search that
                # failed at a minimum (to its gradient's accuracy) halved its step 30 times, each
                # trial an evaluation (36 bounded problems: 9,953 evaluations in all, 9,300 now)
                break
        return None, left
