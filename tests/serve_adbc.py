"""Talks to a running `alliance serve` with the ADBC Flight SQL driver, as an analyst's Python
would, and checks what it sees. Run by tests/serve.rs; needs adbc-driver-flightsql,
adbc-driver-manager and pyarrow (`make tools`). A missing module is an error, not a skip.

Usage: serve_adbc.py MODE URI ANALYST_TOKEN ENGINEER_TOKEN [MARTS_DIR | ROOT_CERT]
  full    every mart row for row against its Parquet file; auth (bearer, basic, wrong token);
          write statements and file paths refused; roles; catalog calls; prepared statements
  limits  the server was started with --max-rows 1000 --max-bytes 200000 --query-timeout 3
  tls     the server was started with --tls-cert/--tls-key; ROOT_CERT is the certificate
Prints one line per check and a last line "N checks passed".
"""

import math
import pathlib
import sys

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq

HEADER = "adbc.flight.sql.authorization_header"
CHECKS = []


def check(name, ok, detail=""):
    if not ok:
        raise AssertionError(f"{name}: {detail}")
    CHECKS.append(name)
    print(f"ok  {name}")


def connect(uri, token=None, user=None, password=None, **extra):
    kwargs = dict(extra)
    if token is not None:
        kwargs[HEADER] = f"Bearer {token}"
    if user is not None:
        kwargs["username"] = user
        kwargs["password"] = password
    return flightsql.connect(uri, db_kwargs=kwargs)


