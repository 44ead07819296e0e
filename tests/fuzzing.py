"""Seeded mutation fuzzing of every loader, shared by the fuzz test and tools/fuzz_loaders.py.

A case is a valid seed file (a shipped scene or material, a tiny `.nmat`, small images
and meshes written here) changed by one to three mutations: structure-aware ones (a JSON
value replaced by a hostile one, a key dropped or added, a safetensors header edited, an
image header claiming 40000x40000 pixels, a mesh index made negative) and blind ones
(bytes flipped, inserted, deleted, the file truncated). A loader passes a case when it
returns, or raises one single-line `NrenderError` naming the file; anything else (another
exception, a multi-line message, a case running past its time limit) is a finding.

Every case is reproducible from (target, seed, index): `case_rng` derives its generator.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import random
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

OUTCOMES = ("accepted", "rejected", "multiline", "unnamed", "exception", "timeout", "nonfinite")
GOOD_OUTCOMES = ("accepted", "rejected")


# --- JSON trees with raw tokens ---------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """Text put into a JSON document as is: numbers and nesting json.dumps cannot write."""

    text: str


def dump_json(value: Any) -> str:
    """JSON text of a tree whose leaves may be `Raw`; iterative, so deep trees are fine."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            parts: list[Any] = [Raw("{")]
            for i, (k, v) in enumerate(item.items()):
                if i:
                    parts.append(Raw(","))
                parts += [Raw(json.dumps(str(k)) + ":"), v]
            parts.append(Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list):
            parts = [Raw("[")]
            for i, v in enumerate(item):
                if i:
                    parts.append(Raw(","))
                parts.append(v)
            parts.append(Raw("]"))
            stack.extend(reversed(parts))
        elif isinstance(item, float) and not math.isfinite(item):
            out.append("NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity"))
        else:
            out.append(json.dumps(item))
    return "".join(out)


def _hostile_values(rng: random.Random, old: Any) -> Any:
    if isinstance(old, (int, float)) and not isinstance(old, bool) and rng.random() < 0.5:
        # Numbers nudged rather than replaced: more cases load, and reach the renderer.
        return rng.choice([-old, old * 1e6, old * 1e30, old * 1e-30, old + 1, old - 1, 0, 1e-30])
    deep = rng.choice([100, 5000, 200000])
    choices: list[Any] = [
        Raw("1" + "0" * rng.choice([30, 400, 5000])),  # huge integers
        Raw("-" + "9" * rng.choice([25, 5000])),
        Raw("1e999"),
        Raw("-1e400"),
        Raw("NaN"),
        Raw("Infinity"),
        Raw("[" * deep + "]" * deep),  # nesting past any recursion limit
        Raw('{"a":' * deep + "1" + "}" * deep),
        10**30,
        2**63,
        -(2**31),
        -1,
        0,
        1e308,
        -1e308,
        5e-324,
        1e-30,
        "",
        "x" * rng.choice([300, 5000, 1 << 20]),
        "a/" * 3000 + "b.json",
        "../" * 60 + "etc/passwd",
        "/dev/zero",
        "/proc/self/mem",
        "line\nbreak\r\x00nul",
        "\ud800",
        True,
        None,
        [],
        {},
        [0] * rng.choice([2, 4, 16, 100000]),
        [[0.0, 0.0, 0.0]] * 3,
        [1e30, -1e30, 0],
        {"type": "image", "path": "missing.png"},
    ]
    if isinstance(old, bool):
        choices += [not old]
    elif isinstance(old, (int, float)):
        choices += [
            -old,
            old * 1e6,
            old * 1e30,
            old + 1,
            old - 1,
            float(old) + 0.5,
            old * 1e-30,
            0,
            Raw("1e39"),  # past float32
        ]
    elif isinstance(old, str):
        choices += [old.upper(), old + "x", old[:-1], old * 50, old + "/" + old]
    elif isinstance(old, list) and old:
        choices += [old[:-1], old + old[-1:], old * 3, [old], old[::-1]]
    return rng.choice(choices)


