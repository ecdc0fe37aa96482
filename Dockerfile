# syntax=docker/dockerfile:1
# Latch in an empty image: one static binary, a non-root user, a volume.
#
#   docker build -t latch .
#   docker run -p 8000:8000 -v latch:/data latch
#
# See docs/deploy.md for configuration, backups and metrics.

FROM rust:1-bookworm AS build
WORKDIR /src
# glibc linked statically, so the image needs no libc and no loader. With an
# explicit --target, RUSTFLAGS apply to the target only: build scripts and
# proc-macros (which must stay dynamic) are unaffected.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/latch /latch
# Refuse an image whose binary would need a dynamic loader (PT_INTERP).
RUN if readelf -l /latch | grep -q INTERP; then \
        echo "latch is dynamically linked" >&2; exit 1; \
    fi \
 && /latch --version
# The runtime tree: the binary (owned by root, so the server cannot change
# it), a user for tools that look names up, and /data and /tmp for the user.
RUN mkdir -p /rootfs/etc /rootfs/data /rootfs/tmp \
 && cp /latch /rootfs/latch \
 && echo 'latch:x:10001:10001:Latch:/data:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'latch:x:10001:' > /rootfs/etc/group \
 && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /rootfs/latch /latch
COPY --from=build /rootfs/etc/ /etc/
COPY --from=build --chown=10001:10001 /rootfs/data /data
COPY --from=build --chown=10001:10001 /rootfs/tmp /tmp
USER 10001:10001
# Docker's `stop` waits 10 s before SIGKILL: requests in flight get 8 s.
ENV LATCH_DATA=/data \
    LATCH_BIND=0.0.0.0:8000 \
    LATCH_SHUTDOWN_GRACE=8s
VOLUME ["/data"]
EXPOSE 8000
STOPSIGNAL SIGTERM
# `latch healthcheck` derives its URL from LATCH_BIND: http://127.0.0.1:8000/healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/latch", "healthcheck"]
ENTRYPOINT ["/latch"]
CMD ["serve"]
