//! LXD's join token, read before anything is changed: a token that is not
//! one, has expired, or names nowhere to join is refused here, so a bad
//! paste never reaches either server.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `lxc cluster add` encodes (base64 of this JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JoinToken {
    /// The member name the cluster issued the token for.
    pub server_name: String,
    /// SHA-256 of the cluster's certificate, checked by LXD on join.
    pub fingerprint: String,
    /// Where the existing members answer (`ADDRESS:PORT`).
    pub addresses: Vec<String>,
    #[serde(skip_serializing)]
    pub secret: String,
    #[serde(default)]
    pub expires_at: String,
}

impl JoinToken {
    /// Decode a pasted token; errors say what is wrong with it, never echo
    /// its secret.
    pub fn decode(text: &str) -> Result<JoinToken> {
        let bad =
            |why: &str| Error::Usage(format!("not a join token from `trm cluster add`: {why}"));
        let text = text.trim();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .map_err(|_| bad("it is not base64"))?;
        let t: JoinToken =
            serde_json::from_slice(&raw).map_err(|_| bad("it does not hold LXD's join fields"))?;
        if t.server_name.is_empty() || t.secret.is_empty() || t.fingerprint.is_empty() {
            return Err(bad("its member name, secret or fingerprint is empty"));
        }
        if t.addresses.is_empty() {
            return Err(bad("it names no member to join through"));
        }
        Ok(t)
    }

    /// When it stops working, if it says.
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        // LXD writes Go's zero time for "never".
        DateTime::parse_from_rfc3339(&self.expires_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| t.timestamp() > 0)
    }

    /// Refuse a token that has run out, naming when.
    pub fn check_fresh(&self, now: DateTime<Utc>) -> Result<()> {
        match self.expires() {
            Some(at) if at <= now => Err(Error::Usage(format!(
                "the join token for '{}' expired at {}; issue a new one with `trm cluster add {}` on a member",
                self.server_name,
                at.format("%Y-%m-%dT%H:%M:%SZ"),
                self.server_name
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: serde_json::Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(v.to_string())
    }

    fn good() -> serde_json::Value {
        serde_json::json!({"server_name": "m2", "fingerprint": "abcd", "addresses": ["10.9.0.11:8443"],
                           "secret": "s3cr3t", "expires_at": "2026-12-02T10:00:00Z"})
    }

    #[test]
    fn a_token_decodes_to_its_fields() {
        let t = JoinToken::decode(&format!("  {}\n", encode(good()))).unwrap();
        assert_eq!(t.server_name, "m2");
        assert_eq!(t.addresses, vec!["10.9.0.11:8443"]);
        // The secret never goes out again in a report.
        assert!(!serde_json::to_string(&t).unwrap().contains("s3cr3t"));
    }

    #[test]
    fn garbage_is_refused_naming_why() {
        let e = JoinToken::decode("hello world").unwrap_err().to_string();
        assert!(e.contains("not base64"), "{e}");
        let e = JoinToken::decode(&encode(serde_json::json!({"a": 1})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("join fields"), "{e}");
        let mut v = good();
        v["addresses"] = serde_json::json!([]);
        let e = JoinToken::decode(&encode(v)).unwrap_err().to_string();
        assert!(e.contains("no member"), "{e}");
        let mut v = good();
        v["secret"] = serde_json::json!("");
        assert!(JoinToken::decode(&encode(v)).is_err());
    }

    #[test]
    fn an_expired_token_is_refused_and_zero_time_never_expires() {
        let t = JoinToken::decode(&encode(good())).unwrap();
        let before: DateTime<Utc> = "2026-12-02T09:00:00Z".parse().unwrap();
        let after: DateTime<Utc> = "2026-12-02T11:00:00Z".parse().unwrap();
        assert!(t.check_fresh(before).is_ok());
        let e = t.check_fresh(after).unwrap_err().to_string();
        assert!(e.contains("expired at 2026-12-02T10:00:00Z"), "{e}");
        let mut v = good();
        v["expires_at"] = serde_json::json!("0001-01-01T00:00:00Z");
        assert!(JoinToken::decode(&encode(v))
            .unwrap()
            .check_fresh(after)
            .is_ok());
    }
}
