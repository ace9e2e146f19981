"""Saving, loading and pickling networks (mlpcore.io): what goes in comes back bit for bit, the
file is written atomically, and a bad file is refused with a clear error naming it."""

import copy
import io
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import mlpcore
from mlpcore.io import FORMAT_VERSION

DTYPES = (np.float32, np.float64)


def trained_net(dtype, seed=0, epochs=2):
    """A small fitted network with every feature the file must keep: alphas, dropout, batch norm."""
    rng = np.random.default_rng(seed)
    net = mlpcore.Network([4, 7, 5, 3], [("leaky_relu", {"alpha": 0.2}), ("elu", {"alpha": 0.5}), "softmax"],
                          "cce", dtype=np.dtype(dtype).name, seed=seed, dropout=[0.25, 0.0],
                          batch_norm=[True, False, True], bn_eps=1e-4, bn_momentum=0.2)
    X, labels = rng.standard_normal((4, 60)), rng.integers(0, 3, size=60)
    net.fit(X, labels, epochs=epochs, batch_size=16, optimizer="adam", seed=seed, validation_fraction=0.2,
            diagnostics=True, verbose=0)
    return net, X


def assert_same_network(loaded, net):
    """Same architecture, parameters, running statistics, history, metadata and dropout stream."""
    for name in ("n", "activations", "cost_name", "dtype", "dropout", "batch_norm", "bn_eps", "bn_momentum",
                 "history", "metadata"):
        assert getattr(loaded, name) == getattr(net, name), name
    assert loaded.params.dtype == net.params.dtype
    np.testing.assert_array_equal(loaded.params, net.params)
    for l in net._batch_norm_layers:
        np.testing.assert_array_equal(loaded.running_mean[l], net.running_mean[l])
        np.testing.assert_array_equal(loaded.running_var[l], net.running_var[l])
    assert (loaded._core.dropout_seed, loaded._core.training_forwards) == \
        (net._core.dropout_seed, net._core.training_forwards)


def header_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(archive["header"].tobytes().decode())


