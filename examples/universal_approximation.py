"""One hidden layer approximates a continuous function: the universal approximation theorem.

For a continuous f on a compact set and any eps > 0 there is a number N of hidden units and
parameters such that F(x) = sum_i v_i psi(w_i^T x + b_i) + c stays within eps of f
(Leshno and Schocken, 1991: any activation psi that is not a polynomial). F is exactly a
network n = [1, N, 1] with psi = tanh and an identity output. This script fits
f(x) = sin(2x) + 0.3 x^2 on [-3, 3] (the network sees x / 3, scaled to [-1, 1]) with growing
N, by full-batch gradient descent (adam), and prints the largest error max |F(x) - f(x)|
over the interval: it shrinks as N grows.

    python examples/universal_approximation.py [--quick] [--plot curves.png]
"""

import argparse

import numpy as np

import mlpcore


def f(x):
    return np.sin(2 * x) + 0.3 * x ** 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer widths and epochs (for the tests)")
    parser.add_argument("--plot", metavar="PNG", help="draw f and each F into this file (needs matplotlib)")
    args = parser.parse_args(argv)
    widths, epochs, learning_rate = ((2, 16), 800, 0.05) if args.quick else ((1, 2, 4, 8, 16), 3000, 0.03)
    x = np.linspace(-3, 3, 200).reshape(1, -1)  # (1, m): one feature, m points
    curves, errors = {}, []
    for N in widths:
        net = mlpcore.Network([1, N, 1], ["tanh", "identity"], "mse", dtype="float64", seed=0)
        net.fit(x / 3, f(x), epochs=epochs, batch_size=None, optimizer="adam", learning_rate=learning_rate,
                seed=0, verbose=0, schedule=("cosine", {"T_max": epochs}))
        curves[N] = net.predict(x / 3)[0]
        errors.append(np.max(np.abs(curves[N] - f(x)[0])))
        print(f"N = {N:3d} hidden units: max |F(x) - f(x)| = {errors[-1]:.3f}")
    assert errors[-1] < 0.2 and errors[-1] < errors[0] / 5
    if args.plot:
        import matplotlib.pyplot as plt
        figure, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        ax.plot(x[0], f(x)[0], color="black", linewidth=3, label="f(x)")
        for N, F in curves.items():
            ax.plot(x[0], F, label=f"F(x), N = {N}")
        ax.set(xlabel="x", title="one hidden layer of N tanh units")
        ax.legend()
        figure.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
