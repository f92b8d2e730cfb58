"""One side of the grading conversation: its object table, its proxies of the other side, its ops.

Both processes run an Endpoint. Requests name an op and carry encoded values; an object that is
not data is sent as a reference and used on the other side through a Proxy. Exceptions come back
as (type names, message); only ordinary exceptions are re-raised, so a SystemExit or
KeyboardInterrupt raised by student code can never stop the trusted process.
"""

from __future__ import annotations

import builtins
import operator
from typing import Any

import numpy as np

from tito.sandbox import codec
from tito.sandbox.channel import Channel

# What `operator` requests may apply: Python's operator protocol plus a few builtins.
OPERATORS = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs", "invert",
    "eq", "ne", "lt", "le", "gt", "ge", "getitem", "setitem", "delitem", "contains", "truth", "index",
    "and_", "or_", "xor", "lshift", "rshift")}
OPERATORS.update({"len": len, "float": float, "int": int, "repr": repr, "str": str, "hash": hash,
                  "list": list, "bool": bool, "complex": complex, "dir": dir})
MAX_MESSAGE_TEXT = 4000


class RemoteError(Exception):
    """An exception from the other process whose type is not an ordinary built-in exception."""


def describe_exception(exc: BaseException) -> dict:
    names = [c.__name__ for c in type(exc).__mro__]
    try:
        message = str(exc)[:MAX_MESSAGE_TEXT]
    except Exception:  # a student's __str__ may itself raise
        message = "<unprintable exception>"
    return {"types": names, "message": message}


def rebuild_exception(info: dict) -> Exception:
    """The closest ordinary built-in exception (so `pytest.raises(ValueError)` still works)."""
    message = str(info.get("message", ""))[:MAX_MESSAGE_TEXT]
    names = [str(n) for n in info.get("types", [])][:64]
    for name in names:
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception) and kind is not Exception:
            try:
                return kind(message)
            except Exception:
                continue
    label = names[0] if names else "Exception"
    return RemoteError(f"{label}: {message}" if message else label)


# Library functions (np.ones, gc.isenabled) the tests hand to student code are sent by name and run
# on the student's side, where the work they stand for (allocating, timing) is meant to happen.
LIBRARY_MODULES = ("numpy", "math", "gc", "time", "tracemalloc", "operator", "_operator", "statistics", "itertools",
                   "functools", "_functools", "builtins")


def library_name(obj: Any) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module.split(".")[0] not in LIBRARY_MODULES:
        return None
    import importlib

    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None


