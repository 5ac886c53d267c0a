"""aum-score: find mislabeled training data with the Area Under the Margin (Pleiss et al., 2020).

Score a logit log written by any trainer::

    import aum_score
    result = aum_score.score("logs/", threshold_class=10)
    result.table        # pyarrow.Table, most suspicious samples first
    result.summary      # threshold, counts, timing
"""

from ._version import __version__
from .api import Scorer, build_info, margins, score
from .calculator import AUMCalculator, AUMRecord, AUMRecords
from .errors import FragileCutoffWarning, LogFormatError
from .evaluation import Evaluation, evaluate
from .filtering import FilterResult, filter_result
from .noise import assign_threshold_samples, inject_noise, threshold_class_of
from .outputs import write_table
from .results import ScoreResult, Summary
from .tables import read_table
from .writer import LogitWriter

__all__ = [
    "AUMCalculator",
    "AUMRecord",
    "AUMRecords",
    "Evaluation",
    "FilterResult",
    "FragileCutoffWarning",
    "LogFormatError",
    "LogitWriter",
    "ScoreResult",
    "Scorer",
    "Summary",
    "__version__",
    "assign_threshold_samples",
    "build_info",
    "evaluate",
    "filter_result",
    "inject_noise",
    "margins",
    "read_table",
    "score",
    "threshold_class_of",
    "write_table",
]
