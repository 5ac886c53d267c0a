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

import os
import re
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from . import mapped_files
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


def open_input(path: str) -> pa.NativeFile:
    """A random-access file: memory-mapped for a local path, ranged reads for a URL."""
    if not is_remote(path):
        return mapped_files.open_mapped(path)[0]
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
