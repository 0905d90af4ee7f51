# syntax=docker/dockerfile:1
# The restic-manager server as a container image (README.md, "Install"):
#   docker build -t restic-manager .
#   docker run -d --name restic-manager -p 8080:8080 -v restic-manager-data:/data restic-manager
# It runs as the unprivileged user 10001, keeps the SQLite database and the
# key file in the /data volume (unless RESTIC_MANAGER_DATABASE_URL names a
# PostgreSQL database; see compose.yaml) and listens on 0.0.0.0:8080.
# Checked by hadolint in scripts/check-packages (no Docker in CI).

# --- build: the release server binary, PostgreSQL included (links libpq) ---
FROM rust:1.95-bookworm AS build
# Versions are Debian bookworm's current ones; pinning them would break the
# build at every point release (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p restic-manager --bin restic-manager \
 && install -D -m 0755 target/release/restic-manager /out/restic-manager \
 && strip /out/restic-manager

# --- run: Debian slim, libpq, curl for the health check --------------------
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 restic-manager \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin restic-manager \
 && install -d -m 0700 -o 10001 -g 10001 /data
COPY --from=build /out/restic-manager /usr/bin/restic-manager
# The admin commands (`docker exec restic-manager restic-manager token create`)
# find the same data through these.
ENV RESTIC_MANAGER_DATA_DIR=/data \
    RESTIC_MANAGER_LISTEN=0.0.0.0:8080
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# Plain HTTP: with --tls-cert inside the container, override the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/bin/restic-manager"]
CMD ["serve"]
