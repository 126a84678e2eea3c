"""Benchmark, end to end, in one run on one machine:

1. generate: a Royal Free pathway CSV of BENCH_ROWS rows (default 20 million, ~2.7 GB);
2. ingest: typed CSV -> zstd Parquet by alliance (the real path: contract, NHS-number
   pseudonymisation, quarantine, manifest), by DuckDB and by Polars on the same file, all three
   at zstd level 1 (alliance's default);
3. marts: the pathway models (stg_trust_pathways -> int_pathways -> waits by group, early
   diagnosis, backlog, independent sector, activity recovery) by alliance build and by DuckDB
   doing the same job over the same staging Parquet: the same SQL files (Wilson intervals as
   DuckDB macros), int_pathways kept as a table and written to zstd Parquet like ours, every
   model's data tests run with the very SQL alliance runs (`alliance validate --json`), and the
   marts written to Parquet; and, for reference, DuckDB doing less: int_pathways only in memory
   and untested;
4. no-op: `alliance run` again on unchanged landing files; then the same over 1,000 more
   landing files (the GP-practice cervical screening file cut into 1,000 files of 7 or 8
   practices each, all ingested once first).

Wall time and peak RSS are measured per process with wait4(2); ratios are against alliance."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROWS = int(os.environ.get("BENCH_ROWS", "20000000"))
ROOT = os.path.join(os.getcwd(), "bench")
LANDING = os.path.join(ROOT, "landing")
CSV = os.path.join(LANDING, "trusts/RAL/RAL_cancer_pathways_2024-01.csv")
ALLIANCE = ["target/release/alliance", "--env", "bench"]
DATE_COLS = ["Referral Date", "First Seen Date", "FDS Date", "DTT Date", "Treatment Date"]
# In dependency order: mart_independent_sector reads mart_activity_recovery.
MARTS = ["mart_waits_by_group", "mart_early_diagnosis", "mart_backlog", "mart_activity_recovery", "mart_independent_sector"]
SELECT = ",".join("+" + m for m in MARTS)


def run(name, argv, env=None):
    """Runs a command; returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-4000:])
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
  TO '{ROOT}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)\"\"\")
"""

POLARS = f"""
import polars as pl
lf = pl.scan_csv('{CSV}', infer_schema=False)
lf = lf.with_columns([pl.col(c).str.to_date('%d/%m/%Y', strict=False) for c in {DATE_COLS!r}] + [pl.col('Age').cast(pl.Int64)])
lf.sink_parquet('{ROOT}/polars.parquet', compression='zstd', compression_level=1)
"""

WILSON = """CREATE MACRO wilson_{side}(x, n) AS CASE WHEN n > 0 THEN CASE WHEN x = {edge} THEN {bound} ELSE
    {clamp}({limit}, (2*x + 3.841458820694124 {sign} 1.959963984540054*sqrt(3.841458820694124 + 4*x*(1 - x/n)))
    / (2*(n + 3.841458820694124))) END END"""

DUCKDB_MARTS = f"""
import duckdb, json, pathlib, sys
lean = sys.argv[1:] == ['lean']
con = duckdb.connect()
con.execute("SET threads TO 2")
wh = '{ROOT}/warehouse'
def staging(name):
    return "read_parquet('" + wh + "/staging/" + name + "/*/*.parquet')"
con.execute("CREATE VIEW trust_pathways_ral AS SELECT * FROM " + staging('trust_pathways_ral'))
for t in ['r1h', 'rqx', 'rrv']:
    con.execute("CREATE VIEW trust_pathways_" + t + " AS SELECT * FROM trust_pathways_ral LIMIT 0")
for ref in ['ref_lsoa_imd', 'ref_org_successors', 'ref_independent_sector']:
    con.execute("CREATE TABLE " + ref + " AS SELECT * FROM " + staging(ref))
con.execute({WILSON.format(side='lower', edge='0', bound='0.0', clamp='greatest', limit='0.0', sign='-')!r})
con.execute({WILSON.format(side='upper', edge='n', bound='1.0', clamp='least', limit='1.0', sign='+')!r})
sql = pathlib.Path('sql')
for view in ['stg_trust_pathway_snapshots', 'stg_trust_pathways']:
    con.execute("CREATE VIEW " + view + " AS " + (sql / 'staging' / (view + '.sql')).read_text())
out = pathlib.Path('{ROOT}/duckdb_marts')
out.mkdir(exist_ok=True)
tests = {{m["model"]: m["tests"] for m in json.loads(pathlib.Path('{ROOT}/tests.json').read_text())}}
def build(name, path):
    con.execute("CREATE TABLE " + name + " AS " + (sql / path).read_text())
    if lean and name == 'int_pathways':
        return
    con.execute("COPY " + name + " TO '" + str(out / (name + '.parquet')) + "' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)")
    for t in tests[name]:
        failing = con.execute("SELECT count(*) FROM (" + t["failing_rows_sql"] + ")").fetchone()[0]
        if failing:
            raise SystemExit(name + ": data test " + t["name"] + " failed in DuckDB")
