"""The command line: demo, train, predict, info, and its one-line errors.

Most tests call mlpcore.cli.main(argv) in this process and read what it printed; a few run
``python -m mlpcore`` as a user would, in a subprocess with this process's environment.
"""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mlpcore
from mlpcore.cli import main


def run(argv, capsys):
    """main(argv): (exit status, stdout, stderr)."""
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *fragments):
    """A non-zero exit and one line on stderr naming every fragment, no traceback."""
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlpcore: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def blobs(m, seed=0):
    """Three separable clouds in 3 features: X (m, 3) and string labels a, b, c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=m)
    centres = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    return centres[y] + 0.5 * rng.standard_normal((m, 3)), np.array(["a", "b", "c"])[y]


@pytest.fixture
def species_csv(tmp_path):
    """A classification file: features x1, x2, x3, a string target 'species' in the middle, and
    a constant column; 300 examples."""
    X, labels = blobs(300)
    rows = [[f"{a:.4f}", f"{b:.4f}", label, f"{c:.4f}", "7"] for (a, b, c), label in zip(X, labels)]
    return write_csv(tmp_path / "species.csv", ["x1", "x2", "species", "x3", "constant"], rows)


@pytest.fixture
def regression_csv(tmp_path):
    """y = 3 x1 - 2 x2 + 100 + noise: a float target of a large offset; 400 examples."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(400, 2))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 100 + 0.01 * rng.standard_normal(400)
    rows = [[f"{a:.5f}", f"{b:.5f}", f"{t:.5f}"] for (a, b), t in zip(X, y)]
    return write_csv(tmp_path / "regression.csv", ["x1", "x2", "y"], rows)


def train_args(data, tmp_path, *extra):
    return ["train", data, "--out", str(tmp_path / "model.npz"), *extra]


# ---------------------------------------------------------------------------
# train, predict, info
# ---------------------------------------------------------------------------

def test_train_classifies_a_string_target_and_saves_what_predict_needs(species_csv, tmp_path, capsys):
    status, out, err = run(train_args(species_csv, tmp_path, "--target", "species", "--layers", "16",
                                      "--epochs", "20"), capsys)
    assert status == 0, err
    assert "classification, 3 classes: a, b, c" in out
    assert "240 to train, 60 held out" in out
    assert float(re.search(r"validation accuracy (\d\.\d+) \(60 examples\)", out).group(1)) > 0.95
    assert "epoch" in err  # the progress bar
    net = mlpcore.load(tmp_path / "model.npz")
    assert list(net.n) == [4, 16, 3] and net.cost_name == "cce"
    assert net.metadata["feature_names"] == ["x1", "x2", "x3", "constant"]
    assert net.metadata["classes"] == ["a", "b", "c"]
    assert net.metadata["target"] == "species" and net.metadata["task"] == "classify"
    assert len(net.metadata["mean"]) == len(net.metadata["scale"]) == 4
    assert net.metadata["scale"][3] == 1.0  # the constant column is not divided by 0
    assert len(net.history["cost"]) == 20


def test_predict_picks_the_features_by_name_and_writes_class_labels(species_csv, tmp_path, capsys):
    run(train_args(species_csv, tmp_path, "--target", "species", "--layers", "16", "--epochs", "20"), capsys)
    # The training file itself, its target column included, with the columns in another order.
    header, rows = read_csv(species_csv)
    order = [4, 2, 3, 1, 0]
    shuffled = write_csv(tmp_path / "shuffled.csv", [header[i] for i in order], [[r[i] for i in order] for r in rows])
    out_path = tmp_path / "predictions.csv"
    status, out, err = run(["predict", str(tmp_path / "model.npz"), shuffled, "--out", str(out_path)], capsys)
    assert status == 0, err
    assert "wrote 300 predictions" in out
    predicted_header, predicted = read_csv(out_path)
    assert predicted_header == ["species"]
    truth = [row[2] for row in rows]
    assert np.mean([p[0] == t for p, t in zip(predicted, truth)]) > 0.95

    status, out, _ = run(["predict", str(tmp_path / "model.npz"), species_csv], capsys)
    assert status == 0
    assert out.splitlines()[0] == "species"
    assert out.splitlines()[1:] == [p[0] for p in predicted]


