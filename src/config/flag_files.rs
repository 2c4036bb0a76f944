//! Files named by flags, shared by the webhook's settings ([`super::loading`]) and the built-in
//! scaler's (`crate::scaler::service::settings`): a file read with its path in the error, and
//! the certificate and key flags that are given together.

use std::path::{Path, PathBuf};

/// A file named by a flag could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {error}")]
pub struct ReadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl ReadError {
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
        move |error| ReadError {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// The bytes of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    std::fs::read(path).map_err(ReadError::at(path))
}

/// The text of `path`.
pub fn read_to_string(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(ReadError::at(path))
}

/// A certificate flag and its key flag when both are given (each flag `requires` the other,
/// so clap refuses one alone).
pub fn pem_pair<'a>(
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
) -> Option<(&'a PathBuf, &'a PathBuf)> {
    cert.as_ref().zip(key.as_ref())
}

/// Flags of one `clap::Args` group parsed from `args` (without the program name), for the
/// settings' unit tests.
#[cfg(test)]
pub fn parse_flags<A: clap::Args + clap::FromArgMatches>(args: &[&str]) -> Result<A, clap::Error> {
    let command = A::augment_args(clap::Command::new("test"));
    let matches =
        command.try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
    A::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.pem");
        let e = read(&path).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("reading {}: ", path.display()))
        );
        assert!(read_to_string(&path).is_err());
        std::fs::write(&path, "pem").unwrap();
        assert_eq!(read(&path).unwrap(), b"pem");
        assert_eq!(read_to_string(&path).unwrap(), "pem");
    }

    #[test]
    fn a_pair_is_both_or_none() {
        let (c, k) = (Some(PathBuf::from("c")), Some(PathBuf::from("k")));
        assert_eq!(pem_pair(&c, &k), Some((&"c".into(), &"k".into())));
        assert_eq!(pem_pair(&c, &None), None);
        assert_eq!(pem_pair(&None, &k), None);
    }
}
