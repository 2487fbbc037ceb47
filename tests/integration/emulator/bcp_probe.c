/* Drive Microsoft ODBC Driver 18's bulk copy API (bcp_*) against a server.
 *
 * Compiled by test_bcp_driver.py: gcc bcp_probe.c -lodbc. Usage:
 *   bcp_probe "<connection string>" <table> all|plain|commit|rollback|nullfail [journal]
 * all:      every-type rows (see test_bcp_driver.py for the values), then 2,000 narrow
 *           rows in two bcp_batch batches; autocommit on.
 * commit:   autocommit off; 3 rows by bulk copy plus one INSERT into the journal table on
 *           the same connection, then SQLEndTran(COMMIT).  rollback: the same, ROLLBACK.
 * plain:    autocommit on; three rows (id, s) = (k, "value k").
 * nullfail: the same, but the second row has NULL in the NOT NULL column id.
 * Prints "ROWS <n>" after bcp_done and "ERROR <sqlstate> <native> <message>" per
 * diagnostic; exits 0 when every call succeeded, 2 when a bcp call failed.
 *
 * The bcp functions are looked up in the driver unixODBC loaded (its path is the Driver=
 * value; Driver 18 exports them, its msodbcsql.h is not installed). Every bcp call takes
 * the DRIVER MANAGER's connection handle.
 */
#include <dlfcn.h>
#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int DBINT_;
static short (*bcp_initW)(SQLHDBC, const SQLWCHAR *, const SQLWCHAR *, const SQLWCHAR *, int);
static short (*bcp_bind)(SQLHDBC, const unsigned char *, int, DBINT_, const unsigned char *, int,
                         int, int);
static short (*bcp_collen)(SQLHDBC, DBINT_, int);
static short (*bcp_sendrow)(SQLHDBC);
static DBINT_ (*bcp_batch)(SQLHDBC);
static DBINT_ (*bcp_done)(SQLHDBC);

#define SQL_COPT_SS_BCP 1219
#define DB_IN 1
#define SQL_VARLEN_DATA (-10)
#define SQLINT1 0x30
#define SQLBIT 0x32
#define SQLINT2 0x34
#define SQLINT4 0x38
#define SQLFLT4 0x3b
#define SQLFLT8 0x3e
#define SQLINT8 0x7f
#define SQLNUMERICN 0x6c
#define SQLNCHAR 0xef
#define SQLVARBINARY 0x25
#define SQLDATEN 0x28
#define SQLTIMEN 0x29
#define SQLDATETIME2N 0x2a
#define SQLDATETIMEOFFSETN 0x2b
#define SQLUNIQUEID 0x24

typedef struct {
    SQLUSMALLINT hour, minute, second;
    SQLUINTEGER fraction;
} Time2;

typedef struct {
    SQLSMALLINT year;
    SQLUSMALLINT month, day, hour, minute, second;
    SQLUINTEGER fraction;
    SQLSMALLINT timezone_hour, timezone_minute;
} TimestampOffset;

static SQLHENV env;
static SQLHDBC dbc;

static void diag(SQLSMALLINT type, SQLHANDLE h) {
    SQLCHAR state[6], msg[1024];
    SQLINTEGER native;
    SQLSMALLINT len;
    for (SQLSMALLINT i = 1; SQLGetDiagRec(type, h, i, state, &native, msg, sizeof msg, &len)
                            == SQL_SUCCESS; i++)
        printf("ERROR %s %d %s\n", state, (int)native, msg);
    fflush(stdout);
}

static void fail(const char *what) {
    printf("FAILED %s\n", what);
    diag(SQL_HANDLE_DBC, dbc);
    exit(2);
}

static void wide(SQLWCHAR *out, const char *in) {
    while ((*out++ = (SQLWCHAR)(unsigned char)*in++)) {
    }
}

/* UTF-16 of an ASCII string; returns its length in bytes. */
static int utf16(SQLWCHAR *out, const char *ascii) {
    int n = 0;
    while (ascii[n]) {
        out[n] = (SQLWCHAR)(unsigned char)ascii[n];
        n++;
    }
    return n * 2;
}

