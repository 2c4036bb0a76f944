//! Release versions (`0.11.2`, `v2.21.0`), compared to decide version-dependent behaviour.

use serde::{Deserialize, Serialize};

/// A release version, major.minor.patch (vLLM's, KEDA's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `0.11.2`, `v0.11`, `v0.10.1.1`, `0.11.0rc1` (the pre-release suffix is dropped).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = num(parts.next()).unwrap_or(0);
        Some(Version(major, minor, patch))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.0, self.1, self.2)
    }
}

impl TryFrom<String> for Version {
    type Error = String;

    fn try_from(s: String) -> Result<Version, String> {
        Version::parse(&s).ok_or_else(|| format!("{s:?} is not a version such as 2.21.0"))
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        format!("{}.{}.{}", v.0, v.1, v.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(Version::parse("v0.11.2"), Some(Version(0, 11, 2)));
        assert_eq!(Version::parse("0.10"), Some(Version(0, 10, 0)));
        assert_eq!(Version::parse("0.11.0rc1"), Some(Version(0, 11, 0)));
        assert_eq!(Version::parse("latest"), None);
        assert_eq!(Version::parse(""), None);
    }

    #[test]
    fn serde_as_a_string() {
        let v: Version = serde_json::from_str("\"v2.18.0\"").unwrap();
        assert_eq!(v, Version(2, 18, 0));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"2.18.0\"");
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }
}
