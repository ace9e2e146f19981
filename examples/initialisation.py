"""Why the weights start random, and at which scale: symmetry, then vanishing and exploding signals.

1. Symmetry. If every weight starts at the same value (zero included), every hidden unit of a
   layer computes the same function of the input, receives the same gradient, and so takes the
   same step: the units stay copies of each other for ever, and the layer is worth one unit.
   With all weights exactly zero (and tanh, whose g(0) = 0), dW is zero as well: only the
   output bias learns. Random weights break the symmetry.
2. Scale in a deep network. Each layer multiplies the spread of its input by about
   sqrt(n[l-1]) std(W[l]) (times what the activation does to it), and backpropagation
   multiplies the spread of dA by about as much on the way back. Weights of a fixed small
   scale (0.01) shrink the activations towards 0 layer after layer, and the gradients dW with
   them (vanishing). Standard normal weights make relu activations and gradients explode, and
   drive tanh units into saturation (|A| near 1), where the gradient grows on its way back to
   the first layers. xavier (std sqrt(1/n[l-1])) keeps tanh layers at a steady scale, and he
   (std sqrt(2/n[l-1])) does the same for relu, whose g halves the spread.

    python examples/initialisation.py [--quick] [--plot scales.png]
"""

import argparse

import numpy as np

import mlpcore


def circle(m, rng):
    """X (2, m) uniform in [-1, 1]^2; y (m,) 1 inside the circle of radius 0.7."""
    X = rng.uniform(-1, 1, size=(2, m))
    return X, (np.hypot(X[0], X[1]) < 0.7).astype(np.int64)


def train_from(W_value, steps, X, y):
    """A [2, 4, 1] tanh network whose weights all start at W_value (None: random), after
    `steps` steps of gradient descent; returns the network."""
    net = mlpcore.Network([2, 4, 1], ["tanh", "sigmoid"], "bce", dtype="float64", seed=0)
    if W_value is not None:
        for l in (1, 2):
            net.W[l][...] = W_value
    for _ in range(steps):
        net.update(net.backward(net.forward(X), y), learning_rate=1.0)
    return net


def symmetry(steps, rng):
    X, y = circle(400, rng)
    print(f"1. symmetry: a [2, 4, 1] tanh network after {steps} steps of gradient descent")
    for name, value in (("all weights 0", 0.0), ("all weights 0.5", 0.5), ("random (xavier)", None)):
        net = train_from(value, steps, X, y)
        spread = np.max(np.abs(net.W[1] - net.W[1][0]))
        accuracy = np.mean(net.predict(X)[0] == y)
        print(f"   {name:16s} largest difference between the rows of W[1]: {spread:.2g}; "
              f"max |W[1]| {np.max(np.abs(net.W[1])):.2g}; training accuracy {accuracy:.3f}")
        if value is not None:
            assert spread == 0  # the hidden units are still identical copies


def deep_network(activation, init, depth, width, rng):
    """A network of `depth` layers of `width` units (all `activation`) and one sigmoid output,
    its weights drawn by `init` ("small", "xavier", "he", or "normal" for std 1)."""
    n = [width] * (depth + 1) + [1]
    net = mlpcore.Network(n, [activation] * depth + ["sigmoid"], "bce", dtype="float64",
                          init="small" if init == "normal" else init, seed=0)
    if init == "normal":
        for l in range(1, net.L + 1):
            net.W[l][...] = rng.standard_normal(net.W[l].shape)
    return net


def scales(depth, width, rng):
    """Per case (activation, init): the std of A[l] and of dW[l] for l = 1..depth, printed."""
    X = rng.standard_normal((width, 500))
    y = (X[0] > 0).astype(np.int64)
    print(f"2. scale: a network of {depth} layers of {width} units, one batch of standard normal inputs "
          f"(saturated: the share of tanh outputs A[{depth}] with |A| > 0.99)")
    print(f"   {'':12s} {'std A[1]':>9s} {f'std A[{depth}]':>9s} {'std dW[1]':>10s} {f'std dW[{depth}]':>10s}"
          f" {'saturated':>10s}")
    stds = {}
    for activation, init in (("tanh", "small"), ("tanh", "normal"), ("tanh", "xavier"),
                             ("relu", "small"), ("relu", "normal"), ("relu", "he")):
        net = deep_network(activation, init, depth, width, rng)
        cache = net.forward(X)
        grads = net.backward(cache, y)
        A_std = np.array([np.std(cache.A[l]) for l in range(1, depth + 1)])
        dW_std = np.array([np.std(grads.dW[l]) for l in range(1, depth + 1)])
        stds[activation, init] = A_std, dW_std
        saturated = f"{np.mean(np.abs(cache.A[depth]) > 0.99):.0%}" if activation == "tanh" else ""
        print(f"   {activation} {init:7s} {A_std[0]:9.2g} {A_std[-1]:9.2g} {dW_std[0]:10.2g} {dW_std[-1]:10.2g}"
              f" {saturated:>10s}")
    A_ratio = {case: A_std[-1] / A_std[0] for case, (A_std, _) in stds.items()}
    dW_ratio = {case: dW_std[0] / dW_std[-1] for case, (_, dW_std) in stds.items()}
    assert A_ratio["tanh", "small"] < 1e-3 and A_ratio["relu", "small"] < 1e-3      # vanishing
    assert A_ratio["relu", "normal"] > 1e2 and dW_ratio["tanh", "normal"] > 5        # exploding
    assert all(0.2 < A_ratio[case] < 5 for case in (("tanh", "xavier"), ("relu", "he")))  # steady
    print(f"   from A[1] to A[{depth}]: small init {A_ratio['relu', 'small']:.1g} (relu), "
          f"normal {A_ratio['relu', 'normal']:.1g} (relu), xavier {A_ratio['tanh', 'xavier']:.2f} (tanh), "
          f"he {A_ratio['relu', 'he']:.2f} (relu)")
    return stds


def draw(stds, path):
    """std A[l] and std dW[l] against l, one line per case, on logarithmic axes."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    for (activation, init), arrays in stds.items():
        for ax, values in zip(axes, arrays):
            ax.semilogy(np.arange(1, values.size + 1), values, marker="o",
                        linestyle="-" if activation == "relu" else "--", label=f"{activation}, {init}")
    axes[0].set(xlabel="layer l", title="std of A[l]: forward")
    axes[1].set(xlabel="layer l", title="std of dW[l]: backward")
    axes[0].legend()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and a smaller network (for the tests)")
    parser.add_argument("--plot", metavar="PNG", help="draw std A[l] and std dW[l] per layer into this file "
                        "(needs matplotlib)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    symmetry(200 if args.quick else 2000, rng)
    depth, width = (5, 64) if args.quick else (10, 256)
    stds = scales(depth, width, rng)
    if args.plot:
        draw(stds, args.plot)


if __name__ == "__main__":
    main()
