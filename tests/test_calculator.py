"""aum_score.AUMCalculator is a drop-in for the reference library's aum.AUMCalculator: the same
records from update() and byte-identical CSV files from finalize(), on the same inputs."""

from __future__ import annotations

import csv
import inspect
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import aum_score
from aum_score import AUMCalculator, AUMRecord, LogFormatError

torch = pytest.importorskip("torch")

# The reference's tiny tensor ops wait on torch's thread pool when the CPU is busy; one thread
# keeps these tests fast and their timing steady.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def random_batches(rng, n_batches, classes, dtype, id_kind, *, max_id=40, min_rows=2):
    """Batches with tied logits (values on a 0.5 grid), ids repeated within and across batches."""
    out = []
    for _ in range(n_batches):
        rows = int(rng.integers(min_rows, 24))
        logits = torch.tensor(np.round(rng.normal(size=(rows, classes)) * 4) / 2).to(dtype)
        targets = torch.tensor(rng.integers(0, classes, rows))
        ids = rng.integers(0, max_id, rows).tolist()
        if id_kind == "str":
            ids = [f"img_{i}" for i in ids]
        elif id_kind == "sparse":  # negative and huge ids: the dict-backed index
            ids = [(i - 20) * 10**12 for i in ids]
        out.append((logits, targets, ids))
    return out


def run_both(tmp_path, batches, compressed):
    """Feed the same batches to both calculators; check every update's records agree."""
    aum = pytest.importorskip("aum")
    theirs = aum.AUMCalculator(str(tmp_path / "aum"), compressed=compressed)
    ours = AUMCalculator(tmp_path / "ours", compressed=compressed)
    for logits, targets, ids in batches:
        expected = theirs.update(logits, targets, ids)
        got = ours.update(logits, targets, ids)
        assert list(got) == list(expected)  # same keys, same order
        assert {k: asdict(v) for k, v in got.items()} == {k: asdict(v) for k, v in expected.items()}
    theirs.finalize()
    ours.finalize()
    return theirs, ours


def assert_same_files(tmp_path, compressed):
    names = ["aum_values.csv"] + ([] if compressed else ["full_aum_records.csv"])
    for name in names:
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "aum" / name).read_bytes()


# ------------------------------------------------------------------ the reference's own cases


def reference_case_batches():
    return [
        (torch.tensor([[1.0, 2.0, 3.0], [6.0, 5.0, 4.0]]), torch.tensor([1, 0]), ["a", "b"]),
        (torch.tensor([[7.0, 8.0, 9.0], [12.0, 11.0, 10.0]]), torch.tensor([2, 1]), ["b", "c"]),
    ]


REFERENCE_CASE_RECORDS = [
    {
        "a": AUMRecord("a", 1, 1, 2.0, 2, 3.0, -1.0, -1.0),
        "b": AUMRecord("b", 1, 0, 6.0, 1, 5.0, 1.0, 1.0),
    },
    {
        "b": AUMRecord("b", 2, 2, 9.0, 1, 8.0, 1.0, 1.0),
        "c": AUMRecord("c", 1, 1, 11.0, 0, 12.0, -1.0, -1.0),
    },
]


def test_reference_case_update():
    calc = AUMCalculator(save_dir=None)
    for (logits, targets, ids), expected in zip(reference_case_batches(), REFERENCE_CASE_RECORDS):
        assert calc.update(logits, targets, ids) == expected


def test_reference_case_finalize(tmp_path):
    calc = AUMCalculator(save_dir=str(tmp_path), compressed=False)
    for logits, targets, ids in reference_case_batches():
        calc.update(logits, targets, ids)
    calc.finalize()
    records = [r for batch in REFERENCE_CASE_RECORDS for r in batch.values()]
    detailed = read_csv(tmp_path / "full_aum_records.csv")
    assert detailed[0] == list(asdict(records[0]))
    expected = sorted(records, key=lambda r: (r.sample_id, r.num_measurements))
    assert detailed[1:] == [[str(v) for v in asdict(r).values()] for r in expected]
    # Final AUMs: a -1, b 1, c -1, sorted by AUM descending.
    final = read_csv(tmp_path / "aum_values.csv")
    assert final[0] == ["sample_id", "aum"]
    assert final[1] == ["b", "1.0"] and sorted(final[2:]) == [["a", "-1.0"], ["c", "-1.0"]]


# ------------------------------------------------------------------ equal to the reference


