"""Optimizers: one pass over the network's flat parameter buffer per step, with state buffers
laid out like it. The formulas are those of torch.optim, so that a step can be checked against
it, and so are the defaults of RMSprop, Adam and AdamW; SGD's learning_rate defaults to 0.01
(torch.optim.SGD's to 1e-3). ``Network.fit`` with an optimizer's name (or a (name, params)
pair) trains at learning_rate 0.01 unless it is given, whatever the class's default. Use them
through ``Network.fit(optimizer=...)`` or one step at a time:

    opt = mlpcore.optim.Adam(learning_rate=1e-3)
    grads = net.backward(net.forward(X), Y)
    opt.step(net, grads)
"""

import inspect

import numpy as np

from . import _core
from ._checks import is_real, name_and_params, require_flag

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "make_optimizer", "DivergenceError"]


class DivergenceError(FloatingPointError, ValueError):
    """Training produced a cost, gradient or parameter that is NaN or infinite.

    The network keeps the parameters and optimizer state of the last step
    whose cost, gradients and updated parameters were all finite (and, when
    no step of the fit was kept, all else as before the fit). Also a
    ValueError, which scikit-learn's MLP raises for non-finite weights, so that
    code written for it catches this too.
    """


def update_divergence(learning_rate, what):
    """The DivergenceError of an update outside fit (what: "step" of an optimizer, or "update" of
    Network.update) that would make a parameter NaN or inf, and changed nothing."""
    return DivergenceError("the update would make a parameter NaN or inf; try a smaller learning rate "
                           f"(this {what}'s was {float(learning_rate):g}); nothing was changed")


def _positive_real(value, name, allow_zero=False):
    if not is_real(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite real number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


class Optimizer:
    """The common part of the optimizers: a learning rate, hyper-parameters, and state.

    The state (step count t and buffers laid out like net.params) belongs to
    one network; it is made on the first step taken and kept across fits (warm
    start) until ``reset()``. ``hyper`` may be changed: each step and fit checks it
    again. An optimizer without state pickles and copies; one with state does
    not (TypeError): it is saved and pickled with its network.
    """

    method = None  # the core's name of the update rule

    def __init__(self, learning_rate, **hyper):
        self.learning_rate = learning_rate
        self.hyper = hyper
        self._state = None
        self._buffers = []  # views of the state's buffers, made with it (see state)
        self._network = None

    @property
    def hyper(self):
        """The hyper-parameters, a dict keyed by their names (momentum, beta1, ...); settable to
        another dict, which each step and fit checks."""
        return self._hyper

    @hyper.setter
    def hyper(self, value):
        if not isinstance(value, dict):
            raise TypeError(f"hyper must be a dict of hyper-parameters keyed by name, got {type(value).__name__}")
        self._hyper = value

    @property
    def learning_rate(self):
        """The step size lr, a finite float >= 0; settable. In fit it is the base rate lr0 of the
        schedule, which is not written back: each epoch's rate is in fit's history["learning_rate"]."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _positive_real(value, "learning_rate", allow_zero=True)

    @property
    def spec(self):
        """(method, hyper-parameters): what makes two optimizers update alike."""
        return self.method, dict(self.hyper)

    @property
    def t(self):
        """The number of steps taken since the state was made."""
        return 0 if self._state is None else self._state.t

    @property
    def state(self):
        """The state buffers, 1-D views of net.params' size and dtype, laid out like it.

        [] before the first step and for SGD without momentum; [buf] (the momentum
        buffer) for SGD with momentum; [v] for RMSprop; [m, v] for Adam and AdamW.
        The views are made with the state, outside any fit, so that they show the
        buffers the state keeps: a fit's steps swap them with spares, which it frees.
        Read during an epoch (from a gradient hook), they may show the state one step
        behind ``t``; read them between epochs for a consistent checkpoint.
        """
        return list(self._buffers)

    def reset(self):
        """Forget the state: the next step starts afresh (t = 0, zero buffers)."""
        self._state = None
        self._buffers = []
        self._network = None

    def _require_network(self, net):
        """Refuse net when the state belongs to another network, and the state when it no
        longer fits the hyper-parameters (momentum changed to or from 0 since it was made)."""
        if self._network is not None and self._network is not net:
            raise ValueError("this optimizer's state belongs to another network; call reset() first")
        if self._state is not None and not self._state.fits(self.method, self.hyper, net._core):
            raise ValueError(f"this optimizer's state was made for other hyper-parameters than {self.hyper} "
                             f"(momentum changed to or from 0); call reset() first")

    def _state_for(self, net):
        """The core state for net, made on first use; refuses another network's."""
        self._require_network(net)
        if self._state is None:  # made whole or not at all: buffers refuses during a fit of net
            state_class = _core.OptimizerState32 if net.dtype == np.float32 else _core.OptimizerState64
            state = state_class(self.method, self.hyper, net.params.size)
            self._buffers = list(state.buffers(net._core))
            self._state, self._network = state, net
        return self._state

    def step(self, net, grads):
        """One update of net's parameters from grads.

        net : a mlpcore.Network. grads : the mlpcore.Gradients of a backward of net.
        Raises TypeError for any other net or grads, ValueError for gradients of another
        network, with NaN or inf, or that hold nothing (see Network.update), ValueError (TypeError) for
        hyper-parameters changed to values out of range (of another type) or an eps that
        rounds to 0 in net's dtype, DivergenceError if the update itself overflows (the
        parameters and the state, t included, are then left as they were, and a first step
        leaves no state), and RuntimeError during an epoch of a fit of net (from another thread or its hook).
        After a step, net.optimizer is this optimizer (what ``save(include_optimizer=True)``
        saves and a fit of net continues from when given no other).
        """
        from .network import Gradients, Network  # network.py imports this module (through training.py)

        if not isinstance(net, Network):
            raise TypeError(f"net must be a mlpcore.Network, got {type(net).__name__}")
        if not isinstance(grads, Gradients):
            raise TypeError(f"grads must be the mlpcore.Gradients of a backward of net, got {type(grads).__name__}")
        if grads._network is not net:
            raise ValueError("the gradients belong to another network")
        fresh = self._state is None
        state = self._state_for(net)
        try:
            if not state.step(self.method, self.hyper, net._core, grads._core, self.learning_rate):
                raise update_divergence(self.learning_rate, "step")
        except BaseException:
            if fresh:
                self.reset()  # a refused first step leaves no state behind, bound to no network
            raise
        net.optimizer = self

    def __getstate__(self):
        """What pickle and copy keep of an optimizer without state; one with state is refused."""
        if self._state is not None:
            raise TypeError("an optimizer with state is not pickled or copied by itself: the state belongs to its "
                            "network; pickle the network (net.optimizer comes back with its state), or reset() it")
        return dict(vars(self))

    def __repr__(self):
        hyper = "".join(f", {key}={value!r}" for key, value in self.hyper.items())
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}{hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum, as torch.optim.SGD.

    momentum = 0:  p = p - lr g
    momentum > 0:  buf = momentum buf + g (buf = g at the first step);
                   d = g + momentum buf (nesterov) or buf;  p = p - lr d
    Defaults: learning_rate 0.01, momentum 0, nesterov False.
    """

    method = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        momentum = _positive_real(momentum, "momentum", allow_zero=True)
        nesterov = require_flag(nesterov, "nesterov")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov)


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop (not centred, no momentum).

    v = alpha v + (1 - alpha) g^2;  p = p - lr g / (sqrt(v) + eps)
    Defaults: learning_rate 0.01, alpha 0.99, eps 1e-8.
    """

    method = "rmsprop"

    def __init__(self, learning_rate=0.01, alpha=0.99, eps=1e-8):
        super().__init__(learning_rate, alpha=_fraction(alpha, "alpha"), eps=_positive_real(eps, "eps"))


class Adam(Optimizer):
    """Adam as torch.optim.Adam.

    m1 = beta1 m1 + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    p = p - lr (m1 / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
    Defaults: learning_rate 1e-3, beta1 0.9, beta2 0.999, eps 1e-8.
    """

    method = "adam"

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(learning_rate, beta1=_fraction(beta1, "beta1"), beta2=_fraction(beta2, "beta2"),
                         eps=_positive_real(eps, "eps"))


class AdamW(Optimizer):
    """AdamW as torch.optim.AdamW: decoupled weight decay, then the Adam step.

    p = p (1 - lr weight_decay), then as Adam. Defaults: learning_rate 1e-3,
    beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01 (on every parameter).
    """

    method = "adamw"

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(learning_rate, beta1=_fraction(beta1, "beta1"), beta2=_fraction(beta2, "beta2"),
                         eps=_positive_real(eps, "eps"),
                         weight_decay=_positive_real(weight_decay, "weight_decay", allow_zero=True))


def _fraction(value, name):
    value = _positive_real(value, name, allow_zero=True)
    if value >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return value


# name -> (class, hyper-parameters that the name implies)
OPTIMIZERS = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
}


