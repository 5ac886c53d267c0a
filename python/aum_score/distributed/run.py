"""Scoring a logit log on a Dask cluster: tasks per piece of the log run the C++ core, and their
partial states are combined by the core's exact merge, in one of two modes.

- reduce: the partial states are merged by a tree of tasks (in log order) into one state, which
  the driver turns into the same :class:`~aum_score.ScoreResult` as a local run.
- shard: each piece's state is split by a fixed hash of the sample id into S shards; shard s's
  parts are merged on the worker that owns it; the cut-off comes from the threshold samples'
  AUMs alone, gathered from the shards; each shard then writes its flagged rows as one Parquet
  file of a dataset directory. No process ever holds every sample.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ..errors import FragileCutoffWarning, LogFormatError
from ..memorisation import auto_window_end
from ..results import ScoreResult, Summary, build_result
from ..run_inputs import run_inputs
from ..scoring import AddSettings, Sources, add_labels_file
from ..state import ScoringState, state_after
from ..state import save_state as save_state_file
from ..thresholds import bootstrap_thresholds, flag_mislabeled, fragility_warning
from .cluster import choose_mode, dask_client, worker_memory
from .plan import TASK_BYTES, LogPiece, estimate_samples, plan_pieces
from .tasks import (
    RunSetup,
    accumulate_piece,
    merge_states,
    piece_tallies,
    shard_facts,
    sum_tallies,
    write_shard,
)

#: Partial states merged by one task of the tree.
FAN_IN = 8
SUMMARY_FILE = "_summary.json"  # a leading "_": Parquet dataset readers skip it


@dataclass
class ShardedResult:
    """The result of a shard-mode run: a Parquet dataset directory with one file per shard
    (each sorted by AUM ascending; the result columns of :class:`~aum_score.ScoreResult`), and
    the run's summary and monitor. ``_summary.json`` in the directory holds the summary too."""

    path: str
    files: list[str]
    summary: Summary
    monitor: pa.Table | None = None

    def read_table(self) -> pa.Table:
        """Every shard in one table sorted by AUM ascending (for results that fit in memory)."""
        import pyarrow.parquet as pq

        tables = [pq.read_table(f) for f in self.files]
        return pa.concat_tables(tables).sort_by("aum")

    @property
    def table(self) -> pa.Table:
        return self.read_table()