def rewrite(path, change_header=None, **arrays):
    """Rewrite the model file at path with its header changed by change_header and arrays replaced."""
    with np.load(path, allow_pickle=False) as archive:
        contents = {key: archive[key] for key in archive.files}
    if change_header is not None:
        header = json.loads(contents["header"].tobytes().decode())
        change_header(header)
        contents["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    contents.update(arrays)
    np.savez(path, **contents)


@pytest.fixture
def saved(tmp_path):
    """The path of a saved float64 network, and the network."""
    net, _ = trained_net(np.float64)
    path = tmp_path / "model.npz"
    net.save(path)
    return path, net


# ---- what the file holds ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_load_gives_back_the_saved_network(tmp_path, dtype):
    net, X = trained_net(dtype)
    net.save(tmp_path / "model.npz")
    loaded = mlpcore.load(tmp_path / "model.npz")
    assert isinstance(loaded, mlpcore.Network) and loaded.optimizer is None
    assert_same_network(loaded, net)
    np.testing.assert_array_equal(loaded.forward(X, training=False).A[3], net.forward(X, training=False).A[3])
    np.testing.assert_array_equal(loaded.forward(X).A[3], net.forward(X).A[3])  # same dropout masks


def test_a_network_without_batch_norm_or_history_round_trips(tmp_path):
    net = mlpcore.Network([3, 1], ["sigmoid"], "bce", seed=5)
    net.save(str(tmp_path / "plain.npz"))
    loaded = mlpcore.load(str(tmp_path / "plain.npz"))
    assert_same_network(loaded, net)
    assert loaded.history is None and loaded.metadata == {}


def test_metadata_is_kept_and_numpy_values_become_json(tmp_path):
    net, _ = trained_net(np.float32)
    metadata = {"feature_names": ["a", "b", "c", "d"], "classes": ["x", "y", "z"],
                "mean": np.array([0.5, 1.5, 2.0, -1.0]), "scale": np.float64(2.0)}
    net.save(tmp_path / "model.npz", metadata=metadata)
    loaded = mlpcore.load(tmp_path / "model.npz")
    assert loaded.metadata == {"feature_names": ["a", "b", "c", "d"], "classes": ["x", "y", "z"],
                               "mean": [0.5, 1.5, 2.0, -1.0], "scale": 2.0}
    loaded.save(tmp_path / "again.npz")  # metadata=None saves net.metadata
    assert mlpcore.load(tmp_path / "again.npz").metadata == loaded.metadata


@pytest.mark.parametrize("metadata, error", [
    ([1, 2], TypeError), ({"f": object()}, TypeError), ({"f": {1, 2}}, TypeError),
    ({"f": np.longdouble(1.0)}, TypeError), ({"f": np.ones(2, np.longdouble)}, TypeError),  # was RecursionError
    ({1: "a", "1": "b"}, TypeError), ({"f": [{None: 1}]}, TypeError),  # JSON would make the keys str
], ids=["list", "object", "set", "longdouble", "longdouble_array", "int_key", "nested_none_key"])
def test_metadata_that_is_not_json_is_refused_before_writing(tmp_path, metadata, error):
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(error, match="metadata must"):
        net.save(tmp_path / "model.npz", metadata=metadata)
    assert os.listdir(tmp_path) == []


def test_include_optimizer_needs_an_optimizer(tmp_path):
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(ValueError, match="no optimizer"):
        net.save(tmp_path / "model.npz", include_optimizer=True)
    with pytest.raises(TypeError, match="include_optimizer"):
        net.save(tmp_path / "model.npz", include_optimizer="yes")


def test_an_optimizer_stepped_by_hand_is_saved_with_the_network(tmp_path):
    """opt.step(net, grads) makes opt net's optimizer, as fit does: save keeps its state."""
    net = mlpcore.Network([2, 3, 1], ["tanh", "identity"], "mse", seed=0)
    X, Y = np.ones((2, 4), np.float32), np.zeros((1, 4), np.float32)
    opt = mlpcore.optim.Adam()
    for _ in range(3):
        opt.step(net, net.backward(net.forward(X), Y))
    assert net.optimizer is opt
    net.save(tmp_path / "model.npz", include_optimizer=True)
    loaded = mlpcore.load(tmp_path / "model.npz")
    assert loaded.optimizer.t == 3
    assert len(opt.state) == 2 and all(np.array_equal(a, b) for a, b in zip(loaded.optimizer.state, opt.state,
                                                                             strict=True))


def test_the_file_is_an_npz_with_a_json_header(saved):
    path, net = saved
    header = header_of(path)
    assert (header["format"], header["version"]) == ("mlpcore", FORMAT_VERSION)
    assert header["architecture"]["activations"] == [["leaky_relu", {"alpha": 0.2}], ["elu", {"alpha": 0.5}],
                                                     ["softmax", {}]]
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["header", "params", "running_mean_1", "running_mean_3",
                                         "running_var_1", "running_var_3"]
        assert archive["params"].dtype == np.float64 and archive["params"].shape == net.params.shape


# ---- atomic writing -----------------------------------------------------------------------

def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(saved, monkeypatch):
    path, net = saved
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_a_file_name_as_long_as_the_file_system_allows_is_saved(tmp_path):
    """The temporary file's name is no longer than the target's could be (it was the name and 38 more)."""
    net = mlpcore.Network([2, 1], ["identity"], "mse", seed=3)
    name = "b" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 4) + ".npz"
    net.save(tmp_path / name)
    np.testing.assert_array_equal(mlpcore.load(tmp_path / name).params, net.params)
    assert os.listdir(tmp_path) == [name]


def test_a_temporary_file_that_cannot_be_made_is_reported_by_the_path_asked_for(tmp_path, monkeypatch):
    """The temporary file's name says nothing of the path (a folder that refuses new files: /sys)."""
    def refused(name, mode):
        raise PermissionError(13, "Permission denied", name)
    monkeypatch.setattr(mlpcore.io, "open", refused, raising=False)
    path = tmp_path / "model.npz"
    with pytest.raises(PermissionError, match=rf"^\[Errno 13\] cannot write {path}: Permission denied$"):
        mlpcore.Network([2, 1], ["identity"], "mse").save(path)
    assert os.listdir(tmp_path) == []


