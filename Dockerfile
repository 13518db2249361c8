# syntax=docker/dockerfile:1
#
# datsync as a container: a static-ish Rust binary (glibc only; TLS is rustls, no OpenSSL) on
# Debian slim, run as an unprivileged user. See the README, "Packaging".
#
#   docker build -t datsync .
#   docker run --rm datsync --help
#   docker run --rm -v "$PWD/incoming:/data:ro" -v datsync-state:/var/lib/datsync \
#     -e DATABASE_URL=postgresql://datsync@db/ztdwr datsync watch /data

ARG RUST_VERSION=1.88
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
# The manifests first, so that the dependencies' layer is reused while only sources change.
COPY Cargo.toml Cargo.lock ./
COPY crates/datsync/Cargo.toml crates/datsync/Cargo.toml
COPY crates/datsync-cli/Cargo.toml crates/datsync-cli/Cargo.toml
RUN cargo fetch --locked
COPY crates crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --offline -p datsync-cli --bin datsync \
 && cp target/release/datsync /usr/local/bin/datsync \
 && mkdir -p /out/man1 /out/completions \
 && /usr/local/bin/datsync man --out /out/man1 \
 && /usr/local/bin/datsync completions bash > /out/completions/datsync.bash

FROM debian:${DEBIAN}-slim AS runtime
# ca-certificates: the system's roots, trusted besides the built-in Mozilla ones (webhooks,
# hooks, object stores, verify-full PostgreSQL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 datsync \
 && useradd --system --uid 10001 --gid datsync --home-dir /var/lib/datsync --create-home \
      --shell /usr/sbin/nologin datsync
COPY --from=build /usr/local/bin/datsync /usr/local/bin/datsync
COPY --from=build /out/man1 /usr/local/share/man/man1
COPY --from=build /out/completions/datsync.bash /usr/share/bash-completion/completions/datsync
USER 10001:10001
# datsync.toml is read from the working directory; checkpoints go under it by default.
WORKDIR /var/lib/datsync
ENV CHECKPOINT_BASE_PATH=/var/lib/datsync/checkpoints
VOLUME ["/var/lib/datsync"]
# `watch` finishes the chunk in flight on SIGTERM (docker stop): give it time with
# `docker stop -t 120` or `stop_grace_period: 2m` in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["datsync"]
CMD ["--help"]
