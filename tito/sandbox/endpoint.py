"""The two sides of the grading conversation, and what each will do for the other.

    Endpoint (trusted: the tests)  ── capabilities only ──▶  LimitedEndpoint (the submission)
                                   ◀── anything it asks ───

The trusted side may ask the limited one anything (attributes, calls, operators on the student's
objects): whatever runs there runs in the student's own limited process. The other way round is a
capability boundary. The trusted side serves only what a test deliberately handed to student code
(functions, classes and instances defined in the test's own source, passed as arguments or
returned to it), and only the operations that hand-over implies: calling a function, constructing
a test class, calling or reading the test-defined members of a test object. There is no attribute
walk (no dunders, no `__globals__`, no modules, no library objects or types of the trusted side:
library functions travel by name and are looked up on the student's side). A request outside that
is a ProtocolViolation: it ends the submission, never the grader.

Arrays cross as copies. The one way back is an array the test passes as `out=`: what the student
writes into it is written into the test's array. Any other array a test passes stays the test's
own: writes the student makes to its copy never reach it (so an oracle can never be rewritten).
Identity is kept where it is honest: an array that comes back unchanged (or a view of it) is the
test's own array again, so `f(x, out=out) is out` and `np.shares_memory(t.data, x)` hold.

Exceptions come back as (type names, message); only ordinary exceptions are re-raised, so a
SystemExit or KeyboardInterrupt raised by student code can never stop the trusted process.
"""

from __future__ import annotations

import builtins
import hashlib
import operator
import types
from typing import Any

import numpy as np

from tito.sandbox import codec
from tito.sandbox.channel import BridgeFailure, Channel, ProtocolViolation

# What `operator` requests may apply: Python's operator protocol plus a few builtins.
OPERATORS = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs", "invert",
    "eq", "ne", "lt", "le", "gt", "ge", "getitem", "setitem", "delitem", "contains", "truth", "index",
    "and_", "or_", "xor", "lshift", "rshift")}
OPERATORS.update({"len": len, "float": float, "int": int, "repr": repr, "str": str, "hash": hash,
                  "list": list, "bool": bool, "complex": complex, "dir": dir})
# The operators a Proxy (tito/sandbox/proxy.py) forwards; a request for any other is forged.
PROXY_OPERATORS = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor", "neg",
                   "pos", "abs", "float", "int", "index", "hash", "repr", "str", "eq", "ne", "lt", "le", "gt", "ge",
                   "getitem", "setitem", "delitem", "contains", "truth", "len", "list"}
MAX_MESSAGE_TEXT = 4000
GRADING_MODULE = "__grading__"      # the __name__ of the namespace graded tests run in
TEST_SOURCE_PREFIX = "<test "       # the file name graded test cells are compiled under
OUT_KEY = "k:out"                   # the one argument whose in-place changes are written back


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
    names = [str(n) for n in info.get("types", [])][:64] if isinstance(info.get("types"), list) else []
    for name in names:
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception) and kind is not Exception:
            try:
                return kind(message)
            except Exception:
                continue
    label = names[0] if names else "Exception"
    return RemoteError(f"{label}: {message}" if message else label)


def rebuild_exception_with_frames(info: dict) -> Exception:
    """rebuild_exception, carrying the student's own frames (text) for a visible test's report."""
    exc = rebuild_exception(info)
    frames = info.get("frames")
    if isinstance(frames, str) and frames:
        exc.student_frames = frames[-MAX_MESSAGE_TEXT:]
    return exc


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


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _digest(array: np.ndarray) -> bytes:
    # flat bytes of any dtype and shape; memoryview.cast refuses shapes with a zero (np.zeros((0, 3)))
    flat_bytes = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return hashlib.blake2b(flat_bytes, digest_size=16).digest()


