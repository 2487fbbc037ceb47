"""INSERT, SELECT, UPDATE, DELETE, MERGE, variables and parameters."""

from __future__ import annotations

from decimal import Decimal

import pytest


@pytest.fixture
def orders(db):
    db.run("CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, cust nvarchar(20) NOT NULL, "
           "amount decimal(10,2) NULL, qty int NULL)")
    db.run("INSERT INTO dbo.orders (id, cust, amount, qty) VALUES (1, N'ann', 10.50, 1), "
           "(2, N'bob', 20.00, 2), (3, N'ann', 5.25, 3), (4, N'cid', NULL, 4)")
    return db


def test_select_shapes(orders) -> None:
    db = orders
    assert db.rows("SELECT TOP 2 id FROM orders ORDER BY id DESC") == [(4,), (3,)]
    assert db.rows("SELECT cust, COUNT(*) AS n, SUM(amount) AS total FROM orders "
                   "WHERE qty > 0 GROUP BY cust ORDER BY cust") == [
        ("ann", 2, Decimal("15.75")), ("bob", 1, Decimal("20.00")), ("cid", 1, None)]
    r = db.last("SELECT MIN(amount) AS lo, MAX(cust) AS hi, CAST(qty AS bigint) AS q, "
                "CONVERT(varchar(3), cust) AS c FROM orders WHERE id = 1 GROUP BY qty, cust")
    assert [c.name for c in r.columns] == ["lo", "hi", "q", "c"]
    assert r.rows == [(Decimal("10.50"), "ann", 1, "ann")]
    assert db.rows("SELECT o.id FROM dbo.orders AS o WHERE o.cust = 'bob'") == [(2,)]
    assert db.rows("SELECT 7 / 2, 7.0 / 2, 'a' + 'b'") == [(3, Decimal("3.500000"), "ab")]


def test_select_star_uses_declared_types(orders) -> None:
    r = orders.last("SELECT * FROM orders WHERE id = 1")
    assert [(c.name, c.type.sql(), c.nullable) for c in r.columns] == [
        ("id", "int", False), ("cust", "nvarchar(20)", False),
        ("amount", "decimal(10,2)", True), ("qty", "int", True)]


def test_insert_select_update_delete_counts(orders) -> None:
    db = orders
    db.run("CREATE TABLE archive (id int, cust nvarchar(20))")
    assert db.last("INSERT INTO archive (id, cust) SELECT id, cust FROM orders "
                   "WHERE cust = N'ann'").rowcount == 2
    assert db.last("UPDATE orders SET amount = amount * 2, qty = 0 WHERE cust = 'ann'"
                   ).rowcount == 2
    assert db.rows("SELECT amount FROM orders WHERE id = 1") == [(Decimal("21.00"),)]
    assert db.last("UPDATE o SET qty = a.id FROM orders o JOIN archive a ON a.id = o.id"
                   ).rowcount == 2
    assert db.last("DELETE FROM orders WHERE qty = 0").rowcount == 0
    assert db.last("DELETE FROM orders WHERE id > 2").rowcount == 2
    assert db.rows("SELECT COUNT(*) FROM orders") == [(2,)]


def test_update_key_to_duplicate_is_2627(orders) -> None:
    err = orders.error("UPDATE orders SET id = 2 WHERE id = 1")
    assert err.number == 2627 and "(2)" in err.message
    orders.run("UPDATE orders SET id = id + 10")  # shifting every key is fine
    assert orders.rows("SELECT MIN(id) FROM orders") == [(11,)]


def test_merge_upsert(orders) -> None:
    db = orders
    r = db.last("MERGE INTO dbo.orders AS tgt USING (VALUES (1, N'ann', 99.00), "
                "(9, N'zed', 1.00)) AS src (id, cust, amount) ON (tgt.id = src.id) "
                "WHEN MATCHED THEN UPDATE SET amount = src.amount "
                "WHEN NOT MATCHED THEN INSERT (id, cust, amount) "
                "VALUES (src.id, src.cust, src.amount);")
    assert r.rowcount == 2
    assert db.rows("SELECT id, amount FROM orders WHERE id IN (1, 9) ORDER BY id") == [
        (1, Decimal("99.00")), (9, Decimal("1.00"))]


def test_merge_from_staging_table_with_delete(orders) -> None:
    db = orders
    db.run("CREATE TABLE stage (id int, cust nvarchar(20)); "
           "INSERT INTO stage VALUES (1, N'ANN'), (5, N'eve')")
    db.run("MERGE orders AS t USING stage AS s ON t.id = s.id "
           "WHEN MATCHED THEN UPDATE SET t.cust = s.cust "
           "WHEN NOT MATCHED BY TARGET THEN INSERT (id, cust) VALUES (s.id, s.cust) "
           "WHEN NOT MATCHED BY SOURCE THEN DELETE;")
    assert db.rows("SELECT id, cust FROM orders ORDER BY id") == [(1, "ANN"), (5, "eve")]


def test_merge_duplicate_source_rows_is_8672(orders) -> None:
    err = orders.error("MERGE orders AS t USING (VALUES (1), (1)) AS s (id) ON t.id = s.id "
                       "WHEN MATCHED THEN UPDATE SET qty = 0;")
    assert err.number == 8672


def test_multi_row_insert_is_atomic(orders) -> None:
    err = orders.error("INSERT INTO orders (id, cust) VALUES (10, N'x'), (11, NULL)")
    assert err.number == 515
    assert orders.rows("SELECT COUNT(*) FROM orders WHERE id >= 10") == [(0,)]


def test_parameters_and_variables(orders) -> None:
    db = orders
    assert db.rows("SELECT cust FROM orders WHERE id = @P1", {"@P1": 2}) == [("bob",)]
    assert db.rows("DECLARE @n int = 2, @c nvarchar(10); SET @c = N'ann'; "
                   "SELECT COUNT(*) FROM orders WHERE cust = @c AND id <= @n") == [(1,)]
    assert db.rows("DECLARE @m decimal(10,2); SELECT @m = MAX(amount) FROM orders; "
                   "SELECT @m") == [(Decimal("20.00"),)]
    assert db.error("SELECT @undeclared").number == 137


def test_nocount_is_exposed(db) -> None:
    db.run("SET NOCOUNT ON")
    assert db.session.nocount is True
    db.run("SET NOCOUNT OFF")
    assert db.session.nocount is False


def test_print_message_and_rowcount(orders) -> None:
    r = orders.run("PRINT 'hello'; SELECT id FROM orders; SELECT @@ROWCOUNT")
    assert r[0].messages == ["hello"]
    assert r[-1].rows == [(4,)]


def test_sp_executesql(orders) -> None:
    r = orders.run("EXEC sp_executesql N'SELECT cust FROM orders WHERE id = @id', N'@id int', "
                   "@id = 3")
    assert r[-1].rows == [("ann",)]