def test_train_regresses_a_float_target_in_its_own_units(regression_csv, tmp_path, capsys):
    status, out, err = run(train_args(regression_csv, tmp_path, "--target", "y", "--layers", "32",
                                      "--epochs", "40", "--learning-rate", "0.01", "--seed", "3"), capsys)
    assert status == 0, err
    assert "(regression)" in out
    assert float(re.search(r"validation R\^2 (\d\.\d+)", out).group(1)) > 0.98
    net = mlpcore.load(tmp_path / "model.npz")
    assert net.cost_name == "mse" and net.activations[-1][0] == "identity"
    assert net.metadata["task"] == "regress" and "classes" not in net.metadata
    assert abs(net.metadata["target_mean"] - 100) < 0.5

    status, out, _ = run(["predict", str(tmp_path / "model.npz"), regression_csv], capsys)
    assert status == 0
    predicted = np.array([float(value) for value in out.splitlines()[1:]])
    _, rows = read_csv(regression_csv)
    truth = np.array([float(row[2]) for row in rows])
    assert np.max(np.abs(predicted - truth)) < 0.5  # in the target's units, around 100


@pytest.mark.parametrize("values, task, output", [
    (list(range(20)), "classify, 20 classes", "softmax"),       # 20 distinct integers: classes
    (list(range(21)), "regression", "identity"),                # 21: a quantity
    ([0.5, 1.5], "regression", "identity"),                     # not integers
    ([0, 1], "classify, 2 classes", "sigmoid"),                 # binary: one sigmoid unit
])
def test_without_task_the_target_decides(values, task, output, tmp_path, capsys):
    rows = [[str(i), str(values[i % len(values)])] for i in range(60)]
    data = write_csv(tmp_path / "data.csv", ["x", "t"], rows)
    status, out, err = run(train_args(data, tmp_path, "--target", "t", "--epochs", "1", "--layers", "4"), capsys)
    assert status == 0, err
    assert task.replace("classify", "classification") in out
    assert mlpcore.load(tmp_path / "model.npz").activations[-1][0] == output


def test_task_option_overrides_the_guess(tmp_path, capsys):
    rows = [[str(i), str(i % 3)] for i in range(30)]
    data = write_csv(tmp_path / "data.csv", ["x", "t"], rows)
    status, out, _ = run(train_args(data, tmp_path, "--target", "t", "--task", "regress", "--epochs", "1"), capsys)
    assert status == 0 and "(regression)" in out


def test_no_hidden_layer_and_no_validation(species_csv, tmp_path, capsys):
    status, out, err = run(train_args(species_csv, tmp_path, "--target", "species", "--layers", "",
                                      "--validation-fraction", "0", "--epochs", "2"), capsys)
    assert status == 0, err
    assert "300 to train, 0 held out" in out
    assert "training accuracy" in out and "validation" not in out
    assert list(mlpcore.load(tmp_path / "model.npz").n) == [4, 3]


def test_info_describes_architecture_parameters_and_history(species_csv, tmp_path, capsys):
    run(train_args(species_csv, tmp_path, "--target", "species", "--layers", "8,5", "--epochs", "3"), capsys)
    status, out, err = run(["info", str(tmp_path / "model.npz")], capsys)
    assert status == 0, err
    assert "layer 1: 8 units, relu, W[1] (8, 4), b[1] (8, 1)" in out
    assert "layer 3: 3 units, softmax" in out
    assert f"parameters: {8 * 4 + 8 + 5 * 8 + 5 + 3 * 5 + 3}" in out
    assert "to predict 'species'" in out and "x1, x2, x3, constant" in out
    assert re.search(r"history: 3 epochs in [\d.]+ s; last epoch: cost [\d.]+, val_cost [\d.]+, val_accuracy", out)


