/* A bulk-copy client the test drives step by step, to put faults in the middle of a bulk
 * load: Microsoft ODBC Driver 18's bcp_* API, commands on stdin, answers on stdout.
 *
 * Compiled by test_bulk_faults.py: gcc bcp_stream.c -lodbc. Usage:
 *   bcp_stream "<connection string>" <table>
 * The table has (id bigint, s nvarchar(...)). With $BCP_STREAM_TOKEN set, the connection
 * logs in with that access token (SQL_COPT_SS_ACCESS_TOKEN) instead of the string's
 * credentials. Autocommit is off: nothing stays unless "commit" is asked for.
 *
 * Commands, one a line; each is answered by "OK <command> [n]" or by "FAILED <command>"
 * and the driver's diagnostics ("ERROR <sqlstate> <native> <message>"), then "END":
 *   init        bcp_initW on the table, bind id and s
 *   rows N      bcp_sendrow N rows: id counts up from 0 over the whole run, s is
 *               "row-<id, 8 digits>"; the driver sends packets as its buffer fills, so
 *               a bulk load is on the wire (unfinished) after enough rows
 *   done        bcp_done: ends the bulk load (n = the rows the server took)
 *   commit      SQLEndTran(COMMIT)
 *   quit        disconnect and exit 0
 * A failure does not end the program: the test decides what comes next.
 */
#include <dlfcn.h>
#include <sql.h>
#include <sqlext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_COPT_SS_BCP 1219
#define SQL_COPT_SS_ACCESS_TOKEN 1256
#define DB_IN 1
#define SQLINT8 0x7f
#define SQLNCHAR 0xef

static short (*bcp_initW)(SQLHDBC, const SQLWCHAR *, const SQLWCHAR *, const SQLWCHAR *, int);
static short (*bcp_bind)(SQLHDBC, const unsigned char *, int, int, const unsigned char *, int,
                         int, int);
static short (*bcp_collen)(SQLHDBC, int, int);
static short (*bcp_sendrow)(SQLHDBC);
static int (*bcp_done)(SQLHDBC);

static SQLHENV env;
static SQLHDBC dbc;
static long long v_id;
static SQLWCHAR v_s[32];
static long long next_id;

static void diag(void) {
    SQLCHAR state[6], msg[1024];
    SQLINTEGER native;
    SQLSMALLINT len;
    for (SQLSMALLINT i = 1; SQLGetDiagRec(SQL_HANDLE_DBC, dbc, i, state, &native, msg, sizeof msg,
                                          &len) == SQL_SUCCESS; i++)
        printf("ERROR %s %d %s\n", state, (int)native, msg);
}

static void answer(int ok, const char *command, long long n) {
    if (ok) {
        if (n >= 0)
            printf("OK %s %lld\n", command, n);
        else
            printf("OK %s\n", command);
    } else {
        printf("FAILED %s\n", command);
        diag();
    }
    puts("END");
    fflush(stdout);
}

/* The ACCESSTOKEN structure: a 4-byte length, then the token in UTF-16LE. */
static void *token_struct(const char *token) {
    size_t n = strlen(token);
    unsigned char *buf = malloc(4 + 2 * n);
    uint32_t bytes = (uint32_t)(2 * n);
    memcpy(buf, &bytes, 4);
    for (size_t k = 0; k < n; k++) {
        buf[4 + 2 * k] = (unsigned char)token[k];
        buf[5 + 2 * k] = 0;
    }
    return buf;
}

static int send_rows(long long n) {
    for (long long k = 0; k < n; k++) {
        char text[32];
        v_id = next_id++;
        int len = snprintf(text, sizeof text, "row-%08lld", v_id);
        for (int c = 0; c <= len; c++) v_s[c] = (SQLWCHAR)(unsigned char)text[c];
        if (bcp_collen(dbc, 8, 1) != 1 || bcp_collen(dbc, len * 2, 2) != 1 ||
            bcp_sendrow(dbc) != 1)
            return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bcp_stream CONNSTR TABLE\n");
        return 64;
    }
    SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
    SQLSetConnectAttr(dbc, SQL_COPT_SS_BCP, (SQLPOINTER)1L, SQL_IS_INTEGER);
    const char *token = getenv("BCP_STREAM_TOKEN");
    if (token != NULL && *token)
        SQLSetConnectAttr(dbc, SQL_COPT_SS_ACCESS_TOKEN, token_struct(token), SQL_IS_POINTER);
    SQLCHAR out[1024];
    SQLSMALLINT outlen;
    int connected = SQL_SUCCEEDED(SQLDriverConnect(dbc, NULL, (SQLCHAR *)argv[1], SQL_NTS, out,
                                                   sizeof out, &outlen, SQL_DRIVER_NOPROMPT));
    answer(connected, "connect", -1);
    if (!connected) return 2;
    const char *drv = strstr(argv[1], "Driver=");
    char path[1024];
    void *lib = NULL;
    if (drv && sscanf(drv + 7, "%1023[^;]", path) == 1)
        lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib) {
        *(void **)&bcp_initW = dlsym(lib, "bcp_initW");
        *(void **)&bcp_bind = dlsym(lib, "bcp_bind");
        *(void **)&bcp_collen = dlsym(lib, "bcp_collen");
        *(void **)&bcp_sendrow = dlsym(lib, "bcp_sendrow");
        *(void **)&bcp_done = dlsym(lib, "bcp_done");
    }
    if (!bcp_initW || !bcp_bind || !bcp_collen || !bcp_sendrow || !bcp_done) {
        fprintf(stderr, "the driver (Driver= path) does not export the bcp functions\n");
        return 2;
    }
    SQLSetConnectAttr(dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0);
    SQLWCHAR table[256];
    size_t k = 0;
    for (; argv[2][k] && k < 255; k++) table[k] = (SQLWCHAR)(unsigned char)argv[2][k];
    table[k] = 0;

    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        long long n = 0;
        if (!strncmp(line, "init", 4)) {
            answer(bcp_initW(dbc, table, NULL, NULL, DB_IN) == 1 &&
                       bcp_bind(dbc, (void *)&v_id, 0, 8, NULL, 0, SQLINT8, 1) == 1 &&
                       bcp_bind(dbc, (void *)v_s, 0, sizeof v_s, NULL, 0, SQLNCHAR, 2) == 1,
                   "init", -1);
        } else if (sscanf(line, "rows %lld", &n) == 1) {
            answer(send_rows(n), "rows", next_id);
        } else if (!strncmp(line, "done", 4)) {
            int rows = bcp_done(dbc);
            answer(rows >= 0, "done", rows);
        } else if (!strncmp(line, "commit", 6)) {
            answer(SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, dbc, SQL_COMMIT)), "commit", -1);
        } else if (!strncmp(line, "quit", 4)) {
            break;
        } else {
            printf("FAILED unknown command\nEND\n");
            fflush(stdout);
        }
    }
    SQLDisconnect(dbc);
    SQLFreeHandle(SQL_HANDLE_DBC, dbc);
    SQLFreeHandle(SQL_HANDLE_ENV, env);
    return 0;
}
