# alliance-warehouse: every job is a make target. `make help` lists them.
#
# ENV picks config/<ENV>.toml (local = folders in this checkout). PROFILE=release builds an
# optimised binary (slower to compile, much faster on big extracts).

ENV      ?= local
PROFILE  ?= dev
SHARED   ?= ../shared/data
ROWS     ?= 60000
ARGS     ?=
ROLE     ?= analyst
LISTEN   ?= 127.0.0.1:50051

CARGO    ?= cargo
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
BIN_DIR  := $(TARGET_DIR)/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
ALLIANCE := $(BIN_DIR)/alliance --env $(ENV)

# The pseudonymisation key comes from the environment. For local work a random key is made once
# and kept in .local/pseudo.key (git-ignored); production sets ALLIANCE_PSEUDO_KEY from a vault.
ifeq ($(strip $(ALLIANCE_PSEUDO_KEY)),)
ALLIANCE_PSEUDO_KEY := $(shell mkdir -p .local && { test -s .local/pseudo.key || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > .local/pseudo.key; } && cat .local/pseudo.key)
endif
export ALLIANCE_PSEUDO_KEY

.PHONY: shell docs report help build demo seed generate ingest marts run query status verify schedule validate serve test lint fmt bench tools clean-data clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the alliance binary (PROFILE=release for an optimised one)
	$(CARGO) build --profile $(PROFILE) --bin alliance

demo: build ## The main job on the embedded default: seed real data, generate extracts, ingest, build marts, show headlines
	$(ALLIANCE) validate
	$(ALLIANCE) seed --from $(SHARED)
	$(ALLIANCE) generate --rows $(ROWS) --fault-rate 0.001
	$(ALLIANCE) generate --rows $(ROWS) --start 2019-01 --months 6 --no-screening --seed 2019
	$(ALLIANCE) run
	@echo; echo "== Headlines"
	$(ALLIANCE) query "SELECT org_name, standard, total, round(100 * performance, 1) AS performance_pct, 100 * standard_threshold AS standard_pct FROM mart_cwt_performance WHERE level IN ('england', 'alliance') AND basis = 'provider' AND route = 'ALL' AND cancer_type = 'ALL' AND month = (SELECT max(month) FROM mart_cwt_performance WHERE basis = 'provider') ORDER BY standard, level DESC, org_name"
	$(ALLIANCE) query "SELECT indicator, area, period, round(sii, 3) AS sii, round(relative_gap, 3) AS relative_gap FROM mart_inequality_gaps WHERE NOT suppressed AND indicator NOT LIKE 'screening%' ORDER BY indicator, area"
	$(ALLIANCE) query "SELECT programme, area AS imd_quintile, screened, eligible, round(100 * coverage, 1) AS coverage_pct, meets_acceptable FROM mart_screening_coverage WHERE level = 'imd_quintile' AND month = (SELECT max(month) FROM mart_screening_coverage) ORDER BY programme, area"

seed: build ## Copy the published CWT extracts and reference data into landing
	$(ALLIANCE) seed --from $(SHARED)

generate: build ## Write synthetic trust and screening extracts into landing (ROWS=..., ARGS=...)
	$(ALLIANCE) generate --rows $(ROWS) $(ARGS)

ingest: build ## Ingest new and changed landing files into staging Parquet (ARGS="--pipeline NAME")
	$(ALLIANCE) ingest $(ARGS)

marts: build ## Run the SQL models, test and publish the marts (SELECT=mart_x+ / +mart_x to choose)
	$(ALLIANCE) build $(if $(SELECT),--select $(SELECT))

run: build ## The whole job: ingest new files, then build and publish the marts
	$(ALLIANCE) run

query: build ## Read-only SQL over the marts (ROLE=engineer: also models and staging): make query SQL="select ..."
	$(ALLIANCE) query --role $(ROLE) "$(SQL)"

status: build ## Last runs, the warehouse lock, waiting landing files and when each pipeline is due
	$(ALLIANCE) status

verify: build ## Check every manifest, staging object, model and mart against what the pipeline recorded (exit 6 on a difference)
	$(ALLIANCE) verify

schedule: build ## Run pipelines on their cron schedules and when new files land, until Ctrl-C/SIGTERM
	$(ALLIANCE) schedule

shell: build ## An interactive read-only SQL shell over the marts (ROLE=engineer: all tables)
	$(ALLIANCE) shell --role $(ROLE)

# Tokens come from ALLIANCE_SERVE_TOKENS="analyst=TOKEN1,engineer=TOKEN2". Unset, local work gets
# two random tokens kept in .local/serve.tokens (git-ignored); production sets the variable from a vault.
serve: build ## Arrow Flight SQL server for Python/ADBC, DBeaver, Power BI (ALLIANCE_SERVE_TOKENS, LISTEN=127.0.0.1:50051, ARGS="--tls-cert F --tls-key F")
	@if [ -z "$$ALLIANCE_SERVE_TOKENS" ]; then \
		mkdir -p .local; \
		test -s .local/serve.tokens || printf 'analyst=%s,engineer=%s' "$$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" "$$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" > .local/serve.tokens; \
		echo "ALLIANCE_SERVE_TOKENS is not set: serving with the local tokens in .local/serve.tokens" >&2; \
		ALLIANCE_SERVE_TOKENS="$$(cat .local/serve.tokens)"; export ALLIANCE_SERVE_TOKENS; \
	fi; \
	$(ALLIANCE) serve --listen $(LISTEN) $(ARGS)

docs: build ## Write the catalogue of pipelines, models and marts to site/catalogue.html
	$(ALLIANCE) docs --out site/catalogue.html

report: build ## Write the working group's report (charts from the marts) to site/report.html
	$(ALLIANCE) report --out site/report.html

validate: build ## Check every pipeline file, SQL model and data test and the environment without running anything
	$(ALLIANCE) validate

tools: ## Install what the tests need if missing: S3 server, Azure emulator, DuckDB, pyarrow, ADBC Flight SQL, Chromium
	@command -v s3s-fs >/dev/null 2>&1 || $(CARGO) install s3s-fs --version 0.14.1 --features binary --locked
	@command -v azurite-blob >/dev/null 2>&1 || npm install --global --no-audit --no-fund azurite@3
	@python3 -c "import duckdb, pyarrow" 2>/dev/null || python3 -m pip install --quiet duckdb pyarrow
	@python3 -c "import adbc_driver_flightsql, adbc_driver_manager" 2>/dev/null || python3 -m pip install --quiet adbc-driver-flightsql adbc-driver-manager
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# One build with the `ballista` feature runs every test, the Ballista cluster's included: built
# without it as well, the dependencies (Arrow's IPC, DataFusion's compression codecs) would be
# compiled twice. `make lint` checks both feature sets.
test: tools ## Run every test: unit, integration (real CWT files, PHE methods, marts, S3, Azurite, crashes), CLI, Ballista cluster
	$(CARGO) test --all-targets --features ballista

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --features ballista -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt

bench: ## Benchmark: 20M-row pathway CSV ingest against DuckDB (BENCH_ROWS=...)
	scripts/bench.sh

clean-data: ## Remove local landing and warehouse folders
	rm -rf landing warehouse

clean: clean-data ## Remove build output too
	$(CARGO) clean
