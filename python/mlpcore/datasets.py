"""Small generated data sets, one column per example as the rest of mlpcore."""

import numpy as np


def xor(dtype=np.float64):
    """The four points of XOR: X (2, 4) of dtype and labels y (4,) int64."""
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=dtype)
    return X, np.array([0, 1, 1, 0], dtype=np.int64)


def two_spirals(m=400, turns=1.5, noise=0.05, seed=0, dtype=np.float64):
    """Two interleaved spirals in the plane, m // 2 points each.

    Point i of spiral k lies at radius r = t / (2 pi turns) and angle t + k pi,
    with t drawn in (0, 2 pi turns] (denser near the centre is avoided by
    drawing t as the square root of a uniform), plus Gaussian noise of
    standard deviation `noise`.
    Returns X of shape (2, m) and dtype, and labels y of shape (m,), int64 0 or 1.
    """
    rng = np.random.default_rng(seed)
    half = m // 2
    t = 2 * np.pi * turns * np.sqrt(rng.random(2 * half))
    k = np.repeat([0, 1], half)
    r = t / (2 * np.pi * turns)
    X = np.stack([r * np.cos(t + k * np.pi), r * np.sin(t + k * np.pi)])
    X += noise * rng.standard_normal(X.shape)
    return X.astype(dtype), k.astype(np.int64)
