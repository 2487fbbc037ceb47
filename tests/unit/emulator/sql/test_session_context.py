"""sp_set_session_context and SESSION_CONTEXT(N'key'), as SQL Server has them."""

from __future__ import annotations


def test_a_key_set_is_read_back_by_a_later_statement(db):
    db.run("EXEC sys.sp_set_session_context @key = N'azsql_bulk.load_id', @value = @P1, "
           "@read_only = 1", {"@P1": "ab12"})
    assert db.rows("SELECT CAST(SESSION_CONTEXT(N'azsql_bulk.load_id') AS nvarchar(128))") \
        == [("ab12",)]
    assert db.rows("SELECT SESSION_CONTEXT(N'not.set')") == [(None,)]


def test_positional_arguments_and_a_key_in_a_variable(db):
    db.run("EXEC sp_set_session_context N'region', N'eu'")
    assert db.rows("DECLARE @k nvarchar(20) = N'region'; SELECT SESSION_CONTEXT(@k)") \
        == [("eu",)]
    db.run("EXEC sp_set_session_context N'region', N'us'")  # not read-only: may change
    assert db.rows("SELECT SESSION_CONTEXT(N'region')") == [("us",)]


def test_a_read_only_key_cannot_change(db):
    db.run("EXEC sp_set_session_context @key = N'k', @value = N'v', @read_only = 1")
    error = db.error("EXEC sp_set_session_context @key = N'k', @value = N'w'")
    assert error.number == 15664 and "read_only" in error.message
    assert db.rows("SELECT SESSION_CONTEXT(N'k')") == [("v",)]


def test_several_keys_in_one_batch_with_parameters(db):
    db.run("EXEC sys.sp_set_session_context @key = @P1, @value = @P2, @read_only = 1;\n"
           "EXEC sys.sp_set_session_context @key = @P3, @value = @P4, @read_only = 1;",
           {"@P1": "a", "@P2": "1", "@P3": "b", "@P4": "2"})
    assert db.rows("SELECT SESSION_CONTEXT(N'a'), SESSION_CONTEXT(N'b')") == [("1", "2")]
