"""Numpy record types built from Slang reflection, so GPU data layouts are declared once.

A struct such as `BvhNode` is declared in Slang only. `struct_dtype` reads its field
offsets, types and stride from the compiled program's reflection for the device at hand
(float3 alignment differs between CPU, CUDA and Vulkan) and returns a numpy structured
dtype; host code fills arrays of it vectorised and uploads them as raw bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import slangpy as spy

INVALID_INDEX = 0xFFFFFFFF  # INVALID_INDEX of shaders/core/math.slang: "no index"

_SCALARS: dict[Any, Any] = {
    spy.TypeReflection.ScalarType.float32: np.float32,
    spy.TypeReflection.ScalarType.float16: np.float16,
    spy.TypeReflection.ScalarType.uint32: np.uint32,
    spy.TypeReflection.ScalarType.int32: np.int32,
    spy.TypeReflection.ScalarType.uint16: np.uint16,
    spy.TypeReflection.ScalarType.int16: np.int16,
    spy.TypeReflection.ScalarType.float64: np.float64,
    spy.TypeReflection.ScalarType.uint64: np.uint64,
    spy.TypeReflection.ScalarType.int64: np.int64,
}


def _field_dtype(type_layout: spy.TypeLayoutReflection) -> Any:
    kind = type_layout.kind
    ty = type_layout.type
    if kind == spy.TypeReflection.Kind.struct:
        return dtype_from_layout(type_layout)
    if kind == spy.TypeReflection.Kind.scalar:
        return _scalar(ty.scalar_type, ty.full_name)
    if kind == spy.TypeReflection.Kind.vector:
        return (_scalar(ty.scalar_type, ty.full_name), (ty.col_count,))
    if kind == spy.TypeReflection.Kind.matrix:
        # Matrices are declared row-major on every target (see shaders/core/math.slang).
        return (_scalar(ty.scalar_type, ty.full_name), (ty.row_count, ty.col_count))
    if kind == spy.TypeReflection.Kind.array:
        element = type_layout.element_type_layout
        inner = _field_dtype(element)
        count = ty.element_count
        if isinstance(inner, tuple):
            return (inner[0], (count, *inner[1]))
        return (inner, (count,))
    raise TypeError(f"Slang type '{ty.full_name}' has no numpy equivalent")


def _scalar(scalar_type: Any, name: str) -> Any:
    if scalar_type not in _SCALARS:
        raise TypeError(f"Slang scalar type of '{name}' has no numpy equivalent")
    return _SCALARS[scalar_type]


def dtype_from_layout(type_layout: spy.TypeLayoutReflection) -> np.dtype:
    """Structured dtype with Slang's field names, offsets and stride."""
    names, formats, offsets = [], [], []
    for field in type_layout.fields:
        names.append(field.name)
        formats.append(_field_dtype(field.type_layout))
        offsets.append(field.offset)
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": type_layout.stride}
    )


def struct_dtype(program: spy.ShaderProgram, name: str) -> np.dtype:
    """Structured dtype of the Slang struct `name` as compiled into `program`."""
    layout = program.layout
    ty = layout.find_type_by_name(name)
    if ty is None:
        raise KeyError(f"Slang struct '{name}' is not visible in the program")
    return dtype_from_layout(layout.get_type_layout(ty))


def struct_field_names(program: spy.ShaderProgram, name: str) -> list[str]:
    """Field names of the Slang struct `name` as compiled into `program` (resources too)."""
    layout = program.layout
    ty = layout.find_type_by_name(name)
    if ty is None:
        raise KeyError(f"Slang struct '{name}' is not visible in the program")
    return [field.name for field in layout.get_type_layout(ty).fields]
