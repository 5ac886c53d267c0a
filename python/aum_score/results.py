"""The result of scoring: one row per sample, sorted by AUM ascending, and a summary."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from . import _core
from .arrays import arrow_array
from .memorisation import monitor_table
from .outputs import write_table
from .thresholds import bootstrap_thresholds, flag_mislabeled, flag_rates, fragility_warning

RESULT_COLUMNS = ("sample_id", "label", "aum", "count", "threshold_sample", "mislabeled")


@dataclass
class Summary:
    """What a scoring run saw and found."""

    samples: int  #: samples scored (with at least one margin)
    rows: int  #: margins averaged (rows read, less skipped ones)
    epochs: int  #: distinct epochs scored
    classes: int  #: logits per row (C, threshold class included)
    threshold_samples: int  #: samples whose label is the threshold class
    threshold: float | None  #: AUMs strictly below this are flagged; None without threshold samples
    flagged: int  #: samples flagged as mislabeled
    seconds: float  #: wall time of the run
    rows_per_second: float
    skipped_rows: int = 0  #: rows with NaN/inf logits skipped (nonfinite="skip")
    percentile: float = 99.0
    #: 95% bootstrap interval of the cut-off over resampled threshold samples
    threshold_interval: list[float] | None = None
    #: [start, stop) of the epochs scored; stop is None when open
    epoch_window: list[int | None] | None = None
    warnings: list[str] = field(default_factory=list)

    def set_seconds(self, seconds: float) -> None:
        self.seconds = seconds
        self.rows_per_second = self.rows / seconds if seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreResult:
    """``table``: the per-sample result (see RESULT_COLUMNS; ``flag_rate`` follows when there are
    threshold samples); ``summary``: a :class:`Summary`; ``monitor``: per-epoch margins of all
    rows and of the threshold samples (see :mod:`aum_score.memorisation`)."""

    table: pa.Table
    summary: Summary
    monitor: pa.Table | None = None

    def write(self, path: str | os.PathLike) -> None:
        """Write the table atomically; the format follows the extension (.parquet/.csv/.arrow)."""
        write_table(self.table, path)


def string_array(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """Arrow strings straight from the core's offsets and bytes (no Python str per sample):
    int32 offsets make a string array, int64 ones a large_string array."""
    kind = pa.LargeStringArray if offsets.dtype == np.int64 else pa.StringArray
    return kind.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))


def build_result(
    accumulator: _core.Accumulator,
    threshold_class: int | None,
    percentile: float,
    bootstrap: int = 1000,
    run_threshold_aums: np.ndarray | None = None,
    threads: int = 0,
) -> ScoreResult:
    """The result table, summary and monitor of an accumulator (seconds are set by the caller).

    ``run_threshold_aums``: when the accumulator is one shard of a distributed run, the whole
    run's threshold-sample AUMs, from which the cut-off, flags and flag rates are computed."""
    keys, labels, aum, counts = accumulator.aums(threads)  # aum = sum / count, on threads
    scored = counts > 0  # samples only named in a labels file have no margins
    if not scored.all():
        keys, labels, aum, counts = keys[scored], labels[scored], aum[scored], counts[scored]
    # The rows in result order first (= np.argsort(aum, kind="stable"), by radix sort): every
    # column below is then computed in that order, without a gather of its own.
    order = _core.stable_argsort(aum, threads)
    keys, labels, counts, aum = (_core.take(a, order, threads) for a in (keys, labels, counts, aum))
    is_threshold = (
        labels == threshold_class if threshold_class is not None else np.zeros(len(aum), bool)
    )
    if run_threshold_aums is None:
        flags, threshold = flag_mislabeled(aum, is_threshold, percentile)
        run_threshold_aums = aum[is_threshold]
    else:  # one shard: flag against the run's threshold samples, appended as extra samples
        marks = np.concatenate([np.zeros(len(aum), bool), np.ones(len(run_threshold_aums), bool)])
        flags, threshold = flag_mislabeled(
            np.concatenate([aum, run_threshold_aums]), marks, percentile
        )
        flags = flags[: len(aum)] & ~is_threshold
    # Null where undefined: no threshold samples at all, or the sample is one.
    undefined = is_threshold | (len(run_threshold_aums) == 0)
    ids = (
        string_array(*accumulator.string_buffers(keys, threads))
        if accumulator.string_ids
        else arrow_array(np.asarray(keys, np.int64))
    )
    columns = {
        "sample_id": ids,
        "label": arrow_array(np.asarray(labels, np.int64)),
        "aum": arrow_array(np.asarray(aum, np.float64)),
        "count": arrow_array(np.asarray(counts, np.int64)),
        "threshold_sample": arrow_array(np.asarray(is_threshold, bool)),
        "mislabeled": arrow_array(np.asarray(flags, bool), undefined),
    }
    # Sorted: the resamples then depend on the AUMs alone, not on the order in which samples
    # were first seen (a distributed run sees them in another order).
    cutoffs = bootstrap_thresholds(np.sort(run_threshold_aums), percentile, bootstrap)
    interval = None
    if len(cutoffs):
        rates = flag_rates(aum, cutoffs)
        columns["flag_rate"] = arrow_array(np.asarray(rates, np.float64), undefined)
        interval = [float(np.quantile(cutoffs, 0.025)), float(np.quantile(cutoffs, 0.975))]
    monitor = monitor_table(accumulator.epoch_tallies())
    rows = int(accumulator.rows_added)
    summary = Summary(
        samples=len(aum),
        rows=rows,
        epochs=monitor.num_rows,
        classes=int(accumulator.classes),
        threshold_samples=int(is_threshold.sum()),
        threshold=threshold,
        flagged=int(flags.sum()),
        seconds=0.0,
        rows_per_second=0.0,
        skipped_rows=int(accumulator.rows_skipped),
        percentile=percentile,
        threshold_interval=interval,
    )
    warning = fragility_warning(summary.threshold_samples, percentile)
    if warning:
        summary.warnings.append(warning)
    return ScoreResult(pa.table(columns), summary, monitor)
