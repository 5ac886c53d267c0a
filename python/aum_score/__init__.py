"""aum-score: find mislabeled training data with the Area Under the Margin (Pleiss et al., 2020).

Score a logit log written by any trainer::

    import aum_score
    result = aum_score.score("logs/", threshold_class=10)
    result.table        # pyarrow.Table, most suspicious samples first
    result.summary      # threshold, counts, timing
"""

import os

# Idle OpenMP threads sleep instead of spinning: on a shared or busy machine spinning made two
# threads ~10x slower than one (benchmarks/RESULTS.md). Set it yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .api import Scorer, build_info, margins, score  # noqa: E402
from .calculator import AUMCalculator, AUMRecord, AUMRecords  # noqa: E402
from .errors import FragileCutoffWarning, LogFormatError  # noqa: E402
from .evaluation import Evaluation, evaluate  # noqa: E402
from .filtering import FilterResult, filter_result  # noqa: E402
from .noise import assign_threshold_samples, inject_noise, threshold_class_of  # noqa: E402
from .outputs import write_table  # noqa: E402
from .results import ScoreResult, Summary  # noqa: E402
from .tables import read_table  # noqa: E402
from .writer import LogitWriter  # noqa: E402

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
