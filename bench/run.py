"""mlpcore's benchmark suite: the same networks, data, initial parameters (but scikit-learn's, which
it draws itself) and plain-SGD steps, float32 (and a float64 mnist epoch, without scikit-learn), on
mlpcore, its NumPy reference, PyTorch (CPU) and scikit-learn, with one thread count.

    python bench/run.py [--threads K] [--quick] [--out DIR]

Prints a table of throughputs with the ratios mlpcore / other, a roofline line per workload
(the FLOPs a step needs against the float32 GEMM rate of mlpcore's gemm, timed in turn with the
workload) and a scaling table; writes DIR/results.json and, with matplotlib, DIR/results.png.
Each system is timed up to 5 times (the slow ones fewer), the systems taking turns, and its best
time counts.
Figures are never asserted anywhere: the machines are shared and noisy. PyTorch and
scikit-learn are optional (pip install ".[bench]" in a clone of mlpcore); missing systems are left out.
"""

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import re
import sys
import time

import numpy as np

import mlpcore
from mlpcore import reference

MNIST = dict(n=[784, 256, 128, 10], activations=["relu", "relu", "softmax"], cost="cce", batch=128)
TINY = dict(n=[2, 16, 16, 1], activations=["tanh", "tanh", "sigmoid"], cost="bce", batch=32)
WIDE = dict(n=[2048, 2048, 2048, 10], activations=["relu", "relu", "softmax"], cost="cce", batch=256)
LEARNING_RATE = 0.01


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=processors(),
                        help="threads of every system (default: the processors this process may run on)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke test")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args(argv)
    try:
        mlpcore.set_num_threads(args.threads)  # refuses a count outside 1..the processors, naming them
    except ValueError as error:
        parser.error(f"--threads: {error}")
    set_threads(args.threads)
    scale = 0.1 if args.quick else 1.0
    systems = available_systems()
    gemm = sgemm(args.quick)
    results = {"machine": machine(args.threads), "workloads": {}}
    workloads = results["workloads"]
    workloads["mnist"] = bench_mnist(systems, int(30000 * scale), gemm)
    workloads["tiny"] = bench_tiny(systems, int(2000 * scale), gemm)
    workloads["wide"] = bench_wide(systems, 3 if args.quick else 10, gemm)
    workloads["infer1"] = bench_infer1(systems, int(20000 * scale))
    workloads["memory"] = bench_memory(systems, int(30000 * scale), args.threads)
    workloads["mnist_float64"] = bench_mnist(systems, int(30000 * scale), None, dtype="float64")
    results["scaling"] = bench_scaling(scale, args.threads)
    print_results(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(results, file, indent=1)
    plot(results, os.path.join(args.out, "results.png"))
    return 0


# ----------------------------------------------------------------------------- systems

def processors():
    """The processors this process may run on (CPU affinity), where the system says."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def available_systems():
    systems = ["mlpcore", "numpy"]
    for name, module in (("torch", "torch"), ("sklearn", "sklearn")):
        try:
            __import__(module)
            systems.append(name)
        except ImportError:
            print(f"({name} is not installed: left out; pip install \".[bench]\" in a clone of mlpcore)")
    return systems


def set_threads(k):
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(k)  # NumPy's own BLAS, for the reference and scikit-learn
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(k)
    except ImportError:
        pass
    mlpcore.set_num_threads(k)  # last: threadpoolctl raised the BLAS inside mlpcore to k threads too


def machine(threads):
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "numpy": np.__version__, "mlpcore": mlpcore.__version__, **versions(), "blas": blas_kernels(),
            "environment": {name: os.environ[name] for name in BLAS_SETTINGS if name in os.environ}}


# Settings that choose OpenBLAS's kernels for mlpcore's and NumPy's alike, which some machines
# set: OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU halved the float32 GEMM rate (see bench/README.md).
BLAS_SETTINGS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_kernels():
    """The BLAS each system runs, with OpenBLAS's kernels (its core type, through threadpoolctl):
    system -> description; a system whose BLAS cannot be told is left out."""
    found = {}
    with contextlib.suppress(ImportError):
        import threadpoolctl
        for pool in threadpoolctl.threadpool_info():  # each in its package's folder (numpy's in numpy.libs)
            package = os.path.basename(os.path.dirname(pool["filepath"])).removesuffix(".libs")
            if pool["internal_api"] == "openblas" and package in ("mlpcore", "numpy"):
                found[package] = f"OpenBLAS {pool['version']} {pool['architecture']}"
    with contextlib.suppress(ImportError):
        import torch
        blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        if blas:
            found["torch"] = blas.group(1)
    return {system: found[system] for system in ("mlpcore", "numpy", "torch") if system in found}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as file:
            return next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def versions():
    found = {}
    for name in ("torch", "sklearn"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


def sgemm(quick):
    """A float32 (n, n) x (n, n) product through mlpcore's gemm: (its timing, seconds; its FLOPs).
    Each roofline divides by its rate timed in turn with the workload (see timed_with_gemm)."""
    n = 1024 if quick else 2048
    return (lambda: mlpcore._core._time_sgemm(n, 3)), 2 * n ** 3


# ----------------------------------------------------------------------------- data and networks

def data(spec, m, seed=0, dtype=np.float32):
    """Random X (n0, m) and class labels (m,) (bce: 0/1). The examples are stored one after the
    other, as data sets come (a C-ordered (m, n0) array): X is its transpose, which mlpcore
    takes as it is, and PyTorch and scikit-learn take X.T, so no system copies it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, spec["n"][0])).astype(dtype).T
    classes = spec["n"][-1] if spec["cost"] == "cce" else 2
    return X, rng.integers(0, classes, m)


