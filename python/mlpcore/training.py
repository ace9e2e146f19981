"""Network.fit: the epoch loop around the core's Trainer, which runs each epoch's steps in C++."""

import math
import signal
import threading
import time

import numpy as np

from . import _core
from ._checks import held_by, is_integer, is_real, largest, require_flag, transpose_hint
from .optim import DivergenceError, Optimizer, make_optimizer, pair_learning_rate
from .schedules import parse_schedule

__all__ = ["fit"]

_TRAINERS = {np.dtype("float32"): _core.Trainer32, np.dtype("float64"): _core.Trainer64}
DEFAULT_LEARNING_RATE = 0.01  # of fit with an optimizer's name or pair


def fit(net, X, Y, epochs=10, batch_size=32, optimizer="sgd", learning_rate=None, shuffle=True, seed=None,
        validation_data=None, validation_fraction=None, early_stopping=False, patience=10, l2=0.0,
        clip_norm=None, clip_value=None, callbacks=None, schedule=None, gradient_hook=None, diagnostics=False,
        verbose=1):
    """Train net by minibatch gradient descent; see Network.fit for the parameters. Returns the history."""
    _check_settings(epochs, batch_size, shuffle, seed, patience, callbacks, gradient_hook, verbose,
                    validation_data, validation_fraction, early_stopping, diagnostics)
    schedule = parse_schedule(schedule).for_epochs(epochs)
    learning_rate = _base_rate(optimizer, learning_rate)
    _check_numbers(net.dtype, learning_rate, schedule, epochs, l2, clip_norm, clip_value)
    start, run = FitStart(net, optimizer), None
    try:
        run = _Run(net, X, Y, batch_size, optimizer, learning_rate, seed, validation_data, validation_fraction,
                   schedule)
        history = net.history = _new_history(net, run.validation_data, diagnostics, l2)
        _epochs(net, run, history, epochs, l2, clip_norm, clip_value, shuffle, gradient_hook, diagnostics,
                early_stopping, patience, callbacks, verbose)
    finally:  # refused, failed or interrupted before its first step was kept: the network as it was
        if run is None or not run.stepped():
            start.restore()
    return history


def _epochs(net, run, history, epochs, l2, clip_norm, clip_value, shuffle, gradient_hook, diagnostics,
            early_stopping, patience, callbacks, verbose):
    """The epochs of a fit, each logged into history, until the last, a callback or early stopping
    ends them, or Ctrl-C between two of them."""
    watch = "val_cost" if run.validation_data is not None else "cost"
    best = {"value": math.inf, "snapshot": None, "epoch": -1}
    bar = _progress(epochs, verbose)
    try:
        for epoch in range(epochs):
            result, logs = run.epoch(epoch, l2, clip_norm, clip_value, shuffle, gradient_hook, diagnostics,
                                     _running(bar, run))
            for key, value in logs.items():
                history.setdefault(key, []).append(value)  # a callback may have emptied it
            _show(bar, logs)
            stop = result["interrupted"]
            if early_stopping:
                stop |= _watch(net, best, logs[watch], epoch, patience)
            told = dict(logs, interrupted=True) if result["interrupted"] else logs  # of an epoch Ctrl-C ended
            for callback in callbacks or ():
                stop |= _stops(callback, epoch, told)
            if stop:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C between the core's epochs: the network is consistent, training just stops
    finally:
        if bar is not None:
            bar.close()
    if early_stopping and best["snapshot"] is not None:
        restore(net, best["snapshot"])


def _stops(callback, epoch, logs):
    """Whether callback(epoch, logs) asks training to stop: a true value as bool() takes it;
    TypeError for a value that has none (a NumPy array of several entries, say)."""
    answer = callback(epoch, logs)
    try:
        return bool(answer)
    except (TypeError, ValueError) as error:
        raise TypeError(f"a callback returns a true value to stop training, or a false one (None) to go on; "
                        f"{callback!r} returned {type(answer).__name__} {answer!r}, which is neither ({error})") from None


