//! The report: findings for the cluster and per workload, printed for people or as JSON, and
//! the exit code.

use std::fmt::Write as _;

use serde::Serialize;

use super::finding::{Finding, Severity};

/// Exit code when nothing blocks scaling (warnings may remain).
pub const EXIT_OK: u8 = 0;
/// Exit code when at least one finding blocks scaling.
pub const EXIT_BLOCKED: u8 = 1;
/// Exit code when `doctor` could not read what it needs (no cluster, no such workload).
pub const EXIT_UNCHECKED: u8 = 2;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The webhook and KEDA, for every workload.
    pub cluster: Vec<Finding>,
    pub workloads: Vec<WorkloadReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadReport {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub findings: Vec<Finding>,
}

#[derive(Serialize)]
struct Summary {
    errors: usize,
    warnings: usize,
    blocks_scaling: bool,
}

impl Report {
    fn all(&self) -> impl Iterator<Item = &Finding> {
        self.cluster
            .iter()
            .chain(self.workloads.iter().flat_map(|w| &w.findings))
    }

    fn count(&self, s: Severity) -> usize {
        self.all().filter(|f| f.severity == s).count()
    }

    pub fn blocks_scaling(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    pub fn exit_code(&self) -> u8 {
        if self.blocks_scaling() {
            EXIT_BLOCKED
        } else {
            EXIT_OK
        }
    }

    /// `{"cluster": [...], "workloads": [...], "summary": {...}}`.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            let summary = Summary {
                errors: self.count(Severity::Error),
                warnings: self.count(Severity::Warning),
                blocks_scaling: self.blocks_scaling(),
            };
            map.insert(
                "summary".into(),
                serde_json::to_value(summary).unwrap_or_default(),
            );
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// For a terminal: each section's findings worth reading (all of them with `verbose`),
    /// then how many passed, then the verdict.
    pub fn to_human(&self, verbose: bool) -> String {
        let mut out = String::new();
        section(&mut out, "Cluster", &self.cluster, verbose);
        for w in &self.workloads {
            let title = format!("{} {}/{}", w.kind, w.namespace, w.name);
            section(&mut out, &title, &w.findings, verbose);
        }
        if self.workloads.is_empty() {
            out.push_str("No workload opts in (annotation llm-autoscale.io/enabled).\n\n");
        }
        let (errors, warnings) = (self.count(Severity::Error), self.count(Severity::Warning));
        let _ = writeln!(
            out,
            "{}: {errors} finding(s) block scaling, {warnings} warning(s).",
            if errors > 0 { "BLOCKED" } else { "OK" }
        );
        out
    }
}

fn section(out: &mut String, title: &str, findings: &[Finding], verbose: bool) {
    let _ = writeln!(out, "{title}");
    let mut passed = 0;
    for f in findings {
        if f.severity == Severity::Ok && !verbose {
            passed += 1;
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<7} {}  {}",
            f.severity.as_str(),
            f.check.id(),
            f.subject
        );
        let _ = writeln!(out, "          {}", f.message.replace('\n', "\n          "));
        if !f.fix.is_empty() {
            let _ = writeln!(out, "          fix: {}", f.fix);
        }
    }
    if passed > 0 {
        let _ = writeln!(out, "  ok      {passed} check(s) passed (-v lists them)");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::finding::Check;

    fn report(severities: &[Severity]) -> Report {
        Report {
            cluster: vec![Finding::ok(Check::KedaCrd, "KEDA", "installed")],
            workloads: vec![WorkloadReport {
                kind: "Deployment",
                namespace: "llm".into(),
                name: "m".into(),
                findings: severities
                    .iter()
                    .map(|s| {
                        Finding::new(Check::Sidecar, *s, "collector sidecar")
                            .saying("line one\nline two")
                            .fix("roll it")
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn exit_code_follows_errors_only() {
        assert_eq!(report(&[]).exit_code(), EXIT_OK);
        assert_eq!(
            report(&[Severity::Warning, Severity::Info]).exit_code(),
            EXIT_OK
        );
        assert_eq!(
            report(&[Severity::Warning, Severity::Error]).exit_code(),
            EXIT_BLOCKED
        );
    }

    #[test]
    fn human_output_hides_passed_checks_unless_verbose() {
        let r = report(&[Severity::Error]);
        let text = r.to_human(false);
        assert!(text.contains("Deployment llm/m"), "{text}");
        assert!(
            text.contains("error   sidecar  collector sidecar"),
            "{text}"
        );
        assert!(text.contains("          line two"), "{text}");
        assert!(text.contains("fix: roll it"), "{text}");
        assert!(text.contains("1 check(s) passed"), "{text}");
        assert!(!text.contains("keda-crd"), "{text}");
        assert!(
            text.ends_with("BLOCKED: 1 finding(s) block scaling, 0 warning(s).\n"),
            "{text}"
        );
        let verbose = r.to_human(true);
        assert!(verbose.contains("ok      keda-crd  KEDA"), "{verbose}");
    }

    #[test]
    fn json_has_findings_and_a_summary() {
        let v: serde_json::Value =
            serde_json::from_str(&report(&[Severity::Warning]).to_json()).unwrap();
        assert_eq!(v["workloads"][0]["findings"][0]["check"], "sidecar");
        assert_eq!(v["workloads"][0]["findings"][0]["severity"], "warning");
        assert_eq!(v["workloads"][0]["findings"][0]["fix"], "roll it");
        assert_eq!(v["summary"]["warnings"], 1);
        assert_eq!(v["summary"]["blocks_scaling"], false);
    }

    #[test]
    fn an_empty_cluster_says_so() {
        let r = Report {
            cluster: vec![],
            workloads: vec![],
        };
        assert!(r.to_human(false).contains("No workload opts in"));
    }
}
