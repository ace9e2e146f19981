"""Logistic regression is a neural network of one layer: n = [n0, 1], a sigmoid output, the bce cost.

As the lecture notes draw it: z = W[1] x + b[1], a = sigmoid(z), and gradient descent with
dW[1] = (1/m) (A[1] - Y) X^T, db[1] = (1/m) sum over the examples of (A[1] - Y).
This script trains mlpcore's one-layer network on two Gaussian clouds with forward,
backward and update, checks that backward's dW[1] and db[1] are those textbook gradients,
and prints the accuracy.

    python examples/logistic_regression.py [--quick]
"""

import argparse

import numpy as np

import mlpcore


def two_clouds(m, n0, rng):
    """X (n0, m): half the columns around -1, half around +1 (unit spread); labels y (m,) 0/1."""
    y = np.repeat([0, 1], m // 2)
    X = rng.standard_normal((n0, y.size)) + (2 * y - 1)
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and steps (for the tests)")
    args = parser.parse_args(argv)
    m, steps = (200, 100) if args.quick else (2000, 1000)
    rng = np.random.default_rng(0)
    X, y = two_clouds(m, n0=3, rng=rng)

    net = mlpcore.Network([3, 1], ["sigmoid"], "bce", dtype="float64", seed=0)
    for _ in range(steps):
        cache = net.forward(X)
        grads = net.backward(cache, y)
        net.update(grads, learning_rate=0.5)

    # The textbook gradient of logistic regression, from the last step's cache.
    A = cache.A[1]
    dW = (A - y) @ X.T / y.size
    db = np.sum(A - y, axis=1, keepdims=True) / y.size
    difference = max(np.max(np.abs(grads.dW[1] - dW)), np.max(np.abs(grads.db[1] - db)))
    print(f"dW[1] and db[1] of backward vs (1/m) (A - Y) X^T and (1/m) sum (A - Y): "
          f"largest difference {difference:.1e}")
    assert difference < 1e-12

    accuracy = np.mean(net.predict(X)[0] == y)
    print(f"w = {np.round(net.W[1][0], 2)}, b = {net.b[1][0, 0]:.2f}")
    print(f"training accuracy {accuracy:.3f}")
    assert accuracy > 0.9


if __name__ == "__main__":
    main()
