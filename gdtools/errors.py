"""Exceptions gdtools raises on purpose.

Every error a user can cause by what they pass in is an :class:`InputError` (a ``ValueError``), raised
where the input is first seen, outside any JAX tracing, with a message that names the argument, says
what was given and what is allowed. The CLI turns these into one line on stderr and exit code 2.
"""


class GdtoolsError(Exception):
    """Base class of the errors gdtools raises on purpose."""


class InputError(GdtoolsError, ValueError):
    """Bad input: an argument, a file or a value returned by the user's objective."""


class EvaluationFailed(GdtoolsError):
    """An evaluation of the objective failed and the failure policy says stop."""
