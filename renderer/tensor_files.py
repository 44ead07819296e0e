"""Safetensors files that users hand nrender (`.nmat`, `.nfield`): the checks every
loader makes, each failure one error naming the file, and the one way they are written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .errors import NrenderError
from .image_io import atomic_path
from .input_files import check_path_text, is_file

Fail = Callable[[str], NrenderError]  # problem -> the loader's error naming the file


def read_tensor_file(
    path: Path, fail: Fail, max_bytes: int, what: str
) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header metadata and every tensor of the safetensors file `path` (no pickle)."""
    from safetensors import SafetensorError, safe_open

    if problem := check_path_text(str(path)):
        raise fail(problem)
    if not is_file(path):
        raise fail("no such file")
    if path.stat().st_size > max_bytes:
        raise fail(f"{path.stat().st_size} bytes is more than {what} can hold")
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[name] = f.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise fail(f"not a readable safetensors file (truncated or corrupt?): {exc}") from None
    return meta, tensors


def check_header(
    meta: dict[str, str],
    fmt: str,
    version: str,
    required: tuple[str, ...],
    fail: Fail,
    what: str,
    redo: str,
) -> None:
    """The format, its version and the required keys of a file's header metadata."""
    if meta.get("format") != fmt:
        raise fail(f"not {what} (format {meta.get('format')!r}, expected {fmt!r})")
    if meta.get("format_version") != version:
        raise fail(
            f"format version {meta.get('format_version')!r} is not supported "
            f"(this nrender reads version {version}); {redo}"
        )
    missing = [k for k in required if k not in meta]
    if missing:
        raise fail(f"header metadata lacks {', '.join(missing)}")


def check_tensors(
    tensors: dict[str, torch.Tensor],
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]],
    fail: Fail,
) -> None:
    """Exactly the `expected` names, each with its shape and dtype, floats all finite."""
    absent = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if absent:
        raise fail(f"missing tensors {absent[:4]}")
    if extra:
        raise fail(f"unexpected tensors {extra[:4]}")
    for name, (shape, dtype) in expected.items():
        value = tensors[name]
        if tuple(value.shape) != shape:
            raise fail(f"{name} has shape {list(value.shape)}, expected {list(shape)}")
        if value.dtype != dtype:
            raise fail(f"{name} is {value.dtype}, expected {dtype}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise fail(f"{name} holds {bad} NaN or infinite values")


def write_tensor_file(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, str],
    required: tuple[str, ...],
    fail: Fail,
) -> None:
    """Write `tensors` with header `meta` to `path` (temporary file + rename), refusing a
    header that lacks a `required` key and non-finite floats."""
    from safetensors.torch import save

    missing = [k for k in required if k not in meta]
    if missing:
        raise fail(f"cannot save, metadata lacks {missing}")
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise fail(f"refusing to save non-finite values in {name}")
    # written through Python so the file gets the usual permissions (safetensors' own
    # writer creates it readable by its owner only)
    data = save(tensors, metadata=meta)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise fail(f"cannot write ({exc.strerror or exc})") from None
