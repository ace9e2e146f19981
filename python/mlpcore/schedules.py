"""Learning-rate schedules, stepped once per epoch, as torch.optim.lr_scheduler's namesakes.

A schedule spec is one of

    None                                          lr(e) = lr0
    ("step", {"step_size": 10, "gamma": 0.5})     lr(e) = lr0 gamma^(e // step_size)      (StepLR)
    ("exponential", {"gamma": 0.95})              lr(e) = lr0 gamma^e                     (ExponentialLR)
    ("cosine", {"T_max": None, "eta_min": 0.0})   lr(e) = eta_min + (lr0 - eta_min)
                                                          (1 + cos(pi e / T_max)) / 2      (CosineAnnealingLR)

where e = 0, 1, 2, ... is the epoch (0-based: epoch 0 trains at lr0) and lr0
the base learning rate (fit's learning_rate). The rate of an epoch is used
for every step of that epoch; the schedule moves on after the epoch. A name
alone ("step", "exponential", "cosine") takes every default, and a params dict
may leave out any parameter: the defaults are the values shown above. A
cosine's T_max of None (its default) is the number of epochs of the fit (or of
learning_rates) it is used in, so that "cosine" alone anneals once, from lr0 at
epoch 0 down towards eta_min at the last epoch. The cosine is the closed form,
which torch's recursive CosineAnnealingLR follows; past T_max it rises again, as
torch's does.

    >>> schedule = parse_schedule(("step", {"step_size": 2, "gamma": 0.5}))
    >>> [schedule.learning_rate(0.1, e) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
"""

import math
import sys

from ._checks import is_integer, is_real, name_and_params

__all__ = ["SCHEDULES", "Schedule", "parse_schedule", "learning_rate", "learning_rates"]

# name: its parameters with their defaults
SCHEDULES = {
    "constant": {},
    "step": {"step_size": 10, "gamma": 0.5},
    "exponential": {"gamma": 0.95},
    "cosine": {"T_max": None, "eta_min": 0.0},  # T_max None: the epochs of the fit
}
_NAMED = [name for name in SCHEDULES if name != "constant"]  # the names a spec may give
_LOG_LARGEST = math.log(sys.float_info.max)  # the largest float is e^_LOG_LARGEST


class Schedule:
    """A parsed schedule: ``name`` (one of SCHEDULES) and ``params`` (every parameter filled in).

    ``learning_rate(lr0, epoch)`` gives the rate of an epoch; ``learning_rates(lr0, epochs)``
    those of epochs 0..epochs-1; ``first_epoch_above(lr0, epochs, limit)`` the first of those
    whose rate is above limit. Two schedules are equal when their name and params are.
    """

    __slots__ = ("name", "params")

    def __init__(self, name, params=None):
        """name: one of SCHEDULES; params: a dict of some of its parameters, or None (see
        parse_schedule for their ranges). Raises ValueError as parse_schedule does."""
        self.name = name
        self.params = _checked_params(name, params)

    def learning_rate(self, lr0, epoch):
        """The learning rate of epoch ``epoch`` (an int >= 0, 0-based) for the base rate lr0 >= 0.

        Returns a float: inf for a rate beyond the float range (a step or exponential gamma > 1
        after many epochs), never OverflowError. Raises ValueError on a negative or non-finite
        lr0, or an epoch that is not an integer >= 0 (as fit's epochs), and on a cosine whose
        T_max is None (the fit's epochs: see for_epochs).
        """
        if not is_real(lr0) or lr0 < 0:
            raise ValueError(f"the base learning rate must be a finite number >= 0; got {lr0!r}")
        if not is_integer(epoch) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0 (0-based); got {epoch!r}")
        lr0, e, p = float(lr0), int(epoch), self.params
        if self.name == "step":
            # lr = lr0 gamma^(e // step_size)
            return _times_power(lr0, p["gamma"], e // p["step_size"])
        if self.name == "exponential":
            # lr = lr0 gamma^e
            return _times_power(lr0, p["gamma"], e)
        if self.name == "cosine":
            # lr = eta_min + (lr0 - eta_min) (1 + cos(pi e / T_max)) / 2
            eta_min, T_max = p["eta_min"], p["T_max"]
            if T_max is None:
                raise ValueError("this cosine's T_max is None, the epochs of the fit it is used in: give T_max, "
                                 "or ask learning_rates(lr0, epochs) or for_epochs(epochs) for the rates")
            return eta_min + (lr0 - eta_min) * ((1 + math.cos(_angle(e, T_max))) / 2)
        # constant: lr = lr0
        return lr0

    def learning_rates(self, lr0, epochs):
        """The learning rates of epochs 0..epochs-1, a list of floats."""
        if not is_integer(epochs) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0; got {epochs!r}")
        schedule = self.for_epochs(max(epochs, 1))
        return [schedule.learning_rate(lr0, e) for e in range(epochs)]

    def for_epochs(self, epochs):
        """This schedule for a fit of ``epochs`` epochs (an integer >= 1): a cosine whose T_max is
        None gets T_max = epochs; any other schedule is returned as it is."""
        if not is_integer(epochs) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}")
        if self.params.get("T_max", 0) is not None:
            return self
        return type(self)(self.name, {**self.params, "T_max": int(epochs)})

    def first_epoch_above(self, lr0, epochs, limit):
        """The first epoch e of 0..epochs-1 (epochs >= 1) whose rate is above limit (or NaN), or None.

        Bisection, without computing every rate: the rates rise, if at all, steadily up to the
        largest, that of the last epoch (a step or exponential gamma > 1) or of T_max (a cosine
        rising to eta_min > lr0), else that of epoch 0. A cosine's T_max of None is epochs.
        """
        schedule = self.for_epochs(epochs)
        p = schedule.params
        if p.get("gamma", 0) > 1:
            peak = epochs - 1
        elif p.get("eta_min", 0) > lr0:
            peak = min(epochs - 1, p["T_max"])
        else:
            peak = 0
        limit = float(limit)  # a NumPy float32 limit would compare in float32
        above = lambda e: not schedule.learning_rate(lr0, e) <= limit  # noqa: E731 - also NaN
        if not above(peak):
            return None
        first, last = 0, peak  # the first epoch above lies in first..last (ints of any size, unlike a range's)
        while first < last:
            middle = (first + last) // 2
            first, last = (first, middle) if above(middle) else (middle + 1, last)
        return first

    def spec(self):
        """The spec that parses to this schedule: None, or (name, params)."""
        return None if self.name == "constant" else (self.name, dict(self.params))

    def __eq__(self, other):
        return (isinstance(other, Schedule) and self.name == other.name
                and self.params == other.params)

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.params.items()))))

    def __repr__(self):
        return f"Schedule({self.name!r}, {self.params!r})"