def query(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def error_of(fn):
    """The message of the error `fn` raises (None if it succeeds)."""
    try:
        fn()
    except (adbc_driver_manager.Error, adbc_driver_manager.dbapi.Error) as e:
        return str(e)
    return None


def refused(uri, token, sql):
    def run():
        with connect(uri, token) as conn:
            query(conn, sql)

    return error_of(run)


def norm(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def sorted_rows(table):
    rows = [tuple(norm(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(rows, key=lambda r: tuple((v is None, str(type(v)), "" if v is None else v) for v in r))


def full(uri, analyst, engineer, marts_dir):
    marts = sorted(pathlib.Path(marts_dir).glob("*.parquet"))
    check("marts exist", len(marts) >= 9, f"{len(marts)} in {marts_dir}")
    with connect(uri, analyst) as conn:
        for path in marts:
            served = query(conn, f"SELECT * FROM {path.stem}")
            stored = pq.read_table(path)
            check(f"{path.stem} columns", served.schema.names == stored.schema.names,
                  f"{served.schema} vs {stored.schema}")
            check(f"{path.stem} types", served.schema.types == stored.schema.types,
                  f"{served.schema.types} vs {stored.schema.types}")
            check(f"{path.stem} rows ({stored.num_rows})", sorted_rows(served) == sorted_rows(stored),
                  f"{served.num_rows} served, {stored.num_rows} stored")

        # Catalog calls list what the analyst reads and nothing else.
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        names = {t["table_name"] for c in objects for s in c["catalog_db_schemas"] or []
                 for t in s["db_schema_tables"] or []}
        check("analyst tables listed", {p.stem for p in marts} | {"runs", "catalogue"} <= names, sorted(names))
        check("analyst never sees patient-level tables",
              not any(n.startswith(("int_", "stg_", "trust_pathways", "ref_")) for n in names), sorted(names))
        schema = conn.adbc_get_table_schema("mart_backlog")
        check("table schema", schema.names == pq.read_schema(marts[[p.stem for p in marts].index("mart_backlog")]).names,
              schema)
        info = conn.adbc_get_info()
        check("server info", info.get("vendor_name") == "alliance-warehouse", info)

        # A prepared statement (what JDBC clients such as DBeaver send).
        with conn.cursor() as cur:
            cur.adbc_prepare("SELECT count(*) AS n FROM mart_backlog")
            cur.execute("SELECT count(*) AS n FROM mart_backlog")
            n = cur.fetch_arrow_table().column("n")[0].as_py()
        backlog = pq.read_table(marts[[p.stem for p in marts].index("mart_backlog")]).num_rows
        check("prepared statement", n == backlog, f"{n} vs {backlog}")

    # Authentication: a wrong token, no token, a wrong basic password.
    for label, kwargs in [("wrong token", {"token": "not-a-valid-token-0000000000"}),
                          ("no token", {}),
                          ("wrong basic password", {"user": "analyst", "password": "not-a-valid-token-0000"})]:
        def run():
            with connect(uri, **kwargs) as conn:
                query(conn, "SELECT 1")

        message = error_of(run)
        check(f"{label} refused", message is not None and "authenticated" in message.lower(), message)
    # Basic auth with the token as password (what drivers do with a user and password).
    with connect(uri, user="anyone", password=engineer) as conn:
        n = query(conn, "SELECT count(*) AS n FROM int_pathways").column("n")[0].as_py()
        check("basic auth handshake (engineer)", n > 0, n)

    # Nothing writes and no file is read, for either role.
    writes = [
        ("COPY (SELECT * FROM mart_backlog) TO 'exported.csv' STORED AS CSV", "COPY"),
        ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
        ("INSERT INTO mart_backlog SELECT * FROM mart_backlog", "INSERT"),
        ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'", "CREATE EXTERNAL TABLE"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
    ]
    for role, token in [("analyst", analyst), ("engineer", engineer)]:
        for sql, statement in writes:
            message = refused(uri, token, sql)
            expected = f"alliance serve is read-only: {statement} is not allowed"
            check(f"{role}: {statement} refused", message is not None and expected in message, message)
        message = refused(uri, token, "select * from '/etc/passwd'")
        check(f"{role}: file path refused", message is not None and "is a file path, not a table" in message
              and "root:" not in message, message)
        # The same statements sent as updates (DoPut) are refused too.
        with connect(uri, token) as conn, conn.cursor() as cur:
            cur.adbc_statement.set_sql_query("INSERT INTO mart_backlog SELECT * FROM mart_backlog")
            message = error_of(cur.adbc_statement.execute_update)
            check(f"{role}: INSERT as an update refused",
                  message is not None and "alliance serve is read-only: INSERT is not allowed" in message, message)

    # Roles: the analyst never reads patient-level tables; the engineer does.
    for table in ["trust_pathways_ral", "int_pathways"]:
        message = refused(uri, analyst, f"select * from {table}")
        check(f"analyst refused {table}", message is not None
              and f"table '{table}'" in message and "needs the engineer role" in message, message)
    with connect(uri, engineer) as conn:
        for table in ["trust_pathways_ral", "int_pathways"]:
            rows = query(conn, f"SELECT * FROM {table} LIMIT 5")
            check(f"engineer reads {table}", rows.num_rows == 5, rows.num_rows)
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        names = {t["table_name"] for c in objects for s in c["catalog_db_schemas"] or []
                 for t in s["db_schema_tables"] or []}
        check("engineer tables listed", {"int_pathways", "trust_pathways_ral"} <= names, sorted(names))


def limits(uri, analyst, engineer):
    with connect(uri, analyst) as conn:
        small = query(conn, "SELECT * FROM mart_backlog LIMIT 5")
        check("a small result passes the limits", small.num_rows == 5, small.num_rows)
    message = refused(uri, analyst, "SELECT value FROM range(5000)")
    check("more rows than --max-rows", message is not None and "more than 1000 rows (--max-rows)" in message, message)
    message = refused(uri, engineer, "SELECT repeat('x', 1000) AS s FROM range(500)")
    check("more bytes than --max-bytes",
          message is not None and "more than 200000 bytes (--max-bytes)" in message, message)
    # Minutes of work that keeps its threads busy: the error comes at the deadline all the same
    # (the test stops the server right after).
    message = refused(uri, analyst, "SELECT sum(a.value * b.value) AS s FROM range(100000) a, range(100000) b")
    check("slower than --query-timeout", message is not None and "longer than 3 s (--query-timeout)" in message,
          message)


def tls(uri, analyst, engineer, root_cert):
    pem = pathlib.Path(root_cert).read_text()
    with connect(uri, analyst, **{"adbc.flight.sql.client_option.tls_root_certs": pem}) as conn:
        n = query(conn, "SELECT count(*) AS n FROM mart_backlog").column("n")[0].as_py()
        check("query over TLS", n > 0, n)
    plain = uri.replace("grpc+tls://", "grpc://")

    def run():
        with connect(plain, analyst) as conn:
            query(conn, "SELECT 1")

    check("plain gRPC to a TLS server fails", error_of(run) is not None)


def main():
    mode, uri, analyst, engineer = sys.argv[1:5]
    rest = sys.argv[5:]
    if mode == "full":
        full(uri, analyst, engineer, rest[0])
    elif mode == "limits":
        limits(uri, analyst, engineer)
    elif mode == "tls":
        tls(uri, analyst, engineer, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(f"{len(CHECKS)} checks passed")


if __name__ == "__main__":
    main()
