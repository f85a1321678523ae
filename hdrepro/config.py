"""Type checks for the small dataclasses that configure a run (``GridSpec``, ``DataConfig``,
``OptimConfig``, ``TrainConfig``, ``RunOptions``, the studies' specs, …).

Each calls :func:`check_fields` first in its ``__post_init__``, so a wrong type fails at
construction with one line that names the class, the field, the value and the fix, instead of a
Python type error deep inside a run. The checks read the fields' annotations: ``float`` takes any
real number but not a bool or a string, ``int`` takes integers only, ``tuple[float, ...]`` takes a
tuple (or a list, stored as a tuple) of those, ``X | None`` takes None too. Values are never
converted otherwise: a cell's identity is the JSON of its fields, so 1 and 1.0 must stay as given.
Range checks stay with each class, beside the meaning of its fields.

:func:`config_id` is the identity of a config (a grid cell, a run): what a results store keys
its rows by, so that a rerun skips what is stored.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
import typing

from .errors import ConfigError


#: Fields added to configs after results were stored under ids computed without them, with the
#: value they implicitly had before. Such a field enters an id only when it differs from that
#: value, so every stored result keeps its id and a rerun still skips it.
LATER_DEFAULTS = {"stop_below": None, "second_order": "derived", "dtype": "float32",
                  "validation": 0.0}


def id_fields(obj) -> dict:
    """A dataclass's fields as a dict (nested configs too), later fields at their old value left
    out (LATER_DEFAULTS)."""
    return _without_later(dataclasses.asdict(obj))


def config_id(obj) -> str:
    """The identity of a config: 16 hex digits of the SHA-1 of :func:`id_fields` as sorted JSON."""
    blob = json.dumps(id_fields(obj), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _without_later(value):
    if isinstance(value, dict):
        return {k: _without_later(v) for k, v in value.items()
                if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_later(v) for v in value)
    return value


def check_fields(obj) -> None:
    """Check every field of the dataclass instance `obj` against its annotation (see above)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints.get(f.name, object)
        if _origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)   # frozen dataclasses need hashable fields
            object.__setattr__(obj, f.name, value)
        if not _matches(value, hint):
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {_describe(hint)}, got "
                              f"{_short(value)} ({type(value).__name__})"
                              f"{_hint(f.name, value, hint)}")


def _short(value) -> str:
    """The value's repr on one line, cut short: a loaded data set or a tensor passed by
    mistake must not fill the screen."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."



def check_range(obj, name: str, ok: bool, need: str, what: str = "it") -> None:
    """Raise ConfigError naming `obj`'s field `name` unless `ok`; `need` says what is allowed,
    `what` what the field is (e.g. "the learning rate α₀")."""
    if not ok:
        raise ConfigError(f"{type(obj).__name__}.{name} = {getattr(obj, name)!r} is out of range:"
                          f" {what} must be {need}")


def finite_nonneg(x) -> bool:
    return math.isfinite(x) and x >= 0


def _origin(hint):
    return typing.get_origin(hint)


def _matches(value, hint) -> bool:
    if hint in (object, typing.Any):
        return True
    origin, args = _origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()) \
            if args else isinstance(value, dict)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)


def _describe(hint) -> str:
    origin, args = _origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is str:
        return "a string"
    if hint is bool:
        return "True or False"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(args[0])}"
        return f"a tuple ({', '.join(_describe(a) for a in args)})"
    if origin is dict or hint is dict:
        return "a dict"
    return f"a {getattr(hint, '__name__', str(hint))}"


def _plural(hint) -> str:
    words = {float: "numbers", int: "integers", str: "strings"}
    return words.get(hint, _describe(hint))


def _hint(name: str, value, hint) -> str:
    """A fix for the commonest slips: one value where a tuple is wanted, a number as a string."""
    if _origin(hint) is tuple and not isinstance(value, (tuple, list)):
        return f"; write {name}=({value!r},) for one value"
    if dataclasses.is_dataclass(hint) and isinstance(value, str):
        return f"; write {name}={hint.__name__}({value!r})"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return ""
        if _matches(number, hint) or (hint is int and number.is_integer()):
            return f"; write {name}={value} without quotes"
    if hint is int and isinstance(value, float):
        return "; use a whole number"
    return ""
