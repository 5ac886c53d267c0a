"""What a scoring run starts from, checked once for the local and the distributed scorer: the
log files, the epoch window, a labels file, a saved state to resume and the threshold class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import LogFormatError
from .labels import LabelsFile, read_labels
from .logs import LogFile, open_log, parse_epochs
from .state import ScoringState, load_state
from .thresholds import check_percentile

NONFINITE_POLICIES = ("error", "skip")


def check_options(
    threshold_class: int | None, classes: int | None, percentile: float, nonfinite: str
) -> None:
    check_percentile(percentile)
    if nonfinite not in NONFINITE_POLICIES:
        raise LogFormatError(f"nonfinite must be 'error' or 'skip', got {nonfinite!r}")
    if threshold_class is not None and classes is not None and not 0 <= threshold_class < classes:
        raise LogFormatError(
            f"threshold class {threshold_class} is outside [0, {classes}) (the logits have "
            f"{classes} classes)"
        )


@dataclass
class RunInputs:
    files: list[LogFile]  # the new files (none: a resumed state's result alone)
    window: slice
    auto: bool  # epochs "auto": end the window where memorisation starts (two passes)
    prior: ScoringState | None  # the state resumed from
    labels_file: LabelsFile | None
    threshold_class: int | None
    classes: int
    string_ids: bool


def run_inputs(
    logs: str | os.PathLike | Sequence[str | os.PathLike],
    labels: str | os.PathLike | None,
    epochs: str | slice | None,
    threshold_class: int | None,
    percentile: float,
    nonfinite: str,
    state: str | os.PathLike | None = None,
) -> RunInputs:
    """Open and check everything a run reads before its first batch; errors name the file."""
    window, auto = parse_epochs(epochs)
    prior = load_state(state) if state is not None else None
    if prior is not None:
        if auto:
            raise LogFormatError(
                f"{state}: epochs 'auto' chooses the window from the whole log in two passes; "
                "it cannot extend a state (give START:END)"
            )
        if epochs is None and prior.epoch_window is not None:
            window = slice(*prior.epoch_window)
        has_logs = bool([logs] if isinstance(logs, (str, os.PathLike)) else list(logs or []))
        files = open_log(logs, first_position=len(prior.files)) if has_logs else []
        if files:
            prior.check_log(files, window)
        classes, string_ids = prior.classes, prior.string_ids
    else:
        files = open_log(logs)
        classes, string_ids = files[0].classes, files[0].string_ids
    labels_file = read_labels(labels, string_ids) if labels is not None else None
    if labels_file is not None and labels_file.threshold_class is not None:
        if threshold_class not in (None, labels_file.threshold_class):
            raise LogFormatError(
                f"{labels_file.path}: marks class {labels_file.threshold_class} as the threshold "
                f"class, but threshold class {threshold_class} was given"
            )
        threshold_class = labels_file.threshold_class
    if prior is not None:
        threshold_class = prior.check_threshold_class(threshold_class)
    if auto and threshold_class is None:
        raise LogFormatError("epochs 'auto' needs threshold samples: give the threshold class")
    check_options(threshold_class, classes, percentile, nonfinite)
    return RunInputs(files, window, auto, prior, labels_file, threshold_class, classes, string_ids)
