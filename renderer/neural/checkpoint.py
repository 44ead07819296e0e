"""Bake checkpoints: everything needed to continue a bake exactly where it stopped.

A safetensors file beside the output (`X.nmat.ckpt`), written to a temporary file and
renamed, holding the networks of the current phase (`{module}.{parameter}`), the latent
pyramid once it exists, the optimiser's moments (`optimizer.{i}.{exp_avg|exp_avg_sq|
step}`) and the running loss of the phase (`loss_window`). The header records the phase,
the steps done, the losses and seconds so far and a fingerprint of the bake's
configuration; a checkpoint is only resumed into the same configuration.

`Checkpoint` is one file's content; `CheckpointStore` is where a bake keeps it and the
rules around it (resume, start fresh, refuse to clobber an interrupted bake).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import NeuralMaterialError
from ..image_io import atomic_path

FORMAT = "nrender.bake-checkpoint"
FORMAT_VERSION = "1"
MOMENTS = ("exp_avg", "exp_avg_sq", "step")
WINDOW_TENSOR = "loss_window"


@dataclass
class Checkpoint:
    phase: int
    step: int
    fingerprint: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def capture(
        phase: int,
        step: int,
        fingerprint: str,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer | None,
        losses: dict[str, float],
        seconds: dict[str, float],
        window: list[float] | None = None,
    ) -> Checkpoint:
        tensors: dict[str, torch.Tensor] = {}
        if window is not None:  # so a resumed bake reports the same final losses
            tensors[WINDOW_TENSOR] = torch.tensor(window, dtype=torch.float64)
        for prefix, module in modules.items():
            for name, value in module.state_dict().items():
                tensors[f"{prefix}.{name}"] = value.detach().cpu().contiguous()
        if optimizer is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            for i, p in enumerate(params):
                for key, value in optimizer.state.get(p, {}).items():
                    tensors[f"optimizer.{i}.{key}"] = (
                        value.detach().cpu().reshape(value.shape).contiguous()
                    )
        return Checkpoint(phase, step, fingerprint, tensors, dict(losses), dict(seconds))

    def loss_window(self) -> list[float]:
        """The running loss of the phase in progress (empty if none was saved)."""
        window = self.tensors.get(WINDOW_TENSOR)
        return [] if window is None else window.tolist()

    def restore(
        self, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer | None, where: Path
    ) -> None:
        for prefix, module in modules.items():
            state = {
                k[len(prefix) + 1 :]: v
                for k, v in self.tensors.items()
                if k.startswith(prefix + ".")
            }
            if not state:  # not trained yet when this was saved: keeps its initial weights
                continue
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise NeuralMaterialError(f"{where}: checkpoint does not fit ({exc})") from None
        if optimizer is None:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for i, p in enumerate(params):
            state = {}
            for key in MOMENTS:
                name = f"optimizer.{i}.{key}"
                if name in self.tensors:
                    state[key] = self.tensors[name].to(p.device)
            if state:
                optimizer.state[p] = state

    def save(self, path: str | os.PathLike[str]) -> None:
        from safetensors.torch import save_file

        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "phase": str(self.phase),
            "step": str(self.step),
            "fingerprint": self.fingerprint,
            "losses": json.dumps(self.losses),
            "seconds": json.dumps(self.seconds),
        }
        try:
            with atomic_path(path) as tmp:
                save_file(self.tensors, str(tmp), metadata=meta)
        except OSError as exc:
            raise NeuralMaterialError(
                f"{path}: cannot write a checkpoint ({exc.strerror or exc})"
            ) from None

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Checkpoint:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise NeuralMaterialError(f"{path}: unreadable checkpoint ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise NeuralMaterialError(f"{path}: not a checkpoint of this nrender version")
        try:
            return Checkpoint(
                int(meta["phase"]),
                int(meta["step"]),
                meta["fingerprint"],
                tensors,
                json.loads(meta["losses"]),
                json.loads(meta["seconds"]),
            )
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            raise NeuralMaterialError(f"{path}: damaged checkpoint header ({exc})") from None


def checkpoint_path(output: Path) -> Path:
    """Where the checkpoint of a bake into `output` lives: `X.nmat.ckpt` beside it."""
    return output.with_name(output.name + ".ckpt")


class CheckpointStore:
    """The checkpoint of one bake: saved while it trains, found when it is resumed, removed
    when it completes. Only the methods touch the file system."""

    def __init__(self, output: Path, fingerprint: str, source: str = "material") -> None:
        self.path = checkpoint_path(output)
        self.fingerprint = fingerprint  # of the configuration; see baking.bake_fingerprint
        self.source = source  # what the run learns from, for messages

    def check_start(self, resume: bool, fresh: bool) -> None:
        """Refuse to start over an interrupted bake unless told, and to resume nothing."""
        exists = self.path.exists()
        if exists and not (resume or fresh):
            raise NeuralMaterialError(
                f"{self.path}: a checkpoint of an interrupted run exists; "
                "pass --resume to continue it or --fresh to start over"
            )
        if resume and not exists:
            raise NeuralMaterialError(f"--resume: no checkpoint at {self.path}")

    def load(self) -> Checkpoint:
        checkpoint = Checkpoint.load(self.path)
        if checkpoint.fingerprint != self.fingerprint:
            raise NeuralMaterialError(
                f"{self.path}: made for a different {self.source}, preset or seed; "
                "pass --fresh to start over"
            )
        return checkpoint

    def save(
        self,
        phase: int,
        step: int,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer | None,
        losses: dict[str, float],
        seconds: dict[str, float],
        window: list[float],
    ) -> None:
        Checkpoint.capture(
            phase, step, self.fingerprint, modules, optimizer, losses, seconds, window
        ).save(self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
