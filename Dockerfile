# syntax=docker/dockerfile:1
# Build: docker build -t labgate .
# Run:   docker run -p 8080:8080 -v labgate-data:/data \
#          -e LABGATE__SERVER__PUBLIC_URL=https://labgate.example.com labgate

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY config config
# SQLite and libpq (with OpenSSL) are compiled in: the runtime image needs no database libraries.
RUN cargo build --release --locked && strip target/release/labgate

FROM debian:bookworm-slim
# ca-certificates: the platform roots for instances registered without ca_pem.
# curl: the HEALTHCHECK below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin labgate \
 && mkdir -p /data && chown labgate:labgate /data
COPY --from=build /src/target/release/labgate /usr/local/bin/labgate

# Everything labgate writes (SQLite database, generated master key) lives in the volume.
ENV LABGATE__SERVER__LISTEN=0.0.0.0:8080 \
    LABGATE__DATABASE__URL=sqlite:///data/labgate.db \
    LABGATE__SECURITY__GENERATED_MASTER_KEY_PATH=/data/master.key
VOLUME /data
WORKDIR /data
USER labgate
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || curl -fsSk https://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["labgate"]
CMD ["serve"]
