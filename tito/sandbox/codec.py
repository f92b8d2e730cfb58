"""The wire format between the trusted and the limited process: JSON, with NumPy arrays as raw bytes.

Nothing is ever unpickled, and no array is built from a layout the sender chose: an array crosses
as (plain dtype, shape, bytes); the receiver checks that the dtype is a plain number or fixed-width
string type, that the declared size is under the limit and matches the payload (before allocating
anything), and builds a fresh C-contiguous array of its own. Every other object becomes a
reference owned by the side that holds it.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Callable

import numpy as np

MAX_DEPTH = 64
MAX_NDIM = 32
MAX_ARRAY_BYTES = 96 * 2**20      # one array; a frame is capped at 128 MiB anyway (base64 adds a third)
# bool, (u)int8..64, float16..64, complex64/128, fixed-width str/bytes: no objects, no records,
# no sub-arrays, no datetimes. `|b1` is NumPy's name for bool.
PLAIN_DTYPE = re.compile(r"[<>|=]?(?:b1|[iu][1248]|f[248]|c(?:8|16)|[US][1-9][0-9]{0,5})")
# Abstract scalar types a test may hand over (np.issubdtype(x.dtype, np.floating) on the other side).
ABSTRACT_TYPES = {"generic", "number", "integer", "signedinteger", "unsignedinteger", "inexact", "floating",
                  "complexfloating", "character", "flexible", "str_", "bytes_"}


class WireError(ValueError):
    """A value on the wire that this side refuses to build (malformed, unsafe or too large)."""


def is_plain_type(t: type) -> bool:
    return t in (type(None), bool, int, float, str)


def is_plain_dtype(dtype: np.dtype) -> bool:
    return dtype.names is None and dtype.subdtype is None and not dtype.hasobject \
        and PLAIN_DTYPE.fullmatch(dtype.str) is not None


def checked_dtype(text: Any) -> np.dtype:
    if type(text) is not str or PLAIN_DTYPE.fullmatch(text) is None:
        raise WireError(f"dtype {str(text)[:40]!r} refused: only plain numbers and fixed-width strings cross")
    return np.dtype(text)


def checked_shape(shape: Any) -> tuple[int, ...]:
    if type(shape) is not list or len(shape) > MAX_NDIM or any(type(n) is not int or n < 0 for n in shape):
        raise WireError("array shape refused: a list of at most 32 non-negative integers is expected")
    return tuple(shape)


def checked_nbytes(shape: tuple[int, ...], dtype: np.dtype, limit: int = MAX_ARRAY_BYTES) -> int:
    """The declared size, computed on Python ints (no overflow) and refused above the limit."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise WireError(f"array of {nbytes} bytes refused (limit {limit})")
    return nbytes


def encode_array(array: np.ndarray) -> dict:
    if not is_plain_dtype(array.dtype):
        raise TypeError(f"arrays of dtype {array.dtype} cannot be sent (plain numbers and strings only)")
    checked_nbytes(array.shape, array.dtype)
    data = np.ascontiguousarray(array).tobytes()
    return {"$nd": {"dtype": array.dtype.str, "shape": list(array.shape), "data": base64.b64encode(data).decode("ascii")}}


def decode_array(data: dict) -> np.ndarray:
    """A fresh, writable, C-contiguous array owning its memory; sizes checked before any allocation."""
    body = data.get("$nd") if type(data) is dict else None
    if type(body) is not dict or type(body.get("data")) is not str:
        raise WireError("malformed array on the wire")
    dtype, shape = checked_dtype(body.get("dtype")), checked_shape(body.get("shape"))
    nbytes = checked_nbytes(shape, dtype)
    text = body["data"]
    if len(text) != 4 * math.ceil(nbytes / 3):
        raise WireError("array payload does not match its declared shape and dtype")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise WireError(f"array payload is not base64 ({exc})") from None
    if len(raw) != nbytes:
        raise WireError("array payload does not match its declared shape and dtype")
    return np.frombuffer(raw, dtype).reshape(shape).copy()


def view_of(original: np.ndarray, dtype_text: Any, shape: Any, strides: Any, offset: Any) -> np.ndarray:
    """A view into an array this side owns, as the other side describes it: positive strides only,
    inside the original's memory, never more bytes than the original holds."""
    dtype, shape = checked_dtype(dtype_text), checked_shape(shape)
    if type(strides) is not list or len(strides) != len(shape) or any(type(s) is not int or s <= 0 for s in strides) \
            or type(offset) is not int or offset < 0:
        raise WireError("array view refused: positive integer strides and offset expected")
    if not original.flags.c_contiguous or checked_nbytes(shape, dtype, original.nbytes) > original.nbytes:
        raise WireError("array view does not fit the original array")
    if math.prod(shape):
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides)) + dtype.itemsize
        if last > original.nbytes:
            raise WireError("array view does not fit the original array")
    return np.ndarray(shape, dtype, buffer=original, offset=offset, strides=tuple(strides))