def test_saving_over_a_file_replaces_it_and_leaves_nothing_else(saved):
    path, net = saved
    net.W[1][0, 0] = 42.0
    net.save(path)
    assert mlpcore.load(path).W[1][0, 0] == 42.0
    assert os.listdir(path.parent) == [path.name]


# ---- bad files ----------------------------------------------------------------------------

def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        mlpcore.load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -20], ids=["empty", "10-bytes", "half", "all-but-20"])
def test_a_truncated_file_is_refused(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=f"{path}.* not a readable mlpcore model file"):
        mlpcore.load(path)


def test_a_corrupted_file_is_refused(saved):
    path, net = saved
    data = bytearray(path.read_bytes())
    where = data.index(np.array(net.params).tobytes()[:16]) + 8  # a byte of params.npy's data
    data[where] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}.*(CRC|corrupt)"):
        mlpcore.load(path)


@pytest.mark.parametrize("content, reason", [
    (b"feature,target\n1,2\n", "it is not a .npz archive"),
    (b"junk", "it is not a .npz archive"),
    (b"\x80\x04K\x01.", "it is not a .npz archive"),  # a pickle, which np.load would unpickle if allowed
    (b"PK\x03\x04junk", "BadZipFile"),
], ids=["csv", "4-bytes", "pickle", "zip-junk"])
def test_a_foreign_file_is_refused(tmp_path, content, reason):
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}.* not a readable mlpcore model file.*{reason}"):
        mlpcore.load(path)


def test_a_foreign_npz_or_npy_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="other.npz is a .npz archive but not a mlpcore model file.*weights"):
        mlpcore.load(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match="array.npy is not a readable mlpcore model file.*single .npy"):
        mlpcore.load(tmp_path / "array.npy")


def test_a_zip_whose_members_are_not_npy_arrays_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("header", json.dumps({"format": "mlpcore", "version": 1}))
    with pytest.raises(ValueError, match="model.npz is not a readable.*not a .npy array"):
        mlpcore.load(path)


def _npy(header):
    """The bytes of a .npy version 1.0 header of the text header, padded as numpy pads it (no data after it)."""
    text = header.encode()
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _npy_header(shape):
    """The bytes of a .npy version 1.0 header declaring float64 `shape` (no data after it)."""
    return _npy(repr({"descr": "<f8", "fortran_order": False, "shape": shape}))


@pytest.mark.parametrize("name", ["params.npy", "extra"])
def test_a_member_declaring_more_than_it_holds_is_refused_before_it_is_read(tmp_path, name):
    """A few bytes declaring 10^10 float64: np.load would allocate 75 GiB first. np.load reads as
    .npy any member that starts as one, whatever its name."""
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, _npy_header((10**10,)))
    with pytest.raises(ValueError, match=rf"model\.npz is not a readable.*its member {name} declares more items"):
        mlpcore.load(path)


def test_a_single_npy_array_is_refused_before_it_is_read(tmp_path):
    """A .npy declaring 2^40 float64 (8 TiB) in 128 bytes: refused from its first bytes."""
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((2**40,)))
    with pytest.raises(ValueError, match=r"huge\.npy is not a readable mlpcore model file.*single \.npy array"):
        mlpcore.load(path)


@pytest.mark.parametrize("header, reason", [
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }}", "malformed .npy header: TokenError"),
    ("{'descr': '<f8', 'fortran_order': False, b'shape': (3,), }", "malformed .npy header: TypeError"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), []: 0}", "malformed .npy header: TypeError: unhashable"),
    ("    {}\n  {}", "malformed .npy header: IndentationError"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (True,), }", r"declares an invalid shape \(True,\)"),
], ids=["stray-brace", "bytes-key", "list-key", "indentation", "bool-shape"])
def test_a_malformed_npy_header_is_refused_as_a_bad_file(tmp_path, header, reason):
    """numpy's parsing of a .npy header raises TypeError, TokenError or SyntaxError for some (and
    np.load TypeError for a shape of bools): load and unpickling refuse them with ValueError."""
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("params.npy", _npy(header) + bytes(24))
    with pytest.raises(ValueError, match=rf"model\.npz is not a readable.*its member params\.npy .*{reason}"):
        mlpcore.load(path)
    blank = mlpcore.Network.__new__(mlpcore.Network)
    with pytest.raises(ValueError, match=rf"<pickled mlpcore\.Network> is not a readable.*{reason}"):
        blank.__setstate__({"mlpcore": path.read_bytes()})


