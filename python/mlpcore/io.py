"""Saving and loading networks: one .npz file that loading cannot turn into code execution.

    net.save("model.npz", include_optimizer=True, metadata={"classes": ["a", "b"]})
    net = mlpcore.load("model.npz")

The file is a NumPy .npz archive (a zip of .npy arrays), read with
``np.load(allow_pickle=False)``, so no pickle is ever involved:

- "header": uint8, the UTF-8 bytes of a JSON object: {"format": "mlpcore",
  "version": 1, "architecture": {...}, "dropout_seed", "training_forwards",
  "history", "metadata", "optimizer": null or {"spec", "learning_rate", "t"}};
- "params": the flat parameter buffer, net.params, of the network's dtype;
- "running_mean_l", "running_var_l" (n[l], 1) for each batch-norm layer l;
- "optimizer_state_k" for the optimizer's k-th state buffer, laid out like params.

A file is written atomically (a temporary file in the same folder, fsync, then
rename over the target): a crash leaves the old file or the new one, never half
a file. Pickling a Network (``pickle``, ``copy.deepcopy``, ``joblib.dump``)
goes through the same bytes, optimizer included.
"""

import io
import json
import os
import stat
import tokenize
import uuid
import zipfile

import numpy as np

from .optim import make_optimizer

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_NAME = "mlpcore"
FORMAT_VERSION = 1  # bump when a file of this version could not be read by an older mlpcore


def save(net, path, include_optimizer=False, metadata=None):
    """Write net to the file at path (str or os.PathLike; ".npz" is the usual ending).

    Holds the architecture (layer sizes, activations with their alpha, cost, dtype,
    dropout, batch_norm, bn_eps, bn_momentum), the parameters, the batch-norm running
    statistics, the dropout seed and count of training forwards, the last history
    (net.history), and metadata (a dict of JSON values, or None for net.metadata;
    NumPy arrays and scalars in it are stored as lists and numbers). With
    include_optimizer, net.optimizer too (spec, learning rate, step count t and state
    buffers), so that a later fit resumes training exactly where it stopped.
    """
    if not isinstance(include_optimizer, (bool, np.bool_)):
        raise TypeError(f"include_optimizer must be True or False, got {include_optimizer!r}")
    arrays = _arrays_of(net, bool(include_optimizer), net.metadata if metadata is None else metadata)
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load(path):
    """The Network saved at path by ``Network.save``, with net.history, net.metadata and,
    if it was saved, net.optimizer with its state.

    Raises OSError (FileNotFoundError, IsADirectoryError, PermissionError) when the path
    cannot be opened, and ValueError, naming the file and what is wrong, for a truncated,
    corrupted or foreign file or one written by a newer mlpcore.
    """
    path = os.fspath(path)
    _require_regular_file(path)
    with open(path, "rb") as file:
        arrays = _read_arrays(file, path)
    from .network import Network  # network.py imports this module

    net = Network.__new__(Network)
    _restore(net, arrays, path)
    return net


def to_bytes(net):
    """The bytes of the file that save(net, path) writes, with net.optimizer if it has one."""
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays_of(net, net.optimizer is not None, net.metadata))
    return buffer.getvalue()


def restore_from_bytes(net, data):
    """Initialise the blank Network net (made by Network.__new__) from to_bytes's bytes."""
    source = "<pickled mlpcore.Network>"
    _restore(net, _read_arrays(io.BytesIO(data), source), source)


def writable_path(path):
    """(folder, name), as str, of a file path (str, bytes or os.PathLike) that may be written,
    symbolic links followed (the file they point to is written, the links stay): raises
    IsADirectoryError if path is a folder (or empty, or ends as a folder's path does: in a separator,
    "." or ".."), ValueError if it is another file that is not a regular one (a device such as
    /dev/null, a FIFO, a socket), which the rename of write_atomically would replace,
    FileNotFoundError if its folder does not exist, PermissionError if this process may not write
    into that folder."""
    path = os.fsdecode(path)
    if not path or os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path or repr(path)}: it is a folder; give a file's path")
    if os.path.basename(path) in ("", os.curdir, os.pardir):  # "model.npz/": open would refuse it too
        raise IsADirectoryError(f"cannot write {path}: it ends as a folder's path does; give a file's path")
    real = os.path.realpath(path)
    if os.path.exists(real) and not os.path.isfile(real):
        raise ValueError(f"cannot write {path}: it is not a regular file (a device, FIFO or socket); "
                         "give a file's path")
    folder, name = os.path.split(real)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: this process may not write into the folder {folder}")
    return folder, name