class BridgeEndpoint:
    """What both sides share: the channel, proxies of the other side's objects, array identity."""

    strict = False

    def __init__(self, read_fd: int, write_fd: int):
        self.proxies: dict[int, Any] = {}      # one proxy per remote object, so `is` holds
        # Arrays cross as copies; these tables let an array (or a view of it) that comes back be
        # the sender's own array again, so `out is x` and np.shares_memory mean what they say.
        self.sent_arrays: dict[int, np.ndarray] = {}
        self.received_arrays: dict[int, tuple[int, np.ndarray]] = {}   # id(local copy) -> (sender's id, copy)
        self.channel = Channel(read_fd, write_fd, self.handle, strict=self.strict)

    def make_proxy(self, data: dict) -> Any:
        """A proxy for the other side's object described by a `$ref` dict."""
        from tito.sandbox.proxy import make_class_proxy, make_instance_proxy

        rid = data["$ref"]
        if type(rid) is not int:
            raise codec.WireError("malformed reference")
        if rid not in self.proxies:
            name = str(data.get("name", "object"))[:200]
            if data.get("kind") == "class":
                bases = data.get("bases", [])
                bases = [self.resolve_ref(b) for b in bases[:16] if isinstance(b, dict) and "$ref" in b] \
                    if isinstance(bases, list) else []
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

    def remember_sent(self, array: np.ndarray) -> dict:
        key = len(self.sent_arrays) + 1
        self.sent_arrays[key] = array
        return {**codec.encode_array(array), "id": key}

    def received_origin(self, array: np.ndarray) -> tuple[np.ndarray, int] | None:
        """(the received array that array is, or is a view of; the sender's id of it), if any."""
        base = array
        while base is not None:
            known = self.received_arrays.get(id(base))
            if known is not None and known[1] is base:
                return base, known[0]
            base = base.base if isinstance(base.base, np.ndarray) else None
        return None

    def identity_ref(self, array: np.ndarray, base: np.ndarray, sender_id: int) -> dict | None:
        """$yours / $view for an array that is (a view of) one the other side sent us."""
        if base is array:
            return {"$yours": sender_id}
        if base.flags.c_contiguous and codec.is_plain_dtype(array.dtype) and all(s > 0 for s in array.strides):
            offset = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
            return {"$view": sender_id, "offset": int(offset), "shape": list(array.shape),
                    "strides": list(array.strides), "dtype": array.dtype.str}
        return None

    # -- requests we make -----------------------------------------------------------------------
    def ask(self, op: str, **fields) -> Any:
        response = self.channel.request(op, **fields)
        if "err" in response:
            raise rebuild_exception_with_frames(response["err"] if isinstance(response["err"], dict) else {})
        return response

    def value(self, op: str, **fields) -> Any:
        return self.decode(self.ask(op, **fields).get("ok"))

    def call(self, rid: int, args: tuple, kwargs: dict, method: str | None = None) -> Any:
        """Call a remote object (or its method); an array passed as `out=` is updated in place after."""
        response = self.ask("call", ref=rid, method=method, args=[self.encode(a) for a in args],
                            kwargs={k: self.encode(v) for k, v in kwargs.items()})
        out = kwargs.get("out")
        writeback = response.get("writeback")
        if isinstance(out, np.ndarray) and isinstance(writeback, dict) and out.flags.writeable:
            updated = self.decode(writeback)
            if not isinstance(updated, np.ndarray) or updated.shape != out.shape or updated.dtype != out.dtype:
                raise ProtocolViolation("the out= array came back with another shape or dtype")
            out[...] = updated
        return self.decode(response.get("ok"))

    # -- requests we serve ----------------------------------------------------------------------
    def handle(self, message: dict) -> dict:
        raise NotImplementedError


