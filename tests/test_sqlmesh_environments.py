"""SQLMesh environments: a changed pipeline runs in a development environment whose feature groups go to their own
feature-store project; a training dataset built from them is compared with prod's before the change is promoted
by a plan of prod, which reuses the tables the development environment built."""

from __future__ import annotations

import pytest
from dagster import AssetKey, instance_for_test, materialize

from fs_dagster import FeatureGroupIOManager, FeatureStoreResource
from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.sqlmesh.environments import compare_statistics
from fs_dagster.sqlmesh import SQLMeshResource, build_sqlmesh_assets, load_project
from sqlmesh_testing import DAILY_SALES, events, write_events, write_project

SALES = AssetKey(["daily_sales"])
RANGE = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-04"}


def _resources(project, store: FeatureStoreResource, **options) -> dict:
    """A deployment's resources: its SQLMesh environment and its own feature-store project."""
    return {"sqlmesh": SQLMeshResource(project_dir=str(project), **options), "feature_store": store,
            "fs_io_manager": FeatureGroupIOManager(feature_store=store)}


def _sales_assets(project):
    return next(a for a in build_sqlmesh_assets(str(project)) if hasattr(a, "keys") and SALES in a.keys)


def _training_statistics(store: FeatureStoreResource) -> tuple[dict, object]:
    """The same view in the store's project (sales features, label ``sales``) and a training dataset of it."""
    fs = store.get_store()
    fg = fs.get_feature_group("daily_sales")
    view = fs.get_or_create_feature_view("store_sales", 1, fg.select(["revenue", "sales"]), labels=["sales"])
    dataset = view.create_training_data()
    return dataset.statistics["all"], dataset


def test_dev_environment_feeds_its_own_training_data_compared_with_prod_before_promotion(tmp_path) -> None:
    project = write_project(tmp_path)
    write_events(tmp_path, events())
    prod_store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop")
    dev_store = FeatureStoreResource(root=str(tmp_path / "store"), project="shop_dev")
    with instance_for_test() as instance:
        assert materialize([_sales_assets(project)], selection=[SALES], resources=_resources(project, prod_store),
                           instance=instance, tags=RANGE).success
        prod_stats, prod_dataset = _training_statistics(prod_store)

        # the change under review: revenue with 10% tax, run in "dev" with its own feature-store project
        (project / "models" / "daily_sales.sql").write_text(
            DAILY_SALES.replace("sum(amount)::DOUBLE AS revenue", "(sum(amount) * 1.1)::DOUBLE AS revenue"))
        dev = _resources(project, dev_store, environment="dev")
        result = materialize([_sales_assets(project)], selection=[SALES], resources=dev, instance=instance, tags=RANGE)
        assert result.success
        md = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
        assert {m["fs_dagster/sqlmesh_environment"].value for m in md.values()} == {"dev"}
        dev_stats, dev_dataset = _training_statistics(dev_store)
        assert dev_dataset.row_counts == prod_dataset.row_counts == {"all": 12}

        # prod is untouched: its resource refuses to deploy the files, its feature group keeps the old values
        prod_values = prod_store.get_store().get_feature_group("daily_sales").read().set_index(["store_id", "day"])
        with pytest.raises(Exception, match=r"does not run the project's files \(shop.daily_sales, shop.store_totals changed\)"):
            materialize([_sales_assets(project)], selection=[SALES], instance=instance, tags=RANGE,
                        resources=_resources(project, prod_store, apply_changes=False))
        with load_project(str(project)).session() as session:
            prod_table = session.fetch("shop.daily_sales", environment="prod").to_pandas()
        assert sorted(prod_table["revenue"]) == pytest.approx(sorted(prod_values["revenue"]))

        # statistics before promotion: the changed feature moved, the others did not
        comparison = compare_statistics(dev_stats, prod_stats)
        assert comparison.changed == ["revenue"]
        revenue = next(f for f in comparison.features if f.feature == "revenue")
        assert revenue.candidate_mean == pytest.approx(revenue.baseline_mean * 1.1)
        assert (comparison.baseline_rows, comparison.candidate_rows) == (12, 12)

        # promotion: a plan of prod; prod now reads the table the dev environment built (not recomputed)
        with load_project(str(project)).session() as session:
            dev_table = session.table_name("shop.daily_sales", "dev")
            assert session.plan_and_apply("prod") == ["shop.daily_sales", "shop.store_totals"]
            assert session.table_name("shop.daily_sales", "prod") == dev_table
        # prod's feature groups take the promoted rows without computing them again
        result = materialize([_sales_assets(project)], selection=[SALES], instance=instance, tags=RANGE,
                             resources=_resources(project, prod_store, restate=False, apply_changes=False))
        statuses = {e.materialization.metadata["fs_dagster/sqlmesh_status"].value
                    for e in result.get_asset_materialization_events()}
        assert statuses == {"up_to_date"}
        promoted = prod_store.get_store().get_feature_group("daily_sales").read().set_index(["store_id", "day"])
        dev_values = dev_store.get_store().get_feature_group("daily_sales").read().set_index(["store_id", "day"])
        assert promoted["revenue"].sort_index().tolist() == pytest.approx(dev_values["revenue"].sort_index().tolist())
        assert promoted["revenue"].sort_index().tolist() == pytest.approx(
            (prod_values["revenue"].sort_index() * 1.1).tolist())


def test_compare_statistics_flags_types_nulls_and_new_features() -> None:
    def stats(**features):
        return {"row_count": 10, "features": features}

    base = stats(a={"type": "double", "mean": 1.0, "std": 2.0, "null_fraction": 0.0},
                 b={"type": "string", "null_fraction": 0.0}, c={"type": "int64", "mean": 5.0, "std": 0.0})
    same = compare_statistics(base, base)
    assert same.changed == [] and [f.mean_shift for f in same.features] == [0.0, None, 0.0]
    moved = compare_statistics(stats(a={"type": "double", "mean": 1.1, "std": 2.0, "null_fraction": 0.05},
                                     b={"type": "int64", "null_fraction": 0.0},
                                     d={"type": "double", "mean": 0.0, "std": 1.0}), base)
    assert moved.changed == ["a", "b", "c", "d"]  # nulls, type, gone, new
    assert next(f for f in moved.features if f.feature == "a").mean_shift == pytest.approx(0.05)
    with pytest.raises(InvalidDataError, match="candidate is not a statistics document"):
        compare_statistics({"rows": 1}, base)