def write_atomically(path, write):
    """Call write(file) on a new temporary file beside path, fsync it, then rename it to path.

    A failure anywhere removes the temporary file and leaves path as it was. The
    new file gets the permissions of any new file (0666 less the umask).
    """
    folder, name = writable_path(path)
    temporary = os.path.join(folder, f".mlpcore-{uuid.uuid4().hex}.tmp")  # not longer for a long name
    try:
        file = open(temporary, "xb")  # a new file, with a name (matplotlib's pgf writes images beside it)
    except OSError as error:  # which names the temporary file, not path
        raise type(error)(error.errno, f"cannot write {path}: {error.strerror}") from None
    try:
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX: fsync the folder's entry)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---- writing -------------------------------------------------------------------------------

def _arrays_of(net, include_optimizer, metadata):
    """The named arrays of the file: header, params, running statistics, optimizer state."""
    optimizer = net.optimizer if include_optimizer else None  # net.history and net.optimizer: see Network._KINDS
    if include_optimizer and optimizer is None:
        raise ValueError("include_optimizer=True but the network has no optimizer (net.optimizer is None: "
                         "neither fit nor an optimizer's step has trained it, or reset_optimizer() was called)")
    if optimizer is not None:
        try:  # as load makes it again: its hyper-parameters may have been changed since they were checked
            make_optimizer(optimizer.spec, optimizer.learning_rate)
        except (TypeError, ValueError) as error:
            raise ValueError(f"net.optimizer cannot be saved as it is, since load would refuse it: {error}") from None
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "architecture": _architecture(net),
        "dropout_seed": int(net._core.dropout_seed),
        "training_forwards": int(net._core.training_forwards),
        "history": net.history,
        "metadata": _json_metadata(metadata),
        "optimizer": None if optimizer is None else {
            "spec": list(optimizer.spec), "learning_rate": optimizer.learning_rate, "t": int(optimizer.t)},
    }
    arrays = {"header": np.frombuffer(_to_json(header, "the header").encode(), dtype=np.uint8),
              "params": np.array(net.params).reshape(-1)}  # 1-D even if its shape was changed in place
    for l in net._batch_norm_layers:
        arrays[f"running_mean_{l}"] = np.array(net.running_mean[l])
        arrays[f"running_var_{l}"] = np.array(net.running_var[l])
    for k, buffer in enumerate(optimizer.state if optimizer is not None else ()):
        arrays[f"optimizer_state_{k}"] = np.array(buffer)
    _require_loadable(arrays, optimizer)
    return arrays


def _require_loadable(arrays, optimizer):
    """Refuse, as load would, parameters, running statistics or optimizer state that hold NaN or
    inf, and running variances or running means of squared gradients (RMSprop's, Adam's last
    buffer) that are negative."""
    k = None if optimizer is None else _squares(optimizer)
    squares = set() if k is None else {f"optimizer_state_{k}"}
    for name, array in arrays.items():
        if name == "header":
            continue
        if not np.all(np.isfinite(array)):
            what = "NaN or inf (did training diverge?)"
        elif (name.startswith("running_var_") or name in squares) and np.any(array < 0):
            what = "negative values (variances and means of squares are >= 0)"
        else:
            continue
        raise ValueError(f"the network cannot be saved or pickled as it is, since load would refuse it: its {name} "
                         f"holds {what}")


def _squares(optimizer):
    """The index in optimizer.state of its running mean of squared gradients, never negative
    (RMSprop's v, Adam's and AdamW's v: the last buffer), or None (SGD has none)."""
    return len(optimizer.state) - 1 if optimizer.method in ("rmsprop", "adam", "adamw") else None


def _architecture(net):
    """The keyword arguments of Network(...) that rebuild net's architecture."""
    return {"layer_sizes": list(net.n), "activations": [[name, params] for name, params in net.activations],
            "cost": net.cost_name, "dtype": net.dtype.name, "dropout": list(net.dropout[:-1]),
            "batch_norm": list(net.batch_norm), "bn_eps": net.bn_eps, "bn_momentum": net.bn_momentum}


def _json_metadata(metadata):
    """metadata as plain JSON values (NumPy arrays and scalars become lists and numbers)."""
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}")
    return json.loads(_to_json(metadata, "metadata"))


def _to_json(value, what):
    """value as JSON text; TypeError for what JSON cannot hold as it is: other types than its
    own (NumPy arrays and scalars are converted), and keys of dicts that are not str (JSON would
    make them str, and two keys such as 1 and "1" one)."""
    def plain(item):
        if isinstance(item, (np.ndarray, np.generic)):
            converted = item.tolist()
            if not isinstance(converted, np.generic):  # a longdouble's tolist() is itself
                return converted
        raise TypeError(f"{what} must hold JSON values (dict, list, str, number, bool, None; NumPy arrays "
                        f"and scalars are converted), got {type(item).__name__}: {item!r}")
    try:
        text = json.dumps(value, default=plain)  # first: it refuses circular references
        _require_str_keys(value, what)
    except RecursionError:
        raise ValueError(f"{what} nests too deeply for JSON (more levels than Python's recursion limit)") from None
    return text