@pytest.mark.parametrize("history, line", [
    ({"cost": [None]}, "history: none (not trained with fit)"),
    ({"cost": {"a": 1}}, "history: none (not trained with fit)"),
    ({"cost": [0.5, 0.25], "time": "abc"}, "history: 2 epochs; last epoch: cost 0.25"),
    ({"cost": [0.5], "val_cost": [None], "time": [1.5, True]}, "history: 1 epochs; last epoch: cost 0.5"),
], ids=["none-cost", "dict-cost", "str-time", "odd-entries"])
def test_info_describes_a_history_that_python_set_to_anything(tmp_path, capsys, history, line):
    """net.history is saved as it is (any JSON): info leaves out what is not a list of numbers."""
    net = mlpcore.Network([3, 1], ["sigmoid"], "bce", seed=0)
    net.history = history
    net.save(tmp_path / "odd.npz")
    status, out, err = run(["info", str(tmp_path / "odd.npz")], capsys)
    assert status == 0, err
    assert line in out


def test_a_network_saved_from_python_is_predicted_and_described(tmp_path, capsys):
    net = mlpcore.Network([2, 3, 2], ["tanh", "identity"], "mse", seed=0, batch_norm=[True, False], dropout=[0.25])
    net.save(tmp_path / "plain.npz")
    data = write_csv(tmp_path / "data.csv", ["u", "v"], [["1", "2"], ["3", "4"]])
    status, out, err = run(["predict", str(tmp_path / "plain.npz"), data], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "prediction_1,prediction_2"
    expected = net.predict(np.array([[1.0, 3.0], [2.0, 4.0]]))
    np.testing.assert_allclose([[float(v) for v in line.split(",")] for line in lines[1:]], expected.T, rtol=1e-5)
    status, out, _ = run(["info", str(tmp_path / "plain.npz")], capsys)
    assert status == 0
    assert "layer 1: 3 units, tanh, W[1] (3, 2), b[1] (3, 1), batch norm, dropout 0.25" in out
    assert "history: none" in out and f"parameters: {2 * 3 + 3 + 3 + 3 + 3 * 2 + 2}" in out


# ---------------------------------------------------------------------------
# errors: one line on stderr, a non-zero exit
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("metadata, fragment", [
    ({"task": "classify", "classes": ["a"]}, "does not hold what train saves"),
    ({"task": "regress"}, "does not hold what train saves"),
    ({"task": "classify", "target": "kind", "feature_names": ["u", "v", "w"], "mean": [0, 0, 0],
      "scale": [1, 1, 1], "classes": ["a", "b"]}, "does not hold what train saves")])
def test_predict_and_info_check_the_metadata_of_train(metadata, fragment, tmp_path, capsys):
    """Metadata that says mlpcore train made the model must fit its network (a bce net of two
    outputs is multi-label, not two classes); any other metadata is not the command line's."""
    net = mlpcore.Network([3, 4, 2], ["relu", "sigmoid"], "bce", seed=0)
    data = write_csv(tmp_path / "x.csv", ["u", "v", "w"], [["1", "2", "3"], ["4", "5", "6"]])
    net.save(tmp_path / "model.npz", metadata=metadata)
    for command in (["predict", str(tmp_path / "model.npz"), data], ["info", str(tmp_path / "model.npz")]):
        assert_one_line_error(*run(command, capsys)[::2], fragment)
    net.save(tmp_path / "own.npz", metadata={"classes": ["a", "b"], "purpose": "sentiment"})
    status, out, err = run(["predict", str(tmp_path / "own.npz"), data], capsys)
    assert status == 0, err
    assert out.splitlines()[0] == "prediction_1,prediction_2" and len(out.splitlines()) == 3
    assert run(["info", str(tmp_path / "own.npz")], capsys)[0] == 0


@pytest.mark.parametrize("output, metadata", [
    (("sigmoid", "bce"), {"task": "classify", "scale": [1, 0], "classes": ["a", "b"]}),  # would divide by 0
    (("sigmoid", "bce"), {"task": "classify", "classes": [[1, 2], [3, 4]]}),  # labels: strings or numbers
    (("identity", "mse"), {"task": "regress", "target_mean": 0.0, "target_scale": []}),  # one number each
    (("identity", "mse"), {"task": "regress", "target_mean": 0.0, "target_scale": [1.0, 2.0]}),
    (("identity", "mse"), {"task": "regress", "target_mean": 0.0, "target_scale": "1"})],
    ids=["scale-0", "nested-classes", "target-scale-empty", "target-scale-pair", "target-scale-text"])
def test_predict_and_info_refuse_train_metadata_that_predict_cannot_read(output, metadata, tmp_path, capsys):
    activation, cost = output
    net = mlpcore.Network([2, 3, 1], ["relu", activation], cost, seed=0)
    net.save(tmp_path / "model.npz", metadata={"target": "t", "feature_names": ["u", "v"], "mean": [0, 0],
                                               "scale": [1, 1], **metadata})
    data = write_csv(tmp_path / "x.csv", ["u", "v"], [["1", "2"]])
    for command in (["predict", str(tmp_path / "model.npz"), data], ["info", str(tmp_path / "model.npz")]):
        assert_one_line_error(*run(command, capsys)[::2], "does not hold what train saves")


def test_a_regression_model_predicts_numbers_whatever_else_its_metadata_holds(tmp_path, capsys):
    """The task decides: "classes" beside a regression's metadata is not the command line's."""
    net = mlpcore.Network([2, 3, 1], ["relu", "identity"], "mse", seed=0)
    net.save(tmp_path / "model.npz", metadata={"task": "regress", "target": "t", "feature_names": ["u", "v"],
                                               "mean": [0, 0], "scale": [1, 1], "target_mean": 10.0,
                                               "target_scale": 2.0, "classes": ["x", "y"]})
    data = write_csv(tmp_path / "x.csv", ["u", "v"], [["1", "2"]])
    status, out, err = run(["predict", str(tmp_path / "model.npz"), data], capsys)
    assert status == 0, err
    expected = 10.0 + 2.0 * net.predict(np.array([[1.0], [2.0]]))[0, 0]
    assert out.splitlines()[0] == "t" and float(out.splitlines()[1]) == pytest.approx(expected, rel=1e-6)


def test_whole_number_labels_beyond_float64s_precision_stay_apart(tmp_path, capsys):
    """9007199254740993 is 9007199254740992 in float64: the labels are read as exact integers."""
    labels = ["9007199254740992", "9007199254740993"]
    rows = [[str(i % 2 + 0.1 * i), labels[i % 2]] for i in range(40)]
    data = write_csv(tmp_path / "data.csv", ["x", "label"], rows)
    status, out, err = run(train_args(data, tmp_path, "--target", "label", "--epochs", "1", "--layers", "4"), capsys)
    assert status == 0, err
    assert mlpcore.load(tmp_path / "model.npz").metadata["classes"] == [9007199254740992, 9007199254740993]


def test_missing_files(tmp_path, capsys):
    missing = str(tmp_path / "nothing.csv")
    assert_one_line_error(*run(["train", missing, "--target", "y"], capsys)[::2], "no such file", missing)
    assert_one_line_error(*run(["predict", str(tmp_path / "m.npz"), missing], capsys)[::2], "no such file")
    assert_one_line_error(*run(["info", str(tmp_path / "m.npz")], capsys)[::2], "no such file", "m.npz")


def test_unknown_target_column(species_csv, tmp_path, capsys):
    status, _, err = run(train_args(species_csv, tmp_path, "--target", "colour"), capsys)
    assert_one_line_error(status, err, "no column 'colour'", "x1, x2, species, x3, constant")


def test_non_numeric_feature(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", ["x", "name", "y"], [["1", "2", "0"], ["2", "bob", "1"]])
    status, _, err = run(train_args(data, tmp_path, "--target", "y"), capsys)
    assert_one_line_error(status, err, "'name'", "line 3", "'bob'")


def test_empty_feature_cell(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", ["x", "y"], [["1", "0"], ["", "1"]])
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "y"), capsys)[::2], "'x'", "line 3")


