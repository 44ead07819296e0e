"""Baking: a layered material -> a neural material (.nmat).

    references   (uv, wi, wo) pairs (directions.py) and their f*cos, each the mean of
                 several stochastic evaluations of the layered material through
                 renderer.materials.MaterialQueries: the Slang reference, not a copy of it
    phase 1      encoder + decoder: latents come from encoded parameters (encoder.py)
    pyramid      the encoder runs on every texel of every level; the encoder is dropped
    phase 2      latents + decoder fine-tuned directly
    sampler      the learned sampler fitted to the learned BRDF (no gradient into latents)
    report       held-out error, lobe images, sampler quality (report.py)

Phases 1 and 2 minimise the L1 distance of log(f*cos + 0.01) (metrics.py) with Adam and a
cosine-decayed learning rate. Every step's random choices depend only on (seed, phase, step), and a
checkpoint holds the networks and the optimiser, so a resumed bake ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import NrenderError
from ..image_io import LUMINANCE
from ..materials import MaterialQueries, load_material
from .architecture import DECODER_SIZES, Architecture
from .checkpoint import Checkpoint
from .decoder import NeuralBrdf
from .directions import (
    cosine_hemisphere,
    sample_levels,
    step_generator,
    training_pairs,
    uniform_hemisphere,
)
from .encoder import EncodedPyramid, Encoder
from .energy import albedo_table, energy_summary
from .metrics import log_l1
from .nmat import NeuralMaterial
from .parameters import material_hash, parameter_stack
from .presets import BakePreset
from .pyramid import LatentPyramid, LevelIndex
from .report import lobe_columns, measure, report_paths, write_report
from .sampler import NeuralSampler

PHASES = ("encoder", "latents", "sampler")
REFERENCE_CHUNK = 1 << 16
LOSS_WINDOW = 50
WINDOW_TENSOR = "loss_window"


class BakeInterrupted(NrenderError):  # noqa: N818 - a request honoured, not a failure
    """The bake stopped on request after saving a checkpoint."""


def torch_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NrenderError("--device cuda: this torch has no CUDA device")
    if name not in ("cpu", "cuda"):
        raise NrenderError(f"unknown training device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


def cosine_lr(base: float, step: int, steps: int, final_fraction: float) -> float:
    t = min(step / max(steps, 1), 1.0)
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class BakeResult:
    material: NeuralMaterial
    report: dict[str, Any]  # what X.report.json holds; report["metrics"] are the numbers
    written: list[Path]


class Bake:
    """One bake of `source` into `output`; `run()` does the work."""

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
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.started = time.perf_counter()
        self.source = Path(source)
        self.output = Path(output)
        self.checkpoint_path = self.output.with_name(self.output.name + ".ckpt")
        self.preset = preset
        self.device = torch_device(device)
        if not 0 <= seed < 2**31:
            raise NrenderError(f"seed must be in [0, 2^31), got {seed}")
        self.seed = seed
        self.resume = resume
        self.progress = progress
        self.stop = stop or (lambda: False)
        try:  # fail before minutes of training, not after
            self.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NrenderError(f"{self.output}: cannot create its folder ({exc})") from None
        self.graph = load_material(self.source)
        if self.graph.transmissive:
            raise NrenderError(
                f"{self.source}: transmissive materials cannot be baked (a neural material "
                "is a BRDF)"
            )
        self.source_hash = material_hash(self.graph)
        self.queries = MaterialQueries(self.graph, reference_device)
        self.parameters = parameter_stack(self.graph, preset.max_resolution, self.queries.flakes)
        width, height = self.parameters.size
        self.arch = Architecture(
            parameter_channels=self.parameters.channels,
            width=width,
            height=height,
            decoder_hidden=DECODER_SIZES[preset.decoder],
        )
        self.fingerprint = hashlib.sha256(
            json.dumps(
                [self.source_hash, preset.to_dict(), seed, self.arch.to_json()], sort_keys=True
            ).encode()
        ).hexdigest()
        if self.checkpoint_path.exists() and not (resume or fresh):
            raise NrenderError(
                f"{self.checkpoint_path}: a checkpoint of an interrupted bake exists; "
                "pass --resume to continue it or --fresh to start over"
            )
        if resume and not self.checkpoint_path.exists():
            raise NrenderError(f"--resume: no checkpoint at {self.checkpoint_path}")
        self.losses: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.window: list[float] = []  # recent losses of the phase in progress
        self.setup_seconds = time.perf_counter() - self.started

    # --- helpers -------------------------------------------------------------------
    def progress_bar(self, total: int, desc: str, unit: str, initial: int = 0) -> tqdm:
        """A progress bar on stderr (nothing when progress is off)."""
        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            unit_scale=unit == "query",
            disable=not self.progress,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def _save(
        self, phase: int, step: int, modules: dict[str, torch.nn.Module], optimizer: Any
    ) -> None:
        checkpoint = Checkpoint.capture(
            phase, step, self.fingerprint, modules, optimizer, self.losses, self.seconds
        )
        # the running loss too, so a resumed bake reports the same final losses
        checkpoint.tensors[WINDOW_TENSOR] = torch.tensor(self.window, dtype=torch.float64)
        checkpoint.save(self.checkpoint_path)

    def references(self) -> dict[str, torch.Tensor]:
        """Training pairs and their reference f*cos (deterministic for a seed)."""
        p = self.preset
        uv, wi, wo = training_pairs(p.train_queries, self.seed)
        queries = self.queries
        target = np.zeros((p.train_queries, 3), np.float32)
        start_time = time.perf_counter()
        with self.progress_bar(p.train_queries, "reference f*cos", "query") as bar:
            for start in range(0, p.train_queries, REFERENCE_CHUNK):
                if self.stop():
                    raise BakeInterrupted("interrupted while evaluating references")
                stop = min(start + REFERENCE_CHUNK, p.train_queries)
                # seed by chunk start: a query's estimate does not depend on the chunking
                target[start:stop] = queries.evaluate(
                    uv[start:stop],
                    wi[start:stop],
                    wo[start:stop],
                    p.target_samples,
                    seed=(self.seed * 7_919 + start) & 0x7FFFFFFF,
                )
                bar.update(stop - start)
        self.seconds["references"] = time.perf_counter() - start_time
        if not np.isfinite(target).all():
            raise NrenderError(f"{self.source}: the reference produced non-finite values")
        d = self.device
        return {
            "uv": torch.from_numpy(uv).to(d),
            "wi": torch.from_numpy(wi).to(d),
            "wo": torch.from_numpy(wo).to(d),
            "target": torch.from_numpy(target).to(d),
        }

    def _train(
        self,
        phase: int,
        steps: int,
        first_step: int,
        modules: dict[str, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        base_lrs: list[float],
        loss_fn: Callable[[torch.Generator], torch.Tensor],
    ) -> None:
        name = PHASES[phase]
        if first_step == 0:
            self.window = []
        started = time.perf_counter() - self.seconds.get(name, 0.0)
        with self.progress_bar(steps, f"phase {phase + 1}/3 {name}", "step", first_step) as bar:
            for step in range(first_step, steps):
                if self.stop():
                    self.seconds[name] = time.perf_counter() - started
                    self._save(phase, step, modules, optimizer)
                    raise BakeInterrupted(
                        f"interrupted in phase '{name}' at step {step} of {steps}; "
                        f"checkpoint saved to {self.checkpoint_path}"
                    )
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = cosine_lr(base, step, steps, self.preset.final_lr_fraction)
                loss = loss_fn(step_generator(self.seed, phase, step))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self.window = [*self.window[1 - LOSS_WINDOW :], float(loss.detach())]
                bar.update(1)
                bar.set_postfix_str(f"loss {np.mean(self.window):.4f}")
                done = step + 1
                if done % self.preset.checkpoint_every == 0 and done < steps:
                    self.seconds[name] = time.perf_counter() - started
                    self._save(phase, done, modules, optimizer)
        self.seconds[name] = time.perf_counter() - started
        if self.window:
            self.losses[name] = float(np.mean(self.window))

    # --- the bake --------------------------------------------------------------------
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

    def report(self, material: NeuralMaterial) -> tuple[dict[str, Any], np.ndarray]:
        """The bake's report (report.py measures) and its lobe image."""
        started = time.perf_counter()
        with self.progress_bar(4, "report", "part") as bar:
            metrics, lobes = measure(
                material,
                self.queries,
                self.preset,
                0x5EED0000 + self.seed,  # never used in training
                lambda: bar.update(1),
            )
        self.seconds["report"] = time.perf_counter() - started
        # wall clock of this process (a resumed bake counts from its restart)
        self.seconds["total"] = time.perf_counter() - self.started
        report = {
            "material": str(self.source),
            "source_hash": self.source_hash,
            "output": str(self.output),
            "preset": self.preset.name,
            "seed": self.seed,
            "device": str(self.device),
            "pyramid": {
                "finest": [self.arch.height, self.arch.width],
                "levels": len(self.arch.levels),
                "parameter_channels": self.arch.parameter_channels,
            },
            "losses": self.losses,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "metrics": metrics,
            "energy": energy_summary(material.energy.numpy())
            if material.energy is not None
            else None,
            "lobes_png": {"path": report_paths(self.output)[1].name, **lobe_columns()},
        }
        return report, lobes

    def _run(self) -> BakeResult:
        d = self.device
        p = self.preset
        checkpoint = Checkpoint.load(self.checkpoint_path) if self.resume else None
        if checkpoint is not None:
            if checkpoint.fingerprint != self.fingerprint:
                raise NrenderError(
                    f"{self.checkpoint_path}: made for a different material, preset or seed; "
                    "pass --fresh to start over"
                )
            self.losses, self.seconds = dict(checkpoint.losses), dict(checkpoint.seconds)
            if WINDOW_TENSOR in checkpoint.tensors:
                self.window = checkpoint.tensors[WINDOW_TENSOR].tolist()
        self.seconds["setup"] = self.setup_seconds
        phase0 = checkpoint.phase if checkpoint else 0
        step0 = checkpoint.step if checkpoint else 0
        refs = self.references()
        index = LevelIndex(self.arch.levels, d)
        level_count = len(self.arch.levels)
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed alone
            torch.manual_seed(self.seed)
            brdf = NeuralBrdf(self.arch).to(d)
            encoder = Encoder(self.arch).to(d)
            sampler = NeuralSampler(self.arch).to(d)
        brdf.limit_output(float(refs["target"].max()))

        def batch(g: torch.Generator) -> tuple[torch.Tensor, ...]:
            pick = torch.randint(len(refs["uv"]), (p.batch,), generator=g).to(d)
            level = sample_levels(g, p.batch, level_count).to(d)
            return refs["uv"][pick], level, refs["wi"][pick], refs["wo"][pick], refs["target"][pick]

        if phase0 == 0:
            encoded = EncodedPyramid(self.parameters, index)
            optimizer = torch.optim.Adam([*encoder.parameters(), *brdf.parameters()])
            modules = {"encoder": encoder, "brdf": brdf}
            if checkpoint:
                checkpoint.restore(modules, optimizer, self.checkpoint_path)

            def phase1_loss(g: torch.Generator) -> torch.Tensor:
                uv, level, wi, wo, target = batch(g)
                return log_l1(brdf(encoded.lookup(encoder, uv, level), wi, wo), target)

            self._train(0, p.encoder_steps, step0, modules, optimizer, [p.encoder_lr], phase1_loss)
            pyramid = LatentPyramid(self.arch, encoded.bake(encoder))
            phase0, step0, checkpoint = 1, 0, None
            self._save(1, 0, {"pyramid": pyramid, "brdf": brdf}, None)
        else:
            pyramid = LatentPyramid(
                self.arch, torch.zeros(index.texels, self.arch.latent_channels, device=d)
            )

        if phase0 == 1:
            optimizer = torch.optim.Adam(
                [{"params": [pyramid.latents]}, {"params": list(brdf.parameters())}]
            )
            modules = {"pyramid": pyramid, "brdf": brdf}
            if checkpoint:
                checkpoint.restore(modules, optimizer, self.checkpoint_path)

            def phase2_loss(g: torch.Generator) -> torch.Tensor:
                uv, level, wi, wo, target = batch(g)
                return log_l1(brdf(pyramid(uv, level), wi, wo), target)

            self._train(
                1,
                p.latent_steps,
                step0,
                modules,
                optimizer,
                [p.latent_lr, p.decoder_lr],
                phase2_loss,
            )
            # what the file will hold: latents rounded to fp16
            with torch.no_grad():
                pyramid.latents.copy_(pyramid.latents.half().float())
            phase0, step0, checkpoint = 2, 0, None
            self._save(2, 0, {"pyramid": pyramid, "brdf": brdf}, None)

        modules = {"pyramid": pyramid, "brdf": brdf, "sampler": sampler}
        optimizer = torch.optim.Adam(sampler.parameters())
        if checkpoint:
            checkpoint.restore(modules, optimizer, self.checkpoint_path)
        for module in (pyramid, brdf):
            module.requires_grad_(False)

        def sampler_loss(g: torch.Generator) -> torch.Tensor:
            return sampler_kl_loss(
                sampler, brdf, pyramid, g, p.sampler_batch, p.sampler_proposals, level_count
            )

        self._train(2, p.sampler_steps, step0, modules, optimizer, [p.sampler_lr], sampler_loss)

        material = NeuralMaterial(
            self.arch,
            [lvl.half().cpu() for lvl in pyramid.level_arrays()],
            brdf.cpu(),
            sampler.cpu(),
            {
                "source": str(self.source),
                "source_hash": self.source_hash,
                "preset": json.dumps(p.to_dict(), sort_keys=True),
                "seed": str(self.seed),
                "steps": json.dumps(
                    {
                        "encoder": p.encoder_steps,
                        "latents": p.latent_steps,
                        "sampler": p.sampler_steps,
                    }
                ),
                "losses": json.dumps(self.losses, sort_keys=True),
            },
        )
        started = time.perf_counter()
        material.energy = torch.from_numpy(albedo_table(material, p.energy_samples))
        self.seconds["energy"] = time.perf_counter() - started
        report, lobes = self.report(material)
        files = write_report(self.output, report, lobes)
        material.metadata["report"] = json.dumps(report["metrics"], sort_keys=True)
        material.save(self.output)
        written = [self.output, *files]
        self.checkpoint_path.unlink(missing_ok=True)
        return BakeResult(material, report, written)


