"""Where logs live: local paths (memory-mapped, the fast path) or URLs (``s3://``, ``gs://``,
``hdfs://``, anything a pyarrow filesystem or an fsspec implementation reads).

URLs are resolved with :meth:`pyarrow.fs.FileSystem.from_uri`; a scheme pyarrow does not know is
handed to fsspec (optional, imported only then) and wrapped as a pyarrow filesystem, so the rest
of the package reads every backend through one interface. Credentials, endpoints and regions come
from each backend's standard environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...) or from the
URL's query (``s3://bucket/logs/?endpoint_override=host:9000&region=eu-west-1``).

``file://`` URLs are local paths and keep memory-mapping.
"""

from __future__ import annotations

import mmap
import os
import queue
import re
import tempfile
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from .errors import LogFormatError

if TYPE_CHECKING:  # pyarrow.fs costs ~20 ms to import: only runs that use a URL pay it
    import pyarrow.fs as pafs

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
# Environment variables that change what a filesystem object connects to: part of the cache key,
# so a changed endpoint or credential is seen by the next call.
_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", "AZURE_", "HADOOP_", "ARROW_")
_filesystems: dict[tuple, tuple] = {}


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL read through a filesystem (not a local path or ``file://``)."""
    if not isinstance(path, str):
        return False
    match = _SCHEME.match(path)
    return bool(match) and match.group(1).lower() != "file"


def local_path(path: str | os.PathLike) -> str:
    """``path`` as a string, a ``file://`` URL turned into its local path."""
    path = os.fspath(path)
    if path[:7].lower() == "file://":
        return unquote(urlsplit(path).path)
    return path


def _env_key() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))


def filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that reads ``url`` and the path inside it. Filesystems are cached per
    scheme, bucket/host, query and backend environment: one client for all files of a log."""
    parts = urlsplit(url)
    key = (parts.scheme.lower(), parts.netloc, parts.query, _env_key())
    cached = _filesystems.get(key)
    if cached is None:
        cached = _filesystems[key] = _resolve(url)
        return cached
    fs = cached[0]
    if fs.type_name in ("s3", "gcs"):  # bucket/key, as from_uri gives it
        bucket = parts.netloc.rsplit("@", 1)[-1]
        return fs, "/".join(p for p in (bucket, unquote(parts.path).strip("/")) if p)
    return fs, _resolve(url)[1]


def _resolve(url: str) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(url)
        return fs, path.rstrip("/")
    except pa.ArrowInvalid as exc:
        if "nrecognized filesystem" not in str(exc) and "not supported" not in str(exc):
            raise LogFormatError(f"{url}: not a usable URL ({exc})") from None
    except (OSError, pa.ArrowException) as exc:
        raise LogFormatError(f"{url}: cannot open ({exc}){credentials_hint(url)}") from None
    scheme = urlsplit(url).scheme
    try:
        import fsspec
    except ImportError:
        raise LogFormatError(
            f"{url}: pyarrow has no filesystem for '{scheme}://'; install fsspec and its "
            f"'{scheme}' implementation (e.g. gcsfs, s3fs, adlfs) to read it"
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError, OSError) as exc:
        raise LogFormatError(f"{url}: cannot open with fsspec ({exc})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path.rstrip("/")


def credentials_hint(url: str) -> str:
    """A pointer to the configuration a failed remote access most likely needs."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("s3", "s3a"):
        return (
            "; check the bucket, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION and, for "
            "an S3-compatible server, AWS_ENDPOINT_URL"
        )
    if scheme in ("gs", "gcs"):
        return "; check the bucket and GOOGLE_APPLICATION_CREDENTIALS"
    return ""


def _access_error(url: str, exc: BaseException) -> LogFormatError:
    if isinstance(exc, FileNotFoundError):
        return LogFormatError(f"{url}: no such file or directory")
    return LogFormatError(f"{url}: cannot access ({exc}){credentials_hint(url)}")


def file_info(url: str) -> pafs.FileInfo:
    """What ``url`` is (file, directory, not found); access errors name the URL."""
    fs, path = filesystem(url)
    try:
        return fs.get_file_info(path)
    except (OSError, pa.ArrowException) as exc:
        raise _access_error(url, exc) from None


def list_files(url: str) -> list[tuple[str, str]]:
    """(URL, name) of the files directly in the directory (or prefix) ``url``."""
    import pyarrow.fs as pafs

    fs, path = filesystem(url)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except (OSError, pa.ArrowException) as exc:
        raise _access_error(url, exc) from None
    parts = urlsplit(url)
    base = url.split("?", 1)[0].rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return [
        (f"{base}/{info.base_name}{query}", info.base_name)
        for info in infos
        if info.type == pafs.FileType.File
    ]


