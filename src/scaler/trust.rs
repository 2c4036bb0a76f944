//! Who may write a workload's series: only sidecars of its own namespace.
//!
//! Any pod can reach the scaler's OTLP port, and the `namespace` attribute is whatever the
//! sender stamps. So each namespace with built-in workloads gets a credential: the reconciler
//! writes a Secret ([`SECRET_NAME`], key [`SECRET_KEY`]) into it holding
//! [`token_for`]`(key, namespace)`, an HMAC-SHA256 of the namespace under a key only the
//! reconciler and the scaler read. The sidecar takes it from that Secret (an environment
//! variable from a `secretKeyRef`: a pod can only refer to Secrets of its own namespace) and
//! presents it as `authorization: Bearer <token>` on every export. The scaler recomputes the
//! token of the namespace each data point is stamped with and stores the point only when they
//! are equal (compared in constant time); a point of another namespace is refused and counted.
//!
//! The boundary is the namespace: pods of one namespace can read its Secrets and so write any
//! of its workloads' series, as they could edit its Deployments. No API call is needed to
//! check a token, and a leaked token writes only its own namespace's series.
//!
//! Rotation: the scaler holds several keys and a token is good under any of them
//! ([`admit`]); the reconciler signs with one. So a new key is added to the scaler first,
//! then given to the reconciler (which rewrites the Secrets), the workloads are rolled (new
//! pods read the new token), and the old key is removed from the scaler last: no sidecar is
//! refused on the way.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::points::{Decoded, Rejection};

/// The Secret the reconciler provisions in each namespace with built-in workloads.
pub const SECRET_NAME: &str = "llm-autoscale-scaler-token";
/// Its key holding the token.
pub const SECRET_KEY: &str = "token";
/// The environment variable of the sidecar holding the token.
pub const TOKEN_ENV: &str = "LLM_AUTOSCALE_SCALER_TOKEN";
/// The gRPC metadata key the token travels in.
pub const HEADER: &str = "authorization";

/// Version of the token format: a new format can be told apart.
const VERSION: &str = "v1.";
/// Binds the HMAC to this use of the key.
const CONTEXT: &[u8] = b"llm-autoscale-webhook scaler namespace token\n";

/// The secret both the reconciler and the scaler hold.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TrustKey(Vec<u8>);

impl std::fmt::Debug for TrustKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustKey(..)")
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the scaler's trust key has {0} bytes; it needs at least 32 (e.g. `openssl rand -base64 48`)"
)]
pub struct ShortKey(usize);

impl TrustKey {
    /// A key from a file's content (surrounding whitespace ignored), at least 32 bytes.
    pub fn new(content: &[u8]) -> Result<TrustKey, ShortKey> {
        let trimmed = content.trim_ascii();
        if trimmed.len() < 32 {
            return Err(ShortKey(trimmed.len()));
        }
        Ok(TrustKey(trimmed.to_vec()))
    }

    /// The MAC of `namespace` (`None` never happens: HMAC takes keys of any length).
    fn mac(&self, namespace: &str) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(CONTEXT);
        mac.update(namespace.as_bytes());
        Some(mac)
    }
}

