"""The `nrender` command: render, bake, nerf, info and bench.

Errors a user can fix (bad scene, missing file, absent device) print one line and exit
with status 2; Ctrl-C during a render writes what has accumulated and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from .device_choices import DEVICE_CHOICES
from .errors import NrenderError, NrenderWarning, one_line
from .image_io import check_writable, output_stem
from .neural.architecture import MAX_LEVEL_TEXELS
from .paths import default_scene_path
from .ray_cluster import cluster_address
from .scene.loader import MAX_DEPTH, MAX_PIXELS, MAX_RESOLUTION, MAX_SPP
from .scene.types import MATERIAL_MODES, SCHEDULES
from .version import __version__
from .viewer import DISPLAY_VIEWS as VIEWER_VIEWS

DEFAULT_COMPARE_SPP = 256
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT (e.g. 640x360), got {text!r}"
        ) from None
    if not (1 <= w <= MAX_RESOLUTION and 1 <= h <= MAX_RESOLUTION):
        raise argparse.ArgumentTypeError(
            f"width and height must be in [1, {MAX_RESOLUTION}], got {text!r}"
        )
    if w * h > MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"{text} is more than {MAX_PIXELS >> 20} Mpixel")
    return w, h


def _shown(text: str) -> str:
    """A flag's value for an error message (a 5000-digit number is not echoed whole)."""
    return repr(text) if len(text) <= 40 else repr(text[:30] + "...") + f" ({len(text)} characters)"


def _in_range(convert: Any, low: float, high: float, kind: str) -> Any:
    """An argparse type: `convert(text)` (int or float) in [low, high], the scene format's
    range for the same setting, so a flag can never ask for what a scene file cannot.
    nan fails the range test, so it is refused too."""

    def parse(text: str) -> Any:
        expected = f"expected {kind} in [{low}, {high}]"
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text)}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{expected}, got {_shown(text)}")
        return value

    return parse


def _integer_in(low: int, high: int) -> Any:
    return _in_range(int, low, high, "an integer")


def _number_in(low: float, high: float) -> Any:
    return _in_range(float, low, high, "a number")


_positive = _integer_in(1, 2**31 - 1)
_non_negative = _integer_in(0, 2**31 - 1)
_spp = _integer_in(1, MAX_SPP)
_seed = _integer_in(0, 2**32 - 1)
_max_depth = _integer_in(0, MAX_DEPTH)
_exposure = _number_in(-64.0, 64.0)
_workers = _integer_in(1, 256)  # render.workers.MAX_WORKERS (not imported: it loads slangpy)


def _cluster(text: str) -> str:
    try:
        return cluster_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        print(f"nrender: error: {self.prog}: {one_line(message)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _power_of_two(text: str) -> int:
    value = _positive(text)
    if value & (value - 1) or value > MAX_LEVEL_TEXELS:
        raise argparse.ArgumentTypeError(
            f"expected a power of two in [1, {MAX_LEVEL_TEXELS}], got {value}"
        )
    return value


def _format_rate(samples_per_second: float) -> str:
    if samples_per_second >= 1e6:
        return f"{samples_per_second / 1e6:.2f} M samples/s"
    return f"{samples_per_second / 1e3:.1f} k samples/s"


def _add_scene_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "scene",
        nargs="?",
        default=None,
        help="scene file (.json, .gltf, .glb) or folder with scene.json "
        "(default: the bundled scenes/default)",
    )
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="auto = CUDA when present, else CPU (default: auto)",
    )
    p.add_argument("--res", type=_resolution, metavar="WxH", help="override the camera resolution")


def _load(args: argparse.Namespace) -> Any:
    from .scene import load_scene

    scene = load_scene(args.scene or default_scene_path())
    if args.res:
        scene.camera.resolution = args.res
    return scene