def test_a_member_whose_header_is_longer_than_numpy_reads_is_refused_for_that(tmp_path):
    """numpy refuses a .npy header of more than 10000 bytes with advice that mentions pickle: the
    file is not said to hold pickled objects."""
    path, header = tmp_path / "model.npz", "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("extra.npy", _npy(header + " " * 20000))
    with pytest.raises(ValueError, match=r"model\.npz is not a readable.*its member extra\.npy has a \.npy header of "
                                         r"2\d{4} bytes, more than the 10000 that np\.load reads$") as refused:
        mlpcore.load(path)
    assert "pickle" not in str(refused.value)


def test_members_that_would_inflate_far_beyond_the_file_are_refused_before_they_are(tmp_path):
    """A deflated member of 8 MiB of zeros in a file of some 8 KB (a zip bomb, small)."""
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("params.npy", _npy_header((2**20,)) + bytes(2**23))
    assert os.path.getsize(path) < 2**16
    with pytest.raises(ValueError, match=r"model\.npz is not a readable.*inflate to more than 16 times"):
        mlpcore.load(path)


def test_an_archive_with_an_encrypted_member_is_refused(saved):
    """zipfile raises RuntimeError for an encrypted member; load names the file instead."""
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[data.find(b"PK\x01\x02") + 8] |= 1  # central directory: general-purpose flag bit 0, "encrypted"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"is not a readable mlpcore model file.*encrypted"):
        mlpcore.load(path)


def test_an_empty_path_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """"" names no file: save (and the CLI's --out) refuse it as they refuse a folder, at once."""
    monkeypatch.chdir(tmp_path)
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(IsADirectoryError, match=r"^cannot write '': it is a folder; give a file's path$"):
        net.save("")
    assert os.listdir(tmp_path) == []


def test_saving_into_a_missing_folder_names_it(tmp_path):
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        net.save(tmp_path / "missing" / "model.npz")


def test_a_path_given_as_bytes_is_written_and_read(tmp_path):
    net, _ = trained_net("float32")
    path = os.fsencode(tmp_path / "model.npz")
    net.save(path)
    np.testing.assert_array_equal(mlpcore.load(path).params, net.params)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_what_load_would_refuse_is_refused_by_save_and_pickle(tmp_path):
    """An optimizer whose hyper-parameters were changed out of range would be written and then
    refused by load: save and pickling refuse it, writing nothing. (net.history and net.optimizer
    take nothing but their kind or None: test_bad_input.)"""
    net, _ = trained_net("float32")
    net.optimizer.hyper["beta1"] = 1.5  # an optimizer whose hyper-parameters changed after they were checked
    for call in (lambda: net.save(tmp_path / "model.npz", include_optimizer=True), lambda: pickle.dumps(net)):
        with pytest.raises(ValueError, match=r"net\.optimizer cannot be saved as it is, since load would refuse it: "
                                             r"beta1 must lie in \[0, 1\), got 1\.5"):
            call()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, value, what", [
    ("params", np.nan, r"NaN or inf \(did training diverge\?\)"),
    ("running_var_3", np.inf, r"NaN or inf \(did training diverge\?\)"),
    ("optimizer_state_1", np.inf, r"NaN or inf \(did training diverge\?\)"),
    ("running_var_3", -1.0, r"negative values \(variances and means of squares are >= 0\)"),
    ("optimizer_state_1", -1.0, r"negative values \(variances and means of squares are >= 0\)")])  # Adam's v
