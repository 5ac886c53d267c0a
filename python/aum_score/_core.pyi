"""Type stubs for the C++ extension (src/). Private: use the package's public API."""

import numpy as np
import numpy.typing as npt

NO_LABEL: int
NO_SOURCE: int
LABELS_SOURCE: int
STATE_SOURCE: int

class RowError(ValueError):
    """args: (message, row within the batch, source of a conflicting earlier label)."""

def margins(
    logits: npt.NDArray[np.floating] | npt.NDArray[np.uint16],
    labels: npt.NDArray[np.int64],
    threads: int = 0,
    bfloat16: bool = False,
) -> npt.NDArray[np.float64]: ...
def has_openmp() -> bool: ...
def max_threads() -> int: ...
def simd_level() -> str: ...
def simd_levels() -> list[str]: ...
def set_simd_level(level: str) -> str: ...
def read_floor(buffer: object) -> int: ...
def scatter_floor(
    ids: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    counts: npt.NDArray[np.int64],
) -> None: ...

class Accumulator:
    def __init__(
        self, classes: int, string_ids: bool = False, direct_table: int = 1048576
    ) -> None: ...
    def add(
        self,
        logits: npt.NDArray[np.floating] | npt.NDArray[np.uint16],
        labels: npt.NDArray[np.int64],
        keys: npt.NDArray[np.int64],
        source: int = 0,
        skip_nonfinite: bool = False,
        allow_label_changes: bool = False,
        threads: int = 0,
        epoch: int = 0,
        epochs: npt.NDArray[np.int64] | None = None,
        tally_label: int = ...,
        bfloat16: bool = False,
    ) -> tuple[int, int]: ...
    def intern(
        self, offsets: npt.NDArray[np.integer], data: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.int64]: ...
    def strings_of(self, keys: npt.NDArray[np.int64]) -> list[str]: ...
    def string_buffers(
        self, keys: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
    def index_info(self) -> dict[str, int]: ...
    def set_labels(
        self, keys: npt.NDArray[np.int64], labels: npt.NDArray[np.int64], source: int = -1
    ) -> None: ...
    def merge(self, other: Accumulator, allow_label_changes: bool = False) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Accumulator: ...
    def arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
    ]: ...
    @property
    def classes(self) -> int: ...
    @property
    def string_ids(self) -> bool: ...
    @property
    def num_slots(self) -> int: ...
    @property
    def rows_added(self) -> int: ...
    @property
    def rows_skipped(self) -> int: ...