def test_predict_without_a_feature_column(species_csv, tmp_path, capsys):
    run(train_args(species_csv, tmp_path, "--target", "species", "--epochs", "1"), capsys)
    data = write_csv(tmp_path / "data.csv", ["x1", "x3", "constant"], [["1", "2", "7"]])
    status, _, err = run(["predict", str(tmp_path / "model.npz"), data], capsys)
    assert_one_line_error(status, err, "lacks the column(s) 'x2'")


def test_predict_with_the_wrong_width_for_the_model(tmp_path, capsys):
    mlpcore.Network([2, 1], ["sigmoid"], "bce").save(tmp_path / "plain.npz")
    data = write_csv(tmp_path / "data.csv", ["a", "b", "c"], [["1", "2", "3"]])
    status, _, err = run(["predict", str(tmp_path / "plain.npz"), data], capsys)
    assert_one_line_error(status, err, "3 columns", "n[0] = 2")


def test_a_file_that_is_not_a_model(species_csv, capsys):
    assert_one_line_error(*run(["info", species_csv], capsys)[::2], species_csv)


@pytest.mark.parametrize("content, fragment", [
    ("", "is empty"),
    ("x,y\n", "no examples"),
    ("x,y\n1,2\n3\n", "line 3 has 1 fields where the header has 2"),
    ("x,x\n1,2\n", "'x' twice"),
])
def test_malformed_csv(content, fragment, tmp_path, capsys):
    (tmp_path / "data.csv").write_text(content)
    status, _, err = run(train_args(str(tmp_path / "data.csv"), tmp_path, "--target", "y"), capsys)
    assert_one_line_error(status, err, fragment)


