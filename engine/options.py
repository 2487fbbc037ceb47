"""What a transfer loads into (:class:`Target`) and how (:class:`TransferOptions`).

>>> TransferOptions(workers=2).mode
<Mode.APPEND: 'append'>
>>> TransferOptions(mode="upsert")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engine.errors.ConfigurationError: mode='upsert' needs keys: ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from engine.connection import ConnectionOptions
from engine.errors import ConfigurationError
from engine.names import TableName
from engine.remote_uri import is_remote
from engine.results import Progress
from engine.type_map import SqlType

__all__ = ["AUTO_BULK_MIN_ROWS", "BULK_ONLY_OPTIONS", "CREATE_POLICIES", "MODES",
           "TRANSPORTS", "CreatePolicy", "Mode", "Target", "TransferOptions", "TransportKind"]


class Mode(StrEnum):
    """How a load writes its rows (see :mod:`engine.staging`)."""

    APPEND = "append"    # journaled inserts into the target
    REPLACE = "replace"  # stage, then swap the rows in with one transaction
    UPSERT = "upsert"    # stage, then one MERGE on the keys


class CreatePolicy(StrEnum):
    """What to do about the target table's existence and shape."""

    IF_MISSING = "if_missing"          # create it from the source's schema when missing
    NEVER = "never"                    # it must exist
    REPLACE_SCHEMA = "replace_schema"  # (replace only) drop and recreate it from the source


class TransportKind(StrEnum):
    """How rows travel to the server (see :mod:`engine.transport`)."""

    AUTO = "auto"                          # bulk copy where it is proven and pays, else arrays
    PARAMETER_ARRAYS = "parameter-arrays"  # one INSERT RPC per row (turbodbc parameter arrays)
    BULK_COPY = "bulk-copy"                # TDS bulk load through the driver's bcp API


MODES = tuple(m.value for m in Mode)
TRANSPORTS = tuple(t.value for t in TransportKind)
CREATE_POLICIES = tuple(c.value for c in CreatePolicy)


@dataclass(frozen=True)
class Target:
    """Where rows go: a database (how to connect) and a ``schema.table`` in it.

    :param connection: server, database, credential and connection settings.
    :param table: ``schema.table`` (``table`` alone means ``dbo``; brackets allowed).

    >>> from engine.connection import ConnectionOptions
    >>> Target(ConnectionOptions("srv", "db"), "sales").describe()
    'srv,1433/db/dbo.sales'
    """

    connection: ConnectionOptions
    table: TableName

    def __post_init__(self) -> None:
        # text is parsed once here (fails early on a malformed name)
        object.__setattr__(self, "table", TableName.parse(self.table))

    @property
    def qualified(self) -> str:
        """``schema.table`` as written in the journal and in messages."""
        return str(self.table)

    def describe(self) -> str:
        """``server,port/database/schema.table``: identifies the target in the default load id."""
        c = self.connection
        return f"{c.server},{c.port}/{c.database}/{self.table}"


# With 50,000-row batches of wide text rows, 2 x workers batches read ahead can reach
# gigabytes; the default ceiling keeps a default load inside a small Airflow worker.
DEFAULT_MAX_MEMORY_BYTES = 512 * 2**20
#: ``transport="auto"`` bulk-copies batches of at least this many rows. Each bulk batch
#: pays three more round trips than parameter arrays (``sp_describe_first_result_set``,
#: ``insert bulk``, ``@@TRANCOUNT``). Against the emulator on loopback the two were about
#: even from 300 to 5,000 rows per batch, and bulk copy ahead from 10,000; at 1 ms per
#: round trip, 3,000 rows is where the extra trips (~1 us per row) meet bulk copy's
#: per-row saving (0.6-1.3 us measured): ``benchmarks/README.md``, transport.py's sweep
AUTO_BULK_MIN_ROWS = 3_000
#: the options that only bulk copy honours (they become bcp hints)
BULK_ONLY_OPTIONS = ("table_lock", "check_constraints", "fire_triggers", "order")

# why neither the CLI nor the operator offers the retry delays (see engine.option_spec)
_BACKOFF_IS_TUNED = dict.fromkeys(("cli", "airflow"), "the backoff is tuned for Azure SQL's "
                                  "transient errors; max_retries bounds it")


