"""fs-dagster: a feature store inside Dagster.

Plain-Python core (``fs_dagster.core``: Hudi offline store, registry, statistics) under a thin Dagster layer
(resources, IO manager, ``@feature_group_asset``, translator, pandera checks).
"""

from fs_dagster.asset_decorator import feature_group_asset as feature_group_asset
from fs_dagster.checks import validate_with_pandera as validate_with_pandera
from fs_dagster.core.errors import (
    CommitNotFoundError as CommitNotFoundError,
    FeatureStoreError as FeatureStoreError,
    IncompatibleTableError as IncompatibleTableError,
    InvalidDataError as InvalidDataError,
    NotFoundError as NotFoundError,
    SchemaChangeError as SchemaChangeError,
    TableLockedError as TableLockedError,
)
from fs_dagster.core.feature_group import FeatureGroup as FeatureGroup, TimeWindow as TimeWindow
from fs_dagster.core.specs import Feature as Feature, FeatureGroupSpec as FeatureGroupSpec
from fs_dagster.core.store import FeatureStore as FeatureStore
from fs_dagster.errors import FeatureStoreFailure as FeatureStoreFailure
from fs_dagster.io_manager import FeatureGroupIOManager as FeatureGroupIOManager
from fs_dagster.materialization import FeatureGroupCommit as FeatureGroupCommit
from fs_dagster.resource import FeatureStoreResource as FeatureStoreResource
from fs_dagster.translator import FeatureGroupTranslator as FeatureGroupTranslator
from fs_dagster.version import __version__ as __version__

try:  # shows fs-dagster among the libraries in the Dagster UI; absent from older dagster-shared
    from dagster_shared.libraries import DagsterLibraryRegistry

    DagsterLibraryRegistry.register("fs-dagster", __version__, is_dagster_package=False)
except ImportError:  # pragma: no cover
    pass