class _StopRequest:
    """First Ctrl-C: finish the pass in flight, then stop and write; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        print("\nnrender: stopping at the next safe point (Ctrl-C again to abort)", file=sys.stderr)

    def __enter__(self) -> _StopRequest:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.requested:
            signal.signal(signal.SIGINT, self._previous)


def _render_job(args: argparse.Namespace, scene: Any) -> Any:
    """The render's job: worker processes on this machine, or Ray actors (--cluster)."""
    settings = {
        "spp": args.spp,
        "seed": args.seed,
        "max_depth": args.max_depth,
        "strategy": args.strategy,
        "materials": args.materials,
        "schedule": args.schedule,
    }
    if args.cluster:
        from .ray_cluster import connect
        from .render.cluster import ClusterRenderJob, check_schedule

        check_schedule(args.schedule)
        connect(args.cluster)
        return ClusterRenderJob(scene, args.device, workers=args.workers, **settings)
    from .device import open_device
    from .render.workers import ParallelRenderJob, default_workers

    device = open_device(args.device)
    width, height = scene.camera.resolution
    samples = width * height * (args.spp or scene.integrator.spp)
    workers = args.workers or default_workers(device.kind, samples)
    return ParallelRenderJob(scene, device, workers=workers, **settings)


def cmd_render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    scene = _load(args)
    stem = output_stem(args.out)
    for suffix in (".exr", ".png"):
        check_writable(stem.with_name(stem.name + suffix))
    job = _render_job(args, scene)
    try:
        if not job.has_light:
            print(
                "nrender: warning: the scene has no light (no emission, black environment); "
                "the image will be black",
                file=sys.stderr,
            )
        w, h = job.width, job.height
        stop = _StopRequest()
        with (
            stop,
            tqdm(
                total=job.settings.spp,
                unit="spp",
                desc=f"render {w}x{h}",
                disable=args.quiet,
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=0.5,
            ) as bar,
        ):
            while not job.done and not stop.requested:
                bar.update(job.step())
                if job.seconds > 0:
                    bar.set_postfix_str(_format_rate(job.spp_done * w * h / job.seconds))
            interrupted = stop.requested
            if interrupted:
                job.stop()  # every worker's samples so far, partial blocks included
                bar.update(job.spp_done - bar.n)
        result = job.result()
    finally:
        job.close()
    written = result.write_outputs(args.out, exposure=args.exposure)
    if result.dropped_samples:
        print(
            f"nrender: warning: {result.dropped_samples} non-finite samples were dropped",
            file=sys.stderr,
        )
    if not args.quiet:
        rate = result.spp * w * h / max(result.seconds, 1e-9)
        workers = f", {job.workers} workers" if job.workers > 1 else ""
        print(
            f"{result.spp} spp at {w}x{h} on {job.device_description}{workers} in "
            f"{result.seconds:.2f} s ({_format_rate(rate)})"
        )
    print("wrote " + ", ".join(str(p) for p in written))
    if interrupted:
        # a cluster render's tiles may hold different counts: the mean, then the least
        held = f"{job.spp_done}" if job.spp_done == result.spp else f"{job.spp_done} (mean)"
        fewest = "" if job.spp_done == result.spp else f", some pixels {result.spp}"
        print(
            f"nrender: interrupted after {held} of {job.settings.spp} spp{fewest}; "
            "the images hold what was rendered",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .compare import compare_scene, comparison_scene, write_comparison

    scene = comparison_scene(args.source or default_scene_path(), args.nmat)
    if args.res:
        scene.camera.resolution = args.res
    stem = output_stem(args.out or f"compare_{Path(args.source or 'default').stem}")
    for suffix in (".png", ".json", ".md", ".reference.exr", ".neural.exr"):
        check_writable(stem.with_name(stem.name + suffix))
    stop = _StopRequest()
    bars: dict[str, Any] = {}

    def progress(mode: str, done: int, total: int) -> None:
        if mode not in bars:
            for bar in bars.values():
                bar.close()
            bars[mode] = tqdm(
                total=total, unit="spp", desc=f"{mode:>9}", disable=args.quiet, file=sys.stderr
            )
        bars[mode].update(done - bars[mode].n)

    try:
        with stop:
            result = compare_scene(
                scene,
                device=args.device,
                spp=args.spp,
                seed=args.seed,
                progress=progress,
                stop=lambda: stop.requested,
            )
    except NrenderError:
        if stop.requested:
            print("nrender: interrupted; nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    finally:
        for bar in bars.values():
            bar.close()
    written = write_comparison(result, stem)
    r = result.report
    print(
        f"{r['resolution'][0]}x{r['resolution'][1]} at {r['spp']} spp: mean FLIP "
        f"{r['flip_mean']:.4f}, PSNR {r['psnr_db']:.2f} dB (tonemapped); reference "
        f"{r['seconds']['reference']:.1f} s, neural {r['seconds']['neural']:.1f} s"
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _bake_preset(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from .neural import preset

    chosen = preset(args.preset)
    if args.decoder:
        chosen = replace(chosen, decoder=args.decoder)
    if args.max_resolution:
        chosen = replace(chosen, max_resolution=args.max_resolution)
    return chosen


def _bake_one(args: argparse.Namespace, source: Path, output: Path, stop: _StopRequest) -> int:
    from .neural import BakeInterrupted, bake

    try:
        result = bake(
            source,
            output,
            _bake_preset(args),
            device=args.device,
            reference_device=args.reference_device,
            seed=args.seed,
            resume=args.resume,
            fresh=args.fresh,
            progress=not args.quiet,
            stop=lambda: stop.requested,
        )
    except BakeInterrupted as exc:
        print(f"nrender: {exc}; run the same command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_bake(source, output, result.report, result.written)
    return 0


def _print_bake(source: Path, output: Path, report: dict[str, Any], written: list[Path]) -> None:
    metrics = report["metrics"]
    held, sampler = metrics["heldout"], metrics["sampler"]
    seconds = report["seconds"]["total"]
    print(
        f"baked {source} -> {output} in {seconds:.0f} s: held-out PSNR "
        f"{held['psnr_tonemapped_db']:.2f} dB tonemapped, {held['psnr_db']:.2f} dB linear "
        f"(reference noise floor {held['reference_noise_psnr_tonemapped_db']:.2f} / "
        f"{held['reference_noise_psnr_db']:.2f} dB), log-L1 {held['log_l1']:.4f}; "
        f"sampler KL {sampler['kl_learned']:.3f} (cosine sampling {sampler['kl_cosine']:.3f})"
    )
    print("wrote " + ", ".join(str(p) for p in written))


def _bake_on_cluster(args: argparse.Namespace, todo: list[tuple[Path, Path]]) -> list[str]:
    """Bake `todo` (source, output) as Ray tasks; returns the names of those that failed."""
    from .neural.cluster_bake import bake_on_cluster, prepare, write_outputs
    from .ray_cluster import cluster_slots, connect

    ray = connect(args.cluster)
    _, gpus = cluster_slots(ray)
    gpus = 0 if args.device == "cpu" else gpus
    if args.device == "cuda" and not gpus:
        raise NrenderError("--device cuda: the Ray cluster has no GPU")
    preset = _bake_preset(args)
    jobs = [
        prepare(source, output, preset, args.device, args.reference_device, args.seed)
        for source, output in todo
    ]
    failures: list[str] = []

    def done(job: Any, answer: dict[str, Any] | None, error: str | None) -> None:
        source, output = Path(job.source), Path(job.output)
        if answer is None:
            print(f"nrender: error: {error}", file=sys.stderr)
            failures.append(source.name)
            return
        written = write_outputs(output, answer["files"])
        _print_bake(source, output, answer["report"], written)

    if not args.quiet:
        where = f"{gpus} GPU(s)" if gpus else f"{cluster_slots(ray)[0]} CPU(s)"
        print(f"baking {len(jobs)} material(s) on a Ray cluster with {where}", file=sys.stderr)
    bake_on_cluster(ray, jobs, gpus=gpus, done=done)
    return failures


def cmd_bake(args: argparse.Namespace) -> int:
    from .materials import is_material_document
    from .neural.nmat import read_header
    from .neural.parameters import material_hash

    source = Path(args.material)
    from .input_files import is_dir, is_file
    from .neural.baking import torch_device

    # what is missing is the one line a user sees, before any advice about presets
    if args.all and not is_dir(source):
        raise NrenderError(f"--all: {source} is not a folder of material files")
    if not args.all and not is_file(source):
        raise NrenderError(f"{source}: material file not found")
    if args.preset == "default" and torch_device(args.device).type == "cpu":
        print(
            "nrender: warning: the default bake preset is sized for a GPU and takes hours on "
            "a CPU; --preset quick takes minutes",
            file=sys.stderr,
        )
    if args.cluster and not args.all:
        raise NrenderError("--cluster bakes a folder: add --all")
    if args.cluster and args.resume:
        raise NrenderError("--cluster: a cluster bake starts over; --resume is for this machine")
    if not args.all:
        output = Path(args.output) if args.output else Path(source.stem + ".nmat")
        with _StopRequest() as stop:
            return _bake_one(args, source, output, stop)
    out_dir = Path(args.output or "baked")
    if out_dir.exists() and not out_dir.is_dir():
        raise NrenderError(f"--all: output {out_dir} exists and is not a folder")
    from .materials import load_material

    sources = []
    for path in sorted(source.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            document = None
        if is_material_document(document):
            sources.append(path)
    if not sources:
        raise NrenderError(f"--all: no material files (*.json) in {source}")
    failures: list[str] = []
    todo: list[tuple[Path, Path]] = []  # with --cluster: baked together at the end
    with _StopRequest() as stop:
        for path in sources:
            output = out_dir / (path.stem + ".nmat")
            header = read_header(output)
            if header is not None and not args.fresh:
                try:
                    same = header.get("source_hash") == material_hash(load_material(path))
                except NrenderError:
                    same = False
                if same and json.loads(header.get("preset", "{}")) == _bake_preset(args).to_dict():
                    print(f"skip {path} (unchanged since {output} was baked)")
                    continue
            if args.cluster:
                todo.append((path, output))
                continue
            try:
                status = _bake_one(args, path, output, stop)
            except NrenderError as exc:
                print(f"nrender: error: {exc}", file=sys.stderr)
                failures.append(path.name)
                continue
            if status == EXIT_INTERRUPTED:
                return status
    if todo:
        failures += _bake_on_cluster(args, todo)
    if failures:
        raise NrenderError(f"--all: {len(failures)} material(s) failed: {', '.join(failures)}")
    return 0


def cmd_nerf_train(args: argparse.Namespace) -> int:
    from .fields.training import PRESETS, TrainingInterrupted, train_field
    from .input_files import is_dir
    from .neural.baking import torch_device

    if not is_dir(Path(args.dataset)):
        problem = "is not a folder" if Path(args.dataset).exists() else "dataset folder not found"
        raise NrenderError(f"{args.dataset}: {problem}")
    output = Path(args.output) if args.output else Path(Path(args.dataset).name + ".nfield")
    check_writable(output)
    preset = PRESETS[args.preset]
    if args.steps is not None:
        preset = preset.with_steps(args.steps)
    if args.preset == "default" and torch_device(args.device).type == "cpu":
        print(
            "nrender: warning: the default training preset is sized for a GPU and takes hours "
            "on a CPU; --preset quick takes minutes",
            file=sys.stderr,
        )
    with _StopRequest() as stop:
        try:
            result = train_field(
                args.dataset,
                output,
                preset,
                device=args.device,
                seed=args.seed,
                resume=args.resume,
                fresh=args.fresh,
                progress=not args.quiet,
                stop=lambda: stop.requested,
                max_seconds=args.time_limit,
            )
        except TrainingInterrupted as exc:
            print(
                f"nrender: {exc}; run the same command with --resume to continue", file=sys.stderr
            )
            return EXIT_INTERRUPTED
    training = result.report["training"]
    line = (
        f"trained {args.dataset} -> {output}: "
        f"{training['steps']} steps in {training['seconds']:.0f} s"
    )
    evaluation = result.report.get("evaluation")
    if evaluation and "psnr_db" in evaluation:
        line += (
            f"; {evaluation['split']} views: PSNR {evaluation['psnr_db']:.2f} dB, "
            f"SSIM {evaluation['ssim']:.4f} (over white)"
        )
    print(line)
    print("wrote " + ", ".join(str(p) for p in result.written))
    if evaluation and evaluation.get("stopped"):
        print(
            f"nrender: evaluation stopped after {evaluation['views']} of "
            f"{evaluation['views_in_split']} {evaluation['split']} views (the field is complete; "
            f"`nrender nerf render {output} -o DIR` evaluates every view)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def cmd_nerf_render(args: argparse.Namespace) -> int:
    from .fields.field_render import dataset_views, render_views, scene_camera_view
    from .fields.nfield import NerfFile
    from .neural.baking import torch_device

    nerf = NerfFile.load(args.field, torch_device(args.device))
    if args.camera:
        views = [scene_camera_view(nerf, args.camera)]
    else:
        root = args.dataset or nerf.metadata.get("dataset", "")
        if not root:
            raise NrenderError(f"{args.field}: names no dataset; pass --dataset or --camera")
        views = dataset_views(root, args.views)
    metrics = render_views(nerf, views, args.output, args.background, progress=not args.quiet)
    line = f"rendered {len(views)} view(s) of {args.field} into {args.output}"
    if "psnr_db" in metrics:
        line += f": PSNR {metrics['psnr_db']:.2f} dB, SSIM {metrics['ssim']:.4f}"
    print(line)
    return 0


def _add_nerf_parsers(sub: Any) -> None:
    from .fields.dataset_export import add_dataset_arguments, cmd_nerf_dataset

    nerf = sub.add_parser(
        "nerf", help="neural radiance fields: datasets, training, rendering (docs/nerf.md)"
    )
    verbs = nerf.add_subparsers(dest="nerf_command", required=True)
    p = verbs.add_parser(
        "dataset", help="render a posed RGBA dataset of a scene (NeRF-synthetic layout)"
    )
    add_dataset_arguments(p)
    p.set_defaults(func=cmd_nerf_dataset)

    p = verbs.add_parser("train", help="train a hash-grid radiance field (.nfield) on a dataset")
    p.add_argument("dataset", help="dataset folder (transforms_train.json and images)")
    p.add_argument("-o", "--output", help="output .nfield (default: <dataset folder name>.nfield)")
    p.add_argument(
        "--preset",
        choices=("quick", "default"),
        default="default",
        help="quick: minutes on a 2-core CPU; default: sized for a GPU (default: default)",
    )
    p.add_argument("--steps", type=_positive, help="training steps (default: the preset's)")
    p.add_argument(
        "--time-limit",
        type=_in_range(float, 1.0, 1e7, "seconds"),
        metavar="SECONDS",
        help="end training after this long and write the field (default: no limit)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="torch training device; auto = CUDA when torch has it (default: auto)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint <output>.ckpt"
    )
    p.add_argument("--fresh", action="store_true", help="discard an existing checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_nerf_train)

    p = verbs.add_parser("render", help="render a trained field alone")
    p.add_argument("field", help="trained field (.nfield)")
    p.add_argument("-o", "--output", required=True, help="folder for the PNGs (and metrics.json)")
    p.add_argument(
        "--views",
        choices=("train", "val", "test"),
        default="test",
        help="dataset split to render (default: test)",
    )
    p.add_argument("--dataset", help="dataset folder (default: the one the field was trained on)")
    p.add_argument("--camera", metavar="SCENE", help="render the camera of this scene file instead")
    p.add_argument(
        "--background",
        choices=("white", "black", "transparent"),
        default="white",
        help="transparent writes RGBA PNGs (default: white, the NeRF protocol)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="torch device; auto = CUDA when torch has it (default: auto)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_nerf_render)


def cmd_view(args: argparse.Namespace) -> int:
    from .viewer.window import check_display

    check_display()  # before the scene loads and kernels compile
    if args.screenshot:
        stem = output_stem(args.screenshot)
        for suffix in (".png", ".exr"):
            check_writable(stem.with_name(stem.name + suffix))
    from .device import open_device
    from .viewer.session import ViewerSession
    from .viewer.window import Viewer

    scene = _load(args)
    device = open_device(args.device)
    scale = args.scale if args.scale is not None else (0.5 if device.kind == "cpu" else 1.0)
    session = ViewerSession(scene, device, size=scene.camera.resolution, render_scale=scale)
    if args.materials == "split":
        session.toggle_split()
    elif args.materials is not None and args.materials != session.materials:
        session.toggle_materials()
    session.set_view(args.view)
    Viewer(session, title=f"nrender - {scene.source or 'scene'}").run(
        frames=args.frames, screenshot=args.screenshot
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .render import Renderer

    scene = _load(args)
    renderer = Renderer(scene, device=args.device)
    stats = renderer.buffers.stats
    env = scene.environment
    info = {
        "scene": str(scene.source or args.scene or default_scene_path()),
        "device": renderer.device.description,
        "resolution": list(scene.camera.resolution),
        "integrator": vars(scene.integrator),
        "instances": len(scene.instances),
        "triangles": stats.triangles,
        "spheres": stats.spheres,
        "bvh": {
            "nodes": stats.bvh_nodes,
            "depth": stats.bvh_depth,
            "build_seconds": round(stats.bvh_seconds, 4),
        },
        "lights": {
            "emitters": stats.emitters,  # emissive triangles and spheres
            "environment": env.kind if not env.is_black else "none",
            "environment_sampling_probability": round(stats.environment_probability, 4),
        },
        "materials": len(scene.materials),
        "neural_bakes": {
            name: m.neural_path for name, m in scene.materials.items() if m.neural is not None
        },
        "volumes": len(scene.volumes),
    }
    if scene.volumes:
        from .fields.nerf_buffers import volume_summary

        info["volume_fields"] = [volume_summary(v) for v in scene.volumes]
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "volume_fields":  # one line per volume
                for i, volume in enumerate(value):
                    line = ", ".join(f"{k}={v}" for k, v in volume.items())
                    print(f"{f'volume {i}':>12}: {line}")
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            print(f"{key:>12}: {value}")
    return 0


def cmd_bench_materials(args: argparse.Namespace) -> int:
    from .bench_materials import markdown, run_material_benchmarks
    from .paths import materials_dir

    baked = Path(args.baked) if args.baked else materials_dir() / "baked"
    if not baked.is_dir():
        raise NrenderError(f"--baked: {baked} is not a folder of .nmat files")
    out = output_stem(args.out) if args.out else None
    if out is not None:
        for suffix in (".json", ".md"):
            check_writable(out.with_name(out.name + suffix))
    queries = 8192 if args.material_queries is None else args.material_queries
    if queries < 1:
        raise NrenderError(f"--material-queries: bench materials needs at least 1, got {queries}")
    report = run_material_benchmarks(
        device=args.device,
        baked=baked,
        resolution=args.res or (320, 180),
        spp=args.spp,
        queries=queries,
    )
    text = markdown(report)
    print(text)
    if out is not None:
        from .image_io import atomic_path

        for suffix, content in ((".json", json.dumps(report, indent=2) + "\n"), (".md", text)):
            with atomic_path(out.with_name(out.name + suffix)) as tmp:
                tmp.write_text(content)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.scene == "materials":
        return cmd_bench_materials(args)
    from .bench import run_benchmarks

    report = run_benchmarks(
        scene_path=Path(args.scene) if args.scene else default_scene_path(),
        device=args.device,
        resolution=args.res or (128, 128),
        spp=args.spp,
        bvh_triangles=args.bvh_triangles,
        material_queries=1 << 16 if args.material_queries is None else args.material_queries,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nrender", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nrender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="path trace a scene to EXR + PNG")
    _add_scene_options(p)
    p.add_argument("--spp", type=_spp, help="samples per pixel (default: the scene's)")
    p.add_argument("--seed", type=_seed, help="random seed (default: the scene's)")
    p.add_argument("--max-depth", type=_max_depth, help="maximum bounces (default: the scene's)")
    p.add_argument("--strategy", choices=("mis", "nee", "bsdf"), help="light transport estimator")
    p.add_argument(
        "--materials",
        choices=MATERIAL_MODES,
        help="reference: layered materials as their graphs; neural: as their bakes "
        "(default: the scene's, reference)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="megakernel",
        help="megakernel: a thread follows a path to its end; wavefront: all paths advance "
        "a bounce at a time, shaded sorted by material (coherent GPU warps); the same image "
        "up to fp16 rounding "
        "(default: megakernel)",
    )
    p.add_argument(
        "--out",
        default="render",
        help="output path; writes <out>.exr (linear, AOVs) and <out>.png (default: render)",
    )
    p.add_argument(
        "--exposure", type=_exposure, default=0.0, help="PNG exposure in stops (default: 0)"
    )
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="render in N processes, each with its own device; the image is the same for "
        "any N (default: all cores on the CPU device, fewer for a render too short to repay "
        "their start-up of a few seconds each; 1 on a GPU); with --cluster: Ray workers",
    )
    p.add_argument(
        "--cluster",
        type=_cluster,
        metavar="ADDRESS",
        help='render on a Ray cluster (pip install "nrender[cluster]"): auto (the cluster '
        "`ray start` joined), local (a Ray of this machine's cores), HOST:PORT or "
        "ray://HOST:PORT; the same image as without (docs/cluster.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("bake", help="bake a layered material into a neural material (.nmat)")
    p.add_argument("material", help="material file (.json), or a folder with --all")
    p.add_argument(
        "-o",
        "--output",
        help="output .nmat (default: <material name>.nmat); with --all a folder (default: baked)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="bake every material file in the folder, skipping those already baked from the "
        "same content with the same preset",
    )
    p.add_argument(
        "--preset",
        choices=("quick", "default"),
        default="default",
        help="quick: a few minutes on a 2-core CPU; default: sized for a GPU (default: default)",
    )
    p.add_argument(
        "--decoder",
        choices=("2x16", "2x32", "3x64"),
        help="BRDF decoder hidden layers (default: the preset's, 2x32)",
    )
    p.add_argument(
        "--max-resolution",
        type=_power_of_two,
        metavar="N",
        help="cap the finest latent level at NxN texels, a power of two (default: the "
        "preset's: quick 512, default 2048)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="torch training device; auto = CUDA when torch has it (default: auto)",
    )
    p.add_argument(
        "--reference-device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="device evaluating the layered reference (default: auto)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint <output>.ckpt"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard an existing checkpoint (and with --all, re-bake unchanged materials)",
    )
    p.add_argument(
        "--cluster",
        type=_cluster,
        metavar="ADDRESS",
        help="with --all: one material per task on a Ray cluster, on a GPU where there is "
        "one (auto, local, HOST:PORT or ray://HOST:PORT; docs/cluster.md)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bake)

    _add_nerf_parsers(sub)

    p = sub.add_parser(
        "compare",
        help="render layered materials as reference and as their neural bakes; FLIP and PSNR",
    )
    p.add_argument(
        "source",
        nargs="?",
        default=None,
        help="a material file (compared on its preview sphere) or a scene whose layered "
        "materials name bakes (default: the bundled scenes/default)",
    )
    p.add_argument(
        "--nmat",
        help="the bake of a material file (default: baked/<name>.nmat beside the material)",
    )
    p.add_argument(
        "--spp",
        type=_spp,
        default=DEFAULT_COMPARE_SPP,
        help=f"samples per pixel of both renders (default: {DEFAULT_COMPARE_SPP})",
    )
    p.add_argument("--res", type=_resolution, metavar="WxH", help="override the resolution")
    p.add_argument("--seed", type=_seed, help="random seed (default: the scene's)")
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="auto = CUDA when present, else CPU (default: auto)",
    )
    p.add_argument(
        "--out",
        help="output stem: writes <out>.png (reference | neural | FLIP), .json, .md and the "
        "two renders as .exr (default: compare_<name>)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "view",
        help="interactive viewer: progressive path tracing, camera, reference/neural compare",
    )
    _add_scene_options(p)
    p.add_argument(
        "--scale",
        type=_number_in(0.05, 1.0),
        help="render resolution as a fraction of the window (default: 0.5 on the CPU, else 1)",
    )
    p.add_argument(
        "--frames",
        type=_positive,
        help="show this many frames, then exit (with --screenshot: write it first)",
    )
    p.add_argument("--screenshot", help="write PNG + EXR of the picture when the viewer exits")
    p.add_argument(
        "--materials",
        choices=("reference", "neural", "split"),
        help="start with reference or neural materials, or both side by side",
    )
    p.add_argument("--view", choices=VIEWER_VIEWS, default="beauty", help="start in this view")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("info", help="scene statistics: triangles, BVH, lights, device")
    _add_scene_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "bench",
        help="measure render throughput, BVH build time, material evaluation cost and a "
        "scene's NeRF volumes' cost; `nrender bench materials` measures what neural shading "
        "saves",
    )
    _add_scene_options(p)
    p.add_argument(
        "--baked",
        help="bench materials: folder of the library's bakes (default: materials/baked)",
    )
    p.add_argument("--spp", type=_spp, default=16, help="samples per pixel to time (default: 16)")
    p.add_argument(
        "--bvh-triangles",
        type=_non_negative,
        default=1_000_000,
        help="triangles in the BVH build benchmark; 0 skips it (default: 1000000)",
    )
    p.add_argument(
        "--material-queries",
        type=_non_negative,
        help="queries per library material in the material benchmark; 0 skips it "
        "(default: 65536; bench materials: 8192)",
    )
    p.add_argument(
        "--out",
        help="also write the JSON report here (bench materials: <out>.json and <out>.md)",
    )
    p.set_defaults(func=cmd_bench)
    return parser


_default_showwarning = warnings.showwarning


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """nrender's own warnings as one line each, without the source line."""
    if isinstance(category, type) and issubclass(category, NrenderWarning):
        print(f"nrender: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, *args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except NrenderError as exc:
        print(f"nrender: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("nrender: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