class FitStart:
    """What a fit changes besides the parameters and the optimizer's state, as it was when the fit
    began: the network's history, optimizer and dropout seeds, and the learning rate of the
    optimizer objects the fit may use (a given one, or net.optimizer's to continue from) with
    whether each had a state. A fit that fails before it keeps a step leaves the parameters and
    the states as they were, and restore() puts back the rest."""

    def __init__(self, net, optimizer):
        self.net, self.history, self.optimizer, self.fit_memory = net, net.history, net.optimizer, net._fit_memory
        self.dropout = net._core.dropout_seed, net._core.training_forwards
        used = {id(opt): opt for opt in (optimizer, net.optimizer) if isinstance(opt, Optimizer)}.values()
        self.optimizers = [(opt, opt.learning_rate, opt._state is not None) for opt in used]

    def restore(self):
        """Put back what was kept, into the same network and optimizer objects."""
        net = self.net
        net.history, net.optimizer, net._fit_memory = self.history, self.optimizer, self.fit_memory
        net._core.dropout_seed, net._core.training_forwards = self.dropout
        for opt, learning_rate, had_state in self.optimizers:
            opt.learning_rate = learning_rate
            if not had_state:
                opt.reset()


class _Run:
    """What one fit trains with: the data (F-ordered X, the validation share), the optimizer,
    the core's Trainer and the seeds of the epochs' orders and dropout masks."""

    def __init__(self, net, X, Y, batch_size, optimizer, learning_rate, seed, validation_data,
                 validation_fraction, schedule):
        X, Y = _data(net, X, Y, "X", "Y", values_of_X=False)  # the trainer checks X's as it reads it
        rng = np.random.default_rng(seed)
        if validation_fraction is not None:
            X, Y, validation_data = _hold_out(X, Y, validation_fraction, rng)
            _data(net, *validation_data, "X", "Y")  # which the trainer does not read
        elif validation_data is not None:
            validation_data = _data(net, *validation_data, "validation X", "validation Y")
        m = X.shape[1]
        self.batch_size = m if batch_size is None else min(batch_size, m)
        if net._batch_norm_layers and self.batch_size < 2:  # the core would skip every minibatch of one
            raise ValueError(f"batch normalisation needs minibatches of at least 2 examples (one example has no "
                             f"batch variance); got batch_size={batch_size!r} and m = {m} training examples")
        self.net, self.Y, self.validation_data, self.schedule = net, Y, validation_data, schedule
        self.X = np.require(X, requirements=("F_CONTIGUOUS", "ALIGNED"))  # each minibatch is whole columns
        self.optimizer = _optimizer(net, optimizer, learning_rate)
        dropout_seed, self.order_seed = (int(s) for s in rng.integers(0, 2**63, size=2, dtype=np.uint64))
        self.state = self.optimizer._state_for(net)  # the trainer's, whatever a callback does to the optimizer
        data = {"X": self.X, "Y": self.Y}
        if validation_data is not None:
            data.update(zip(("validation X", "validation Y"), validation_data))
        _require_apart(net, self.optimizer, data)
        self.trainer = _TRAINERS[net.dtype](net._core, self.optimizer.method, self.optimizer.hyper, self.state,
                                            self.batch_size, m)
        self.t_start = self.state.t  # its step count before this fit's steps
        net._core.dropout_seed, net._core.training_forwards = dropout_seed, 0
        net.optimizer = self.optimizer
        net._fit_memory = self.trainer.memory()

    def stepped(self):
        """Whether this fit has kept a step (the optimizer's state counts them)."""
        return self.state.t != self.t_start

    def epoch(self, epoch, l2, clip_norm, clip_value, shuffle, gradient_hook, diagnostics, progress=None):
        """Train one epoch in the core; returns the core's result and the epoch's logs (its figures).
        progress, if any, is called as progress(steps, running_cost) a few times a second.
        Raises DivergenceError when a step's cost, gradient or update is not finite."""
        lr = self.schedule.learning_rate(self.optimizer.learning_rate, epoch)
        started = time.perf_counter()
        result = self.trainer.epoch(self.X, self.Y, self.batch_size, lr, l2, clip_norm or 0.0, clip_value or 0.0,
                                    bool(shuffle), self.order_seed, epoch, gradient_hook, _takes_ctrl_c(), progress,
                                    bool(diagnostics))
        if result["diverged"]:
            raise self._divergence(result, epoch, lr)
        logs = {"cost": result["cost"], "learning_rate": lr, "time": time.perf_counter() - started}
        if l2 > 0:
            logs["l2_term"] = result["l2_term"]
        if self.validation_data is not None:
            logs.update(_evaluate(self.net, *self.validation_data))
        if diagnostics:
            logs.update(_diagnostics(self.net, self.trainer.gradients(), self.X))
        return result, logs

    def _divergence(self, result, epoch, lr):
        """The DivergenceError of an epoch whose step diverged (result["diverged"]: "the cost", "a
        batch-norm layer's batch mean or variance", "the gradient" or "the updated parameters"),
        with advice: at the fit's first step, the cost, the batch statistics and the gradient come
        before any update, so the cause there is not the learning rate but the scale of the data (or
        of the parameters); the first update's may be either, a later step's most likely the rate."""
        what, step = result["diverged"], result["steps"] + 1
        first = epoch == 0 and step == 1
        scale = (f"the scale of the data (|X| up to {np.max(np.abs(self.X)):.3g}, |Y| up to "
                 f"{np.max(np.abs(self.Y)):.3g}: standardise them, e.g. with mlpcore.preprocessing.Standardizer) "
                 f"and of the parameters (up to {np.max(np.abs(self.net.params)):.3g})")
        if first and what != "the updated parameters":
            advice = f"it came before any update, so look at {scale}, not at the learning rate"
        else:
            advice = f"try a smaller learning_rate (this epoch's was {lr:g})" + (f" or check {scale}" if first else "")
        return DivergenceError(f"{what} became NaN or inf at epoch {epoch + 1}, step {step}, and the network "
                               f"keeps the parameters of the last good step: {advice}.")


