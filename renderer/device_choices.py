"""The device names a user can ask for, importable without slangpy (the CLI's --help
must not wait for slangpy and torch to load)."""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "vulkan")

# How neural networks (neural materials, NeRF volumes) are evaluated: "auto" lets whole CUDA
# warps use the fp16 tensor-core path; "per-lane" keeps every lane on the fp32 per-lane
# networks, the portable twin (for comparisons).
NEURAL_MLP_CHOICES = ("auto", "per-lane")


def neural_mlp_defines(neural_mlp: str) -> dict[str, str] | None:
    """The shader defines of a `neural_mlp` choice."""
    return {"NRENDER_NEURAL_PER_LANE_ONLY": "1"} if neural_mlp == "per-lane" else None
