"""The streaming feature set a model version was trained with, as stored in its metadata.

A version's ``metadata.json`` records, under ``feature_spec.feature_set``, the
:class:`~tradekernel_sdk.features.FeatureSet` its baselines and drift reference
were computed from, every parameter spelt out, so eval and serving rebuild
exactly those features from the registered feature classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from tradekernel_sdk.features import Feature, FeatureParamsError, FeatureSet

__all__ = ["explicit_feature_set", "feature_set_from_metadata", "registered_features"]


def registered_features() -> dict[str, type[Feature]]:
    """Return the feature classes the enabled plug-ins register, by name."""
    from kernel.plugins import PluginHost  # noqa: PLC0415 - loads plug-ins, only when needed

    return {
        name: factory
        for name, factory in PluginHost().features().items()
        if isinstance(factory, type) and issubclass(factory, Feature)
    }


def explicit_feature_set(
    feature_set: FeatureSet, registry: Mapping[str, type[Feature]]
) -> FeatureSet:
    """Return ``feature_set`` with every parameter written out, as built from ``registry``.

    A spec that leaves parameters to their defaults is rewritten with the
    values those defaults had, so the stored spec does not depend on them.
    Raises :class:`FeatureParamsError` for an unknown feature or a bad parameter.
    """
    built = feature_set.build(registry)
    return FeatureSet(tuple(feature.spec() for feature in built), feature_set.bar_interval_ns)


def feature_set_from_metadata(metadata: Mapping[str, Any]) -> FeatureSet:
    """Read the feature set of a version's metadata; raise :class:`ValueError` naming the gap."""
    stored = metadata.get("feature_spec", {}).get("feature_set")
    if stored is None:
        raise ValueError(
            "metadata.json has no feature_spec.feature_set: the version was stored before "
            "features were recorded with it; train it again"
        )
    try:
        return msgspec.convert(stored, FeatureSet)
    except msgspec.ValidationError as error:
        raise FeatureParamsError(f"metadata.json: feature_spec.feature_set: {error}") from None