def test_target_problems(tmp_path, capsys):
    data = write_csv(tmp_path / "gap.csv", ["x", "kind"], [["1", "a"], ["2", ""], ["3", "b"]])
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "kind"), capsys)[::2],
                          "'kind' is missing ('') on line 3")
    for marker in ("NA", "NaN", "null", "?"):  # a missing-value marker is not a class or a value
        data = write_csv(tmp_path / "na.csv", ["x", "y"], [[str(k), str(k % 2)] for k in range(9)] + [["9", marker]])
        assert_one_line_error(*run(train_args(data, tmp_path, "--target", "y"), capsys)[::2],
                              f"'y' is missing ('{marker}') on line 11")
    rows = [[str(k), str(2.5 * k)] for k in range(60)]
    rows[7][1] = "n.a."
    data = write_csv(tmp_path / "stray.csv", ["x", "y"], rows)
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "y"), capsys)[::2],
                          "'y' holds numbers, but line 9 holds 'n.a.'", "--task classify")
    status, _, err = run(train_args(data, tmp_path, "--target", "y", "--task", "classify"), capsys)
    assert status == 0, err
    data = write_csv(tmp_path / "data.csv", ["x", "kind"], [["1", "a"], ["2", "b"]])
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "kind", "--task", "regress"), capsys)[::2],
                          "'kind'", "'a'")
    data = write_csv(tmp_path / "one.csv", ["x", "kind"], [["1", "a"], ["2", "a"]])
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "kind"), capsys)[::2], "single class")
    data = write_csv(tmp_path / "only.csv", ["kind"], [["a"], ["b"]])
    assert_one_line_error(*run(train_args(data, tmp_path, "--target", "kind"), capsys)[::2], "no feature column")


@pytest.mark.parametrize("argv, fragment", [
    ([], "required"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "data.csv"], "--target"),
    (["train", "data.csv", "--target", "y", "--layers", "64,x"], "64,x"),
    (["train", "data.csv", "--target", "y", "--layers", "64,0"], "64,0"),
    (["train", "data.csv", "--target", "y", "--epochs", "0"], "integer >= 1"),
    (["train", "data.csv", "--target", "y", "--learning-rate", "-1"], "number > 0"),
    (["train", "data.csv", "--target", "y", "--validation-fraction", "1"], "[0, 1)"),
    (["train", "data.csv", "--target", "y", "--task", "cluster"], "invalid choice: 'cluster'"),
    (["train", "data.csv", "--target", "y", "--seed", "-2"], "integer >= 0"),
    (["demo", "--epochs", "ten"], "'ten'"),
])
def test_bad_options(argv, fragment, capsys):
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, fragment, "--help")


