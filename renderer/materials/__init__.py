"""Layered reference materials: graph files, device tables and batched queries."""

from .api import MaterialQueries, evaluate, pdf, sample
from .graph import Layer, Lobe, MaterialGraph, Mix, Stack
from .loader import METALS, is_material_document, load_material, material_from_dict

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
