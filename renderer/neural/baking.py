"""Baking: a layered material -> a neural material (.nmat). `Bake.run` ties the stages
together; each stage lives in its own module:

    source       the material graph, its Slang reference (renderer.materials.MaterialQueries),
                 its parameter stack (parameters.py) and the architecture they give
    references   point references for the finest level, footprint averages for the
                 coarse levels (references.py)
    training     phase 1 encoder + decoder, the pyramid, phase 2 latents + decoder, phase 3
                 the sampler (trainer.py), checkpointed beside the output (checkpoint.py)
    material     the trained networks as a NeuralMaterial, with its energy table (energy.py)
    report       held-out error, level of detail, sampler quality and lobe images
                 (report.py), written as X.report.json and X.lobes.png
    output       X.nmat written by rename; the checkpoint is then removed

A bake is a pure function of material, preset and seed: a resumed bake ends bit-identical
to an uninterrupted one (trainer.py says how).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import NrenderError
from ..materials import MaterialQueries, load_material
from ..materials.graph import MaterialGraph
from .architecture import DECODER_SIZES, Architecture
from .checkpoint import CheckpointStore
from .energy import albedo_table
from .interruption import BakeInterrupted, StopRequest, never_stop
from .nmat import NeuralMaterial
from .parameters import ParameterStack, material_hash, parameter_stack
from .presets import BakePreset
from .progress import progress_bar
from .references import TrainingReferences, evaluate_references, reference_queries
from .report import bake_report, measure, write_report
from .trainer import TrainedNetworks, Trainer, TrainingLog

__all__ = ["Bake", "BakeInterrupted", "BakeResult", "bake", "torch_device"]

REPORT_SEED = 0x5EED0000  # plus the bake's seed: a stream training never draws from


def torch_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NrenderError("--device cuda: this torch has no CUDA device")
    if name not in ("cpu", "cuda"):
        raise NrenderError(f"unknown training device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


@dataclass
class BakeResult:
    material: NeuralMaterial
    report: dict[str, Any]  # what X.report.json holds; report["metrics"] are the numbers
    written: list[Path]


@dataclass
class BakeSource:
    """The material being baked and what it gives the bake."""

    path: Path
    graph: MaterialGraph
    source_hash: str
    queries: MaterialQueries  # the reference, on the reference device
    parameters: ParameterStack  # per-texel layer parameters of every level (the encoder's input)
    arch: Architecture


def open_source(path: Path, preset: BakePreset, reference_device: Any) -> BakeSource:
    """Load the material, refuse what cannot be baked, and size the architecture."""
    graph = load_material(path)
    if graph.transmissive:
        raise NrenderError(
            f"{path}: transmissive materials cannot be baked (a neural material is a BRDF)"
        )
    queries = MaterialQueries(graph, reference_device)
    parameters = parameter_stack(graph, preset.max_resolution, queries.flakes)
    width, height = parameters.size
    arch = Architecture(
        parameter_channels=parameters.channels,
        width=width,
        height=height,
        decoder_hidden=DECODER_SIZES[preset.decoder],
    )
    return BakeSource(path, graph, material_hash(graph), queries, parameters, arch)


def bake_fingerprint(source: BakeSource, preset: BakePreset, seed: int) -> str:
    """What a checkpoint must have been made for to be resumed: material, preset, seed and
    architecture."""
    key = [source.source_hash, preset.to_dict(), seed, source.arch.to_json()]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class Bake:
    """One bake of `source` into `output`. The constructor checks and keeps the options;
    `run()` reads the material, trains, and writes the files."""

    def __init__(
        self,
        source: str | Path,
        output: str | Path,
        preset: BakePreset,
        *,
        device: str = "auto",
        reference_device: Any = "auto",
        seed: int = 0,
        resume: bool = False,
        fresh: bool = False,
        progress: bool = True,
        stop: StopRequest | None = None,
    ) -> None:
        if not 0 <= seed < 2**31:
            raise NrenderError(f"seed must be in [0, 2^31), got {seed}")
        self.source = Path(source)
        self.output = Path(output)
        self.preset = preset
        self.device = torch_device(device)
        self.reference_device = reference_device
        self.seed = seed
        self.resume = resume
        self.fresh = fresh
        self.progress = progress
        self.stop = stop or never_stop

    def run(self) -> BakeResult:
        # The backward pass of a latent lookup accumulates into shared texels; torch's
        # default CPU kernel for that adds in thread order, which differs run to run.
        # Deterministic kernels make a bake (and a resumed one) bit-reproducible on the
        # CPU. CUDA's would need a cuBLAS workspace setting, so there bakes are only
        # reproducible up to reduction order.
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(self.device.type == "cpu")
        try:
            return self._run()
        finally:
            torch.use_deterministic_algorithms(previous)

    def _run(self) -> BakeResult:
        started = time.perf_counter()
        try:  # fail before minutes of training, not after
            self.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NrenderError(f"{self.output}: cannot create its folder ({exc})") from None
        source = open_source(self.source, self.preset, self.reference_device)
        checkpoints = CheckpointStore(self.output, bake_fingerprint(source, self.preset, self.seed))
        checkpoints.check_start(self.resume, self.fresh)
        setup = time.perf_counter() - started
        checkpoint = checkpoints.load() if self.resume else None
        log = TrainingLog.resumed(checkpoint)
        log.seconds["setup"] = setup
        references = self._references(source, log)
        trainer = Trainer(
            source.arch,
            source.parameters,
            references,
            self.preset,
            seed=self.seed,
            device=self.device,
            checkpoints=checkpoints,
            log=log,
            stop=self.stop,
            progress=self.progress,
        )
        material = self._material(source, trainer.train(checkpoint), log)
        report, lobes = self._report(source, material, log, started)
        files = write_report(self.output, report, lobes)
        material.metadata["report"] = json.dumps(report["metrics"], sort_keys=True)
        material.save(self.output)
        checkpoints.discard()
        return BakeResult(material, report, [self.output, *files])

    def _references(self, source: BakeSource, log: TrainingLog) -> TrainingReferences:
        started = time.perf_counter()
        total = reference_queries(self.preset, len(source.arch.levels))
        with progress_bar(self.progress, total, "reference f*cos", "query") as bar:
            references = evaluate_references(
                source.queries,
                self.preset,
                source.arch.levels,
                self.seed,
                self.device,
                stop=self.stop,
                advance=bar.update,
                source=str(self.source),
            )
        log.seconds["references"] = time.perf_counter() - started
        return references

    def _material(
        self, source: BakeSource, networks: TrainedNetworks, log: TrainingLog
    ) -> NeuralMaterial:
        p = self.preset
        material = NeuralMaterial(
            source.arch,
            [lvl.half().cpu() for lvl in networks.pyramid.level_arrays()],
            networks.brdf.cpu(),
            networks.sampler.cpu(),
            {
                "source": str(self.source),
                "source_hash": source.source_hash,
                "preset": json.dumps(p.to_dict(), sort_keys=True),
                "seed": str(self.seed),
                "steps": json.dumps(
                    {
                        "encoder": p.encoder_steps,
                        "latents": p.latent_steps,
                        "sampler": p.sampler_steps,
                    }
                ),
                "losses": json.dumps(log.losses, sort_keys=True),
            },
        )
        started = time.perf_counter()
        material.energy = torch.from_numpy(albedo_table(material, p.energy_samples))
        log.seconds["energy"] = time.perf_counter() - started
        return material

    def _report(
        self, source: BakeSource, material: NeuralMaterial, log: TrainingLog, started: float
    ) -> tuple[dict[str, Any], np.ndarray]:
        """The report's dict and its lobe image [H, W, 3] uint8."""
        report_started = time.perf_counter()
        with progress_bar(self.progress, 4, "report", "part") as bar:
            metrics, lobes = measure(
                material,
                source.queries,
                self.preset,
                REPORT_SEED + self.seed,
                lambda: bar.update(1),
            )
        log.seconds["report"] = time.perf_counter() - report_started
        # wall clock of this process (a resumed bake counts from its restart)
        log.seconds["total"] = time.perf_counter() - started
        report = bake_report(
            material,
            metrics,
            source=self.source,
            source_hash=source.source_hash,
            output=self.output,
            preset=self.preset,
            seed=self.seed,
            device=str(self.device),
            losses=log.losses,
            seconds=log.seconds,
        )
        return report, lobes


def bake(
    source: str | Path,
    output: str | Path,
    preset: BakePreset,
    **options: Any,
) -> BakeResult:
    """Bake `source` (a material JSON) into `output` (.nmat); see `Bake` for options."""
    return Bake(source, output, preset, **options).run()
