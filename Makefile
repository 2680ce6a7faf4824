# The developer interface of finrisk. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.finrisk-installed
# The repository's distributions: finrisk (the core, here) and the folders that add to its
# namespace. Installed editable in compat mode: a plain path per folder on sys.path, which mypy,
# import-linter and IDEs follow (the default mode's import hooks hide the folders from them).
DISTRIBUTIONS := . ./serving ./components ./pipelines ./devtools ./dashboard
LOCAL_PACKAGES := finrisk finrisk-serving finrisk-components finrisk-pipelines finrisk-devtools \
	finrisk-dashboard
NO_EMIT := $(foreach name,$(LOCAL_PACKAGES),--no-emit-package $(name))

.PHONY: help setup browser image-tools images push-images lock test unit integration e2e lint format demo smoke stack-up stack-down stack-status compile clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned lock (quick when nothing changed)

# --compile-bytecode: bytecode now, not at each import. With PYTHONDONTWRITEBYTECODE set (as on
# our machines) every process would otherwise compile scikit-learn, pandas, MLflow... again on
# start-up: seconds for each bridge, predictor and pipeline step.
$(STAMP): requirements.lock pyproject.toml $(wildcard */pyproject.toml)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; finrisk needs Python 3.11 (README: Prerequisites)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --config-settings editable_mode=compat \
		$(foreach dist,$(DISTRIBUTIONS),-e $(dist))
	@touch $@

# The images' locks are resolved within the development lock, so an image runs the versions the
# tests ran: the core's (the dependency layer both images share), then each image's own.
IMAGE_LOCKS := core serving components

lock: ## re-resolve requirements.in, and the images' requirements.{core,serving,components}.in within it
	@test -x $(BIN)/uv || $(MAKE) setup
	$(BIN)/uv pip compile -q --python-version 3.11 $(NO_EMIT) requirements.in -o requirements.lock
	for name in $(IMAGE_LOCKS); do \
		$(BIN)/uv pip compile -q --python-version 3.11 $(NO_EMIT) -c requirements.lock \
			requirements.$$name.in -o requirements.$$name.lock || exit 1; \
	done

browser: ## install Debian's chromium for the dashboard's browser tests, when missing
	@scripts/ensure-chromium.sh

image-tools: ## install Debian's buildah and debootstrap for the images, when missing
	@scripts/ensure-image-tools.sh

# IMAGE_REPO, IMAGE_TAG, BASE_IMAGE, CA_BUNDLE and IMAGE_TOOL override the settings' defaults
# (finrisk/settings.py: ImagesSettings; FINRISK_IMAGES__* in the environment works too).
IMAGE_FLAGS = $(if $(IMAGE_REPO),--repo $(IMAGE_REPO)) $(if $(IMAGE_TAG),--tag $(IMAGE_TAG)) \
	$(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) $(if $(CA_BUNDLE),--ca-bundle $(CA_BUNDLE)) \
	$(if $(IMAGE_TOOL),--tool $(IMAGE_TOOL))

images: setup image-tools ## build the component and predictor images (cached; IMAGE_REPO=.. IMAGE_TAG=..)
	$(BIN)/finrisk images build $(IMAGE_FLAGS)

push-images: setup image-tools ## build (cached) and push both images to IMAGE_REPO
	$(BIN)/finrisk images push $(IMAGE_FLAGS)

# pytest exits 5 when it collects no test; make passes that on as a failure.
test: setup browser image-tools ## run every test (unit, integration against real local services, e2e)
	$(BIN)/pytest tests

unit: setup ## unit tests only (no services)
	$(BIN)/pytest tests/unit

integration: setup browser image-tools ## integration tests (start Kafka, MLflow, BigQuery emulator as needed)
	$(BIN)/pytest tests/integration

e2e: setup browser ## end-to-end tests
	$(BIN)/pytest tests/e2e

lint: setup ## ruff, mypy, declared dependencies against imports, the import structure
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for dist in $(DISTRIBUTIONS); do (cd $$dist && $(CURDIR)/$(BIN)/deptry .) || exit 1; done
	$(BIN)/lint-imports

format: setup ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: setup ## run finrisk end to end on embedded defaults (the stack stays up; make stack-down)
	$(BIN)/finrisk demo

smoke: setup ## one record through each local service
	$(BIN)/finrisk stack smoke

stack-up: setup ## start Kafka, MLflow and the BigQuery emulator on 127.0.0.1
	$(BIN)/finrisk stack up

stack-down: setup ## end the local services
	$(BIN)/finrisk stack down

stack-status: setup ## show the local services
	$(BIN)/finrisk stack status

compile: setup ## compile the retraining pipeline (IR + Kubernetes manifests) into build/pipeline
	$(BIN)/finrisk pipeline compile --out build/pipeline

clean: stack-down ## stop the stack and remove its data and logs
	rm -rf .finrisk local_outputs