def _containers(tree: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every value in the tree, found iteratively."""
    found: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            found.append((node, key))
            if isinstance(value, (dict, list)) and len(found) < 200000:
                stack.append(value)
    return found


def mutate_tree(tree: Any, rng: random.Random) -> Any:
    """One structural mutation of a parsed JSON document (in place, returned)."""
    slots = _containers(tree)
    if not slots:
        return _hostile_values(rng, tree)
    container, key = rng.choice(slots)
    op = rng.random()
    if op < 0.6:
        container[key] = _hostile_values(rng, container[key])
    elif op < 0.72:
        del container[key]
    elif op < 0.8 and isinstance(container, dict):
        container[rng.choice(["colour", "Type", "extra", key + "_"])] = container[key]
    elif op < 0.9:
        other_container, other_key = rng.choice(slots)
        # A value from elsewhere (of the wrong type, say), copied: a shared reference could
        # put a container inside itself.
        container[key] = copy.deepcopy(other_container[other_key])
    elif isinstance(container[key], (list, dict)):
        container[key] = type(container[key])()
    else:
        container[key] = [container[key]]
    return tree


# --- byte mutations ---------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One blind mutation: flip, overwrite, insert, delete or truncate."""
    buf = bytearray(data)
    if not buf:
        return bytes(rng.randbytes(rng.randint(1, 64)))
    op = rng.random()
    pos = rng.randrange(len(buf))
    if op < 0.3:
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif op < 0.45:
        value = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff" * 8, b"\x00" * 8])
        buf[pos : pos + len(value)] = value
    elif op < 0.6:
        buf[pos:pos] = rng.randbytes(rng.randint(1, 32))
    elif op < 0.75:
        del buf[pos : pos + rng.randint(1, 256)]
    elif op < 0.9:
        del buf[rng.randrange(len(buf)) :]
    else:
        buf[pos : pos + 1] = bytes([rng.choice([0, 0x7F, 0x80, 0xFF])])
    return bytes(buf)


def mutate_text_numbers(text: str, rng: random.Random) -> str:
    """Replace one number token of a text file (OBJ, PLY, OFF) by a hostile one."""
    tokens = text.split(" ")
    numeric = [
        i
        for i, t in enumerate(tokens)
        if t.strip().lstrip("-").replace(".", "", 1).replace("/", "").isdigit()
    ]
    if not numeric:
        return text
    i = rng.choice(numeric)
    tail = "\n" if tokens[i].endswith("\n") else ""
    tokens[i] = (
        rng.choice(
            [
                "-1",
                "-7",
                "0",
                "999999999",
                "4294967296",
                "nan",
                "inf",
                "-inf",
                "1e39",
                "1" + "0" * 400,
                "1/-3/2",
                "2//-1",
                "-2147483648",
            ]
        )
        + tail
    )
    return " ".join(tokens)


def mutate_json_text(data: bytes, rng: random.Random) -> bytes:
    """A structural mutation when the text parses, a blind one otherwise (or sometimes)."""
    if rng.random() < 0.8:
        try:
            tree = json.loads(data)
        except (ValueError, RecursionError):
            tree = None
        if isinstance(tree, (dict, list)):
            return dump_json(mutate_tree(tree, rng)).encode("utf-8", "surrogatepass")
    return mutate_bytes(data, rng)


def mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    """Edit a safetensors file's JSON header (tensor entries, or a metadata string that is
    itself JSON), its tensor bytes (NaN fp16 latents, say), or its bytes blindly."""
    op = rng.random()
    if op < 0.25 or len(data) < 8:
        return mutate_bytes(data, rng)
    (size,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError):
        return mutate_bytes(data, rng)
    body = data[8 + size :]
    if op < 0.4:
        body = bytearray(body)
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(max(1, len(body) - 2))
            body[i : i + 2] = rng.choice([b"\x00\x7e", b"\x00\x7c", b"\xff\xff", b"\xff\x7f"])
        return data[: 8 + size] + bytes(body)
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if op < 0.7 and isinstance(meta, dict) and meta:
        key = rng.choice(sorted(meta))
        try:
            inner = json.loads(meta[key]) if isinstance(meta[key], str) else None
        except (ValueError, RecursionError):
            inner = None
        if isinstance(inner, (dict, list)) and rng.random() < 0.8:
            meta[key] = dump_json(mutate_tree(inner, rng))
        else:
            meta[key] = str(_hostile_values(rng, meta[key]))
    else:
        header = mutate_tree(header, rng)
    text = dump_json(header).encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        return struct.pack("<Q", rng.choice([0, 1 << 40, size + 1, len(text) - 1])) + text + body
    return struct.pack("<Q", len(text)) + text + body


def mutate_image(data: bytes, rng: random.Random) -> bytes:
    """Claim an absurd size in the header (with a valid PNG chunk checksum) or mutate
    blindly."""
    if rng.random() < 0.3:
        width, height = rng.choice([(40000, 40000), (1, 1 << 30), (0, 8), (65536, 65536)])
        if data.startswith(b"\x89PNG") and data[12:16] == b"IHDR":
            chunk = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
            return data[:8] + data[8:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]
        if data.startswith(b"#?RADIANCE"):
            return data.replace(b"-Y 8 +X 8", f"-Y {height} +X {width}".encode(), 1)
        at = data.find(b"dataWindow\x00box2i\x00")
        if at >= 0:
            start = at + len(b"dataWindow\x00box2i\x00") + 4
            window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
            return data[:start] + window + data[start + 16 :]
    return mutate_bytes(data, rng)


def mutate_mesh(data: bytes, rng: random.Random) -> bytes:
    if data[:4] == b"glTF" or rng.random() < 0.3:
        return mutate_bytes(data, rng)
    if data.lstrip().startswith(b"{"):
        return mutate_json_text(data, rng)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return mutate_bytes(data, rng)
    return mutate_text_numbers(text, rng).encode("ascii", "replace")


# --- seeds ------------------------------------------------------------------------------
def _absolute_paths(tree: Any, base: Path) -> Any:
    """Make every "path"/"neural" string absolute, so the document loads from anywhere."""
    for container, key in _containers(tree):
        value = container[key]
        if key in ("path", "neural") and isinstance(value, str) and not Path(value).is_absolute():
            container[key] = str((base / value).resolve())
    return tree


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, pixels)


