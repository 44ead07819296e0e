"""Neural fields: the multiresolution hash encoding that NeRF volumes are built on."""

from .hash_grid import HashGrid, HashGridConfig

__all__ = ["HashGrid", "HashGridConfig"]
