"""mlpcore.schedules: parsing of a schedule spec and the learning rate of each epoch.

Hand-computed values always; torch.optim.lr_scheduler's StepLR, ExponentialLR and
CosineAnnealingLR when torch is installed.
"""

import math
import warnings

import numpy as np
import pytest

import mlpcore
from mlpcore import schedules
from mlpcore.datasets import two_spirals
from mlpcore.schedules import SCHEDULES, Schedule, learning_rate, learning_rates, parse_schedule


def test_constant():
    assert learning_rates(None, 0.1, 4) == [0.1] * 4
    assert parse_schedule(None) == Schedule("constant", {})
    assert parse_schedule(None).spec() is None


def test_step_hand_values():
    spec = ("step", {"step_size": 2, "gamma": 0.5})
    assert learning_rates(spec, 0.1, 7) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125],
                                                         rel=1e-15)
    # the defaults: step_size 10, gamma 0.5
    assert learning_rate("step", 1.0, 9) == 1.0
    assert learning_rate("step", 1.0, 10) == 0.5
    assert learning_rate(("step", {}), 1.0, 25) == 0.25
    assert learning_rate(("step", {"gamma": 0.1}), 2.0, 10) == pytest.approx(0.2, rel=1e-15)


def test_exponential_hand_values():
    assert learning_rates(("exponential", {"gamma": 0.5}), 1.0, 4) == [1.0, 0.5, 0.25, 0.125]
    assert learning_rate("exponential", 1.0, 2) == pytest.approx(0.95 ** 2, rel=1e-15)


def test_cosine_hand_values():
    spec = ("cosine", {"T_max": 4, "eta_min": 0.1})
    expected = [1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55,
                0.1 + 0.9 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.1,
                0.1 + 0.9 * (1 + math.cos(5 * math.pi / 4)) / 2, 0.55]
    assert learning_rates(spec, 1.0, 7) == pytest.approx(expected, rel=1e-15, abs=1e-16)
    # defaults: T_max the epochs (here 50: the middle epoch 25 at half), eta_min 0
    assert learning_rates("cosine", 1.0, 50)[25] == pytest.approx(0.5, rel=1e-15)
    assert learning_rate(("cosine", {"T_max": 10}), 0.2, 10) == pytest.approx(0.0, abs=1e-17)


def test_a_cosine_without_T_max_anneals_once_over_the_fits_epochs():
    """"cosine" alone: T_max is the fit's epochs, from lr0 at epoch 0 down towards eta_min at the
    last (a fixed default of 50 took a 120-epoch fit to 0 at epoch 50 and back up to lr0)."""
    net = mlpcore.Network([2, 3, 1], ["tanh", "sigmoid"], "bce", seed=0)
    X, y = np.random.default_rng(0).standard_normal((2, 8)), np.arange(8) % 2
    history = net.fit(X, y, epochs=120, batch_size=None, learning_rate=0.1, schedule="cosine", verbose=0)
    expected = [0.1 * (1 + math.cos(math.pi * e / 120)) / 2 for e in range(120)]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-12, atol=0)
    assert min(history["learning_rate"]) == history["learning_rate"][-1] > 0
    cosine = parse_schedule("cosine")
    assert cosine.params == {"T_max": None, "eta_min": 0.0}
    assert cosine.for_epochs(7) == parse_schedule(("cosine", {"T_max": 7}))
    assert parse_schedule(("cosine", {"T_max": 3})).for_epochs(7).params["T_max"] == 3  # given: kept
    assert parse_schedule("step").for_epochs(7) == parse_schedule("step")
    with pytest.raises(ValueError, match=r"T_max is None, the epochs of the fit it is used in"):
        cosine.learning_rate(0.1, 3)
    for epochs in (0, 2.5):
        with pytest.raises(ValueError, match=r"epochs must be an integer >= 1"):
            cosine.for_epochs(epochs)
    with pytest.raises(ValueError, match=r"T_max of schedule 'cosine' must be an integer >= 1 or None; got 'x'"):
        parse_schedule(("cosine", {"T_max": "x"}))


def test_parse_fills_in_defaults_and_is_idempotent():
    schedule = parse_schedule(("cosine", {"T_max": 5}))
    assert schedule.name == "cosine" and schedule.params == {"T_max": 5, "eta_min": 0.0}
    assert parse_schedule(schedule) == schedule and parse_schedule(schedule) is not schedule  # checked again
    assert parse_schedule(schedule.spec()) == schedule
    assert parse_schedule(["step", None]) == parse_schedule("step")
    assert parse_schedule(("step", {"step_size": np.int64(3), "gamma": np.float32(0.5)})).params == \
        {"step_size": 3, "gamma": 0.5}
    assert set(schedules.SCHEDULES) == {"constant", "step", "exponential", "cosine"}
    assert "step" in repr(parse_schedule("step"))


