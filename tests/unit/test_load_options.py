"""Load options are declared once: the CLI and the Airflow operator offer what the
engine's option fields declare, with the same defaults, or say why not."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from engine.cli.app import build_parser
from engine.cli.arguments import resolve
from engine.cli.connection_args import CONNECTION_OPTIONS
from engine.cli.load_args import LOAD_OPTIONS, source_options, transfer_options
from engine.option_spec import declared, field_default
from engine.options import TransferOptions
from engine.sources import SourceOptions

sdk = pytest.importorskip("airflow.sdk")

from airflow_integration.operators import AzureSqlBulkLoadOperator  # noqa: E402

CLASSES = (TransferOptions, SourceOptions)


def cli_args(argv: list[str] | None = None):
    args = build_parser().parse_args(["load", "a.parquet", *(argv or [])])
    args.argv = ["load", "a.parquet"]
    resolve(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS), {})
    return args


def operator_parameters() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(AzureSqlBulkLoadOperator.__init__).parameters)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_offered_by_both_surfaces_or_says_why_not(cls):
    cli_names = {opt.dest for opt in LOAD_OPTIONS}
    operator_names = set(operator_parameters())
    for f, spec in declared(cls):  # raises for a field without a declaration
        offered = {"cli": f.name in cli_names, "airflow": f.name in operator_names}
        for surface, present in offered.items():
            assert present == spec.exposed(surface), (f.name, surface)
            if not present:
                assert len(spec.not_exposed[surface].split()) >= 4, (f.name, surface)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_defaults_agree_between_the_engine_the_cli_and_the_operator(cls):
    engine = cls()
    build = {TransferOptions: lambda a: transfer_options(a, None),
             SourceOptions: source_options}[cls]
    from_cli = build(cli_args())
    op = AzureSqlBulkLoadOperator(task_id="t", source="a.parquet", table="dbo.t")
    from_operator = op.transfer_options() if cls is TransferOptions else op.source_options()
    params = operator_parameters()
    for f, spec in declared(cls):
        if spec.exposed("cli"):
            expected = spec.surface_defaults.get("cli", (getattr(engine, f.name), ""))[0]
            assert getattr(from_cli, f.name) == expected, f.name
        if spec.exposed("airflow"):
            assert getattr(from_operator, f.name) == getattr(engine, f.name), f.name
            shown = params[f.name].default
            assert shown == field_default(f) or (
                shown is None and f.default is dataclasses.MISSING), f.name
        for surface, (_, why) in spec.surface_defaults.items():
            assert spec.exposed(surface) and len(why.split()) >= 4, (f.name, surface)


def test_the_cli_default_batch_size_is_the_engines():
    args = cli_args()
    assert args.rows_per_batch == SourceOptions().rows_per_batch
    assert args.max_memory_bytes == TransferOptions().max_memory_bytes


def test_the_operator_takes_every_option_the_cli_takes():
    op = AzureSqlBulkLoadOperator(task_id="t", source="a.csv", table="dbo.t",
                                  max_memory_bytes=2**30, token_refresh_margin=60.0,
                                  format="csv", rows_per_batch=1_000)
    options, read = op.transfer_options("lid"), op.source_options()
    assert (options.max_memory_bytes, options.token_refresh_margin) == (2**30, 60.0)
    assert (read.format, read.rows_per_batch) == ("csv", 1_000)
    assert options.load_id == "lid" and options.resume is True


def test_default_args_reach_the_declared_parameters():
    import datetime

    with sdk.DAG("defaults", schedule=None, start_date=datetime.datetime(2024, 1, 1),
                 default_args={"workers": 2, "max_memory_bytes": 2**28}):
        op = AzureSqlBulkLoadOperator(task_id="t", source="a.parquet", table="dbo.t")
    assert op.transfer_options().workers == 2
    assert op.transfer_options().max_memory_bytes == 2**28