def score(
    logs: Any,
    labels: str | os.PathLike | None = None,
    *,
    epochs: str | slice | None = None,
    threshold_class: int | None = None,
    percentile: float = 99.0,
    nonfinite: str = "error",
    allow_label_changes: bool = False,
    bootstrap: int = 1000,
    threads: int | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    mode: str = "auto",
    output: str | os.PathLike | None = None,
    shards: int | None = None,
    task_bytes: int = TASK_BYTES,
    state: str | os.PathLike | None = None,
    save_state: str | os.PathLike | None = None,
) -> ScoreResult | ShardedResult:
    """:func:`aum_score.score` on a Dask cluster (``scheduler``: an address or a
    ``distributed.Client``; or ``workers``: start a local cluster of that many processes).

    ``mode``: ``"reduce"`` (one merged state: returns a :class:`~aum_score.ScoreResult`, also
    written to ``output`` if given), ``"shard"`` (``shards`` states by sample id, written as a
    Parquet dataset to the directory ``output``: returns a :class:`ShardedResult`), or
    ``"auto"``: shard when the per-sample state would not fit one worker's memory.
    ``threads``: kernel threads per task (default 1: a worker runs as many tasks at once as it
    has threads). ``task_bytes``: bytes of log one task reads (large files are split by record
    batch or row group). ``state``/``save_state`` (reduce mode only: a state file holds every
    sample): the new files' partial states are merged into the saved state's, as a local resume
    adds them. Other arguments as for :func:`aum_score.score`.
    """
    started = time.perf_counter()
    if (state is not None or save_state is not None) and mode == "shard":
        raise LogFormatError(
            "state files hold every sample, which shard mode never gathers: use mode 'reduce' "
            "with --resume/--save-state"
        )
    run = run_inputs(logs, labels, epochs, threshold_class, percentile, nonfinite, state)
    files, window, auto, prior = run.files, run.window, run.auto, run.prior
    labels_file, threshold_class = run.labels_file, run.threshold_class
    classes, string_ids = run.classes, run.string_ids
    if not files:
        raise LogFormatError("give the new log files to score on the cluster")
    if labels_file is not None:  # its own errors (a sample given two labels) as a local run's
        add_labels_file(
            _core.Accumulator(classes, string_ids), labels_file, Sources(labels=labels_file.path)
        )
    setup = RunSetup(
        classes=classes,
        string_ids=string_ids,
        window=window,
        settings=AddSettings(
            skip_nonfinite=nonfinite == "skip",
            allow_label_changes=allow_label_changes,
            threads=threads or 1,
            threshold_class=threshold_class,
        ),
        labels=labels_file.path if labels_file is not None else None,
    )
    no_rows = f"{files[0].path}: no rows to score" + (
        f" in epochs {epochs}" if epochs is not None else ""
    )
    pieces = plan_pieces(files, window, task_bytes)
    if not pieces:
        raise LogFormatError(no_rows)
    labelled = len(labels_file.labels) if labels_file is not None else None
    with dask_client(scheduler, workers) as client:
        count, memory = worker_memory(client)
        if prior is not None or save_state is not None:
            mode = "reduce"  # a state file holds every sample: one merged state
        mode, shards = choose_mode(mode, estimate_samples(pieces, labelled), count, memory, shards)
        if mode == "shard" and output is None:
            raise LogFormatError(
                "shard mode writes the result as a Parquet dataset: give an output directory "
                "(-o/--output DIR, output=...), or force mode 'reduce'"
            )
        if mode == "reduce" and output is not None:
            from ..outputs import output_format

            output_format(output)  # a bad output path fails before the work, not after
        monitor = None
        if auto:  # first pass: the monitor alone, to find where memorisation starts
            tallies = client.gather([client.submit(piece_tallies, p, setup) for p in pieces])
            if sum(t["read"] for t in tallies) == 0:
                raise LogFormatError(no_rows)
            monitor = sum_tallies(tallies)
            stop = auto_window_end(monitor)
            if stop is not None:
                window = setup.window = slice(window.start, stop)
                pieces = plan_pieces(files, window, task_bytes)
        if mode == "reduce":
            accumulator = _reduce(client, pieces, setup, no_rows, prior)
            result = build_result(accumulator, threshold_class, percentile, bootstrap)
            if save_state is not None:
                scored = state_after(prior, accumulator, files, labels, threshold_class, window)
                save_state_file(scored, save_state)
        else:
            result = _shard(
                client,
                pieces,
                setup,
                shards,
                os.fspath(output),
                no_rows,
                threshold_class,
                percentile,
                bootstrap,
            )
    if monitor is not None:
        result.monitor = monitor  # the whole run's monitor shows why the window ends
    summary = result.summary
    summary.epoch_window = [window.start, window.stop]
    summary.set_seconds(time.perf_counter() - started)
    if threshold_class is not None and summary.threshold_samples == 0:
        summary.warnings.append(
            f"no sample has the threshold class {threshold_class}, so nothing is flagged"
        )
    if isinstance(result, ShardedResult):
        _write_summary(result, result.path)  # again, with the run's final seconds
    elif output is not None:
        result.write(output)
    for message in summary.warnings:
        warnings.warn(message, FragileCutoffWarning, stacklevel=3)
    return result


def _piece_name(piece: LogPiece) -> str:
    if piece.units is None:
        return piece.path
    kind = "row groups" if piece.format == "parquet" else "record batches"
    return f"{piece.path} ({kind} {piece.units[0]} to {piece.units[1] - 1})"


def _tree_merge(
    client: Any,
    leaves: Sequence[tuple[Any, str]],
    allow_label_changes: bool,
    owner: str | None = None,
) -> Any:
    """Merge (future, name) leaves in order, FAN_IN at a time, on ``owner`` if given (another
    worker if it is gone)."""
    where = {"workers": [owner], "allow_other_workers": True} if owner else {}
    level = list(leaves)
    while len(level) > 1:
        merged = []
        for i in range(0, len(level), FAN_IN):
            group = level[i : i + FAN_IN]
            if len(group) == 1:
                merged.append(group[0])
                continue
            names = [name for _, name in group]
            future = client.submit(
                merge_states,
                [f for f, _ in group],
                names,
                allow_label_changes,
                pure=False,
                **where,
            )
            merged.append((future, f"{names[0]} to {names[-1]}"))
        level = merged
    return level[0][0]


def _reduce(client, pieces, setup, no_rows, prior: ScoringState | None) -> _core.Accumulator:
    """The one merged state of every piece (added to ``prior``'s, when resuming)."""
    parts = [client.submit(accumulate_piece, p, setup, 1, pure=False) for p in pieces]
    leaves = [
        (client.submit(operator.getitem, f, 0, pure=False), _piece_name(p))
        for f, p in zip(parts, pieces)
    ]
    root = _tree_merge(client, leaves, setup.settings.allow_label_changes)
    state = _core.Accumulator.from_bytes(root.result())
    if prior is None:
        if state.rows_added + state.rows_skipped == 0:
            raise LogFormatError(no_rows)
        return state
    merged = prior.copy_accumulator()
    try:
        merged.merge(state, setup.settings.allow_label_changes)
    except ValueError as exc:
        raise LogFormatError(f"{prior.name()}: {exc}") from None
    prior.check_added_epochs(merged, pieces)
    return merged


