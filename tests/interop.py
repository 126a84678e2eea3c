"""Reads every published mart, and any staging table named after them, with DuckDB and with pyarrow
and checks each gives exactly the rows `alliance query` returned (JSON lines, one file per table).
Usage: interop.py MARTS_DIR JSON_DIR [TABLE=DIR ...], where each DIR holds a staging table's
Parquet objects (in folders by period)."""

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
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
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
    tables = [(p.stem, [p]) for p in sorted(marts.glob("*.parquet"))]
    for arg in sys.argv[3:]:
        name, folder = arg.split("=", 1)
        tables.append((name, sorted(pathlib.Path(folder).glob("*/*.parquet"))))
    checked = 0
    for name, paths in tables:
        if not paths:
            sys.exit(f"{name}: no Parquet objects")
        expected = [json.loads(l) for l in (exported / f"{name}.json").read_text().splitlines() if l.strip()]
        table = pq.read_table([str(p) for p in paths]) if len(paths) > 1 else pq.read_table(paths[0])
        columns = table.column_names
        want = rows(expected, columns)
        with_pyarrow = rows(table.to_pylist(), columns)
        rel = duckdb.sql(f"SELECT * FROM read_parquet({[str(p) for p in paths]!r})")
        with_duckdb = rows([dict(zip(rel.columns, r)) for r in rel.fetchall()], columns)
        for reader, got in (("pyarrow", with_pyarrow), ("duckdb", with_duckdb)):
            if got != want:
                diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                sys.exit(f"{name}: {reader} differs from alliance at row {diff}: {got[diff:diff+1]} vs {want[diff:diff+1]} ({len(got)} vs {len(want)} rows)")
        checked += 1
        print(f"{name}: {len(want)} rows identical in alliance, pyarrow and duckdb")
    if checked == 0:
        sys.exit("no marts found")
    print(f"{checked} tables identical")


if __name__ == "__main__":
    main()
