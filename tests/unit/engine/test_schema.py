"""Table plans: DDL and INSERT text, identifier quoting, validation against a table."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.binder import insert_sql
from engine.errors import SchemaMismatchError
from engine.names import quote_identifier, split_table_name
from engine.plan import ExistingColumn, create_table_sql, plan_table, validate_against


def test_identifiers_are_bracketed_with_closing_brackets_doubled():
    assert quote_identifier("a]b c") == "[a]]b c]"
    assert split_table_name("sales.[order lines]") == ("sales", "order lines")
    assert split_table_name("orders") == ("dbo", "orders")


def test_create_table_lists_every_column_with_nullability():
    sample = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", None]})
    plan = plan_table(sample.schema, sample=sample)
    ddl = create_table_sql(plan, "dbo.[weird]]name]")
    assert ddl.startswith("CREATE TABLE [dbo].[weird]]name] (")
    assert "[id] bigint" in ddl and "[name] nvarchar(16)" in ddl
    assert insert_sql(plan, "dbo.t").count("?") == 2


def test_validation_lists_every_mismatched_column_at_once():
    sample = pa.table({"id": pa.array([1], pa.int64()), "name": ["x" * 300],
                       "missing": [1.5]})
    plan = plan_table(sample.schema, sample=sample)
    existing = [("ID", "int", None, 10, 0, None, "NO"),
                ("name", "nvarchar", 50, None, None, None, "YES"),
                ("other", "int", None, 10, 0, None, "NO")]
    with pytest.raises(SchemaMismatchError) as info:
        validate_against(plan, existing, table="dbo.t")
    text = str(info.value)
    for column in ("id", "name", "missing", "other"):
        assert column in text, text
    assert "dbo.t" in text


def test_validation_accepts_a_compatible_table_case_insensitively():
    sample = pa.table({"Id": pa.array([1], pa.int32()), "Name": ["abc"]})
    plan = plan_table(sample.schema, sample=sample)
    validate_against(plan, [("id", "bigint", None, 19, 0, None, "YES"),
                            ("NAME", "nvarchar", -1, None, None, None, "YES")])


def test_create_table_like_an_existing_table_takes_its_types_and_nullability():
    plan = plan_table(pa.schema([("id", pa.int64()), ("name", pa.string()),
                                 ("extra", pa.float64())]),
                      sample=pa.table({"id": [1], "name": ["ab"], "extra": [0.5]}))
    like = [ExistingColumn("ID", "bigint", is_nullable="NO"),
            ExistingColumn("Name", "nvarchar", char_max_length=500, is_nullable="YES")]
    sql = create_table_sql(plan, "dbo.stage", like=like)
    assert "[id] bigint NOT NULL" in sql and "[name] nvarchar(500) NULL" in sql
    assert "[extra] float NULL" in sql  # no twin: the plan's own type
    assert "nvarchar(500)" not in create_table_sql(plan, "dbo.stage")  # sampled size


@pytest.mark.parametrize("native", [True, False])
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30),
       floor=st.integers(0, 60), cut=st.integers(0, 3),
       layout=st.sampled_from(["string", "large_string", "chunked"]))
def test_max_utf16_units_is_exact_past_the_floor(native, values, floor, cut, layout):
    import engine.text_length as text_length

    if native and text_length._fastcast is None:
        pytest.skip("engine._fastcast is not built")
    kept = values[cut:]
    exact = max((len(v.encode("utf-16-le", "surrogatepass")) // 2 for v in kept
                 if v is not None), default=0)
    typ = pa.large_string() if layout == "large_string" else pa.string()
    arr = pa.array(values, typ).slice(cut)  # a non-zero offset into the buffers
    text = pa.chunked_array([arr.slice(0, len(arr) // 2), arr.slice(len(arr) // 2)], typ) \
        if layout == "chunked" else arr
    saved = text_length._fastcast
    try:
        if not native:
            text_length._fastcast = None
        got = text_length.max_utf16_units(text, floor)
    finally:
        text_length._fastcast = saved
    if exact > floor:
        assert got == exact
    else:
        assert got <= floor


def test_long_text_splits_only_past_what_one_parameter_holds():
    from engine.binder import TEXT_PIECE, split_long_text

    plan = plan_table(pa.schema([("s", pa.string())]))
    whole = ["x" * 1_600, "😀" * 800, "é" * 1_600, None]  # 1,600 UTF-16 units at most
    assert split_long_text(plan, pa.table({"s": whole}))[1] == {}
    for longer in ("x" * 1_601, "😀" * 800 + "x"):
        table, pieces = split_long_text(plan, pa.table({"s": [*whole, longer]}))
        assert pieces == {"s": -(-len(longer) // TEXT_PIECE)}
        joined = ["".join(p or "" for p in row) for row in zip(*(
            c.to_pylist() for c in table.columns), strict=True)]
        assert joined[:3] + joined[4:] == [*whole[:3], longer]


def test_with_rows_set_aside_the_first_batchs_nulls_and_long_text_are_not_refused_up_front():
    sample = pa.table({"id": pa.array([1, None], pa.int64()), "name": ["x" * 30, "y"]})
    plan = plan_table(sample.schema, sample=sample)
    existing = [("id", "bigint", None, 19, 0, None, "NO"),
                ("name", "nvarchar", 20, None, None, None, "YES")]
    with pytest.raises(SchemaMismatchError) as info:
        validate_against(plan, existing, table="dbo.t")
    assert "the source holds NULLs" in str(info.value) and "30 characters" in str(info.value)
    validate_against(plan, existing, table="dbo.t", sampled=False)  # max_errors: row by row
    with pytest.raises(SchemaMismatchError, match="narrower"):  # a type is still a type
        validate_against(plan, [("id", "int", None, 10, 0, None, "YES"),
                                ("name", "nvarchar", 20, None, None, None, "YES")],
                         table="dbo.t", sampled=False)
