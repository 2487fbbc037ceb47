/*
 * Connect, query and close N times through unixODBC with the connection string in
 * $LOOP_CONN_STR: the workload for AddressSanitizer (test_shim_memory.py) and valgrind
 * runs of the token shim. Exit status 0 when every connection logged in and queried.
 */
#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>

static void print_diag(SQLSMALLINT type, SQLHANDLE h)
{
    SQLCHAR state[6], text[1024];
    SQLINTEGER native;
    SQLSMALLINT len;
    for (SQLSMALLINT i = 1; SQLGetDiagRec(type, h, i, state, &native, text,
                                          (SQLSMALLINT)sizeof text, &len) == SQL_SUCCESS;
         i++) {
        fprintf(stderr, "diag %s %d %s\n", (char *)state, (int)native, (char *)text);
    }
}

static int connect_and_query(SQLHENV env, const char *conn_str)
{
    SQLHDBC dbc;
    SQLHSTMT stmt;
    SQLCHAR who[256];
    SQLLEN ind;
    int ok = 0;
    SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
    SQLRETURN rc = SQLDriverConnect(dbc, NULL, (SQLCHAR *)conn_str, SQL_NTS, NULL, 0, NULL,
                                    SQL_DRIVER_NOPROMPT);
    if (SQL_SUCCEEDED(rc)) {
        SQLAllocHandle(SQL_HANDLE_STMT, dbc, &stmt);
        ok = SQL_SUCCEEDED(SQLExecDirect(stmt, (SQLCHAR *)"SELECT SUSER_SNAME()", SQL_NTS)) &&
             SQLFetch(stmt) == SQL_SUCCESS &&
             SQL_SUCCEEDED(SQLGetData(stmt, 1, SQL_C_CHAR, who, sizeof who, &ind));
        SQLFreeHandle(SQL_HANDLE_STMT, stmt);
        SQLDisconnect(dbc);
    } else {
        print_diag(SQL_HANDLE_DBC, dbc);
    }
    SQLFreeHandle(SQL_HANDLE_DBC, dbc);
    return ok;
}

int main(int argc, char **argv)
{
    const char *conn_str = getenv("LOOP_CONN_STR");
    int n = argc > 1 ? atoi(argv[1]) : 200, ok = 0;
    if (conn_str == NULL) {
        fprintf(stderr, "set LOOP_CONN_STR to an ODBC connection string\n");
        return 2;
    }
    SQLHENV env;
    SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    for (int i = 0; i < n; i++) {
        ok += connect_and_query(env, conn_str);
    }
    SQLFreeHandle(SQL_HANDLE_ENV, env);
    printf("%d/%d connections logged in and queried\n", ok, n);
    return ok == n ? 0 : 1;
}