def test_validation_share_that_leaves_no_training_examples(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", ["x", "y"], [["1", "0"], ["2", "1"]])
    status, _, err = run(train_args(data, tmp_path, "--target", "y", "--validation-fraction", "0.9"), capsys)
    assert_one_line_error(status, err, "--validation-fraction 0.9")


def test_an_unwritable_output_path(species_csv, tmp_path, capsys):
    out = str(tmp_path / "no such folder" / "model.npz")
    status, _, err = run(["train", species_csv, "--target", "species", "--epochs", "1", "--out", out], capsys)
    assert status != 0
    assert err.strip().splitlines()[-1].startswith("mlpcore: error: ") and "Traceback" not in err


def test_divergence_is_one_line_after_the_progress_bar(regression_csv, tmp_path, capsys):
    status, _, err = run(train_args(regression_csv, tmp_path, "--target", "y", "--learning-rate", "1e30",
                                    "--epochs", "5"), capsys)
    assert status == 1
    assert "NaN or inf" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "model.npz").exists()


# ---------------------------------------------------------------------------
# demo, and the command as a user runs it
# ---------------------------------------------------------------------------

def python_m_mlpcore(*argv, cwd):
    return subprocess.run([sys.executable, "-m", "mlpcore", *argv], capture_output=True, text=True, cwd=cwd,
                          env=os.environ.copy(), timeout=120)


