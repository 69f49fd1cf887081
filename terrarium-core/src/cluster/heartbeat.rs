//! What each member says about itself, for `trm status` on any member:
//! its load and its newest off-site backup, published in its own member
//! config by the mesh's run every minute (LXD 5.0 has no per-member state
//! endpoint to read the load from).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lxd::cluster::Member;
use crate::lxd::Lxd;

pub const KEY: &str = "user.terrarium.heartbeat";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// RFC 3339 UTC.
    pub at: String,
    /// The 1, 5 and 15 minute load averages (null: unreadable here).
    pub load: Option<[f64; 3]>,
    /// The newest off-site backup this member made (RFC 3339), if any.
    pub last_backup: Option<String>,
}

/// A member's heartbeat, if it published one that parses.
pub fn of(m: &Member) -> Option<Heartbeat> {
    serde_json::from_str(m.config.get(KEY)?).ok()
}

/// `/proc/loadavg`'s first three fields.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut f = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// Publish this member's heartbeat.
pub fn publish(lxd: &Lxd, me: &str, project: &str) -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| parse_loadavg(&t));
    let last_backup = crate::runs::backups(project)
        .into_values()
        .map(|b| b.created)
        .max();
    let hb = Heartbeat {
        at: crate::time::utc(&chrono::Utc::now()),
        load,
        last_backup,
    };
    let text =
        serde_json::to_string(&hb).map_err(|e| crate::error::Error::parse("a heartbeat", e))?;
    lxd.set_member_config(me, KEY, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_and_a_published_heartbeat_read_back() {
        assert_eq!(
            parse_loadavg("0.52 0.31 0.20 2/345 6789\n"),
            Some([0.52, 0.31, 0.2])
        );
        assert_eq!(parse_loadavg("garbage"), None);
        let hb = Heartbeat {
            at: "2026-12-02T08:00:00Z".into(),
            load: Some([0.5, 0.25, 0.125]),
            last_backup: None,
        };
        let m = Member {
            server_name: "m1".into(),
            url: String::new(),
            roles: vec![],
            status: "Online".into(),
            message: String::new(),
            architecture: String::new(),
            config: [(KEY.to_string(), serde_json::to_string(&hb).unwrap())]
                .into_iter()
                .collect(),
        };
        assert_eq!(of(&m), Some(hb));
    }
}
