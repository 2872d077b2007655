# Redis from Debian's redis-server package, for machines that reach no container registry;
# scripts/local-bases builds it for REDIS_IMAGE. Like redis:7-alpine: data in /data, redis-cli
# for the health check, the command is redis-server and its options.
ARG DEBIAN_IMAGE=opencouch-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
