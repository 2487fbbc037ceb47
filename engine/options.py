"""What a transfer loads into (:class:`Target`) and how (:class:`TransferOptions`).

>>> TransferOptions(workers=2).rows_per_batch
50000
>>> TransferOptions(mode="upsert")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
engine.errors.ConfigurationError: mode='upsert' needs keys: ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.connection import ConnectionOptions
from engine.errors import ConfigurationError
from engine.schema import split_table_name
from engine.sources import DEFAULT_ROWS_PER_BATCH
from engine.type_map import SqlType

if TYPE_CHECKING:
    from engine.transfer import Progress

__all__ = ["CREATE_POLICIES", "MODES", "Target", "TransferOptions"]

MODES = ("append", "replace", "upsert")
CREATE_POLICIES = ("if_missing", "never", "replace_schema")


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
    table: str

    def __post_init__(self) -> None:
        split_table_name(self.table)  # fail early on a malformed name

    @property
    def schema_name(self) -> str:
        """The table's schema."""
        return split_table_name(self.table)[0]

    @property
    def table_name(self) -> str:
        """The table's own name."""
        return split_table_name(self.table)[1]

    @property
    def qualified(self) -> str:
        """``schema.table`` as written in the journal and in messages."""
        return f"{self.schema_name}.{self.table_name}"

    def describe(self) -> str:
        """``server,port/database/schema.table``: identifies the target in the default load id."""
        c = self.connection
        return f"{c.server},{c.port}/{c.database}/{self.qualified}"


# With 50,000-row batches of wide text rows, 2 x workers batches read ahead can reach
# gigabytes; the default ceiling keeps a default load inside a small Airflow worker.
DEFAULT_MAX_MEMORY_BYTES = 512 * 2**20


@dataclass(frozen=True)
class TransferOptions:
    """How to load. Defaults are meant for Azure SQL Database.

    :param workers: parallel connections, each inserting its own batches.
    :param rows_per_batch: rows per INSERT transaction and journal row (default 50,000:
        against 10,000 it gave 1.4x the rows/s for 0.9x the client CPU, and it keeps the
        per-batch journal row and commit under 5% of the client's CPU; see
        benchmarks/README.md). Batch ids depend on it, so a resumed load must keep the
        value it started with.
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
    :param columns: the source columns to load, in this order (default: all).
    :param rename: source column name -> target column name, e.g. ``{"ts": "order_time"}``;
        ``keys`` and ``sql_types`` use the target names.
    :param load_id: the load's journal id (default: sha256 of the source fingerprint and
        the target, 32 hex digits; see :func:`engine.journal.default_load_id`).
    :param resume: skip batches already journaled for ``load_id``. With False, a load id
        that already has journal rows is an error (nothing is sent).
    :param token_refresh_margin: seconds; before each batch a worker whose login token
        expires within this margin reconnects with a fresh token.
    :param max_retries: replays of one batch after transient errors before giving up.
    :param retry_base_delay: first backoff ceiling in seconds (doubling, full jitter).
    :param retry_max_delay: largest single backoff, in seconds.
    :param nan_as_null: write NaN and ±Inf as NULL instead of failing.
    :param max_memory_bytes: a ceiling on the Arrow bytes of the batches read ahead and
        in flight (default 512 MiB; at most ``2 * workers`` batches are read ahead in any
        case; None: no byte ceiling). A single batch larger than the ceiling is still
        loaded, alone.
    :param progress: called with a :class:`engine.transfer.Progress` after every
        committed batch, from worker threads (keep it quick and thread-safe).
    """

    workers: int = 4
    rows_per_batch: int = DEFAULT_ROWS_PER_BATCH
    mode: str = "append"
    keys: tuple[str, ...] = ()
    create: str = "if_missing"
    sql_types: Mapping[str, str | SqlType] = field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)
    load_id: str | None = None
    resume: bool = True
    token_refresh_margin: float = 300.0
    max_retries: int = 5
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    nan_as_null: bool = False
    max_memory_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES
    progress: Callable[[Progress], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigurationError(f"workers must be at least 1, not {self.workers}")
        if self.rows_per_batch < 1:
            raise ConfigurationError(f"rows_per_batch must be at least 1, not "
                                     f"{self.rows_per_batch}")
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if isinstance(self.keys, str):
            object.__setattr__(self, "keys", (self.keys,))
        object.__setattr__(self, "keys", tuple(self.keys))
        if self.mode == "upsert" and not self.keys:
            raise ConfigurationError("mode='upsert' needs keys: the columns that identify a "
                                     'row, e.g. keys=("order_id",)')
        if self.mode != "upsert" and self.keys:
            raise ConfigurationError(f"keys are only used by mode='upsert', not {self.mode!r}")
        if len({k.casefold() for k in self.keys}) != len(self.keys):
            raise ConfigurationError(f"keys name a column twice: {list(self.keys)}")
        if self.create not in CREATE_POLICIES:
            raise ConfigurationError(f"create must be one of {', '.join(CREATE_POLICIES)}, "
                                     f"not {self.create!r}")
        if self.create == "replace_schema" and self.mode != "replace":
            raise ConfigurationError(
                f"create='replace_schema' drops and recreates the table, so it only goes with "
                f"mode='replace' (not {self.mode!r}); use create='if_missing' or 'never'")
        if self.max_memory_bytes is not None and self.max_memory_bytes < 1:
            raise ConfigurationError(f"max_memory_bytes must be positive, not "
                                     f"{self.max_memory_bytes}")
        if self.max_retries < 0:
            raise ConfigurationError("max_retries must not be negative")
        if self.token_refresh_margin < 0:
            raise ConfigurationError("token_refresh_margin must not be negative")
        if self.retry_base_delay < 0 or self.retry_max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")
        object.__setattr__(self, "sql_types", MappingProxyType(dict(self.sql_types)))
        if self.columns is not None:
            if isinstance(self.columns, str):
                object.__setattr__(self, "columns", (self.columns,))
            object.__setattr__(self, "columns", tuple(self.columns))
            if not self.columns:
                raise ConfigurationError("columns is empty: name at least one source column, "
                                         "or leave it out to load every column")
            if len(set(self.columns)) != len(self.columns):
                raise ConfigurationError(f"columns names a column twice: {list(self.columns)}")
        rename = dict(self.rename)
        bad = [k for k, v in rename.items() if not isinstance(k, str) or not isinstance(v, str)
               or not v.strip()]
        if bad:
            raise ConfigurationError(f"rename maps source column names to new, non-empty names; "
                                     f"check the entries for {bad}")
        targets = [v.casefold() for v in rename.values()]
        twice = sorted({v for v in rename.values() if targets.count(v.casefold()) > 1})
        if twice:
            raise ConfigurationError(f"rename gives two columns the same name: {twice}")
        object.__setattr__(self, "rename", MappingProxyType(rename))
