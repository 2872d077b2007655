# NATS from Debian's nats-server package, for machines that reach no container registry;
# scripts/local-bases builds it for NATS_IMAGE. Like nats:*-alpine, it has wget for the health
# check and takes nats-server's flags as its command.
ARG DEBIAN_IMAGE=opencouch-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nats-server wget \
    && rm -rf /var/lib/apt/lists/* \
    && (id nats >/dev/null 2>&1 || useradd --system --home-dir /data --shell /usr/sbin/nologin nats) \
    && mkdir -p /data && chown nats:nats /data
USER nats
EXPOSE 4222 8222
ENTRYPOINT ["nats-server"]
CMD ["-js", "-sd", "/data", "-m", "8222"]