def _takes_ctrl_c():
    """Whether the epoch about to run takes Ctrl-C (SIGINT) over, to stop after its current step:
    on Python's main thread while Python's own handler has it (not one of the program's, nor an
    ignored or default SIGINT, which stay as they are)."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


def _check_settings(epochs, batch_size, shuffle, seed, patience, callbacks, gradient_hook, verbose,
                    validation_data, validation_fraction, early_stopping, diagnostics):
    """Refuse bad settings before anything changes."""
    for name, flag in (("shuffle", shuffle), ("early_stopping", early_stopping), ("diagnostics", diagnostics)):
        require_flag(flag, name)
    if not is_integer(epochs) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if batch_size is not None and (not is_integer(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None (the whole set), got {batch_size!r}")
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    if not is_integer(patience) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    if callbacks is not None and not (isinstance(callbacks, (list, tuple))
                                      and all(callable(callback) for callback in callbacks)):
        raise TypeError(f"callbacks must be a list of callables callback(epoch, logs), got {callbacks!r}")
    if gradient_hook is not None and not callable(gradient_hook):
        raise TypeError(f"gradient_hook must be callable or None, got {gradient_hook!r}")
    if verbose not in (0, 1):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_fraction is not None and not (is_real(validation_fraction) and 0 < validation_fraction < 1):
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction!r}")
    if validation_data is not None and not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise ValueError("validation_data must be a pair (X_val, Y_val)")


def _base_rate(optimizer, learning_rate):
    """The base learning rate of a fit: learning_rate if given, else the Optimizer object's own or
    the one in a pair's dict, else DEFAULT_LEARNING_RATE."""
    if learning_rate is not None:
        return learning_rate
    if isinstance(optimizer, Optimizer):
        return optimizer.learning_rate
    rate = pair_learning_rate(optimizer)
    return DEFAULT_LEARNING_RATE if rate is None else rate


def _check_numbers(dtype, lr0, schedule, epochs, l2, clip_norm, clip_value):
    """Refuse, before anything changes, a number that the network's dtype (float32 or float64)
    cannot hold: the base learning rate lr0 and l2 (finite, >= 0), clip_norm and clip_value
    (finite, > 0 and not rounding to 0) and the schedule's rate of each of the fit's epochs."""
    if not (held_by(lr0, dtype) and lr0 >= 0):
        raise ValueError(f"learning_rate must be a number >= 0 finite in {dtype.name}, got {lr0!r}")
    if not (held_by(l2, dtype) and l2 >= 0):
        raise ValueError(f"l2 must be a number >= 0 finite in {dtype.name}, got {l2!r}")
    for name, bound in (("clip_norm", clip_norm), ("clip_value", clip_value)):
        if bound is not None and not (held_by(bound, dtype) and dtype.type(bound) > 0):
            raise ValueError(f"{name} must be None or a number > 0 finite in {dtype.name} (and not rounding to 0 "
                             f"there), got {bound!r}")
    limit = largest(dtype)
    epoch = schedule.first_epoch_above(lr0, epochs, limit)
    if epoch is not None:
        raise ValueError(f"the schedule {schedule.spec()!r} takes the learning rate from {lr0:g} to "
                         f"{schedule.learning_rate(lr0, epoch):g} at epoch {epoch + 1} of this fit's {epochs}, "
                         f"beyond the range of {dtype.name} (at most {limit:.4g})")