def make_optimizer(spec, learning_rate):
    """An Optimizer from a name ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"),
    a pair (name, {hyper-parameter: value}), whose dict may hold the learning_rate too, or an
    Optimizer (returned as it is, its learning rate set to learning_rate unless that is None).
    ValueError for a learning rate given both ways, unless the same."""
    if isinstance(spec, Optimizer):
        if learning_rate is not None:
            spec.learning_rate = learning_rate
        return spec
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        raise TypeError(f"optimizer={spec.__name__} is the class: pass an optimizer made of it, "
                        f"{spec.__name__}(...), or its name")
    name, hyper = name_and_params(spec, "an optimizer (or a mlpcore.optim.Optimizer)", "('adam', {'beta1': 0.9})")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)} "
                         f"or a mlpcore.optim.Optimizer")
    cls, implied = OPTIMIZERS[name]
    hyper = dict(hyper)
    in_dict = hyper.pop("learning_rate", None)  # None: not given, as learning_rate's None
    if in_dict is not None and learning_rate is not None and \
            not (is_real(in_dict) and float(in_dict) == float(learning_rate)):
        raise ValueError(f"optimizer {name!r}: the learning rate is given twice, {in_dict!r} in its dict and "
                         f"{learning_rate!r} as learning_rate; give it once")
    rate = in_dict if learning_rate is None else learning_rate
    accepted = [key for key in inspect.signature(cls).parameters if key != "learning_rate"]
    unknown = sorted(set(hyper) - set(accepted), key=str)
    if unknown:
        raise ValueError(f"optimizer {name!r} takes the hyper-parameters {accepted} (and learning_rate), not "
                         f"{', '.join(map(repr, unknown))}")
    try:
        return cls(**({} if rate is None else {"learning_rate": rate}), **{**implied, **hyper})
    except TypeError as error:  # a hyper-parameter of the wrong type
        raise ValueError(f"optimizer {name!r}: {error}") from None


def pair_learning_rate(spec):
    """The learning_rate in the dict of an optimizer pair (name, {...}), else None."""
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
        return spec[1].get("learning_rate")
    return None
