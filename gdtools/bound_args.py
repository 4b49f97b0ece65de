"""An objective with its extra arguments (``minimize``'s ``args``) bound, for the host loop.

Called as ``bound(x)``, it is ``fun_flat(x, *args)``. Programs compiled for it take the args as
inputs, not constants, and are kept on ``fun_flat`` (the same function object for the same
objective: see ``minimize._traceable_flat``), so that a call with new data of the same shapes
reuses them, as the compiled program of ``minimize`` does.
"""

from __future__ import annotations

from typing import Callable


class BoundArgs:
    """``fun_flat(x, *args)`` as a function of ``x`` alone (of any leading arguments: the programs
    compiled for it are bound to the same args the same way)."""

    def __init__(self, fun_flat: Callable, args: tuple):
        self.fun_flat = fun_flat
        self.args = tuple(args)

    def __call__(self, *leading):
        return self.fun_flat(*leading, *self.args)


def kept_on(function, attribute: str, make: Callable):
    """``getattr(function, attribute)``, made by ``make()`` and kept there on first use (or just
    made, for a function that cannot hold attributes)."""
    value = getattr(function, attribute, None)
    if value is None:
        value = make()
        try:
            setattr(function, attribute, value)
        except (AttributeError, TypeError):
            pass
    return value
