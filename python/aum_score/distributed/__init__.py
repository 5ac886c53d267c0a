"""Scoring logit logs on a Dask cluster (``pip install "aum-score[distributed]"``).

See docs/distributed.md. :func:`score` takes the arguments of :func:`aum_score.score` plus the
cluster (``scheduler`` or ``workers``) and the ``mode``; ``aum_score.score(..., scheduler=...)``
calls it. Dask is imported only when a run starts.
"""

from .run import ShardedResult, score

__all__ = ["ShardedResult", "score"]
