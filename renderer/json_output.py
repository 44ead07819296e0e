"""JSON that every parser reads: Python writes NaN and Infinity, which JSON does not have
(JavaScript's, jq's and serde's parsers reject them)."""

from __future__ import annotations

import json
import math
from typing import Any


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by null. Where reports store a PSNR,
    null means infinite: the two images were identical."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """json.dumps of strict_json(value), refusing anything non-standard."""
    return json.dumps(strict_json(value), allow_nan=False, **options)