def _require_str_keys(value, what):
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{what} must have str keys, as JSON objects do, got {key!r}")
            _require_str_keys(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _require_str_keys(item, what)


# ---- reading -------------------------------------------------------------------------------

# The first bytes of a zip (an empty zip starts with the second), which np.load reads as a .npz, and of
# a .npy array; np.load takes anything else for a pickle.
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_NPY = np.lib.format.MAGIC_PREFIX

# How much more than the archive's own bytes its members may inflate to: np.savez stores them as
# they are, and float parameters compress little; a member of zeros deflates a thousandfold.
_INFLATION = 16

# The longest .npy header that np.load reads (numpy's max_header_size): parsing one could take much memory.
_MAX_HEADER_SIZE = 10000


def _require_regular_file(path):
    """Refuse, before it is opened (opening a FIFO waits for a writer), a path that is not a regular
    file; a folder is left for open to refuse (IsADirectoryError)."""
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{path} is not a readable mlpcore model file: it is not a regular file "
                         "(a device, FIFO or socket)")


def _require_members_fit(file):
    """Refuse, before any member is inflated, an archive whose members would take much more memory
    than the file (a deflated member of 1 GiB of zeros in a 1 MB file), or one holding a .npy array
    that np.load would not read safely. np.load reads as .npy every member that starts as one,
    whatever its name."""
    length = file.seek(0, io.SEEK_END)
    file.seek(0)
    with zipfile.ZipFile(file) as archive:
        members = archive.infolist()
        if sum(member.file_size for member in members) > _INFLATION * length + 2**20:
            raise ValueError(f"its members would inflate to more than {_INFLATION} times the file's size")
        for member in members:
            with archive.open(member) as npy:
                if npy.read(len(_NPY)) == _NPY:
                    npy.seek(0)
                    _require_npy_fits(npy, member)


def _require_npy_fits(npy, member):
    """Refuse the .npy zip member (npy, open at its start) if np.load would unpickle it (an object
    dtype, which allow_pickle=False refuses), fail on it other than with ValueError, or allocate more
    than it holds (a shape of 10^10 in a few bytes)."""
    shape, dtype = _npy_header(npy, member.filename)
    if dtype.hasobject:
        raise ValueError(f"it holds pickled objects (its member {member.filename})")
    if any(isinstance(size, bool) or size < 0 for size in shape):
        raise ValueError(f"its member {member.filename} declares an invalid shape {shape}")
    if np.prod(shape, dtype=object) * dtype.itemsize > member.file_size:
        raise ValueError(f"its member {member.filename} declares more items than it holds")


def _npy_header(npy, name):
    """(shape, dtype) that the .npy header at the start of npy, the member name, declares; ValueError
    for a header longer than np.load reads, or a malformed one (numpy's parsing raises TypeError,
    SyntaxError or TokenError for some)."""
    version = np.lib.format.read_magic(npy)
    start = npy.tell()
    length = int.from_bytes(npy.read(2 if version == (1, 0) else 4), "little")  # uint16 in version 1.0, uint32 later
    if length > _MAX_HEADER_SIZE:
        raise ValueError(f"its member {name} has a .npy header of {length} bytes, more than the "
                         f"{_MAX_HEADER_SIZE} that np.load reads")
    npy.seek(start)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
        np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = read_header(npy)
    except (TypeError, SyntaxError, tokenize.TokenError) as error:
        raise ValueError(f"its member {name} has a malformed .npy header: {type(error).__name__}: {error}") from None
    return shape, dtype


def _read_arrays(file, source):
    """All arrays of the .npz in the open binary file, refusing what is not one."""
    try:
        start = file.read(len(_NPY))
        if start == _NPY:
            raise ValueError("it is a single .npy array")
        if not start.startswith(_ZIP):
            raise ValueError("it is not a .npz archive (it does not start as a zip file does)")
        _require_members_fit(file)
        file.seek(0)
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        if not all(isinstance(array, np.ndarray) for array in arrays.values()):
            raise ValueError("it holds a member that is not a .npy array")
        return arrays
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as error:
        raise ValueError(f"{source} is not a readable mlpcore model file (a .npz archive): "
                         f"{type(error).__name__}: {error}") from None


