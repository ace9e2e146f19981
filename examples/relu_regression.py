"""A network of two layers for regression: relu hidden units, an identity output, the mse cost.

The lecture notes derive backpropagation for exactly this network:
    Z[1] = W[1] X + b[1],  A[1] = relu(Z[1]),  Z[2] = W[2] A[1] + b[2],  A[2] = Z[2],
    J = 1/(2m) sum (A[2] - Y)^2,
    dZ[2] = A[2] - Y,  dZ[1] = (W[2]^T dZ[2]) * relu'(Z[1]).
This script checks that backward's dZ[1] is that formula, then trains the network with fit
on y = x1 x2 + sin(x1) + noise and prints R^2 on examples it never saw.

    python examples/relu_regression.py [--quick]
"""

import argparse

import numpy as np

import mlpcore


def make_data(m, rng):
    """X (2, m) uniform in [-2, 2]^2; y (m,) = x1 x2 + sin(x1) + noise of std 0.05."""
    X = rng.uniform(-2, 2, size=(2, m))
    return X, X[0] * X[1] + np.sin(X[0]) + 0.05 * rng.standard_normal(m)


def r_squared(predicted, y):
    return 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and epochs (for the tests)")
    args = parser.parse_args(argv)
    m, epochs = (1000, 60) if args.quick else (4000, 200)
    rng = np.random.default_rng(0)
    X, y = make_data(m, rng)
    X_new, y_new = make_data(1000, rng)

    net = mlpcore.Network([2, 64, 1], ["relu", "identity"], "mse", dtype="float64", seed=0)
    cache = net.forward(X)
    grads = net.backward(cache, y)
    dZ2 = cache.A[2] - y
    dZ1 = (net.W[2].T @ dZ2) * (cache.Z[1] > 0)
    print(f"dZ[1] of backward vs (W[2]^T dZ[2]) * relu'(Z[1]): largest difference "
          f"{np.max(np.abs(grads.dZ[1] - dZ1)):.1e}")
    assert np.allclose(grads.dZ[1], dZ1, rtol=1e-10, atol=1e-12)

    net.fit(X, y, epochs=epochs, batch_size=32, optimizer="adam", learning_rate=3e-3, seed=0, verbose=0)
    score = r_squared(net.predict(X_new)[0], y_new)
    print(f"R^2 on {y_new.size} new examples: {score:.3f}")
    assert score > 0.9


if __name__ == "__main__":
    main()