def _angle(e, T_max):
    """pi e / T_max as torch computes it, or, for an e or T_max beyond the float range, as pi
    times (e mod 2 T_max) / T_max, a division of ints (the cosine's period is 2 T_max)."""
    if max(e, T_max) < 2**1000:
        return math.pi * e / T_max
    return math.pi * ((e % (2 * T_max)) / T_max)


def _times_power(lr0, gamma, k):
    """lr0 gamma^k for lr0 >= 0, gamma > 0, k >= 0: inf where it is beyond the float range."""
    if lr0 == 0:
        return 0.0
    try:
        power = gamma ** k
    except OverflowError:  # gamma^k (or k itself) is beyond the float range
        power = math.inf
    if sys.float_info.min <= power < math.inf:
        return lr0 * power
    # gamma^k alone is beyond the float range or below its normal numbers (0 or imprecise), lr0 gamma^k
    # may not be: in logs. Any k past 2^64 gives what 2^64 does: |log gamma| > 1e-16 for every float gamma != 1
    log_rate = math.log(lr0) + min(k, 2**64) * math.log(gamma)
    return math.exp(log_rate) if log_rate < _LOG_LARGEST else math.inf


def parse_schedule(spec):
    """Check a schedule spec and fill in its defaults.

    spec: None; a name "step", "exponential", "cosine" (every default); a pair
    (name, params) with params a dict of some of that schedule's parameters
    (or None); or a Schedule (a copy, its name and params checked again: they may have
    been changed since it was made).
        step: step_size an integer >= 1, gamma a finite number > 0;
        exponential: gamma a finite number > 0;
        cosine: T_max an integer >= 1 or None (the fit's epochs), eta_min a finite number >= 0.
    Returns a Schedule. Raises ValueError on an unknown name, an unknown
    parameter or a value out of range, TypeError on a spec of another form.
    """
    if isinstance(spec, Schedule):
        return type(spec)(spec.name, spec.params)
    if spec is None:
        return Schedule("constant")
    name, params = name_and_params(spec, "a schedule (or None)", "('step', {'step_size': 10, 'gamma': 0.5})")
    if name not in _NAMED:
        raise ValueError(f"unknown schedule {name!r}; expected None or one of {', '.join(_NAMED)}")
    return Schedule(name, params)


def _checked_params(name, params):
    """The params of schedule `name` (a dict of some of them, or None) with every default filled
    in, each checked (see parse_schedule)."""
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"the params of schedule {name!r} must be a dict or None; got {params!r}")
    defaults = SCHEDULES[name]
    unknown = sorted(map(str, set(params) - set(defaults)))
    if unknown:
        raise ValueError(f"schedule {name!r} takes the parameters {list(defaults)}; got {unknown}")
    params = {**defaults, **params}
    for key in ("step_size", "T_max"):
        if key in params and not (key == "T_max" and params[key] is None):
            value = params[key]
            if not is_integer(value) or value < 1:
                raise ValueError(f"{key} of schedule {name!r} must be an integer >= 1"
                                 f"{' or None' if key == 'T_max' else ''}; got {value!r}")
            params[key] = int(value)
    if "gamma" in params:
        value = params["gamma"]
        if not is_real(value) or value <= 0:
            raise ValueError(f"gamma of schedule {name!r} must be a finite number > 0; got {value!r}")
        params["gamma"] = float(value)
    if "eta_min" in params:
        value = params["eta_min"]
        if not is_real(value) or value < 0:
            raise ValueError(f"eta_min of schedule {name!r} must be a finite number >= 0; got {value!r}")
        params["eta_min"] = float(value)
    return params


def learning_rate(spec, lr0, epoch):
    """The learning rate of epoch ``epoch`` (0-based) under the schedule spec, base rate lr0."""
    return parse_schedule(spec).learning_rate(lr0, epoch)


def learning_rates(spec, lr0, epochs):
    """The learning rates of epochs 0..epochs-1 under the schedule spec, base rate lr0; a list."""
    return parse_schedule(spec).learning_rates(lr0, epochs)
