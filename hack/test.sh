#!/usr/bin/env bash
# The whole test suite: lint, types, then unit, integration (real RabbitMQ) and e2e (real
# kube-apiserver + kube-controller-manager + RabbitMQ) and in-cluster (the chart on the test
# bed's own node, hack/testbed/node.py) tests in one pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash hack/install-deps.sh
printf '\n==> ruff\n'; .venv/bin/ruff check .
printf '\n==> mypy (strict)\n'; .venv/bin/mypy
printf '\n==> pytest: tests/unit, tests/integration, tests/e2e, tests/incluster\n'
.venv/bin/pytest tests "$@"
printf '\n==> all checks passed in %ss\n' "$((SECONDS - start))"
