"""Where the streams' Delta tables live: a local directory, or a prefix of an S3 bucket.

Everything that touches segment files or table directories goes through ``Storage``, so
flush, compaction, retention, pruning and queries run unchanged on either. The WAL never
does: it stays on local disk (``data_dir/wal``) because its fsync is what an
acknowledgement waits for, and an object store has no fsync.

On S3 the pieces are the ones each library already has:

- deltalake (delta-rs) commits with conditional puts (``If-None-Match``): two writers can
  never both create commit N, so no rename lock or "unsafe rename" is needed;
- pyarrow's ``S3FileSystem`` writes segment files (a single PUT or multipart upload, so an
  object is either complete or absent) and reads them for compaction;
- DataFusion reads them through an ``AmazonS3`` object store registered per session;
- DuckDB (whose httpfs extension would be a download) scans them as a pyarrow dataset.

Endpoint, region and credentials come from settings, which fall back to the standard
``AWS_*`` environment variables (``Settings.load``).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from arrowlog.config import Settings
from arrowlog.errors import InvalidInput, StorageError
from arrowlog.wal import fsync_dir

__all__ = ["Storage"]

_STREAMS = "streams"


@dataclass(frozen=True)
class _S3:
    bucket: str
    prefix: str  # without leading or trailing slash; may be empty
    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None
    allow_http: bool


class Storage:
    """The root of every stream's table, and the filesystem calls made on it.

    URIs handed out and accepted: absolute local paths for local storage,
    ``s3://bucket/key`` for S3. ``Storage.from_settings`` is the only constructor callers use.
    """

    def __init__(self, root: str, s3: _S3 | None = None) -> None:
        self.root = root.rstrip("/")
        self._s3 = s3
        if s3 is None:
            self.filesystem: pafs.FileSystem = pafs.LocalFileSystem()
        else:
            endpoint = urlparse(s3.endpoint) if s3.endpoint else None
            self.filesystem = pafs.S3FileSystem(
                access_key=s3.access_key,
                secret_key=s3.secret_key,
                region=s3.region,
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
                # Streams are never created by creating "directories" on S3.
                allow_bucket_creation=False,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """Local ``data_dir/streams`` unless ``settings.storage`` names an ``s3://`` prefix."""
        if not settings.storage:
            return cls(str(Path(settings.data_dir).absolute() / _STREAMS))
        url = urlparse(settings.storage)
        if url.scheme != "s3" or not url.netloc:
            raise InvalidInput(
                f"storage must be an s3://bucket/prefix URL, got {settings.storage!r}"
            )
        prefix = url.path.strip("/")
        s3 = _S3(
            bucket=url.netloc,
            prefix=prefix,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key_id,
            secret_key=settings.s3_secret_access_key,
            allow_http=settings.s3_allow_http
            or bool(settings.s3_endpoint and settings.s3_endpoint.startswith("http://")),
        )
        base = f"s3://{url.netloc}/{prefix}" if prefix else f"s3://{url.netloc}"
        return cls(f"{base}/{_STREAMS}", s3)

    # -- naming ----------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self._s3 is None

    @property
    def base_url(self) -> str:
        """The storage root itself (the parent of ``streams/``): cluster records live here."""
        return self.root.rsplit("/", 1)[0]

    def table_uri(self, stream: str) -> str:
        return f"{self.root}/{stream}"

    @staticmethod
    def join(base: str, relpath: str) -> str:
        return f"{base.rstrip('/')}/{relpath}"

    @staticmethod
    def relative(base: str, uri: str) -> str:
        prefix = base.rstrip("/") + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not under {base}")
        return uri[len(prefix) :]

    def fs_path(self, uri: str) -> str:
        """The path pyarrow's filesystem takes for ``uri`` (S3: ``bucket/key``)."""
        return uri[len("s3://") :] if uri.startswith("s3://") else uri

    def uri(self, fs_path: str) -> str:
        """The inverse of ``fs_path``: the URI of a path pyarrow's filesystem returned."""
        return fs_path if self.is_local else f"s3://{fs_path}"

    def __repr__(self) -> str:
        return f"<Storage {self.root!r}>"

    # -- options for the engines -----------------------------------------------------------

    @property
    def delta_options(self) -> dict[str, str] | None:
        """deltalake ``storage_options`` (object_store keys); None for local tables."""
        s3 = self._s3
        if s3 is None:
            return None
        options = {"AWS_REGION": s3.region}
        if s3.endpoint:
            options["AWS_ENDPOINT_URL"] = s3.endpoint
        if s3.allow_http:
            options["AWS_ALLOW_HTTP"] = "true"
        if s3.access_key:
            options["AWS_ACCESS_KEY_ID"] = s3.access_key
        if s3.secret_key:
            options["AWS_SECRET_ACCESS_KEY"] = s3.secret_key
        return options

    def register(self, ctx: Any) -> None:
        """Let a DataFusion ``SessionContext`` read this storage's ``s3://`` URIs."""
        s3 = self._s3
        if s3 is None:
            return
        from datafusion.object_store import AmazonS3

        store = AmazonS3(
            bucket_name=s3.bucket,
            region=s3.region,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            endpoint=s3.endpoint,
            allow_http=s3.allow_http,
        )
        ctx.register_object_store("s3://", store, s3.bucket)

    def object_store(self, prefix: str = "") -> Any:
        """An obstore store over ``<storage root>/<prefix>``, for conditional writes (leases)."""
        s3 = self._s3
        if s3 is None:
            from obstore.store import LocalStore

            root = Path(self.base_url) / prefix
            root.mkdir(parents=True, exist_ok=True)
            return LocalStore(root)
        from obstore.store import S3Store

        key_prefix = "/".join(p for p in (s3.prefix, prefix.strip("/")) if p)
        kwargs: dict[str, Any] = {"region": s3.region}
        if s3.endpoint:
            kwargs["endpoint"] = s3.endpoint
        if s3.access_key:
            kwargs["access_key_id"] = s3.access_key
        if s3.secret_key:
            kwargs["secret_access_key"] = s3.secret_key
        return S3Store(
            s3.bucket,
            prefix=key_prefix or None,
            client_options={"allow_http": s3.allow_http},
            virtual_hosted_style_request=False,
            **kwargs,
        )

    # -- files -----------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        try:
            return self.filesystem.get_file_info(self.fs_path(uri)).type != pafs.FileType.NotFound
        except OSError as e:
            raise StorageError(f"could not reach {uri}: {e}") from e

    def list_tables(self) -> list[str]:
        """Names of the directories under the root that hold a Delta log (sorted)."""
        try:
            if self.is_local:
                root = Path(self.root)
                root.mkdir(parents=True, exist_ok=True)
                return sorted(p.name for p in root.iterdir() if (p / "_delta_log").is_dir())
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(self.fs_path(self.root), allow_not_found=True)
            )
            names = [i.base_name for i in infos if i.type == pafs.FileType.Directory]
            return sorted(n for n in names if self.exists(f"{self.table_uri(n)}/_delta_log"))
        except OSError as e:
            raise StorageError(f"could not list the streams under {self.root}: {e}") from e

    def write_bytes(self, uri: str, data: bytes, *, fsync: Any = os.fsync) -> int:
        """Write a whole file durably: fsynced (with its directory) locally, one PUT on S3."""
        if self.is_local:
            path = Path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                fsync(f.fileno())
            fsync_dir(path.parent)
            return len(data)
        with self.filesystem.open_output_stream(self.fs_path(uri)) as out:
            out.write(data)
        return len(data)

    def read_bytes(self, uri: str) -> bytes:
        with self.filesystem.open_input_stream(self.fs_path(uri)) as f:
            return f.read()

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(self.fs_path(uri))

    def write_json(self, uri: str, doc: dict[str, Any]) -> None:
        """Replace a small JSON document atomically (local: temp file + rename + fsync)."""
        data = json.dumps(doc).encode()
        if not self.is_local:
            self.write_bytes(uri, data)  # a PUT replaces the object atomically
            return
        path = Path(uri)
        tmp = path.with_suffix(".tmp")
        self.write_bytes(str(tmp), data)
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def read_json(self, uri: str) -> dict[str, Any]:
        return json.loads(self.read_bytes(uri))
