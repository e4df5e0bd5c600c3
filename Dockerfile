# syntax=docker/dockerfile:1
# kick-oauth-proxy container: cargo-chef caches dependency builds; the runtime is distroless,
# non-root, with the default config copied in and the client secret mounted as a file.
#
#   docker build -t kick-oauth-proxy .
#   sudo chown 65532:65532 kick_client_secret && sudo chmod 0400 kick_client_secret
#   docker run -p 8080:8080 \
#     -e KICK_PROXY_PROVIDERS__KICK__CLIENT_ID=01K... \
#     -v "$PWD/kick_client_secret:/run/secrets/kick_client_secret:ro" \
#     kick-oauth-proxy
#
# --build-arg FEATURES=dev-tools adds cargo features (here the `emulator`, `dev` and `login`
# subcommands); without it the image is the production one. compose.yaml uses both.
#
# The proxy runs as uid 65532 and a bind mount keeps the host file's owner and mode: a root-owned
# 0600 secret file is unreadable inside (exit 2, "permission denied"). README: Deploying.

ARG RUST_VERSION=1.95

FROM lukemathwalker/cargo-chef:latest-rust-${RUST_VERSION}-slim-bookworm AS chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# Without the default `dev-tools` feature: the image has `serve`, `check-config` and
# `healthcheck` only, and links neither the Kick emulator nor the desktop client (`dev`, `login`
# and `emulator` are absent). cook and build must name the same features, or the cached
# dependency build does not match and everything is compiled again.
FROM chef AS builder
# Cargo features to add, comma-separated; none by default (the production image). compose.yaml
# builds its emulator with `--build-arg FEATURES=dev-tools`, which brings `emulator` back.
ARG FEATURES=""
COPY --from=planner /app/recipe.json recipe.json
# .cargo/config.toml sets the C flags mimalloc is compiled with: the cooked dependencies need them.
COPY .cargo .cargo
RUN cargo chef cook --release --locked --no-default-features ${FEATURES:+--features "$FEATURES"} --recipe-path recipe.json --bin kick-oauth-proxy
COPY . .
RUN cargo build --release --locked --no-default-features ${FEATURES:+--features "$FEATURES"} --bin kick-oauth-proxy \
 && cp target/release/kick-oauth-proxy /kick-oauth-proxy

# distroless/cc: glibc + libgcc, no shell, no package manager; the nonroot tag runs as uid 65532.
# TLS roots are compiled in (webpki-roots), so no CA bundle is needed.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=builder /kick-oauth-proxy /usr/local/bin/kick-oauth-proxy
COPY config/default.toml /app/config/default.toml
USER nonroot:nonroot
EXPOSE 8080
# KICK_PROXY_CONFIG is the config file of both `serve` and `healthcheck` (the CMD passes no
# --config): to use another file, mount it and set KICK_PROXY_CONFIG, and the HEALTHCHECK follows.
# MIMALLOC_ARENA_EAGER_COMMIT=0: what .cargo/config.toml already compiles in (memory committed as
# it is used); said again at run time in case a builder's own CFLAGS replaced that flag.
ENV KICK_PROXY_LOG__FORMAT=json \
    KICK_PROXY_CONFIG=/app/config/default.toml \
    MIMALLOC_ARENA_EAGER_COMMIT=0
# No shell or curl in distroless: the binary probes itself (GET /healthz, 2 s deadline, exit 0 on
# 200) at the address the config listens on (KICK_PROXY_SERVER__LISTEN included; 0.0.0.0 is probed
# on 127.0.0.1, HTTPS when [server.tls] is set), so a listener moved off 8080 stays healthy.
# Docker and Compose use this; Kubernetes ignores it and uses its own probes (deploy/kubernetes/).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/kick-oauth-proxy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kick-oauth-proxy"]
CMD ["serve"]
