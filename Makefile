# The two commands of the README:
#   make dev    run the system locally (control plane, RabbitMQ, operator, example worker)
#               and submit the example task
#   make test   run every test (what CI runs)
# and the everyday loop (CONTRIBUTING.md):
#   make unit   the unit tests only, about 20 s; ARGS go to pytest
#   make lint   ruff, mypy --strict and the import contracts (lint-imports)
#   make fmt    ruff format (FILES=... for some files only)
# and the release:
#   make dist   wheel, sdist, chart and image archive, checked, with SHA256SUMS, into dist/
.PHONY: dev test unit deps lint fmt kind-e2e dist

dev:  ## ARGS=--once stops after the example task
	bash hack/dev.sh $(ARGS)

test:  ## ARGS go to pytest, e.g. make test ARGS="tests/e2e/test_worker.py -k cancel"
	bash hack/test.sh $(ARGS)

unit:  ## no services started: pure logic, the chart and the SDK's stub broker
	.venv/bin/pytest tests/unit -q $(ARGS)

deps:
	bash hack/install-deps.sh

lint:
	.venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/lint-imports

fmt:
	.venv/bin/ruff format $(or $(FILES),.)

kind-e2e:  ## needs Docker: the e2e suite against a kind cluster; ARGS go to pytest
	bash hack/kind-e2e.sh $(ARGS)

dist:  ## the release's artifacts into dist/ (docs/releasing.md); ARGS go to hack/dist.py
	PYTHONPATH=hack .venv/bin/python hack/dist.py $(ARGS)
