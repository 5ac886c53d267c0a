"""Logs, labels, results and states addressed by URL, against a real S3-compatible server (moto in
server mode on loopback, reached over HTTP by pyarrow's S3 client and boto3), and an fsspec-only
filesystem (``memory://``)."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reference as ref

import aum_score
from aum_score import LogFormatError, mapped_files
from aum_score.logs import open_log

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

# A server that stops answering fails the test, not the whole CI job, after 120 s.
pytestmark = pytest.mark.timeout(120, method="thread")

THRESHOLD = 4  # C = 5


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the server; the environment points every client at it, as a user's
    would (the standard AWS variables, nothing passed in code)."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3")
    bucket = f"aum-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def upload(client, bucket: str, directory: Path, prefix: str) -> None:
    for path in sorted(directory.iterdir()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


def make_log(tmp_path: Path, rng, fmt: str = "file", with_label: bool = True, id_kind="int"):
    """12 epochs named epoch_0 .. epoch_11 (the epoch is the natural-order position: epoch_10
    after epoch_9), a README to skip, and a labels file."""
    epochs = ref.make_epochs(rng, n_samples=50, num_classes=5, n_epochs=12, id_kind=id_kind)
    directory = tmp_path / "run"
    ref.write_log(directory, epochs, fmt=fmt, epoch_in="filename", with_label=with_label)
    (directory / "README.txt").write_text("not a log")
    ids, labels = ref.sample_labels(epochs)
    labels_path = ref.write_labels(tmp_path / "labels.parquet", ids, labels)
    return epochs, directory, labels_path


def assert_same_table(got: pa.Table, want: pa.Table) -> None:
    assert got.column("sample_id").to_pylist() == want.column("sample_id").to_pylist()
    for name in ("label", "count", "threshold_sample", "mislabeled"):
        assert got.column(name).to_pylist() == want.column(name).to_pylist()
    np.testing.assert_allclose(got.column("aum"), want.column("aum"), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["file", "stream", "parquet"])
def test_score_an_s3_prefix_equals_scoring_the_local_files(tmp_path, rng, s3, fmt):
    client, bucket = s3
    epochs, directory, labels_path = make_log(tmp_path, rng, fmt, with_label=False)
    upload(client, bucket, directory, "runs/run1")
    client.upload_file(str(labels_path), bucket, "labels.parquet")

    remote = aum_score.score(
        f"s3://{bucket}/runs/run1/",
        f"s3://{bucket}/labels.parquet",
        threshold_class=THRESHOLD,
    )
    local = aum_score.score(directory, labels_path, threshold_class=THRESHOLD)
    assert_same_table(remote.table, local.table)
    assert remote.monitor.equals(local.monitor)
    assert remote.monitor.column("epoch").to_pylist() == list(range(12))  # natural order
    ref.assert_matches_reference(remote.table, ref.rows_of(epochs))
    # One object by URL, and a list of URLs, read the same way.
    one = aum_score.score(f"s3://{bucket}/runs/run1/epoch_10{ref.FORMAT_EXT[fmt]}",
                          f"s3://{bucket}/labels.parquet")  # fmt: skip
    ref.assert_matches_reference(one.table, epochs[10])
    assert one.monitor.column("epoch").to_pylist() == [0]  # a lone file is epoch 0


def test_cli_reads_s3_and_writes_the_result_to_s3(tmp_path, rng, s3, cmd):
    client, bucket = s3
    epochs, directory, labels_path = make_log(tmp_path, rng, "file", id_kind="str")
    upload(client, bucket, directory, "run")
    ids, labels = ref.sample_labels(epochs)
    ref.write_labels(tmp_path / "labels.csv", ids, labels)
    client.upload_file(str(tmp_path / "labels.csv"), bucket, "labels.csv")

    out = f"s3://{bucket}/out/aum.parquet"
    labels_url = f"s3://{bucket}/labels.csv"
    run = cmd("score", f"s3://{bucket}/run", "--labels", labels_url, "--threshold-class",
              THRESHOLD, "-o", out, "-q")  # fmt: skip
    assert run.exit_code == 0, run
    client.download_file(bucket, "out/aum.parquet", str(tmp_path / "remote.parquet"))
    local = aum_score.score(directory, tmp_path / "labels.csv", threshold_class=THRESHOLD)
    assert_same_table(pq.read_table(tmp_path / "remote.parquet"), local.table)
    # file:// URLs are local paths.
    run = cmd("score", directory.as_uri(), "--threshold-class", THRESHOLD, "--json")
    assert run.exit_code == 0, run
    assert f'"samples": {local.summary.samples}' in run.stdout


def test_state_on_s3_resumes_with_new_epochs(tmp_path, rng, s3):
    client, bucket = s3
    epochs = ref.make_epochs(rng, n_samples=40, num_classes=5, n_epochs=6)
    ref.write_log(tmp_path / "old", {e: epochs[e] for e in range(3)}, fmt="parquet")
    ref.write_log(tmp_path / "new", {e: epochs[e] for e in range(3, 6)}, fmt="parquet")
    ref.write_log(tmp_path / "all", epochs, fmt="parquet")
    upload(client, bucket, tmp_path / "old", "old")
    upload(client, bucket, tmp_path / "new", "new")
    state = f"s3://{bucket}/states/run.aumstate"
    aum_score.score(f"s3://{bucket}/old/", threshold_class=THRESHOLD, save_state=state)
    client.delete_objects(  # the old epochs are gone from the bucket: not needed to resume
        Bucket=bucket, Delete={"Objects": [{"Key": f"old/epoch_{e}.parquet"} for e in range(3)]}
    )
    resumed = aum_score.score(f"s3://{bucket}/new/", state=state, save_state=state)
    whole = aum_score.score(tmp_path / "all", threshold_class=THRESHOLD)
    assert_same_table(resumed.table, whole.table)
    with pytest.raises(LogFormatError, match=r"s3://.*/new/epoch_3\.parquet: already scored"):
        aum_score.score(f"s3://{bucket}/new/", state=state)


def test_missing_bucket_key_or_logs_name_the_url(tmp_path, rng, s3, cli):
    client, bucket = s3
    _, directory, _ = make_log(tmp_path, rng)
    upload(client, bucket, directory, "run")
    cases = {
        "s3://no-such-bucket-here/run/": "no such file or directory",
        f"s3://{bucket}/missing/": "no such file or directory",
        f"s3://{bucket}/run/epoch_99.arrow": "no such file or directory",
    }
    for url, message in cases.items():
        with pytest.raises(LogFormatError, match=f"^{url}: {message}"):
            aum_score.score(url)
    client.put_object(Bucket=bucket, Key="docs/README.txt", Body=b"hello")
    with pytest.raises(LogFormatError, match=f"^s3://{bucket}/docs/: no log files"):
        aum_score.score(f"s3://{bucket}/docs/")
    # A corrupt object: the same message as for a local file, naming the URL.
    data = (directory / "epoch_3.arrow").read_bytes()
    client.put_object(Bucket=bucket, Key="run/epoch_3.arrow", Body=data[: len(data) // 2])
    with pytest.raises(LogFormatError, match=rf"^s3://{bucket}/run/epoch_3\.arrow: "):
        aum_score.score(f"s3://{bucket}/run/")
    with pytest.raises(LogFormatError, match=f"^s3://{bucket}/nolabels.csv: no such file"):
        aum_score.score(directory, f"s3://{bucket}/nolabels.csv")
    run = cli("score", f"s3://{bucket}/missing/")
    assert run.exit_code == 1 and f"Error: s3://{bucket}/missing/: no such" in run.stderr
    assert "Traceback" not in run.output


def _set_auth(endpoint: str, after: str) -> None:
    """moto's server API: authenticate requests (against its IAM) after ``after`` more."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=after.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request).read()


