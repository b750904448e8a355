"""Model serving: onnxruntime versions validated at load, routed by stage, fed from the bus."""

from kernel.serving.engine import BookWindow, ServingEngine, ServingStats
from kernel.serving.registry import (
    Components,
    ComponentVersion,
    ModelRegistry,
    RegistryError,
    Route,
    Stage,
    VersionMetrics,
    VersionState,
    canary_bucket,
)
from kernel.serving.session import OnnxVersion, VersionFiles, VersionRejected, open_version
from kernel.serving.spec import InputSpec, ModelSpec, SpecError

__all__ = [
    "BookWindow",
    "ComponentVersion",
    "Components",
    "InputSpec",
    "ModelRegistry",
    "ModelSpec",
    "OnnxVersion",
    "RegistryError",
    "Route",
    "ServingEngine",
    "ServingStats",
    "SpecError",
    "Stage",
    "VersionFiles",
    "VersionMetrics",
    "VersionRejected",
    "VersionState",
    "canary_bucket",
    "open_version",
]
