"""Neural fields: the multiresolution hash encoding and the NeRF volumes built on it.

Submodules import torch; this package does not, so `nrender --help` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HashGrid", "HashGridConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import hash_grid

        return getattr(hash_grid, name)
    raise AttributeError(name)
