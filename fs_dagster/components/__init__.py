"""Dagster components of fs-dagster (``dg list components`` lists them; ``dg scaffold defs`` writes a starter).

Registered for ``dg`` through the ``dagster_dg_cli.registry_modules`` entry point in ``pyproject.toml``.
"""

from fs_dagster.components.feature_store_component import FeatureStoreComponent as FeatureStoreComponent

__all__ = ["FeatureStoreComponent"]
