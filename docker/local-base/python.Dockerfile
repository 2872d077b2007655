# Python 3.11 from Debian's packages, for machines that reach no container registry:
# scripts/local-bases builds it on the Debian image it makes with debootstrap, for PYTHON_IMAGE.
# Debian bookworm's python3 is 3.11, the version python:3.11-slim has.
ARG DEBIAN_IMAGE=opencouch-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# The building machine's trusted certificates join Debian's, so that pip and uv reach PyPI from
# a build behind a TLS-inspecting proxy the way the machine itself does.
COPY machine-ca-certificates.crt /usr/local/share/ca-certificates/machine-trust.crt
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && update-ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
