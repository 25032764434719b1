# syntax=docker/dockerfile:1
# Airlock images, from one build of the binary:
#
#   docker build -t airlock .                          # the server (the default, last target)
#   docker build --target broker -t airlock-broker .   # the Helm chart's broker sidecar helpers
#
# The server image is distroless: the binary, the C runtime it links (glibc, libgcc_s), CA
# roots (OIDC discovery, JWKS, TokenReview, PostgreSQL's sslrootcert=system), tzdata, and
# nothing else: no shell, no package manager. The Helm chart needs
# none: the config is read as mounted, Secrets are files, per-pod values come from the
# downward API. Both images run as uid/gid 10001 (numeric, so runAsNonRoot can check it).

ARG RUST_VERSION=1.89
# The server's base below is distroless' Debian 12 (bookworm): the binary links the glibc
# of the release it is built on, so change both together.
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p airlock \
    && install -D -m 0755 target/release/airlock /out/airlock \
    && install -d -m 0750 /out/empty

# The broker sidecar helpers' image: the same binary on Debian slim, because the helpers
# need a shell (the init container writes `airlock broker env` to a file with sh; the
# probes test the broker's loopback port with bash's /dev/tcp). Agent pods only.
FROM debian:${DEBIAN_RELEASE}-slim AS broker
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 airlock \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/airlock --create-home \
        --shell /usr/sbin/nologin airlock
COPY --from=build /out/airlock /usr/local/bin/airlock
USER 10001:10001
WORKDIR /home/airlock
ENV HOME=/home/airlock
ENTRYPOINT ["airlock"]

# The server. The `nonroot` variant runs as 65532 by default; the chart and this image use
# 10001 (the uid every values file and the data volumes already carry). The directories
# the server writes (store, audit log, home) belong to it; in Kubernetes they are volumes.
FROM gcr.io/distroless/cc-debian12:nonroot AS server
COPY --from=build /out/airlock /usr/local/bin/airlock
COPY --from=build --chown=10001:10001 /out/empty/ /var/lib/airlock/
COPY --from=build --chown=10001:10001 /out/empty/ /var/log/airlock/
COPY --from=build --chown=10001:10001 /out/empty/ /home/airlock/
USER 10001:10001
WORKDIR /home/airlock
ENV HOME=/home/airlock
EXPOSE 8200
ENTRYPOINT ["/usr/local/bin/airlock"]
CMD ["server", "--config", "/etc/airlock/config/airlock.toml"]
