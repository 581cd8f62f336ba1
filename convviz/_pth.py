"""A torch-free reader for PyTorch checkpoint (``.pth``) files.

:func:`read_pth` reads both formats of ``torch.save`` with :mod:`pickle`, :mod:`zipfile`
and numpy, and returns the saved object with every tensor replaced by a numpy array.
Only tensors, storages and (ordered) dicts, lists and tuples are unpickled; anything
else (code, modules) is refused, like ``torch.load(weights_only=True)``.
:mod:`convviz.efficientnet` uses it to load EfficientNet-Lite0's ImageNet checkpoint
without torch.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["read_pth"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class -> numpy dtype (bfloat16 is widened to float32 below).
_STORAGE_DTYPES = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are filled in after the pickle (legacy) or from the zip."""

    def __init__(self, stype: _StorageType, numel: int):
        self.stype, self.numel, self.data = stype, numel, None


class _View:
    """A legacy storage view: ``numel`` elements of ``base`` from ``offset``."""

    def __init__(self, base: _Storage, offset: int, numel: int):
        self.base, self.offset, self.numel = base, offset, numel

    @property
    def stype(self):
        return self.base.stype

    @property
    def data(self):
        return self.base.data[self.offset : self.offset + self.numel]


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ValueError("a tensor refers to a storage whose data is missing")
        if self.size and min(self.size) == 0:
            return np.zeros(self.size, flat.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= flat.size:
            raise ValueError("a tensor reaches outside its storage (damaged file)")
        strides = [s * flat.itemsize for s in self.stride]
        a = np.lib.stride_tricks.as_strided(
            flat[self.offset :], self.size, strides, writeable=False
        )
        a = np.array(a)  # own, contiguous copy
        if self.storage.stype.name == "BFloat16Storage":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a


def _rebuild_tensor(storage, storage_offset, size, stride, *args, **kwargs):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


class _Unpickler(pickle.Unpickler):
    """Unpickles a torch checkpoint with only the classes a plain state dict needs."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed in a weights file (only tensors, "
            "storages and (Ordered)dicts are read)."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._load_storage(*pid[1:])


def _resolve(obj):
    if isinstance(obj, _Tensor):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _read_legacy(f) -> object:
    if pickle.load(f) != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (wrong magic number)")
    if pickle.load(f) != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy PyTorch checkpoint protocol version")
    sys_info = pickle.load(f)
    order = "<" if sys_info.get("little_endian", True) else ">"
    storages: dict[str, _Storage] = {}

    def load_storage(stype, key, location, numel, view=None):
        key = str(key)
        if key not in storages:
            storages[key] = _Storage(stype, int(numel))
        if view is None:
            return storages[key]
        _view_key, offset, view_numel = view
        return _View(storages[key], int(offset), int(view_numel))

    result = _Unpickler(f, load_storage).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[str(key)]
        (numel,) = np.frombuffer(_read_exact(f, 8), dtype=order + "i8")
        dtype = st.stype.dtype.newbyteorder(order)
        raw = _read_exact(f, int(numel) * dtype.itemsize)
        st.data = np.frombuffer(raw, dtype=dtype).astype(st.stype.dtype.newbyteorder("="))
    return _resolve(result)


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("unexpected end of file (truncated checkpoint)")
    return data


def _read_zip(path) -> object:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise ValueError("zip file without <archive>/data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        order = "<"
        if prefix + "byteorder" in names:
            order = "<" if zf.read(prefix + "byteorder").strip() == b"little" else ">"
        storages: dict[str, _Storage] = {}

        def load_storage(stype, key, location, numel, *rest):
            key = str(key)
            if key not in storages:
                st = _Storage(stype, int(numel))
                raw = zf.read(f"{prefix}data/{key}")
                dtype = stype.dtype.newbyteorder(order)
                st.data = np.frombuffer(raw, dtype=dtype).astype(stype.dtype.newbyteorder("="))
                storages[key] = st
            return storages[key]

        with zf.open(pkl[0]) as f:
            result = _Unpickler(io.BytesIO(f.read()), load_storage).load()
    return _resolve(result)


def read_pth(path) -> object:
    """Read a PyTorch ``.pth`` checkpoint into numpy arrays, without torch.

    Both of ``torch.save``'s formats are read: the legacy one (pickles followed by raw
    storages) and the zip one (``data.pkl`` plus ``data/<key>`` entries). Only tensors,
    storages and (ordered) dicts, lists and tuples are unpickled; anything else (code,
    modules) is refused, like ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.

    Returns
    -------
    object
        The saved object with every tensor replaced by a numpy array of the same shape
        and dtype (bfloat16 becomes float32): for a state dict, an ``OrderedDict``
        name -> array.

    Examples
    --------
    >>> state = read_pth("efficientnet-lite0-57934424.pth")  # doctest: +SKIP
    >>> len(state), state["_conv_stem.weight"].shape  # doctest: +SKIP
    (296, (32, 3, 3, 3))
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        return _read_legacy(f)
