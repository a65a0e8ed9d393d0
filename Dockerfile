# syntax=docker/dockerfile:1
# Build: docker build -t labgate .
# Run:   docker run -p 8080:8080 -v labgate-data:/data \
#          -e LABGATE__SERVER__PUBLIC_URL=https://labgate.example.com labgate
# CI proves this build stage's context and steps without a daemon: .ci/docker-context.

# Pinned by version; where a registry is reachable, pin by digest too (`@sha256:…`).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# Dependencies in a layer of their own, rebuilt only when the manifest or lock file changes.
# cargo reads every target the manifest declares, so benches/ comes along; the crate itself
# is a stub until its sources are copied.
COPY Cargo.toml Cargo.lock ./
# How the bundled SQLite is compiled (LIBSQLITE3_FLAGS).
COPY .cargo .cargo
COPY benches benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -r src
COPY src src
COPY migrations migrations
COPY config config
# The copied files may be older than the stub: touched, so cargo rebuilds the crate.
# SQLite and libpq (with OpenSSL) are compiled in: the runtime image needs no database libraries.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && strip target/release/labgate

FROM debian:12.12-slim
# ca-certificates: the platform roots for instances registered without ca_pem.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin labgate \
 && mkdir -p /data && chown labgate:labgate /data && chmod 0700 /data
COPY --from=build /src/target/release/labgate /usr/local/bin/labgate

# Everything labgate writes (SQLite database, generated master key) lives in the volume.
ENV LABGATE__SERVER__LISTEN=0.0.0.0:8080 \
    LABGATE__DATABASE__URL=sqlite:///data/labgate.db \
    LABGATE__SECURITY__GENERATED_MASTER_KEY_PATH=/data/master.key
VOLUME /data
WORKDIR /data
USER labgate
EXPOSE 8080
# No curl in the image: labgate asks itself, on loopback, with the settings it serves with.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["labgate", "healthcheck"]
ENTRYPOINT ["labgate"]
CMD ["serve"]