def resolve_library_name(name: str) -> Any:
    import importlib

    module, _, qualname = str(name).partition(":")
    if module.split(".")[0] not in LIBRARY_MODULES:
        raise ValueError(f"library {module!r} not allowed")
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class Endpoint:
    sends_library_names = False      # the trusted side sends them
    accepts_library_names = False    # only the limited side resolves them (never let it name code for us)

    def __init__(self, read_fd: int, write_fd: int):
        self.objects: dict[int, Any] = {}      # our objects the other side holds references to
        self.ids_by_identity: dict[int, int] = {}
        self.proxies: dict[int, Any] = {}      # one proxy per remote object, so `is` holds
        # Arrays cross as copies; these tables let an array (or a view of it) that comes back be
        # the sender's own array again, so `out is x` and np.shares_memory mean what they say.
        self.sent_arrays: dict[int, np.ndarray] = {}
        self.received_arrays: dict[int, tuple[int, np.ndarray]] = {}   # id(local copy) -> (sender's id, copy)
        self.channel = Channel(read_fd, write_fd, self.handle)

    # -- references -----------------------------------------------------------------------------
    def make_ref(self, obj: Any) -> dict:
        from tito.sandbox.proxy import proxy_ref

        owner_ref = proxy_ref(obj)
        if owner_ref is not None:
            return {"$own": owner_ref}
        if self.sends_library_names and callable(obj):
            name = library_name(obj)
            if name:
                return {"$lib": name}
        rid = self.ids_by_identity.get(id(obj))
        if rid is None or self.objects.get(rid) is not obj:
            rid = len(self.objects) + 1
            self.objects[rid] = obj
            self.ids_by_identity[id(obj)] = rid
        if isinstance(obj, type):
            kind = "class"
        elif callable(obj):
            kind = "callable"
        else:
            kind = "object"
        name = getattr(obj, "__name__", None) if kind != "object" else type(obj).__name__
        ref = {"$ref": rid, "kind": kind, "name": str(name or type(obj).__name__)}
        if kind == "class":
            # Bases come along, so a class hierarchy keeps its shape (registries walk __mro__).
            ref["bases"] = [self.make_ref(b) for b in obj.__bases__ if b is not object and proxy_ref(b) is None
                            and not (self.sends_library_names and library_name(b))]
        else:
            ref["cls"] = self.make_ref(type(obj))
        return ref

    def resolve_ref(self, data: dict) -> Any:
        from tito.sandbox.proxy import make_class_proxy, make_instance_proxy

        if "$lib" in data:
            if not self.accepts_library_names:
                raise ValueError("library references are not accepted here")
            return resolve_library_name(data["$lib"])
        if "$own" in data:
            rid = data["$own"]
            if rid not in self.objects:
                raise ValueError("reference to an unknown object")
            return self.objects[rid]
        rid = int(data["$ref"])
        if rid not in self.proxies:
            name = str(data.get("name", "object"))
            if data.get("kind") == "class":
                bases = [self.resolve_ref(b) for b in data.get("bases", [])[:16] if isinstance(b, dict) and "$ref" in b]
                self.proxies[rid] = make_class_proxy(self, rid, name, bases)
            else:
                cls_ref = data.get("cls")
                cls = self.resolve_ref(cls_ref) if isinstance(cls_ref, dict) and "$ref" in cls_ref else None
                self.proxies[rid] = make_instance_proxy(self, rid, name, cls)
        return self.proxies[rid]

    def encode(self, value: Any) -> Any:
        return codec.encode(value, self.make_ref, array_ref=self.array_ref)

    def decode(self, data: Any) -> Any:
        return codec.decode(data, self.resolve_ref, resolve_array=self.resolve_array)

    def array_ref(self, array: np.ndarray) -> dict:
        base = array
        while base is not None:
            known = self.received_arrays.get(id(base))
            if known is not None and known[1] is base:
                if base is array:
                    return {"$yours": known[0]}
                offset = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
                if base.flags.c_contiguous and array.dtype.names is None:
                    return {"$view": known[0], "offset": int(offset), "shape": list(array.shape),
                            "strides": list(array.strides), "dtype": array.dtype.str}
                break
            base = base.base if isinstance(base.base, np.ndarray) else None
        key = len(self.sent_arrays) + 1
        self.sent_arrays[key] = array
        return {**codec.encode_array(array), "id": key}

    def resolve_array(self, data: dict) -> np.ndarray:
        if "$yours" in data or "$view" in data:
            original = self.sent_arrays.get(int(data.get("$yours", data.get("$view"))))
            if original is None:
                raise ValueError("reference to an unknown array")
            if "$yours" in data:
                return original
            dtype = np.dtype(str(data["dtype"]))
            shape, strides, offset = tuple(map(int, data["shape"])), tuple(map(int, data["strides"])), int(data["offset"])
            if original.flags.c_contiguous and dtype.names is None:
                try:
                    return np.ndarray(shape, dtype, buffer=original, offset=offset, strides=strides)
                except (TypeError, ValueError):
                    pass   # a view the sender could make but we cannot (out of bounds): refuse below
            raise ValueError("array view does not fit the original array")
        array = codec.decode_array(data)
        if array.base is not None:
            array = array.copy()   # own the memory, so views of it name it as their base
        if "id" in data:
            self.received_arrays[id(array)] = (int(data["id"]), array)
        return array

    # -- requests we make -----------------------------------------------------------------------
    def ask(self, op: str, **fields) -> Any:
        response = self.channel.request(op, **fields)
        if "err" in response:
            raise rebuild_exception(response["err"] if isinstance(response["err"], dict) else {})
        return response

    def value(self, op: str, **fields) -> Any:
        return self.decode(self.ask(op, **fields).get("ok"))

    def call(self, rid: int, args: tuple, kwargs: dict, method: str | None = None) -> Any:
        """Call a remote object (or its method); NumPy arrays passed in are updated in place after."""
        sent = {str(i): a for i, a in enumerate(args)} | {f"k:{k}": v for k, v in kwargs.items()}
        response = self.ask("call", ref=rid, method=method, args=[self.encode(a) for a in args],
                            kwargs={k: self.encode(v) for k, v in kwargs.items()})
        for key, data in response.get("writeback", []):
            original, updated = sent.get(key), self.decode(data)
            if isinstance(original, np.ndarray) and isinstance(updated, np.ndarray) and original.shape == updated.shape \
                    and original.flags.writeable:
                original[...] = updated
        same = response.get("same_as")
        if same is not None and same in sent:
            return sent[same]
        return self.decode(response.get("ok"))

    # -- requests we serve ----------------------------------------------------------------------
    def handle(self, message: dict) -> dict:
        try:
            return self.dispatch(message)
        except BaseException as exc:  # noqa: B902 - student code may raise anything, even SystemExit
            return {"err": describe_exception(exc)}

    def local(self, message: dict) -> Any:
        rid = message.get("ref")
        if rid not in self.objects:
            raise ValueError("reference to an unknown object")
        return self.objects[rid]

    def dispatch(self, message: dict) -> dict:
        op = message.get("op")
        if op == "call":
            return self.serve_call(message)
        if op == "getattr":
            return {"ok": self.encode(getattr(self.local(message), str(message["name"])))}
        if op == "setattr":
            setattr(self.local(message), str(message["name"]), self.decode(message["value"]))
            return {"ok": None}
        if op == "operator":
            fn = OPERATORS.get(str(message.get("fn")))
            if fn is None:
                raise ValueError(f"operator {message.get('fn')!r} not allowed")
            args = [self.decode(a) for a in message.get("args", [])]
            return {"ok": self.encode(fn(*args))}
        if op == "isinstance":
            return {"ok": isinstance(self.decode(message["value"]), self.local(message))}
        if op == "array":
            array = np.asarray(self.local(message))
            if array.dtype == object:
                raise TypeError("object arrays cannot be sent")
            return {"ok": self.encode(array)}
        return self.dispatch_extra(message)

    def dispatch_extra(self, message: dict) -> dict:
        raise ValueError(f"unknown request {message.get('op')!r}")

    def serve_call(self, message: dict) -> dict:
        target = self.local(message)
        if message.get("method"):
            target = getattr(target, str(message["method"]))
        args = [self.decode(a) for a in message.get("args", [])]
        kwargs = {str(k): self.decode(v) for k, v in message.get("kwargs", {}).items()}
        result = target(*args, **kwargs)
        passed = {str(i): a for i, a in enumerate(args)} | {f"k:{k}": v for k, v in kwargs.items()}
        arrays = {k: v for k, v in passed.items() if isinstance(v, np.ndarray)}
        same = next((k for k, v in passed.items() if v is result and isinstance(v, np.ndarray)), None)
        return {"ok": None if same else self.encode(result), "same_as": same,
                "writeback": [[k, codec.encode_array(v)] for k, v in arrays.items()]}
