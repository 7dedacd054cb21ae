#!/usr/bin/env bash
# The whole test suite: lint, types, import contracts, then unit, integration (real RabbitMQ),
# e2e (real kube-apiserver + kube-controller-manager + RabbitMQ), conformance (each worker
# SDK against the wire protocol, docs/conformance.md), in-cluster (the chart on
# the test bed's own node, hack/testbed/node.py) and chaos (faults on a 3-node RabbitMQ
# cluster and the apiserver) tests, in two pytest runs (below).
# Arguments go to one pytest run instead: paths run only those tests
# (`make test ARGS=tests/e2e/test_worker.py`), options alone (-x, -k ...) apply to the whole
# suite (pyproject's testpaths), in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash hack/install-deps.sh
printf '\n==> ruff\n'; .venv/bin/ruff check . && .venv/bin/ruff format --check .
printf '\n==> mypy (strict)\n'; .venv/bin/mypy
printf '\n==> import contracts (lint-imports)\n'; .venv/bin/lint-imports
if [ "$#" -gt 0 ]; then
  printf '\n==> pytest %s\n' "$*"
  .venv/bin/pytest "$@"
else
  # Most e2e time is waiting (timers, TTLs, takeovers), so these layers run in two pytest
  # processes (pytest-xdist), each with its own control plane, RabbitMQ and operator, a test
  # file at a time each. The in-cluster tests share the test bed's one node and the chaos
  # tests fault the machine's services, so they run after, one at a time, with the e2e tests
  # marked `alone` (pacing measured over fractions of a second: a second pytest process on
  # the same 2 cores would be measured with it).
  printf '\n==> pytest tests/unit, tests/integration, tests/e2e, tests/conformance (two processes)\n'
  failed=0
  .venv/bin/pytest -n 2 --dist loadfile -m "not alone" \
    tests/unit tests/integration tests/e2e tests/conformance || failed=$?
  printf '\n==> pytest tests/incluster, tests/chaos, and the e2e tests marked alone\n'
  .venv/bin/pytest -m "alone or not e2e" tests/incluster tests/chaos tests/e2e || failed=$?
  if [ "$failed" -ne 0 ]; then
    printf '\n==> tests failed (see above) after %ss\n' "$((SECONDS - start))"
    exit "$failed"
  fi
fi
printf '\n==> all checks passed in %ss\n' "$((SECONDS - start))"
