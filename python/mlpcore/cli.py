"""The mlpcore command line: demo, train, predict, info.

    mlpcore demo [--out mlpcore-demo.png]
    mlpcore train data.csv --target COLUMN --layers 64,32 --epochs 30 --out model.npz
    mlpcore predict model.npz data.csv [--out predictions.csv]
    mlpcore info model.npz

A CSV file has a header line of column names, then one example per line. Every error a
user can cause (a missing file, an unknown column, a non-numeric feature, a file of the
wrong width for the model, a bad option) is one line on stderr and exit status 2 (1 when
training diverged).
"""

import argparse
import csv
import io
import os
import sys

import numpy as np

from ._checks import is_real
from .io import writable_path, write_atomically
from .network import Network
from .optim import DivergenceError
from .preprocessing import Standardizer

__all__ = ["main", "CommandError"]

# A numeric target with at most this many distinct integer values is taken for class labels.
MAX_CLASSES_GUESSED = 20
# Target cells that say a value is missing (compared in lower case): refused, not taken as a class.
MISSING_MARKERS = ("", "na", "n/a", "nan", "null", "none", "?")
# The dtype of the networks that train makes.
TRAIN_DTYPE = np.dtype("float32")


class CommandError(Exception):
    """A mistake of the user's, told as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (usage is left to --help)."""

    def error(self, message):
        raise CommandError(f"{message} (see {self.prog} --help)")


def main(argv=None):
    """Run the command line with argv (default sys.argv[1:]); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        args.run(args)
    except BrokenPipeError:
        # The reader of our output has gone (mlpcore predict ... | head): stop quietly, and send
        # what Python still flushes at exit to /dev/null rather than raise there again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CommandError as error:
        return _fail(error)
    except DivergenceError as error:
        return _fail(error, status=1)
    except (ValueError, OSError) as error:
        return _fail(error)
    except MemoryError as error:
        return _fail(f"not enough memory ({str(error) or 'MemoryError'}): a smaller network or fewer examples may fit")
    return 0


def _fail(error, status=2):
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"mlpcore: error: {message}", file=sys.stderr)
    return status


def _parser():
    parser = _Parser(prog="mlpcore", description="Train and run dense feed-forward networks (mlpcore).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo_parser = commands.add_parser("demo", help="train a network on a generated two-spirals set and "
                                      "draw its decision regions and cost curve")
    demo_parser.add_argument("--out", default="mlpcore-demo.png", metavar="PICTURE",
                             help="the picture to write, in its extension's format (PNG without one; default "
                                  "mlpcore-demo.png)")
    demo_parser.add_argument("--epochs", type=_positive_int, default=150, metavar="N",
                             help="epochs of training (default 150)")
    demo_parser.add_argument("--seed", type=_seed, default=0, metavar="N",
                             help="seed of the data and the network (default 0)")
    demo_parser.set_defaults(run=demo)

    train_parser = commands.add_parser("train", help="train a network on a CSV file and save it")
    train_parser.add_argument("data", help="CSV file: a header line, numeric features, one example per line")
    train_parser.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    train_parser.add_argument("--layers", type=_layers, default=[64, 32], metavar="UNITS",
                              help="units of the hidden layers, comma-separated (default 64,32; '' for none)")
    train_parser.add_argument("--epochs", type=_positive_int, default=30, metavar="N",
                              help="passes over the training examples (default 30)")
    train_parser.add_argument("--task", choices=("classify", "regress"),
                              help="default: classify when the target is not numeric or has at most "
                                   f"{MAX_CLASSES_GUESSED} distinct integer values, else regress")
    train_parser.add_argument("--out", default="model.npz", metavar="MODEL",
                              help="the model file to write (default model.npz)")
    train_parser.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                              help="examples per step (default 32)")
    train_parser.add_argument("--learning-rate", type=_positive_float, default=1e-3, metavar="RATE",
                              help="of the adam optimizer (default 0.001)")
    train_parser.add_argument("--seed", type=_seed, default=0, metavar="N",
                              help="seed of the split, the network and the order of the examples (default 0)")
    train_parser.add_argument("--validation-fraction", type=_fraction, default=0.2, metavar="SHARE",
                              help="share of the examples held out to measure the model (default 0.2; 0 for none)")
    train_parser.set_defaults(run=train)

    predict_parser = commands.add_parser("predict", help="predict with a saved model")
    predict_parser.add_argument("model", help="a model file from mlpcore train or Network.save")
    predict_parser.add_argument("data", help="CSV file with the model's feature columns (a model of mlpcore train "
                                             "picks them by name and ignores the others; one of Network.save "
                                             "takes every column, in order)")
    predict_parser.add_argument("--out", metavar="CSV",
                                help="the CSV file to write (default: print to standard output)")
    predict_parser.set_defaults(run=predict)

    info_parser = commands.add_parser("info", help="describe a saved model")
    info_parser.add_argument("model", help="a model file from mlpcore train or Network.save")
    info_parser.set_defaults(run=info)
    return parser


def _number(kind, accept, expected):
    """An argparse type: kind(text) (int or float), refused with 'expected ...' unless accept(value)."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return convert


