/*
 * The ODBC entry points Microsoft ODBC Driver 18 exports, as one X-macro list.
 *
 * unixODBC decides ANSI versus wide, and which calls a driver supports, purely from
 * the names it finds in the library, so the shim exports exactly this set: 65
 * functions, every string function in its W form only, SQLSetConnectAttr the one
 * ANSI call. exports.map must list the same names (a unit test compares the built
 * library with the real driver).
 *
 * Three kinds of entry:
 *   SHIM_FWD(name, params, args)                 statement or descriptor level: forward
 *   SHIM_CONN(name, handle, fake_rc, params, args) environment or connection level: a
 *       placeholder handle (real driver not loaded) answers fake_rc, else forward
 *   SHIM_OWN(name, params, args)                 written by hand in shim_entry.c
 * Every file that includes this defines all three macros first.
 */

SHIM_OWN(SQLAllocHandle,
    (SQLSMALLINT type, SQLHANDLE input, SQLHANDLE *output),
    (type, input, output))
SHIM_FWD(SQLBindCol,
    (SQLHSTMT h, SQLUSMALLINT col, SQLSMALLINT ctype, SQLPOINTER value, SQLLEN len,
     SQLLEN *ind),
    (h, col, ctype, value, len, ind))
SHIM_FWD(SQLBindParameter,
    (SQLHSTMT h, SQLUSMALLINT par, SQLSMALLINT io, SQLSMALLINT ctype, SQLSMALLINT sqltype,
     SQLULEN coldef, SQLSMALLINT scale, SQLPOINTER value, SQLLEN len, SQLLEN *ind),
    (h, par, io, ctype, sqltype, coldef, scale, value, len, ind))
SHIM_CONN(SQLBrowseConnectW, h, SQL_ERROR,
    (SQLHDBC h, SQLWCHAR *in, SQLSMALLINT in_len, SQLWCHAR *out, SQLSMALLINT out_max,
     SQLSMALLINT *out_len),
    (h, in, in_len, out, out_max, out_len))
SHIM_FWD(SQLBulkOperations,
    (SQLHSTMT h, SQLSMALLINT op),
    (h, op))
SHIM_FWD(SQLCancel,
    (SQLHSTMT h),
    (h))
SHIM_CONN(SQLCancelHandle, h, SQL_ERROR,
    (SQLSMALLINT type, SQLHANDLE h),
    (type, h))
SHIM_FWD(SQLCloseCursor,
    (SQLHSTMT h),
    (h))
SHIM_FWD(SQLColAttributeW,
    (SQLHSTMT h, SQLUSMALLINT col, SQLUSMALLINT field, SQLPOINTER chars, SQLSMALLINT max,
     SQLSMALLINT *len, SQLLEN *num),
    (h, col, field, chars, max, len, num))
SHIM_FWD(SQLColumnPrivilegesW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len, SQLWCHAR *col, SQLSMALLINT col_len),
    (h, cat, cat_len, sch, sch_len, tab, tab_len, col, col_len))
SHIM_FWD(SQLColumnsW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len, SQLWCHAR *col, SQLSMALLINT col_len),
    (h, cat, cat_len, sch, sch_len, tab, tab_len, col, col_len))
SHIM_CONN(SQLConnectW, h, SQL_ERROR,
    (SQLHDBC h, SQLWCHAR *dsn, SQLSMALLINT dsn_len, SQLWCHAR *uid, SQLSMALLINT uid_len,
     SQLWCHAR *auth, SQLSMALLINT auth_len),
    (h, dsn, dsn_len, uid, uid_len, auth, auth_len))
SHIM_FWD(SQLCopyDesc,
    (SQLHDESC source, SQLHDESC target),
    (source, target))
SHIM_FWD(SQLDescribeColW,
    (SQLHSTMT h, SQLUSMALLINT col, SQLWCHAR *name, SQLSMALLINT name_max,
     SQLSMALLINT *name_len, SQLSMALLINT *sqltype, SQLULEN *size, SQLSMALLINT *digits,
     SQLSMALLINT *nullable),
    (h, col, name, name_max, name_len, sqltype, size, digits, nullable))
SHIM_FWD(SQLDescribeParam,
    (SQLHSTMT h, SQLUSMALLINT par, SQLSMALLINT *sqltype, SQLULEN *size, SQLSMALLINT *digits,
     SQLSMALLINT *nullable),
    (h, par, sqltype, size, digits, nullable))
SHIM_CONN(SQLDisconnect, h, SQL_ERROR,
    (SQLHDBC h),
    (h))
SHIM_OWN(SQLDriverConnectW,
    (SQLHDBC h, SQLHWND hwnd, SQLWCHAR *in, SQLSMALLINT in_len, SQLWCHAR *out,
     SQLSMALLINT out_max, SQLSMALLINT *out_len, SQLUSMALLINT completion),
    (h, hwnd, in, in_len, out, out_max, out_len, completion))
SHIM_CONN(SQLEndTran, h, SQL_ERROR,
    (SQLSMALLINT type, SQLHANDLE h, SQLSMALLINT completion),
    (type, h, completion))
