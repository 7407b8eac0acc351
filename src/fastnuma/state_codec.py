"""State codec: an object graph of the simulator as JSON-ready data plus a list of arrays.

Used by checkpoints (checkpoint.py: the JSON goes into manifest.json, the arrays into .npy
files) and by pickling (``Simulator`` and ``Report``'s ``__getstate__``), so that what
Dask moves and what a checkpoint holds are one representation.

It is generic on purpose: every attribute of every object is walked (``__dict__`` and
``__slots__``), so an array or a field that someone adds to ``Machine``, to a table or to
the report builder is saved without a change here. What it knows:

- ``None``, bool, int (any size), float, str: themselves; numpy scalars and dtypes tagged.
- list, dict (any keys, order kept), set: tagged, and memoised by identity, so a container
  referenced twice is one container again after decoding; tuple, frozenset: by value.
- numpy arrays: an index into the array list, by identity: arrays shared between the
  machine, the kernels' ``SimState`` and the report builder stay shared. An array that is
  a view of another array in the graph is recorded as that view (offset, shape, strides).
- objects of classes defined in the ``fastnuma`` package: class name and attribute values,
  memoised (cycles and sharing kept); they are rebuilt with ``cls.__new__`` and attribute
  assignment, no constructor, no code from the data. Only ``fastnuma`` classes are rebuilt.
- ``SimState`` (a Numba structref, kernels/state.py): its arrays; rebuilt with its constructor.
- ``functools.partial`` of a bound method, and bound methods: the object and the name.
- ``externals``: objects that are not state (the simulator's subsystem modules) by name;
  the decoder is handed the new ones.

Anything else (a lambda, an open file) raises :class:`StateError` naming where it is.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import types

import numpy as np

_PACKAGE = __name__.split(".")[0]


class StateError(ValueError):
    """The state cannot be encoded or decoded (a one-line reason)."""


def _is_ours(cls) -> bool:
    return cls.__module__ == _PACKAGE or cls.__module__.startswith(_PACKAGE + ".")


def _is_simstate(obj) -> bool:
    """The kernels' state struct (kernels/state.py), told without importing Numba."""
    cls = type(obj)
    return cls.__name__ == "SimState" and cls.__module__ == f"{_PACKAGE}.kernels.state"


def _slot_names(cls):
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                yield name


def _attributes(obj) -> dict:
    """Every attribute of ``obj``: its ``__dict__`` and its set slots."""
    out = dict(getattr(obj, "__dict__", {}))
    for name in _slot_names(type(obj)):
        try:
            out[name] = object.__getattribute__(obj, name)
        except AttributeError:
            pass
    return out