_positive_int = _number(int, lambda value: value >= 1, "an integer >= 1")
_seed = _number(int, lambda value: value >= 0, "an integer >= 0")
_positive_float = _number(float, lambda value: 0 < value < float("inf"), "a number > 0")
_fraction = _number(float, lambda value: 0 <= value < 1, "a number in [0, 1)")


def _layers(text):
    """'64,32' -> [64, 32]; '' -> [] (no hidden layer)."""
    try:
        sizes = [int(part) for part in text.split(",")] if text.strip() else []
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected unit counts such as 64,32, got {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected unit counts >= 1 such as 64,32, got {text!r}")
    return sizes


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------

def demo(args):
    """Train a 2-32-32-1 relu network on two spirals with fit (adam, a cosine schedule), print its
    accuracy on the training points and on new points, and draw the picture."""
    from .datasets import two_spirals

    _require_output(args.out)
    _require_picture_format(args.out)
    X, y = two_spirals(m=800, seed=args.seed)
    X_test, y_test = two_spirals(m=800, seed=args.seed + 1)
    net = Network([2, 32, 32, 1], ["relu", "relu", "sigmoid"], "bce", seed=args.seed)
    print(f"two spirals: X {X.shape} (n[0], m), labels 0/1\n{net}")
    net.fit(X, y, epochs=args.epochs, batch_size=32, optimizer="adam", learning_rate=0.01, seed=args.seed,
            schedule="cosine", validation_data=(X_test, y_test))
    train_accuracy = np.mean(net.predict(X)[0] == y)
    test_accuracy = np.mean(net.predict(X_test)[0] == y_test)
    print(f"accuracy {train_accuracy:.3f} on the {y.size} training points, {test_accuracy:.3f} on "
          f"{y_test.size} new points of the same spirals")
    _demo_picture(net, X, y, args.out)


def _demo_picture(net, X, y, path):
    """The decision regions beside the cost curves, saved to path; a note instead without matplotlib."""
    from . import plot

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no picture: {plot.MISSING_MATPLOTLIB}")
        return

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    plot.decision_regions(net, X, y, ax=left)
    plot.cost_curves(net.history, ax=right)
    try:
        plot.save(figure, path)
    finally:
        plt.close(figure)
    print(f"wrote {path}: the decision regions and the cost per epoch")


# ---------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------

class _Table:
    """A CSV file read whole: names (the header), cells (m, columns) of str, and the line
    number of each example in the file (blank lines are skipped)."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, newline="", encoding="utf-8-sig") as file:
                reader = csv.reader(file)
                numbered = [(reader.line_num, row) for row in reader if row]
        except FileNotFoundError:
            raise CommandError(f"no such file: {path}") from None
        except (UnicodeDecodeError, csv.Error) as error:
            raise CommandError(f"{path} is not a readable CSV file: {error}") from None
        if not numbered:
            raise CommandError(f"{path} is empty: expected a header line of column names")
        self.names = [name.strip() for name in numbered[0][1]]
        duplicates = sorted({name for name in self.names if self.names.count(name) > 1})
        if duplicates:
            raise CommandError(f"{path}: the header names the column(s) {', '.join(map(repr, duplicates))} twice")
        for line, row in numbered[1:]:
            if len(row) != len(self.names):
                raise CommandError(f"{path}: line {line} has {len(row)} fields where the header has "
                                   f"{len(self.names)}")
        if len(numbered) < 2:
            raise CommandError(f"{path} has a header but no examples")
        self.lines = [line for line, _ in numbered[1:]]
        self.cells = np.array([[cell.strip() for cell in row] for _, row in numbered[1:]], dtype=str)

    def column(self, name):
        """The cells (m,) of the column called name."""
        return self.cells[:, self.names.index(name)]

    def numbers(self, name, what):
        """The column as float64 (m,), or CommandError naming the first cell that is not a finite number."""
        values = _numbers(self.column(name))
        if values is None:
            bad = next(i for i, cell in enumerate(self.column(name)) if _numbers(np.array([cell])) is None)
            raise CommandError(f"{self.path}: {what} {name!r} must hold finite numbers; line "
                               f"{self.lines[bad]} holds {str(self.column(name)[bad])!r}")
        return values

    def features(self, names):
        """X (n0, m) float64 of the named columns, one row per feature."""
        return np.array([self.numbers(name, "feature column") for name in names]).reshape(len(names), -1)


def _numbers(cells):
    """The cells (m,) as float64, or None when one is not a finite number."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        return None
    return values if np.all(np.isfinite(values)) else None


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------

def _require_picture_format(path):
    """Refuse, before any work, a picture path whose format matplotlib does not write here: an
    extension it does not know, or a format whose writer lacks a program (pgf's LaTeX), as a
    word drawn in it shows (nothing to refuse without matplotlib: the demo then draws no picture)."""
    try:
        from .plot import picture_format

        kind = picture_format(path)
    except ImportError:
        return
    except ValueError as error:
        raise CommandError(f"--out {error}") from None
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(1, 1))
    figure.text(0.5, 0.5, "x")
    try:
        figure.savefig(io.BytesIO(), format=kind)
    except Exception as error:  # RuntimeError without LaTeX, matplotlib's LatexError with a broken one, ...
        raise CommandError(f"--out {path}: matplotlib cannot write {kind} pictures here: {error}") from None
    finally:
        plt.close(figure)


