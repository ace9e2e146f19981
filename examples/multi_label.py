"""Multi-label (multi-task) classification: several sigmoid outputs, each its own yes/no question.

Unlike softmax, where the classes exclude each other, the outputs here answer independent
questions about the same example, so an example can have any number of the labels. The
output layer has one sigmoid unit per label, Y is a (K, m) matrix of 0s and 1s, and the
cost is the bce summed over the K outputs (what the lecture notes call multi-task
classification). For a point x in the plane: is x1 > 0? is x2 > 0? is it inside the circle
of radius 1?

    python examples/multi_label.py [--quick]
"""

import argparse

import numpy as np

import mlpcore

QUESTIONS = ("x1 > 0", "x2 > 0", "|x| < 1")


def make_data(m, rng):
    """X (2, m) uniform in [-2, 2]^2; Y (3, m) of 0/1, one row per question."""
    X = rng.uniform(-2, 2, size=(2, m))
    Y = np.stack([X[0] > 0, X[1] > 0, np.hypot(X[0], X[1]) < 1]).astype(np.float64)
    return X, Y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for the tests)")
    args = parser.parse_args(argv)
    epochs = 40 if args.quick else 150
    rng = np.random.default_rng(0)
    X, Y = make_data(2000, rng)
    X_new, Y_new = make_data(1000, rng)

    net = mlpcore.Network([2, 32, 32, len(QUESTIONS)], ["relu", "relu", "sigmoid"], "bce", seed=0)
    net.fit(X, Y, epochs=epochs, batch_size=32, optimizer="adam", learning_rate=0.01, seed=0, verbose=0)
    predicted = net.predict(X_new)  # (3, m) of 0/1: each output thresholded at 0.5 on its own
    for question, right in zip(QUESTIONS, predicted == Y_new):
        print(f"{question:8s} accuracy {right.mean():.3f}")
    exact = np.mean(np.all(predicted == Y_new, axis=0))
    print(f"all {len(QUESTIONS)} labels right for {exact:.3f} of {Y_new.shape[1]} new examples")
    labels_per_example = Y_new.sum(axis=0)
    print(f"examples with 0, 1, 2, 3 labels: {np.bincount(labels_per_example.astype(int), minlength=4)}")
    assert exact > 0.85


if __name__ == "__main__":
    main()