/// The token of `namespace`.
pub fn token_for(key: &TrustKey, namespace: &str) -> String {
    let tag = key
        .mac(namespace)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Whether `presented` is `namespace`'s token (constant-time comparison of the MAC).
pub fn verify(key: &TrustKey, namespace: &str, presented: &str) -> bool {
    let Some(encoded) = presented.strip_prefix(VERSION) else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(encoded) else {
        return false;
    };
    key.mac(namespace)
        .is_some_and(|m| m.verify_slice(&tag).is_ok())
}

/// The token of an `authorization` header value, `Bearer <token>`.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `presented` is `namespace`'s token under any of `keys`.
pub fn verify_any(keys: &[TrustKey], namespace: &str, presented: &str) -> bool {
    keys.iter().any(|k| verify(k, namespace, presented))
}

/// Removes the points whose namespace `presented` is not the token of under any of `keys`
/// (all of them without a token), counting them as [`Rejection::Untrusted`]. Without a key
/// nothing is checked.
pub fn admit(decoded: &mut Decoded, keys: &[TrustKey], presented: Option<&str>) {
    if keys.is_empty() {
        return;
    }
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    let before = decoded.points.len();
    decoded.points.retain(|p| {
        let ns = &p.workload.namespace;
        if let Some((_, ok)) = verdicts.iter().find(|(n, _)| n == ns) {
            return *ok;
        }
        let ok = presented.is_some_and(|t| verify_any(keys, ns, t));
        verdicts.push((ns.clone(), ok));
        ok
    });
    let refused = before - decoded.points.len();
    decoded.reject(Rejection::Untrusted, refused);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaler::points::decode;
    use crate::scaler::points::tests::{gauge_metric, kv, request};

    fn key() -> TrustKey {
        TrustKey::new(b"0123456789abcdef0123456789abcdef\n").unwrap()
    }

    #[test]
    fn tokens_are_per_namespace_and_per_key() {
        let k = key();
        let t = token_for(&k, "team-a");
        assert!(t.starts_with("v1."));
        assert!(verify(&k, "team-a", &t));
        assert!(!verify(&k, "team-b", &t));
        let other = TrustKey::new(&[7u8; 40]).unwrap();
        assert!(!verify(&other, "team-a", &t));
        assert!(!verify(&k, "team-a", "v1.not-base64!"));
        assert!(!verify(&k, "team-a", t.trim_start_matches("v1.")));
        assert_eq!(TrustKey::new(b"short"), Err(ShortKey(5)));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
    }

    #[test]
    fn only_the_namespaces_own_points_are_admitted() {
        let stamped = |ns: &str| vec![kv("pod", "p"), kv("deployment", "d"), kv("namespace", ns)];
        let req = request(vec![
            gauge_metric("m", stamped("team-a"), 1.0, 1),
            gauge_metric("m", stamped("team-b"), 1.0, 1),
            gauge_metric("m", stamped("team-a"), 2.0, 2),
        ]);
        let k = key();
        let mut d = decode(&req);
        admit(
            &mut d,
            std::slice::from_ref(&k),
            Some(&token_for(&k, "team-a")),
        );
        assert_eq!(d.points.len(), 2);
        assert!(d.points.iter().all(|p| p.workload.namespace == "team-a"));
        assert_eq!(d.rejected, vec![(Rejection::Untrusted, 1)]);
        let mut d = decode(&req);
        admit(&mut d, std::slice::from_ref(&k), None);
        assert_eq!(d.rejected, vec![(Rejection::Untrusted, 3)]);
        let mut d = decode(&req);
        admit(&mut d, &[], None);
        assert_eq!(d.points.len(), 3, "no key: nothing checked");
    }

    /// Rotation: while the scaler holds the old and the new key, tokens signed with either
    /// are good; once the old key is removed, only the new tokens are.
    #[test]
    fn a_token_is_good_under_any_key_the_scaler_holds() {
        let stamped = vec![
            kv("pod", "p"),
            kv("deployment", "d"),
            kv("namespace", "team-a"),
        ];
        let req = request(vec![gauge_metric("m", stamped, 1.0, 1)]);
        let old = key();
        let new = TrustKey::new(&[b'k'; 48]).unwrap();
        let (old_token, new_token) = (token_for(&old, "team-a"), token_for(&new, "team-a"));
        assert_ne!(old_token, new_token);
        let admitted = |keys: &[TrustKey], token: &str| {
            let mut d = decode(&req);
            admit(&mut d, keys, Some(token));
            d.points.len()
        };
        let both = [new.clone(), old.clone()];
        assert_eq!(admitted(std::slice::from_ref(&old), &old_token), 1);
        assert_eq!(
            admitted(&both, &old_token),
            1,
            "running sidecars still write"
        );
        assert_eq!(admitted(&both, &new_token), 1, "rolled sidecars write");
        assert_eq!(admitted(std::slice::from_ref(&new), &new_token), 1);
        assert_eq!(
            admitted(std::slice::from_ref(&new), &old_token),
            0,
            "the old key is gone"
        );
        assert!(!verify_any(&both, "team-b", &old_token));
        assert!(!verify_any(&[], "team-a", &old_token));
    }
}