@pytest.mark.parametrize("id_kind", ["int", "str", "sparse"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_equals_reference_library(tmp_path, rng, dtype, id_kind):
    # Not compressed: both files, every row's record.
    run_both(tmp_path, random_batches(rng, 15, 5, getattr(torch, dtype), id_kind), False)
    assert_same_files(tmp_path, False)


def test_equals_reference_library_compressed(tmp_path, rng):
    run_both(tmp_path, random_batches(rng, 15, 7, torch.float32, "int"), True)
    assert_same_files(tmp_path, True)
    assert not (tmp_path / "ours" / "full_aum_records.csv").exists()


def test_equals_reference_with_many_ties(tmp_path, rng):
    # Every AUM equal: the order of aum_values.csv is then all down to pandas' quicksort.
    ids = rng.permutation(500).tolist()
    run_both(tmp_path, [(torch.zeros(500, 3), torch.zeros(500, dtype=torch.long), ids)], True)
    assert_same_files(tmp_path, True)


def test_ids_switching_from_small_to_sparse(tmp_path, rng):
    # Small ids are table-indexed; a huge one later moves the index to a dict mid-run.
    batches = random_batches(rng, 6, 4, torch.float32, "int")
    batches.append((torch.randn(3, 4), torch.tensor([0, 1, 2]), [5, 10**15, -3]))
    batches += random_batches(rng, 6, 4, torch.float32, "int")
    run_both(tmp_path, batches, False)
    assert_same_files(tmp_path, False)


def test_one_row_batches(tmp_path, rng):
    # aum 1.0.2 crashes on one row; ours takes it. Same rows in two-row batches for the reference.
    aum = pytest.importorskip("aum")
    logits, targets, ids = random_batches(rng, 1, 6, torch.float32, "int", min_rows=20)[0]
    rows = len(ids) - len(ids) % 2
    theirs = aum.AUMCalculator(str(tmp_path / "aum"), compressed=False)
    ours = AUMCalculator(tmp_path / "ours", compressed=False)
    for a in range(0, rows, 2):
        theirs.update(logits[a : a + 2], targets[a : a + 2], ids[a : a + 2])
    for a in range(rows):
        (record,) = ours.update(logits[a : a + 1], targets[a : a + 1], ids[a : a + 1]).values()
        assert asdict(record) == asdict(ours.records[-1])
    assert [asdict(r) for r in ours.records] == [asdict(r) for r in theirs.records]
    theirs.finalize()
    ours.finalize()
    assert_same_files(tmp_path, False)


def test_switch_by_changing_one_import(tmp_path, rng):
    aum = pytest.importorskip("aum")
    for name in ("update", "finalize"):
        ours = list(inspect.signature(getattr(AUMCalculator, name)).parameters)
        assert ours == list(inspect.signature(getattr(aum.AUMCalculator, name)).parameters)
    assert list(inspect.signature(AUMCalculator).parameters) == ["save_dir", "compressed"]
    assert [f for f in AUMRecord.__dataclass_fields__] == list(aum.AUMRecord.__dataclass_fields__)

    def training_script(module, save_dir):  # user code written against the reference
        calc = module.AUMCalculator(save_dir, compressed=False)
        seen = []
        batches = random_batches(np.random.default_rng(7), 8, 4, torch.float32, "int")
        for logits, targets, ids in batches:
            records = calc.update(logits, targets, ids)
            seen += [(sid, r.aum, r.margin, r.num_measurements) for sid, r in records.items()]
        calc.finalize()
        return seen

    assert training_script(aum, str(tmp_path / "aum")) == training_script(
        aum_score, str(tmp_path / "ours")
    )
    assert_same_files(tmp_path, False)


# ------------------------------------------------------------------ inputs


class DlpackOnly:
    """An array exposing only the DLPack protocol (no __array__)."""

    def __init__(self, array):
        self._array = np.ascontiguousarray(array)

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class ArrayOnly:
    def __init__(self, array):
        self._array = np.asarray(array)

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def converters():
    yield "torch", lambda z, y, ids: (z, y, ids)
    yield "numpy", lambda z, y, ids: (z.numpy(), y.numpy(), np.array(ids))
    yield (
        "grad+tensor ids",
        lambda z, y, ids: (
            z.clone().requires_grad_(True) * 1.0,
            y,
            torch.tensor(ids),
        ),
    )
    yield (
        "dlpack",
        lambda z, y, ids: (
            DlpackOnly(z.numpy()),
            DlpackOnly(y.numpy()),
            DlpackOnly(np.array(ids)),
        ),
    )
    yield "__array__", lambda z, y, ids: (ArrayOnly(z), ArrayOnly(y), tuple(ids))
    yield "column targets", lambda z, y, ids: (z, y.view(-1, 1), np.array(ids)[:, None])
    if torch.cuda.is_available():
        yield "cuda", lambda z, y, ids: (z.cuda(), y.cuda(), torch.tensor(ids).cuda())


@pytest.mark.parametrize("name", [name for name, _ in converters()])
def test_input_kinds(tmp_path, rng, name):
    convert = dict(converters())[name]
    batches = random_batches(rng, 8, 5, torch.float32, "int")
    reference = AUMCalculator(tmp_path / "lists", compressed=False)
    ours = AUMCalculator(tmp_path / "other", compressed=False)
    for logits, targets, ids in batches:
        expected = reference.update(logits, targets, ids)
        assert ours.update(*convert(logits, targets, ids)) == expected
    reference.finalize()
    ours.finalize()
    for f in ("aum_values.csv", "full_aum_records.csv"):
        assert (tmp_path / "other" / f).read_bytes() == (tmp_path / "lists" / f).read_bytes()


def test_records_mapping_is_dict_like():
    calc = AUMCalculator(None)
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    records = calc.update(z, torch.tensor([0, 1, 0]), [9, 4, 9])
    assert len(records) == 2 and list(records) == [9, 4] and 9 in records and 5 not in records
    # A sample twice in the batch keeps its last row's record, with both margins counted.
    assert records[9] == AUMRecord(9, 2, 0, 2.0, 1, 0.0, 2.0, 1.5)
    assert dict(records) == {9: records[9], 4: records[4]}
    assert records[np.int64(4)].aum == 3.0  # numpy integer keys look up too
    with pytest.raises(KeyError):
        records[5]


def test_empty_batch_and_empty_finalize(tmp_path):
    calc = AUMCalculator(tmp_path, compressed=False)
    assert len(calc.update(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), [])) == 0
    calc.finalize()
    assert read_csv(tmp_path / "aum_values.csv") == [["sample_id", "aum"]]
    assert read_csv(tmp_path / "full_aum_records.csv") == [list(AUMRecord.__dataclass_fields__)]
    with pytest.raises(AttributeError):
        _ = AUMCalculator(tmp_path).records  # only kept when not compressed, as in the reference


def test_finalize_to_another_directory(tmp_path):
    calc = AUMCalculator(tmp_path / "first")
    calc.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), ["x"])
    calc.finalize(tmp_path / "second" / "nested")
    assert read_csv(tmp_path / "second" / "nested" / "aum_values.csv") == [
        ["sample_id", "aum"],
        ["x", "1.0"],
    ]
    with pytest.raises(ValueError, match="save_dir"):
        AUMCalculator(None).finalize()