def _require_output(path, *inputs):
    """Refuse, before any work, an output path that cannot be written (see io.writable_path) or
    that is one of the command's input files, which writing it would destroy."""
    try:
        writable_path(path)
    except OSError as error:
        raise CommandError(str(error)) from None
    for given in inputs:
        if os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
            raise CommandError(f"--out {path} is the input {given}, which writing it would destroy; give another path")


def train(args):
    """Read the CSV, standardise, hold out a share, fit with a progress bar, print metrics, save."""
    _require_output(args.out, args.data)
    table = _Table(args.data)
    if args.target not in table.names:
        raise CommandError(f"{args.data} has no column {args.target!r}; its columns: {', '.join(table.names)}")
    feature_names = [name for name in table.names if name != args.target]
    if not feature_names:
        raise CommandError(f"{args.data} has no feature column besides the target {args.target!r}")
    X = table.features(feature_names)
    task, classes, y = _target(table, args)
    fit_part, val = _split(X.shape[1], args.validation_fraction, args.seed)
    scaler = Standardizer().fit(X[:, fit_part])
    X = _standardised(scaler, X, feature_names, table, "feature column", TRAIN_DTYPE)
    metadata = {"feature_names": feature_names, "mean": scaler.mean_.ravel().tolist(),
                "scale": scaler.scale_.ravel().tolist(), "target": args.target, "task": task}
    if task == "classify":
        metadata["classes"] = classes
        net = _network(X.shape[0], args, K=len(classes))
        Y, expected = y, np.array(classes, dtype=object)[y]  # class indices; the labels themselves
    else:
        # the network learns the target standardised, and R^2 is the same in those units
        target_scaler = Standardizer().fit(y[None, fit_part])
        metadata.update(target_mean=float(target_scaler.mean_[0, 0]), target_scale=float(target_scaler.scale_[0, 0]))
        Y = expected = _standardised(target_scaler, y[None, :], [args.target], table, "the regression target",
                                     TRAIN_DTYPE)[0]
        net = _network(X.shape[0], args)
    print(f"{args.data}: {X.shape[1]} examples, {len(feature_names)} features, target {args.target!r} "
          f"({_about(metadata)}); {fit_part.size} to train, {val.size} held out")
    print(net)
    net.fit(X[:, fit_part], Y[fit_part], epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
            learning_rate=args.learning_rate, seed=args.seed,
            validation_data=(X[:, val], Y[val]) if val.size else None)
    predicted = _predictions(net, X, metadata, standardised=True)
    for part, name in ((fit_part, "training"), (val, "validation")):
        if part.size:
            print(f"{name} {_metric(task)} {_score(task, predicted[part], expected[part]):.4f} "
                  f"({part.size} examples)")
    net.save(args.out, metadata=metadata)
    print(f"saved the model to {args.out}")


