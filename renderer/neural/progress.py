"""Progress bars of a bake: one per stage (references, each phase, the report) on stderr."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(enabled: bool, total: int, desc: str, unit: str, initial: int = 0) -> tqdm:
    """A bar on stderr; a silent one when progress is off, so callers need no branches."""
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        unit_scale=unit == "query",  # hundreds of thousands of queries read better as 524k
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.5,
    )
