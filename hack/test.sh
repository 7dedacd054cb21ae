#!/usr/bin/env bash
# The whole test suite: lint, types, import contracts, then unit, integration (real RabbitMQ),
# e2e (real kube-apiserver + kube-controller-manager + RabbitMQ), conformance (each worker
# SDK against the wire protocol, docs/conformance.md), in-cluster (the chart on
# the test bed's own node, hack/testbed/node.py) and chaos (faults on a 3-node RabbitMQ
# cluster and the apiserver) tests in one pytest run.
# Arguments go to pytest: paths run only those tests (`make test ARGS=tests/e2e/test_worker.py`),
# options alone (-x, -k ...) apply to the whole suite (pyproject's testpaths).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash hack/install-deps.sh
printf '\n==> ruff\n'; .venv/bin/ruff check . && .venv/bin/ruff format --check .
printf '\n==> mypy (strict)\n'; .venv/bin/mypy
printf '\n==> import contracts (lint-imports)\n'; .venv/bin/lint-imports
printf '\n==> pytest %s\n' "${*:-tests/unit, tests/integration, tests/e2e, tests/conformance, tests/incluster, tests/chaos}"
.venv/bin/pytest "$@"
printf '\n==> all checks passed in %ss\n' "$((SECONDS - start))"
