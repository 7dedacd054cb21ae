# syntax=docker/dockerfile:1
# One image for the whole project: the entrypoints asynctask-operator, asynctask-worker and
# asynctask-gateway, from the one wheel that pyproject.toml builds. Worker pools with handlers
# of their own build FROM this image and add their code (see docs/deploying.md).
#
#   docker build -t asynctask:0.1.0 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" --build-arg SOURCE=<repository URL> .
#   docker run --rm asynctask:0.1.0 asynctask-worker --version
#
# `make dist` builds it (with buildah, hack/testbed/images.py) into an OCI archive, with
# VERSION from asynctask_worker/_version.py and REVISION the last commit of the image's inputs.
#
# Stage 1 builds the wheel and installs it with its dependencies into a virtualenv;
# stage 2 is the slim runtime: that virtualenv, the example handlers, a non-root user, and
# no compilers, pip or build files. Both stages use the same base image, so the virtualenv's
# interpreter links stay valid when it is copied.

# The base of both stages. Users build on the public image named here; the test bed, which
# has no registry, passes a Debian-built Python 3.11 image of its own with
# --build-arg BASE_IMAGE=... (hack/testbed/images.py), so the file users build is the file tested.
ARG BASE_IMAGE=python:3.11.14-slim-trixie

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/asynctask
COPY pyproject.toml README.md LICENSE ./
COPY operator/ operator/
COPY worker/ worker/
COPY gateway/ gateway/
COPY client/ client/
# The same command the tests use to check the wheel (tests/unit/test_dockerfile.py).
# The image runs the operator too: the wheel with its `operator` extra (kopf, kubernetes).
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/asynctask/bin/pip install "$(ls /wheels/asynctask_k8s-*.whl)[operator]" \
 && /opt/asynctask/bin/pip uninstall -y pip setuptools wheel \
 && /opt/asynctask/bin/python -m compileall -q /opt/asynctask/lib

FROM ${BASE_IMAGE} AS runtime
# The OCI labels of a release: its version (asynctask_worker/_version.py), the commit and the
# repository it was built from.
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="asynctask" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.description="AsyncTask operator, worker and HTTP gateway (asynctask-operator, asynctask-worker, asynctask-gateway)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 asynctask \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin asynctask
COPY --from=build /opt/asynctask /opt/asynctask
# The example handlers (examples/example_tasks.py) for the chart's example worker pool.
COPY examples/example_tasks.py /app/examples/
ENV PATH=/opt/asynctask/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# The chart always sets the command; `docker run IMAGE` alone prints how to use it.
CMD ["asynctask-operator", "--help"]
