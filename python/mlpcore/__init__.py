"""mlpcore: dense feed-forward neural networks on the CPU, in the notation of the textbooks.

    net = mlpcore.Network([2, 16, 1], activations=["tanh", "sigmoid"], cost="bce")
    cache = net.forward(X)            # X: (n[0], m), one column per example
    grads = net.backward(cache, Y)    # dW[l], db[l], dZ[l], dA[l]
    net.update(grads, learning_rate=0.5)

The arithmetic runs in a C++ core (BLAS for the matrix products, OpenMP for the
element-wise work); ``mlpcore.reference`` holds the same equations in plain NumPy.
"""

import atexit
import os

import numpy  # noqa: F401 (before the setting below: NumPy's OpenBLAS reads the user's as it loads)

# OpenMP's settings (OMP_WAIT_POLICY, GOMP_SPINCOUNT) are left as the user set them: libgomp
# reads them once for the whole process, so a setting made here would bind every other OpenMP
# user loaded after mlpcore too (passive waits made a PyTorch training epoch 1.7-3x slower).
# The OpenBLAS that mlpcore carries runs on one thread (mlpcore shares its products out over
# OpenMP's threads): loaded with OPENBLAS_NUM_THREADS=1, which it reads once as it loads, it
# starts no threads of its own, which had spun on a core for some 0.1 s after the import. The
# user's setting is put back at once. (A system BLAS that another library loaded first has read
# its setting already; the core sets its pool to one thread at load in any case.)
_user_setting = os.environ.get("OPENBLAS_NUM_THREADS")
os.environ["OPENBLAS_NUM_THREADS"] = "1"
try:
    from . import _core
finally:
    if _user_setting is None:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
    else:
        os.environ["OPENBLAS_NUM_THREADS"] = _user_setting
    del _user_setting
from . import optim, preprocessing, reference
from ._checks import is_integer
from ._core import get_num_threads
from .network import Cache, Gradients, Network
from .io import load
from . import onnx  # imports the onnx package only when export is called
from .optim import DivergenceError

__version__ = "0.1.0"

# A fit in a daemon thread stops after its step, and calls in flight end, before the interpreter
# shuts down: a hook taking the GIL then, or a product running while OpenBLAS frees its buffers
# at exit, aborted the program.
atexit.register(_core._stop_for_exit)


def set_num_threads(k):
    """Use k threads for matrix products, element-wise passes and fit's team alike, all on
    OpenMP's threads (BLAS's own pool stays at one thread).

    k : an int in 1..the processors available (TypeError for a non-integer, ValueError
        outside that range). RuntimeError for k > 1 in a child process made by fork after
        mlpcore ran a team of threads: it runs on one thread there (see the README's
        "Threads and numerics").
    """
    if not is_integer(k):
        raise TypeError(f"the thread count must be an int, got {k!r}")
    if not 1 <= k < 2**31:  # the core's check names the processors; this one keeps k within its int
        raise ValueError(f"the thread count must lie in 1..the processors available, got {k}")
    _core.set_num_threads(int(k))

__all__ = ["Network", "Cache", "Gradients", "DivergenceError", "optim", "preprocessing", "reference",
           "set_num_threads", "get_num_threads", "load", "onnx"]
