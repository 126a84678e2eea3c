"""Reads every published mart with DuckDB and with pyarrow and checks each gives exactly the rows
`alliance query` returned (JSON lines, one file per mart). Usage: interop.py MARTS_DIR JSON_DIR"""

import datetime
import json
import math
import pathlib
import sys

import duckdb
import pyarrow.parquet as pq


def norm(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return None if math.isnan(f) else float(f"{f:.9g}")
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()[:10]
    return str(v)


def rows(records, columns):
    out = [tuple(norm(r.get(c)) for c in columns) for r in records]
    return sorted(out, key=lambda t: tuple("" if x is None else str(x) for x in t))


def main():
    marts, exported = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    checked = 0
    for path in sorted(marts.glob("*.parquet")):
        name = path.stem
        expected = [json.loads(l) for l in (exported / f"{name}.json").read_text().splitlines() if l.strip()]
        table = pq.read_table(path)
        columns = table.column_names
        want = rows(expected, columns)
        with_pyarrow = rows(table.to_pylist(), columns)
        rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
        with_duckdb = rows([dict(zip(rel.columns, r)) for r in rel.fetchall()], columns)
        for reader, got in (("pyarrow", with_pyarrow), ("duckdb", with_duckdb)):
            if got != want:
                diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                sys.exit(f"{name}: {reader} differs from alliance at row {diff}: {got[diff:diff+1]} vs {want[diff:diff+1]} ({len(got)} vs {len(want)} rows)")
        checked += 1
        print(f"{name}: {len(want)} rows identical in alliance, pyarrow and duckdb")
    if checked == 0:
        sys.exit("no marts found")
    print(f"{checked} marts identical")


if __name__ == "__main__":
    main()
