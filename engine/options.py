"""What a transfer loads into (:class:`Target`) and how (:class:`TransferOptions`).

>>> TransferOptions(workers=2).rows_per_batch
10000
>>> TransferOptions(mode="upsert")
Traceback (most recent call last):
...
engine.errors.ConfigurationError: mode 'upsert' is not yet supported; use mode='append'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.connection import ConnectionOptions
from engine.errors import ConfigurationError
from engine.schema import split_table_name
from engine.type_map import SqlType

if TYPE_CHECKING:
    from engine.transfer import Progress

__all__ = ["CREATE_POLICIES", "MODES", "Target", "TransferOptions"]

MODES = ("append", "replace", "upsert")
IMPLEMENTED_MODES = ("append",)
CREATE_POLICIES = ("if_missing", "never", "replace_schema")
IMPLEMENTED_CREATE = ("if_missing", "never")


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


@dataclass(frozen=True)
class TransferOptions:
    """How to load. Defaults are meant for Azure SQL Database.

    :param workers: parallel connections, each inserting its own batches.
    :param rows_per_batch: rows per INSERT transaction and journal row. Provisional:
        10,000 has not been benchmarked yet. Batch ids depend on it, so a resumed load
        must keep the value it started with.
    :param mode: ``append`` (``replace`` and ``upsert`` are not yet supported).
    :param create: ``if_missing`` (create the table from the source's schema, sized from
        the first batch) or ``never`` (the table must exist); ``replace_schema`` is not
        yet supported.
    :param sql_types: per-column SQL type overrides, e.g. ``{"price": "decimal(18,2)"}``.
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
    :param progress: called with a :class:`engine.transfer.Progress` after every
        committed batch, from worker threads (keep it quick and thread-safe).
    """

    workers: int = 4
    rows_per_batch: int = 10_000
    mode: str = "append"
    create: str = "if_missing"
    sql_types: Mapping[str, str | SqlType] = field(default_factory=dict)
    load_id: str | None = None
    resume: bool = True
    token_refresh_margin: float = 300.0
    max_retries: int = 5
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    nan_as_null: bool = False
    progress: Callable[[Progress], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigurationError(f"workers must be at least 1, not {self.workers}")
        if self.rows_per_batch < 1:
            raise ConfigurationError(f"rows_per_batch must be at least 1, not "
                                     f"{self.rows_per_batch}")
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode not in IMPLEMENTED_MODES:
            raise ConfigurationError(f"mode {self.mode!r} is not yet supported; use mode='append'")
        if self.create not in CREATE_POLICIES:
            raise ConfigurationError(f"create must be one of {', '.join(CREATE_POLICIES)}, "
                                     f"not {self.create!r}")
        if self.create not in IMPLEMENTED_CREATE:
            raise ConfigurationError(f"create={self.create!r} is not yet supported; use "
                                     "'if_missing' or 'never'")
        if self.max_retries < 0:
            raise ConfigurationError("max_retries must not be negative")
        if self.token_refresh_margin < 0:
            raise ConfigurationError("token_refresh_margin must not be negative")
        if self.retry_base_delay < 0 or self.retry_max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")
        object.__setattr__(self, "sql_types", MappingProxyType(dict(self.sql_types)))
