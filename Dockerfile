# syntax=docker/dockerfile:1
# The operator image: the release binary on distroless/cc (glibc, CA certificates, no shell),
# running as the distroless `nonroot` user (65532). Build: docker build -t multicloud-ecs .
#
# Why not a fully static musl binary: TLS uses aws-lc-rs (C code built by aws-lc-sys), which
# on musl needs a musl C toolchain and is slower with musl's allocator; distroless/cc adds only
# glibc and libgcc (~20 MB) to the binary. Builder and runtime are both Debian 12 (bookworm), so
# the binary never needs a newer glibc than the runtime image has.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace is copied because cargo must read every member's manifest, but only the
# operator package is built: the emulator, test kit and benchmarks never enter the image
# (scripts/test.sh checks that the operator binary does not contain the emulator).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p multicloud-ecs --bin multicloud-ecs \
 && install -D -m 0755 target/release/multicloud-ecs /out/multicloud-ecs

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/multicloud-ecs /usr/local/bin/multicloud-ecs
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/multicloud-ecs"]
CMD ["run", "--http-addr=0.0.0.0:8080", "--log-json"]
