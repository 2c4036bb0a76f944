//! Compiles the gRPC protocols in proto/ with a Rust protobuf compiler (protox), so building
//! needs no protoc: KEDA's external scaler (served by the built-in scaler) and the scaler's
//! own peer protocol.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/externalscaler.proto", "proto/scaler_peer.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
