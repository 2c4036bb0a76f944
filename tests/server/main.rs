//! The HTTPS admission server, end to end on 127.0.0.1: real certificates from
//! `certs::generate`, a real rustls client that trusts only the generated CA, the real
//! server started in-process.
#![cfg(unix)]

mod admission;
mod certificates;
mod endpoints;
mod harness;
mod shutdown;
