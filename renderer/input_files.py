"""Reading files a user hands us: limits on paths, sizes, JSON nesting and numbers.

Every loader (scenes, material graphs, `.nmat` files, images, meshes) reads through these
helpers, so that hostile or broken input ends in one NrenderError naming the file,
never in a RecursionError, an OSError about a name too long, an integer too large to
print, or an attempt to allocate gigabytes. The limits are documented with each format
(scenes/README.md, materials/README.md, docs/baking.md) and chosen far above
anything a real scene needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import NrenderError

# Linux's PATH_MAX and NAME_MAX: anything longer cannot be opened anyway.
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 255
# A scene or material document: a 64 MiB JSON file is already thousands of times larger
# than any we ship; mesh data and images live in their own files.
MAX_DOCUMENT_BYTES = 64 << 20
# Our formats nest at most about 10 deep (an inline material graph in a scene); JSON
# nested thousands deep is an attack on the parser's recursion, not a scene.
MAX_JSON_DEPTH = 64
# Integers longer than this cannot be a valid count, index or seed (2^64 has 20 digits);
# they are read as floats, so the range check that follows names the key.
MAX_INT_DIGITS = 20


def check_path_text(text: str) -> str | None:
    """What is wrong with a path string from a document, or None."""
    if not text:
        return "expected a file path, got an empty string"
    if "\x00" in text:
        return "a file path cannot contain a NUL character"
    if len(text) > MAX_PATH_CHARS:
        return f"a file path of {len(text)} characters is longer than {MAX_PATH_CHARS}"
    longest = max((len(part) for part in text.replace("\\", "/").split("/")), default=0)
    if longest > MAX_NAME_CHARS:
        return f"a file name of {longest} characters is longer than {MAX_NAME_CHARS}"
    return None


def is_file(path: Path) -> bool:
    """Path.is_file() that answers False instead of raising (a name too long, a folder
    that cannot be searched, an encoding the file system rejects)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """Path.is_dir() that answers False instead of raising (see is_file)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def read_limited(path: Path, limit: int, error: type[NrenderError], what: str) -> bytes:
    """The bytes of `path`, refusing files larger than `limit` (without reading them:
    /proc files report size 0, so the read itself stops at limit + 1)."""
    if problem := check_path_text(str(path)):
        raise error(f"{path}: {problem}")
    if not is_file(path):
        raise error(f"{path}: {what} not found")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is larger than {limit >> 20} MiB")
    return data


def _int_or_float(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float(text)


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (iterative: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(text: str | bytes, where: str, error: type[NrenderError]) -> Any:
    """A JSON document, with every failure one `error` naming `where`: syntax (with line
    and column), nesting deeper than MAX_JSON_DEPTH, or bytes that are not UTF-8."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not UTF-8 text (byte offset {exc.start})") from None
    try:
        data = json.loads(text, parse_int=_int_or_float)
    except json.JSONDecodeError as exc:
        raise error(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise error(f"{where}: JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # a number the float parser rejects
        raise error(f"{where}: invalid JSON number ({exc})") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise error(f"{where}: JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def read_json(path: Path, error: type[NrenderError], what: str) -> Any:
    """A JSON document file (scene, material graph) read within MAX_DOCUMENT_BYTES."""
    return parse_json(read_limited(path, MAX_DOCUMENT_BYTES, error, what), str(path), error)


def resolve_path(text: str, base_dir: Path) -> Path:
    """A document's relative path resolved against its folder (absolute ones kept)."""
    path = Path(text)
    return path if path.is_absolute() else base_dir / path


def describe_number(value: int | float) -> str:
    """A number for an error message: an integer too long to print is described."""
    if isinstance(value, int) and abs(value) >= 10**MAX_INT_DIGITS:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return repr(value)


def safe_float(value: int | float) -> float | None:
    """float(value), or None when an integer is beyond the float range."""
    try:
        return float(value)
    except OverflowError:
        return None
