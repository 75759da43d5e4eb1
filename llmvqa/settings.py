"""Reading settings dataclasses from YAML/JSON: number fields take numbers that YAML left as strings.

PyYAML follows YAML 1.1, where ``5e-5`` (no dot) is a string, not a float; recipes and
``--override`` values are written that way all the time.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from typing import Any

from llmvqa.errors import ConfigError


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Field → type. A field typed by a class its module imports only when needed (a settings section of a
    heavy package) resolves to Any: it is not a number field."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        module = vars(sys.modules[cls.__module__])
        hints: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            try:
                hints[f.name] = eval(f.type, module) if isinstance(f.type, str) else f.type  # noqa: S307 — annotations
            except NameError:
                hints[f.name] = Any
        return hints


def _example(cls: type, name: str, kind: type) -> Any:
    """The field's default when it is a non-zero number (a sensible example), else 1 / 1.0."""
    default = next((f.default for f in dataclasses.fields(cls) if f.name == name), None)
    return default if isinstance(default, (int, float)) and not isinstance(default, bool) and default else kind(1)


def coerce_number(cls: type, name: str, value: Any, key: str, source: str) -> Any:
    """value as the int/float that field ``name`` of dataclass ``cls`` holds; other fields pass through.

    key names the setting in messages (e.g. "stage3.lr"), source the file or object it came from."""
    kind = _field_types(cls).get(name)
    if kind not in (int, float) or value is None or type(value) is kind or (kind is float and type(value) is int):
        return value
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = float(value)
    except ValueError:
        raise ConfigError(source, f"{key} must be a number, got {value!r}", f"write e.g. {name}: {_example(cls, name, kind)}") from None
    if kind is int:
        if not number.is_integer():
            raise ConfigError(source, f"{key} must be a whole number, got {value!r}", f"write e.g. {name}: {int(number)}")
        return int(number)
    return number
