"""The mlpcore command line: ``python -m mlpcore demo``."""

import argparse
import sys
import time

import numpy as np

from . import Network
from .datasets import two_spirals


def demo(epochs, seed):
    """Train a 2-32-32-1 tanh network on two spirals by full-batch gradient descent."""
    net = Network([2, 32, 32, 1], activations=["tanh", "tanh", "sigmoid"], cost="bce", seed=seed)
    X, y = two_spirals(m=400, seed=seed, dtype=net.dtype)  # in the net's dtype: no conversion per step
    y = y.astype(net.dtype)
    print(f"two spirals: X {X.shape} (n[0], m), labels 0/1")
    print(net)
    cache = net.forward(X)
    grads = net.backward(cache, y)
    started = time.perf_counter()
    for epoch in range(epochs + 1):
        net.forward(X, out=cache)
        if epoch % (epochs // 10) == 0:
            print(f"epoch {epoch:5d}  cost J = {net.cost(cache.A[net.L], y):.4f}")
        net.backward(cache, y, out=grads)
        net.update(grads, learning_rate=0.5)
    seconds = time.perf_counter() - started
    accuracy = np.mean(net.predict(X)[0] == y)
    print(f"{epochs} steps of gradient descent in {seconds:.2f} s; training accuracy {accuracy:.3f}")
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mlpcore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train a small network on a generated two-spirals set")
    demo_parser.add_argument("--epochs", type=int, default=5000, help="gradient-descent steps (default 5000)")
    demo_parser.add_argument("--seed", type=int, default=0, help="seed of the data and the network")
    args = parser.parse_args(argv)
    if args.epochs < 10:
        parser.error("--epochs must be at least 10")
    demo(args.epochs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