SHIM_FWD(SQLExecDirectW,
    (SQLHSTMT h, SQLWCHAR *text, SQLINTEGER len),
    (h, text, len))
SHIM_FWD(SQLExecute,
    (SQLHSTMT h),
    (h))
SHIM_FWD(SQLExtendedFetch,
    (SQLHSTMT h, SQLUSMALLINT orientation, SQLLEN offset, SQLULEN *rows,
     SQLUSMALLINT *status),
    (h, orientation, offset, rows, status))
SHIM_FWD(SQLFetch,
    (SQLHSTMT h),
    (h))
SHIM_FWD(SQLFetchScroll,
    (SQLHSTMT h, SQLSMALLINT orientation, SQLLEN offset),
    (h, orientation, offset))
SHIM_FWD(SQLForeignKeysW,
    (SQLHSTMT h, SQLWCHAR *pk_cat, SQLSMALLINT pk_cat_len, SQLWCHAR *pk_sch,
     SQLSMALLINT pk_sch_len, SQLWCHAR *pk_tab, SQLSMALLINT pk_tab_len, SQLWCHAR *fk_cat,
     SQLSMALLINT fk_cat_len, SQLWCHAR *fk_sch, SQLSMALLINT fk_sch_len, SQLWCHAR *fk_tab,
     SQLSMALLINT fk_tab_len),
    (h, pk_cat, pk_cat_len, pk_sch, pk_sch_len, pk_tab, pk_tab_len, fk_cat, fk_cat_len,
     fk_sch, fk_sch_len, fk_tab, fk_tab_len))
SHIM_OWN(SQLFreeHandle,
    (SQLSMALLINT type, SQLHANDLE h),
    (type, h))
SHIM_FWD(SQLFreeStmt,
    (SQLHSTMT h, SQLUSMALLINT option),
    (h, option))
SHIM_CONN(SQLGetConnectAttrW, h, SQL_ERROR,
    (SQLHDBC h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER max, SQLINTEGER *len),
    (h, attr, value, max, len))
SHIM_CONN(SQLGetConnectOptionW, h, SQL_ERROR,
    (SQLHDBC h, SQLUSMALLINT option, SQLPOINTER value),
    (h, option, value))
SHIM_FWD(SQLGetCursorNameW,
    (SQLHSTMT h, SQLWCHAR *name, SQLSMALLINT max, SQLSMALLINT *len),
    (h, name, max, len))
SHIM_FWD(SQLGetData,
    (SQLHSTMT h, SQLUSMALLINT col, SQLSMALLINT ctype, SQLPOINTER value, SQLLEN max,
     SQLLEN *ind),
    (h, col, ctype, value, max, ind))
SHIM_FWD(SQLGetDescFieldW,
    (SQLHDESC h, SQLSMALLINT rec, SQLSMALLINT field, SQLPOINTER value, SQLINTEGER max,
     SQLINTEGER *len),
    (h, rec, field, value, max, len))
SHIM_FWD(SQLGetDescRecW,
    (SQLHDESC h, SQLSMALLINT rec, SQLWCHAR *name, SQLSMALLINT name_max,
     SQLSMALLINT *name_len, SQLSMALLINT *type, SQLSMALLINT *subtype, SQLLEN *len,
     SQLSMALLINT *precision, SQLSMALLINT *scale, SQLSMALLINT *nullable),
    (h, rec, name, name_max, name_len, type, subtype, len, precision, scale, nullable))
SHIM_OWN(SQLGetDiagFieldW,
    (SQLSMALLINT type, SQLHANDLE h, SQLSMALLINT rec, SQLSMALLINT field, SQLPOINTER value,
     SQLSMALLINT max, SQLSMALLINT *len),
    (type, h, rec, field, value, max, len))
SHIM_OWN(SQLGetDiagRecW,
    (SQLSMALLINT type, SQLHANDLE h, SQLSMALLINT rec, SQLWCHAR *state, SQLINTEGER *native,
     SQLWCHAR *text, SQLSMALLINT max, SQLSMALLINT *len),
    (type, h, rec, state, native, text, max, len))
SHIM_CONN(SQLGetEnvAttr, h, SQL_ERROR,
    (SQLHENV h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER max, SQLINTEGER *len),
    (h, attr, value, max, len))
SHIM_CONN(SQLGetFunctions, h, SQL_ERROR,
    (SQLHDBC h, SQLUSMALLINT function, SQLUSMALLINT *supported),
    (h, function, supported))
SHIM_CONN(SQLGetInfoW, h, SQL_ERROR,
    (SQLHDBC h, SQLUSMALLINT info, SQLPOINTER value, SQLSMALLINT max, SQLSMALLINT *len),
    (h, info, value, max, len))
SHIM_FWD(SQLGetStmtAttrW,
    (SQLHSTMT h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER max, SQLINTEGER *len),
    (h, attr, value, max, len))
SHIM_FWD(SQLGetTypeInfoW,
    (SQLHSTMT h, SQLSMALLINT sqltype),
    (h, sqltype))
SHIM_FWD(SQLMoreResults,
    (SQLHSTMT h),
    (h))