def _write_rgbe(path: Path, rgb: np.ndarray) -> None:
    """A flat (not run-length encoded) Radiance file."""
    peak = np.maximum(rgb.max(axis=2), 1e-32)
    mantissa, exponent = np.frexp(peak)
    scale = mantissa * 256.0 / peak
    rgbe = np.zeros((*rgb.shape[:2], 4), np.uint8)
    rgbe[..., :3] = np.clip(rgb * scale[..., None], 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(peak > 1e-31, exponent + 128, 0).astype(np.uint8)
    height, width = rgb.shape[:2]
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    path.write_bytes(header + rgbe.tobytes())


def _gltf_seeds(folder: Path) -> list[Path]:
    """A textured glTF (JSON, embedded buffers) and the same as GLB."""
    import trimesh
    from PIL import Image

    mesh = trimesh.creation.icosphere(subdivisions=1)
    uv = (mesh.vertices[:, :2] + 1.0) / 2.0
    rng = np.random.default_rng(0)
    texture = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    mesh.visual = trimesh.visual.TextureVisuals(
        uv=uv,
        material=trimesh.visual.material.PBRMaterial(
            baseColorTexture=texture,
            metallicRoughnessTexture=texture,
            metallicFactor=0.5,
            roughnessFactor=0.5,
            emissiveFactor=[0.1, 0.0, 0.0],
        ),
    )
    scene = trimesh.Scene(mesh)
    glb = folder / "textured.glb"
    glb.write_bytes(scene.export(file_type="glb"))
    files = scene.export(file_type="gltf", embed_buffers=True)
    gltf = folder / "textured.gltf"
    gltf.write_bytes(files["model.gltf"])
    return [gltf, glb]


def _mesh_seeds(folder: Path) -> list[Path]:
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=1)
    out = []
    for name, kind in (("mesh.obj", "obj"), ("mesh.off", "off"), ("mesh.stl", "stl")):
        path = folder / name
        data = mesh.export(file_type=kind)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        out.append(path)
    for name, encoding in (("ascii.ply", "ascii"), ("binary.ply", "binary")):
        path = folder / name
        path.write_bytes(mesh.export(file_type="ply", encoding=encoding))
        out.append(path)
    return out


