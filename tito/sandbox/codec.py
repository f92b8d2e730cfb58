"""The wire format between the trusted and the limited process: JSON, with NumPy arrays as .npy.

Nothing is ever unpickled: arrays load with allow_pickle=False, and every other object becomes a
reference ({"$ref": id}) owned by the side that holds it.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable

import numpy as np

MAX_DEPTH = 64


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def is_plain_type(t: type) -> bool:
    return t in (type(None), bool, int, float, str)


def encode_array(array: np.ndarray) -> dict:
    return {"$nd": _npy(array)}


def decode_array(data: dict) -> np.ndarray:
    return _from_npy(data["$nd"])


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
    if t is np.ndarray and value.dtype != object:
        return array_ref(value) if array_ref else encode_array(value)
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"$np": _npy(np.asarray(value))}
    if t is np.dtype or isinstance(value, np.dtype):
        return {"$dtype": value.str if value.names is None else str(value)}
    if isinstance(value, type) and issubclass(value, np.generic) and value.__module__ == "numpy":
        return {"$nptype": value.__name__}
    if t is slice:
        return {"$slice": [encode(value.start, make_ref, depth + 1), encode(value.stop, make_ref, depth + 1),
                           encode(value.step, make_ref, depth + 1)]}
    if value is Ellipsis:
        return {"$ellipsis": 1}
    if value is NotImplemented:
        return {"$notimpl": 1}
    return make_ref(value)


def decode(data: Any, resolve_ref: Callable[[dict], Any], depth: int = 0, resolve_array: Callable | None = None) -> Any:
    """Inverse of encode; resolve_ref turns a reference dict into a local object or a proxy,
    resolve_array an array dict ($nd, $yours, $view) into an array."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is not dict or len(data) == 0:
        raise ValueError(f"malformed value on the wire: {type(data).__name__}")
    key = next(iter(data))
    body = data[key]
    if key == "$complex":
        return complex(float(body[0]), float(body[1]))
    if key == "$bytes":
        return base64.b64decode(body)
    if key in ("$tuple", "$list"):
        items = [decode(v, resolve_ref, depth + 1, resolve_array) for v in body]
        return tuple(items) if key == "$tuple" else items
    if key == "$dict":
        return {decode(k, resolve_ref, depth + 1, resolve_array): decode(v, resolve_ref, depth + 1, resolve_array)
                for k, v in body}
    if key in ("$nd", "$yours", "$view"):
        return resolve_array(data) if resolve_array else decode_array(data)
    if key == "$np":
        return _from_npy(body)[()]
    if key == "$dtype":
        return np.dtype(body)
    if key == "$nptype":
        kind = getattr(np, str(body), None)
        if not (isinstance(kind, type) and issubclass(kind, np.generic)):
            raise ValueError(f"unknown numpy type {body!r}")
        return kind
    if key == "$slice":
        return slice(*(decode(v, resolve_ref, depth + 1, resolve_array) for v in body))
    if key == "$ellipsis":
        return Ellipsis
    if key == "$notimpl":
        return NotImplemented
    if key in ("$ref", "$own", "$lib"):
        return resolve_ref(data)
    raise ValueError(f"unknown tag {key!r} on the wire")