@dataclass(frozen=True)
class TransferOptions:
    """How to load. Defaults are meant for Azure SQL Database.

    :param workers: parallel connections, each inserting its own batches.
    :param mode: ``append`` (journaled inserts into the target), ``replace`` (load a
        staging table, then swap its rows in with one transaction) or ``upsert`` (load a
        staging table, then one ``MERGE`` on ``keys``). See :mod:`engine.staging`.
    :param keys: the columns that identify a row, for ``upsert``.
    :param create: ``if_missing`` (create the table from the source's schema, sized from
        the first batch), ``never`` (the table must exist) or ``replace_schema`` (with
        ``mode="replace"`` only: the table is dropped and recreated from the source's
        schema, in the same transaction that swaps the new rows in).
    :param sql_types: per-column SQL type overrides, e.g. ``{"price": "decimal(18,2)"}``,
        by target column name.
    :param load_id: the load's journal id (default: sha256 of the source fingerprint and
        the target, 32 hex digits; see :func:`engine.journal.default_load_id`).
    :param resume: skip batches already journaled for ``load_id``. With False, a load id
        that already has journal rows is an error (nothing is sent).
    :param token_refresh_margin: seconds; before each batch a worker whose login token
        expires within this margin reconnects with a fresh token.
    :param max_retries: replays of one batch after transient errors before giving up.
    :param retry_base_delay: first backoff ceiling in seconds (doubling, full jitter).
    :param retry_max_delay: largest single backoff, in seconds.
    :param transport: ``auto`` (bulk copy where the server proves it transactional and
        batches are large enough to pay for its set-up, else parameter arrays; see
        :mod:`engine.transport_choice`), ``parameter-arrays`` (one INSERT RPC per row) or
        ``bulk-copy`` (TDS bulk load through the driver's ``bcp_*`` API, see
        :mod:`engine.bulk_copy`).
    :param table_lock: bulk copy only: take a table lock for the load (bcp's TABLOCK).
    :param check_constraints: bulk copy only: check CHECK and FOREIGN KEY constraints (off,
        as in bcp: the server then marks those constraints untrusted).
    :param fire_triggers: bulk copy only: fire the table's INSERT triggers (off, as in bcp).
    :param order: bulk copy only: the columns the source is sorted by, matching the
        target's clustered index (bcp's ORDER hint; the server checks it).
    :param nan_as_null: write NaN and ±Inf as NULL instead of failing.
    :param max_memory_bytes: a ceiling on the Arrow bytes of the batches read ahead and
        in flight (default 512 MiB; at most ``2 * workers`` batches are read ahead in any
        case; None: no byte ceiling). A single batch larger than the ceiling is still
        loaded, alone. The process's memory also holds, outside the ceiling: per worker
        one cast batch (its Arrow copy, and with parameter arrays turbodbc's buffers,
        text at ``2 * (1.2 * longest + 1)`` bytes a value); one Parquet row group as read
        and as decoded; one batch (the one the reader holds while it waits for room);
        and what the memory allocators keep of freed buffers (15-22 MiB measured). The
        engine hands the Arrow pool's freed pages back after every batch. That holds
        only without transparent huge pages: pyarrow's allocator (mimalloc) asks for
        them, and what it frees inside a 2 MiB huge page stays resident (26-46 MiB of
        huge pages at the peak; 2 workers went over the sum). The ``azsql-bulk``
        command turns them off for its process; a program that embeds the engine calls
        :func:`engine.pipeline.disable_transparent_huge_pages` or starts Python with
        ``MIMALLOC_ALLOW_THP=0`` (or ``ARROW_DEFAULT_MEMORY_POOL=system``).
        ``benchmarks/engine_memory.py`` checks the sum against the peak.
    :param max_errors: rows the server refuses (a NULL into a NOT NULL column, text
        longer than its column, a value its type cannot hold, a duplicate key, a CHECK or
        FOREIGN KEY violation) that the load sets aside and goes on, over the whole load;
        one more stops it as with 0, the default (see :mod:`engine.rejects`).
    :param reject_file: with ``max_errors``: a Parquet file (local, or ``abfss://`` written
        with the load's storage identity) the load's rejected rows are written to at its
        end (they are always recorded in ``[azsql_bulk].[rejected_rows]``, in the batch's
        transaction).
    :param progress: called with a :class:`engine.results.Progress` after every
        committed batch, from worker threads (keep it quick and thread-safe).
    """

    # each field declares how the CLI and the Airflow operator offer it: engine.option_spec
    workers: int = field(default=4, metadata={
        "help": "parallel connections", "kind": "count", "metavar": "N"})
    mode: Mode = field(default=Mode.APPEND, metadata={
        "help": "append (journaled inserts), replace (stage, then swap in) or upsert "
                "(stage, then MERGE on the keys)", "kind": "choice", "choices": MODES})
    keys: tuple[str, ...] = field(default=(), metadata={
        "help": "the key columns that identify a row, for upsert", "kind": "names",
        "flag": "--key", "metavar": "COL"})
    create: CreatePolicy = field(default=CreatePolicy.IF_MISSING, metadata={
        "help": "create the table from the source's schema when missing (if-missing), "
                "never, or drop and recreate it with mode replace (replace-schema)",
        "kind": "choice", "choices": CREATE_POLICIES})
    sql_types: Mapping[str, str | SqlType] = field(default_factory=dict, metadata={
        "help": "SQL type overrides by target column name, e.g. price=decimal(18,2)",
        "kind": "pairs", "flag": "--sql-type", "metavar": "COL=TYPE",
        "pair": ("COLUMN=SQLTYPE", "price=decimal(18,2)")})
    load_id: str | None = field(default=None, metadata={
        "help": "the load's journal id (default: derived from the source and the target, so "
                "running the same load again resumes it)", "kind": "text", "metavar": "ID"})
    resume: bool = field(default=True, metadata={
        "help": "skip the batches already journaled under the load id, so running the same "
                "load again finishes a stopped one and does nothing for a finished one (the "
                "journal makes this safe); when off, a load id that already has batches is "
                "refused", "kind": "switch",
        "not_exposed": {"airflow": "every try of a task instance resumes its load: Airflow "
                                   "retries depend on it"}})
    token_refresh_margin: float = field(default=300.0, metadata={
        "help": "reconnect with a fresh token this many seconds before the login token "
                "expires", "kind": "seconds", "metavar": "S"})
    max_retries: int = field(default=5, metadata={
        "help": "replays of one batch after transient errors", "kind": "int",
        "metavar": "N"})
    retry_base_delay: float = field(default=0.5, metadata={
        "help": "first backoff ceiling in seconds", "kind": "seconds",
        "not_exposed": _BACKOFF_IS_TUNED})
    retry_max_delay: float = field(default=30.0, metadata={
        "help": "largest single backoff in seconds", "kind": "seconds",
        "not_exposed": _BACKOFF_IS_TUNED})
    transport: TransportKind = field(default=TransportKind.AUTO, metadata={
        "help": "how rows travel: bulk-copy (TDS bulk load through the driver's bcp API, "
                "every type bound natively; proven transactional on the server before the "
                "first batch, else parameter arrays), parameter-arrays (one INSERT per row), "
                f"or auto: bulk copy where it is proven and batches hold at least "
                f"{AUTO_BULK_MIN_ROWS:,} rows", "kind": "choice", "choices": TRANSPORTS})
    table_lock: bool = field(default=False, metadata={
        "help": "bulk copy: hold a table lock while loading (bcp's TABLOCK)",
        "kind": "switch"})
    check_constraints: bool = field(default=False, metadata={
        "help": "bulk copy: check CHECK and FOREIGN KEY constraints (off, as in bcp: the "
                "server then marks them untrusted)", "kind": "switch"})
    fire_triggers: bool = field(default=False, metadata={
        "help": "bulk copy: fire the table's INSERT triggers (off, as in bcp)",
        "kind": "switch"})
    order: tuple[str, ...] = field(default=(), metadata={
        "help": "bulk copy: the source is sorted by these columns, as the target's "
                "clustered index (bcp's ORDER hint)", "kind": "names", "metavar": "COL"})
    nan_as_null: bool = field(default=False, metadata={
        "help": "write NaN and ±Inf as NULL instead of failing", "kind": "switch"})
    max_memory_bytes: int | None = field(default=DEFAULT_MAX_MEMORY_BYTES, metadata={
        "help": "ceiling on the Arrow bytes of batches read ahead and in flight",
        "kind": "bytes", "flag": "--max-memory", "metavar": "SIZE"})
    max_errors: int = field(default=0, metadata={
        "help": "set aside up to N rows the server refuses (NULL into NOT NULL, text too "
                "long, a value the type cannot hold, a duplicate key, a CHECK or FOREIGN KEY "
                "violation) and go on; they are recorded in [azsql_bulk].[rejected_rows] "
                "with their source file and row; one more stops the load", "kind": "int",
        "metavar": "N"})
    reject_file: str | None = field(default=None, metadata={
        "help": "with --max-errors: write the load's rejected rows (source file, row, "
                "column, server error, values as text) to this Parquet file (local or "
                "abfss://) at the end of the load", "kind": "text", "metavar": "PATH"})
    progress: Callable[[Progress], Any] | None = field(default=None, compare=False, metadata={
        "help": "called with a Progress after every committed batch", "kind": "object",
        "not_exposed": {"cli": "a Python callback: the CLI passes its own progress display",
                        "airflow": "a Python callback, which task arguments cannot carry; "
                                   "the task log and the XCom result report the load"}})

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigurationError(f"workers must be at least 1, not {self.workers}")
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        object.__setattr__(self, "mode", Mode(self.mode))
        folded = str(self.transport).replace("_", "-")
        if folded not in TRANSPORTS:
            raise ConfigurationError(f"transport must be one of {', '.join(TRANSPORTS)}, "
                                     f"not {self.transport!r}")
        object.__setattr__(self, "transport", TransportKind(folded))
        for name in ("keys", "order"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        hinted = [n for n in BULK_ONLY_OPTIONS if getattr(self, n)]
        if hinted and self.transport == TransportKind.PARAMETER_ARRAYS:
            raise ConfigurationError(
                f"{', '.join(hinted)} only apply to bulk copy, not transport="
                "'parameter-arrays': drop them, or use transport='bulk-copy' or 'auto'")
        if self.mode == "upsert" and not self.keys:
            raise ConfigurationError("mode='upsert' needs keys: the columns that identify a "
                                     'row, e.g. keys=("order_id",)')
        if self.mode != "upsert" and self.keys:
            raise ConfigurationError(f"keys are only used by mode='upsert', not '{self.mode}'")
        if len({k.casefold() for k in self.keys}) != len(self.keys):
            raise ConfigurationError(f"keys name a column twice: {list(self.keys)}")
        if self.create not in CREATE_POLICIES:
            raise ConfigurationError(f"create must be one of {', '.join(CREATE_POLICIES)}, "
                                     f"not {self.create!r}")
        object.__setattr__(self, "create", CreatePolicy(self.create))
        if self.create == "replace_schema" and self.mode != "replace":
            raise ConfigurationError(
                f"create='replace_schema' drops and recreates the table, so it only goes with "
                f"mode='replace' (not '{self.mode}'); use create='if_missing' or 'never'")
        if self.max_memory_bytes is not None and self.max_memory_bytes < 1:
            raise ConfigurationError(f"max_memory_bytes must be positive, not "
                                     f"{self.max_memory_bytes}")
        if self.max_errors < 0:
            raise ConfigurationError(f"max_errors must not be negative, not {self.max_errors}")
        if self.reject_file is not None and not self.max_errors:
            raise ConfigurationError("reject_file needs max_errors: with max_errors=0 the first "
                                     "refused row stops the load and nothing is rejected")
        if (self.reject_file is not None and "://" in self.reject_file
                and not is_remote(self.reject_file)):
            raise ConfigurationError(f"reject_file must be a local path or an abfss:// object, "
                                     f"not {self.reject_file!r} (rejects are also kept in "
                                     "[azsql_bulk].[rejected_rows])")
        if self.max_retries < 0:
            raise ConfigurationError("max_retries must not be negative")
        if self.token_refresh_margin < 0:
            raise ConfigurationError("token_refresh_margin must not be negative")
        if self.retry_base_delay < 0 or self.retry_max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")
        object.__setattr__(self, "sql_types", MappingProxyType(dict(self.sql_types)))