def _image_seeds(folder: Path) -> list[Path]:
    from renderer.image_io import write_exr

    rng = np.random.default_rng(0)
    rgb8 = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    paths = {
        "rgb.png": lambda p: _write_png(p, rgb8),
        "rgba.png": lambda p: _write_png(p, rng.integers(0, 255, (8, 8, 4), dtype=np.uint8)),
        "grey16.png": lambda p: _write_png(p, rng.integers(0, 65535, (8, 8), dtype=np.uint16)),
        "photo.jpg": lambda p: _write_png(p, rgb8),
        "linear.exr": lambda p: write_exr(p, {"RGB": rng.random((8, 8, 3), dtype=np.float32)}),
        "sky.hdr": lambda p: _write_rgbe(p, 4.0 * rng.random((8, 8, 3))),
    }
    out = []
    for name, write in paths.items():
        write(folder / name)
        out.append(folder / name)
    return out


def _nmat_seeds(folder: Path, shipped: bool) -> list[Path]:
    from neural_fixtures import write_random_nmat

    out = [write_random_nmat(folder / "tiny.nmat", size=8, decoder=(16, 16))]
    if shipped:
        out.append(REPO / "materials" / "baked" / "brass_verdigris.nmat")
    return out


def _json_seeds(folder: Path, files: list[Path], small_textures: bool) -> list[Path]:
    out = []
    for src in files:
        tree = _absolute_paths(json.loads(src.read_text()), src.parent)
        if small_textures and "camera" not in tree:
            tree["resolution"] = 64  # procedural textures at 64^2: a case takes milliseconds
        path = folder / src.name
        path.write_text(json.dumps(tree, indent=1))
        out.append(path)
    return out


def _scene_seeds(folder: Path, images: list[Path], meshes: list[Path]) -> list[Path]:
    """The default scene, and a variant reaching the file-based loaders (environment
    map, image texture, mesh file)."""
    default = _json_seeds(folder, [REPO / "scenes" / "default" / "scene.json"], False)[0]
    tree = json.loads(default.read_text())
    # relative paths: the case files sit beside their seeds, so where the seeds folder is
    # (and how long its name) changes no byte of a case
    tree["environment"] = {"type": "map", "path": f"../images/{images[4].name}", "rotation": 30.0}
    tree["materials"]["floor"]["albedo"] = {"type": "image", "path": f"../images/{images[0].name}"}
    tree["meshes"]["block"] = {"type": "file", "path": f"../meshes/{meshes[0].name}"}
    tree["camera"]["resolution"] = [32, 18]
    variant = folder / "files_scene.json"
    variant.write_text(json.dumps(tree, indent=1))
    return [default, variant]


# --- targets ----------------------------------------------------------------------------
@dataclass
class Target:
    """A loader and the seeds its cases start from."""

    name: str
    seeds: list[Path]
    mutate: Callable[[bytes, random.Random], bytes]
    load: Callable[[Path], Any]


def _load_scene(path: Path) -> Any:
    from renderer.scene import load_scene

    return load_scene(path)


def _load_material(path: Path) -> Any:
    from renderer.materials import load_material

    return load_material(path)


def _load_nmat(path: Path) -> Any:
    from renderer.neural.runtime import load_for_rendering

    return load_for_rendering(path)


def _load_image(path: Path) -> Any:
    from renderer.image_io import read_image

    return read_image(path)


def _load_mesh(path: Path) -> Any:
    from renderer.scene.mesh_io import load_mesh_file

    return load_mesh_file(path)


LOADERS: dict[str, tuple[Callable[[bytes, random.Random], bytes], Callable[[Path], Any]]] = {
    "scene": (mutate_json_text, _load_scene),
    "material": (mutate_json_text, _load_material),
    "nmat": (mutate_safetensors, _load_nmat),
    "image": (mutate_image, _load_image),
    "mesh": (mutate_mesh, _load_mesh),
    "gltf": (mutate_mesh, _load_scene),
}
MANIFEST = "seeds.json"


