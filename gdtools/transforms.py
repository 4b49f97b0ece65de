"""Optax gradient transformations gdtools adds, and the optimizer shorthands it accepts.

Every optimizer is an ``optax.GradientTransformation``; these are the few pieces optax lacks:

* :func:`scale_by_mean_abs` and :func:`normalized_sgd`: steps of a fixed size whatever the
  gradient's magnitude (``u = -lr * g / mean(|g|)``), the DeepDream update.
* :func:`spall_gain`: SPSA's gain sequence ``a_k = a / (k + 1 + A)**alpha`` as an optax schedule.
* :func:`scale_by_array`: a fixed per-coordinate preconditioner (``u = s * g``).
* :func:`resolve_optimizer`: the string shorthands accepted by ``minimize(optimizer=...)``.
* :func:`descend`: one optax step, projected onto the bounds (both engines' update).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdtools.errors import InputError


def scale_by_mean_abs(eps: float = 1e-8) -> optax.GradientTransformation:
    """Divide the update by the mean absolute value of its entries (over the whole pytree).

    ``u = g / (mean(|g|) + eps)``: every step then has the same average size per coordinate.
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree_util.tree_leaves(updates)
        total = sum(jnp.sum(jnp.abs(leaf)) for leaf in leaves)
        count = sum(leaf.size for leaf in leaves)
        mean = total / count
        return jax.tree_util.tree_map(lambda g: g / (mean + eps), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def normalized_sgd(learning_rate) -> optax.GradientTransformation:
    """Descent with steps normalised by the gradient's mean absolute value.

    ``x <- x - lr * g / mean(|g|)``. Minimising ``-objective`` with it is the normalised gradient
    ascent of DeepDream (Mordvintsev et al., 2015).
    """
    return plain(optax.chain(scale_by_mean_abs(), optax.scale_by_learning_rate(learning_rate)))


def plain(transformation) -> optax.GradientTransformation:
    """``transformation`` as a plain ``GradientTransformation``. ``optax.chain`` always returns one
    that accepts extra arguments, which reads as a line search wanting the objective's value
    function (:func:`needs_value_fn`); a chain of plain transformations wants none of it. Never
    wrap a chain holding a line search: its ``value_fn`` would no longer reach it."""
    return optax.GradientTransformation(transformation.init, lambda u, s, p=None: transformation.update(u, s, p))


def spall_gain(a: float, *, A: float = 0.0, alpha: float = 0.602):
    """SPSA gain ``a_k = a / (k + 1 + A)**alpha`` (Spall 1998, "Implementation of SPSA")."""

    def schedule(count):
        return a / (count + 1.0 + A) ** alpha

    return schedule



def scale_by_array(scale) -> optax.GradientTransformation:
    """Multiply the update element-wise by a fixed array (same shape as the flat parameters)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda g: g * jnp.asarray(scale, g.dtype), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


#: ``minimize(optimizer="name")`` shorthands and their default settings.
SHORTHANDS = {
    "adam": lambda: optax.adam(1e-2),
    "adamw": lambda: optax.adamw(1e-2),
    "sgd": lambda: optax.sgd(1e-2),
    "momentum": lambda: optax.sgd(1e-2, momentum=0.9),
    "rmsprop": lambda: optax.rmsprop(1e-2),
    "lbfgs": lambda: optax.lbfgs(),
}


def resolve_optimizer(optimizer):
    """An optax transformation from a transformation or a shorthand name. A name gives the same
    object every time (transformations are pure functions), so that programs compiled for it
    serve later calls that name it too."""
    if isinstance(optimizer, str):
        try:
            return _named(optimizer.lower())
        except KeyError:
            raise InputError(f"unknown optimizer {optimizer!r}; use an optax GradientTransformation "
                             f"or one of {sorted(SHORTHANDS)}") from None
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise InputError(f"optimizer must be an optax GradientTransformation or a name, got "
                         f"{type(optimizer).__name__}")
    return optimizer


@functools.lru_cache(maxsize=None)
def _named(name: str):
    return SHORTHANDS[name]()


def needs_value_fn(optimizer) -> bool:
    """Whether the transformation's update wants ``value``/``value_fn`` (a line search)."""
    return isinstance(optimizer, optax.GradientTransformationExtraArgs)


def keeps_value_and_grad(optimizer, x0) -> bool:
    """Whether the optimizer's state carries the value and gradient at the new point (L-BFGS).

    Only a line search's does: an optimizer that takes ``value_fn`` (a user's momentum named
    "grad" in its state is no gradient at the new point). A line search's state holds them at its
    last trial point, which is the new point only when the search is the chain's last
    transformation: after it another (``chain(lbfgs(), scale(0.5))``) moves x elsewhere, and its
    value there is computed anew."""
    if not needs_value_fn(optimizer):
        return False
    state = jax.eval_shape(optimizer.init, x0)
    while (type(state) is tuple or isinstance(state, dict)) and state:
        # optax.chain's state (named_chain's): one per transformation, in order
        state = list(state.values())[-1] if isinstance(state, dict) else state[-1]
    return (optax.tree_utils.tree_get(state, "value") is not None
            and optax.tree_utils.tree_get(state, "grad") is not None)


def _array_module(array):
    """``jax.numpy`` for JAX arrays (and tracers), NumPy for the host loop's NumPy arrays (no
    dispatch per call)."""
    return jnp if isinstance(array, jax.Array) else np


#: XLA:CPU's tree-reduction rewriter leaves reductions over at most this many numbers alone.
TREE_REDUCTION_WINDOW = 32
#: Up to this many numbers the device's largest component is one variadic reduction (see below).
VARIADIC_LARGEST = 4096


def largest_projected_component(grad, x, lower=None, upper=None):
    """The gradient's largest component, projected onto ``[lower, upper]`` when bounded
    (``|clip(x - g) - x|``, scipy L-BFGS-B's projected gradient: zero at a minimum on a bound).
    Not finite when ``grad`` is not (inf for nan on a device, nan on the host), so one reduction
    tests both finiteness and tolerance. Computed with the module of ``grad``: JAX's or NumPy's."""
    xp = _array_module(grad)
    if lower is not None:
        grad = xp.where(xp.isfinite(grad), xp.clip(x - grad, lower, upper) - x, grad)
    if xp is np or not jnp.issubdtype(grad.dtype, jnp.floating):  # (max, -min) overflows integers
        return xp.max(xp.abs(grad))
    if TREE_REDUCTION_WINDOW < grad.size <= VARIADIC_LARGEST:
        # max |g| = max(max g, -min g), as one variadic reduction (both at once). XLA:CPU rewrites
        # a single reduction over more than TREE_REDUCTION_WINDOW numbers into a reduce-window and
        # a reduce (a tree, for the accuracy of sums; a maximum is exact in any order): three
        # kernels with the abs. A variadic one it leaves as a single loop, but a scalar one, which
        # nan always comes through: it wins up to VARIADIC_LARGEST numbers and loses above
        # (float64, in a fori_loop, scratch runs: 1000 numbers 0.69 us against 2.37, 4000 3.1
        # against 9.4, 6000 4.7 against 3.7, 100,000 184 against 53).
        all_axes = tuple(range(grad.ndim))
        most, least = jax.lax.reduce(
            (grad, grad), (jnp.array(-jnp.inf, grad.dtype), jnp.array(jnp.inf, grad.dtype)),
            lambda a, b: (jax.lax.max(a[0], b[0]), jax.lax.min(a[1], b[1])), all_axes)
        largest = jnp.maximum(most, -least)
        return jnp.where(jnp.isnan(largest), jnp.inf, largest)  # nan counts as inf, as below
    # XLA:CPU's vectorised maximum drops nan: over 4096 numbers or more (jax 0.10.2: max |g| of
    # zeros, a -2 and a nan came out 2, or -inf with the nan last), and over rows of 8 to 32 under
    # vmap (batch=True) once the batch holds 4096. A select of nan before it makes the reduction a
    # scalar loop (5x slower at 100,000 numbers); a sum, which nan always reaches, tells instead
    # (1.4x the maximum's time; nothing measurable at 10). A sum that came out nan from partial
    # sums overflowing to inf and -inf is told apart by the maximum: it can overflow only when
    # the maximum is within a factor of the size of the largest number (then a nan there too
    # would be missed, and show in the next value instead).
    largest = jnp.max(jnp.abs(grad))
    may_overflow = largest * grad.size >= jnp.finfo(grad.dtype).max
    return jnp.where(jnp.isnan(jnp.sum(grad)) & ~may_overflow, jnp.inf, largest)


def held_at_bound(grad, x, lower, upper):
    """The coordinates the gradient holds at a bound: on the lower bound and rising, on the upper
    and falling. They take no part in a projected quasi-Newton direction. NumPy or JAX arrays."""
    return ((x <= lower) & (grad > 0)) | ((x >= upper) & (grad < 0))


def _projected(value_fn, x, held, lower, upper):
    """The objective along the steps a line search tries from ``x``: held coordinates kept where
    they are, the others clipped to the bounds."""
    return lambda y: value_fn(jnp.clip(jnp.where(held, x, y), lower, upper))


def _update(optimizer, updates, state, x, **extra):
    """``optimizer.update`` with the extra arguments an optax transformation of the ExtraArgs kind
    may take; one that takes none of them (optax.contrib.sam's default mode failed with 'unexpected
    keyword argument value') gets the plain update."""
    try:
        return optimizer.update(updates, state, x, **extra)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
    return optimizer.update(updates, state, x)


def descend(optimizer, grad, state, x, *, value=None, value_fn=None, lower=None, upper=None):
    """One step ``x -> x + update``, clipped to ``[lower, upper]`` when bounded; ``(new_x, state)``.

    With ``value_fn`` (an objective the optimizer may evaluate, for optax's line searches) the
    update also gets ``value`` and ``grad`` at ``x``; without it, a transformation that takes extra
    arguments gets ``value`` alone, and any other the plain ``update``.
    """
    held = None
    if lower is not None and value_fn is not None:
        # Projected quasi-Newton (an optax line search, L-BFGS's): coordinates held at a bound by
        # the gradient take no part in the direction, and stay where they are; the line search
        # sees the objective along the projected path, the points the step can reach. (Without
        # the mask L-BFGS's curvature pairs mix in steps the projection undoes: 10-d Rosenbrock in
        # [-2, 0.5] stalled at 7.611 after 1000 iterations, against 7.594813 in 15 now. With the
        # mask on the gradient alone, L-BFGS's matrix, not diagonal, still moved held coordinates
        # into the box and the projection back, iteration after iteration: 18 bounded quadratics,
        # n = 5 to 20, took 29,460 evaluations and three of them 1000 iterations without
        # converging; 380 with the coordinates held, against scipy L-BFGS-B's 120.) Optimizers
        # without a line search keep their plain update and the projection after it (DeepDream's
        # normalised ascent among them).
        held = held_at_bound(grad, x, lower, upper)
        grad = jnp.where(held, jnp.zeros_like(grad), grad)
        value_fn = _projected(value_fn, x, held, lower, upper)
    if value_fn is not None:
        updates, state = _update(optimizer, grad, state, x, value=value, grad=grad, value_fn=value_fn)
    elif value is not None and needs_value_fn(optimizer):
        # a black box's value at x, which every estimate has: for transformations that take only
        # the value (optax.polyak_sgd, optax.contrib.reduce_on_plateau); a line search still
        # misses its value_fn and says so
        updates, state = _update(optimizer, grad, state, x, value=value)
    else:
        updates, state = optimizer.update(grad, state, x)
    new_x = optax.apply_updates(x, updates)
    if held is not None:
        new_x = jnp.where(held, x, new_x)
    if lower is not None:
        new_x = jnp.clip(new_x, lower, upper)
    return new_x, state
