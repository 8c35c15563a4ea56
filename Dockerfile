# The one image of every coredump-detector workload: `deploy` runs the API server, the GC and
# the node agent from it (`coredump-detector apiserver|gc|agent ...`).
#
#   docker build -t coredump-detector:0.1.0 .      # the tag `coredump-detector deploy` uses
#
# The binary is linked statically (musl): the agent copies it onto every node as the kernel's
# core_pattern handler, where it must run whatever C library the host has.

FROM rust:1.95-trixie AS build
# protoc: etcd-client generates its gRPC code at build time. musl-tools: the C parts (zstd, ring).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# The same build scripts/verify-image-binary.sh runs the end-to-end tests against.
RUN bash scripts/build-image-binary.sh /out/coredump-detector

FROM debian:trixie-slim
COPY --from=build /out/coredump-detector /usr/local/bin/coredump-detector
ENTRYPOINT ["/usr/local/bin/coredump-detector"]