/* An exact SQL_NUMERIC_STRUCT from a digit string (no point) and its precision/scale. */
static void numeric(SQL_NUMERIC_STRUCT *num, const char *digits, int negative, int p, int s) {
    memset(num, 0, sizeof *num);
    num->precision = (SQLCHAR)p;
    num->scale = (SQLSCHAR)s;
    num->sign = negative ? 0 : 1;
    for (const char *c = digits; *c; c++) {
        unsigned carry = (unsigned)(*c - '0');
        for (int i = 0; i < SQL_MAX_NUMERIC_LEN; i++) {
            unsigned v = num->val[i] * 10u + carry;
            num->val[i] = (SQLCHAR)(v & 0xff);
            carry = v >> 8;
        }
    }
}

static void ok(short rc, const char *what) {
    if (rc != 1) fail(what);
}

enum { SM_CHARS = 9000, VBM_BYTES = 20000 };
enum { ID = 1, I, SI, TI, B, R, F, D, D38, S, SM, VB, VBM, DT, TM, DT2, DTO, U, NCOLS = U };

static long long v_id;
static int v_i;
static short v_si;
static unsigned char v_ti, v_b;
static float v_r;
static double v_f;
static SQL_NUMERIC_STRUCT v_d, v_d38;
static SQLWCHAR v_s[64], *v_sm;
static unsigned char v_vb[16], *v_vbm, *v_sm_buf, *v_vbm_buf;
static SQL_DATE_STRUCT v_dt;
static Time2 v_tm;
static SQL_TIMESTAMP_STRUCT v_dt2;
static TimestampOffset v_dto;
static SQLGUID v_u;

static void bind_all(void) {
    ok(bcp_bind(dbc, (void *)&v_id, 0, 8, NULL, 0, SQLINT8, ID), "bind id");
    ok(bcp_bind(dbc, (void *)&v_i, 0, 4, NULL, 0, SQLINT4, I), "bind i");
    ok(bcp_bind(dbc, (void *)&v_si, 0, 2, NULL, 0, SQLINT2, SI), "bind si");
    ok(bcp_bind(dbc, &v_ti, 0, 1, NULL, 0, SQLINT1, TI), "bind ti");
    ok(bcp_bind(dbc, &v_b, 0, 1, NULL, 0, SQLBIT, B), "bind b");
    ok(bcp_bind(dbc, (void *)&v_r, 0, 4, NULL, 0, SQLFLT4, R), "bind r");
    ok(bcp_bind(dbc, (void *)&v_f, 0, 8, NULL, 0, SQLFLT8, F), "bind f");
    ok(bcp_bind(dbc, (void *)&v_d, 0, sizeof v_d, NULL, 0, SQLNUMERICN, D), "bind d");
    ok(bcp_bind(dbc, (void *)&v_d38, 0, sizeof v_d38, NULL, 0, SQLNUMERICN, D38), "bind d38");
    /* variable-length columns: bound with their buffer's size, the length set per row */
    ok(bcp_bind(dbc, (void *)v_s, 0, sizeof v_s, NULL, 0, SQLNCHAR, S), "bind s");
    /* (max) columns: an 8-byte length indicator in front of the data (no size limit) */
    ok(bcp_bind(dbc, (void *)v_sm_buf, 8, SQL_VARLEN_DATA, NULL, 0, SQLNCHAR, SM), "bind sm");
    ok(bcp_bind(dbc, v_vb, 0, sizeof v_vb, NULL, 0, SQLVARBINARY, VB), "bind vb");
    ok(bcp_bind(dbc, v_vbm_buf, 8, SQL_VARLEN_DATA, NULL, 0, SQLVARBINARY, VBM), "bind vbm");
    ok(bcp_bind(dbc, (void *)&v_dt, 0, sizeof v_dt, NULL, 0, SQLDATEN, DT), "bind dt");
    ok(bcp_bind(dbc, (void *)&v_tm, 0, sizeof v_tm, NULL, 0, SQLTIMEN, TM), "bind tm");
    ok(bcp_bind(dbc, (void *)&v_dt2, 0, sizeof v_dt2, NULL, 0, SQLDATETIME2N, DT2), "bind dt2");
    ok(bcp_bind(dbc, (void *)&v_dto, 0, sizeof v_dto, NULL, 0, SQLDATETIMEOFFSETN, DTO),
       "bind dto");
    ok(bcp_bind(dbc, (void *)&v_u, 0, sizeof v_u, NULL, 0, SQLUNIQUEID, U), "bind u");
}

static const int fixed_len[NCOLS + 1] = {
    0, 8, 4, 2, 1, 1, 4, 8, sizeof(SQL_NUMERIC_STRUCT), sizeof(SQL_NUMERIC_STRUCT), 0, 0, 0, 0,
    sizeof(SQL_DATE_STRUCT), sizeof(Time2), sizeof(SQL_TIMESTAMP_STRUCT),
    sizeof(TimestampOffset), sizeof(SQLGUID)};