def _require_apart(net, optimizer, data):
    """Refuse data (arrays by name) that shares memory with what fit writes at every step:
    net.params (W[l], b[l], ...), the optimizer's state and batch-norm layers' running statistics."""
    written = [net.params, *optimizer.state, *(statistics[l] for statistics in (net.running_mean, net.running_var)
                                               for l in statistics.indices)]
    for name, array in data.items():
        if any(np.may_share_memory(array, buffer) for buffer in written):
            raise ValueError(f"{name} shares memory with what fit writes at every step (the network's parameters "
                             f"and running statistics, the optimizer's state): pass a copy")


def _data(net, X, Y, X_name, Y_name, values_of_X=True):
    """X (n[0], m) and Y as the core takes them, with the same m, their values checked (X's NaN
    and inf left to the trainer unless values_of_X)."""
    X = net._matrix(X, X_name, rows=net.n[0])
    Y = net._targets(Y)
    m, n_L = X.shape[1], net.n[-1]
    labels = net.cost_name == "cce" and Y.ndim == 1
    expected = (m,) if labels or (Y.ndim == 1 and n_L == 1) else (n_L, m)
    if Y.shape != expected:
        raise ValueError(f"{Y_name} must have shape {expected} to match {X_name} of shape {X.shape}, got {Y.shape}"
                         f"{transpose_hint(Y_name, Y.shape, n_L, m) if len(expected) == 2 else ''}"
                         f"{_labels_hint(net, Y_name, Y.shape, m)}")
    try:
        net._core.check_data(X, Y, values_of_X)
    except ValueError as error:  # the core says "X ...", "Y ..." or "cce labels ...": name which data it is
        message = str(error)
        name = {"X": X_name, "Y": Y_name}.get(message[:1])
        raise ValueError(f"{name}{message[1:]}" if name else f"{Y_name}: {message}") from None
    return X, Y


def _labels_hint(net, name, shape, m):
    """For cce, the hint that class labels go as shape (m,) when Y is one column or row of m of them."""
    if net.cost_name == "cce" and shape in ((m, 1), (1, m)):
        return f"; cce's class labels go as shape (m,) = ({m},): pass {name}.ravel()"
    return ""


def _hold_out(X, Y, fraction, rng):
    """A random share `fraction` of the examples as validation data, the rest for training."""
    m = X.shape[1]
    m_val = max(1, int(round(fraction * m)))
    if m_val >= m:
        raise ValueError(f"validation_fraction {fraction} leaves no training examples of m = {m}")
    order = rng.permutation(m)
    val, train = np.sort(order[:m_val]), np.sort(order[m_val:])
    return X[:, train], Y[..., train], (X[:, val], Y[..., val])


def _optimizer(net, spec, learning_rate):
    """The optimizer of this fit, at the fit's base learning rate (see _base_rate): an Optimizer
    object as given (refused, before its learning rate is set, if its state belongs to another
    network); for a name or a pair, net.optimizer with its state when the spec is the same (warm
    start), else a new one."""
    given = isinstance(spec, Optimizer)
    if given:
        spec._require_network(net)
    opt = make_optimizer(spec, learning_rate)
    previous = net.optimizer
    if not given and previous is not None and previous.spec == opt.spec:
        previous.learning_rate = opt.learning_rate
        return previous
    return opt


def _new_history(net, validation_data, diagnostics, l2):
    """An empty history: a list for each figure the fit will record per epoch."""
    keys = ["cost", "learning_rate", "time"] + (["l2_term"] if l2 > 0 else [])
    if validation_data is not None:
        keys += ["val_cost", "val_r2" if net.cost_name == "mse" else "val_accuracy"]
    if diagnostics:
        keys += ["dW_norm", "dead_relu", "saturated"]
    return {key: [] for key in keys}


