# Multi-stage build: compile in the Rust image, run from a slim Debian as a non-root user.
# In the container, DATABASE_URL is required (the zero-config private cluster is for
# development machines, not images).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations ./migrations
COPY src ./src
COPY console ./console
RUN cargo build --release --locked --bin eventgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home eventgate
COPY --from=build /src/target/release/eventgate /usr/local/bin/eventgate
USER eventgate
ENV EVENTGATE_LISTEN=0.0.0.0:8080 \
    EVENTGATE_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "-c", ": \"${DATABASE_URL:?DATABASE_URL is required in the container}\"; exec eventgate \"$@\"", "eventgate"]
CMD ["serve"]
