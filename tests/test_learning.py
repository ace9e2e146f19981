"""End to end: plain full-batch gradient descent, written as a Python loop of
forward / backward / update, learns XOR and two spirals."""

import numpy as np
import pytest

import mlpcore
from mlpcore.datasets import two_spirals


def gradient_descent(net, X, Y, learning_rate, epochs):
    """Full-batch gradient descent; returns the costs before and after."""
    L = net.L
    cache = net.forward(X)
    first_cost = net.cost(cache.A[L], Y)
    grads = None
    for _ in range(epochs):
        cache = net.forward(X, out=cache)
        grads = net.backward(cache, Y, out=grads)
        net.update(grads, learning_rate)
    return first_cost, net.cost(net.forward(X).A[L], Y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor(seed, dtype):
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=dtype)
    Y = np.array([[0, 1, 1, 0]], dtype=dtype)
    net = mlpcore.Network([2, 8, 1], ["tanh", "sigmoid"], "bce", dtype=dtype, seed=seed)
    first_cost, last_cost = gradient_descent(net, X, Y, learning_rate=1.0, epochs=1000)
    assert last_cost < 0.05 < first_cost
    np.testing.assert_array_equal(net.predict(X), Y.astype(np.int64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_spirals(dtype):
    X, labels = two_spirals(m=400, noise=0.02)
    X = X.astype(dtype)
    Y = labels[None, :].astype(dtype)
    net = mlpcore.Network([2, 32, 32, 1], ["tanh", "tanh", "sigmoid"], "bce", dtype=dtype,
                          seed=0)
    first_cost, last_cost = gradient_descent(net, X, Y, learning_rate=0.5, epochs=3000)
    assert last_cost < 0.1 * first_cost
    accuracy = np.mean(net.predict(X)[0] == labels)
    assert accuracy >= 0.95


def test_two_spirals_softmax_cce():
    """The same spirals as two classes with a softmax output and integer labels."""
    X, labels = two_spirals(m=400, noise=0.02)
    X = X.astype(np.float32)
    net = mlpcore.Network([2, 32, 32, 2], ["relu", "tanh", "softmax"], "cce",
                          dtype="float32", seed=1)
    first_cost, last_cost = gradient_descent(net, X, labels, learning_rate=0.5, epochs=3000)
    assert last_cost < 0.1 * first_cost
    assert np.mean(net.predict(X) == labels) >= 0.95
