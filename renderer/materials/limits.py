"""The sizes of a material graph the shaders hold in fixed arrays (lobes per base, layers
per stack, nested mix nodes), read from the Slang program's reflection so they are written
once, in shaders/materials/limits.slang. Only the Slang front end runs (about 0.4 s once
per process): a loader that rejects a graph must not wait for a kernel build.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

MODULE = "materials/limits.slang"


@dataclass(frozen=True)
class MaterialLimits:
    base_lobes: int
    layers: int
    mix_depth: int


@functools.cache
def material_limits() -> MaterialLimits:
    from ..device import reflect_module  # slangpy loads only when a graph is checked

    layout = reflect_module(MODULE)
    fields = layout.get_type_layout(layout.find_type_by_name("MaterialLimits")).fields
    lengths = {field.name: field.type_layout.type.element_count for field in fields}
    return MaterialLimits(lengths["base_lobes"], lengths["layers"], lengths["mix_depth"])
