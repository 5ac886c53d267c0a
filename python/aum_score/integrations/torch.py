"""PyTorch: a dataset wrapper that yields each sample's index, and the background
:class:`LogitRecorder` for plain training loops.

::

    from aum_score.integrations.torch import DatasetWithIndex, LogitRecorder

    loader = DataLoader(DatasetWithIndex(train_set), batch_size=128, shuffle=True)
    with LogitRecorder("logs/") as recorder:
        for epoch in range(epochs):
            for x, y, idx in loader:
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(); loss.backward(); optimizer.step()
                recorder.record(idx, logits, y)
            recorder.end_epoch()
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from .recorder import LogitRecorder

__all__ = ["DatasetWithIndex", "LogitRecorder"]


class DatasetWithIndex(Dataset):
    """A map-style dataset whose items are the wrapped dataset's items with the sample index
    appended as the last element (like the reference library's ``aum.DatasetWithIndex``).

    A tuple or list item ``(x, y)`` becomes ``(x, y, index)``; any other item ``x`` becomes
    ``(x, index)``. The index is the sample id to record: the default collate turns it into a
    tensor of ids per batch.
    """

    def __init__(self, base_dataset: Dataset) -> None:
        self.base_dataset = base_dataset

    def __len__(self) -> int:
        return len(self.base_dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item = self.base_dataset[index]
        if isinstance(item, (tuple, list)):
            return (*item, index)
        return (item, index)
