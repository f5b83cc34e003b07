# syntax=docker/dockerfile:1
# prepull-agent on Red Hat UBI 9 with Python 3.11.
#
#   docker build -t prepull-agent:0.1.0 .      (or: podman build ...; needs BuildKit/buildah
#                                               for RUN --mount)
#   docker run --rm prepull-agent:0.1.0 once --help
#
# Runs as UID 1001 in group 0, and under any UID OpenShift assigns (restricted-v2): the
# application is read-only, owned by root:0 and readable by group 0 and others; nothing in
# the image needs to be written at run time (mount an emptyDir at /tmp for temp files).

# Both stages use the same base image (the venv links to its /usr/bin/python3.11); for
# reproducible builds pin both to the same digest: ubi9/python-311:1@sha256:...

# ---- builder: the project's wheel and the wheels of all its dependencies -----------------
FROM registry.access.redhat.com/ubi9/python-311:1 AS builder
# The base image's user 1001 owns /opt/app-root: build there, not as root.
WORKDIR /opt/app-root/src
# Only what the wheel is built from (see .dockerignore).
COPY --chown=1001:0 . .
RUN /usr/bin/python3.11 -m pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /opt/app-root/dist .

# ---- runtime: a venv with those wheels, nothing else --------------------------------------
FROM registry.access.redhat.com/ubi9/python-311:1

LABEL name="prepull-agent" \
      summary="Keeps the Kubernetes Image Puller's list current with the images OpenShift AI users start" \
      description="Keeps the Kubernetes Image Puller's list current with the images OpenShift AI users start" \
      io.k8s.display-name="prepull-agent" \
      io.openshift.tags="openshift-ai,image-puller"

ENV VIRTUAL_ENV=/opt/prepull-agent \
    PATH=/opt/prepull-agent/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 0
# Install offline from the builder's wheels (bind-mounted: they leave no layer behind;
# pip byte-compiles them now, so nothing is written at run time), drop pip and setuptools
# (not needed at run time), make it root-owned and read-only for group 0 (OpenShift's
# arbitrary UID is in group 0) and others, leave no caches, and check the entry point.
RUN --mount=type=bind,from=builder,source=/opt/app-root/dist,target=/dist \
    /usr/bin/python3.11 -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-index --find-links=/dist prepull-agent \
    && "$VIRTUAL_ENV/bin/pip" uninstall --yes pip setuptools \
    && chown -R 0:0 "$VIRTUAL_ENV" \
    && chmod -R g=u-w,o=u-w "$VIRTUAL_ENV" \
    && rm -rf /root/.cache /opt/app-root/src/.cache /tmp/* \
    && prepull-agent --help > /dev/null

USER 1001
WORKDIR /opt/app-root/src
EXPOSE 8080

ENTRYPOINT ["prepull-agent"]
CMD ["serve"]
