"""A network of four layers (three hidden) with sigmoid units, for binary classification.

The lecture notes count layers as mlpcore does: the input layer is not counted, so
n = [2, 8, 8, 8, 1] is a four-layer network with three hidden layers. Every unit is a
sigmoid; the output A[4] is the probability of class 1 and the cost is bce. The two
classes are two concentric rings, which no straight line separates.

    python examples/deep_sigmoid_classification.py [--quick]
"""

import argparse

import numpy as np

import mlpcore


def rings(m, rng):
    """X (2, m): class 0 on a ring of radius 0.5, class 1 on a ring of radius 1.2, with noise; y (m,)."""
    y = rng.integers(0, 2, size=m)
    angle = rng.uniform(0, 2 * np.pi, size=m)
    radius = np.where(y == 1, 1.2, 0.5) + 0.15 * rng.standard_normal(m)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)]), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and epochs (for the tests)")
    args = parser.parse_args(argv)
    m, epochs = (600, 60) if args.quick else (2000, 150)
    rng = np.random.default_rng(0)
    X, y = rings(m, rng)
    X_new, y_new = rings(1000, rng)

    net = mlpcore.Network([2, 8, 8, 8, 1], ["sigmoid"] * 4, "bce", seed=0)
    print(f"L = {net.L} layers, n = {list(net.n)}")
    history = net.fit(X, y, epochs=epochs, batch_size=16, optimizer="adam", learning_rate=0.02, seed=0,
                      verbose=0)
    print(f"cost J: {history['cost'][0]:.3f} after the first epoch, {history['cost'][-1]:.3f} after the last")
    accuracy = np.mean(net.predict(X_new)[0] == y_new)
    print(f"accuracy on {y_new.size} new examples: {accuracy:.3f}")
    assert accuracy > 0.9


if __name__ == "__main__":
    main()
