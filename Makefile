# Developer and CI entry points. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3.11
VENV := .venv
CLUSTER := hack/local-cluster.sh
CLUSTER_DIR ?= .cluster
PYTEST_ARGS ?=

.PHONY: venv binaries cluster-up cluster-down cluster-status test lint demo lock clean

venv: $(VENV)/.installed

# Reinstalled when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# kube-apiserver, etcd and kubectl: $KUBEBUILDER_ASSETS, or built once with Go into
# ~/.cache/prepull-agent/ (10-30 minutes cold, instant afterwards).
binaries:
	$(CLUSTER) binaries

# A local API server for the demo and manual poking: KUBECONFIG=$(CLUSTER_DIR)/kubeconfig
cluster-up: binaries
	$(CLUSTER) up $(CLUSTER_DIR)

cluster-down:
	$(CLUSTER) down $(CLUSTER_DIR)

cluster-status:
	$(CLUSTER) status $(CLUSTER_DIR)

# Integration tests start their own cluster in a temp dir (not $(CLUSTER_DIR)).
test: venv lint binaries
	KUBEBUILDER_ASSETS="$$($(CLUSTER) binaries)" $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The agent's main job on the local cluster with the sample data: the plan and diff of a
# dry run, the real run, and the CR it wrote. Re-running starts over from the sample data.
KUBECTL = "$$($(CLUSTER) binaries)/kubectl" --kubeconfig $(CLUSTER_DIR)/kubeconfig
AGENT = $(VENV)/bin/prepull-agent
ON_LOCAL = --kubeconfig $(CLUSTER_DIR)/kubeconfig --log-format console --config samples/agent-config.yaml
demo: venv cluster-up
	$(VENV)/bin/python -m tests.harness.loader --kubeconfig $(CLUSTER_DIR)/kubeconfig samples/cluster
	@printf '\n=== prepull-agent once --dry-run ===\n'
	$(AGENT) once --dry-run $(ON_LOCAL)
	@printf '\n=== prepull-agent once ===\n'
	$(AGENT) once $(ON_LOCAL)
	@for ns in openshift-operators image-puller-gpu; do \
	  printf '\n=== the KubernetesImagePuller %s/image-puller now ===\n' $$ns; \
	  $(KUBECTL) -n $$ns get kubernetesimagepuller image-puller \
	    -o jsonpath='{.spec.images}{"\n"}owned by the agent: {.metadata.annotations.prepull-agent\.io/owned-entries}{"\n"}'; \
	done
	@printf '\n=== a second run changes nothing ===\n'
	$(AGENT) once --output json $(ON_LOCAL) 2>/dev/null | $(VENV)/bin/python -c 'import json,sys; d=json.load(sys.stdin); [print(t["target"]["name"], "changed:", t["changed"], "written:", t["written"]) for t in d["targets"]]'
	@echo "The cluster keeps running: KUBECONFIG=$(CLUSTER_DIR)/kubeconfig; make cluster-down stops it."

# Type checks, lint and the import contracts of the package (part of `make test`).
lint: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check agent
	$(VENV)/bin/lint-imports

# The image's hash-locked requirements (Dockerfile), from pyproject.toml's dependencies and
# build requirements; run after changing either. Needs pip-tools (pip install pip-tools).
lock:
	pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock pyproject.toml
	pip-compile --quiet --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file requirements-build.lock requirements-build.in

clean: cluster-down
	rm -rf $(VENV) .pytest_cache .hypothesis .import_linter_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
