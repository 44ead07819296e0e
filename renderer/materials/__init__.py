"""Layered reference materials: graph files, device tables and batched queries.

The batched queries (`MaterialQueries`, `evaluate`, `pdf`, `sample`) need slangpy and
load on first use, so that reading a material file does not wait for slangpy and torch.
"""

from __future__ import annotations

from typing import Any

from .graph import Layer, Lobe, MaterialGraph, Mix, Stack
from .loader import METALS, is_material_document, load_material, material_from_dict

_QUERY_NAMES = ("MaterialQueries", "evaluate", "pdf", "sample")

__all__ = [
    "METALS",
    "Layer",
    "Lobe",
    "MaterialGraph",
    "MaterialQueries",
    "Mix",
    "Stack",
    "evaluate",
    "is_material_document",
    "load_material",
    "material_from_dict",
    "pdf",
    "sample",
]


def __getattr__(name: str) -> Any:
    if name in _QUERY_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'renderer.materials' has no attribute {name!r}")
