"""mlpcore: dense feed-forward neural networks on the CPU, in the notation of the textbooks.

    net = mlpcore.Network([2, 16, 1], activations=["tanh", "sigmoid"], cost="bce")
    cache = net.forward(X)            # X: (n[0], m), one column per example
    grads = net.backward(cache, Y)    # dW[l], db[l], dZ[l], dA[l]
    net.update(grads, learning_rate=0.5)

The arithmetic runs in a C++ core (BLAS for the matrix products, OpenMP for the
element-wise work); ``mlpcore.reference`` holds the same equations in plain NumPy.
"""

from . import reference
from ._core import get_num_threads, set_num_threads
from .network import Cache, Gradients, Network

__version__ = "0.1.0"

__all__ = ["Network", "Cache", "Gradients", "reference", "set_num_threads", "get_num_threads"]