def _evaluate(net, X, Y):
    """val_cost, and val_accuracy (bce, cce) or val_r2 (mse), in inference mode; DivergenceError
    when the validation output overflows (finite parameters grown too large for X_val)."""
    A_L = net.forward(X, training=False).A[net.L]
    if not np.all(np.isfinite(A_L)):
        raise DivergenceError("the validation data's output A[L] is NaN or inf: the parameters grew too large for it; "
                              "try a smaller learning rate")
    figures = {"val_cost": net.cost(A_L, Y)}
    if net.cost_name == "mse":
        Y = Y.reshape(A_L.shape)
        residual = ((Y - A_L) ** 2).sum(axis=1)
        total = ((Y - Y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        # R^2 = 1 - residual / total per output, averaged; for a constant output (total 0) 1 if
        # it is predicted exactly, else 0, and NaN for one example, as scikit-learn's r2_score gives
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual > 0, 0.0, 1.0))
        figures["val_r2"] = float(np.mean(r2)) if Y.shape[1] > 1 else math.nan
    elif net.cost_name == "bce":
        figures["val_accuracy"] = float(np.mean((A_L >= 0.5) == (Y.reshape(A_L.shape) >= 0.5)))
    else:
        labels = Y if Y.ndim == 1 else Y.argmax(axis=0)
        figures["val_accuracy"] = float(np.mean(A_L.argmax(axis=0) == labels))
    return figures


def _diagnostics(net, grads, X, sample=1000):
    """Per layer: ||dW[l]|| of the epoch's last step; the share of relu units dead (0 for every
    example of a sample) and of sigmoid/tanh outputs saturated (within 0.01 of their bounds)."""
    A = net.forward(X[:, :sample], training=False).A
    dead, saturated = [], []
    for l, (name, _) in enumerate(net.activations, start=1):
        dead.append(float(np.mean(np.all(A[l] == 0, axis=1))) if name == "relu" else None)
        bound = {"sigmoid": (0.01, 0.99), "tanh": (-0.99, 0.99)}.get(name)
        saturated.append(float(np.mean((A[l] <= bound[0]) | (A[l] >= bound[1]))) if bound else None)
    return {"dW_norm": [float(np.linalg.norm(grads.dW(l))) for l in range(1, net.L + 1)],
            "dead_relu": dead, "saturated": saturated}


def _watch(net, best, value, epoch, patience):
    """Early stopping: keep the best parameters; True when `patience` epochs brought no improvement."""
    if value < best["value"]:
        best.update(value=value, epoch=epoch, snapshot=snapshot(net))
        return False
    return epoch - best["epoch"] >= patience


def _restorable(net):
    """The arrays early stopping restores: the parameters and the batch-norm running statistics."""
    return (net.params, *net.running_mean.values(), *net.running_var.values())


def snapshot(net):
    """Copies of _restorable(net)."""
    return [array.copy() for array in _restorable(net)]


def restore(net, saved):
    """Put a snapshot(net) back into net."""
    for array, copy in zip(_restorable(net), saved):
        array[...] = copy


def _progress(epochs, verbose):
    """The fit's _Bar with verbose, else None."""
    return _Bar(epochs) if verbose else None


class _Bar:
    """A tqdm bar that advances once per epoch (the epoch itself runs in the core), made when it
    first has figures to show, so that a fit whose first epoch refuses X's NaN (which the core
    checks there) before it reports shows none; its clock starts with the fit all the same."""

    def __init__(self, epochs):
        self.epochs, self.started, self.tqdm = epochs, time.time(), None

    def set_postfix(self, figures, refresh=True):
        self._made().set_postfix(figures, refresh=refresh)

    def update(self, n):
        self._made().update(n)

    def close(self):
        if self.tqdm is not None:
            self.tqdm.close()

    def _made(self):
        if self.tqdm is None:
            from tqdm.auto import tqdm
            self.tqdm = tqdm(total=self.epochs, unit="epoch", leave=True)
            self.tqdm.start_t = self.started  # tqdm's clock (time.time) from which it shows elapsed and rate
        return self.tqdm


def _running(bar, run):
    """For the bar, a progress(steps, running_cost) that shows how far the current epoch is."""
    if bar is None:
        return None
    steps = -(-run.X.shape[1] // run.batch_size)

    def progress(done, cost):
        bar.set_postfix({"step": f"{done}/{steps}", "running cost": f"{cost:.4g}"})
    return progress


def _show(bar, logs):
    """Advance the bar by one epoch, showing its cost and validation figures."""
    if bar is None:
        return
    figures = {key: f"{logs[key]:.4g}" for key in ("cost", "val_cost", "val_accuracy", "val_r2") if key in logs}
    bar.set_postfix(figures, refresh=False)
    bar.update(1)
