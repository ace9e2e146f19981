"""Multi-class classification with a softmax output and the categorical cross-entropy (cce).

The output layer has one unit per class, K = 3 here; softmax turns Z[L] into a probability
for each class, so every column of A[L] sums to 1, and an example goes to the class of the
largest. With cce, backpropagation starts from dZ[L] = A[L] - Y, Y one-hot (K, m); mlpcore
also takes the labels 0..K-1 themselves. The classes are the three arms of a spiral.

    python examples/softmax_classification.py [--quick] [--plot regions.png]
"""

import argparse

import numpy as np

import mlpcore
from mlpcore.preprocessing import one_hot


def spiral_arms(m, K, rng):
    """X (2, m): K spiral arms of m // K points each, with noise; labels y (m,) in 0..K-1."""
    y = np.repeat(np.arange(K), m // K)
    t = rng.uniform(0.1, 1, size=y.size)
    angle = 4 * t + 2 * np.pi * y / K
    X = t * np.stack([np.cos(angle), np.sin(angle)]) + 0.03 * rng.standard_normal((2, y.size))
    return X, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for the tests)")
    parser.add_argument("--plot", metavar="PNG", help="draw the decision regions into this file (needs matplotlib)")
    args = parser.parse_args(argv)
    K, epochs = 3, (60 if args.quick else 200)
    rng = np.random.default_rng(0)
    X, y = spiral_arms(900, K, rng)
    X_new, y_new = spiral_arms(900, K, rng)

    net = mlpcore.Network([2, 64, 64, K], ["relu", "relu", "softmax"], "cce", dtype="float64", seed=0)
    cache = net.forward(X)
    grads = net.backward(cache, y)
    print(f"columns of A[L] sum to 1: largest deviation {np.max(np.abs(cache.A[net.L].sum(axis=0) - 1)):.1e}")
    print(f"dZ[L] - (A[L] - Y): largest difference "
          f"{np.max(np.abs(grads.dZ[net.L] - (cache.A[net.L] - one_hot(y, K)))):.1e}")

    net.fit(X, y, epochs=epochs, batch_size=32, optimizer="adam", learning_rate=0.01, seed=0, verbose=0,
            schedule=("cosine", {"T_max": epochs}))
    accuracy = np.mean(net.predict(X_new) == y_new)
    print(f"accuracy on {y_new.size} new examples of {K} classes: {accuracy:.3f}")
    assert accuracy > 0.9
    if args.plot:
        from mlpcore import plot
        plot.decision_regions(net, X_new, y_new, path=args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