/* Row lengths: every column present with its natural length, or NULL (SQL_NULL_DATA). */
static void lengths(int all_null_but_id, int s_bytes, int sm_bytes, int vb_bytes, int vbm_bytes) {
    for (int c = 1; c <= NCOLS; c++) {
        int len = fixed_len[c];
        if (c == S) len = s_bytes;
        if (c == SM) len = sm_bytes;
        if (c == VB) len = vb_bytes;
        if (c == VBM) len = vbm_bytes;
        if (all_null_but_id && c != ID) len = SQL_NULL_DATA;
        if (c == SM || c == VBM) { /* the length goes in the indicator */
            long long indicator = len;
            memcpy(c == SM ? v_sm_buf : v_vbm_buf, &indicator, 8);
            continue;
        }
        ok(bcp_collen(dbc, len, c), "bcp_collen");
    }
}

static void send(const char *what) {
    ok(bcp_sendrow(dbc), what);
}

static void every_type_rows(void) {
    v_sm_buf = calloc(1, 8 + (SM_CHARS + 1) * sizeof(SQLWCHAR));
    v_vbm_buf = malloc(8 + VBM_BYTES);
    v_sm = (SQLWCHAR *)(v_sm_buf + 8);
    v_vbm = v_vbm_buf + 8;
    for (int k = 0; k < SM_CHARS; k++) v_sm[k] = (SQLWCHAR)('a' + k % 26);
    for (int k = 0; k < VBM_BYTES; k++) v_vbm[k] = (unsigned char)(k % 251);
    bind_all();

    /* Row 1: edge values. */
    v_id = 1; v_i = -2147483647 - 1; v_si = -32768; v_ti = 255; v_b = 1;
    v_r = 1.5f; v_f = -2.25e300;
    numeric(&v_d, "123456789012345678", 0, 18, 2);
    numeric(&v_d38, "12345678901234567890123456780123456789", 0, 38, 10);
    /* "snow \u2603 \U0001D11E" in UTF-16 */
    int n = utf16(v_s, "snow ") / 2;
    v_s[n++] = 0x2603; v_s[n++] = ' '; v_s[n++] = 0xD834; v_s[n++] = 0xDD1E;
    v_vb[0] = 0x00; v_vb[1] = 0xff; v_vb[2] = 0x10;
    v_dt = (SQL_DATE_STRUCT){2024, 2, 29};
    v_tm = (Time2){23, 59, 59, 999999900};
    v_dt2 = (SQL_TIMESTAMP_STRUCT){9999, 12, 31, 23, 59, 59, 999999900};
    v_dto = (TimestampOffset){2024, 6, 1, 12, 34, 56, 123456700, 5, 30};
    v_u = (SQLGUID){0x01234567, 0x89ab, 0xcdef, {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}};
    lengths(0, n * 2, SM_CHARS * 2, 3, VBM_BYTES);
    send("sendrow 1");

    /* Row 2: NULL everywhere but the key. */
    v_id = 2;
    lengths(1, 0, 0, 0, 0);
    send("sendrow 2");

    /* Row 3: zeros, empty strings and binaries, negative values, the smallest dates. */
    v_id = 3; v_i = 0; v_si = 0; v_ti = 0; v_b = 0; v_r = -0.0f; v_f = 0.0;
    numeric(&v_d, "1", 1, 18, 2);
    numeric(&v_d38, "0", 0, 38, 10);
    v_dt = (SQL_DATE_STRUCT){1, 1, 1};
    v_tm = (Time2){0, 0, 0, 0};
    v_dt2 = (SQL_TIMESTAMP_STRUCT){1, 1, 1, 0, 0, 0, 0};
    v_dto = (TimestampOffset){2000, 1, 1, 0, 0, 0, 100, -8, 0};
    v_u = (SQLGUID){0xffffffff, 0xffff, 0xffff, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    /* (an indicator of 0 for a (max) column made the driver send a 65,535-byte chunk of
       the buffer: the shortest values here are one character and one byte) */
    lengths(0, 0, 2, 0, 1);
    send("sendrow 3");
    if (bcp_batch(dbc) < 0) fail("bcp_batch 1");

    /* 2,000 narrow rows (id, i, s) in two batches. */
    for (int k = 0; k < 2000; k++) {
        char text[32];
        v_id = 100 + k; v_i = k;
        snprintf(text, sizeof text, "row %d", k);
        int bytes = utf16(v_s, text);
        lengths(1, 0, 0, 0, 0);
        ok(bcp_collen(dbc, 4, I), "collen i");
        ok(bcp_collen(dbc, bytes, S), "collen s");
        send("sendrow narrow");
        if (k == 999 && bcp_batch(dbc) < 0) fail("bcp_batch 2");
    }
}

/* id bigint NOT NULL, s nvarchar(20): three rows. */
static void three_rows(int null_second) {
    ok(bcp_bind(dbc, (void *)&v_id, 0, 8, NULL, 0, SQLINT8, 1), "bind id");
    ok(bcp_bind(dbc, (void *)v_s, 0, sizeof v_s, NULL, 0, SQLNCHAR, 2), "bind s");
    for (int k = 1; k <= 3; k++) {
        char text[32];
        v_id = k;
        snprintf(text, sizeof text, "value %d", k);
        ok(bcp_collen(dbc, (null_second && k == 2) ? SQL_NULL_DATA : 8, 1), "collen id");
        ok(bcp_collen(dbc, utf16(v_s, text), 2), "collen s");
        send("sendrow");
    }
}

static void exec_sql(const char *text) {
    SQLHSTMT st;
    SQLAllocHandle(SQL_HANDLE_STMT, dbc, &st);
    SQLRETURN rc = SQLExecDirect(st, (SQLCHAR *)text, SQL_NTS);
    if (!SQL_SUCCEEDED(rc)) {
        printf("FAILED exec %s\n", text);
        diag(SQL_HANDLE_STMT, st);
        exit(2);
    }
    SQLFreeHandle(SQL_HANDLE_STMT, st);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bcp_probe CONNSTR TABLE all|commit|rollback|nullfail [JOURNAL]\n");
        return 64;
    }
    const char *mode = argv[3];
    SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
    SQLSetConnectAttr(dbc, SQL_COPT_SS_BCP, (SQLPOINTER)1L, SQL_IS_INTEGER);
    SQLCHAR out[1024];
    SQLSMALLINT outlen;
    if (!SQL_SUCCEEDED(SQLDriverConnect(dbc, NULL, (SQLCHAR *)argv[1], SQL_NTS, out, sizeof out,
                                        &outlen, SQL_DRIVER_NOPROMPT)))
        fail("connect");
    const char *drv = strstr(argv[1], "Driver=");
    char path[1024];
    if (!drv || sscanf(drv + 7, "%1023[^;]", path) != 1) fail("no Driver= path");
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) fail("the driver is not loaded");
    *(void **)&bcp_initW = dlsym(lib, "bcp_initW");
    *(void **)&bcp_bind = dlsym(lib, "bcp_bind");
    *(void **)&bcp_collen = dlsym(lib, "bcp_collen");
    *(void **)&bcp_sendrow = dlsym(lib, "bcp_sendrow");
    *(void **)&bcp_batch = dlsym(lib, "bcp_batch");
    *(void **)&bcp_done = dlsym(lib, "bcp_done");
    if (!bcp_initW || !bcp_bind || !bcp_collen || !bcp_sendrow || !bcp_batch || !bcp_done)
        fail("the driver does not export the bcp functions");
    int transactional = !strcmp(mode, "commit") || !strcmp(mode, "rollback");
    if (transactional)
        SQLSetConnectAttr(dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0);
    SQLWCHAR table[256];
    wide(table, argv[2]);
    ok(bcp_initW(dbc, table, NULL, NULL, DB_IN), "bcp_initW");
    if (!strcmp(mode, "all"))
        every_type_rows();
    else
        three_rows(!strcmp(mode, "nullfail"));
    DBINT_ rows = bcp_done(dbc);
    printf("ROWS %d\n", (int)rows);
    if (rows < 0) fail("bcp_done");
    if (transactional) {
        char text[512];
        snprintf(text, sizeof text, "INSERT INTO %s (load_id) VALUES ('probe')", argv[4]);
        exec_sql(text);
        SQLEndTran(SQL_HANDLE_DBC, dbc, !strcmp(mode, "commit") ? SQL_COMMIT : SQL_ROLLBACK);
    }
    SQLDisconnect(dbc);
    SQLFreeHandle(SQL_HANDLE_DBC, dbc);
    SQLFreeHandle(SQL_HANDLE_ENV, env);
    puts("DONE");
    return 0;
}