def _target(table, args):
    """The task (args.task, or guessed), the classes (None when regressing) and y: class
    indices (m,) or the numbers (m,) of the target column, none of them missing."""
    target = table.column(args.target)
    missing = np.isin(np.char.lower(target), MISSING_MARKERS)
    if np.any(missing):
        line = int(np.argmax(missing))
        raise CommandError(f"{args.data}: the target {args.target!r} is missing ({str(target[line])!r}) on line "
                           f"{table.lines[line]}; every example needs one")
    task = args.task or _guess_task(target, args.target, table.lines)
    if task == "classify":
        return (task, *_classes(target, args.target))
    return task, None, table.numbers(args.target, "the regression target")


def _guess_task(target, name, lines):
    """'classify' for a non-numeric target or one of at most MAX_CLASSES_GUESSED distinct integers,
    else 'regress'; CommandError for a target of numbers but for a few cells (a mistake, not a
    class), naming the first."""
    numbers = _numbers(target)
    if numbers is None:
        finite = np.array([_numbers(target[i:i + 1]) is not None for i in range(target.size)])
        if finite.mean() >= 0.5:
            bad = int(np.argmin(finite))
            raise CommandError(f"the target {name!r} holds numbers, but line {lines[bad]} holds "
                               f"{str(target[bad])!r}; mend that cell, or pass --task classify to take "
                               f"every cell as a class label")
        return "classify"
    integer = np.all(numbers == np.round(numbers))
    return "classify" if integer and np.unique(numbers).size <= MAX_CLASSES_GUESSED else "regress"


def _classes(target, name):
    """The sorted distinct labels of the target cells (numbers when all are, whole ones as int)
    and the class index of each example, int64 (m,)."""
    numbers = _numbers(target)
    classes, y = np.unique(target if numbers is None else _integers(target, numbers), return_inverse=True)
    classes = [int(c) if isinstance(c, float) and c.is_integer() else c for c in classes.tolist()]
    if len(classes) < 2:
        raise CommandError(f"column {name!r} holds a single class ({classes[0]!r}); "
                           "classification needs at least two")
    return classes, y.astype(np.int64)


def _integers(cells, numbers):
    """The cells as Python ints when each is written as one ("7", "-3"), exactly: float64 numbers
    would take 9007199254740993 for 9007199254740992, two classes for one; else numbers."""
    try:
        return np.array([int(cell) for cell in cells], dtype=object)
    except ValueError:
        return numbers


def _split(m, fraction, seed):
    """Sorted indices of the examples to train on and of the share `fraction` held out."""
    m_val = int(round(fraction * m))
    if fraction and not 1 <= m_val < m:
        raise CommandError(f"--validation-fraction {fraction} of {m} examples leaves {m_val} for validation "
                           f"and {m - m_val} for training; both need at least one")
    order = np.random.default_rng(seed).permutation(m)
    return np.sort(order[m_val:]), np.sort(order[:m_val])


def _network(n0, args, K=None):
    """relu hidden layers of args.layers units; for K classes a sigmoid output with bce (K = 2)
    or a softmax one with cce, for a regression (K None) an identity output with mse."""
    outputs = {None: (1, "identity", "mse"), 2: (1, "sigmoid", "bce")}
    units, output, cost = outputs.get(K, (K, "softmax", "cce"))
    return Network([n0, *args.layers, units], ["relu"] * len(args.layers) + [output], cost, dtype=TRAIN_DTYPE.name,
                   seed=args.seed)