def map_local(path: str) -> pa.NativeFile:
    """A local file, memory-mapped: record batches read from it are views of the mapping (see
    :func:`open_mapped`; the mapping goes away with the last buffer that uses it)."""
    return open_mapped(path)[0]


def open_mapped(path: str) -> tuple[pa.NativeFile, mmap.mmap | None]:
    """A local file, memory-mapped, and its mapping (None: read as a plain file).

    Mapped with Python's mmap and read through a BufferReader rather than ``pa.memory_map``:
    Arrow's memory-mapped file calls ``madvise(WILLNEED)`` on every range it reads, which on a
    warm cache only walks the page cache again (measured: 10% of the time to read a log of
    small rows). Cold files get their read-ahead from read_ahead.py instead. Files mmap refuses
    (empty, special) are read as plain files, and Arrow then reports what is wrong with them.
    Pass the mapping to :func:`close_when_unused` when done with the file."""
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            return pa.OSFile(path), None
    return pa.BufferReader(pa.py_buffer(mapped)), mapped


#: How long the closer waits for the last user of a mapping (a caller holding on to batches);
#: after that the mapping goes whenever that user lets go of it.
CLOSE_WAIT_SECONDS = 30.0
_closing: queue.SimpleQueue = queue.SimpleQueue()
_closer: threading.Thread | None = None
_closer_lock = threading.Lock()


def close_when_unused(mapping: mmap.mmap | None) -> None:
    """Unmap ``mapping`` on a helper thread as soon as no buffer uses it any more.

    Unmapping a file takes the kernel as long as a good part of reading it (every page-table
    entry is cleared; measured: 15-30% of scoring a warm log when done on the scorer's
    thread), and it does not need the scorer: the helper does it when a core is idle (at
    Linux's idle priority), overlapping the scoring or after it."""
    global _closer
    if mapping is None:
        return
    with _closer_lock:
        if _closer is None:
            # A daemon: a mapping still in use at exit must not hold the interpreter up.
            _closer = threading.Thread(target=_close_loop, name="aum-unmap", daemon=True)
            _closer.start()
    _closing.put((mapping, time.monotonic() + CLOSE_WAIT_SECONDS))


def _forget_closer() -> None:
    """In a forked child the helper thread does not exist: start another when needed."""
    global _closer, _closing, _closer_lock
    _closer, _closing, _closer_lock = None, queue.SimpleQueue(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_closer)


def _close_loop() -> None:
    # Only when a core is idle: when the scorer keeps every core busy, unmapping now would stall
    # its threads (a team waits for its slowest), and it can as well happen once they are done.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    pending: list[tuple[mmap.mmap, float]] = []
    while True:
        try:  # wait for work; while some is pending, look again every 2 ms
            pending.append(_closing.get(timeout=0.002 if pending else None))
        except queue.Empty:
            pass
        still = []
        for mapping, deadline in pending:
            try:
                mapping.close()  # raises while a buffer still uses the mapping
            except BufferError:
                if time.monotonic() < deadline:
                    still.append((mapping, deadline))
        pending = still


def open_input(path: str) -> pa.NativeFile:
    """A random-access file: memory-mapped for a local path, ranged reads for a URL."""
    if not is_remote(path):
        return map_local(path)
    fs, fs_path = filesystem(path)
    try:
        return fs.open_input_file(fs_path)
    except (OSError, pa.ArrowException) as exc:
        raise _access_error(path, exc) from None


def size(path: str) -> int:
    """Size in bytes of a local file or an object."""
    if not is_remote(path):
        return os.path.getsize(path)
    return int(file_info(path).size or 0)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of a local file or an object."""
    path = local_path(path)
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    with open_input(path) as f:
        try:
            return f.read()
        except (OSError, pa.ArrowException) as exc:
            raise _access_error(path, exc) from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` so that ``path`` is never seen half-written: a temporary file renamed into
    place locally; one upload for an object (an object store shows an object only once its
    upload completes, and nothing is sent before ``data`` is complete)."""
    path = local_path(path)
    if is_remote(path):
        if urlsplit(path).scheme.lower() in ("s3", "s3a") and "allow_delayed_open" not in path:
            # Delayed open sends an object smaller than one part as a single PutObject, not a
            # multipart upload: one request, and what S3-compatible servers support best.
            path_opts = path + ("&" if "?" in path else "?") + "allow_delayed_open=true"
            fs, fs_path = filesystem(path_opts)
            fs_path = fs_path.split("?", 1)[0]
        else:
            fs, fs_path = filesystem(path)
        try:
            with fs.open_output_stream(fs_path) as out:
                out.write(data)
        except (OSError, pa.ArrowException) as exc:
            raise _access_error(path, exc) from None
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def base_name(path: str) -> str:
    """The last component of a path or URL (query dropped)."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
