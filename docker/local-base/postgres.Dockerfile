# Postgres 15 from Debian's packages, for machines that reach no container registry;
# scripts/local-bases builds it for POSTGRES_IMAGE. It honours what docker-compose.yml uses of
# the official image: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB on first start, data in
# /var/lib/postgresql/data, pg_isready on PATH.
ARG DEBIAN_IMAGE=opencouch-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# The entrypoint makes the cluster; Debian's own packaging must not make another.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
# A fast shutdown, as the official image does: SIGTERM would wait for every client to leave.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
