"""The device names a user can ask for, importable without slangpy (the CLI's --help
must not wait for slangpy and torch to load)."""

DEVICE_CHOICES = ("auto", "cpu", "cuda", "vulkan")