def _root_base(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


class Encoder:
    """Encode objects into JSON-ready data; ``arrays`` collects the arrays met, in order.

    ``externals``: {name: object} of objects written as references by name. ``roots``:
    objects given fixed memo ids (id 0, 1, ...) that the caller re-creates before decoding.
    """

    def __init__(self, externals: dict | None = None, roots: tuple = ()):
        self._ext = {id(v): k for k, v in (externals or {}).items()}
        self._memo = {}
        self._alive = []                       # keeps ids stable while encoding
        self.arrays: list[np.ndarray] = []
        self._array_ids: dict[int, int] = {}
        for obj in roots:
            self._remember(obj)

    def _remember(self, obj) -> int:
        k = len(self._memo)
        self._memo[id(obj)] = k
        self._alive.append(obj)
        return k

    def array_table(self) -> list[dict]:
        """How each array is stored: ``{"stored": True}``, or a view of another array
        (``view_of``, byte ``offset``, ``shape``, ``strides``, ``dtype``). Call after the
        last ``encode``."""
        by_root = {}
        for j, a in enumerate(self.arrays):
            by_root.setdefault(id(_root_base(a)), []).append(j)
        table = []
        for j, a in enumerate(self.arrays):
            root = _root_base(a)
            owner = self._array_ids.get(id(root))
            if a.base is None or owner is None or owner == j:
                table.append({"stored": True})
            else:
                table.append({"view_of": owner, "offset": _address(a) - _address(root),
                              "shape": list(a.shape), "strides": list(a.strides),
                              "dtype": np.lib.format.dtype_to_descr(a.dtype)})
        return table

    def encode(self, obj, path: str = "state"):
        """``obj`` as JSON-ready data (``path`` names it in errors)."""
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and type(obj) is int:
            return obj
        if isinstance(obj, float) and type(obj) is float:
            return {"$float": repr(obj)}             # repr round-trips, nan and inf too
        ext = self._ext.get(id(obj))
        if ext is not None:
            return {"$ext": ext}
        if isinstance(obj, np.ndarray):
            j = self._array_ids.get(id(obj))
            if j is None:
                if obj.dtype.hasobject:
                    raise StateError(f"{path}: an array of Python objects cannot be saved")
                j = self._array_ids[id(obj)] = len(self.arrays)
                self.arrays.append(obj)
            return {"$array": j}
        if isinstance(obj, np.generic):
            return {"$np": np.lib.format.dtype_to_descr(obj.dtype), "v": self.encode(
                obj.item(), path)}
        if isinstance(obj, np.dtype):
            return {"$dtype": np.lib.format.dtype_to_descr(obj)}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(x, f"{path}[{i}]") for i, x in enumerate(obj)]}
        if isinstance(obj, frozenset):
            return {"$fset": [self.encode(x, f"{path}{{}}") for x in obj]}
        k = self._memo.get(id(obj))
        if k is not None:
            return {"$ref": k}
        if type(obj) is list:
            k = self._remember(obj)
            return {"$list": [self.encode(x, f"{path}[{i}]") for i, x in enumerate(obj)],
                    "$id": k}
        if type(obj) is dict:
            k = self._remember(obj)
            return {"$dict": [[self.encode(a, f"{path}.key"), self.encode(b, f"{path}[{a!r}]")]
                              for a, b in obj.items()], "$id": k}
        if type(obj) is set:
            k = self._remember(obj)
            return {"$set": [self.encode(x, f"{path}{{}}") for x in obj], "$id": k}
        if _is_simstate(obj):
            k = self._remember(obj)
            return {"$simstate": self.encode(dict(obj.arrays), f"{path}.arrays"), "$id": k}
        if isinstance(obj, functools.partial):
            k = self._remember(obj)
            return {"$partial": self.encode(obj.func, f"{path}.func"),
                    "args": self.encode(obj.args, f"{path}.args"),
                    "kw": self.encode(dict(obj.keywords), f"{path}.keywords"), "$id": k}
        if isinstance(obj, types.MethodType):
            return {"$method": self.encode(obj.__self__, f"{path}.__self__"),
                    "name": obj.__func__.__name__}
        cls = type(obj)
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) \
                or not _is_ours(cls):
            raise StateError(f"{path}: cannot save a {cls.__module__}.{cls.__qualname__} "
                             f"({obj!r:.60}); state holds data, fastnuma objects and "
                             f"functools.partial of methods only")
        k = self._remember(obj)
        return {"$obj": f"{cls.__module__}:{cls.__qualname__}", "$id": k,
                "state": {name: self.encode(v, f"{path}.{name}")
                          for name, v in _attributes(obj).items()}}