def test_bad_credentials_give_one_clear_error(tmp_path, rng, s3, s3_endpoint, monkeypatch, cli):
    client, bucket = s3
    _, directory, _ = make_log(tmp_path, rng)
    upload(client, bucket, directory, "run")
    _set_auth(s3_endpoint, "0")
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        with pytest.raises(LogFormatError, match=rf"^s3://{bucket}/run/: cannot access .*"
                           r"ACCESS_DENIED.*AWS_ACCESS_KEY_ID"):  # fmt: skip
            aum_score.score(f"s3://{bucket}/run/")
        run = cli("score", f"s3://{bucket}/run/")
        assert run.exit_code == 1, run
        assert run.stderr.startswith(f"Error: s3://{bucket}/run/: cannot access")
        assert "Traceback" not in run.output
    finally:
        _set_auth(s3_endpoint, "inf")


def test_fsspec_filesystem_without_a_pyarrow_one(tmp_path, rng):
    """``memory://`` is known to fsspec only: it is wrapped as a pyarrow filesystem."""
    fsspec = pytest.importorskip("fsspec")
    epochs, directory, labels_path = make_log(tmp_path, rng, "stream")
    memory = fsspec.filesystem("memory")
    for path in directory.iterdir():
        memory.pipe(f"/aum-test/run/{path.name}", path.read_bytes())
    memory.pipe("/aum-test/labels.parquet", labels_path.read_bytes())
    try:
        remote = aum_score.score("memory://aum-test/run", "memory://aum-test/labels.parquet")
    finally:
        memory.rm("/aum-test", recursive=True)
    local = aum_score.score(directory, labels_path)
    assert_same_table(remote.table, local.table)
    ref.assert_matches_reference(remote.table, ref.rows_of(epochs))


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(LogFormatError, match=r"^nosuchscheme://x/y: .*nosuchscheme"):
        aum_score.score("nosuchscheme://x/y")


def test_local_paths_stay_memory_mapped(tmp_path, rng, monkeypatch):
    """Local logs are memory-mapped (zero-copy: no batch is copied into Arrow's memory), not
    read through a filesystem object."""
    _, directory, _ = make_log(tmp_path, rng)
    opened = []
    real = mapped_files.open_mapped
    monkeypatch.setattr(mapped_files, "open_mapped", lambda path: opened.append(path) or real(path))
    aum_score.score(directory)
    assert len(opened) >= 12 and all(Path(p).parent == directory for p in opened)
    log = open_log(directory)[0]
    before = pa.total_allocated_bytes()
    batches = list(log.batches())
    assert sum(b.nbytes for b in batches) > 1000
    assert pa.total_allocated_bytes() == before
