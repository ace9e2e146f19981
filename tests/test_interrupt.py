"""Ctrl-C (SIGINT) and fit: a fit on Python's main thread stops after the current step and
leaves Python's own handling of Ctrl-C as it was; a fit on another thread leaves Ctrl-C to the
main thread's."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import mlpcore

def spirals_net():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 256))
    y = (X[0] * X[1] > 0).astype(np.int64)
    return mlpcore.Network([2, 16, 2], ["tanh", "softmax"], "cce", seed=0), X, y


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def ctrl_c_at_step(k, steps):
    """A gradient hook that counts the steps into the list `steps` and sends Ctrl-C at step k."""
    def hook(g):
        steps.append(1)
        if len(steps) == k:
            ctrl_c()
    return hook


@pytest.fixture
def python_handles_ctrl_c():
    """Python's own handler of SIGINT for the test: a process started with SIGINT ignored (as
    a shell without job control starts one in the background) has none, and keeps ignoring it."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_fit_after_the_current_step(python_handles_ctrl_c):
    net, X, y = spirals_net()
    steps = []
    history = net.fit(X, y, epochs=3, batch_size=16, gradient_hook=ctrl_c_at_step(5, steps), verbose=0)
    assert len(steps) == 5 and len(history["cost"]) == 1


def test_a_fit_on_another_thread_leaves_the_main_threads_ctrl_c_alone(python_handles_ctrl_c):
    """A fit started on another thread while the main thread's fit has a Ctrl-C to see neither
    clears it nor stops at it."""
    net, X, y = spirals_net()
    other, X_other, y_other = spirals_net()
    steps, other_epochs = [], []

    def fit_the_other():
        other_epochs.append(len(other.fit(X_other, y_other, epochs=4, batch_size=16, verbose=0)["cost"]))

    def hook(g):
        steps.append(1)
        if len(steps) == 5:
            ctrl_c()
            thread = threading.Thread(target=fit_the_other)
            thread.start()
            thread.join()
    history = net.fit(X, y, epochs=3, batch_size=16, gradient_hook=hook, verbose=0)
    assert other_epochs == [4]
    assert len(steps) == 5 and len(history["cost"]) == 1


def test_after_fit_ctrl_c_still_ends_a_blocking_read(python_handles_ctrl_c):
    """Python's handler comes back with its own flags: a read blocked on a pipe ends at Ctrl-C
    with KeyboardInterrupt, instead of being restarted until data comes (5 s here)."""
    net, X, y = spirals_net()
    net.fit(X, y, epochs=1, batch_size=16, verbose=0)
    read_end, write_end = os.pipe()
    threading.Timer(0.2, ctrl_c).start()
    written = []
    writer = threading.Timer(5.0, lambda: written.append(os.write(write_end, b"x")))
    writer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.read(read_end, 1)
        writer.cancel()
        writer.join()
        assert written == []  # the read ended at Ctrl-C, not when the writer's byte came
    finally:
        writer.cancel()
        writer.join()
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("handler", ["ignored", "the_programs_own"])
def test_a_fit_leaves_a_ctrl_c_that_python_does_not_handle_itself_to_its_handler(handler):
    """fit takes Ctrl-C over only from Python's default handler. An ignored SIGINT (a process that
    a shell without job control started in the background) stays ignored; a program's own handler
    is called (once the step hands back to Python) and decides. The fit trains on either way, and
    the handler is the same after it."""
    calls = []
    given = signal.SIG_IGN if handler == "ignored" else (lambda signum, frame: calls.append(signum))
    before = signal.signal(signal.SIGINT, given)
    try:
        net, X, y = spirals_net()
        steps = []
        history = net.fit(X, y, epochs=2, batch_size=16, gradient_hook=ctrl_c_at_step(5, steps), verbose=0)
        assert len(history["cost"]) == 2 and len(steps) == 2 * 256 // 16
        assert calls == ([] if handler == "ignored" else [signal.SIGINT])
        assert signal.getsignal(signal.SIGINT) is given
    finally:
        signal.signal(signal.SIGINT, before)


