# syntax=docker/dockerfile:1
# Airlock: one static-ish binary on a minimal Debian. Build: docker build -t airlock .
# The image runs as uid/gid 10001 (numeric, so runAsNonRoot can check it) and holds
# nothing but the binary, CA roots (OIDC discovery, JWKS, TokenReview, the broker's
# upstreams) and the shell the Helm chart's init containers use.

ARG RUST_VERSION=1.89
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p airlock \
    && install -D -m 0755 target/release/airlock /out/airlock

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 airlock \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/airlock --create-home \
        --shell /usr/sbin/nologin airlock \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/airlock /var/log/airlock
COPY --from=build /out/airlock /usr/local/bin/airlock
USER 10001:10001
WORKDIR /home/airlock
ENV HOME=/home/airlock
EXPOSE 8200
ENTRYPOINT ["airlock"]
CMD ["server", "--config", "/etc/airlock/config/airlock.toml"]
