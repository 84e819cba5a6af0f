# The autoglm image the rendered manifests refer to: one static-enough
# binary (console, gateway, operator, runtime and the model loader) on a
# distroless base that runs as the non-root user 65532, the UID the pod
# security context asks for. Build: docker build -t ghcr.io/open-autoglm/autoglm:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The build's system packages, from the project's one list (xtask/src/system.rs).
RUN cargo xtask deps build && rm -rf /var/lib/apt/lists/*
# llama.cpp is compiled for a portable x86-64 level, not the build machine's CPU.
RUN RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --release --locked --bin autoglm

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/autoglm /usr/local/bin/autoglm
USER 65532:65532
EXPOSE 8080 8000 8443
ENTRYPOINT ["/usr/local/bin/autoglm"]