def test_callbacks_are_told_of_an_epoch_that_ctrl_c_cut_short(python_handles_ctrl_c):
    net, X, y = spirals_net()
    told = []
    history = net.fit(X, y, epochs=3, batch_size=16, gradient_hook=ctrl_c_at_step(20, []), verbose=0,
                      callbacks=[lambda epoch, logs: told.append(dict(logs))])
    assert [logs.get("interrupted") for logs in told] == [None, True]  # 16 steps an epoch
    assert "interrupted" not in history and len(history["cost"]) == 2


def test_a_ctrl_c_in_an_estimators_fit_warns_and_does_not_count_its_epoch_as_sklearn(python_handles_ctrl_c,
                                                                                     monkeypatch):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install '.[sklearn]')")
    import mlpcore.sklearn as sklearn
    net, X, y = spirals_net()
    fit = mlpcore.Network.fit
    monkeypatch.setattr(mlpcore.Network, "fit",
                        lambda self, *args, **kwargs: fit(self, *args, gradient_hook=ctrl_c_at_step(20, []), **kwargs))
    clf = sklearn.MLPClassifier(hidden_layer_sizes=(8,), batch_size=16, max_iter=5, random_state=0)
    with pytest.warns(UserWarning, match="^Training interrupted by user.$"):
        clf.fit(X.T, y)
    assert clf.n_iter_ == 1 and clf.t_ == 256 and len(clf.loss_curve_) == 1
    assert clf.network_.optimizer.t == 20  # the steps taken are kept


def test_a_ctrl_c_between_an_estimators_epochs_warns_as_sklearn(monkeypatch):
    """Ctrl-C while the wrapper scores an epoch (Network.fit then stops quietly between epochs)."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install '.[sklearn]')")
    import mlpcore.sklearn as sklearn
    net, X, y = spirals_net()
    after_epoch, calls = sklearn.MLPClassifier._after_epoch, []

    def interrupted_in_the_second(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return after_epoch(self, *args)
    monkeypatch.setattr(sklearn.MLPClassifier, "_after_epoch", interrupted_in_the_second)
    clf = sklearn.MLPClassifier(hidden_layer_sizes=(8,), batch_size=16, max_iter=5, random_state=0)
    with pytest.warns(UserWarning, match="^Training interrupted by user.$"):
        clf.fit(X.T, y)
    assert clf.n_iter_ == 1 and clf.network_.optimizer.t == 32


def test_ctrl_c_while_the_steps_check_X_checks_the_rest(python_handles_ctrl_c, restore_threads):
    """Plain SGD's steps into the products check their own columns of X (see Network.fit): an
    epoch that Ctrl-C ends early (sent here from another thread once a step is in) checks the
    columns it did not reach, and refuses the NaN in X's last column with the network as it was.
    On one thread, which leaves a core to the thread that sends Ctrl-C; a Ctrl-C too late to stop
    the 640-step epoch early (there, or after fit, as a KeyboardInterrupt) is tried again."""
    mlpcore.set_num_threads(1)
    net = mlpcore.Network([64, 128, 64, 4], ["relu", "relu", "softmax"], "cce", dtype="float32", seed=5)
    rng = np.random.default_rng(6)
    X = np.asfortranarray(rng.standard_normal((64, 64 * 640)), np.float32)
    X[0, -1] = np.nan
    y = rng.integers(0, 4, X.shape[1])
    before, early = np.array(net.params), []
    for _ in range(5):
        start = mlpcore._core._steps_in_products()

        def ctrl_c_once_a_step_is_in():
            deadline = time.monotonic() + 10
            while mlpcore._core._steps_in_products() == start:
                if time.monotonic() > deadline:
                    return
                time.sleep(0)
            ctrl_c()

        sender = threading.Thread(target=ctrl_c_once_a_step_is_in)
        sender.start()
        try:
            with pytest.raises(ValueError, match="^X contains NaN or inf$"):
                net.fit(X, y, epochs=1, batch_size=64, optimizer="sgd", learning_rate=0.01, shuffle=False, verbose=0)
            sender.join()
        except KeyboardInterrupt:  # came after the epoch
            sender.join()
            early.append(False)
            continue
        np.testing.assert_array_equal(net.params, before)
        assert net.optimizer is None and net.history is None
        early.append(mlpcore._core._steps_in_products() - start < 639)
        if early[-1]:
            break
    assert early[-1]