build('int_pathways', 'intermediate/int_pathways.sql')
for m in {MARTS!r}:
    build(m, 'marts/' + m + '.sql')
"""


def table(title, results, rows, size_mb):
    base = results[0][1]
    print(f"\n{title}")
    print(f"{'job':<34}{'wall s':>9}{'rows/s':>14}{'MB/s':>9}{'peak RSS MiB':>14}{'x alliance':>12}")
    for name, secs, rss in results:
        print(f"{name:<34}{secs:>9.2f}{rows / secs:>14,.0f}{size_mb / secs:>9.1f}{rss:>14.0f}{secs / base:>12.2f}")


def many_landing_files(count):
    """Cuts the seeded GP-practice cervical screening file into `count` landing files (the same
    pipeline's glob); returns how many landing files there are in all."""
    folder = os.path.join(LANDING, "screening/ohid")
    whole = os.path.join(folder, "cervicaldec2017.csv")
    with open(whole, "rb") as f:
        header, *lines = f.read().splitlines(keepends=True)
    for name in os.listdir(folder):
        if name.startswith("cervicaldec2017_part"):
            os.remove(os.path.join(folder, name))
    for i in range(count):
        part = lines[i * len(lines) // count:(i + 1) * len(lines) // count]
        with open(os.path.join(folder, f"cervicaldec2017_part{i:04}.csv"), "wb") as f:
            f.write(header + b"".join(part))
    return sum(len(files) for _, _, files in os.walk(LANDING))


def main():
    os.makedirs(ROOT, exist_ok=True)
    # A throw-away key for synthetic data when the caller has none (make exports the local key).
    os.environ.setdefault("ALLIANCE_PSEUDO_KEY", os.urandom(32).hex())
    if not os.path.exists(CSV) or os.environ.get("BENCH_REGENERATE"):
        shutil.rmtree(LANDING, ignore_errors=True)
        print(f"generating {ROWS:,} rows ...", flush=True)
        secs, _ = run("generate", ALLIANCE + ["generate", "--rows", str(ROWS), "--months", "1", "--trusts", "RAL", "--no-screening"])
        print(f"  generated in {secs:.1f} s")
    run("seed", ALLIANCE + ["seed", "--from", os.environ.get("SHARED", "../shared/data")])
    rows = sum(1 for _ in open(CSV, "rb")) - 1
    size_mb = os.path.getsize(CSV) / 1e6
    print(f"input: {CSV} — {rows:,} rows, {size_mb:,.0f} MB")
    shutil.rmtree(os.path.join(ROOT, "warehouse"), ignore_errors=True)

    ingest = [("alliance ingest",) + run("alliance", ALLIANCE + ["ingest", "--pipeline", "trust_pathways_ral"])]
    ingest.append(("duckdb (2 threads)",) + run("duckdb", [sys.executable, "-c", DUCKDB]))
    ingest.append(("polars",) + run("polars", [sys.executable, "-c", POLARS], env=dict(os.environ, POLARS_MAX_THREADS="2")))
    table("1. ingest: typed CSV -> zstd Parquet", ingest, rows, size_mb)

    run("reference data", ALLIANCE + ["ingest"])
    with open(os.path.join(ROOT, "tests.json"), "w") as f:
        subprocess.run(ALLIANCE + ["validate", "--json"], stdout=f, check=True)
    marts = [("alliance build (pathway marts)",) + run("alliance build", ALLIANCE + ["build", "--force", "--select", SELECT])]
    marts.append(("duckdb, same job (2 threads)",) + run("duckdb marts", [sys.executable, "-c", DUCKDB_MARTS]))
    # For reference, less work than alliance does: int_pathways neither written nor tested.
    lean = run("duckdb marts, lean", [sys.executable, "-c", DUCKDB_MARTS, "lean"])
    marts.append(("duckdb lean: int_pathways in RAM",) + lean)
    table("2. marts: int_pathways + 5 pathway marts from staging Parquet, written and tested", marts, rows, size_mb)

    run("alliance first run", ALLIANCE + ["run"])
    noop, _ = run("alliance no-op", ALLIANCE + ["run"])
    print(f"\n3. no-op re-run (`alliance run`, nothing new): {noop:.2f} s")
    files = many_landing_files(1000)
    run("alliance ingest of the 1,000 files", ALLIANCE + ["run"])
    noop_many, _ = run("alliance no-op over 1,000 files", ALLIANCE + ["run"])
    print(f"   the same with {files:,} landing files: {noop_many:.2f} s")
    e2e = ingest[0][1] + marts[0][1]
    duck = ingest[1][1] + marts[1][1]
    print(f"\nend to end (ingest + marts): alliance {e2e:.1f} s, duckdb {duck:.1f} s, duckdb/alliance {duck / e2e:.2f}")


if __name__ == "__main__":
    main()
