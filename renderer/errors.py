"""Errors a user can act on: each names the file, key or value at fault and what was expected."""

from __future__ import annotations


class NrenderError(Exception):
    """Base of every error nrender reports to a user without a traceback."""


class SceneError(NrenderError):
    """A scene file or dict is malformed: the message names the file and the key."""


class MaterialError(SceneError):
    """A material graph file or dict is malformed: the message names the file and the key."""


class DeviceError(NrenderError):
    """A requested device is absent or cannot compile kernels."""


class ImageError(NrenderError):
    """An image file cannot be read or written."""


class NeuralMaterialError(NrenderError):
    """A neural material file (.nmat) or bake checkpoint is unreadable or inconsistent."""


class NrenderWarning(UserWarning):
    """Base of the warnings nrender gives a user (printed as one line by the CLI)."""


class StaleBakeWarning(NrenderWarning):
    """A neural material was baked from an earlier version of its layered source."""
