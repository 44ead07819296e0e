"""How a bake stops on request: the caller's stop check, asked once per training step and
per chunk of reference queries, and the exception that says the bake honoured it."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import NrenderError

StopRequest = Callable[[], bool]  # True once the caller wants the bake to stop (Ctrl-C)


class BakeInterrupted(NrenderError):  # noqa: N818 - a request honoured, not a failure
    """The bake stopped on request after saving a checkpoint."""


def never_stop() -> bool:
    return False