def sampler_kl_loss(
    sampler: NeuralSampler,
    brdf: NeuralBrdf,
    pyramid: LatentPyramid,
    g: torch.Generator,
    count: int,
    proposals: int,
    level_count: int,
) -> torch.Tensor:
    """Cross-entropy of the sampler against the learned BRDF's f*cos (luminance), i.e. the
    KL divergence up to a constant, estimated per known direction with `proposals`
    candidates drawn half from a cosine lobe and half from the sampler itself (defensive
    importance sampling); only the sampler receives gradients."""
    d = pyramid.latents.device
    uv = torch.rand(count, 2, generator=g).to(d)
    level = sample_levels(g, count, level_count).to(d)
    wo = uniform_hemisphere(torch.rand(count, 2, generator=g)).to(d)
    u = torch.rand(count * proposals, 5, generator=g).to(d)
    with torch.no_grad():
        latent = pyramid(uv, level).repeat_interleave(proposals, 0)
        wo_rep = wo.repeat_interleave(proposals, 0)
        lobes = sampler.lobes(latent, wo_rep)
        own, own_valid = NeuralSampler.sample(lobes, wo_rep, u[:, :3])
        from_cosine = (torch.arange(len(u), device=d) % 2) == 0
        wi = torch.where(from_cosine[:, None], cosine_hemisphere(u[:, 3:5]), own)
        valid = torch.where(from_cosine, torch.ones_like(own_valid), own_valid) & (wi[:, 2] > 0)
        proposal = 0.5 * torch.clamp(wi[:, 2], min=0) / math.pi + 0.5 * NeuralSampler.pdf(
            lobes, wo_rep, wi
        )
        f = brdf(latent, wi, wo_rep) @ torch.tensor(LUMINANCE, dtype=torch.float32, device=d)
        weight = torch.where(valid & (proposal > 0), f / proposal.clamp(min=1e-12), 0.0)
        weight = weight.reshape(count, proposals)
        weight = weight / weight.sum(1, keepdim=True).clamp(min=1e-12)
    p = NeuralSampler.pdf(sampler.lobes(latent, wo_rep), wo_rep, wi)
    return -(weight.reshape(-1) * torch.log(p + 1e-6)).sum() / count


def bake(
    source: str | Path,
    output: str | Path,
    preset: BakePreset,
    **options: Any,
) -> BakeResult:
    """Bake `source` (a material JSON) into `output` (.nmat); see `Bake` for options."""
    return Bake(source, output, preset, **options).run()
