//! The built-in scaler: the sidecars' OTLP in, KEDA's external-scaler gRPC out.
//!
//! The core here is pure (time comes in as milliseconds, nothing does I/O):
//!
//! - [`points`]: an OTLP export read into data points, and what is refused in it;
//! - [`trust`]: the per-namespace credential that lets a namespace's sidecars, and only
//!   them, write its series;
//! - [`series`]: series identity (metric and data-point attributes) and samples;
//! - [`histogram`]: delta histograms, their merge and percentile;
//! - [`store`]: the bounded store (series per workload and in all, retention, forgetting
//!   pods that are gone);
//! - [`query`]: what a trigger asks (metric, selector, aggregation, window, percentile,
//!   activation), read from its metadata;
//! - [`partial`]: one replica's holdings for a query, and their union across replicas;
//! - [`answer`]: the value, the activity or the error KEDA gets.
//!
//! The shells (OTLP receiver, KEDA's gRPC service, peers, `/metrics`) are in [`service`].

pub mod answer;
pub mod histogram;
pub mod partial;
pub mod points;
pub mod query;
pub mod series;
pub mod service;
pub mod store;
pub mod trust;
