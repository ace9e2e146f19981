"""Small generated data sets, one column per example as the rest of mlpcore."""

import numpy as np

from ._checks import is_integer, is_real

__all__ = ["xor", "two_spirals"]


def _float_dtype(dtype):
    """dtype as a NumPy float dtype; ValueError for any other (an integer dtype would truncate the points)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a float dtype such as np.float32, got {dtype!r}") from None
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a float dtype such as np.float32, got {dtype}")
    return dtype


def xor(dtype=np.float64):
    """The four points of XOR: X (2, 4) of dtype (a float dtype) and labels y (4,) int64."""
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=_float_dtype(dtype))
    return X, np.array([0, 1, 1, 0], dtype=np.int64)


def two_spirals(m=400, turns=1.5, noise=0.05, seed=0, dtype=np.float64):
    """Two interleaved spirals in the plane: m points, m - m // 2 on spiral 0 and m // 2 on spiral 1.

    Point i of spiral k lies at radius r = t / (2 pi turns) and angle t + k pi,
    with t drawn in [0, 2 pi turns) (denser near the centre is avoided by
    drawing t as the square root of a uniform), plus Gaussian noise of
    standard deviation `noise`.
    m : int >= 2, so that each spiral has a point. turns : float > 0. noise : float >= 0.
    seed : int >= 0 or None (fresh points each call); the same seed gives the same points.
    dtype : a float dtype (float64 by default; float32 is what a default Network computes in).
    Returns X of shape (2, m) and dtype, and labels y of shape (m,), int64 0 or 1.
    """
    if not is_integer(m) or m < 2:
        raise ValueError(f"m must be an int >= 2 (points of both spirals), got {m!r}")
    if not is_real(turns) or turns <= 0:
        raise ValueError(f"turns must be a finite real number > 0, got {turns!r}")
    if not is_real(noise) or noise < 0:
        raise ValueError(f"noise must be a finite real number >= 0, got {noise!r}")
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    k = np.repeat([0, 1], [m - m // 2, m // 2])
    with np.errstate(over="ignore", invalid="ignore"):  # refused below
        t = 2 * np.pi * turns * np.sqrt(rng.random(m))
        r = t / (2 * np.pi * turns)
        X = np.stack([r * np.cos(t + k * np.pi), r * np.sin(t + k * np.pi)])
        X = (X + noise * rng.standard_normal(X.shape)).astype(dtype)
    if not np.all(np.isfinite(X)):  # an angle of inf has no sine; noise of 1e5 is inf in float16
        raise ValueError(f"turns = {turns!r} and noise = {noise!r} give points that are not finite in {dtype.name}")
    return X, k.astype(np.int64)
