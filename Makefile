# The README's commands. `make demo` and `make test` work on a fresh machine: they create .venv with the
# engine's dependencies when it is missing, build the Swift package, then run.
PYTHON ?= python3
SWIFT ?= swift
VENV := .venv
VPY := $(VENV)/bin/python
REEL := .build/debug/reel
export REEL_PYTHON := $(CURDIR)/$(VPY)
# The toolchain's lld links the debug binaries in about 3 s where the system's linker takes about 20 s each.
SWIFT_BUILD_FLAGS ?= $(if $(shell command -v ld.lld),-Xswiftc -use-ld=lld)
export SWIFT_BUILD_FLAGS

.PHONY: demo test format lint venv build swift-test engine-test web-test api-test comfy-test clean bundle postgres-shell soak

# uv (from PyPI) fetches PyTorch and its CUDA libraries in parallel: about 2 minutes where pip takes 8 or more; pip
# is the fallback. Both compile the packages' bytecode as they install them: where PYTHONDONTWRITEBYTECODE is set (as
# on CI), Python would otherwise compile PyTorch's sources again in every process that imports it, several CPU
# seconds each time.
$(VENV)/.installed: engine/pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	($(VPY) -m pip install -q uv && $(VENV)/bin/uv pip install -q --compile-bytecode --python $(VPY) -e 'engine[test]') \
		|| $(VPY) -m pip install -q -e 'engine[test]'
	touch $@

venv: $(VENV)/.installed

# The API fuzzer and ComfyUI's clients, pinned, into the same .venv (comfy-cli for its converter alone, without its
# dependencies).
$(VENV)/.api-installed: $(VENV)/.installed e2e/api/requirements.txt e2e/comfy/requirements.txt
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(VPY) -r e2e/api/requirements.txt \
		-r e2e/comfy/requirements.txt || $(VPY) -m pip install -q -r e2e/api/requirements.txt -r e2e/comfy/requirements.txt
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(VPY) --no-deps comfy-cli==1.23.0 \
		|| $(VPY) -m pip install -q --no-deps comfy-cli==1.23.0
	touch $@

build:
	$(SWIFT) build --product reel $(SWIFT_BUILD_FLAGS)

demo: venv build
	$(REEL) batch examples/prompts.csv --model tiny --device cpu --out out

# Lint first (ruff; the model catalog embedded in Swift matches engine/reel_engine/catalog.json), then the tests.
engine-test: venv
	cd engine && ../$(VPY) -m ruff check .
	$(PYTHON) scripts/embed-catalog.py --check
	cd engine && ../$(VPY) -m pytest -q

# The Swift tests that time something run alone, after the rest ran in parallel (see scripts/test.sh).
# scripts/with-postgres.sh starts a throwaway PostgreSQL server on loopback (installing it when missing) for the
# PostgreSQL store and cluster tests; REEL_REQUIRE_POSTGRES makes them fail, not skip, should it be missing.
REEL_TIMED_TESTS := ConnectionLimitTests|ClientInputRoutesTests|ClientInputTests|ClientInputCLITests|CSVReaderTests|PostgresStoreTests/(datesAndLease|aRenewedLease)|EventStreamTests/idleStreamSendsHeartbeats|MalformedRequestTests|ParserFuzzTests/chunkedBodiesAlwaysGetAnAnswer|PlacementSchedulerTests/(replicasRunTwoJobsAtOnce|aSplitSlotEncodesTheNextPromptWhileAJobDenoises)
export REEL_TIMED_TESTS
swift-test: venv
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	OMP_NUM_THREADS=1 REEL_REQUIRE_POSTGRES=1 scripts/with-postgres.sh $(SWIFT) test --skip-build --parallel \
		--skip '$(REEL_TIMED_TESTS)'
	OMP_NUM_THREADS=1 REEL_REQUIRE_POSTGRES=1 scripts/with-postgres.sh $(SWIFT) test --skip-build --no-parallel \
		--filter '$(REEL_TIMED_TESTS)'

# The soak tests (60 jobs with random worker kills on one node; 100 jobs on two nodes) at full size with the real
# engine; `make test` runs them with the scripted worker.
soak: venv build
	OMP_NUM_THREADS=1 REEL_SOAK=1 REEL_REQUIRE_POSTGRES=1 scripts/with-postgres.sh $(SWIFT) test $(SWIFT_BUILD_FLAGS) --no-parallel \
		--filter 'sixtyJobsOverThreeWorkersWithFaultsEndExactlyOnce|aHundredJobsOnTwoNodesRunExactlyOnce'

# A shell with a throwaway PostgreSQL server and REEL_TEST_POSTGRES_URL set, to run those tests by hand.
postgres-shell:
	scripts/with-postgres.sh $${SHELL:-bash}

# The web page in a real headless Chromium (Debian's package, installed when missing) against a real `reel serve`;
# screenshots land in test-artifacts/web/. First checks that the embedded copy of web/ is up to date.
web-test: venv build
	$(PYTHON) scripts/embed-web.py --check
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei)
	$(PYTHON) e2e/web/test_web.py --reel $(REEL) --python $(VPY)

# The REST API against its contract: schemathesis fuzzes docs/openapi.json against a live `reel serve` (scripted
# worker), with and without API keys, then /healthz is timed while 16 clients send worst-case requests.
# Reports land in test-artifacts/api/. First checks that the embedded copy of docs/openapi.json is up to date.
api-test: $(VENV)/.api-installed build
	$(PYTHON) scripts/embed-web.py --check
	$(VPY) e2e/api/test_api.py --reel $(REEL) --python $(VPY) --schemathesis $(VENV)/bin/schemathesis
	$(VPY) e2e/api/healthz_under_load.py --reel $(REEL) --seconds 20

# ComfyUI's API with real clients from PyPI and the official Wan2.2 templates, the real engine and tiny models.
comfy-test: $(VENV)/.api-installed build
	$(VPY) e2e/comfy/test_comfy.py --reel $(REEL) --python $(VPY)

# Swift code formatted as .swift-format says; `make lint` checks it (make test does too), `make format` rewrites it.
# The generated files (*.generated.swift) are left as their scripts write them.
SWIFT_FILES = Package.swift $(shell find Sources Tests -name '*.swift' ! -name '*.generated.swift' | sort)
format:
	$(SWIFT) format --in-place --parallel $(SWIFT_FILES)

lint:
	$(SWIFT) format lint --strict --parallel $(SWIFT_FILES)

# Everything above, the independent parts side by side (scripts/test.sh says in which order); logs in
# test-artifacts/logs/.
test:
	SWIFT=$(SWIFT) PYTHON=$(PYTHON) scripts/test.sh

# dist/: a stripped static `reel`, the engine and the wheels a CUDA host with PyTorch may lack, for installing on a
# GPU server without internet (dist/install.sh). Checks that dist/ stays under 60 MiB.
bundle:
	scripts/make-bundle.sh

clean:
	rm -rf .build out