@pytest.mark.parametrize("spec, error, pattern", [
    ("linear", ValueError, "linear"),
    (("Step", {}), ValueError, "Step"),
    ("constant", ValueError, "constant"),
    (("step", {"step": 2}), ValueError, "step"),
    (("exponential", {"gamma": 0.9, "T_max": 3}), ValueError, "T_max"),
    (("cosine", {"eta_max": 0.1}), ValueError, "eta_max"),
    (("step", {"step_size": 0}), ValueError, "step_size"),
    (("step", {"step_size": 2.5}), ValueError, "step_size"),
    (("step", {"step_size": True}), ValueError, "step_size"),
    (("step", {"gamma": -0.5}), ValueError, "gamma"),
    (("step", {"gamma": 0.0}), ValueError, "gamma"),
    (("exponential", {"gamma": float("nan")}), ValueError, "gamma"),
    (("exponential", {"gamma": "0.9"}), ValueError, "gamma"),
    (("cosine", {"T_max": 0}), ValueError, "T_max"),
    (("cosine", {"eta_min": -1e-3}), ValueError, "eta_min"),
    (("cosine", {"eta_min": float("inf")}), ValueError, "eta_min"),
    (("step", {"step_size": 2}, 3), TypeError, "schedule"),
    (("step", [2, 0.5]), TypeError, "dict"),
    ((3, {}), TypeError, "name"),
    (0.5, TypeError, "schedule"),
])
def test_parse_refuses(spec, error, pattern):
    with pytest.raises(error, match=pattern):
        parse_schedule(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and spec[0] in SCHEDULES:
        with pytest.raises(error, match=pattern):  # the same checks when made directly
            Schedule(*spec)


def test_a_schedule_made_directly_fills_in_its_defaults():
    assert Schedule("step") == parse_schedule("step") == Schedule("step", {"step_size": 10})
    assert Schedule("constant") == parse_schedule(None)
    assert eval(repr(Schedule("cosine", {"T_max": 3})), {"Schedule": Schedule}) == Schedule("cosine", {"T_max": 3})
    for name in ("bogus", None):
        with pytest.raises(ValueError, match=rf"unknown schedule {name!r}; expected one of constant, step, "
                                             r"exponential, cosine$"):
            Schedule(name, {})


def test_rates_of_epochs_and_periods_beyond_the_float_range():
    """The cosine's angle pi e / T_max, taken of ints beyond the float range as pi ((e mod 2 T_max) / T_max)."""
    cosine = parse_schedule(("cosine", {"T_max": 50, "eta_min": 0.0}))
    assert cosine.learning_rate(0.1, 10**400) == cosine.learning_rate(0.1, 0) == 0.1  # 10^400 = 0 mod 100
    assert cosine.learning_rate(0.1, 10**400 + 50) == pytest.approx(0.0, abs=1e-17)
    assert parse_schedule(("cosine", {"T_max": 10**400, "eta_min": 1.0})).learning_rate(0.1, 3) == pytest.approx(0.1)
    assert parse_schedule(("exponential", {"gamma": 0.5})).learning_rate(1.0, 10**400) == 0.0
    assert parse_schedule(("exponential", {"gamma": 2.0})).learning_rate(1.0, 10**400) == math.inf
    assert parse_schedule(("step", {"gamma": 2.0})).first_epoch_above(1.0, 10**400, 3.4e38) == 1280


def test_a_schedule_whose_params_were_changed_is_checked_again_and_its_fit_refused():
    """A Schedule's params are a dict, which can be changed after it was checked: fit checks them
    again, before anything changes."""
    schedule = parse_schedule(("exponential", {"gamma": 0.5}))
    schedule.params["gamma"] = -1.0
    with pytest.raises(ValueError, match=r"gamma of schedule 'exponential' must be a finite number > 0; got -1\.0"):
        parse_schedule(schedule)
    X, labels = two_spirals(m=32, noise=0.02)
    net = mlpcore.Network([2, 4, 1], ["tanh", "sigmoid"], "bce", seed=0)
    before = np.array(net.params)
    with pytest.raises(ValueError, match="gamma of schedule 'exponential'"):
        net.fit(X, labels, epochs=4, learning_rate=0.5, schedule=schedule, verbose=0)
    np.testing.assert_array_equal(net.params, before)
    assert net.history is None


def test_learning_rate_refuses_bad_epochs_and_rates():
    schedule = parse_schedule("step")
    for epoch in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"epoch must be an integer >= 0 \(0-based\); got"):
            schedule.learning_rate(0.1, epoch)
    for lr0 in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate"):
            schedule.learning_rate(lr0, 0)
    with pytest.raises(ValueError, match="epochs"):
        schedule.learning_rates(0.1, -2)
    assert schedule.learning_rates(0.1, 0) == []



