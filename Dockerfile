# syntax=docker/dockerfile:1
#
# llm-autoscale-webhook: one Rust binary (rustls, no OpenSSL) on distroless/cc.
#   docker build -t ghcr.io/llm-autoscale/llm-autoscale-webhook:0.1.0 .
# The default command is `serve`; for the other subcommands override the entrypoint, e.g.
#   docker run --rm -v "$PWD/certs:/certs" --entrypoint /usr/local/bin/llm-autoscale-webhook \
#     IMAGE certs --out-dir /certs --dns-name llm-autoscale-webhook.llm-autoscale-system.svc

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target directory between builds (BuildKit);
# the binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin llm-autoscale-webhook \
 && install -D -m 0755 target/release/llm-autoscale-webhook /out/llm-autoscale-webhook

# Debian 12 glibc, same as the builder; runs as nonroot (65532) with no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="llm-autoscale-webhook" \
      org.opencontainers.image.description="Kubernetes admission webhook that turns annotated vLLM Deployments and KServe InferenceServices into KEDA-autoscaled workloads with an OpenTelemetry collector sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/llm-autoscale-webhook /usr/local/bin/llm-autoscale-webhook
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/llm-autoscale-webhook", "serve"]
