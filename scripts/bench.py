"""Benchmark: one generated Royal Free pathway CSV, typed and written as zstd Parquet by
alliance (the real `ingest` path: contract, NHS-number pseudonymisation, quarantine, manifest),
by DuckDB and by Polars, in the same run on the same file. Wall time and peak RSS are measured per
process with wait4(2)."""

import os
import shutil
import subprocess
import sys
import time

ROWS = int(os.environ.get("BENCH_ROWS", "20000000"))
ROOT = os.path.join(os.getcwd(), "bench")
LANDING = os.path.join(ROOT, "landing")
CSV = os.path.join(LANDING, "trusts/RAL/RAL_cancer_pathways_2024-01.csv")
ALLIANCE = ["target/release/alliance", "--env", "bench"]
DATE_COLS = ["Referral Date", "First Seen Date", "FDS Date", "DTT Date", "Treatment Date"]


def run(name, argv, env=None):
    """Runs a command; returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{name} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


HEADER = ["Pathway ID", "NHS Number", "Provider Code", "Commissioner Code", "Referral Date", "Referral Route",
          "Suspected Cancer", "First Seen Date", "FDS Date", "FDS Outcome", "DTT Date", "Treatment Date",
          "Treatment Modality", "Treating Provider", "Stage", "Age", "Sex", "Ethnicity", "LSOA"]
TYPES = {c: ("DATE" if c in DATE_COLS else "BIGINT" if c == "Age" else "VARCHAR") for c in HEADER}

DUCKDB = f"""
import duckdb
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(\"\"\"COPY (SELECT * FROM read_csv('{CSV}', header=true, dateformat='%d/%m/%Y', columns={TYPES!r}))
  TO '{ROOT}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)\"\"\")
"""

POLARS = f"""
import polars as pl
lf = pl.scan_csv('{CSV}', infer_schema=False)
lf = lf.with_columns([pl.col(c).str.to_date('%d/%m/%Y', strict=False) for c in {DATE_COLS!r}] + [pl.col('Age').cast(pl.Int64)])
lf.sink_parquet('{ROOT}/polars.parquet', compression='zstd')
"""


def main():
    os.makedirs(ROOT, exist_ok=True)
    # A throw-away key for synthetic data when the caller has none (make exports the local key).
    os.environ.setdefault("ALLIANCE_PSEUDO_KEY", os.urandom(32).hex())
    if not os.path.exists(CSV) or os.environ.get("BENCH_REGENERATE"):
        shutil.rmtree(LANDING, ignore_errors=True)
        print(f"generating {ROWS:,} rows ...", flush=True)
        secs, _ = run("generate", ALLIANCE + ["generate", "--rows", str(ROWS), "--months", "1", "--trusts", "RAL", "--no-screening"])
        print(f"  generated in {secs:.1f} s")
    rows = sum(1 for _ in open(CSV, "rb")) - 1
    size_mb = os.path.getsize(CSV) / 1e6
    print(f"input: {CSV} — {rows:,} rows, {size_mb:,.0f} MB")
    shutil.rmtree(os.path.join(ROOT, "warehouse"), ignore_errors=True)
    results = []
    results.append(("alliance ingest",) + run("alliance", ALLIANCE + ["ingest", "--pipeline", "trust_pathways_ral"]))
    noop = run("alliance no-op", ALLIANCE + ["ingest", "--pipeline", "trust_pathways_ral"])
    results.append(("duckdb (2 threads)",) + run("duckdb", [sys.executable, "-c", DUCKDB]))
    results.append(("polars",) + run("polars", [sys.executable, "-c", POLARS], env=dict(os.environ, POLARS_MAX_THREADS="2")))
    base = results[0][1]
    print(f"\n{'job':<22}{'wall s':>9}{'rows/s':>14}{'MB/s':>9}{'peak RSS MiB':>14}{'× alliance':>12}")
    for name, secs, rss in results:
        print(f"{name:<22}{secs:>9.2f}{rows / secs:>14,.0f}{size_mb / secs:>9.1f}{rss:>14.0f}{secs / base:>12.2f}")
    print(f"\nno-op re-run (unchanged file): {noop[0]:.2f} s")
    out = [f for f in os.listdir(os.path.join(ROOT, "warehouse/staging/trust_pathways_ral")) if f]
    print(f"alliance staging months: {out}")


if __name__ == "__main__":
    main()
