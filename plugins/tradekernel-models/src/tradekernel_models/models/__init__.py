"""Model architectures (torch; install the ``train`` extra)."""

from tradekernel_models.models.deeplob import DeepLOB, DeepLOBConfig, ExportWrapper

__all__ = ["DeepLOB", "DeepLOBConfig", "ExportWrapper"]