@pytest.mark.parametrize(
    ("logits", "targets", "ids", "message"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], [0], [1, 2], "1 targets for 2 rows"),
        ([[1.0, 2.0]], [0], [1, 2], "2 sample ids for 1 rows"),
        ([[1.0, 2.0]], [2], [1], r"target 2 is outside \[0, 2\)"),
        ([[1.0, 2.0]], [0.5], [1], "integer class indices"),
        ([1.0, 2.0], [0], [1], "2-D"),
        ([[np.nan, 2.0]], [0], [7], "sample 7.*NaN or infinite"),
        ([[np.inf, 2.0]], [0], [7], "NaN or infinite"),
        ([[1.0, 2.0]], [0], [1.5], "integers or strings"),
        ([[1.0, 2.0]], [0], ["a"], "changed between integers and strings"),
    ],
)
def test_bad_input_leaves_the_calculator_unchanged(tmp_path, logits, targets, ids, message):
    calc = AUMCalculator(tmp_path)
    calc.update(np.array([[0.0, 1.0]]), np.array([1]), [1])
    with pytest.raises(LogFormatError, match=message):
        calc.update(np.array(logits), np.array(targets), ids)
    calc.finalize()
    assert read_csv(tmp_path / "aum_values.csv")[1:] == [["1", "1.0"]]


def test_core_sums_match_the_records_over_a_long_run(rng):
    # finalize reads the C++ core's sums; update's records come from the running mirror.
    calc = AUMCalculator(None)
    last = {}
    for logits, targets, ids in random_batches(rng, 200, 10, torch.float32, "int", max_id=300):
        last.update({k: r.aum for k, r in calc.update(logits, targets, ids).items()})
    ids, aums = calc.aum_values()
    assert dict(zip(ids.tolist(), aums.tolist())) == last
    assert np.all(np.diff(aums) <= 0)
