"""gdtools: gradient descent on JAX for differentiable programs, black boxes, tuned programs and DeepDream.

>>> import jax.numpy as jnp, gdtools as gd
>>> res = gd.minimize(lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(3))
>>> res.success
True
"""

from gdtools._version import __version__
from gdtools import estimators
from gdtools import transforms
from gdtools.errors import EvaluationFailed, GdtoolsError, InputError
from gdtools.evaluation import Measurement
from gdtools.history import History
from gdtools.minimize import minimize
from gdtools.result import Result, State

__all__ = [
    "AskTell",
    "Choice",
    "EvaluationFailed",
    "GdtoolsError",
    "History",
    "InputError",
    "Int",
    "Measurement",
    "Real",
    "Result",
    "Space",
    "State",
    "__version__",
    "dream",
    "estimators",
    "minimize",
    "plot_history",
    "timing",
    "transforms",
]

# Heavy or optional pieces load on first use: `import gdtools` stays fast and imports neither
# matplotlib nor the network weights.
_LAZY = {
    "AskTell": ("gdtools.ask_tell", "AskTell"),
    "Space": ("gdtools.space", "Space"),
    "Real": ("gdtools.space", "Real"),
    "Int": ("gdtools.space", "Int"),
    "Choice": ("gdtools.space", "Choice"),
    "plot_history": ("gdtools.plotting", "plot_history"),
    "plotting": ("gdtools.plotting", None),
    "timing": ("gdtools.timing", None),
    "dream": ("gdtools.dream", None),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gdtools' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
