"""Captions on 8-bit images (comparison panels, the bake report's lobe grid), so that a
saved image can be read without the docs."""

from __future__ import annotations

import numpy as np

CAPTION_HEIGHT = 14
BACKGROUND = (24, 24, 24)
INK = (235, 235, 235)


def captioned(image: np.ndarray, label: str) -> np.ndarray:
    """An 8-bit [H, W, 3] image with a caption bar holding `label` on top."""
    return np.concatenate([caption_bar(image.shape[1], [(4, label)]), image], axis=0)


def caption_bar(width: int, labels: list[tuple[int, str]]) -> np.ndarray:
    """A caption bar `width` pixels wide with each label drawn from its x position."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (width, CAPTION_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(bar)
    for x, label in labels:
        draw.text((x, 1), label, fill=INK)
    return np.asarray(bar)