def test_parameters_or_state_that_load_refuses_are_refused_by_save_and_pickle(tmp_path, name, value, what):
    """load refuses NaN and inf in the file's arrays, and negative variances and squares: save,
    pickle and deepcopy refuse them first, writing nothing."""
    net, _ = trained_net("float32")
    array = {"params": net.params, "running_var_3": net.running_var[3], "optimizer_state_1": net.optimizer.state[1]}
    array[name].flat[0] = value
    for call in (lambda: net.save(tmp_path / "model.npz", include_optimizer=True), lambda: pickle.dumps(net),
                 lambda: copy.deepcopy(net)):
        with pytest.raises(ValueError, match=rf"^the network cannot be saved or pickled as it is, since load would "
                                             rf"refuse it: its {name} holds {what}$"):
            call()
    assert os.listdir(tmp_path) == []


def test_params_whose_shape_was_changed_in_place_are_saved_flat(tmp_path):
    """NumPy lets a view's shape be set in place (net.params.shape = (1, -1)): the file still
    holds the flat buffer."""
    net, _ = trained_net("float32")
    expected = np.array(net.params)
    net.params.shape = (1, -1)
    net.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(mlpcore.load(tmp_path / "model.npz").params, expected)


def test_an_npz_holding_pickled_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([{"format": "mlpcore"}], dtype=object))
    with pytest.raises(ValueError, match="evil.npz is not a readable.*holds pickled objects") as refused:
        mlpcore.load(path)
    assert "allow_pickle" not in str(refused.value)  # no advice to load it unsafely


def test_a_file_from_a_newer_format_version_is_refused(saved):
    path, _ = saved
    rewrite(path, lambda header: header.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=f"{path} was written by a newer mlpcore.*version {FORMAT_VERSION + 1}"):
        mlpcore.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda header: header.update(format="other"), "not a mlpcore model file.*marker"),
    (lambda header: header.update(version="1"), "invalid format version '1'"),
    (lambda header: header.pop("architecture"), "no architecture"),
    (lambda header: header["architecture"].update(cost="hinge"), "architecture in its header is invalid.*hinge"),
    (lambda header: header["architecture"].update(layer_sizes=[2**63, 7, 5, 3]),
     "architecture in its header is invalid: every layer needs 1..2\\^31-1 units"),
    (lambda header: header["architecture"].update(layer_sizes=[2, float("inf"), 5, 3]),
     "architecture in its header is invalid: layer sizes n must be integers >= 1"),
    (lambda header: header.update(dropout_seed=-1), "dropout_seed should be an integer"),
    (lambda header: header.update(metadata=[1]), "history and metadata should be JSON objects"),
    (lambda header: header.update(history=[1]), "history and metadata should be JSON objects"),
    (lambda header: header["architecture"].update(dtype="float16"),
     "architecture in its header is invalid: .*float16"),
    (lambda header: header.update(optimizer=7), "the optimizer in its header should be a JSON object, got 7"),
], ids=["marker", "version", "architecture", "cost", "layer-size", "infinite-layer-size", "dropout-seed", "metadata",
        "history", "dtype", "optimizer"])
def test_a_header_with_wrong_contents_is_refused(saved, change, message):
    path, _ = saved
    rewrite(path, change)
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        mlpcore.load(path)


@pytest.mark.parametrize("t", [2**63, 2**62])
def test_an_optimizer_step_count_that_steps_could_overflow_the_cores_int64_with_is_refused(tmp_path, t):
    """t below 2^62: no run of steps that a machine could take then overflows the core's int64."""
    net, _ = trained_net(np.float32)
    path = tmp_path / "model.npz"
    net.save(path, include_optimizer=True)
    rewrite(path, lambda header: header["optimizer"].update(t=t))
    with pytest.raises(ValueError, match=rf"{path}: its header's t should be an integer in \[0, 2\^62\), got {t}"):
        mlpcore.load(path)
    rewrite(path, lambda header: header["optimizer"].update(t=2**62 - 1))
    assert mlpcore.load(path).optimizer.t == 2**62 - 1


