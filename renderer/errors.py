"""Errors a user can act on: each names the file, key or value at fault and what was expected."""

from __future__ import annotations

import re

# An error is one line on the terminal: a message longer than this (a document echoing a
# megabyte string, a third-party parser's dump) is cut, with the cut marked.
MAX_MESSAGE_CHARS = 1000


def one_line(message: str) -> str:
    """`message` with line breaks and control characters made spaces, and cut in the
    middle to MAX_MESSAGE_CHARS."""
    flat = re.sub(
        r"\s*[\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]+\s*", " ", message
    ).strip()
    if len(flat) > MAX_MESSAGE_CHARS:
        # Cut the middle: the head names the file, the tail usually says what is wrong.
        cut = f" ...[{len(flat) - MAX_MESSAGE_CHARS + 20} characters]... "
        head = (MAX_MESSAGE_CHARS - len(cut)) * 2 // 3
        flat = flat[:head] + cut + flat[len(flat) - (MAX_MESSAGE_CHARS - len(cut) - head) :]
    return flat


class NrenderError(Exception):
    """Base of every error nrender reports to a user without a traceback. The message is
    kept to one line (see one_line), whatever text a caller or a library passed in."""

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (one_line(args[0]), *args[1:])
        super().__init__(*args)


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