class Decoder:
    """Decode what :class:`Encoder` wrote. ``arrays``: the array list, in order (stored
    entries filled, views built here from ``table``); ``externals``: {name: object};
    ``roots``: the objects standing for the encoder's roots (memo ids 0, 1, ...)."""

    def __init__(self, arrays: list, table: list[dict] | None = None,
                 externals: dict | None = None, roots: tuple = ()):
        self.externals = dict(externals or {})
        self._memo = {k: obj for k, obj in enumerate(roots)}
        self.arrays = list(arrays)
        for j, entry in enumerate(table or []):
            if not entry.get("stored", False):
                base = self.arrays[entry["view_of"]]
                self.arrays[j] = np.ndarray(tuple(entry["shape"]),
                                            np.lib.format.descr_to_dtype(_descr(entry["dtype"])),
                                            buffer=base, offset=entry["offset"],
                                            strides=tuple(entry["strides"]))

    def decode(self, data):
        if data is None or isinstance(data, (bool, int, str)):
            return data
        if isinstance(data, list):                       # only inside tagged containers
            raise StateError("malformed state: a bare list")
        tag = next((k for k in data if k.startswith("$") and k != "$id"), None)
        if tag == "$float":
            return float(data["$float"])
        if tag == "$ext":
            return self.externals[data["$ext"]]
        if tag == "$array":
            return self.arrays[data["$array"]]
        if tag == "$np":
            return np.lib.format.descr_to_dtype(_descr(data["$np"])).type(
                self.decode(data["v"]))
        if tag == "$dtype":
            return np.lib.format.descr_to_dtype(_descr(data["$dtype"]))
        if tag == "$tuple":
            return tuple(self.decode(x) for x in data["$tuple"])
        if tag == "$fset":
            return frozenset(self.decode(x) for x in data["$fset"])
        if tag == "$ref":
            return self._memo[data["$ref"]]
        if tag == "$list":
            out = self._memo[data["$id"]] = []
            out.extend(self.decode(x) for x in data["$list"])
            return out
        if tag == "$dict":
            out = self._memo[data["$id"]] = {}
            for a, b in data["$dict"]:
                out[self.decode(a)] = self.decode(b)
            return out
        if tag == "$set":
            out = self._memo[data["$id"]] = set()
            out.update(self.decode(x) for x in data["$set"])
            return out
        if tag == "$simstate":
            from .kernels.state import SimState     # Numba: only when there is one
            arrays = self.decode(data["$simstate"])
            st = self._memo[data["$id"]] = SimState(**arrays)
            return st
        if tag == "$partial":
            func = self.decode(data["$partial"])
            out = functools.partial(func, *self.decode(data["args"]), **self.decode(data["kw"]))
            self._memo[data["$id"]] = out
            return out
        if tag == "$method":
            return getattr(self.decode(data["$method"]), data["name"])
        if tag == "$obj":
            cls = _class(data["$obj"])
            obj = self._memo[data["$id"]] = cls.__new__(cls)
            self.fill(obj, data["state"])
            return obj
        raise StateError(f"malformed state: unknown entry {tag!r}")

    def bind_root(self, k: int, obj) -> None:
        """``obj`` stands for the encoder's root ``k`` (created after decoding began)."""
        self._memo[k] = obj

    def fill(self, obj, state: dict) -> None:
        """Set the attributes of ``obj`` from an encoded ``state`` mapping."""
        for name, value in state.items():
            object.__setattr__(obj, name, self.decode(value))
        if dataclasses.is_dataclass(obj):      # a field added since the state was saved
            for f in dataclasses.fields(obj):  # (Vma.prot) takes its default
                if f.name not in state and f.default is not dataclasses.MISSING:
                    object.__setattr__(obj, f.name, f.default)


def _descr(d):
    """A dtype descr from JSON (lists back to the tuples numpy expects)."""
    if not isinstance(d, list):
        return d
    out = []
    for name, typ, *shape in d:           # (name, type) or (name, type, shape)
        out.append((name, _descr(typ), *(tuple(s) for s in shape)))
    return out


def _class(name: str):
    module, _, qualname = name.partition(":")
    if not (module == _PACKAGE or module.startswith(_PACKAGE + ".")):
        raise StateError(f"refusing to rebuild {name}: not a fastnuma class")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        raise StateError(f"no class {name} in this fastnuma")
    return obj


def encode_value(obj) -> dict:
    """``obj`` with its arrays, for pickling: {"state", "arrays", "table"}."""
    enc = Encoder()
    state = enc.encode(obj)
    return {"state": state, "arrays": enc.arrays, "table": enc.array_table()}


def decode_value(packed: dict):
    """The object :func:`encode_value` packed."""
    return Decoder(packed["arrays"], packed["table"]).decode(packed["state"])


def _label(path: str) -> str:
    tail = path.rsplit(".", 1)[-1].rsplit("[", 1)[-1]
    return "".join(c if c.isalnum() or c == "_" else "" for c in tail)[:40] or "array"


def array_labels(graph, n):
    """A short label per array of an encoded ``graph`` (the attribute that first holds
    it), for file names."""
    labels = ["array"] * n
    seen = set()

    def walk(node, name):
        if isinstance(node, dict):
            if "$array" in node and len(node) == 1:
                j = node["$array"]
                if j not in seen:
                    seen.add(j)
                    labels[j] = _label(name)
                return
            if "$dict" in node:
                for k, v in node["$dict"]:
                    walk(v, k if isinstance(k, str) else name)
                return
            for k, v in node.items():
                walk(v, name if k.startswith("$") else k)
        elif isinstance(node, list):
            for v in node:
                walk(v, name)
    walk(graph, "state")
    return labels