def _scaler(mean, scale):
    """The Standardizer of the given statistics (sequences of n floats), as train saved them."""
    scaler = Standardizer()
    scaler.mean_, scaler.scale_ = (np.array(values, dtype=np.float64).reshape(-1, 1) for values in (mean, scale))
    scaler.n_features_ = scaler.mean_.shape[0]
    return scaler


def _standardised(scaler, values, names, table, what, dtype):
    """scaler.transform(values) for values (n, m) float64, the named columns of table; CommandError
    naming the column and line of the first value whose standardised value the network's dtype
    cannot hold (|x - mean| > largest * scale, compared in halves, which do not overflow)."""
    with np.errstate(over="ignore"):
        beyond = np.abs(values / 2 - scaler.mean_ / 2) > np.finfo(dtype).max / 2 * scaler.scale_
    if np.any(beyond):
        row, column = np.argwhere(beyond)[0]
        raise CommandError(f"{table.path}: {what} {names[row]!r} holds {values[row, column]:g} on line "
                           f"{table.lines[column]}, beyond the range of the network's {dtype.name} once standardised "
                           f"(mean {scaler.mean_[row, 0]:g}, standard deviation {scaler.scale_[row, 0]:g})")
    return scaler.transform(values)


def _about(metadata):
    if metadata["task"] == "regress":
        return "regression"
    classes = metadata["classes"]
    shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return f"classification, {len(classes)} classes: {shown}"


def _metric(task):
    return "accuracy" if task == "classify" else "R^2"


def _score(task, predicted, expected):
    """Accuracy of predicted labels, or the coefficient of determination R^2 of predicted values
    (the same in any units: standardised ones do not overflow)."""
    if task == "classify":
        return float(np.mean(predicted == expected))
    expected = expected.astype(np.float64)
    total = np.sum((expected - expected.mean()) ** 2)
    return float(1 - np.sum((expected - predicted) ** 2) / total) if total > 0 else float("nan")


def _predictions(net, X, metadata, standardised=False):
    """Per example: class labels (m,) object; regression values (m,) float64 in the target's units
    (standardised, as the network learns them, when asked); or, for a model without the metadata
    of mlpcore train, net.predict rows (m, n[L])."""
    predicted = net.predict(X)
    if metadata.get("task") == "classify":
        index = predicted.reshape(-1)  # bce (1, m) 0/1 or cce (m,) class indices
        return np.array(metadata["classes"], dtype=object)[index]
    if metadata.get("task") == "regress":
        values = predicted.reshape(1, -1).astype(np.float64)
        if standardised:
            return values[0]
        return _scaler([metadata["target_mean"]], [metadata["target_scale"]]).inverse_transform(values)[0]
    return np.atleast_2d(predicted).T


# ---------------------------------------------------------------------------
# predict, info
# ---------------------------------------------------------------------------

def _load(path):
    """The Network saved at path; CommandError for a missing file (load's ValueError names the
    file and what is wrong with it)."""
    from . import load

    try:
        return load(path)
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}") from None


def _train_metadata(net, path):
    """The metadata mlpcore train saved with net, checked against net; {} for a model saved
    otherwise, whatever its metadata holds (it is not the command line's to read).
    CommandError for metadata that says train made it (its 'task') but does not fit net."""
    metadata, n0 = net.metadata, net.n[0]
    task = metadata.get("task")
    if task not in ("classify", "regress"):
        return {}

    def number(value, positive=False):
        return is_real(value) and (value > 0 or not positive)

    def numbers(key, positive=False):
        values = metadata.get(key)
        return isinstance(values, list) and len(values) == n0 and all(number(v, positive) for v in values)

    names = metadata.get("feature_names")
    valid = (isinstance(metadata.get("target"), str) and isinstance(names, list) and len(names) == n0
             and all(isinstance(name, str) for name in names) and numbers("mean") and numbers("scale", positive=True))
    if task == "classify":
        classes = metadata.get("classes")
        outputs = 2 if (net.cost_name, net.n[-1]) == ("bce", 1) else net.n[-1] if net.cost_name == "cce" else None
        valid = (valid and isinstance(classes, list) and len(classes) == outputs
                 and all(isinstance(label, str) or number(label) for label in classes))
    else:
        valid = (valid and net.n[-1] == 1 and number(metadata.get("target_mean"))
                 and number(metadata.get("target_scale"), positive=True))
    if not valid:
        raise CommandError(f"{path}: its metadata says mlpcore train made it (task {task!r}) but does not hold "
                           f"what train saves for this network (target, feature_names, mean, scale, and the "
                           f"classes or the target's mean and scale)")
    return metadata


