"""Rendering: scene upload, the path tracer's passes and accumulation, image output."""

from .film import RenderResult, tonemap
from .renderer import Renderer, RenderJob, render

__all__ = ["RenderJob", "RenderResult", "Renderer", "render", "tonemap"]
