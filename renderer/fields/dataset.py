"""Posed multi-view image datasets in the NeRF-synthetic layout, as `nrender nerf train` reads
them and `nrender nerf dataset` writes them.

    root/transforms_train.json   {"camera_angle_x": ..., "frames": [{"file_path":
    root/transforms_val.json       "./train/r_0", "transform_matrix": [[4 x 4]], ...}]}
    root/transforms_test.json
    root/train/r_0.png ...       8-bit RGBA (or RGB) PNG, straight (not premultiplied) alpha

- Cameras follow renderer/fields/cameras.py: `transform_matrix` is camera-to-world in the
  OpenGL convention, `camera_angle_x` the horizontal field of view in radians, pixel
  centres at +0.5.
- `file_path` is relative to the root; without an image suffix ".png" is appended (the
  public scenes write "./train/r_0").
- Colours are the PNG values / 255 as they are (sRGB-encoded, never linearised); alpha is 1
  where an image has none.
- nrender's extensions, top-level keys other loaders ignore: "aabb" [[min], [max]], the box
  the object lies in (default: the public scenes' [-1.5, 1.5]^3), and "scene_from_dataset"
  (4x4), which maps the file's world to the world of the scene it was rendered from. Its
  default, SCENE_FROM_Z_UP, turns +Z up into nrender's +Y up, so a field trained on a
  public scene stands upright in an nrender scene.
Every problem is one NerfDatasetError naming the file at fault.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NrenderError
from ..input_files import check_path_text, is_dir, is_file, read_json, resolve_path

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_AABB = ((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5))  # the public NeRF-synthetic scenes' box
# A +Z-up world (the public scenes') turned into nrender's +Y up: (x, y, z) -> (x, z, -y).
SCENE_FROM_Z_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
# 256 Mpixel: 4 GiB as float32 RGBA. The public scenes' 100 training views at 800x800
# are 64 Mpixel; more than this is a mistake, or needs a streaming loader.
MAX_DATASET_PIXELS = 1 << 28
MAX_FRAMES = 100_000
MAX_IMAGE_SIDE = 16384
MAX_COORDINATE = 1e6  # a camera further from the origin than this is not a real scene
ORTHONORMAL_TOLERANCE = 1e-3  # |R^T R - I| of a camera's rotation (the public files: 1e-7)
_HASH_CHUNK = 1 << 20


class NerfDatasetError(NrenderError):
    """A NeRF dataset folder, transforms file or image is missing or malformed."""


@dataclass
class NerfDataset:
    """One split of a dataset: N posed images of one size."""

    root: Path
    split: str
    images: np.ndarray  # [N, H, W, 4] float32 in [0, 1]: sRGB colour, straight alpha
    c2w: np.ndarray  # [N, 4, 4] float64 camera-to-world (OpenGL camera, cameras.py)
    camera_angle_x: float  # horizontal field of view, radians
    has_alpha: bool  # whether any image had an alpha channel
    aabb: np.ndarray = field(default_factory=lambda: np.array(DEFAULT_AABB))  # [2, 3]
    scene_from_dataset: np.ndarray = field(default_factory=lambda: SCENE_FROM_Z_UP.copy())
    file_paths: list[str] = field(default_factory=list)  # the frames' image files

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def focal(self) -> float:
        """Focal length in pixels (cameras.focal_length)."""
        return 0.5 * self.width / math.tan(0.5 * self.camera_angle_x)


def composite(images: np.ndarray, background: float | Any = 1.0) -> np.ndarray:
    """RGB [..., 3] float32 of straight-alpha RGBA `images` [..., 4] over a `background`
    colour (one number or [3]; the NeRF-synthetic protocol uses white)."""
    images = np.asarray(images, np.float32)
    bg = np.broadcast_to(np.asarray(background, np.float32), (3,))
    alpha = images[..., 3:4]
    return images[..., :3] * alpha + bg * (1.0 - alpha)


def transforms_path(root: str | os.PathLike[str], split: str) -> Path:
    return Path(root) / f"transforms_{split}.json"


def load_dataset(root: str | os.PathLike[str], split: str = "train") -> NerfDataset:
    """Read split `split` ("train", "val" or "test") of the dataset in folder `root`."""
    root = Path(root)
    if split not in SPLITS:
        raise NerfDatasetError(f"{root}: unknown split {split!r} (expected one of {SPLITS})")
    doc_path = _transforms_file(root, split)
    doc = read_json(doc_path, NerfDatasetError, "transforms file")
    frames = _Frames(doc_path, doc)
    headers = [_image_header(path) for path in frames.images]
    sizes = {(w, h) for w, h, _ in headers}
    if len(sizes) > 1:
        first = headers[0][:2]
        i = next(i for i, (w, h, _) in enumerate(headers) if (w, h) != first)
        raise NerfDatasetError(
            f"{frames.images[i]}: image is {headers[i][0]}x{headers[i][1]}, but "
            f"{frames.images[0]} is {first[0]}x{first[1]}: a split's images must share one size"
        )
    width, height = headers[0][:2]
    total = len(headers) * width * height
    if total > MAX_DATASET_PIXELS:
        raise NerfDatasetError(
            f"{doc_path}: {len(headers)} images of {width}x{height} are {total >> 20} Mpixel, "
            f"more than the {MAX_DATASET_PIXELS >> 20} Mpixel a split may hold in memory"
        )
    images = np.empty((len(headers), height, width, 4), np.float32)
    for i, path in enumerate(frames.images):
        images[i] = _read_rgba(path, width, height)
    return NerfDataset(
        root=root,
        split=split,
        images=images,
        c2w=frames.c2w,
        camera_angle_x=frames.camera_angle_x,
        has_alpha=any(has_alpha for _, _, has_alpha in headers),
        aabb=frames.aabb,
        scene_from_dataset=frames.scene_from_dataset,
        file_paths=[str(p) for p in frames.images],
    )


def dataset_hash(root: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a dataset: its transforms files (those present of train, val, test)
    and the bytes of every image they name, streamed in file order."""
    root = Path(os.path.abspath(root))  # however the path is spelled
    digest = hashlib.sha256()
    found = False
    for split in SPLITS:
        doc_path = transforms_path(root, split)
        if not is_file(doc_path):
            continue
        found = True
        doc = read_json(doc_path, NerfDatasetError, "transforms file")
        digest.update(f"{split}\0".encode())
        _hash_file(digest, doc_path)
        for path in _Frames(doc_path, doc).images:
            digest.update(
                f"{path.relative_to(root) if path.is_relative_to(root) else path}\0".encode()
            )
            _hash_file(digest, path)
    if not found:
        _transforms_file(root, "train")  # raises the missing folder or file
    return digest.hexdigest()


