"""Type checks of the arguments that come from users, shared by the modules that take them."""

import math
import numbers

import numpy as np


def is_integer(value):
    """True for a Python or NumPy integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """True for a finite Python or NumPy int or float (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