class Endpoint(BridgeEndpoint):
    """The trusted side (tests, oracles, scoring): serves capabilities, and nothing else."""

    strict = True
    sends_library_names = True     # kept for callers that set it: the trusted side always sends them

    def __init__(self, read_fd: int, write_fd: int):
        super().__init__(read_fd, write_fd)
        self.capabilities: dict[int, Any] = {}      # what tests handed to student code, by id
        self.capability_ids: dict[int, int] = {}

    # -- what may cross -------------------------------------------------------------------------
    @staticmethod
    def is_test_function(obj: Any) -> bool:
        return isinstance(obj, types.FunctionType) and obj.__code__.co_filename.startswith(TEST_SOURCE_PREFIX)

    @staticmethod
    def is_test_class(obj: Any) -> bool:
        from tito.sandbox.proxy import RemoteClassMeta

        return isinstance(obj, type) and not isinstance(obj, RemoteClassMeta) and obj.__module__ == GRADING_MODULE \
            and type(obj) is type

    def kind_of(self, obj: Any) -> str | None:
        if self.is_test_function(obj):
            return "callable"
        if isinstance(obj, types.MethodType) and self.is_test_function(obj.__func__) \
                and (self.is_test_class(obj.__self__) or self.is_test_class(type(obj.__self__))):
            return "callable"
        if self.is_test_class(obj):
            return "class"
        if self.is_test_class(type(obj)):
            return "object"
        return None

    def make_ref(self, obj: Any) -> dict:
        from tito.sandbox.proxy import proxy_endpoint, proxy_ref

        owner_ref = proxy_ref(obj)
        if owner_ref is not None:
            if proxy_endpoint(obj) is not self:
                raise TypeError("an object of another grading session cannot be passed here")
            return {"$own": owner_ref}
        if callable(obj):
            name = library_name(obj)
            if name:
                return {"$lib": name}
        kind = self.kind_of(obj)
        if kind is None:
            raise TypeError(f"a {type(obj).__name__} cannot be handed to the submission's code: pass data, arrays, "
                            "the submission's own objects, library functions, or functions and classes defined in "
                            "the test (modules/AUTHORING.md, 'How graded tests run')")
        rid = self.capability_ids.get(id(obj))
        if rid is None or self.capabilities.get(rid) is not obj:
            rid = len(self.capabilities) + 1
            self.capabilities[rid] = obj
            self.capability_ids[id(obj)] = rid
        name = getattr(obj, "__name__", None) if kind != "object" else type(obj).__name__
        ref = {"$ref": rid, "kind": kind, "name": str(name or type(obj).__name__)}
        if kind == "class":
            # Test-defined bases come along, so a class hierarchy keeps its shape (registries walk __mro__).
            ref["bases"] = [self.make_ref(b) for b in obj.__bases__ if self.is_test_class(b)]
        elif kind == "object":
            ref["cls"] = self.make_ref(type(obj))
        return ref

    def resolve_ref(self, data: dict) -> Any:
        if "$own" in data:
            rid = data["$own"]
            if type(rid) is not int or rid not in self.capabilities:
                raise ProtocolViolation(f"a forged reference ({str(rid)[:40]})")
            return self.capabilities[rid]
        if "$ref" in data:
            return self.make_proxy(data)
        raise ProtocolViolation("a library reference sent to the trusted side")

    def array_ref(self, array: np.ndarray) -> dict:
        origin = self.received_origin(array)
        if origin is not None:
            ref = self.identity_ref(array, *origin)
            if ref is not None:
                return ref
        return self.remember_sent(array)

    def resolve_array(self, data: dict) -> np.ndarray:
        if "$yours" in data or "$view" in data:
            key = data.get("$yours", data.get("$view"))
            original = self.sent_arrays.get(key) if type(key) is int else None
            if original is None:
                raise ProtocolViolation("a reference to an array the grader never sent")
            if "$yours" in data:
                return original
            return codec.view_of(original, data.get("dtype"), data.get("shape"), data.get("strides"), data.get("offset"))
        array = codec.decode_array(data)
        if "id" in data:
            if type(data["id"]) is not int:
                raise codec.WireError("malformed array id")
            self.received_arrays[id(array)] = (data["id"], array)
        return array

    def decode(self, data: Any) -> Any:
        try:
            return super().decode(data)
        except BridgeFailure:
            raise
        except Exception as exc:  # anything we cannot build is the sender's fault
            raise ProtocolViolation(f"a value the grader refuses ({type(exc).__name__}: {str(exc)[:200]})") from None

    # -- requests we serve ----------------------------------------------------------------------
    def handle(self, message: dict) -> dict:
        op = message.get("op")
        serve = {"call": self.serve_call, "getattr": self.serve_getattr, "setattr": self.serve_setattr,
                 "operator": self.serve_operator, "isinstance": self.serve_isinstance,
                 "array": self.serve_array}.get(op) if type(op) is str else None
        if serve is None:
            raise ProtocolViolation(f"an unknown request ({str(op)[:40]!r})")
        target = self.capability(message) if op != "operator" else None
        arguments = self.arguments(message)
        try:
            return serve(target, message, *arguments)
        except BridgeFailure:
            raise
        except Exception as exc:  # the test's own code raised: the student's code sees that exception
            return {"err": describe_exception(exc)}

    def capability(self, message: dict) -> Any:
        rid = message.get("ref")
        if type(rid) is not int or rid not in self.capabilities:
            raise ProtocolViolation(f"a forged reference ({str(rid)[:40]})")
        return self.capabilities[rid]

    def arguments(self, message: dict) -> tuple[list, dict]:
        args, kwargs = message.get("args", []), message.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict:
            raise ProtocolViolation("malformed arguments")
        return [self.decode(a) for a in args], {str(k): self.decode(v) for k, v in kwargs.items()}

    def member(self, target: Any, name: Any, methods_only: bool = False) -> Any:
        """A member of a test object or class that the test itself defined, bound to the target."""
        if type(name) is not str or (_dunder(name) and name not in ("__call__", "__enter__", "__exit__")):
            raise ProtocolViolation(f"a request for the attribute {str(name)[:60]!r}")
        kind = self.kind_of(target)
        if kind == "object" and not methods_only and not _dunder(name) and name in getattr(target, "__dict__", {}):
            return target.__dict__[name]
        if kind in ("object", "class"):
            cls = target if kind == "class" else type(target)
            for owner in cls.__mro__:
                if self.is_test_class(owner) and name in owner.__dict__:
                    found = owner.__dict__[name]
                    if self.is_test_function(found):
                        return types.MethodType(found, target) if kind == "object" else found
                    if isinstance(found, property) and self.is_test_function(found.fget) and kind == "object" \
                            and not methods_only:
                        return found.fget(target)
                    if not methods_only and not callable(found) and not isinstance(found, (property, staticmethod, classmethod)):
                        return found
                    break
        raise AttributeError(f"the test's {type(target).__name__ if kind == 'object' else getattr(target, '__name__', 'object')} "
                             f"has no attribute {name!r} the submission may use")

    def serve_call(self, target, message, args, kwargs) -> dict:
        method = message.get("method")
        if method is not None:
            target = self.member(target, method, methods_only=True)
        elif self.kind_of(target) == "object":
            target = self.member(target, "__call__", methods_only=True)
        return {"ok": self.encode(target(*args, **kwargs))}

    def serve_getattr(self, target, message, args, kwargs) -> dict:
        return {"ok": self.encode(self.member(target, message.get("name")))}

    def serve_setattr(self, target, message, args, kwargs) -> dict:
        if type(message.get("name")) is not str or _dunder(message["name"]):
            raise ProtocolViolation("a request to set a special attribute")
        raise AttributeError("objects the test hands over are read-only for the submission")

    def serve_isinstance(self, target, message, args, kwargs) -> dict:
        if self.kind_of(target) != "class":
            raise ProtocolViolation("isinstance against something that is not a class of the test")
        return {"ok": isinstance(self.decode(message.get("value")), target)}

    def serve_array(self, target, message, args, kwargs) -> dict:
        raise TypeError("objects the test hands over do not convert to arrays")

    # Operators a test object supports: those its test-defined class implements, plus Python's
    # defaults by identity (hash, ==, !=, truth, repr) so it can sit in a student's dict or set.
    DUNDERS = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "truediv": "__truediv__", "matmul": "__matmul__",
               "getitem": "__getitem__", "len": "__len__", "contains": "__contains__", "neg": "__neg__",
               "eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__",
               "hash": "__hash__", "truth": "__bool__", "repr": "__repr__", "str": "__str__", "float": "__float__",
               "int": "__int__", "index": "__index__", "list": "__iter__"}
    REFLECTED = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "truediv": "__rtruediv__", "matmul": "__rmatmul__"}

    def serve_operator(self, _target, message, args, kwargs) -> dict:
        fn = message.get("fn")
        if type(fn) is not str or fn not in PROXY_OPERATORS:
            raise ProtocolViolation(f"an operator no proxy asks for ({str(fn)[:40]!r})")
        if not args or len(args) > 3:
            raise ProtocolViolation("an operator request with the wrong number of operands")
        mine = [a for a in args if self.kind_of(a) is not None]
        if not mine:
            raise ProtocolViolation("an operator request on nothing the test handed over")
        subject, rest, dunder = args[0], args[1:], self.DUNDERS.get(fn)
        if self.kind_of(subject) is None and len(args) == 2 and fn in self.REFLECTED:
            subject, rest, dunder = args[1], [args[0]], self.REFLECTED[fn]
        implemented = self._test_dunder(subject, dunder) if dunder else None
        if implemented is not None:
            result = implemented(*rest)
            return {"ok": self.encode(list(result) if fn == "list" else result)}
        identity = {"hash": lambda: object.__hash__(subject), "eq": lambda: subject is rest[0] if rest else False,
                    "ne": lambda: subject is not rest[0] if rest else True, "truth": lambda: True,
                    "repr": lambda: f"<{self._label(subject)} of the test>", "str": lambda: f"<{self._label(subject)} of the test>"}
        if fn in identity and self.kind_of(subject) is not None:
            return {"ok": self.encode(identity[fn]())}
        raise TypeError(f"the test's {self._label(subject)} does not support {fn}")

    def _test_dunder(self, subject: Any, dunder: str) -> Any:
        if self.kind_of(subject) != "object":
            return None
        for owner in type(subject).__mro__:
            if self.is_test_class(owner) and dunder in owner.__dict__:
                found = owner.__dict__[dunder]
                return types.MethodType(found, subject) if self.is_test_function(found) else None
        return None

    def _label(self, obj: Any) -> str:
        return getattr(obj, "__name__", None) if self.kind_of(obj) in ("class", "callable") else type(obj).__name__