def test_rates_beyond_the_float_range_are_inf_never_overflow_error():
    """gamma^e alone may overflow where lr0 gamma^e does not (computed then in logarithms)."""
    exponential = parse_schedule(("exponential", {"gamma": 1e10}))
    assert exponential.learning_rate(0.01, 31) == pytest.approx(1e308, rel=1e-12)
    assert exponential.learning_rate(0.01, 32) == math.inf
    assert exponential.learning_rate(1e-300, 40) == pytest.approx(1e100, rel=1e-12)
    assert exponential.learning_rate(0.0, 40) == 0.0
    assert learning_rate(("step", {"step_size": 1, "gamma": 2}), 1.0, 5000) == math.inf
    # a cosine towards the largest floats stays finite and between lr0 and eta_min
    rates = learning_rates(("cosine", {"T_max": 4, "eta_min": 1.7e308}), 0.0, 9)
    assert all(0 <= rate <= 1.7e308 for rate in rates) and rates[4] == 1.7e308


def test_rates_whose_gamma_power_underflows_are_not_zero():
    """gamma^e alone may underflow (to 0, or to an imprecise subnormal) where lr0 gamma^e does not."""
    near = lambda rate: pytest.approx(rate, rel=1e-12, abs=0)  # noqa: E731 - not 0 (approx's default abs)
    assert learning_rate(("exponential", {"gamma": 1e-10}), 1e300, 35) == near(1e-50)
    assert learning_rate(("step", {"step_size": 2, "gamma": 1e-10}), 1e300, 70) == near(1e-50)
    assert learning_rate(("exponential", {"gamma": 0.5}), 2.0 ** 1000, 2000) == near(2.0 ** -1000)
    assert learning_rate(("exponential", {"gamma": 0.5}), 1.0, 2000) == 0.0  # 2^-2000 is below every float
    assert learning_rate(("exponential", {"gamma": 1e-10}), 0.0, 35) == 0.0


FLOAT32_LARGEST = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("spec", [None, ("step", {"step_size": 3, "gamma": 0.5}),
                                  ("step", {"step_size": 3, "gamma": 4}), ("exponential", {"gamma": 1.5}),
                                  ("exponential", {"gamma": 0.9}), ("cosine", {"T_max": 7, "eta_min": 5.0}),
                                  ("cosine", {"T_max": 7})], ids=str)
@pytest.mark.parametrize("limit", [0.5, 2.0, 100.0, 1e6])
def test_first_epoch_above_is_that_of_the_rates_one_by_one(spec, limit):
    """Bisection finds what a look at every rate finds, for rates that fall, rise, or rise and fall."""
    rates = learning_rates(spec, 1.0, 30)
    expected = next((epoch for epoch, rate in enumerate(rates) if rate > limit), None)
    assert parse_schedule(spec).first_epoch_above(1.0, 30, limit) == expected


def test_first_epoch_above_bisects_over_many_epochs():
    """The first of 10^9 epochs whose rate float32 cannot hold, without computing them all."""
    schedule = parse_schedule(("step", {"step_size": 3, "gamma": 2}))
    assert schedule.first_epoch_above(1.0, 10**9, FLOAT32_LARGEST) == 3 * 128  # 2^128 > 3.4e38 > 2^127
    assert schedule.first_epoch_above(1.0, 3 * 128, FLOAT32_LARGEST) is None
    with pytest.raises(ValueError, match="epochs"):
        schedule.first_epoch_above(1.0, 0, FLOAT32_LARGEST)

TORCH_SCHEDULES = [
    (("step", {"step_size": 3, "gamma": 0.3}), "StepLR", {"step_size": 3, "gamma": 0.3}),
    (("step", {"step_size": 1, "gamma": 0.5}), "StepLR", {"step_size": 1, "gamma": 0.5}),
    ("step", "StepLR", {"step_size": 10, "gamma": 0.5}),
    (("exponential", {"gamma": 0.9}), "ExponentialLR", {"gamma": 0.9}),
    ("exponential", "ExponentialLR", {"gamma": 0.95}),
    (("cosine", {"T_max": 10, "eta_min": 0.001}), "CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
    (("cosine", {"T_max": 7}), "CosineAnnealingLR", {"T_max": 7, "eta_min": 0.0}),
    ("cosine", "CosineAnnealingLR", {"T_max": 60, "eta_min": 0.0}),  # T_max None: the 60 epochs below
]


@pytest.mark.parametrize("spec, torch_name, torch_params", TORCH_SCHEDULES,
                         ids=[f"{case[1]}-{i}" for i, case in enumerate(TORCH_SCHEDULES)])
def test_matches_torch_lr_scheduler(spec, torch_name, torch_params):
    """The rate of epochs 0..59 (past T_max for the cosines), stepped once per epoch as in torch."""
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch cross-checks need it")
    lr0 = 0.05
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    scheduler = getattr(torch.optim.lr_scheduler, torch_name)(optimizer, **torch_params)
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(60):
            expected.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    # torch's cosine is recursive: it agrees with the closed form up to rounding
    np.testing.assert_allclose(learning_rates(spec, lr0, 60), expected, rtol=1e-9, atol=1e-15)