def test_a_header_whose_architecture_is_not_the_params_size_is_refused_before_building(saved, monkeypatch):
    """A forged header of huge layers is refused from its parameter count, before the network
    (gigabytes of parameters) is built."""
    path, _ = saved
    rewrite(path, lambda header: header["architecture"].update(layer_sizes=[4, 100000, 100000, 3]))
    monkeypatch.setattr(mlpcore.Network, "__init__", lambda *args, **kwargs: pytest.fail("the network was built"))
    with pytest.raises(ValueError, match=rf"{path}: the array 'params' should be float64 of shape \(10001100009,\)"):
        mlpcore.load(path)


@pytest.mark.parametrize("optimizer, k, value, message", [
    ("adam", 0, np.nan, "optimizer_state_0 holds NaN or inf"), ("rmsprop", 0, np.inf, "optimizer_state_0 holds NaN or inf"),
    ("adam", 1, -1.0, "optimizer_state_1 holds negative running means of squared gradients"),
    ("rmsprop", 0, -1.0, "optimizer_state_0 holds negative running means")])
def test_a_corrupt_optimizer_state_is_refused(tmp_path, optimizer, k, value, message):
    net = mlpcore.Network([3, 4, 2], ["tanh", "softmax"], "cce", seed=0)
    net.fit(np.ones((3, 8)), np.arange(8) % 2, epochs=1, batch_size=4, optimizer=optimizer, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path, include_optimizer=True)
    state = np.array(net.optimizer.state[k])
    state[5] = value
    rewrite(path, **{f"optimizer_state_{k}": state})
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        mlpcore.load(path)


@pytest.mark.parametrize("raw", [b"{not json", b"[" * 100_000 + b"]" * 100_000], ids=["not_json", "nested_deep"])
def test_a_header_that_is_not_json_is_refused(saved, raw):
    path, _ = saved
    rewrite(path, header=np.frombuffer(raw, dtype=np.uint8))
    with pytest.raises(ValueError, match=f"{path}: its header is corrupted"):
        mlpcore.load(path)


def test_saving_onto_a_folder_names_it(tmp_path):
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a folder; give a file's path"):
        net.save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_metadata_nested_past_the_recursion_limit_is_refused(tmp_path):
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="metadata nests too deeply for JSON"):
        net.save(tmp_path / "model.npz", metadata={"deep": deep})
    assert os.listdir(tmp_path) == []


def test_saving_onto_a_fifo_is_refused_and_leaves_it(tmp_path):
    """A file that is not a regular one (a FIFO here; /dev/null, a device, alike) is refused:
    the rename of the atomic write would replace it."""
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="cannot write .*pipe: it is not a regular file"):
        net.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


