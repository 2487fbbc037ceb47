"""Choosing the transport without a server: the bulk-only options, their hints, and ``auto``
below its batch-size threshold (which decides before any statement is sent)."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from engine.connection import ConnectionFactory, ConnectionOptions
from engine.errors import ConfigurationError
from engine.names import TableName
from engine.options import AUTO_BULK_MIN_ROWS, TransferOptions, TransportKind
from engine.plan import plan_table
from engine.transport_choice import bulk_hints, choose_transport

PLAN = plan_table(pa.schema([("Id", pa.int64()), ("at", pa.date32()), ("name", pa.string())]))


def test_every_bulk_option_becomes_its_hint_in_bcp_spelling():
    options = TransferOptions(table_lock=True, check_constraints=True, fire_triggers=True,
                              order=("id", "AT"))
    assert bulk_hints(options, PLAN) == ("TABLOCK, CHECK_CONSTRAINTS, FIRE_TRIGGERS, "
                                         "ORDER([Id] ASC, [at] ASC)")
    assert bulk_hints(TransferOptions(), PLAN) == ""


def test_an_order_column_that_is_not_loaded_is_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"order columns \['price'\].*Id, at, name"):
        bulk_hints(TransferOptions(order="price"), PLAN)


def test_a_name_with_a_bracket_is_quoted_in_the_order_hint():
    plan = plan_table(pa.schema([("a]b", pa.int32())]))
    assert bulk_hints(TransferOptions(order=["a]b"]), plan) == "ORDER([a]]b] ASC)"


@pytest.mark.parametrize("option", [{"table_lock": True}, {"check_constraints": True},
                                    {"fire_triggers": True}, {"order": ("id",)}])
def test_bulk_only_options_are_refused_with_parameter_arrays(option):
    with pytest.raises(ConfigurationError, match="only apply to bulk copy"):
        TransferOptions(transport="parameter-arrays", **option)
    assert TransferOptions(transport="auto", **option).transport is TransportKind.AUTO


def _factory() -> ConnectionFactory:
    return ConnectionFactory(ConnectionOptions("localhost", "db", bulk_copy=True))


def test_auto_uses_parameter_arrays_for_small_batches_without_touching_the_server(caplog):
    caplog.set_level(logging.INFO, logger="engine.transport_choice")
    # conn=None: the choice must not need a connection (an attribute access would fail)
    choice = choose_transport(PLAN, TableName("dbo", "t"), TransferOptions(), _factory(),
                              None, rows_per_batch=AUTO_BULK_MIN_ROWS - 1)
    assert choice.transport.name == "parameter-arrays"
    assert f"{AUTO_BULK_MIN_ROWS - 1:,} rows are below" in choice.reason
    mine = [r.levelno for r in caplog.records if r.name == "engine.transport_choice"]
    assert mine == [logging.INFO]


def test_small_batches_with_a_bulk_option_warn_that_it_does_not_apply(caplog):
    choice = choose_transport(PLAN, TableName("dbo", "t"), TransferOptions(table_lock=True),
                              _factory(), None, rows_per_batch=10)
    assert choice.transport.name == "parameter-arrays"
    warning = [r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING and r.name == "engine.transport_choice"]
    assert len(warning) == 1 and "table_lock do not apply" in warning[0]


def test_parameter_arrays_asked_for_are_used_whatever_the_batch_size():
    choice = choose_transport(PLAN, TableName("dbo", "t"),
                              TransferOptions(transport="parameter-arrays"), _factory(), None,
                              rows_per_batch=10 * AUTO_BULK_MIN_ROWS)
    assert choice.transport.name == "parameter-arrays"
    assert choice.reason == "transport='parameter-arrays' was asked for"
