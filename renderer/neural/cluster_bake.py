"""`nrender bake --all --cluster`: one material per Ray task, on a GPU where there is one.

What travels: each task gets the material file and every file its document names (the
texture images), as bytes. The task
lays them out in a temporary folder at their paths on this machine, works in the mirror
of this process's working folder, and bakes exactly what `nrender bake` would bake here:
relative paths, in the documents and on the command line, resolve as they do here, and
the .nmat and its report name the same files. It sends back the bytes of the files the
bake wrote; this process writes them through a temporary file and a rename.

Ray schedules the tasks (`num_gpus=1` when the cluster has GPUs, which also gives the
task its own CUDA_VISIBLE_DEVICES; else one CPU each) and retries a task whose worker
or node died (a bake is a pure function of its inputs, so a retry is exact). A bake's
checkpoints stay in the task's folder: an interrupted cluster bake starts that material
over next time (the finished ones are skipped as unchanged).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MaterialError, NrenderError
from ..image_io import atomic_path
from ..input_files import check_path_text, is_file, read_json, resolve_path
from .presets import BakePreset

# A material and its textures, sent to a task as bytes: a library's largest is ~1 MiB.
MAX_MATERIAL_BYTES = 1 << 30
# Ray runs a task again after its worker process or node died.
_TASK_RETRIES = 2


@dataclass(frozen=True)
class ClusterBake:
    """One material's bake, as a Ray task receives it."""

    source: str  # the material file, as this process names it
    output: str  # the .nmat file, as this process names it
    files: dict[str, bytes]  # absolute path here -> content: the material and its textures
    cwd: str  # this process's working folder
    preset: BakePreset
    device: str
    reference_device: str
    seed: int


def _strings(document: Any) -> Iterator[str]:
    """Every string value in a JSON document."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def material_files(path: Path) -> list[Path]:
    """The material file and every file its document names (any string that is the path of
    a file, resolved against the material's folder as the loader resolves it), absolute.
    Format-agnostic on purpose: a texture key added later cannot be forgotten here."""
    document = read_json(path, MaterialError, "material file")
    files = {Path(os.path.abspath(path))}
    for text in _strings(document):
        if check_path_text(text) is None:
            candidate = resolve_path(text, path.parent)
            if is_file(candidate):
                files.add(Path(os.path.abspath(candidate)))
    return sorted(files)


def prepare(
    source: Path, output: Path, preset: BakePreset, device: str, reference_device: str, seed: int
) -> ClusterBake:
    """The task of baking `source` into `output` on a cluster worker."""
    files: dict[str, bytes] = {}
    for path in material_files(source):
        files[str(path)] = path.read_bytes()
    size = sum(len(data) for data in files.values())
    if size > MAX_MATERIAL_BYTES:
        raise NrenderError(
            f"{source}: the material and its textures are {size >> 20} MiB, more than the "
            f"{MAX_MATERIAL_BYTES >> 20} MiB a cluster bake sends to a worker"
        )
    return ClusterBake(
        str(source), str(output), files, os.getcwd(), preset, device, reference_device, seed
    )


def bake_task(job: ClusterBake) -> dict[str, Any]:
    """Run one bake in a temporary mirror of the driver's files (on a Ray worker): the
    report and the bytes of every file the bake wrote, by file name."""
    from .baking import bake

    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="nrender-bake-") as root:
        for name, data in job.files.items():
            path = Path(root) / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        cwd = Path(root) / job.cwd.lstrip("/")
        cwd.mkdir(parents=True, exist_ok=True)
        # The paths relative to the mirrored working folder: the driver's absolute paths
        # would name this worker's own file system, where the material is not (and the
        # output must not go).
        source = os.path.relpath(os.path.join(job.cwd, job.source), job.cwd)
        output = os.path.relpath(os.path.join(job.cwd, job.output), job.cwd)
        (cwd / output).parent.mkdir(parents=True, exist_ok=True)
        # a Ray worker process runs one task at a time: its working folder is the task's
        os.chdir(cwd)
        try:
            result = bake(
                source,
                output,
                job.preset,
                device=job.device,
                reference_device=job.reference_device,
                seed=job.seed,
                progress=False,
            )
            written = {Path(p).name: Path(p).read_bytes() for p in result.written}
        finally:
            os.chdir(previous)
    return {"report": result.report, "files": written}


def write_outputs(output: Path, files: dict[str, bytes]) -> list[Path]:
    """Write a task's files beside `output`, each through a temporary file and a rename."""
    written = []
    for name, data in files.items():
        path = output.parent / Path(name).name
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        written.append(path)
    return written


def bake_on_cluster(
    ray: Any,
    jobs: list[ClusterBake],
    *,
    gpus: int,
    done: Callable[[ClusterBake, dict[str, Any] | None, str | None], None],
) -> None:
    """Run `jobs` as Ray tasks (each on a GPU when `gpus`, else one CPU); call
    `done(job, answer, None)` as each finishes, or `done(job, None, error)` when its bake
    failed with an NrenderError (any other failure is raised)."""
    resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    task = ray.remote(bake_task).options(**resources, max_retries=_TASK_RETRIES)
    pending = {task.remote(job): job for job in jobs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    answer = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if not isinstance(exc.cause, NrenderError):
                        raise
                    done(job, None, str(exc.cause))
                    continue
                done(job, answer, None)
    finally:
        for ref in pending:  # Ctrl-C or an error: the others stop too
            ray.cancel(ref, force=True)
