"""Type checks of the arguments that come from users, shared by the modules that take them."""

import functools
import math
import numbers

import numpy as np


def is_integer(value):
    """True for a Python or NumPy integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """True for a finite Python or NumPy int or float (not a bool) within the float range."""
    if type(value) is float:  # the common case, without the look at the numbers ABCs
        return math.isfinite(value)
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


@functools.cache
def largest(dtype):
    """The largest finite value of the float dtype, as a Python float."""
    return float(np.finfo(dtype).max)


def held_by(value, dtype):
    """True for a finite real number (not a bool) that the float dtype holds: |value| is at
    most its largest (compared as Python floats, not in dtype)."""
    return is_real(value) and abs(float(value)) <= largest(dtype)  # float: a float16 would cast the bound


def require_flag(value, name):
    """value as a bool; TypeError unless it is True or False (a NumPy bool too), so that a
    string such as "no" is not taken as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def name_and_params(spec, what, example):
    """(name, params) of a spec given as a name or as a pair (name, params dict or None).

    what names the kind of spec in errors ("an activation"), example shows a pair of it.
    Raises TypeError for any other form.
    """
    if isinstance(spec, str):
        return spec, {}
    if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
        raise TypeError(f"{what} is a name or a pair (name, params) such as {example}; got {spec!r}")
    name, params = spec
    if not isinstance(name, str):
        raise TypeError(f"{what} names itself with a str; got {name!r}")
    if params is None:
        return name, {}
    if not isinstance(params, dict):
        raise TypeError(f"the params of {what} are a dict, as in {example}; got {params!r}")
    return name, params


def transpose_hint(name, shape, rows, cols=None):
    """The hint ': one column per example, pass NAME.T' when `shape`, of two axes, is the
    transpose of the (rows, m) asked for (with m = cols when given): one row per example, the
    usual slip; for a 1-D shape that one reshape makes (rows, m), the reshape (one example of
    rows values, or m examples of one value); else ''."""
    if len(shape) == 2 and shape[1] == rows and shape[0] >= 1 and cols in (None, shape[0]):
        return f": one column per example, pass {name}.T"
    if len(shape) == 1 and shape[0] == rows and cols in (None, 1):
        return f": one example is a column, pass {name}.reshape(-1, 1)"
    if len(shape) == 1 and rows == 1 and shape[0] >= 1 and cols in (None, shape[0]):
        return f": one column per example, pass {name}.reshape(1, -1)"
    return ""
