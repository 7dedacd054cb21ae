# The two commands of the README:
#   make dev    run the system locally (control plane, RabbitMQ, operator, example worker)
#               and submit the example task
#   make test   run every test (what CI runs)
.PHONY: dev test deps lint kind-e2e

dev:  ## ARGS=--once stops after the example task
	bash hack/dev.sh $(ARGS)

test:
	bash hack/test.sh

deps:
	bash hack/install-deps.sh

lint:
	.venv/bin/ruff check . && .venv/bin/mypy

kind-e2e:  ## needs Docker: the e2e suite against a kind cluster; ARGS go to pytest
	bash hack/kind-e2e.sh $(ARGS)