def _shard(
    client, pieces, setup, shards, output, no_rows, threshold_class, percentile, bootstrap
) -> ShardedResult:
    owners = sorted(client.scheduler_info(**_all_workers(client))["workers"])
    parts = [client.submit(accumulate_piece, p, setup, shards, pure=False) for p in pieces]
    names = [_piece_name(p) for p in pieces]
    states = []
    for s in range(shards):
        leaves = [
            (client.submit(operator.getitem, f, s, pure=False), name)
            for f, name in zip(parts, names)
        ]
        owner = owners[s % len(owners)]
        states.append(
            (_tree_merge(client, leaves, setup.settings.allow_label_changes, owner), owner)
        )
    del parts, leaves  # the pieces' states are released once merged
    facts = client.gather(
        [
            client.submit(
                shard_facts,
                state,
                threshold_class,
                pure=False,
                workers=[owner],
                allow_other_workers=True,
            )
            for state, owner in states
        ]
    )
    rows = sum(f["rows"] for f in facts)
    if rows + sum(f["skipped"] for f in facts) == 0:
        raise LogFormatError(no_rows)
    threshold_aums = np.sort(np.concatenate([f["threshold_aums"] for f in facts]))
    _, threshold = flag_mislabeled(threshold_aums, np.ones(len(threshold_aums), bool), percentile)
    cutoffs = bootstrap_thresholds(threshold_aums, percentile, bootstrap)
    staging = _staging_directory(output)
    paths = [os.path.join(staging, f"part-{s:05d}.parquet") for s in range(shards)]
    try:
        flagged = client.gather(
            [
                client.submit(
                    write_shard,
                    state,
                    path,
                    threshold_class,
                    percentile,
                    bootstrap,
                    threshold_aums,
                    pure=False,
                    workers=[owner],
                    allow_other_workers=True,
                )
                for (state, owner), path in zip(states, paths)
            ]
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    monitor = sum_tallies([f["tallies"] for f in facts])
    summary = Summary(
        samples=sum(f["samples"] for f in facts),
        rows=rows,
        epochs=monitor.num_rows,
        classes=setup.classes,
        threshold_samples=len(threshold_aums),
        threshold=threshold,
        flagged=int(sum(flagged)),
        seconds=0.0,
        rows_per_second=0.0,
        skipped_rows=sum(f["skipped"] for f in facts),
        percentile=percentile,
        threshold_interval=(
            [float(np.quantile(cutoffs, 0.025)), float(np.quantile(cutoffs, 0.975))]
            if len(cutoffs)
            else None
        ),
    )
    warning = fragility_warning(summary.threshold_samples, percentile)
    if warning:
        summary.warnings.append(warning)
    files = [os.path.join(output, os.path.basename(p)) for p in paths]
    result = ShardedResult(output, files, summary, monitor)
    try:
        _write_summary(result, staging)
        _replace_directory(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _all_workers(client: Any) -> dict:
    import inspect

    takes_n = "n_workers" in inspect.signature(client.scheduler_info).parameters
    return {"n_workers": -1} if takes_n else {}


def _staging_directory(output: str) -> str:
    """A new directory beside ``output``, renamed to it when every shard is written, so that a
    failed run leaves no partial dataset."""
    if os.path.exists(output) and not (
        os.path.isdir(output) and (not os.listdir(output) or _is_dataset(output))
    ):
        raise LogFormatError(
            f"{output}: exists and is not a dataset written by aum-score; shard mode writes a "
            "directory there (remove it or choose another path)"
        )
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise LogFormatError(f"{output}: directory {parent} does not exist")
    staging = os.path.join(parent, f".{os.path.basename(output)}.{uuid.uuid4().hex[:8]}.partial")
    os.mkdir(staging)
    return staging


def _is_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, SUMMARY_FILE))


def _replace_directory(staging: str, output: str) -> None:
    if os.path.exists(output):
        old = f"{staging}.old"
        os.rename(output, old)
        os.rename(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, output)


def _write_summary(result: ShardedResult, directory: str) -> None:
    summary = {
        **result.summary.to_dict(),
        "files": [os.path.basename(f) for f in result.files],
        "monitor": result.monitor.to_pylist() if result.monitor is not None else None,
    }
    path = os.path.join(directory, SUMMARY_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(path + ".tmp", path)
