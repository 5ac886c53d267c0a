"""How well a result's flags and AUM ranking find the truly mislabeled samples (for experiments
with injected noise). Pure numpy; the definitions match scikit-learn's, ties included."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from .errors import LogFormatError
from .tables import bool_column, first_null_row, id_column, require_columns


@dataclass
class Evaluation:
    """Metrics over the evaluated samples: those with a non-null flag, or, when no sample has
    one, all non-threshold samples; threshold samples and samples without an AUM never count.

    Flag metrics are None when no sample has a flag. Precision, recall and F1 are 0 when
    undefined (scikit-learn's default); the ranking metrics are None when they are undefined
    (no mislabeled samples, or for AUROC no clean ones). The ranking score is -AUM.
    """

    samples: int  #: samples evaluated
    mislabeled: int  #: truly mislabeled among them
    flagged: int | None  #: flagged among them
    precision: float | None
    recall: float | None
    f1: float | None
    auroc: float | None
    average_precision: float | None
    best_f1: float | None  #: the best F1 of any cut-off on the AUM ranking
    best_f1_cutoff: float | None  #: ... reached by flagging the samples with AUM <= this
    best_f1_flagged: int | None  #: ... which flags this many samples
    excluded: int  #: result rows not evaluated (threshold samples, null flags or AUMs)
    flag_column: str = "mislabeled"

    def to_dict(self) -> dict:
        return asdict(self)


def _common_ids(result_ids: pa.Array, truth_ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Both id arrays in one type: strings if either is (CSV readers guess integers), else int64."""
    if pa.types.is_integer(result_ids.type) and pa.types.is_integer(truth_ids.type):
        return result_ids.cast(pa.int64()), truth_ids.cast(pa.int64())
    return result_ids.cast(pa.large_string()), truth_ids.cast(pa.large_string())


def _ranking_metrics(aum: np.ndarray, positive: np.ndarray) -> dict:
    """AUROC, average precision and best F1 of ranking by -AUM (low AUM = suspicious)."""
    n, pos = len(aum), int(positive.sum())
    order = np.argsort(aum, kind="stable")
    values, hits = aum[order], positive[order]
    # One cut-off per distinct AUM: flag every sample with AUM <= that value (ties together).
    ends = np.r_[np.flatnonzero(np.diff(values)), n - 1]
    tps = np.cumsum(hits)[ends].astype(np.float64)
    fps = (ends + 1) - tps
    out = dict(auroc=None, average_precision=None, best_f1=None, best_f1_cutoff=None)
    out["best_f1_flagged"] = None
    if pos == 0:
        return out
    if pos < n:
        # Mann-Whitney U with average ranks for ties; ranks ascending in the score -AUM.
        starts = np.r_[0, ends[:-1] + 1]
        rank_desc = np.repeat((starts + ends) / 2.0 + 1.0, ends - starts + 1)
        ranks = n + 1.0 - rank_desc
        u = ranks[hits].sum() - pos * (pos + 1) / 2.0
        out["auroc"] = float(u / (pos * (n - pos)))
    precision = tps / (tps + fps)
    out["average_precision"] = float(np.sum(np.diff(np.r_[0.0, tps]) / pos * precision))
    f1 = 2.0 * tps / (tps + fps + pos)  # 2TP / (2TP + FP + FN), FN = pos - TP
    best = int(np.argmax(f1))  # the first (smallest) cut-off that reaches the best F1
    out.update(
        best_f1=float(f1[best]),
        best_f1_cutoff=float(values[ends[best]]),
        best_f1_flagged=int(ends[best] + 1),
    )
    return out


def evaluate(
    result: pa.Table,
    truth: pa.Table,
    *,
    flag_column: str = "mislabeled",
    result_name: str = "result",
    truth_name: str = "truth",
) -> Evaluation:
    """Compare a scoring (or combined) result with the truth.

    ``result`` needs ``sample_id``, ``aum`` and the bool ``flag_column`` (and ``label`` when the
    truth gives true labels); a ``threshold_sample`` column, if any, excludes those rows.
    ``truth`` needs ``sample_id`` and either a bool ``is_mislabeled`` (used when present) or
    ``true_label`` (a sample is mislabeled iff its result ``label`` differs). ``result_name``
    and ``truth_name`` name the tables in error messages (the CLI passes the paths).
    """
    import pyarrow.compute as pc  # here, not at the top: 60 ms of every command's start-up

    require_columns(result, result_name, "sample_id", "aum", flag_column)
    require_columns(truth, truth_name, "sample_id")
    by_label = "is_mislabeled" not in truth.column_names
    if by_label and "true_label" not in truth.column_names:
        raise LogFormatError(
            f"{truth_name}: truth needs a column 'true_label' or 'is_mislabeled' (columns: "
            f"{', '.join(truth.column_names)})"
        )
    if by_label:
        require_columns(result, result_name, "label")

    aum_column = result.column("aum")
    if not (pa.types.is_floating(aum_column.type) or pa.types.is_integer(aum_column.type)):
        raise LogFormatError(f"{result_name}: column 'aum' has type {aum_column.type}")
    aum = aum_column.cast(pa.float64()).to_numpy()  # nulls become NaN
    flags = bool_column(result, result_name, flag_column)
    has_flag = flags.is_valid().to_numpy(zero_copy_only=False)
    evaluated = np.isfinite(aum)
    if "threshold_sample" in result.column_names:
        is_threshold = bool_column(result, result_name, "threshold_sample").fill_null(False)
        evaluated &= ~is_threshold.to_numpy(zero_copy_only=False)
    use_flags = bool((has_flag & evaluated).any())
    if use_flags:
        evaluated &= has_flag
    rows = np.flatnonzero(evaluated)
    if len(rows) == 0:
        raise LogFormatError(f"{result_name}: no samples to evaluate (all are threshold samples?)")

    result_ids, truth_ids = _common_ids(
        id_column(result, result_name), id_column(truth, truth_name)
    )
    if pc.count_distinct(truth_ids).as_py() != len(truth_ids):
        counts = pc.value_counts(truth_ids)
        twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))[0]
        raise LogFormatError(f"{truth_name}: sample {twice.as_py()} appears more than once")
    wanted = result_ids.take(pa.array(rows))
    where = pc.index_in(wanted, value_set=truth_ids)
    missing = first_null_row(where)
    if missing is not None:
        raise LogFormatError(
            f"{truth_name}: sample {wanted[missing].as_py()} of {result_name} is not in the truth"
        )
    at = where.to_numpy()

    if by_label:
        true_label = truth.column("true_label").take(pa.array(at))
        label = result.column("label").take(pa.array(rows))
        for name, column, source in (
            ("true_label", true_label, truth_name),
            ("label", label, result_name),
        ):
            if not pa.types.is_integer(column.type):
                raise LogFormatError(
                    f"{source}: column '{name}' has type {column.type}; expected integers"
                )
            row = first_null_row(column)
            if row is not None:
                raise LogFormatError(
                    f"{source}: column '{name}' is null for sample {wanted[row].as_py()}"
                )
        positive = label.to_numpy().astype(np.int64) != true_label.to_numpy().astype(np.int64)
    else:
        truth_flags = bool_column(truth, truth_name, "is_mislabeled").take(pa.array(at))
        row = first_null_row(truth_flags)
        if row is not None:
            raise LogFormatError(
                f"{truth_name}: column 'is_mislabeled' is null for sample {wanted[row].as_py()}"
            )
        positive = truth_flags.to_numpy(zero_copy_only=False).astype(bool)

    metrics = _ranking_metrics(aum[rows], positive)
    flagged = precision = recall = f1 = None
    if use_flags:
        flag = flags.take(pa.array(rows)).to_numpy(zero_copy_only=False).astype(bool)
        tp = int((flag & positive).sum())
        flagged, pos = int(flag.sum()), int(positive.sum())
        # 0 when undefined, as scikit-learn's zero_division default reports it.
        precision = tp / flagged if flagged else 0.0
        recall = tp / pos if pos else 0.0
        f1 = 2.0 * tp / (flagged + pos) if flagged + pos else 0.0
    return Evaluation(
        samples=len(rows),
        mislabeled=int(positive.sum()),
        flagged=flagged,
        precision=precision,
        recall=recall,
        f1=f1,
        excluded=result.num_rows - len(rows),
        flag_column=flag_column,
        **metrics,
    )


def format_evaluation(evaluation: Evaluation) -> str:
    """The metrics as a two-column aligned text table ('-' where undefined)."""
    rows = []
    for name, value in evaluation.to_dict().items():
        if value is None:
            text = "-"
        elif isinstance(value, float):
            text = f"{value:.4f}" if name != "best_f1_cutoff" else f"{value:.6g}"
        else:
            text = str(value)
        rows.append((name, text))
    width = max(len(name) for name, _ in rows)
    value_width = max(len(text) for _, text in rows)
    return "\n".join(f"{name.ljust(width)}  {text.rjust(value_width)}" for name, text in rows)
