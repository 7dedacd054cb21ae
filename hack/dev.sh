#!/usr/bin/env bash
# The local dev stack: installs what is missing, then runs the control plane, RabbitMQ,
# the operator and the example worker, and submits examples/hello.yaml.
# Pass --once to stop after the example task finished.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh --dev
PYTHONPATH=hack exec .venv/bin/python -m testbed.devstack "$@"
