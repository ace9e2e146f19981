"""The scripts of examples/, each run in its quick mode as a user would: they exit 0 and print
the figure that shows they worked."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *argv):
    """Run examples/name --quick argv in a subprocess; returns its standard output."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick", *argv], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def figure(pattern, text):
    """The number that pattern's one group matches in text."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def test_logistic_regression_is_a_one_layer_network():
    out = run_example("logistic_regression.py")
    assert figure(r"largest difference ([\d.e+-]+)", out) < 1e-12
    assert figure(r"training accuracy ([\d.]+)", out) > 0.9


def test_two_layer_relu_regression():
    out = run_example("relu_regression.py")
    assert figure(r"relu'\(Z\[1\]\): largest difference ([\d.e+-]+)", out) < 1e-12
    assert figure(r"R\^2 on 1000 new examples: ([\d.]+)", out) > 0.9


def test_four_layer_sigmoid_classifier():
    out = run_example("deep_sigmoid_classification.py")
    assert "L = 4 layers, n = [2, 8, 8, 8, 1]" in out
    assert figure(r"accuracy on 1000 new examples: ([\d.]+)", out) > 0.9


def test_softmax_classification():
    out = run_example("softmax_classification.py")
    assert figure(r"sum to 1: largest deviation ([\d.e+-]+)", out) < 1e-12
    assert figure(r"dZ\[L\] - \(A\[L\] - Y\): largest difference ([\d.e+-]+)", out) < 1e-12
    assert figure(r"accuracy on 900 new examples of 3 classes: ([\d.]+)", out) > 0.9


def test_multi_label_classification():
    out = run_example("multi_label.py")
    for question in (r"x1 > 0", r"x2 > 0", r"\|x\| < 1"):
        assert figure(question + r"\s+accuracy ([\d.]+)", out) > 0.9
    assert figure(r"all 3 labels right for ([\d.]+)", out) > 0.85


def test_universal_approximation_error_shrinks_with_width():
    out = run_example("universal_approximation.py")
    narrow = figure(r"N =\s+2 hidden units: max \|F\(x\) - f\(x\)\| = ([\d.]+)", out)
    wide = figure(r"N =\s+16 hidden units: max \|F\(x\) - f\(x\)\| = ([\d.]+)", out)
    assert wide < 0.2 and wide < narrow / 5


def test_initialisation_symmetry_and_scale():
    out = run_example("initialisation.py")
    for start in ("all weights 0", "all weights 0.5"):
        assert figure(re.escape(start) + r"\s+largest difference between the rows of W\[1\]: ([\d.e+-]+)", out) == 0
    assert figure(r"random \(xavier\)\s+largest difference between the rows of W\[1\]: ([\d.e+-]+)", out) > 0.1
    assert figure(r"small init ([\d.e+-]+) \(relu\)", out) < 1e-3
    assert figure(r"normal ([\d.e+-]+) \(relu\)", out) > 1e2
    assert 0.2 < figure(r"xavier ([\d.]+) \(tanh\)", out) < 5
    assert 0.2 < figure(r"he ([\d.]+) \(relu\)", out) < 5


@pytest.mark.parametrize("name, argv, written", [
    ("softmax_classification.py", ["--plot", "{tmp}/regions.png"], ["regions.png"]),
    ("universal_approximation.py", ["--plot", "{tmp}/curves.png"], ["curves.png"]),
    ("initialisation.py", ["--plot", "{tmp}/scales.png"], ["scales.png"]),
])
def test_examples_draw_their_pictures(name, argv, written, tmp_path):
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib, which is not installed")
    run_example(name, *[arg.format(tmp=tmp_path) for arg in argv])
    for file in written:
        assert (tmp_path / file).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