class LimitedEndpoint(BridgeEndpoint):
    """The limited side (the submission's process): answers whatever the trusted side asks about
    its own objects; everything runs here, under the sandbox's limits."""

    def __init__(self, read_fd: int, write_fd: int):
        super().__init__(read_fd, write_fd)
        self.objects: dict[int, Any] = {}      # our objects the other side holds references to
        self.ids_by_identity: dict[int, int] = {}
        self.digests: dict[int, bytes] = {}    # id(received array) -> digest when it arrived
        self.writable: set[int] = set()        # received arrays passed as out=: changes go back

    # -- references -----------------------------------------------------------------------------
    def make_ref(self, obj: Any) -> dict:
        from tito.sandbox.proxy import proxy_ref

        owner_ref = proxy_ref(obj)
        if owner_ref is not None:
            return {"$own": owner_ref}
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
            ref["bases"] = [self.make_ref(b) for b in obj.__bases__ if b is not object and proxy_ref(b) is None]
        else:
            ref["cls"] = self.make_ref(type(obj))
        return ref

    def resolve_ref(self, data: dict) -> Any:
        if "$lib" in data:
            return resolve_library_name(data["$lib"])
        if "$own" in data:
            rid = data["$own"]
            if rid not in self.objects:
                raise ValueError("reference to an unknown object")
            return self.objects[rid]
        return self.make_proxy(data)

    def array_ref(self, array: np.ndarray) -> dict:
        origin = self.received_origin(array)
        if origin is not None:
            base, sender_id = origin
            # An array the test passed comes back as the test's own only while it is unchanged
            # (an out= array always: its changes were written back first).
            if id(base) in self.writable or self.digests.get(id(base)) == _digest(base):
                ref = self.identity_ref(array, base, sender_id)
                if ref is not None:
                    return ref
        return self.remember_sent(array)

    def resolve_array(self, data: dict) -> np.ndarray:
        if "$yours" in data or "$view" in data:
            key = data.get("$yours", data.get("$view"))
            original = self.sent_arrays.get(key) if type(key) is int else None
            if original is None:
                raise ValueError("reference to an unknown array")
            if "$yours" in data:
                return original
            return codec.view_of(original, data.get("dtype"), data.get("shape"), data.get("strides"), data.get("offset"))
        array = codec.decode_array(data)
        if "id" in data:
            self.received_arrays[id(array)] = (int(data["id"]), array)
            self.digests[id(array)] = _digest(array)
        return array

    # -- requests we serve ----------------------------------------------------------------------
    def handle(self, message: dict) -> dict:
        try:
            return self.dispatch(message)
        except BaseException as exc:  # noqa: B902 - student code may raise anything, even SystemExit
            return {"err": self.describe(exc)}

    def describe(self, exc: BaseException) -> dict:
        return describe_exception(exc)

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
            if not codec.is_plain_dtype(array.dtype):
                raise TypeError(f"arrays of dtype {array.dtype} cannot be sent")
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
        out = kwargs.get("out")
        if isinstance(out, np.ndarray) and out.base is None and id(out) in self.received_arrays:
            self.writable.add(id(out))
        result = target(*args, **kwargs)
        response = {"ok": None}
        if isinstance(out, np.ndarray) and id(out) in self.writable:
            response["writeback"] = codec.encode_array(out)
        response["ok"] = self.encode(result)
        return response
