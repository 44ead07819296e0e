"""Strict reading of scene dicts: every key is typed, range-checked and accounted for.

A `Section` wraps one JSON object. Reading a key marks it used; `finish()` then rejects
any key that was never read, so a typo or a parameter that does not apply to the chosen
type is an error naming the key and the file instead of a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from ..errors import SceneError
from ..input_files import describe_number, safe_float

REQUIRED: Any = object()
# A million repeats across a surface is already far below a texel per pixel; larger
# scales only lose float32 precision in the uv arithmetic.
MAX_UV_SCALE = 1e6


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {describe_number(value)}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:40] + "..."
        return f"the string {shown!r}" + (f" ({len(value)} characters)" if shown != value else "")
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__


class Section:
    """One JSON object of a scene, read key by key."""

    def __init__(
        self, data: Any, path: str, source: str, error: type[SceneError] = SceneError
    ) -> None:
        self.path = path
        self.source = source
        self.error = error
        if not isinstance(data, dict):
            self.fail(f"expected an object, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    # --- errors -------------------------------------------------------------------------
    def key_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | int | None = None) -> NoReturn:
        where = self.key_path(key) if key is not None else (self.path or "top level")
        raise self.error(f"{self.source}: {where}: {message}")

    # --- presence -----------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is REQUIRED:
                self.fail("this key is required", key)
            return default
        return self.data[key]

    def defaulted(self, key: str, default: Any) -> bool:
        """True (and the key marked read) when `key` is absent and has a default."""
        if key in self.data or default is REQUIRED:
            return False
        self.used.add(key)
        return True

    def finish(self) -> None:
        """Reject keys that were never read: unknown, misspelt or not used by this type."""
        unused = [k for k in self.data if k not in self.used]
        if unused:
            key = unused[0]
            known = sorted(self.used)
            hint = f" (valid keys here: {', '.join(known)})" if known else ""
            self.fail(f"unknown or unused key '{key}'{hint}", key)

    # --- typed getters ------------------------------------------------------------------
    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float:
        if self.defaulted(key, default):
            return default
        value = self.raw(key)
        return self.check_number(value, key, low, high, low_open, high_open)

    def check_number(
        self,
        value: Any,
        key: str | int,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {_kind(value)}", key)
        number = safe_float(value)
        if number is None or not math.isfinite(number):
            self.fail(f"expected a finite number, got {describe_number(value)}", key)
        value = number
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high:
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            left = "(" if low_open or low is None else "["
            right = ")" if high_open or high is None else "]"
            interval = f"{left}{lo}, {hi}{right}"
            self.fail(f"expected a number in {interval}, got {value:g}", key)
        return value

    def integer(
        self, key: str, default: Any = REQUIRED, *, low: int | None = None, high: int | None = None
    ) -> int:
        if self.defaulted(key, default):
            return default
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.fail(f"expected an integer, got {_kind(value)}", key)
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"expected an integer in [{low}, {high}], got {describe_number(value)}", key)
        return int(value)

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {_kind(value)}", key)
        return value

    def string(
        self, key: str, default: Any = REQUIRED, *, choices: Sequence[str] | None = None
    ) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            self.fail(f"expected a string, got {_kind(value)}", key)
        if choices is not None and value not in choices:
            self.fail(f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}", key)
        return value

    def vector(self, key: str, size: int, default: Any = REQUIRED) -> np.ndarray:
        if self.defaulted(key, default):
            return np.asarray(default, dtype=np.float64)
        value = self.raw(key)
        return self.check_vector(value, key, size)

    def check_vector(self, value: Any, key: str | int, size: int) -> np.ndarray:
        if not isinstance(value, list) or len(value) != size:
            self.fail(f"expected a list of {size} numbers, got {_kind(value)}", key)
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                self.fail(f"item {i} must be a number, got {_kind(item)}", key)
            number = safe_float(item)
            if number is None or not math.isfinite(number):
                self.fail(f"item {i} must be finite, got {describe_number(item)}", key)
        return np.asarray(value, dtype=np.float64)

    def color(
        self, key: str, default: Any = REQUIRED, *, low: float = 0.0, high: float | None = None
    ) -> np.ndarray:
        """An RGB triple, or one number meaning grey."""
        if self.defaulted(key, default):
            return np.asarray(default, dtype=np.float64)
        value = self.raw(key)
        return self.check_color(value, key, low=low, high=high)

    def check_color(
        self, value: Any, key: str | int, *, low: float = 0.0, high: float | None = None
    ) -> np.ndarray:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rgb = np.full(3, self.check_number(value, key), dtype=np.float64)
        else:
            rgb = self.check_vector(value, key, 3)
        if (rgb < low).any():
            self.fail(f"colour components must be >= {low:g}, got {rgb.tolist()}", key)
        if high is not None and (rgb > high).any():
            self.fail(f"colour components must be <= {high:g}, got {rgb.tolist()}", key)
        return rgb

    def color_pair(self, key: str, *, low: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Two colours, e.g. a checker's even and odd cells (default light and dark grey)."""
        colors = self.sequence(key, [[0.8, 0.8, 0.8], [0.2, 0.2, 0.2]])
        if len(colors) != 2:
            self.fail(f"expected two colours, got {len(colors)}", key)
        return self.check_color(colors[0], key, low=low), self.check_color(colors[1], key, low=low)

    def uv_scale(self, key: str, default: float) -> np.ndarray:
        """A texture's uv repeat: one positive number, or [su, sv], at most MAX_UV_SCALE."""
        value = self.raw(key, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value, value]
        scale = self.check_vector(value, key, 2)
        if (scale <= 0).any() or (scale > MAX_UV_SCALE).any():
            self.fail(f"uv scale must be in (0, {MAX_UV_SCALE:g}], got {scale.tolist()}", key)
        return scale

    def section(self, key: str, default: Any = REQUIRED) -> Section | None:
        value = self.raw(key, default)
        if value is None and default is None:
            return None
        return Section(value, self.key_path(key), self.source, self.error)

    def child(self, value: Any, key: str | int) -> Section:
        """A Section for `value`, found under `key` of this one."""
        return Section(value, self.key_path(key), self.source, self.error)

    def sequence(self, key: str, default: Any = REQUIRED) -> list[Any]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            self.fail(f"expected a list, got {_kind(value)}", key)
        return value

    def mapping(self, key: str, default: Any = REQUIRED) -> dict[str, Any]:
        value = self.raw(key, default)
        if not isinstance(value, dict):
            self.fail(f"expected an object, got {_kind(value)}", key)
        return value
