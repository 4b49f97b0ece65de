"""Parameters fixed by their bounds (``lower == upper``), taken out of the problem as scipy does.

scipy's bounded methods remove a variable whose bounds are equal from the problem they solve and
put it back into ``res.x`` (with ``nan`` for its entry of ``res.jac``). gdtools does the same: the
engine (estimators, optimizers, the compiled program) sees the free coordinates only, so that no
finite-difference step or perturbation is ever spent on a coordinate with no room to move (a
zero-width box has no step that fits, and a scale of 0 would divide by zero); the user's objective,
callback, result and history see the whole point.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


class FixedParameters:
    """Which coordinates of the flat problem are fixed, and at what values.

    Args:
      mask: boolean, one per flat coordinate: True where ``lower == upper``.
      x_full: the flat start point (NumPy, or a JAX array for a device problem), which holds the
        fixed values (x0 must lie within its bounds, so it equals them there).
      to_user, jax_unravel: the whole problem's conversions from a flat vector.
    """

    def __init__(self, mask, x_full, *, to_user, jax_unravel):
        self.mask = np.asarray(mask, dtype=bool)
        self.free = np.flatnonzero(~self.mask)
        self.values = np.asarray(x_full, dtype=float)[self.mask]
        self.n = self.mask.size
        self.x_full = x_full
        self.to_user_full = to_user
        self.jax_unravel_full = jax_unravel
        #: what tells two problems' fixed coordinates apart, for the caches of compiled programs
        self.key = (self.mask.tobytes(), self.values.tobytes())

    @property
    def all(self) -> bool:
        return not self.free.size

    def reduce(self, x):
        """The free coordinates of a whole flat vector (NumPy or JAX)."""
        return x[..., self.free]

    def expand(self, z, fill=None) -> np.ndarray:
        """The whole flat vector (or one per row of a 2-D ``z``) from the free coordinates ``z``,
        the fixed ones at their values, or at ``fill`` when given (nan for a gradient)."""
        z = np.asarray(z, dtype=float)
        out = np.empty(z.shape[:-1] + (self.n,))
        out[..., self.mask] = self.values if fill is None else fill
        out[..., self.free] = z
        return out

    def expand_jax(self, z, fill=None):
        """:meth:`expand` for a (traced) JAX vector, in its dtype."""
        base = jnp.asarray(self.x_full, dtype=z.dtype)
        if fill is not None:
            base = jnp.where(jnp.asarray(self.mask), jnp.asarray(fill, dtype=z.dtype), base)
        return base.at[self.free].set(z)


class FreeToUser:
    """The free coordinates -> the user's argument (picklable, for executors in other processes);
    it keeps the whole problem's ``treedef``, ``shapes`` and ``dtypes`` (what cache keys read)."""

    def __init__(self, fixed: FixedParameters):
        self.fixed = fixed
        self.treedef = getattr(fixed.to_user_full, "treedef", None)
        self.shapes = getattr(fixed.to_user_full, "shapes", ())
        self.dtypes = getattr(fixed.to_user_full, "dtypes", ())

    def __call__(self, z):
        return self.fixed.to_user_full(self.fixed.expand(z))


class FreeToJax:
    """The free coordinates (a JAX vector, traced or not) -> the user's pytree of JAX arrays."""

    def __init__(self, fixed: FixedParameters):
        self.fixed = fixed

    def __call__(self, z):
        return self.fixed.jax_unravel_full(self.fixed.expand_jax(z))