def _restore(net, arrays, source):
    """Initialise the blank Network net from the file's arrays; ValueError naming source if they are wrong."""
    header = _header(arrays, source)
    _require_parameter_count(header, arrays, source)
    try:
        net.__init__(**header["architecture"])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{source}: the architecture in its header is invalid: {error}") from None
    net.params[...] = _finite(_array(arrays, "params", net.params.shape, net.dtype, source), "params", source)
    for l in net._batch_norm_layers:
        for name in ("running_mean", "running_var"):
            getattr(net, name)[l] = _finite(_array(arrays, f"{name}_{l}", (net.n[l], 1), net.dtype, source),
                                            f"{name}_{l}", source)
        if np.any(net.running_var[l] < 0):
            raise ValueError(f"{source}: running_var_{l} holds negative variances: the file is corrupt")
    net._core.dropout_seed = _integer(header, "dropout_seed", source)
    net._core.training_forwards = _integer(header, "training_forwards", source)
    history, metadata = header.get("history"), header.get("metadata", {})
    if not (history is None or isinstance(history, dict)) or not isinstance(metadata, dict):
        raise ValueError(f"{source}: its header's history and metadata should be JSON objects")
    net.history, net.metadata = history, metadata
    if header.get("optimizer") is not None:
        net.optimizer = _optimizer(net, header["optimizer"], arrays, source)


def _require_parameter_count(header, arrays, source):
    """Refuse, before the network is built (and its parameters drawn), params that are not of
    the architecture's size: a forged header could otherwise ask for gigabytes. An architecture
    that is malformed passes here, for Network to name what is wrong with it."""
    try:
        architecture = header["architecture"]
        n = [int(size) for size in architecture["layer_sizes"]]
        batch_norm = architecture.get("batch_norm") or [False] * (len(n) - 1)
        count = sum(n[l] * n[l - 1] + n[l] + (2 * n[l] if batch_norm[l - 1] else 0) for l in range(1, len(n)))
        dtype = np.dtype(architecture["dtype"])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
        return
    if dtype not in (np.float32, np.float64):
        return
    if all(1 <= size < 2**31 for size in n):
        _array(arrays, "params", (count,), dtype, source)


def _finite(array, name, source):
    """array, refused with ValueError naming it and source when it holds NaN or inf."""
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: {name} holds NaN or inf: the file is corrupt")
    return array


def _header(arrays, source):
    """The file's JSON header, checked for the mlpcore marker and a version this code reads."""
    if "header" not in arrays:
        raise ValueError(f"{source} is a .npz archive but not a mlpcore model file: it has no header "
                         f"(its arrays: {', '.join(sorted(arrays)) or 'none'})")
    raw = arrays["header"]
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"the header is {raw.dtype} of shape {raw.shape}, not 1-D uint8")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise ValueError(f"{source}: its header is corrupted: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{source} is not a mlpcore model file: its header has no \"format\": \"mlpcore\" marker")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{source}: its header has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{source} was written by a newer mlpcore (file format version {version}; this mlpcore "
                         f"reads versions up to {FORMAT_VERSION}): upgrade mlpcore to load it")
    if not isinstance(header.get("architecture"), dict):
        raise ValueError(f"{source}: its header has no architecture")
    return header


def _array(arrays, key, shape, dtype, source):
    """arrays[key], which must exist with this shape and dtype."""
    if key not in arrays:
        raise ValueError(f"{source}: the array {key!r} is missing")
    array = arrays[key]
    if array.shape != tuple(shape) or array.dtype != dtype:
        raise ValueError(f"{source}: the array {key!r} should be {np.dtype(dtype).name} of shape {tuple(shape)}, "
                         f"got {array.dtype} of shape {array.shape}")
    return array


def _integer(header, key, source, below=2**64):
    """header[key], an integer in [0, below), below a power of 2: the core keeps it in a uint64
    (below 2^64), or t, a step count, in an int64 that no run of steps may overflow (below 2^62)."""
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < below:
        raise ValueError(f"{source}: its header's {key} should be an integer in [0, 2^{below.bit_length() - 1}), "
                         f"got {value!r}")
    return value


def _optimizer(net, saved, arrays, source):
    """The saved optimizer, with its state buffers and step count, bound to net."""
    if not isinstance(saved, dict):
        raise ValueError(f"{source}: the optimizer in its header should be a JSON object, got {saved!r:.60}")
    try:
        optimizer = make_optimizer(tuple(saved["spec"]), saved["learning_rate"])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{source}: the optimizer in its header is invalid: {error}") from None
    t = _integer(saved, "t", source, below=2**62)
    if t == 0:
        return optimizer
    state = optimizer._state_for(net)
    buffers = optimizer.state
    for k, buffer in enumerate(buffers):
        buffer[...] = _finite(_array(arrays, f"optimizer_state_{k}", buffer.shape, net.dtype, source),
                              f"optimizer_state_{k}", source)
    k = _squares(optimizer)
    if k is not None and np.any(buffers[k] < 0):
        raise ValueError(f"{source}: optimizer_state_{k} holds negative running means of squared "
                         f"gradients: the file is corrupt")
    if f"optimizer_state_{len(buffers)}" in arrays:
        raise ValueError(f"{source}: the file has more optimizer state buffers than {saved['spec'][0]} uses "
                         f"({len(buffers)})")
    state.t = t
    return optimizer