def _hash_file(digest: Any, path: Path) -> None:
    try:
        with open(path, "rb") as f:
            digest.update(f"{os.fstat(f.fileno()).st_size}\0".encode())
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise NerfDatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _transforms_file(root: Path, split: str) -> Path:
    if problem := check_path_text(str(root)):
        raise NerfDatasetError(f"{root}: {problem}")
    if not is_dir(root):
        what = "is not a folder" if root.exists() else "dataset folder not found"
        raise NerfDatasetError(f"{root}: {what}")
    path = transforms_path(root, split)
    if not is_file(path):
        raise NerfDatasetError(f"{path}: transforms file not found (the {split} split)")
    return path


class _Frames:
    """The checked contents of a transforms file: cameras and image paths."""

    def __init__(self, path: Path, doc: Any) -> None:
        self.path = path
        if not isinstance(doc, dict):
            self.fail(f"expected a JSON object, got {type(doc).__name__}")
        for key in ("camera_angle_x", "frames"):
            if key not in doc:
                self.fail(f"missing key {key!r}")
        angle = self.number(doc["camera_angle_x"], "camera_angle_x")
        if not 0.0 < angle < math.pi:
            self.fail(f"camera_angle_x: expected radians in (0, pi), got {angle!r}")
        self.camera_angle_x = angle
        frames = doc["frames"]
        if not isinstance(frames, list):
            self.fail(f"frames: expected a list, got {type(frames).__name__}")
        if not frames:
            self.fail("frames: the list is empty")
        if len(frames) > MAX_FRAMES:
            self.fail(f"frames: {len(frames)} frames, more than {MAX_FRAMES}")
        self.c2w = np.empty((len(frames), 4, 4), np.float64)
        self.images: list[Path] = []
        for i, frame in enumerate(frames):
            where = f"frames[{i}]"
            if not isinstance(frame, dict):
                self.fail(f"{where}: expected an object, got {type(frame).__name__}")
            for key in ("file_path", "transform_matrix"):
                if key not in frame:
                    self.fail(f"{where}: missing key {key!r}")
            self.c2w[i] = self.camera(frame["transform_matrix"], f"{where}.transform_matrix")
            self.images.append(self.image_path(frame["file_path"], f"{where}.file_path"))
        self.aabb = np.array(DEFAULT_AABB, np.float64)
        if "aabb" in doc:
            self.aabb = self.matrix(doc["aabb"], "aabb", 2, 3)
            if not (self.aabb[0] < self.aabb[1]).all():
                self.fail(f"aabb: expected [min, max] with min < max, got {self.aabb.tolist()}")
        self.scene_from_dataset = SCENE_FROM_Z_UP.copy()
        if "scene_from_dataset" in doc:
            m = self.matrix(doc["scene_from_dataset"], "scene_from_dataset", 4, 4)
            self.check_affine(m, "scene_from_dataset")
            self.scene_from_dataset = m

    def fail(self, message: str) -> Any:
        raise NerfDatasetError(f"{self.path}: {message}")

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"{where}: expected a number, got {type(value).__name__}")
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x) or abs(x) > MAX_COORDINATE:
            self.fail(f"{where}: expected a finite number within {MAX_COORDINATE:g}, got {value!r}")
        return x

    def matrix(self, rows: Any, where: str, n: int, m: int) -> np.ndarray:
        if not (isinstance(rows, list) and len(rows) == n):
            self.fail(f"{where}: expected {n} rows of {m} numbers")
        out = np.empty((n, m), np.float64)
        for r, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == m):
                self.fail(f"{where}: expected {n} rows of {m} numbers (row {r} is not)")
            for c, value in enumerate(row):
                out[r, c] = self.number(value, f"{where}[{r}][{c}]")
        return out

    def check_affine(self, m: np.ndarray, where: str) -> None:
        if np.abs(m[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6:
            self.fail(f"{where}: the last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        det = float(np.linalg.det(m[:3, :3]))
        if not abs(det) > 1e-12:
            self.fail(f"{where}: the matrix is not invertible (determinant {det:.3g})")

    def camera(self, rows: Any, where: str) -> np.ndarray:
        m = self.matrix(rows, where, 4, 4)
        self.check_affine(m, where)
        rot = m[:3, :3]
        error = float(np.abs(rot.T @ rot - np.eye(3)).max())
        if error > ORTHONORMAL_TOLERANCE or np.linalg.det(rot) < 0:
            self.fail(
                f"{where}: the camera-to-world rotation is not a rotation (|R^T R - I| = "
                f"{error:.3g}, determinant {np.linalg.det(rot):.3g}): scaled or mirrored "
                "cameras are not supported"
            )
        return m

    def image_path(self, text: Any, where: str) -> Path:
        if not isinstance(text, str):
            self.fail(f"{where}: expected a string, got {type(text).__name__}")
        if problem := check_path_text(text):
            self.fail(f"{where}: {problem}")
        path = resolve_path(text, self.path.parent)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            path = path.with_name(path.name + ".png")  # the public scenes omit it
        path = Path(os.path.normpath(path))
        if not is_file(path):
            self.fail(f"{where}: image {path} not found")
        return path


def _image_header(path: Path) -> tuple[int, int, bool]:
    """(width, height, has alpha) of an image, from its header alone."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except Image.DecompressionBombError:
        raise NerfDatasetError(f"{path}: image is too large to decode") from None
    except Exception as exc:  # Pillow raises many types for a broken header
        raise NerfDatasetError(f"{path}: not a readable image ({exc})") from None
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise NerfDatasetError(
            f"{path}: image size {width}x{height} is outside 1..{MAX_IMAGE_SIDE} per side"
        )
    return width, height, has_alpha


def _read_rgba(path: Path, width: int, height: int) -> np.ndarray:
    """[H, W, 4] float32: the stored values / their maximum, alpha 1 where there is none."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey
                grey = np.asarray(image, np.float32) / 65535.0
                pixels = np.concatenate(
                    [np.repeat(grey[..., None], 3, axis=2), np.ones_like(grey)[..., None]], axis=2
                )
            else:
                rgba = image.convert("RGBA")
                pixels = np.asarray(rgba, np.float32) / 255.0
    except Exception as exc:
        raise NerfDatasetError(f"{path}: not a readable image ({exc})") from None
    if pixels.shape != (height, width, 4):
        raise NerfDatasetError(
            f"{path}: decoded to shape {pixels.shape}, expected {height}x{width}"
        )
    return np.clip(pixels, 0.0, 1.0)