def test_demo_trains_prints_accuracy_and_draws(tmp_path):
    pytest.importorskip("matplotlib", reason="the demo's picture needs matplotlib, which is not installed")
    result = python_m_mlpcore("demo", "--epochs", "30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    accuracy = re.search(r"accuracy (\d\.\d+) on the 800 training points, (\d\.\d+) on 800 new points", result.stdout)
    assert float(accuracy.group(2)) > 0.9
    assert "epoch" in result.stderr  # the progress bar
    assert (tmp_path / "mlpcore-demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib_says_which_extra_and_still_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out_path = tmp_path / "demo.png"
    status, out, _ = run(["demo", "--epochs", "3", "--out", str(out_path)], capsys)
    assert status == 0
    assert re.search(r"accuracy \d\.\d+ on the 800 training points", out)
    assert 'pip install ".[plot]"' in out
    assert not out_path.exists()


def test_errors_reach_the_shell_as_one_line(tmp_path):
    result = python_m_mlpcore("info", "missing.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "mlpcore: error: no such file: missing.npz\n"
    assert result.stdout == ""


def test_predictions_piped_into_a_reader_that_stops_early(tmp_path):
    mlpcore.Network([2, 1], ["identity"], "mse", seed=0).save(tmp_path / "plain.npz")
    (tmp_path / "big.csv").write_text("u,v\n" + "0.5,0.25\n" * 50_000)
    process = subprocess.Popen([sys.executable, "-m", "mlpcore", "predict", "plain.npz", "big.csv"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    assert process.stdout.readline() == b"prediction_1\n"
    process.stdout.close()  # as `| head -1` does
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err == b""


def test_the_command_line_does_not_import_matplotlib():
    code = "import sys, mlpcore, mlpcore.cli, mlpcore.plot; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                            timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("command", ["train", "demo"])
@pytest.mark.parametrize("out, fragment", [("no/model.npz", "does not exist"), (".", "it is a folder"),
                                           ("", "it is a folder")])
def test_an_output_path_that_cannot_be_written_is_refused_before_training(command, out, fragment, species_csv,
                                                                          tmp_path, capsys):
    path = str(tmp_path / out) if out else out
    argv = ["train", species_csv, "--target", "species"] if command == "train" else ["demo", "--epochs", "1"]
    status, stdout, err = run([*argv, "--out", path], capsys)
    assert_one_line_error(status, err, fragment)
    assert "epoch" not in stdout and "accuracy" not in stdout  # refused before any training


def test_an_output_path_that_is_an_input_is_refused_before_anything_is_written(species_csv, tmp_path, capsys):
    """train --out DATA and predict --out DATA or MODEL would overwrite what they read."""
    model = str(tmp_path / "model.npz")
    assert run(["train", species_csv, "--target", "species", "--epochs", "2", "--out", model], capsys)[0] == 0
    data_before, model_before = open(species_csv, "rb").read(), open(model, "rb").read()
    for argv, given in ((["train", species_csv, "--target", "species", "--out", species_csv], species_csv),
                        (["predict", model, species_csv, "--out", species_csv], species_csv),
                        (["predict", model, species_csv, "--out", model], model)):
        status, stdout, err = run(argv, capsys)
        assert_one_line_error(status, err, f"--out {given} is the input {given}")
    assert open(species_csv, "rb").read() == data_before and open(model, "rb").read() == model_before


# ---------------------------------------------------------------------------
# values near the largest floats
# ---------------------------------------------------------------------------

def linear_csv(path, x1_unit=1.0, y_unit=1.0, m=200):
    """y = (3 x1 - 2 x2) y_unit for x1, x2 uniform in [-1, 1], x1 written in units of x1_unit:
    columns x1, x2, y of m examples. Returns the path, a str."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(m, 2))
    y = (3 * x[:, 0] - 2 * x[:, 1]) * y_unit
    return write_csv(path, ["x1", "x2", "y"], [[f"{a * x1_unit:.8g}", f"{b:.8g}", f"{t:.8g}"]
                                               for (a, b), t in zip(x, y)])


@pytest.mark.parametrize("x1_unit, y_unit", [(1.0, 1e300), (1.7e308, 1.0)], ids=["target_1e300", "feature_1.7e308"])
def test_values_near_the_largest_float_train_a_model_that_predict_and_info_load(x1_unit, y_unit, tmp_path, capsys):
    """Their float64 sums and squares overflow; standardised, they train like any others."""
    data = linear_csv(tmp_path / "huge.csv", x1_unit, y_unit)
    status, out, err = run(train_args(data, tmp_path, "--target", "y", "--epochs", "20"), capsys)
    assert status == 0, err
    assert float(re.search(r"validation R\^2 (\d\.\d+)", out).group(1)) > 0.95
    model = str(tmp_path / "model.npz")
    assert run(["info", model], capsys)[0] == 0
    status, out, err = run(["predict", model, data], capsys)
    assert status == 0, err
    predicted = np.array([float(value) for value in out.splitlines()[1:]])
    truth = np.array([float(row[2]) for row in read_csv(data)[1]])
    assert np.mean(np.abs(predicted - truth)) < 0.1 * y_unit  # y spans [-5, 5] y_unit


@pytest.mark.parametrize("column", ["x1", "y"])
def test_train_refuses_a_held_out_value_beyond_float32_once_standardised(column, tmp_path, capsys):
    """1e300 standard deviations of the training examples from their mean: one line naming the
    column and line instead of 'NaN or inf', which the file does not hold; no model saved."""
    header, rows = read_csv(linear_csv(tmp_path / "data.csv"))
    held_out = int(mlpcore.cli._split(len(rows), 0.2, 0)[1][0])
    rows[held_out][header.index(column)] = "1e300"
    data = write_csv(tmp_path / "data.csv", header, rows)
    status, _, err = run(train_args(data, tmp_path, "--target", "y"), capsys)
    assert_one_line_error(status, err, f"{column!r} holds 1e+300 on line {held_out + 2}", "float32")
    assert not (tmp_path / "model.npz").exists()


def test_predict_refuses_a_feature_beyond_float32_once_standardised(regression_csv, tmp_path, capsys):
    """With the statistics train saved, and unscaled for a model saved from Python."""
    run(train_args(regression_csv, tmp_path, "--target", "y", "--epochs", "1"), capsys)
    mlpcore.Network([2, 3, 1], ["relu", "identity"], "mse", seed=0).save(tmp_path / "plain.npz")
    data = write_csv(tmp_path / "far.csv", ["x1", "x2"], [["0.5", "0.5"], ["-1e300", "0.5"]])
    for model in ("model.npz", "plain.npz"):
        status, _, err = run(["predict", str(tmp_path / model), data], capsys)
        assert_one_line_error(status, err, "feature column 'x1' holds -1e+300 on line 3", "float32")


def test_predictions_whose_write_fails_leave_the_earlier_file_as_it_was(tmp_path):
    """The file-size limit stops the write of 50,000 predictions part-way: one line on stderr, and
    the earlier predictions file whole, no temporary file left beside it."""
    resource = pytest.importorskip("resource", reason="the file-size limit needs the resource module (POSIX)")
    mlpcore.Network([2, 1], ["identity"], "mse", seed=0).save(tmp_path / "plain.npz")
    (tmp_path / "big.csv").write_text("u,v\n" + "0.5,0.25\n" * 50_000)
    (tmp_path / "out.csv").write_text("prediction_1\n1\n")
    result = subprocess.run([sys.executable, "-m", "mlpcore", "predict", "plain.npz", "big.csv", "--out", "out.csv"],
                            capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy(), timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000)))
    assert result.returncode == 2 and result.stderr == "mlpcore: error: [Errno 27] File too large\n"
    assert (tmp_path / "out.csv").read_text() == "prediction_1\n1\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.csv", "out.csv", "plain.npz"]


def test_the_demo_refuses_a_picture_format_matplotlib_does_not_write_before_training(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the demo's picture needs matplotlib, which is not installed")
    status, out, err = run(["demo", "--epochs", "1", "--out", str(tmp_path / "demo.xyz")], capsys)
    assert_one_line_error(status, err, "demo.xyz: matplotlib writes", "png", "not 'xyz'")
    assert "accuracy" not in out and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("latex", [None, "#!/bin/sh\necho 'no good'\nexit 1\n"], ids=["missing", "broken"])
def test_the_demo_refuses_a_picture_format_whose_program_fails_before_training(latex, tmp_path, capsys, monkeypatch):
    """matplotlib writes pgf through LaTeX, which this PATH lacks, or has broken (LatexError, not
    a RuntimeError)."""
    pytest.importorskip("matplotlib", reason="the demo's picture needs matplotlib, which is not installed")
    programs = tmp_path / "bin"
    programs.mkdir()
    if latex is not None:
        (programs / "xelatex").write_text(latex)
        (programs / "xelatex").chmod(0o755)
    monkeypatch.setenv("PATH", str(programs))
    status, out, err = run(["demo", "--epochs", "1", "--out", str(tmp_path / "demo.pgf")], capsys)
    assert_one_line_error(status, err, "demo.pgf: matplotlib cannot write pgf pictures here")
    assert "accuracy" not in out and [path.name for path in tmp_path.iterdir()] == ["bin"]


def test_the_demo_writes_its_picture_at_the_path_it_names(tmp_path, capsys):
    """A path without an extension gets a PNG under that very name (matplotlib alone would add .png)."""
    pytest.importorskip("matplotlib", reason="the demo's picture needs matplotlib, which is not installed")
    status, out, _ = run(["demo", "--epochs", "1", "--out", str(tmp_path / "picture")], capsys)
    assert status == 0 and f"wrote {tmp_path / 'picture'}:" in out
    assert [path.name for path in tmp_path.iterdir()] == ["picture"]
    assert (tmp_path / "picture").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_network_too_large_for_memory_is_one_line(species_csv, tmp_path, capsys, monkeypatch):
    """The core's std::bad_alloc reaches Python as MemoryError: one line, status 2, as other mistakes."""
    def no_memory(*args, **kwargs):
        raise MemoryError("std::bad_alloc")
    monkeypatch.setattr(mlpcore.cli, "Network", no_memory)
    status, _, err = run(train_args(species_csv, tmp_path, "--target", "species", "--layers", "40000,40000"), capsys)
    assert_one_line_error(status, err, "not enough memory (std::bad_alloc): a smaller network or fewer examples may fit")
    assert status == 2