def test_loading_a_fifo_is_refused_at_once(tmp_path):
    """Opening a FIFO waits for a writer: load refuses it before (in a child, killed if it waits)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, "-c", "import sys, mlpcore; mlpcore.load(sys.argv[1])", str(fifo)],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert run.stderr.splitlines()[-1] == f"ValueError: {fifo} is not a readable mlpcore model file: it is not a " \
                                          "regular file (a device, FIFO or socket)"


@pytest.mark.parametrize("end", [os.sep, os.sep + os.curdir, os.sep + os.pardir])
def test_a_path_ending_as_a_folders_does_is_refused(tmp_path, end):
    """"model.npz/" names a folder, as open takes it: save does not write a file model.npz."""
    net = mlpcore.Network([2, 1], ["identity"], "mse")
    path = str(tmp_path / "model.npz") + end
    with pytest.raises(IsADirectoryError, match=rf"^cannot write {path}: it ends as a folder's path does; give a "
                                                r"file's path$"):
        net.save(path)
    assert os.listdir(tmp_path) == []


def test_saving_through_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    net = mlpcore.Network([2, 1], ["identity"], "mse", seed=3)
    target, link = tmp_path / "model.mlpcore", tmp_path / "latest"
    target.write_bytes(b"old")
    os.symlink(target.name, link)
    net.save(link)
    assert os.path.islink(link) and os.readlink(link) == target.name
    np.testing.assert_array_equal(mlpcore.load(target).params, net.params)
    dangling = tmp_path / "next"
    os.symlink("made-by-save.mlpcore", dangling)
    net.save(dangling)
    assert os.path.islink(dangling)
    np.testing.assert_array_equal(mlpcore.load(tmp_path / "made-by-save.mlpcore").params, net.params)


@pytest.mark.parametrize("key, array, message", [
    ("params", np.zeros(3), "'params' should be float64 of shape"),
    ("params", None, "'params' is missing"),
    ("running_var_3", np.zeros((3, 1), np.float32), "'running_var_3' should be float64 of shape \\(3, 1\\)"),
])
def test_arrays_that_do_not_fit_the_architecture_are_refused(saved, key, array, message):
    path, _ = saved
    with np.load(path, allow_pickle=False) as archive:
        contents = {name: archive[name] for name in archive.files if name != key}
    if array is not None:
        contents[key] = array
    np.savez(path, **contents)
    with pytest.raises(ValueError, match=f"{path}: the array {message}"):
        mlpcore.load(path)


# ---- pickle -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_an_unfitted_network_pickles_and_deep_copies(dtype):
    net = mlpcore.Network([3, 4, 2], ["tanh", "identity"], "mse", dtype=np.dtype(dtype).name, seed=1,
                          batch_norm=[True, False], dropout=[0.5])
    net.metadata = {"note": "kept"}
    for copied in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert_same_network(copied, net)
        assert copied.params.ctypes.data != net.params.ctypes.data  # its own memory
    X = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_array_equal(copy.deepcopy(net).forward(X).A[2], net.forward(X).A[2])


@pytest.mark.parametrize("state", [{}, {"mlpcore": "text"}, None], ids=["empty", "str", "none"])
def test_a_state_that_is_not_a_pickled_network_is_refused(state):
    blank = mlpcore.Network.__new__(mlpcore.Network)
    with pytest.raises(ValueError, match="not the pickled state of a mlpcore.Network"):
        blank.__setstate__(state)


def test_a_pickle_holds_only_the_bytes_of_the_file():
    net = mlpcore.Network([2, 1], ["identity"], "mse", seed=3)
    state = net.__getstate__()
    assert list(state) == ["mlpcore"] and isinstance(state["mlpcore"], bytes)
    with np.load(io.BytesIO(state["mlpcore"]), allow_pickle=False) as archive:
        assert json.loads(archive["header"].tobytes().decode())["format"] == "mlpcore"


# ---- optimizer state and resuming training (needs OptimizerState32/64.t settable) -----------

def fit_twice(net, X, labels, epochs, between=lambda net: net, **settings):
    """fit epochs, pass the network through between (e.g. save and load), fit epochs more."""
    net.fit(X, labels, epochs=epochs, **settings)
    net = between(net)
    net.fit(X, labels, epochs=epochs, **settings)
    return net


def through_file(path):
    def save_and_load(net):
        net.save(path, include_optimizer=True)
        return mlpcore.load(path)
    return save_and_load


@pytest.mark.parametrize("optimizer", ["adam", "nesterov", "rmsprop", "sgd"])
def test_the_optimizer_and_its_state_come_back(tmp_path, optimizer):
    net, X = trained_net(np.float32)
    net.fit(X, np.zeros(60, np.int64), epochs=1, optimizer=optimizer, learning_rate=0.003, verbose=0)
    net.save(tmp_path / "model.npz", include_optimizer=True)
    loaded = mlpcore.load(tmp_path / "model.npz").optimizer
    assert (loaded.spec, loaded.learning_rate, loaded.t) == (net.optimizer.spec, 0.003, net.optimizer.t) \
        and loaded.t > 0
    assert len(loaded.state) == len(net.optimizer.state)
    for restored, state in zip(loaded.state, net.optimizer.state):
        np.testing.assert_array_equal(restored, state)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_resumes_exactly_after_save_and_load(tmp_path, dtype):
    """k epochs, save with the optimizer, load, k more == 2k epochs in one go, bit for bit."""
    rng = np.random.default_rng(7)
    X, labels = rng.standard_normal((4, 50)), rng.integers(0, 3, size=50)

    def new_net():
        return mlpcore.Network([4, 6, 3], ["relu", "softmax"], "cce", dtype=np.dtype(dtype).name, seed=3,
                               batch_norm=[True, False])

    settings = dict(batch_size=8, optimizer="adam", learning_rate=0.01, shuffle=False, verbose=0)
    one_go = new_net()
    one_go.fit(X, labels, epochs=6, **settings)
    resumed = fit_twice(new_net(), X, labels, 3, through_file(tmp_path / "model.npz"), **settings)
    np.testing.assert_array_equal(resumed.params, one_go.params)
    np.testing.assert_array_equal(resumed.running_var[1], one_go.running_var[1])
    assert resumed.optimizer.t == one_go.optimizer.t


def test_training_with_shuffling_and_dropout_resumes_as_without_saving(tmp_path):
    """Two fits with a load between them train as the same two fits on one network."""
    net, X = trained_net(np.float64)
    twin = pickle.loads(pickle.dumps(net))
    labels = np.arange(60) % 3
    settings = dict(batch_size=16, optimizer="adam", seed=11, verbose=0)
    resumed = fit_twice(net, X, labels, 2, through_file(tmp_path / "model.npz"), **settings)
    kept = fit_twice(twin, X, labels, 2, **settings)
    np.testing.assert_array_equal(resumed.params, kept.params)
    assert resumed.history == kept.history | {"time": resumed.history["time"]}


@pytest.mark.parametrize("what", ["cache", "gradients", "optimizer_with_state"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_what_belongs_to_a_network_in_the_core_is_refused_by_pickle_and_copy_with_the_reason(what, how):
    net, X = trained_net("float32")
    cache = net.forward(X)
    value = {"cache": cache, "gradients": net.backward(cache, np.zeros(X.shape[1], np.int64)),
             "optimizer_with_state": net.optimizer}[what]
    pattern = {"cache": r"a mlpcore\.Cache is not pickled or copied: it is a batch's working memory",
               "gradients": r"mlpcore\.Gradients are not pickled or copied",
               "optimizer_with_state": r"an optimizer with state is not pickled or copied by itself: .*pickle the "
                                       r"network"}[what]
    with pytest.raises(TypeError, match=pattern):
        {"pickle": pickle.dumps, "deepcopy": copy.deepcopy, "copy": copy.copy}[how](value)


def test_an_optimizer_without_state_pickles():
    opt = mlpcore.optim.Adam(learning_rate=0.02, beta1=0.8)
    again = pickle.loads(pickle.dumps(opt))
    assert (again.learning_rate, again.hyper, again.t, again.state) == (0.02, opt.hyper, 0, [])
    assert copy.deepcopy(opt).spec == opt.spec


def test_a_fitted_network_pickles_with_its_optimizer():
    net, X = trained_net(np.float32)
    copied = pickle.loads(pickle.dumps(net))
    assert_same_network(copied, net)
    assert (copied.optimizer.spec, copied.optimizer.t) == (net.optimizer.spec, net.optimizer.t)
    for restored, state in zip(copied.optimizer.state, net.optimizer.state):
        np.testing.assert_array_equal(restored, state)


def test_saving_without_the_optimizer_leaves_it_out(tmp_path):
    net, _ = trained_net(np.float32)
    net.save(tmp_path / "model.npz")
    assert mlpcore.load(tmp_path / "model.npz").optimizer is None
    net.save(tmp_path / "with.npz", include_optimizer=True)
    with np.load(tmp_path / "with.npz", allow_pickle=False) as archive:
        assert {"optimizer_state_0", "optimizer_state_1"} <= set(archive.files)


def test_a_file_with_nan_parameters_is_refused(saved):
    path, net = saved
    params = np.array(net.params)
    params[0] = np.nan
    rewrite(path, params=params)
    with pytest.raises(ValueError, match="params holds NaN or inf"):
        mlpcore.load(path)