def network(spec, dtype="float32"):
    return mlpcore.Network(spec["n"], spec["activations"], spec["cost"], dtype=dtype, seed=0)


def step_flops(n, m):
    """FLOPs of one training step on m examples: 2 per weight per example forward, 4 backward
    (dW and dA), less the dA[0] product that is skipped."""
    weights = sum(n[l] * n[l - 1] for l in range(1, len(n)))
    return 6 * m * weights - 2 * m * n[0] * n[1]


def torch_model(net):
    """The torch.nn.Sequential twin of net, with net's initial parameters."""
    import torch
    layers = []
    activations = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    dtype = torch.float32 if net.dtype == np.float32 else torch.float64
    for l in range(1, net.L + 1):
        linear = torch.nn.Linear(net.n[l - 1], net.n[l]).to(dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(net.W[l])))
            linear.bias.copy_(torch.from_numpy(np.array(net.b[l][:, 0])))
        layers.append(linear)
        name = net.activations[l - 1][0]
        if l < net.L:
            layers.append(activations[name]())
    return torch.nn.Sequential(*layers)


def torch_epoch(net, X, y, batch, steps=None):
    """Seconds of plain-SGD steps over X's columns in order (cross-entropy or sigmoid + bce)."""
    run = torch_steps(net, X, y, batch, steps)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def torch_steps(net, X, y, batch, steps=None):
    """A function that takes PyTorch's plain-SGD steps over X's columns in order, on net's twin
    (made now)."""
    import torch
    model = torch_model(net)
    rows = torch.from_numpy(np.ascontiguousarray(X.T))
    labels = torch.from_numpy(y)
    if net.cost_name == "bce":
        loss_function, labels = torch.nn.BCEWithLogitsLoss(), labels.to(rows.dtype).reshape(-1, 1)
    else:
        loss_function = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    starts = list(range(0, rows.shape[0], batch))[:steps]

    def run():
        for s in starts:
            optimizer.zero_grad()
            loss = loss_function(model(rows[s:s + batch]), labels[s:s + batch])
            loss.backward()
            optimizer.step()
    return run


def numpy_epoch(net, X, y, batch, steps=None):
    """Seconds of plain-SGD steps with mlpcore.reference (NumPy)."""
    W = {l: np.array(net.W[l]) for l in range(1, net.L + 1)}
    b = {l: np.array(net.b[l]) for l in range(1, net.L + 1)}
    Y = reference.one_hot(y, net.n[-1], net.dtype) if net.cost_name == "cce" else y.reshape(1, -1).astype(net.dtype)
    starts = list(range(0, X.shape[1], batch))[:steps]
    start = time.perf_counter()
    for s in starts:
        Xb, Yb = X[:, s:s + batch], Y[:, s:s + batch]
        Z, A = reference.forward(W, b, Xb, net.activations)
        grads = reference.backward(W, Z, A, Yb, net.activations, net.cost_name)
        reference.update(W, b, grads["dW"], grads["db"], LEARNING_RATE)
    return time.perf_counter() - start


