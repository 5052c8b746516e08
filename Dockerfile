# eventgate's container image: a static-looking runtime with only the binary, the shared
# libraries it links, the CA certificates and a non-root user; no shell, no package
# manager. In the container DATABASE_URL is required (the zero-config private cluster is
# for development machines).
#
# Build arguments (defaults are today's public images):
#   BUILDER       the image with the Rust toolchain that compiles eventgate
#   BASE          the Debian the runtime's libraries and certificates come from
#   BINARY_STAGE  `build` (compile in BUILDER) or `prebuilt` (take .container/eventgate
#                 from the build context: scripts/container.sh, where public images cannot
#                 be pulled, compiles with the host's toolchain on the same Debian release
#                 and puts it there without its debug info)
ARG BUILDER=rust:1.95-bookworm
ARG BASE=debian:bookworm-slim
ARG BINARY_STAGE=build

FROM ${BUILDER} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations ./migrations
COPY src ./src
COPY console ./console
RUN cargo build --release --locked --bin eventgate \
 && mkdir -p /out && objcopy --strip-debug target/release/eventgate /out/eventgate

FROM ${BASE} AS prebuilt
COPY .container/eventgate /out/eventgate

FROM ${BINARY_STAGE} AS binary

# The runtime's files, gathered from BASE: the binary, every shared library it links, the
# CA certificates and the user it runs as.
FROM ${BASE} AS rootfs
COPY --from=binary /out/eventgate /rootfs/usr/local/bin/eventgate
RUN set -eu; \
    for lib in $(ldd /rootfs/usr/local/bin/eventgate | grep -o '/[^ ]*'); do \
      cp --parents -L "$lib" /rootfs; \
    done; \
    cp --parents -L /etc/ssl/certs/ca-certificates.crt /rootfs; \
    mkdir -p /rootfs/tmp /rootfs/data; \
    chmod 1777 /rootfs/tmp; \
    chown 10001:10001 /rootfs/data; \
    echo 'eventgate:x:10001:10001:eventgate:/data:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'eventgate:x:10001:' > /rootfs/etc/group

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="eventgate" \
      org.opencontainers.image.description="Events API server: idempotent inbound deposits, a gap-free outbound feed, bus and webhook delivery" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=rootfs /rootfs /
USER 10001:10001
# Nothing is written outside these; run with a read-only root filesystem.
VOLUME ["/tmp", "/data"]
ENV EVENTGATE_LISTEN=0.0.0.0:8080 \
    EVENTGATE_LOG_FORMAT=json \
    EVENTGATE_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/eventgate", "probe"]
# eventgate is PID 1: it handles SIGTERM (drains requests, stops the relay between steps)
# and starts no child processes in the container, so no init is needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/eventgate"]
CMD ["serve"]
