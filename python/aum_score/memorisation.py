"""The memorisation monitor: per epoch, how far the network has fitted the threshold samples.

Threshold samples carry a fake class, so a network that generalises gives them negative margins;
once it starts memorising, their margins turn positive - and so do those of the truly mislabeled
samples, whose AUMs then drift up into the clean ones'. The fraction of threshold samples fitted
(margin > 0) at each epoch therefore shows when memorisation starts, without clean data, and
``epochs="auto"`` ends the AUM window there (see :func:`auto_window_end`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .arrays import arrow_array, numpy_of

# --epochs auto ends the window at the first epoch whose fitted fraction rises this far above its
# lowest value so far (benchmarks/RESULTS.md: within ~1 F1 point of each run's best window, short
# or long schedule; a fixed level fails with few classes, where many threshold samples are
# "fitted" from the start).
AUTO_RISE = 0.1
SPARKS = "▁▂▃▄▅▆▇█"


def monitor_table(tallies: dict) -> pa.Table:
    """Per epoch: rows, mean margin, and the threshold samples' rows, fraction fitted and mean
    margin (null where an epoch has no threshold rows)."""
    rows = tallies["rows"]
    keep = rows > 0
    rows = rows[keep]
    t_rows = tallies["tallied_rows"][keep]
    has_t = t_rows > 0
    safe = np.where(has_t, t_rows, 1)

    def i64(values):
        return arrow_array(np.asarray(values, np.int64))

    def f64(values, mask=None):
        return arrow_array(np.asarray(values, np.float64), mask)

    return pa.table(
        {
            "epoch": i64(tallies["epoch"][keep]),
            "rows": i64(rows),
            "mean_margin": f64(tallies["margin_sum"][keep] / rows),
            "threshold_rows": i64(t_rows),
            "threshold_fitted": f64(tallies["tallied_fitted"][keep] / safe, ~has_t),
            "threshold_mean_margin": f64(tallies["tallied_margin_sum"][keep] / safe, ~has_t),
        }
    )


def auto_window_end(monitor: pa.Table, rise: float = AUTO_RISE) -> int | None:
    """The epoch at which the AUM window should stop (exclusive): the first epoch, after the
    window's first, whose fraction of fitted threshold samples is more than ``rise`` above the
    lowest fraction seen so far. Epoch 0's margins come from the random initialisation, so the
    first epoch only sets the baseline. None when no epoch qualifies (keep every epoch)."""
    has = numpy_of(monitor["threshold_rows"]) > 0
    epochs = numpy_of(monitor["epoch"])[has]
    fitted = numpy_of(monitor["threshold_fitted"]).astype(float)[has]
    if len(fitted) < 2:
        return None
    lowest = np.minimum.accumulate(fitted)
    over = np.flatnonzero(fitted[1:] > lowest[1:] + rise) + 1
    return int(epochs[over[0]]) if len(over) else None


def sparkline(values) -> str:
    """One character per value in [0, 1] (None/NaN as a space)."""
    out = []
    for v in values:
        if v is None or v != v:
            out.append(" ")
        else:
            out.append(SPARKS[min(int(float(v) * len(SPARKS)), len(SPARKS) - 1)])
    return "".join(out)


def format_monitor(monitor: pa.Table, window: tuple[int | None, int | None] | None = None) -> str:
    """The monitor as a small text table with a sparkline of the fitted fraction."""
    lines = ["epoch  threshold fitted  threshold margin  mean margin"]
    for row in monitor.to_pylist():
        fitted = row["threshold_fitted"]
        margin = row["threshold_mean_margin"]
        mark = ""
        if window is not None and window[1] is not None and row["epoch"] >= window[1]:
            mark = "  (after the window)"
        lines.append(
            f"{row['epoch']:>5}  {'-' if fitted is None else f'{fitted:15.1%}'}  "
            f"{'-' if margin is None else f'{margin:16.3f}'}  {row['mean_margin']:11.3f}{mark}"
        )
    fitted = monitor.column("threshold_fitted").to_pylist()
    lines.append(f"fitted threshold samples by epoch: {sparkline(fitted)}")
    return "\n".join(lines)
