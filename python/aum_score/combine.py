"""Combining runs with disjoint threshold sets (the paper trains twice so that every sample is
scored at least once as a normal sample)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from .errors import LogFormatError
from .thresholds import flag_mislabeled

RUN_COLUMNS = ("sample_id", "label", "aum", "threshold_sample", "mislabeled")


@dataclass
class CombineSummary:
    runs: int
    samples: int
    never_scored: int  #: samples that were a threshold sample in every run
    flagged: int  #: paper's rule: flagged in any run where the sample was a normal sample
    flagged_pooled: int  #: mean AUM against the pooled threshold samples of all runs
    pooled_threshold: float | None
    percentile: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CombineResult:
    table: pa.Table
    summary: CombineSummary


def combine_runs(
    runs: Sequence[pa.Table], *, percentile: float = 95.0, names: Sequence[str] | None = None
) -> CombineResult:
    """Per sample, over the runs in which it was not a threshold sample: the mean AUM, and
    ``mislabeled`` by the paper's rule (flagged in any such run) and ``mislabeled_pooled`` (mean
    AUM below the cut-off of the pooled threshold samples of all runs). Samples that were a
    threshold sample in every run are kept with null AUM and flags.

    ``runs`` are result tables of :func:`aum_score.score` (columns sample_id, label, aum,
    threshold_sample, mislabeled); ``names`` name them in errors. ``percentile`` is the pooled
    rule's (95 by default: on the quality benchmark, p95 pooled had the best and steadiest F1,
    while "flagged in any run" adds up both runs' false positives; see benchmarks/RESULTS.md).
    """
    import pyarrow.compute as pc  # here, not at the top: 60 ms of every command's start-up

    names = list(names) if names is not None else [f"run {i + 1}" for i in range(len(runs))]
    if len(runs) < 1:
        raise LogFormatError("combine needs at least one run")
    parts = []
    for number, (run, name) in enumerate(zip(runs, names)):
        missing = [c for c in RUN_COLUMNS if c not in run.column_names]
        if missing:
            raise LogFormatError(f"{name}: missing column(s) {', '.join(missing)}")
        part = run.select(list(RUN_COLUMNS)).append_column(
            "run", pa.array(np.full(run.num_rows, number), pa.int64())
        )
        parts.append(part)
    try:
        rows = pa.concat_tables(parts, promote_options="permissive")
    except pa.ArrowInvalid as exc:
        raise LogFormatError(f"runs do not agree on column types: {exc}") from None
    is_threshold = rows.column("threshold_sample").to_numpy(zero_copy_only=False).astype(bool)
    normal = rows.filter(pa.array(~is_threshold))
    per_sample = normal.group_by("sample_id").aggregate(
        [
            ("aum", "mean"),
            ("run", "count"),
            ("label", "min"),
            ("label", "max"),
            ("mislabeled", "any", pc.ScalarAggregateOptions(min_count=1)),
            ("mislabeled", "sum", pc.ScalarAggregateOptions(min_count=1)),
        ]
    )
    disagree = pc.not_equal(per_sample["label_min"], per_sample["label_max"])
    if pc.any(disagree).as_py():
        sample = per_sample.filter(disagree)["sample_id"][0].as_py()
        raise LogFormatError(f"sample {sample!r} has different labels in different runs")
    scored_ids = per_sample.column("sample_id")
    threshold_only = rows.filter(pa.array(is_threshold)).group_by("sample_id").aggregate([])
    never = threshold_only.filter(pc.invert(pc.is_in(threshold_only["sample_id"], scored_ids)))
    threshold_runs = (
        rows.filter(pa.array(is_threshold)).group_by("sample_id").aggregate([("run", "count")])
    )

    mean_aum = per_sample.column("aum_mean").to_numpy(zero_copy_only=False)
    pooled = rows.filter(pa.array(is_threshold)).column("aum").to_numpy(zero_copy_only=False)
    flags, pooled_threshold = flag_mislabeled(
        np.concatenate([mean_aum, pooled]),
        np.concatenate([np.zeros(len(mean_aum), bool), np.ones(len(pooled), bool)]),
        percentile,
    )
    has_pool = len(pooled) > 0
    n_never = never.num_rows
    ids = pa.concat_arrays(
        [
            scored_ids.combine_chunks(),
            never.column("sample_id").combine_chunks().cast(scored_ids.type),
        ]
    )
    table = pa.table(
        {
            "sample_id": ids,
            "label": pa.concat_arrays(
                [per_sample["label_min"].combine_chunks(), pa.nulls(n_never, pa.int64())]
            ),
            "aum": pa.concat_arrays(
                [pa.array(mean_aum, pa.float64()), pa.nulls(n_never, pa.float64())]
            ),
            "runs": pa.concat_arrays(
                [per_sample["run_count"].combine_chunks(), pa.array(np.zeros(n_never, np.int64))]
            ),
            "mislabeled": pa.concat_arrays(
                [per_sample["mislabeled_any"].combine_chunks(), pa.nulls(n_never, pa.bool_())]
            ),
            "flagged_runs": pa.concat_arrays(
                [
                    per_sample["mislabeled_sum"].combine_chunks().cast(pa.int64()),
                    pa.nulls(n_never, pa.int64()),
                ]
            ),
            "mislabeled_pooled": pa.array(
                np.concatenate([flags[: len(mean_aum)], np.zeros(n_never, bool)]),
                pa.bool_(),
                mask=np.concatenate([np.full(len(mean_aum), not has_pool), np.ones(n_never, bool)]),
            ),
        }
    )
    counts = table.join(threshold_runs, "sample_id", join_type="left outer")
    table = counts.rename_columns(
        [c if c != "run_count" else "threshold_runs" for c in counts.column_names]
    )
    table = table.set_column(
        table.column_names.index("threshold_runs"),
        "threshold_runs",
        pc.fill_null(table["threshold_runs"], 0),
    )
    table = table.sort_by([("aum", "ascending")])  # nulls (never scored) last
    summary = CombineSummary(
        runs=len(runs),
        samples=table.num_rows,
        never_scored=n_never,
        flagged=int(pc.sum(pc.cast(pc.fill_null(table["mislabeled"], False), pa.int64())).as_py()),
        flagged_pooled=int(flags[: len(mean_aum)].sum()) if has_pool else 0,
        pooled_threshold=pooled_threshold,
        percentile=percentile,
    )
    return CombineResult(table, summary)