def predict(args):
    """Predict every example of the CSV; write a CSV of predictions (class labels when classifying)."""
    if args.out is not None:
        _require_output(args.out, args.model, args.data)
    net = _load(args.model)
    metadata = _train_metadata(net, args.model)
    table = _Table(args.data)
    feature_names = metadata.get("feature_names")
    if feature_names is None:
        if len(table.names) != net.n[0]:
            raise CommandError(f"{args.data} has {len(table.names)} columns; the model (saved without feature "
                               f"names) takes n[0] = {net.n[0]} features, all columns in order")
        feature_names = table.names
    missing = [name for name in feature_names if name not in table.names]
    if missing:
        raise CommandError(f"{args.data} lacks the column(s) {', '.join(map(repr, missing))} that the "
                           f"model takes as features")
    if len(feature_names) != net.n[0]:
        raise CommandError(f"{args.model} names {len(feature_names)} features but its network takes "
                           f"n[0] = {net.n[0]}")
    scaler = _scaler(metadata.get("mean", [0.0] * net.n[0]), metadata.get("scale", [1.0] * net.n[0]))
    X = _standardised(scaler, table.features(feature_names), feature_names, table, "feature column", net.dtype)
    predictions = _predictions(net, X, metadata)
    header = [metadata.get("target", "prediction")] if predictions.ndim == 1 else \
        [f"prediction_{k}" for k in range(1, predictions.shape[1] + 1)]
    rows = predictions.reshape(len(predictions), -1)
    if args.out is None:
        _write_csv(sys.stdout, header, rows)
        return
    text = io.StringIO()
    _write_csv(text, header, rows)
    write_atomically(args.out, lambda file: file.write(text.getvalue().encode("utf-8")))  # whole or not at all
    print(f"wrote {len(rows)} predictions to {args.out}")


def _write_csv(file, header, rows):
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{value:.7g}" if isinstance(value, (float, np.floating)) else value for value in row]
                      for row in rows])


def info(args):
    """Architecture, parameter count, what the model was trained on, and its last training history."""
    net = _load(args.model)
    print(f"{args.model}: {net}")
    for l in range(1, net.L + 1):
        name, params = net.activations[l - 1]
        activation = name + (f"(alpha={params['alpha']:g})" if params else "")
        print(f"  layer {l}: {net.n[l]} units, {activation}, W[{l}] {net.W[l].shape}, b[{l}] {net.b[l].shape}"
              + (", batch norm" if net.batch_norm[l - 1] else "")
              + (f", dropout {net.dropout[l - 1]:g}" if net.dropout[l - 1] else ""))
    print(f"parameters: {net.params.size}")
    metadata = _train_metadata(net, args.model)
    if metadata:
        print(f"trained by mlpcore train to predict {metadata['target']!r} ({_about(metadata)}) from "
              f"{len(metadata['feature_names'])} features: {', '.join(metadata['feature_names'])}")
    print(_history_summary(net.history))


def _history_summary(history):
    """The epochs of a fit's history and its last figures. A saved history is whatever
    net.history held (any JSON), so lists that are not of numbers are left out."""
    def numbers(key):
        values = history.get(key)
        plain = isinstance(values, list) and all(type(v) in (int, float) for v in values)  # bools are not
        return values if plain and values else None

    if not isinstance(history, dict) or not numbers("cost"):
        return "history: none (not trained with fit)"
    figures = ", ".join(f"{key} {numbers(key)[-1]:.4g}"
                        for key in ("cost", "val_cost", "val_accuracy", "val_r2") if numbers(key))
    seconds = f" in {sum(numbers('time')):.2f} s" if numbers("time") else ""
    return f"history: {len(history['cost'])} epochs{seconds}; last epoch: {figures}"
