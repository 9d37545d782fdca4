# notary: `make demo` and `make test` work from a clean clone on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NOTARY := $(VENV)/bin/notary
DEBS := runc umoci skopeo podman busybox-static docker-registry docker.io uidmap fuse-overlayfs apache2-utils curl openssl hyperfine rsync git default-jre-headless \
	crun mmdebstrap systemd chromium softhsm2
PYTEST_ARGS ?=

.PHONY: help setup deps venv test lint demo bench immudb immudb-up clean components webhook-image dist ci-runners cosign

help:
	@echo "make demo       build a busybox OCI image, notarize, verify, revoke, show history (embedded ledger)"
	@echo "make test       set everything up and run the whole test suite"
	@echo "make bench      benchmarks (ratios, this machine)"
	@echo "make immudb     obtain the pinned immudb server + immuclient (built from the Go module proxy)"
	@echo "make immudb-up  start an immudb on loopback for trying notary against it"
	@echo "make lint       ruff"
	@echo "make components containerd 2.x, etcd, kube-apiserver for the tests (pinned, built from the Go module proxy)"
	@echo "make webhook-image  the gate webhook's container image (podman; Debian base made with mmdebstrap)"
	@echo "make dist       build the notary-ledger wheel into dist/ and print its sha256 (what CI installs, by hash)"

setup: deps venv

# Debian tools the demo and the integration tests use. Installs only what is missing (needs root or sudo).
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	@# the distribution was called `notary` before it got a name of its own: drop that editable install first
	@$(VENV)/bin/pip uninstall -q -y notary >/dev/null 2>&1 || true
	$(VENV)/bin/pip install -q -e '.[test,immudb,docker]' --config-settings editable_mode=compat
	@# immudb-py 1.5.0 lists `google-api`, an unrelated package whose google/__init__.py imports the appier web
	@# framework, so every protobuf import pays ~60 ms for nothing. immudb-py never uses it: remove it.
	$(VENV)/bin/pip uninstall -q -y google-api appier
	touch $@

venv: $(VENV)/.installed

immudb: venv
	@scripts/immudb-build.sh

immudb-up: immudb
	@scripts/immudb-up.sh

# Cached under ~/.cache/notary/; the first build takes long (README, "What the first CI run costs").
components:
	@scripts/components.sh

webhook-image:
	@scripts/webhook-image.sh

lint: venv
	$(VENV)/bin/ruff check notary tests benchmarks
	$(VENV)/bin/mypy

# What the tests run ci-templates/ with: act and tekton-validate (Go, built from the module proxy), the C2SP
# peers (c2sp-peer, litewitness, witnessctl: the checkpoint and witness tests), local-kms (an AWS KMS API server
# the awskms:// signer's tests sign through),
# gitlab-ci-local and npm-groovy-lint (npm, from lockfiles), each pinned and cached under ~/.cache/notary/.
ci-runners:
	@scripts/act-build.sh >/dev/null
	@scripts/tekton-validate-build.sh >/dev/null
	@scripts/c2sp-peer-build.sh >/dev/null
	@scripts/local-kms-build.sh >/dev/null
	@scripts/gitlab-ci-local-install.sh >/dev/null
	@scripts/npm-tool-install.sh npm-groovy-lint >/dev/null

test: setup immudb ci-runners
	$(VENV)/bin/ruff check notary tests benchmarks
	$(VENV)/bin/mypy
	@# containerd, etcd and kube-apiserver build in the background while the suite runs; the tests that need them
	@# run last (tests/support/late_components.py) and wait for them
	IMMUDB_DIR="$$(scripts/immudb-build.sh | tail -n 1)" scripts/components.sh --during \
	  $(VENV)/bin/pytest -q -ra -p tests.support.late_components $(PYTEST_ARGS)

demo: setup
	@scripts/demo.sh

dist: venv
	@scripts/dist.sh dist

# cosign, the measured peer of `make bench` (pinned, built from the Go module proxy; never needed by CI)
cosign:
	@scripts/cosign-build.sh >/dev/null

bench: setup immudb cosign
	@$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-work
