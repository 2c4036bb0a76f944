//! What is wrong with an object's annotations, said so that a person can fix it.

use std::fmt;

/// One problem with one annotation: which key, what value, what is wrong, how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The full annotation key (or object field) at fault, e.g. `llm-autoscale.io/target`.
    pub key: String,
    /// The value as the user wrote it; `None` when the annotation is missing.
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
    /// What to write instead.
    pub fix: String,
}

impl Problem {
    pub fn new(
        key: impl Into<String>,
        value: Option<&str>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem {
            key: key.into(),
            value: value.map(str::to_string),
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}: {:?}: {}", self.key, v, self.reason)?,
            None => write!(f, "{}: {}", self.key, self.reason)?,
        }
        if self.fix.is_empty() {
            Ok(())
        } else {
            write!(f, "; fix: {}", self.fix)
        }
    }
}

/// Every problem found in one object. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct Invalid {
    pub problems: Vec<Problem>,
    /// Warnings gathered before the problems were found (still worth showing).
    pub warnings: Vec<String>,
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!(
        "llm-autoscale: {} invalid annotation{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n- ");
        out.push_str(&p.to_string());
    }
    out
}

/// Collects problems and warnings while a parser walks an object.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Findings {
    pub fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    pub fn warn(&mut self, w: impl Into<String>) {
        let w = w.into();
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// `Ok(value)` when no problem was recorded, else every problem.
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<String>), Invalid> {
        if self.problems.is_empty() {
            Ok((value, self.warnings))
        } else {
            Err(Invalid {
                problems: self.problems,
                warnings: self.warnings,
            })
        }
    }
}