def make_targets(folder: Path, *, shipped_bake: bool = True) -> dict[str, Target]:
    """Write the seed files under `folder` (and a manifest naming them); the targets."""
    for sub in ("images", "meshes", "materials", "nmat", "scenes"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    images = _image_seeds(folder / "images")
    meshes = _mesh_seeds(folder / "meshes")
    library = sorted((REPO / "materials").glob("*.json"))
    seeds = {
        "scene": _scene_seeds(folder / "scenes", images, meshes),
        "material": _json_seeds(folder / "materials", library, True),
        "nmat": _nmat_seeds(folder / "nmat", shipped_bake),
        "image": images,
        "mesh": meshes,
        "gltf": _gltf_seeds(folder / "meshes"),
    }
    manifest = {name: [str(p) for p in paths] for name, paths in seeds.items()}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return load_targets(folder)


def load_targets(folder: Path) -> dict[str, Target]:
    """The targets whose seeds make_targets wrote under `folder`."""
    manifest = json.loads((folder / MANIFEST).read_text())
    return {
        name: Target(name, [Path(p) for p in manifest[name]], *LOADERS[name]) for name in LOADERS
    }


# --- running cases ----------------------------------------------------------------------
@dataclass
class CaseResult:
    target: str
    index: int
    seed_file: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0


def case_rng(target: str, seed: int, index: int) -> random.Random:
    return random.Random(f"{target}:{seed}:{index}")


def make_case(target: Target, seed: int, index: int) -> tuple[Path, bytes]:
    """The seed file a case starts from and its mutated bytes."""
    rng = case_rng(target.name, seed, index)
    source = rng.choice(target.seeds)
    data = source.read_bytes()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = target.mutate(data, rng)
    return source, data


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past its limit (BaseException: a loader's
    `except Exception` must not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def cached_materials() -> Iterator[None]:
    """Scene cases reuse the (unmutated) material files they name: parse each once."""
    import renderer.materials as materials

    original = materials.load_material
    memo = functools.lru_cache(maxsize=64)(lambda path, stamp: original(path))

    def load(source: Any, **kwargs: Any) -> Any:
        if isinstance(source, (str, os.PathLike)) and not kwargs and Path(source).is_file():
            stat = Path(source).stat()
            return memo(str(source), (stat.st_mtime_ns, stat.st_size))
        return original(source, **kwargs)

    materials.load_material = load
    try:
        yield
    finally:
        materials.load_material = original


def classify(
    target: Target,
    path: Path,
    *,
    limit: float,
    check: Callable[[Any], str | None] | None = None,
) -> tuple[str, str]:
    """(outcome, detail) of loading `path`; `check(result)` may report a finding in what
    was accepted (e.g. a non-finite render)."""
    import warnings

    from renderer.errors import NrenderError

    try:
        with warnings.catch_warnings(), time_limit(limit):
            warnings.simplefilter("ignore")
            result = target.load(path)
            problem = check(result) if check is not None else None
    except CaseTimeout:
        return "timeout", f"ran past {limit:g} s"
    except NrenderError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message:
            return "multiline", message[:300]
        if path.name not in message:
            return "unnamed", message[:300]
        return "rejected", message[:300]
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return "exception", f"{type(exc).__name__}: {first}"
    if problem is not None:
        return "nonfinite", problem
    return "accepted", ""


def case_path(source: Path) -> Path:
    """Where a case made from `source` is written: beside it (relative paths in a seed
    resolve as they do for the seed), named for this process (workers run side by side)."""
    return source.with_name(f"case-{os.getpid()}-{source.name}")


def run_case(
    target: Target,
    seed: int,
    index: int,
    *,
    limit: float = 30.0,
    check: Callable[[Any], str | None] | None = None,
) -> CaseResult:
    source, data = make_case(target, seed, index)
    path = case_path(source)
    path.write_bytes(data)
    start = time.perf_counter()
    outcome, detail = classify(target, path, limit=limit, check=check)
    seconds = time.perf_counter() - start
    path.unlink(missing_ok=True)
    return CaseResult(target.name, index, source.name, outcome, detail, seconds)
