//! KEDA: the one typed model of a ScaledObject and its triggers, what this product knows of
//! KEDA by version, the names KEDA derives and their limits, and its rules for a ScaledObject.

pub mod names;
pub mod rules;
pub mod scaled_object;
mod string_enum;
pub mod trigger;

pub use names::{MANAGED_BY, MANAGED_BY_LABEL, bounded_name};
pub use scaled_object::ScaledObject;
pub use trigger::{MetricType, OperationOverTime, Trigger, TriggerKind};

use crate::version::Version;

/// The KEDA release the tests run against, and the default of `keda-version`.
pub const TESTED_VERSION: Version = Version(2, 21, 0);
/// The oldest KEDA whose ScaledObject has every field this product renders
/// (`initialCooldownPeriod` arrived in v2.14.0: kedacore/keda CHANGELOG.md, #5008).
pub const OLDEST_SUPPORTED: Version = Version(2, 14, 0);
/// From this release fallback works with any non-cpu/memory trigger, `Value` ones included;
/// before it only with `AverageValue` triggers (kedacore/keda CHANGELOG.md v2.18.0, #6655;
/// `CheckFallbackValid` in apis/keda/v1alpha1/scaledobject_types.go).
pub const FALLBACK_ON_VALUE_SINCE: Version = Version(2, 18, 0);
/// `fallback.behavior` (currentReplicas, currentReplicasIfHigher, ...) arrived in this release
/// (kedacore/keda CHANGELOG.md v2.17.0, #6450).
pub const FALLBACK_BEHAVIOR_SINCE: Version = Version(2, 17, 0);
