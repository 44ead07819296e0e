"""`nrender nerf dataset`: render a posed multi-view RGBA dataset of any nrender scene, in
the NeRF-synthetic layout that renderer/fields/dataset.py reads.

    summary = export_dataset("scenes/default", "out/ball", objects=["ball"], device="cpu")

- The chosen objects (default: every instance) are rendered alone with a transparent
  background: 8-bit RGBA PNGs, straight alpha = the share of a pixel's camera rays that hit
  a surface, colour = nrender's tonemap (exposure 0, clamp, sRGB) of radiance / coverage.
- The file's world is +Z up, like the public scenes, and normalised: the chosen objects'
  bounding box is centred at the origin with its half-diagonal 1. A point p of the
  scene's +Y-up world is x = s R (p - c) in the file, with R = DATASET_FROM_SCENE_ROTATION
  ((x, y, z) -> (x, -z, y), a +90 degree turn about X), c the box centre and s = 1 / its
  half-diagonal. `scene_from_dataset` in each transforms file is the inverse, so a field
  trained on the dataset is placed where the object was.
- Cameras look at the origin from distance CAMERA_DISTANCE (the unit sphere, hence the
  box, fills the narrower field of view but for a 10% margin), from directions drawn
  uniformly on the sphere (or the upper hemisphere, z >= 0), seeded by (seed, split), so
  the three splits are distinct and every export with the same arguments is the same.
- Written to a temporary folder beside the output and renamed into place when complete:
  a stopped, interrupted or failed export leaves nothing behind, and an existing
  dataset at the output stays as it was until the new one replaces it whole.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..device_choices import DEVICE_CHOICES
from ..errors import NrenderError, NrenderWarning
from ..input_files import check_path_text, is_dir, read_json
from .dataset import MAX_DATASET_PIXELS, SPLITS, transforms_path

DATASET_FORMAT_VERSION = 1
# nrender scenes are +Y up, the public NeRF-synthetic scenes (Blender) +Z up.
DATASET_FROM_SCENE_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# The public scenes' field of view (Blender's 50 mm lens on a 36 mm sensor).
CAMERA_ANGLE_X = 0.6911112070083618
FIT_MARGIN = 1.1  # the unit sphere spans 1 / 1.1 of the narrower field of view
AABB_PADDING = 0.05  # of the (normalised) box's diagonal, on each side
DEFAULT_VIEWS = (100, 10, 20)  # the public scenes' train and val counts; test cut to 20
DEFAULT_RESOLUTION = 128
DEFAULT_SPP = 64
MAX_VIEWS = 10_000
MAX_RESOLUTION = 4096
MAX_SPP = 1 << 16


class NerfExportError(NrenderError):
    """`nrender nerf dataset` cannot run as asked: the message names the argument or path."""


@dataclass
class DatasetSummary:
    """What an export wrote (or, `completed` False, would have: nothing was written)."""

    output: Path
    views: dict[str, int]  # split -> frames written
    resolution: tuple[int, int]  # (width, height)
    spp: int
    camera_angle_x: float
    instances: list[int]  # the scene's instances that were rendered
    aabb: np.ndarray  # [2, 3] in the file's world
    scene_from_dataset: np.ndarray  # [4, 4]
    device: str = ""
    seconds: float = 0.0
    completed: bool = True
    dropped_samples: int = 0
    warnings: list[str] = field(default_factory=list)


def export_dataset(
    scene: Any,
    out_dir: str | os.PathLike[str],
    *,
    views_train: int = DEFAULT_VIEWS[0],
    views_val: int = DEFAULT_VIEWS[1],
    views_test: int = DEFAULT_VIEWS[2],
    resolution: int | tuple[int, int] = DEFAULT_RESOLUTION,
    spp: int = DEFAULT_SPP,
    objects: Sequence[str | int] | None = None,
    seed: int = 0,
    hemisphere: bool = False,
    device: Any = "auto",
    progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> DatasetSummary:
    """Render a dataset of `scene` (a path, a scene dict or a Scene) into folder `out_dir`.

    `resolution`: square side, or (width, height). `objects`: mesh names (every instance of
    that mesh) or instance indices; the other instances, emitters among them, are left out,
    so the light is what the chosen objects emit plus the environment. `hemisphere`: only
    cameras above the objects (scene +Y), as the public scenes' training views.
    `should_stop()` is asked between render passes; when it answers True the export ends
    with nothing written (`completed` False). Ctrl-C likewise removes the partial output.
    Arguments and the output folder are checked before anything renders."""
    counts = {
        split: _count(f"views_{split}", n)
        for split, n in zip(SPLITS, (views_train, views_val, views_test), strict=True)
    }
    width, height = _resolution(resolution)
    if isinstance(spp, bool) or not isinstance(spp, int) or not 1 <= spp <= MAX_SPP:
        raise NerfExportError(f"spp: expected an integer in [1, {MAX_SPP}], got {spp!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise NerfExportError(f"seed: expected an integer in [0, 2^32), got {seed!r}")
    if isinstance(device, str) and device not in DEVICE_CHOICES:
        raise NerfExportError(f"device: expected one of {DEVICE_CHOICES}, got {device!r}")
    largest = max(counts.values())
    if largest * width * height > MAX_DATASET_PIXELS:
        raise NerfExportError(
            f"{largest} views of {width}x{height} make a split larger than the "
            f"{MAX_DATASET_PIXELS >> 20} Mpixel the dataset loader accepts"
        )
    out = Path(out_dir)
    replaces = check_output(out)
    source = _load(scene)
    chosen = select_instances(source, objects)
    lo, hi = instances_bounds(source, chosen)
    centre = 0.5 * (lo + hi)
    half_diagonal = 0.5 * float(np.linalg.norm(hi - lo))
    if not half_diagonal > 0.0:
        raise NerfExportError(f"objects {_names(source, chosen)}: their bounding box is a point")
    dataset_from_scene = similarity(DATASET_FROM_SCENE_ROTATION, 1.0 / half_diagonal, centre)
    scene_from_dataset = np.linalg.inv(dataset_from_scene)
    aabb = dataset_box(dataset_from_scene, lo, hi)
    distance = camera_distance(width, height)
    subset = subset_scene(source, chosen)
    # light selection favours what the scene's camera sees: make that one of the views
    subset.camera = scene_camera(
        look_at_origin(np.array([1.0, -1.0, 1.0]), distance), scene_from_dataset, width, height
    )

    from ..render.renderer import Renderer

    renderer = Renderer(subset, device)
    notes = []
    if getattr(source, "volumes", None):
        # a dataset holds meshes only: its boxes would come from them alone, and a field
        # trained on a field's renders is a copy of a copy
        notes.append(f"the scene's {len(source.volumes)} NeRF volume(s) are left out of the views")
        warnings.warn(NrenderWarning(notes[-1]), stacklevel=2)
    if not renderer.buffers.has_light:
        notes.append(
            f"objects {_names(source, chosen)} have no light (no emitter among them, black "
            "environment): the images will be black, only their alpha says something"
        )
        warnings.warn(NrenderWarning(notes[-1]), stacklevel=2)
    summary = DatasetSummary(
        output=out,
        views={split: 0 for split in SPLITS},
        resolution=(width, height),
        spp=spp,
        camera_angle_x=CAMERA_ANGLE_X,
        instances=chosen,
        aabb=aabb,
        scene_from_dataset=scene_from_dataset,
        device=renderer.device.description,
        warnings=notes,
    )
    header = {
        "aabb": aabb.tolist(),
        "scene_from_dataset": scene_from_dataset.tolist(),
        "nrender": {
            "format": DATASET_FORMAT_VERSION,
            "scene": str(source.source) if source.source else "<scene>",
            "instances": chosen,
            "resolution": [width, height],
            "spp": spp,
            "seed": seed,
            "hemisphere": hemisphere,
        },
    }
    start = time.perf_counter()
    staging = out.parent / f".{out.name}.partial{os.getpid()}"
    _remove(staging)
    try:
        staging.mkdir(parents=True)
        with _progress_bar(progress, sum(counts.values())) as bar:
            for k, split in enumerate(SPLITS):
                (staging / split).mkdir()
                frames = []
                c2ws = camera_poses(counts[split], seed, k, hemisphere, distance)
                for i, c2w in enumerate(c2ws):
                    bar.set_postfix_str(split)
                    image, dropped = render_view(
                        renderer,
                        scene_camera(c2w, scene_from_dataset, width, height),
                        spp=spp,
                        seed=view_seed(seed, k, i),
                        should_stop=should_stop,
                    )
                    if image is None:
                        summary.completed = False
                        summary.seconds = time.perf_counter() - start
                        return summary
                    summary.dropped_samples += dropped
                    _write_png(staging / split / f"r_{i}.png", image)
                    frames.append(
                        {
                            "file_path": f"./{split}/r_{i}",
                            "rotation": 0.0,
                            "transform_matrix": c2w.tolist(),
                        }
                    )
                    bar.update(1)
                text = _dumps({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames, **header})
                transforms_path(staging, split).write_text(text)
                summary.views[split] = len(frames)
        _swap_into_place(staging, out, replaces)
    except OSError as exc:
        raise NerfExportError(f"{out}: cannot write the dataset ({exc})") from None
    finally:
        _remove(staging)
    summary.seconds = time.perf_counter() - start
    return summary


# --- cameras ---------------------------------------------------------------------------
def similarity(rotation: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
    """The 4x4 x = scale * rotation (p - centre)."""
    m = np.eye(4)
    m[:3, :3] = scale * rotation
    m[:3, 3] = -scale * rotation @ centre
    return m


def camera_distance(width: int, height: int) -> float:
    """How far from the origin a camera sees the unit sphere whole, with FIT_MARGIN."""
    tan_x = math.tan(0.5 * CAMERA_ANGLE_X)
    tan_half = min(tan_x, tan_x * height / width)  # the narrower of the two half-angles
    return FIT_MARGIN / math.sin(math.atan(tan_half))


def camera_poses(
    count: int, seed: int, split_index: int, hemisphere: bool, distance: float
) -> np.ndarray:
    """[count, 4, 4] camera-to-world matrices (dataset world, OpenGL cameras) looking at the
    origin from `distance`, their directions uniform on the sphere (or the z >= 0 half)."""
    rng = np.random.default_rng([seed, split_index])
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    if hemisphere:
        directions[:, 2] = np.abs(directions[:, 2])
    return np.stack([look_at_origin(d, distance) for d in directions])


def look_at_origin(direction: np.ndarray, distance: float) -> np.ndarray:
    """Camera-to-world of a camera at `distance` * `direction` looking at the origin, its
    image's up as close to +Z as can be (+Y when looking straight down or up)."""
    back = np.asarray(direction, np.float64) / np.linalg.norm(direction)  # the camera's +Z
    world_up = np.array([0.0, 0.0, 1.0]) if abs(back[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(world_up, back)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0] = right
    c2w[:3, 1] = np.cross(back, right)
    c2w[:3, 2] = back
    c2w[:3, 3] = distance * back
    return c2w


def scene_camera(c2w: np.ndarray, scene_from_dataset: np.ndarray, width: int, height: int) -> Any:
    """nrender's Camera (scene world, vertical fov) of a dataset camera."""
    from ..scene.types import Camera

    position = scene_from_dataset[:3, :3] @ c2w[:3, 3] + scene_from_dataset[:3, 3]
    rotation = scene_from_dataset[:3, :3] / np.cbrt(np.linalg.det(scene_from_dataset[:3, :3]))
    forward = rotation @ -c2w[:3, 2]
    up = rotation @ c2w[:3, 1]
    fov_y = 2.0 * math.atan(math.tan(0.5 * CAMERA_ANGLE_X) * height / width)
    return Camera(
        position=position,
        look_at=position + forward,
        up=up,
        fov=math.degrees(fov_y),
        resolution=(width, height),
    )


def view_seed(seed: int, split_index: int, view: int) -> int:
    """A render seed per view: the noise of two views is independent."""
    return int(np.random.SeedSequence([seed, split_index, view]).generate_state(1)[0])


# --- the scene -------------------------------------------------------------------------
def _load(scene: Any) -> Any:
    from ..scene import Scene, load_scene

    if isinstance(scene, Scene):
        return scene
    if isinstance(scene, (dict, str, os.PathLike)):
        return load_scene(scene)
    raise NerfExportError(
        f"scene: expected a path, a scene dict or a Scene, got {type(scene).__name__}"
    )


def select_instances(scene: Any, objects: Sequence[str | int] | None) -> list[int]:
    """Indices of the instances `objects` names: a mesh name is every instance of that mesh,
    an integer (or a string of digits naming no mesh) one instance. None: all of them."""
    where = scene.source or "the scene"
    count = len(scene.instances)
    if count == 0:
        raise NerfExportError(f"{where}: the scene has no instances to render")
    if objects is None:
        return list(range(count))
    if isinstance(objects, (str, int)) or not objects:
        raise NerfExportError(
            f"objects: expected a non-empty list of names or indices, got {objects!r}"
        )
    chosen: set[int] = set()
    for item in objects:
        if isinstance(item, str) and item in scene.meshes:
            chosen.update(i for i, inst in enumerate(scene.instances) if inst.mesh == item)
            continue
        index = item if isinstance(item, int) and not isinstance(item, bool) else None
        if isinstance(item, str) and item.strip().isdigit():
            index = int(item)
        if index is None or not 0 <= index < count:
            meshes = ", ".join(sorted(scene.meshes)) or "none"
            raise NerfExportError(
                f"{where}: objects: no mesh named {item!r} and no instance {item!r} (meshes: "
                f"{meshes}; instances: 0 to {count - 1})"
            )
        chosen.add(index)
    return sorted(chosen)


def _names(scene: Any, chosen: list[int]) -> str:
    return ", ".join(f"{i} ({scene.instances[i].mesh})" for i in chosen)


def instances_bounds(scene: Any, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounding box (min [3], max [3]) of the chosen instances."""
    from ..scene.types import Sphere

    lows, highs = [], []
    for i in chosen:
        instance = scene.instances[i]
        shape = scene.meshes[instance.mesh]
        m = np.asarray(instance.transform, np.float64)
        if isinstance(shape, Sphere):
            radius = shape.radius * abs(np.linalg.det(m[:3, :3])) ** (1 / 3)
            lows.append(m[:3, 3] - radius)
            highs.append(m[:3, 3] + radius)
        elif len(shape.positions):
            world = np.asarray(shape.positions, np.float64) @ m[:3, :3].T + m[:3, 3]
            lows.append(world.min(axis=0))
            highs.append(world.max(axis=0))
    if not lows:
        raise NerfExportError(f"objects {_names(scene, chosen)}: no geometry (empty meshes)")
    return np.min(lows, axis=0), np.max(highs, axis=0)


def dataset_box(dataset_from_scene: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[2, 3]: the scene box (lo, hi) in the dataset's world, padded by AABB_PADDING."""
    corners = np.array([[(lo, hi)[(c >> k) & 1][k] for k in range(3)] for c in range(8)])
    moved = corners @ dataset_from_scene[:3, :3].T + dataset_from_scene[:3, 3]
    low, high = moved.min(axis=0), moved.max(axis=0)
    pad = AABB_PADDING * float(np.linalg.norm(high - low))
    return np.stack([low - pad, high + pad])


def subset_scene(scene: Any, chosen: list[int]) -> Any:
    """A copy of `scene` with only the chosen instances (no volumes), rendered with a
    transparent background (the scene itself is not changed)."""
    from ..scene.types import Scene

    instances = [scene.instances[i] for i in chosen]
    used_meshes = {inst.mesh for inst in instances}
    used_materials = {inst.material for inst in instances}
    return Scene(
        camera=replace(scene.camera),
        integrator=replace(scene.integrator, transparent_background=True),
        environment=scene.environment,
        materials={k: v for k, v in scene.materials.items() if k in used_materials},
        meshes={k: v for k, v in scene.meshes.items() if k in used_meshes},
        instances=instances,
        source=scene.source,
    )


# --- rendering and files ---------------------------------------------------------------
def render_view(
    renderer: Any,
    camera: Any,
    *,
    spp: int,
    seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray | None, int]:
    """One view as 8-bit straight-alpha RGBA [H, W, 4] (None if stopped), and the count of
    non-finite samples dropped."""
    from ..render.film import tonemap

    job = renderer.start(spp=spp, seed=seed, camera=camera)
    while not job.done:
        if should_stop is not None and should_stop():
            return None, 0
        job.step()
    result = job.result()
    coverage = np.clip(result.coverage, 0.0, 1.0)
    covered = coverage > 0.0
    straight = np.where(
        covered[..., None], result.radiance / np.where(covered, coverage, 1.0)[..., None], 0.0
    )
    rgba = np.empty((*coverage.shape, 4), np.uint8)
    rgba[..., :3] = tonemap(straight)
    rgba[..., 3] = np.round(coverage * 255.0).astype(np.uint8)
    return rgba, result.dropped_samples


def _write_png(path: Path, rgba: np.ndarray) -> None:
    import imageio.v3 as iio

    try:
        iio.imwrite(path, rgba, extension=".png")
    except OSError as exc:
        raise NerfExportError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _dumps(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, indent=2) + "\n"


def check_output(out: Path) -> bool:
    """Refuse an output that is not ours to write; True when it holds a dataset that the
    export will replace."""
    if problem := check_path_text(str(out)):
        raise NerfExportError(f"{out}: {problem}")
    if not out.exists():
        if out.parent.exists() and not is_dir(out.parent):
            raise NerfExportError(f"{out}: {out.parent} is not a folder")
        return False
    if not is_dir(out):
        raise NerfExportError(f"{out}: exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return True
    ours = {*SPLITS, *(transforms_path(out, s).name for s in SPLITS)}
    strangers = [name for name in entries if name not in ours]
    if strangers or not is_nrender_dataset(out):
        shown = ", ".join(strangers[:3]) or ", ".join(entries[:3])
        raise NerfExportError(
            f"{out}: exists and is not an nrender dataset folder (it holds {shown}); "
            "give a new or empty folder, or remove it"
        )
    return True


def is_nrender_dataset(folder: Path) -> bool:
    """Whether `folder` holds a dataset `nrender nerf dataset` wrote."""
    try:
        doc = read_json(transforms_path(folder, "train"), NrenderError, "transforms file")
    except NrenderError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("nrender"), dict)


def _swap_into_place(staging: Path, out: Path, replaces: bool) -> None:
    """Rename the finished `staging` folder to `out`, replacing an older dataset there."""
    if not replaces:
        os.replace(staging, out)
        return
    old = out.parent / f".{out.name}.old{os.getpid()}"
    _remove(old)
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(old, out)  # put the old dataset back
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _progress_bar(enabled: bool, total: int) -> Any:
    from ..neural.progress import progress_bar

    return progress_bar(enabled, total, "nerf dataset", "view")


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VIEWS:
        raise NerfExportError(f"{name}: expected an integer in [1, {MAX_VIEWS}], got {value!r}")
    return value


def _resolution(value: Any) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        width, height = size
    except (TypeError, ValueError):
        width = height = None
    for v in (width, height):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_RESOLUTION:
            raise NerfExportError(
                f"resolution: expected a side or (width, height) in [1, {MAX_RESOLUTION}], "
                f"got {value!r}"
            )
    return width, height


# --- the command line ------------------------------------------------------------------
def _views_arg(text: str) -> tuple[int, int, int]:
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 3 or not all(1 <= n <= MAX_VIEWS for n in counts):
        raise argparse.ArgumentTypeError(
            f"expected TRAIN,VAL,TEST view counts in [1, {MAX_VIEWS}] (e.g. 100,10,20), "
            f"got {text!r}"
        )
    return counts  # type: ignore[return-value]


def _resolution_arg(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not all(1 <= v <= MAX_RESOLUTION for v in parts):
        raise argparse.ArgumentTypeError(
            f"expected a side or WIDTHxHEIGHT in [1, {MAX_RESOLUTION}] (e.g. 128), got {text!r}"
        )
    return parts[0], parts[1]


def _int_arg(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{low}, {high}], got {text!r}"
            )
        return value

    return parse


def _objects_arg(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated mesh names or instance indices, got {text!r}"
        )
    return names


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `nrender nerf dataset`."""
    parser.add_argument("scene", help="scene file (.json, .gltf, .glb) or folder with scene.json")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="dataset folder to write: new, empty, or an earlier nrender dataset (replaced)",
    )
    parser.add_argument(
        "--views",
        type=_views_arg,
        default=DEFAULT_VIEWS,
        metavar="TRAIN,VAL,TEST",
        help=f"views per split (default: {','.join(map(str, DEFAULT_VIEWS))})",
    )
    parser.add_argument(
        "--resolution",
        type=_resolution_arg,
        default=(DEFAULT_RESOLUTION, DEFAULT_RESOLUTION),
        metavar="N|WxH",
        help=f"image size (default: {DEFAULT_RESOLUTION})",
    )
    parser.add_argument(
        "--spp",
        type=_int_arg(1, MAX_SPP),
        default=DEFAULT_SPP,
        help=f"samples per pixel (default: {DEFAULT_SPP})",
    )
    parser.add_argument(
        "--objects",
        type=_objects_arg,
        metavar="NAME,...",
        help="render only these: mesh names (all their instances) or instance indices; "
        "other objects, lights among them, are left out (default: everything)",
    )
    parser.add_argument(
        "--hemisphere",
        action="store_true",
        help="cameras only above the objects (+Y), as the public scenes' training views",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="auto = CUDA when present, else CPU (default: auto)",
    )
    parser.add_argument(
        "--seed",
        type=_int_arg(0, 2**32 - 1),
        default=0,
        help="camera placement and noise seed (default: 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_nerf_dataset(args: argparse.Namespace) -> int:
    """Run `nrender nerf dataset`; Ctrl-C leaves nothing written (and the output unchanged)."""
    try:
        summary = export_dataset(
            args.scene,
            args.output,
            views_train=args.views[0],
            views_val=args.views[1],
            views_test=args.views[2],
            resolution=tuple(args.resolution),
            spp=args.spp,
            objects=args.objects,
            seed=args.seed,
            hemisphere=args.hemisphere,
            device=args.device,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"nrender: nothing written; {args.output} is unchanged", file=sys.stderr)
        raise
    if summary.dropped_samples:
        print(
            f"nrender: warning: {summary.dropped_samples} non-finite samples were dropped",
            file=sys.stderr,
        )
    w, h = summary.resolution
    counts = ", ".join(f"{n} {split}" for split, n in summary.views.items())
    print(
        f"wrote {summary.output}: {counts} views at {w}x{h}, {summary.spp} spp, on "
        f"{summary.device} in {summary.seconds:.1f} s"
    )
    return 0
