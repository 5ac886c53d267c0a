"""Framework integrations: record training logits into a logit log with a few lines.

Each framework has its own module, imported explicitly, so ``import aum_score`` never imports a
framework:

- :mod:`aum_score.integrations.torch`: ``DatasetWithIndex``, ``LogitRecorder`` for plain loops
- :mod:`aum_score.integrations.lightning`: ``LogitRecorderCallback``
- :mod:`aum_score.integrations.keras`: ``RecordingModel`` (exact train-mode logits) and
  ``EpochEndInference`` (an inference pass after each epoch)
- :mod:`aum_score.integrations.huggingface`: ``LogitRecordingTrainer`` / ``LogitRecordingMixin``

:class:`LogitRecorder` (a :class:`~aum_score.LogitWriter` on a background thread) needs no
framework and is importable from here.
"""

from .recorder import LogitRecorder

__all__ = ["LogitRecorder"]