SHIM_CONN(SQLNativeSqlW, h, SQL_ERROR,
    (SQLHDBC h, SQLWCHAR *in, SQLINTEGER in_len, SQLWCHAR *out, SQLINTEGER out_max,
     SQLINTEGER *out_len),
    (h, in, in_len, out, out_max, out_len))
SHIM_FWD(SQLNumParams,
    (SQLHSTMT h, SQLSMALLINT *count),
    (h, count))
SHIM_FWD(SQLNumResultCols,
    (SQLHSTMT h, SQLSMALLINT *count),
    (h, count))
SHIM_FWD(SQLParamData,
    (SQLHSTMT h, SQLPOINTER *value),
    (h, value))
SHIM_FWD(SQLParamOptions,
    (SQLHSTMT h, SQLULEN rows, SQLULEN *row),
    (h, rows, row))
SHIM_FWD(SQLPrepareW,
    (SQLHSTMT h, SQLWCHAR *text, SQLINTEGER len),
    (h, text, len))
SHIM_FWD(SQLPrimaryKeysW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len),
    (h, cat, cat_len, sch, sch_len, tab, tab_len))
SHIM_FWD(SQLProcedureColumnsW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *proc, SQLSMALLINT proc_len, SQLWCHAR *col, SQLSMALLINT col_len),
    (h, cat, cat_len, sch, sch_len, proc, proc_len, col, col_len))
SHIM_FWD(SQLProceduresW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *proc, SQLSMALLINT proc_len),
    (h, cat, cat_len, sch, sch_len, proc, proc_len))
SHIM_FWD(SQLPutData,
    (SQLHSTMT h, SQLPOINTER data, SQLLEN len),
    (h, data, len))
SHIM_FWD(SQLRowCount,
    (SQLHSTMT h, SQLLEN *count),
    (h, count))
SHIM_CONN(SQLSetConnectAttr, h, SQL_SUCCESS,
    (SQLHDBC h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER len),
    (h, attr, value, len))
SHIM_CONN(SQLSetConnectAttrW, h, SQL_SUCCESS,
    (SQLHDBC h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER len),
    (h, attr, value, len))
SHIM_CONN(SQLSetConnectOptionW, h, SQL_SUCCESS,
    (SQLHDBC h, SQLUSMALLINT option, SQLULEN value),
    (h, option, value))
SHIM_FWD(SQLSetCursorNameW,
    (SQLHSTMT h, SQLWCHAR *name, SQLSMALLINT len),
    (h, name, len))
SHIM_FWD(SQLSetDescFieldW,
    (SQLHDESC h, SQLSMALLINT rec, SQLSMALLINT field, SQLPOINTER value, SQLINTEGER len),
    (h, rec, field, value, len))
SHIM_FWD(SQLSetDescRec,
    (SQLHDESC h, SQLSMALLINT rec, SQLSMALLINT type, SQLSMALLINT subtype, SQLLEN len,
     SQLSMALLINT precision, SQLSMALLINT scale, SQLPOINTER data, SQLLEN *data_len,
     SQLLEN *ind),
    (h, rec, type, subtype, len, precision, scale, data, data_len, ind))
SHIM_CONN(SQLSetEnvAttr, h, SQL_SUCCESS,
    (SQLHENV h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER len),
    (h, attr, value, len))
SHIM_FWD(SQLSetPos,
    (SQLHSTMT h, SQLSETPOSIROW row, SQLUSMALLINT op, SQLUSMALLINT lock),
    (h, row, op, lock))
SHIM_FWD(SQLSetScrollOptions,
    (SQLHSTMT h, SQLUSMALLINT concurrency, SQLLEN keyset, SQLUSMALLINT rowset),
    (h, concurrency, keyset, rowset))
SHIM_FWD(SQLSetStmtAttrW,
    (SQLHSTMT h, SQLINTEGER attr, SQLPOINTER value, SQLINTEGER len),
    (h, attr, value, len))
SHIM_FWD(SQLSpecialColumnsW,
    (SQLHSTMT h, SQLUSMALLINT kind, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch,
     SQLSMALLINT sch_len, SQLWCHAR *tab, SQLSMALLINT tab_len, SQLUSMALLINT scope,
     SQLUSMALLINT nullable),
    (h, kind, cat, cat_len, sch, sch_len, tab, tab_len, scope, nullable))
SHIM_FWD(SQLStatisticsW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len, SQLUSMALLINT unique, SQLUSMALLINT accuracy),
    (h, cat, cat_len, sch, sch_len, tab, tab_len, unique, accuracy))
SHIM_FWD(SQLTablePrivilegesW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len),
    (h, cat, cat_len, sch, sch_len, tab, tab_len))
SHIM_FWD(SQLTablesW,
    (SQLHSTMT h, SQLWCHAR *cat, SQLSMALLINT cat_len, SQLWCHAR *sch, SQLSMALLINT sch_len,
     SQLWCHAR *tab, SQLSMALLINT tab_len, SQLWCHAR *types, SQLSMALLINT types_len),
    (h, cat, cat_len, sch, sch_len, tab, tab_len, types, types_len))