def sklearn_epoch(net, X, y, batch):
    """Seconds of one epoch of scikit-learn's MLPClassifier (solver sgd, no momentum, no L2)."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    activation = {"relu": "relu", "tanh": "tanh"}[net.activations[0][0]]
    classifier = MLPClassifier(hidden_layer_sizes=net.n[1:-1], activation=activation, solver="sgd",
                               batch_size=batch, learning_rate_init=LEARNING_RATE, momentum=0.0, alpha=0.0,
                               max_iter=1, shuffle=False, random_state=0)
    rows = np.ascontiguousarray(X.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        classifier.fit(rows, y)
    return time.perf_counter() - start


def mlpcore_fit(net, X, y, batch):
    start = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=batch, optimizer="sgd", learning_rate=LEARNING_RATE, shuffle=False,
            seed=0, verbose=0)
    return time.perf_counter() - start


REPEATS = 5  # timings of each fast system; the slow ones (NumPy, scikit-learn) fewer
# Seconds between two timings: the threads of the system timed before go to sleep (OpenBLAS's
# spin for some 0.1 s after a threaded product, OpenMP's for milliseconds) instead of taking
# a core from the next one.
PAUSE = 0.25


def timed_with_gemm(measures, gemm):
    """best_times(measures) and, when gemm (see sgemm) is given, the GEMM's FLOP/s timed in
    turn with them, so that a roofline compares rates of the same minutes of a drifting host."""
    if gemm is None:
        return best_times(measures), None
    seconds = best_times(dict(measures, sgemm=(gemm[0], REPEATS)))
    return seconds, gemm[1] / seconds.pop("sgemm")


def best_times(measures):
    """The smallest timing of each measure (the least disturbed by the rest of the machine).

    measures : name -> (function returning seconds, how many times to run it). The systems
    take turns, round after round, so that a drift of the shared machine's speed reaches
    each of them alike instead of the one timed in a slow minute.
    """
    best = {}
    for turn in range(max(times for _, times in measures.values())):
        for name, (measure, times) in measures.items():
            if turn < times:
                time.sleep(PAUSE)
                best[name] = min(best.get(name, float("inf")), measure())
    return best


# ----------------------------------------------------------------------------- workloads

def bench_mnist(systems, m, gemm, dtype="float32"):
    """784-256-128-10 relu/softmax + cce, batch 128, one epoch over m random samples: samples/s."""
    spec = MNIST
    X, y = data(spec, m, dtype=dtype)
    measures = {"mlpcore": (lambda: mlpcore_fit(network(spec, dtype), X, y, spec["batch"]), REPEATS)}
    if "numpy" in systems:
        measures["numpy"] = (lambda: numpy_epoch(network(spec, dtype), X, y, spec["batch"]), 1)
    if "torch" in systems:
        measures["torch"] = (lambda: torch_epoch(network(spec, dtype), X, y, spec["batch"]), REPEATS)
    if "sklearn" in systems and dtype == "float32":
        measures["sklearn"] = (lambda: sklearn_epoch(network(spec, dtype), X, y, spec["batch"]), 1)
    seconds, gemm_rate = timed_with_gemm(measures, gemm)
    result = {"unit": "samples/s", "throughput": {name: m / s for name, s in seconds.items()}}
    if gemm_rate:  # the epoch's FLOPs: step_flops is linear in the examples, the last batch's fewer too
        result["gemm_gflops"] = gemm_rate / 1e9
        result["roofline"] = step_flops(spec["n"], m) / seconds["mlpcore"] / gemm_rate
    return result


def bench_tiny(systems, steps, gemm):
    """2-16-16-1 tanh, sigmoid + bce, batch 32, `steps` steps: steps/s with fit and with a Python loop."""
    spec = TINY
    batch = spec["batch"]
    m = steps * batch
    X, y = data(spec, m)
    measures = {"mlpcore": (lambda: mlpcore_fit(network(spec), X, y, batch), REPEATS),
                "mlpcore (Python loop)": (lambda: python_loop(network(spec), X, y, batch), REPEATS)}
    if "numpy" in systems:
        measures["numpy"] = (lambda: numpy_epoch(network(spec), X, y, batch), 1)
    if "torch" in systems:
        measures["torch"] = (lambda: torch_epoch(network(spec), X, y, batch), REPEATS)
    if "sklearn" in systems:
        measures["sklearn"] = (lambda: sklearn_epoch(network(spec), X, y, batch), 1)
    seconds, gemm_rate = timed_with_gemm(measures, gemm)
    throughput = {name: steps / s for name, s in seconds.items()}
    flops = step_flops(spec["n"], batch) * throughput["mlpcore"]
    return {"unit": "steps/s", "throughput": throughput, "gemm_gflops": gemm_rate / 1e9, "roofline": flops / gemm_rate}


def python_loop(net, X, y, batch):
    """Seconds of a Python loop of forward, backward, update over consecutive minibatches."""
    Y = y.astype(net.dtype)
    cache = net.forward(X[:, :batch])
    grads = net.backward(cache, Y[:batch])
    start = time.perf_counter()
    for s in range(0, X.shape[1], batch):
        net.forward(X[:, s:s + batch], out=cache)
        net.backward(cache, Y[s:s + batch], out=grads)
        net.update(grads, LEARNING_RATE)
    return time.perf_counter() - start


def bench_wide(systems, steps, gemm):
    """2048-2048-2048-10 relu/softmax + cce, batch 256, a few steps: GFLOP/s and share of the GEMM rate."""
    spec = WIDE
    batch = spec["batch"]
    X, y = data(spec, steps * batch)
    flops = step_flops(spec["n"], batch) * steps
    measures = {"mlpcore": (lambda: mlpcore_fit(network(spec), X, y, batch), REPEATS)}
    if "numpy" in systems:
        measures["numpy"] = (lambda: numpy_epoch(network(spec), X, y, batch), 1)
    if "torch" in systems:
        measures["torch"] = (lambda: torch_epoch(network(spec), X, y, batch), REPEATS)
    seconds, gemm_rate = timed_with_gemm(measures, gemm)
    throughput = {name: flops / s / 1e9 for name, s in seconds.items()}
    return {"unit": "GFLOP/s", "throughput": throughput, "gemm_gflops": gemm_rate / 1e9,
            "roofline": throughput["mlpcore"] * 1e9 / gemm_rate}


def bench_infer1(systems, calls):
    """The mnist network's forward of one example, repeated: calls/s."""
    spec = MNIST
    net = network(spec)
    x = data(spec, 1)[0]
    measures = {"mlpcore": (lambda: repeat(calls, lambda: net.predict(x)), REPEATS)}
    if "numpy" in systems:
        W = {l: np.array(net.W[l]) for l in range(1, net.L + 1)}
        b = {l: np.array(net.b[l]) for l in range(1, net.L + 1)}
        measures["numpy"] = (lambda: repeat(calls, lambda: reference.forward(W, b, x, net.activations)), 3)
    if "torch" in systems:
        import torch
        model = torch_model(net).eval()
        torch_row = torch.from_numpy(np.ascontiguousarray(x.T))

        def torch_call():
            with torch.no_grad():
                return torch.softmax(model(torch_row), dim=1)
        measures["torch"] = (lambda: repeat(calls, torch_call), REPEATS)
    if "sklearn" in systems:
        classifier = sklearn_fitted(net)
        sklearn_row = np.ascontiguousarray(x.T)
        # a tenth of the calls (scikit-learn's are some ten times slower), timed as ten times as long
        measures["sklearn"] = (lambda: 10 * repeat(calls // 10, lambda: classifier.predict_proba(sklearn_row)), 3)
    throughput = {name: calls / s for name, s in best_times(measures).items()}
    return {"unit": "calls/s", "throughput": throughput}


def sklearn_fitted(net):
    """A scikit-learn MLPClassifier with net's architecture and parameters."""
    import warnings
    from sklearn.neural_network import MLPClassifier
    classifier = MLPClassifier(hidden_layer_sizes=net.n[1:-1], max_iter=1)
    X, y = data(MNIST, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier.fit(X.T, np.arange(20) % 10)
    classifier.coefs_ = [np.array(net.W[l]).T for l in range(1, net.L + 1)]
    classifier.intercepts_ = [np.array(net.b[l][:, 0]) for l in range(1, net.L + 1)]
    return classifier


def repeat(calls, function):
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return time.perf_counter() - start


def bench_memory(systems, m, threads):
    """Resident memory growth over the mnist fit from its second step to its last (read at each
    step's gradient hook, while the fit's buffers are there), mlpcore's own buffers, and the peak
    resident growth over the same fit of mlpcore and PyTorch, each in a fresh process (where
    nothing of an earlier fit is left to reuse): MiB."""
    spec = MNIST
    X, y = data(spec, m)
    net = network(spec)
    gc.collect()
    before = resident_bytes()
    during = []  # the resident bytes at each step, after its backward: [1] after the whole first step
    net.fit(X, y, epochs=1, batch_size=spec["batch"], optimizer="sgd", shuffle=False, verbose=0,
            gradient_hook=lambda flat_gradient: during.append(resident_bytes()))
    result = {"unit": "MiB", "growth_after_first_step": (max(during[1:]) - during[1]) / 2**20,
              "first_step": (during[1] - before) / 2**20,
              "memory_bytes": {key: value / 2**20 for key, value in net.memory_bytes(breakdown=True).items()}}
    context = multiprocessing.get_context("spawn")
    # glibc's malloc gives blocks of 128 KiB and more their own mappings, which free returns: with
    # its threshold raised by the data's freed temporaries, the fit's buffers came out of memory
    # already resident and did not show in the peak (1.9 MiB for mlpcore's 3.1 MiB of fit buffers)
    with _environment(MALLOC_MMAP_THRESHOLD_="131072"), context.Pool(1, maxtasksperchild=1) as pool:
        peaks = {system: pool.apply(peak_growth, (system, m, threads)) for system in ("mlpcore", "torch")
                 if system in systems}
    result["peak_growth"] = {system: peak / 2**20 for system, peak in peaks.items() if peak is not None}
    return result


@contextlib.contextmanager
def _environment(**variables):
    """os.environ with these variables set (for the processes started meanwhile), then as it was."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def peak_growth(system, m, threads):
    """Bytes by which the peak resident memory of this process exceeds its resident memory
    before one mnist epoch of `system` on m examples (run in a fresh process); None where the
    peak cannot be reset (Linux's /proc/self/clear_refs)."""
    set_threads(threads)
    spec = MNIST
    X, y = data(spec, m)
    net = network(spec)
    # the network (for PyTorch, its twin) is made before: the parameters are not the fit's memory
    fit = torch_steps(net, X, y, spec["batch"]) if system == "torch" else lambda: mlpcore_fit(net, X, y, spec["batch"])
    gc.collect()
    if not reset_peak():
        return None
    before = resident_bytes()
    fit()
    with open("/proc/self/status") as file:
        peak = next(int(line.split()[1]) * 1024 for line in file if line.startswith("VmHWM:"))
    return peak - before


def reset_peak():
    """Start the peak resident memory (VmHWM) again from the resident memory of now; False
    where this process may not."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def resident_bytes():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_scaling(scale, threads):
    """mnist-shaped training time as m doubles, as the width doubles, and the mnist workload's
    epoch (30,000 samples) on 1 and `threads` threads."""
    base = MNIST
    m0 = int(7680 * scale) or 128

    def fit_seconds(spec, X, y, k=threads):
        mlpcore.set_num_threads(k)
        return mlpcore_fit(network(spec), X, y, base["batch"])
    measures = {}
    for factor in (1, 2, 4):
        X, y = data(base, m0 * factor)
        measures[f"m = {m0 * factor}"] = (lambda X=X, y=y: fit_seconds(base, X, y), REPEATS)
    X, y = data(base, m0)
    for factor in (1, 2, 4):
        spec = dict(base, n=[784, 256 * factor, 128 * factor, 10])
        measures[f"width x{factor}"] = (lambda spec=spec: fit_seconds(spec, X, y), REPEATS)
    X_mnist, y_mnist = data(base, int(30000 * scale))
    for k in sorted({1, threads}):
        measures[f"mnist, {k} thread(s)"] = (lambda k=k: fit_seconds(base, X_mnist, y_mnist, k), REPEATS)
    seconds = best_times(measures)
    mlpcore.set_num_threads(threads)
    return [{"what": what, "seconds": s} for what, s in seconds.items()]


# ----------------------------------------------------------------------------- report

def print_results(results):
    info = results["machine"]
    print(f"\nmlpcore {info['mlpcore']} on {info['cpu']}, {info['cores']} cores, {info['threads']} threads")
    settings = ", ".join(f"{name}={value}" for name, value in info.get("environment", {}).items())
    kernels = "; ".join(f"{system}'s {blas}" for system, blas in info.get("blas", {}).items())
    print(f"BLAS: {kernels or 'kernels not known (without threadpoolctl)'} "
          f"({settings or ', '.join(BLAS_SETTINGS) + ' not set'})")
    print(f"{'workload':<14} {'system':<22} {'throughput':>14}  {'mlpcore / system':>16}")
    for name, result in results["workloads"].items():
        if "throughput" not in result:
            continue
        ours = result["throughput"]["mlpcore"]
        for system, value in result["throughput"].items():
            ratio = "" if system == "mlpcore" else f"{ours / value:.2f}x"
            print(f"{name:<14} {system:<22} {value:>14,.1f}  {ratio:>16}   {result['unit']}")
        if "roofline" in result:
            print(f"{'':<14} roofline: {100 * result['roofline']:.0f}% of the float32 GEMM rate, "
                  f"{result['gemm_gflops']:.1f} GFLOP/s timed in turn with it")
    memory = results["workloads"]["memory"]
    peaks = {"mlpcore": "mlpcore's", "torch": "PyTorch's"}
    print(f"memory: resident growth after the first step {memory['growth_after_first_step']:.2f} MiB; "
          f"mlpcore's buffers {sum(memory['memory_bytes'].values()):.2f} MiB "
          f"({', '.join(f'{k} {v:.2f}' for k, v in memory['memory_bytes'].items())}); "
          + ("peak resident growth over the same fit in a fresh process: "
             + ", ".join(f"{peaks[system]} {value:.2f} MiB" for system, value in memory["peak_growth"].items())
             if memory["peak_growth"] else "no peaks: this system cannot reset a process's peak resident memory"))
    print("scaling (mnist-shaped fit, seconds):")
    for row in results["scaling"]:
        print(f"  {row['what']:<22} {row['seconds']:.3f}")
    one, *many = [row["seconds"] for row in results["scaling"] if "thread" in row["what"]]
    if many:
        print(f"  mnist, {info['threads']} threads against 1: {one / many[0]:.2f}x")


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart; pip install \".[plot]\" in a clone of mlpcore)")
        return
    workloads = {name: r for name, r in results["workloads"].items() if "throughput" in r}
    figure, axes = plt.subplots(2, (len(workloads) + 2) // 2, figsize=(14, 7))
    axes = axes.ravel()
    for axis, (name, result) in zip(axes, workloads.items()):
        systems = list(result["throughput"])
        values = [result["throughput"][s] for s in systems]
        bars = axis.barh(systems, values, color=["tab:blue" if s.startswith("mlpcore") else "tab:gray" for s in systems])
        axis.bar_label(bars, [f"{v:,.0f}" for v in values], padding=2, fontsize=8)
        axis.set_title(f"{name} ({result['unit']})")
        axis.set_xlim(0, 1.25 * max(values))
    for axis in axes[len(workloads) + 1:]:
        axis.axis("off")
    axis = axes[len(workloads)]
    rows = results["scaling"]
    axis.barh([row["what"] for row in rows], [row["seconds"] for row in rows], color="tab:orange")
    axis.set_title("scaling (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    print(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())
