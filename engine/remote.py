"""Remote sources: Parquet, CSV and Arrow IPC objects in ADLS Gen2 / Blob Storage.

URIs name a container, a storage account and a path; globs and "directories" (prefixes)
expand to the objects below them, in name order::

    abfss://sales@contoso.dfs.core.windows.net/2026/*.parquet
    abfs://sales@contoso.dfs.core.windows.net/2026/          (a directory, recursively)
    az://sales/2026/month=01/part-0.parquet                  (account from the options)
    abfss://sales@contoso.dfs.core.usgovcloudapi.net/...     (sovereign clouds by host)

Objects are read through Microsoft's ``azure-storage-blob`` SDK with an azure-identity
credential, the same kinds the database login uses (managed identity, workload identity,
service principal, Azure CLI, DefaultAzureCredential); no account key or SAS is needed
or accepted. Reading streams: Arrow asks for byte ranges (a Parquet footer, then the
projected column chunks of one row group at a time) and each range is one HTTP request,
so a file never lands on local disk.

Every object's ETag is captured when the source is expanded. It goes into the source
fingerprint (hence the default ``load_id``) and into the batch ids, and every range
request carries ``If-Match`` with it: an object replaced or deleted while a load reads it
fails that read with :class:`ObjectChangedError` instead of mixing two versions.

The blob endpoint comes from the URI's host (``<account>.dfs.<suffix>`` is read through
``<account>.blob.<suffix>``, which serves the same data on hierarchical-namespace
accounts); ``StorageOptions.endpoint`` (or ``$AZSQL_BULK_STORAGE_ENDPOINT``) overrides it,
e.g. ``https://127.0.0.1:10000/{account}`` for Azurite or a private endpoint.

>>> parse_uri("abfss://sales@contoso.dfs.core.windows.net/2026/*.parquet").blob_endpoint()
'https://contoso.blob.core.windows.net'
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from engine.credentials import CredentialKind, CredentialOptions, build_credential
from engine.errors import ConfigurationError, CredentialError, ObjectChangedError, SourceError
from engine.remote_uri import (
    ENV_ACCOUNT,
    GLOB_CHARS,
    ObjectUri,
    glob_regex,
    parse_uri,
)

__all__ = ["RemoteFiles", "RemoteObject", "StorageOptions", "storage_for"]

STORAGE_SCOPE = "https://storage.azure.com/.default"  # the same in every Azure cloud
ENV_ENDPOINT = "AZSQL_BULK_STORAGE_ENDPOINT"
ENV_STORAGE_AUTH = "AZSQL_BULK_STORAGE_AUTH"


@dataclass(frozen=True)
class StorageOptions:
    """How to reach storage: identity, account and endpoint. Defaults suit Azure.

    :param credential: the identity, as for the database login; None reads
        ``$AZSQL_BULK_STORAGE_AUTH`` or ``$AZSQL_BULK_AUTH`` (with ``$AZSQL_BULK_CLIENT_ID``,
        ``_TENANT_ID``, ``_CLOUD``, ``_AUTHORITY_HOST``), else DefaultAzureCredential.
        ``sql`` and ``access-token`` logins have no storage identity and fall back to
        DefaultAzureCredential.
    :param token_credential: an azure-identity credential object to use as is (wins over
        ``credential``), e.g. one an Airflow hook already built.
    :param account: the account for URIs that do not name one (``az://container/path``);
        default ``$AZSQL_BULK_STORAGE_ACCOUNT``.
    :param endpoint: the Blob service URL, ``{account}`` replaced by the account
        (Azurite: ``https://127.0.0.1:10000/{account}``); default
        ``$AZSQL_BULK_STORAGE_ENDPOINT``, else ``https://<account>.blob.<suffix>`` from the URI.
    :param max_concurrency: parallel requests for one large range read.
    :param connection_verify: a CA bundle path for the storage endpoint (default: the
        system's, or ``$REQUESTS_CA_BUNDLE``).

    >>> StorageOptions(credential=CredentialOptions(kind="managed-identity")).account
    """

    credential: CredentialOptions | None = None
    token_credential: Any = field(default=None, repr=False, compare=False)
    account: str | None = None
    endpoint: str | None = None
    max_concurrency: int = 4
    connection_verify: str | None = None

    def resolved(self) -> StorageOptions:
        """These options with the environment's defaults filled in."""
        return StorageOptions(
            credential=self.credential or _credential_from_env(),
            token_credential=self.token_credential,
            account=self.account or os.environ.get(ENV_ACCOUNT) or None,
            endpoint=self.endpoint or os.environ.get(ENV_ENDPOINT) or None,
            max_concurrency=self.max_concurrency,
            connection_verify=self.connection_verify)


def storage_for(credential: CredentialOptions | None) -> StorageOptions | None:
    """Storage options that read objects with the database login's identity.

    :param credential: the login's credential options.
    :returns: None for logins without an Entra identity (``sql``, ``access-token``) or
        no credential, so storage falls back to its own settings (see
        :class:`StorageOptions`).

    >>> storage_for(CredentialOptions(kind="managed-identity")).credential.kind.value
    'managed-identity'
    >>> storage_for(CredentialOptions(kind="sql", sql_user="sa")) is None
    True
    """
    if credential is None:
        return None
    kind = CredentialKind(credential.kind)
    if kind in (CredentialKind.SQL, CredentialKind.ACCESS_TOKEN):
        return None
    return StorageOptions(credential=credential)


def _credential_from_env() -> CredentialOptions:
    kind = os.environ.get(ENV_STORAGE_AUTH) or os.environ.get("AZSQL_BULK_AUTH") or "default"
    if kind in (CredentialKind.SQL, CredentialKind.ACCESS_TOKEN):
        kind = CredentialKind.DEFAULT
    authority = os.environ.get("AZSQL_BULK_AUTHORITY_HOST") or None
    return CredentialOptions(
        kind=kind, client_id=os.environ.get("AZSQL_BULK_CLIENT_ID") or None,
        tenant_id=os.environ.get("AZSQL_BULK_TENANT_ID") or None,
        cloud=os.environ.get("AZSQL_BULK_CLOUD") or "public", authority_host=authority,
        disable_instance_discovery=bool(authority))


@dataclass(frozen=True)
class RemoteObject:
    """One object of a source, as listed: its canonical URI, size and version.

    :param uri: canonical ``abfss://`` URI (what batch ids and messages show).
    :param endpoint: the Blob service URL it is read from.
    :param container: its container.
    :param name: its name inside the container.
    :param size: bytes.
    :param etag: the version captured when the source was opened.
    """

    uri: str
    endpoint: str
    container: str
    name: str
    size: int
    etag: str

    @property
    def version(self) -> str:
        """The ETag without quotes, as it appears in batch ids."""
        return self.etag.strip('"')


class RemoteFiles:
    """Expands storage URIs to objects and opens them as streaming Arrow files.

    One instance serves one opened source: it keeps the ETag of every object it listed,
    and one Blob service client per endpoint (their HTTP connections are pooled).

    :param options: identity, account and endpoint (None: from the environment).
    """

    def __init__(self, options: StorageOptions | None = None) -> None:
        self._given = options
        self._options: StorageOptions | None = None
        self._objects: dict[str, RemoteObject] = {}
        self._clients: dict[str, Any] = {}
        self._tails: dict[str, _Tail] = {}
        self._credential: Any = None
        self._lock = threading.Lock()

    # -- what sources.py asks -------------------------------------------------------------

    def owns(self, path: str) -> bool:
        """True when ``path`` is an object this instance listed."""
        return path in self._objects

    def expand(self, text: str, suffixes: frozenset[str] | set[str]) -> list[str]:
        """The canonical URIs of the objects ``text`` names, in name order.

        An exact object name gives that object; a glob (``*``, ``?``, ``[...]``, ``**``
        across ``/``) the matching objects; a prefix ending in ``/`` (or one that is not
        an object) every object below it whose suffix is one of ``suffixes``.

        :raises ConfigurationError: nothing matches, or the container does not exist.
        :raises SourceError: storage refused or could not be reached.
        """
        options = self.options
        uri = parse_uri(text, account=options.account).with_account(options.account)
        uri = replace(uri, bare=bool(options.endpoint))
        endpoint = uri.blob_endpoint(options.endpoint)
        container = self._container(endpoint, uri)
        if GLOB_CHARS.search(uri.path):
            found = self._glob(container, uri, endpoint)
            if not found:
                raise ConfigurationError(f"no objects match {uri.display()}")
            return found
        if uri.path and not uri.path.endswith("/"):
            exact = self._stat(container, uri, endpoint)
            if exact is not None:
                return [exact]
        prefix = uri.path if not uri.path or uri.path.endswith("/") else uri.path + "/"
        found = [self._remember(uri, endpoint, blob)
                 for blob in self._list(container, uri, prefix, endpoint)
                 if os.path.splitext(blob.name)[1].lower() in suffixes]
        if not found:
            what = "holds no Parquet, CSV or Arrow objects" if self._any(container, prefix) \
                else "does not exist"
            raise ConfigurationError(
                f"{uri.display()} {what} (looked for an object of that name and for "
                f"objects under {uri.display(prefix)}); check the path, or list it with "
                f"`az storage fs file list -f {uri.container} --account-name {uri.account} "
                f"--path {prefix or '/'} --auth-mode login`")
        return found

    def identity(self, path: str) -> str:
        """What identifies an object for the fingerprint: URI, size and ETag."""
        obj = self._objects[path]
        return f"{obj.uri}|{obj.size}|{obj.etag}"

    def label(self, path: str) -> str:
        """The name batch ids are built from: the URI and its version."""
        obj = self._objects[path]
        return f"{obj.uri}@{obj.version}"

    def open(self, path: str) -> pa.NativeFile:
        """A seekable Arrow file reading ``path`` by ranges, pinned to its listed ETag."""
        obj = self._objects[path]
        blob = self._client(obj.endpoint).get_blob_client(obj.container, obj.name)
        tail = self._tails.setdefault(path, _Tail())
        return pa.PythonFile(_BlobReader(blob, obj, self.options.max_concurrency, tail),
                             mode="r")

    def object(self, path: str) -> RemoteObject:
        """What was listed for ``path``."""
        return self._objects[path]

    def upload(self, text: str, data: bytes) -> str:
        """Write ``data`` to the object ``text`` names (replacing it); returns its URI.

        :raises SourceError: storage refused the write or could not be reached (the
            message names the object and what to do, e.g. the missing role).
        """
        options = self.options
        uri = parse_uri(text, account=options.account).with_account(options.account)
        uri = replace(uri, bare=bool(options.endpoint))
        endpoint = uri.blob_endpoint(options.endpoint)
        blob = self._container(endpoint, uri).get_blob_client(uri.path)
        _call(lambda: blob.upload_blob(data, overwrite=True), uri, endpoint)
        return uri.display()

    def close(self) -> None:
        """Close the HTTP connection pools."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- internals ------------------------------------------------------------------------

    @property
    def options(self) -> StorageOptions:
        if self._options is None:
            self._options = (self._given or StorageOptions()).resolved()
        return self._options

    def _client(self, endpoint: str) -> Any:
        from azure.storage.blob import BlobServiceClient

        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                options = self.options
                if self._credential is None:
                    self._credential = options.token_credential or _token_credential(
                        options.credential)
                extra: dict[str, Any] = {}
                if options.connection_verify:
                    extra["connection_verify"] = options.connection_verify
                # The SDK's defaults (a range up to 32 MiB in one GET, larger ones in
                # 4 MiB chunks) measured fastest for row-group-sized reads.
                client = BlobServiceClient(endpoint, credential=self._credential, **extra)
                self._clients[endpoint] = client
            return client

    def _container(self, endpoint: str, uri: ObjectUri) -> Any:
        return self._client(endpoint).get_container_client(uri.container)

    def _remember(self, uri: ObjectUri, endpoint: str, blob: Any) -> str:
        obj = RemoteObject(uri.display(blob.name), endpoint, uri.container, blob.name,
                           int(blob.size), str(blob.etag))
        self._objects[obj.uri] = obj
        return obj.uri

    def _stat(self, container: Any, uri: ObjectUri, endpoint: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = _call(lambda: container.get_blob_client(uri.path).get_blob_properties(),
                          uri, endpoint)
        except ResourceNotFoundError:
            return None
        if (props.metadata or {}).get("hdi_isfolder") == "true":
            return None  # an ADLS Gen2 directory: list what is under it
        props.name = uri.path
        return self._remember(uri, endpoint, props)

    def _list(self, container: Any, uri: ObjectUri, prefix: str,
              endpoint: str = "") -> Iterator[Any]:
        blobs = _call(lambda: list(container.list_blobs(name_starts_with=prefix or None,
                                                        include=["metadata"])), uri, endpoint)
        for blob in blobs:
            if (blob.metadata or {}).get("hdi_isfolder") == "true":
                continue
            if blob.name.endswith("/") and not blob.size:
                continue  # a placeholder "directory" blob
            yield blob

    def _any(self, container: Any, prefix: str) -> bool:
        return next(iter(container.list_blobs(name_starts_with=prefix or None,
                                              results_per_page=1)), None) is not None

    def _glob(self, container: Any, uri: ObjectUri, endpoint: str) -> list[str]:
        literal = uri.path[:GLOB_CHARS.search(uri.path).start()]  # type: ignore[union-attr]
        pattern = glob_regex(uri.path)
        return [self._remember(uri, endpoint, blob)
                for blob in self._list(container, uri, literal, endpoint)
                if pattern.fullmatch(blob.name)]


def _token_credential(options: CredentialOptions | None) -> Any:
    if options is None:
        options = CredentialOptions()
    if CredentialKind(options.kind) in (CredentialKind.SQL, CredentialKind.ACCESS_TOKEN):
        raise ConfigurationError(
            f"credential kind {options.kind} cannot read storage (it holds no Entra identity "
            "that can ask for a storage token); use managed-identity, workload-identity, "
            "service-principal, azure-cli or default for StorageOptions.credential")
    return build_credential(options)


def _call(fn: Any, uri: ObjectUri, endpoint: str) -> Any:
    """Run one storage call, turning SDK failures into errors that say what to do."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        return fn()
    except ResourceNotFoundError as exc:
        if _code(exc) == "ContainerNotFound":
            raise ConfigurationError(
                f"container {uri.container!r} does not exist in storage account "
                f"{uri.account!r} ({uri.display('')}); check the name in the URI (it is the "
                "part before '@'), or create it") from None
        if _code(exc) in ("ResourceNotFound", "AccountNotFound"):
            raise ConfigurationError(
                f"storage account {uri.account!r} was not found at "
                f"{endpoint or 'its endpoint'}; check the account name, or the endpoint "
                f"override (${ENV_ENDPOINT})") from None
        raise
    except ClientAuthenticationError as exc:
        raise CredentialError(
            f"storage refused the identity for {uri.display()}: {_first_line(exc)}; grant it "
            "'Storage Blob Data Reader' on the account or container (role assignments can "
            "take minutes to apply)") from None
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise CredentialError(
                f"storage refused access to {uri.display()} ({_code(exc) or 'HTTP 403'}): "
                "grant the identity 'Storage Blob Data Reader' on the account or container, "
                "and check the account's network rules") from None
        raise SourceError(f"storage failed for {uri.display()}: {_first_line(exc)}") from None
    except ServiceRequestError as exc:
        raise SourceError(
            f"cannot reach the storage endpoint {endpoint or 'for ' + uri.display()}: "
            f"{_first_line(exc)}; check the account name and the network, or set "
            f"${ENV_ENDPOINT} (e.g. https://127.0.0.1:10000/{{account}} for Azurite)") from None


def _code(exc: Any) -> str:
    return str(getattr(exc, "error_code", None) or "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_TAIL_LIMIT = 1 << 20


@dataclass
class _Tail:
    """The object's last bytes as first read (a Parquet footer), for later opens to reuse.

    A source opens each Parquet object up to three times (schema, row count, rows); the
    footer is fetched once. The bytes were read with ``If-Match``, so they belong to the
    version the load pinned.
    """

    #: (offset, bytes up to the end of the object), replaced as one value
    span: tuple[int, bytes] | None = None


class _BlobReader(io.RawIOBase):
    """A seekable raw file over one blob; every read is a ranged GET with ``If-Match``."""

    def __init__(self, blob: Any, obj: RemoteObject, max_concurrency: int,
                 tail: _Tail | None = None) -> None:
        super().__init__()
        self._blob, self._obj, self._concurrency = blob, obj, max_concurrency
        self._tail = tail or _Tail()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self._obj.size if size is None or size < 0 else min(self._obj.size,
                                                                   self._pos + size)
        if end <= self._pos:
            return b""
        span = self._tail.span
        if span is not None and span[0] <= self._pos:
            data = span[1][self._pos - span[0]:end - span[0]]
        else:
            data = self._download(self._pos, end - self._pos)
            if end == self._obj.size and len(data) <= _TAIL_LIMIT:
                self._tail.span = (self._pos, data)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)

    def _download(self, offset: int, length: int) -> bytes:
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        obj = self._obj
        try:
            stream = self._blob.download_blob(offset=offset, length=length, etag=obj.etag,
                                              match_condition=MatchConditions.IfNotModified,
                                              max_concurrency=self._concurrency)
            return bytes(stream.readall())
        except ResourceNotFoundError:
            raise ObjectChangedError(
                f"{obj.uri} was deleted while it was being loaded (version {obj.version}); "
                "restore it, or re-run the load without it") from None
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise ObjectChangedError(_changed_message(obj, self._blob)) from None
            raise SourceError(f"cannot read {obj.uri} at byte {offset}: {_first_line(exc)}"
                              ) from None


def _changed_message(obj: RemoteObject, blob: Any) -> str:
    try:
        now = str(blob.get_blob_properties().etag).strip('"')
    except Exception:  # the message is what matters; the new version is a bonus
        now = "unknown"
    return (f"{obj.uri} changed while it was being loaded: it was version {obj.version} when "
            f"the load started and is now {now}, so its remaining batches were not read. "
            "Stop whatever rewrites it during loads. Batch ids name the version: running "
            "again reads the new version in full, and rows already committed from the old "
            "one stay (in the target for append, in the stage for replace/upsert); to load "
            "only the new version, delete those rows or start over with a new load_id")
