#!/usr/bin/env bash
# `make bench`: release build, a generated pathway CSV, alliance ingest beside DuckDB and Polars.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import duckdb, polars" 2>/dev/null || python3 -m pip install --quiet duckdb polars
cargo build --release --bin alliance
exec python3 scripts/bench.py "$@"
