"""Quality figures of a training dataset: rows per split, label balance, null share per feature.

What a model trainer looks at before trusting a dataset, computed from the dataset's statistics (null shares) and
its label columns (value shares), and judged against :class:`QualityRules`: an empty split, a feature with no value
at all or a label with a single class make the data unusable (``error``); a feature mostly null or a rare label
class is worth a look (``warning``).

Example:
    report = assess(td, QualityRules(max_null_share=0.3))
    report.ok, report.problems, report.label_balance["is_delayed"]["train"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from fs_dagster.core.training.training_dataset import TrainingDataset

MAX_CLASSES = 20  # a label with more distinct values is treated as continuous (no class shares)


@dataclass(frozen=True)
class QualityRules:
    """Thresholds of :func:`assess`.

    Args:
        min_rows: every split needs at least this many rows (fewer: error).
        max_null_share: a feature null in more than this share of a split's rows gives a warning (all null: error).
        min_label_share: a label class rarer than this share of the train split gives a warning (one class: error).
    """

    min_rows: int = 1
    max_null_share: float = 0.5
    min_label_share: float = 0.01


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    message: str


@dataclass
class QualityReport:
    rows: dict[str, int]
    null_share: dict[str, dict[str, float]]  # split -> feature -> share of rows that are null
    label_balance: dict[str, dict[str, dict[str, float]]]  # label -> split -> class -> share (classes: text)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def label_shares(column: pa.ChunkedArray | pa.Array) -> dict[str, float] | None:
    """Share of each value of a label column (nulls as ``"null"``), most frequent first; None for a continuous
    label (more than :data:`MAX_CLASSES` values, or a float column)."""
    if pa.types.is_floating(column.type) or len(column) == 0:
        return None if len(column) else {}
    counts = pc.value_counts(column)
    if len(counts) > MAX_CLASSES:
        return None
    pairs = [(("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)), n)
             for v, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())]
    total = len(column)
    return {value: n / total for value, n in sorted(pairs, key=lambda p: (-p[1], p[0]))}


def assess(td: TrainingDataset, rules: QualityRules | None = None) -> QualityReport:
    """Rows, null shares (from the stored statistics, else the data) and label balance of every split of ``td``."""
    rules = rules or QualityRules()
    rows = dict(td.row_counts)
    features = list(td.spec["features"])
    labels = list(td.spec["labels"])
    null_share: dict[str, dict[str, float]] = {}
    balance: dict[str, dict[str, dict[str, float]]] = {label: {} for label in labels}
    problems: list[Problem] = []
    for split in td.splits:
        stats = ((td.statistics or {}).get(split) or {}).get("features", {})
        table: pa.Table | None = None
        if labels or any(f not in stats for f in features):
            table = td.read(split, transformed=False, dataframe_type="pyarrow")
        shares = {}
        for feature in features:
            if feature in stats and stats[feature].get("null_fraction") is not None:
                shares[feature] = float(stats[feature]["null_fraction"])
            else:
                assert table is not None
                column = table.column(feature)
                shares[feature] = column.null_count / len(column) if len(column) else 0.0
        null_share[split] = shares
        for label in labels:
            assert table is not None
            balance[label][split] = label_shares(table.column(label))
        if rows.get(split, 0) < rules.min_rows:
            problems.append(Problem("error", f"split {split!r} has {rows.get(split, 0)} rows "
                                             f"(at least {rules.min_rows} wanted)"))
        for feature, share in shares.items():
            if rows.get(split, 0) and share >= 1.0:
                problems.append(Problem("error", f"feature {feature!r} is null in every row of split {split!r}"))
            elif share > rules.max_null_share:
                problems.append(Problem("warning", f"feature {feature!r} is null in {share:.1%} of split {split!r} "
                                                   f"(more than {rules.max_null_share:.0%})"))
    first = "train" if "train" in td.splits else (td.splits[0] if td.splits else None)
    for label in labels:
        shares_of = balance[label].get(first) if first else None
        if not shares_of:  # continuous, or an empty split (reported above)
            continue
        classes = {k: v for k, v in shares_of.items() if k != "null"}
        if len(classes) == 1:
            problems.append(Problem("error", f"label {label!r} has a single class ({next(iter(classes))!r}) "
                                             f"in split {first!r}"))
        for value, share in classes.items():
            if len(classes) > 1 and share < rules.min_label_share:
                problems.append(Problem("warning", f"label {label!r} = {value!r} is {share:.2%} of split "
                                                   f"{first!r} (less than {rules.min_label_share:.0%})"))
    return QualityReport(rows=rows, null_share=null_share, label_balance=balance, problems=problems)
