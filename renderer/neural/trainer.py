"""The bake's training: three phases of Adam steps over the references.

    phase 1   encoder + decoder: latents come from encoded parameters (encoder.py)
    pyramid   the encoder runs on every texel of every level; the encoder is dropped
    phase 2   latents + decoder fine-tuned directly; the latents are then rounded to fp16
    phase 3   the learned sampler fitted to the learned BRDF (sampler_loss.py)

Phases 1 and 2 minimise log_l1 (metrics.py) between the decoder at a batch of lookups and
their targets (references.py: point references for the finest level, footprint averages
for the coarse ones), with Adam and a cosine-decayed learning rate. Every step's random
choices depend only on (seed, phase, step), and a checkpoint holds the networks, the
optimiser and the running loss, so a resumed bake ends bit-identical to an uninterrupted
one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .architecture import Architecture
from .checkpoint import Checkpoint, CheckpointStore
from .decoder import NeuralBrdf
from .directions import step_generator
from .encoder import EncodedPyramid, Encoder
from .interruption import BakeInterrupted, StopRequest
from .metrics import log_l1
from .parameters import ParameterStack
from .presets import BakePreset
from .progress import progress_bar
from .pyramid import LatentPyramid, LevelIndex
from .references import TrainingReferences
from .sampler import NeuralSampler
from .sampler_loss import sampler_kl_loss

PHASES = ("encoder", "latents", "sampler")
LOSS_WINDOW = 50  # steps averaged into a phase's reported loss


def cosine_lr(base: float, step: int, steps: int, final_fraction: float) -> float:
    t = min(step / max(steps, 1), 1.0)
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class TrainingLog:
    """What a bake records as it goes; a checkpoint carries it into the resumed bake."""

    losses: dict[str, float] = field(default_factory=dict)  # per finished phase
    seconds: dict[str, float] = field(default_factory=dict)  # wall clock per stage
    window: list[float] = field(default_factory=list)  # recent losses, phase in progress

    @staticmethod
    def resumed(checkpoint: Checkpoint | None) -> TrainingLog:
        if checkpoint is None:
            return TrainingLog()
        return TrainingLog(
            dict(checkpoint.losses), dict(checkpoint.seconds), checkpoint.loss_window()
        )


@dataclass
class TrainedNetworks:
    """What training leaves for the neural material: fp16-exact latents, the decoder and
    the sampler (on the training device)."""

    pyramid: LatentPyramid
    brdf: NeuralBrdf
    sampler: NeuralSampler


class Trainer:
    """Trains the networks of one bake; `train()` runs the phases from a checkpoint's
    phase and step, or from the start."""

    def __init__(
        self,
        arch: Architecture,
        parameters: ParameterStack,
        references: TrainingReferences,
        preset: BakePreset,
        *,
        seed: int,
        device: torch.device,
        checkpoints: CheckpointStore,
        log: TrainingLog,
        stop: StopRequest,
        progress: bool,
    ) -> None:
        self.arch = arch
        self.parameters = parameters
        self.references = references
        self.preset = preset
        self.seed = seed
        self.device = device
        self.checkpoints = checkpoints
        self.log = log
        self.stop = stop
        self.progress = progress

    def train(self, checkpoint: Checkpoint | None) -> TrainedNetworks:
        d, p, refs = self.device, self.preset, self.references
        phase0 = checkpoint.phase if checkpoint else 0
        step0 = checkpoint.step if checkpoint else 0
        index = LevelIndex(self.arch.levels, d)
        level_count = len(self.arch.levels)
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed alone
            torch.manual_seed(self.seed)
            brdf = NeuralBrdf(self.arch).to(d)
            encoder = Encoder(self.arch).to(d)
            sampler = NeuralSampler(self.arch).to(d)
        brdf.limit_output(refs.brightest())

        if phase0 == 0:
            encoded = EncodedPyramid(self.parameters, index)
            optimizer = torch.optim.Adam([*encoder.parameters(), *brdf.parameters()])
            modules: dict[str, nn.Module] = {"encoder": encoder, "brdf": brdf}
            if checkpoint:
                checkpoint.restore(modules, optimizer, self.checkpoints.path)

            def phase1_loss(g: torch.Generator) -> torch.Tensor:
                b = refs.batch(g, p.batch)
                return log_l1(brdf(encoded.lookup(encoder, b.uv, b.level), b.wi, b.wo), b.target)

            self._phase(0, p.encoder_steps, step0, modules, optimizer, [p.encoder_lr], phase1_loss)
            pyramid = LatentPyramid(self.arch, encoded.bake(encoder))
            phase0, step0, checkpoint = 1, 0, None
            self._save(1, 0, {"pyramid": pyramid, "brdf": brdf}, None)
        else:  # the checkpoint holds the pyramid
            pyramid = LatentPyramid(
                self.arch, torch.zeros(index.texels, self.arch.latent_channels, device=d)
            )

        if phase0 == 1:
            optimizer = torch.optim.Adam(
                [{"params": [pyramid.latents]}, {"params": list(brdf.parameters())}]
            )
            modules = {"pyramid": pyramid, "brdf": brdf}
            if checkpoint:
                checkpoint.restore(modules, optimizer, self.checkpoints.path)

            def phase2_loss(g: torch.Generator) -> torch.Tensor:
                b = refs.batch(g, p.batch)
                return log_l1(brdf(pyramid(b.uv, b.level), b.wi, b.wo), b.target)

            self._phase(
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
            checkpoint.restore(modules, optimizer, self.checkpoints.path)
        for module in (pyramid, brdf):
            module.requires_grad_(False)

        def sampler_loss(g: torch.Generator) -> torch.Tensor:
            return sampler_kl_loss(
                sampler, brdf, pyramid, g, p.sampler_batch, p.sampler_proposals, level_count
            )

        self._phase(2, p.sampler_steps, step0, modules, optimizer, [p.sampler_lr], sampler_loss)
        return TrainedNetworks(pyramid, brdf, sampler)

    def _save(
        self,
        phase: int,
        step: int,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        log = self.log
        self.checkpoints.save(phase, step, modules, optimizer, log.losses, log.seconds, log.window)

    def _phase(
        self,
        phase: int,
        steps: int,
        first_step: int,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        base_lrs: list[float],
        loss_fn: Callable[[torch.Generator], torch.Tensor],
    ) -> None:
        """Steps `first_step` ... `steps` - 1 of one phase, checkpointing every
        `checkpoint_every` steps and when a stop is requested."""
        name, log = PHASES[phase], self.log
        if first_step == 0:
            log.window = []
        started = time.perf_counter() - log.seconds.get(name, 0.0)
        desc = f"phase {phase + 1}/3 {name}"
        with progress_bar(self.progress, steps, desc, "step", first_step) as bar:
            for step in range(first_step, steps):
                if self.stop():
                    log.seconds[name] = time.perf_counter() - started
                    self._save(phase, step, modules, optimizer)
                    raise BakeInterrupted(
                        f"interrupted in phase '{name}' at step {step} of {steps}; "
                        f"checkpoint saved to {self.checkpoints.path}"
                    )
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = cosine_lr(base, step, steps, self.preset.final_lr_fraction)
                loss = loss_fn(step_generator(self.seed, phase, step))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                log.window = [*log.window[1 - LOSS_WINDOW :], float(loss.detach())]
                bar.update(1)
                bar.set_postfix_str(f"loss {np.mean(log.window):.4f}")
                done = step + 1
                if done % self.preset.checkpoint_every == 0 and done < steps:
                    log.seconds[name] = time.perf_counter() - started
                    self._save(phase, done, modules, optimizer)
        log.seconds[name] = time.perf_counter() - started
        if log.window:
            log.losses[name] = float(np.mean(log.window))