def encode(value: Any, make_ref: Callable[[Any], dict], depth: int = 0, array_ref: Callable | None = None) -> Any:
    """JSON-ready form of value; make_ref(obj) gives the reference dict for non-data objects.

    array_ref(array), when given, encodes arrays (so an endpoint can keep their identity).
    """
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply to send")
    t = type(value)
    if is_plain_type(t):
        return value
    if t is complex:
        return {"$complex": [value.real, value.imag]}
    if t is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if t in (tuple, list):
        return {"$tuple" if t is tuple else "$list": [encode(v, make_ref, depth + 1, array_ref) for v in value]}
    if t is dict:
        return {"$dict": [[encode(k, make_ref, depth + 1, array_ref), encode(v, make_ref, depth + 1, array_ref)]
                          for k, v in value.items()]}
    if t is np.ndarray and is_plain_dtype(value.dtype):
        return array_ref(value) if array_ref else encode_array(value)
    if isinstance(value, np.generic) and is_plain_dtype(value.dtype):
        return {"$np": encode_array(np.asarray(value))["$nd"]}
    if isinstance(value, np.dtype) and is_plain_dtype(value):
        return {"$dtype": value.str}
    if isinstance(value, type) and issubclass(value, np.generic) and value.__module__ == "numpy" \
            and getattr(np, value.__name__, None) is value:
        return {"$nptype": value.__name__}
    if t is slice:
        return {"$slice": [encode(value.start, make_ref, depth + 1), encode(value.stop, make_ref, depth + 1),
                           encode(value.step, make_ref, depth + 1)]}
    if value is Ellipsis:
        return {"$ellipsis": 1}
    if value is NotImplemented:
        return {"$notimpl": 1}
    return make_ref(value)


def _numpy_type(name: Any) -> type:
    kind = getattr(np, name, None) if type(name) is str else None
    if isinstance(kind, type) and issubclass(kind, np.generic):
        if name in ABSTRACT_TYPES:
            return kind
        try:
            dtype = np.dtype(kind)
        except TypeError:
            dtype = None
        if dtype is not None and is_plain_dtype(dtype):
            return kind
    raise WireError(f"numpy type {str(name)[:40]!r} refused")


def decode(data: Any, resolve_ref: Callable[[dict], Any], depth: int = 0, resolve_array: Callable | None = None) -> Any:
    """Inverse of encode; resolve_ref turns a reference dict into a local object or a proxy,
    resolve_array an array dict ($nd, $yours, $view) into an array. Anything malformed: WireError."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not dict or len(data) == 0:
        raise WireError(f"malformed value on the wire: {type(data).__name__}")
    key = next(iter(data))
    body = data[key]
    if key == "$complex":
        if type(body) is not list or len(body) != 2 or any(type(v) not in (int, float) for v in body):
            raise WireError("malformed complex number")
        return complex(float(body[0]), float(body[1]))
    if key == "$bytes":
        if type(body) is not str:
            raise WireError("malformed bytes")
        return base64.b64decode(body, validate=True)
    if key in ("$tuple", "$list"):
        if type(body) is not list:
            raise WireError("malformed sequence")
        items = [decode(v, resolve_ref, depth + 1, resolve_array) for v in body]
        return tuple(items) if key == "$tuple" else items
    if key == "$dict":
        if type(body) is not list or any(type(p) is not list or len(p) != 2 for p in body):
            raise WireError("malformed dict")
        return {decode(k, resolve_ref, depth + 1, resolve_array): decode(v, resolve_ref, depth + 1, resolve_array)
                for k, v in body}
    if key in ("$nd", "$yours", "$view"):
        return resolve_array(data) if resolve_array else decode_array(data)
    if key == "$np":
        return decode_array({"$nd": body})[()]
    if key == "$dtype":
        return checked_dtype(body)
    if key == "$nptype":
        return _numpy_type(body)
    if key == "$slice":
        if type(body) is not list or len(body) != 3:
            raise WireError("malformed slice")
        return slice(*(decode(v, resolve_ref, depth + 1, resolve_array) for v in body))
    if key == "$ellipsis":
        return Ellipsis
    if key == "$notimpl":
        return NotImplemented
    if key in ("$ref", "$own", "$lib"):
        return resolve_ref(data)
    raise WireError(f"unknown tag {str(key)[:40]!r} on the wire")
