# syntax=docker/dockerfile:1
# prepull-agent on Red Hat UBI 9 with Python 3.11: built from hash-locked requirements,
# run from a minimal image.
#
#   podman build -t prepull-agent:0.1.0 .       (or docker build; BuildKit or buildah)
#   podman run --rm prepull-agent:0.1.0 --version
#
# Reproducible: both base images are pinned to a dated tag (pin their digests too in your
# pipeline: `skopeo inspect docker://IMAGE:TAG`), every Python package is installed from
# requirements.lock / requirements-build.lock with --require-hashes (regenerate both with
# `make lock` after changing pyproject.toml), and only wheels are installed.
#
# Runs as UID 1001 in group 0, and under any UID OpenShift assigns (restricted-v2): the
# application is read-only, owned by root:0 and readable by group 0 and others; nothing in
# the image is written at run time (mount an emptyDir at /tmp for temporary files).

# ---- builder: a venv with the locked dependencies and the agent's wheel ----------------
# The same RHEL minor (9.6) as the runtime image, so /usr/bin/python3.11, which the venv
# links to, is the same interpreter in both.
FROM registry.access.redhat.com/ubi9/python-311:9.6-1755074620 AS builder

USER 0
WORKDIR /build
COPY requirements.lock requirements-build.lock ./
# Build tools in a venv of their own (never shipped); the runtime venv gets only the locked
# dependencies, as wheels, each checked against its hash.
RUN /usr/bin/python3.11 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
         --only-binary=:all: -r requirements-build.lock \
    && /usr/bin/python3.11 -m venv /opt/prepull-agent \
    && /opt/prepull-agent/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
         --only-binary=:all: --no-deps -r requirements.lock

# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md LICENSE ./
COPY agent ./agent
# The agent itself: no dependencies left to resolve (--no-deps), nothing fetched (--no-index).
RUN /opt/build-tools/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
         --wheel-dir /build/dist . \
    && /opt/prepull-agent/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index \
         /build/dist/prepull_agent-*.whl \
    && /opt/prepull-agent/bin/pip uninstall --yes --disable-pip-version-check pip setuptools \
    && /opt/prepull-agent/bin/python -m compileall -q /opt/prepull-agent \
    && chown -R 0:0 /opt/prepull-agent \
    && chmod -R g=u-w,o=u-w /opt/prepull-agent \
    && /opt/prepull-agent/bin/prepull-agent --version
USER 1001

# ---- runtime: UBI minimal, Python 3.11 and the venv; no compiler, no pip, no shell tools ----
FROM registry.access.redhat.com/ubi9/ubi-minimal:9.6-1755695350

LABEL name="prepull-agent" \
      version="0.1.0" \
      summary="Keeps the Kubernetes Image Puller's list current with the images OpenShift AI users start" \
      description="Keeps the Kubernetes Image Puller's list current with the images OpenShift AI users start" \
      license="Apache-2.0" \
      io.k8s.display-name="prepull-agent" \
      io.openshift.tags="openshift-ai,image-puller"

# python3.11 from the RHEL 9.6 repositories of the pinned base image (the builder's
# interpreter); no weak dependencies, no documentation, no package cache left behind.
# Not pinned to an RPM version (DL3041): RHEL errata replace it within the minor release,
# and a pin would break the build at the next one; the pinned base image fixes the minor.
# hadolint ignore=DL3041
RUN microdnf install -y --nodocs --setopt=install_weak_deps=0 python3.11 \
    && microdnf clean all \
    && rm -rf /var/cache/yum /var/lib/dnf/history*

COPY --from=builder /opt/prepull-agent /opt/prepull-agent
COPY LICENSE /licenses/LICENSE

ENV PATH=/opt/prepull-agent/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 1001
WORKDIR /tmp
EXPOSE 8080

ENTRYPOINT ["prepull-agent"]
CMD ["serve"]
