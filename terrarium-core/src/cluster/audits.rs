//! `trm-harden audit` on a cluster: each member audits itself (sshd, its
//! firewall, its sockets are its own) and publishes which checks failed in
//! its member config; `trm-harden audit --members`, on any member, says
//! which member fails which check, and which has not audited lately.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::harden::audit::Check;
use crate::lxd::cluster::Member;
use crate::lxd::Lxd;
use crate::output::Row;
use crate::verdict::Status;

pub const KEY: &str = "user.terrarium.audit";
/// An audit older than this is reported as missing.
pub const STALE_SECONDS: i64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// RFC 3339 UTC.
    pub at: String,
    pub failed: Vec<String>,
    pub warned: Vec<String>,
}

pub fn summary(checks: &[Check], now: DateTime<Utc>) -> Published {
    let named = |s: Status| {
        checks
            .iter()
            .filter(|c| c.status == s)
            .map(|c| c.check.to_string())
            .collect()
    };
    Published {
        at: crate::time::utc(&now),
        failed: named(Status::Fail),
        warned: named(Status::Warn),
    }
}

/// Publish this member's audit, when this host is a cluster member.
pub fn publish(lxd: &Lxd, checks: &[Check]) -> Result<bool> {
    if !lxd.is_local()? {
        return Ok(false);
    }
    let me = lxd.cluster()?;
    if !me.enabled {
        return Ok(false);
    }
    let text = serde_json::to_string(&summary(checks, Utc::now()))
        .map_err(|e| crate::error::Error::parse("an audit summary", e))?;
    lxd.set_member_config(&me.server_name, KEY, &text)?;
    Ok(true)
}

/// One member's last audit, as `--members` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberAudit {
    pub member: String,
    pub status: String,
    pub audited: Option<String>,
    pub age_seconds: Option<i64>,
    pub failed: Vec<String>,
    pub warned: Vec<String>,
    /// Failing checks, a missing or stale audit: this member needs a look.
    pub ok: bool,
}

pub fn of(m: &Member, now: DateTime<Utc>) -> MemberAudit {
    let p: Option<Published> = m.config.get(KEY).and_then(|t| serde_json::from_str(t).ok());
    // A member's clock ahead of ours makes a fresh audit (age 0).
    let age = p.as_ref().and_then(|p| {
        DateTime::parse_from_rfc3339(&p.at)
            .ok()
            .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0))
    });
    let (failed, warned) = p
        .as_ref()
        .map_or((vec![], vec![]), |p| (p.failed.clone(), p.warned.clone()));
    MemberAudit {
        member: m.server_name.clone(),
        status: m.status.to_ascii_lowercase(),
        audited: p.map(|p| p.at),
        age_seconds: age,
        ok: failed.is_empty() && age.is_some_and(|a| a <= STALE_SECONDS),
        failed,
        warned,
    }
}

pub fn members(lxd: &Lxd, now: DateTime<Utc>) -> Result<Vec<MemberAudit>> {
    Ok(lxd.cluster_members()?.iter().map(|m| of(m, now)).collect())
}

impl Row for MemberAudit {
    fn headers() -> &'static [&'static str] {
        &["MEMBER", "STATUS", "AUDITED", "FAILED", "WARNED"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.member.clone(),
            self.status.clone(),
            self.audited.clone().unwrap_or_else(|| "never".into()),
            self.failed.join(","),
            self.warned.join(","),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(config: Option<&Published>) -> Member {
        Member {
            server_name: "m2".into(),
            url: String::new(),
            roles: vec![],
            status: "Online".into(),
            message: String::new(),
            architecture: String::new(),
            config: config
                .map(|p| {
                    [(KEY.to_string(), serde_json::to_string(p).unwrap())]
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    #[test]
    fn a_member_with_failures_a_stale_audit_or_none_needs_a_look() {
        let now: DateTime<Utc> = "2026-12-02T08:00:00Z".parse().unwrap();
        let fresh = Published {
            at: "2026-12-02T07:00:00Z".into(),
            failed: vec!["ssh_passwords".into()],
            warned: vec![],
        };
        let a = of(&member(Some(&fresh)), now);
        assert_eq!(a.failed, vec!["ssh_passwords"]);
        assert_eq!(a.age_seconds, Some(3600));
        assert!(!a.ok);
        let clean = Published {
            failed: vec![],
            ..fresh.clone()
        };
        assert!(of(&member(Some(&clean)), now).ok);
        let old = Published {
            at: "2026-11-20T07:00:00Z".into(),
            ..clean
        };
        assert!(!of(&member(Some(&old)), now).ok, "stale");
        let none = of(&member(None), now);
        assert!(!none.ok && none.audited.is_none());
    }
}
