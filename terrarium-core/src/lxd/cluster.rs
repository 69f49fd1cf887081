//! LXD's clustering API: the members, join tokens, evacuation. Reads go
//! through `lxc query`; changes through the verbs, which wait for LXD's
//! operations.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{not_found, Config, Lxd};
use crate::error::{Error, Result};
use crate::process::Cmd;

/// Evacuating moves or stops every instance on a member: minutes, not seconds.
const EVACUATE_TIMEOUT: Duration = Duration::from_secs(900);
/// Joining copies the cluster's database and images.
const JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// `GET /1.0/cluster`: is this server clustered, and as whom.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterInfo {
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub enabled: bool,
}

/// One member of the cluster (`GET /1.0/cluster/members`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub server_name: String,
    /// `https://ADDRESS:PORT`, the member's cluster address.
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Online, Offline, Evacuated, Blocked...
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub config: Config,
}

impl Member {
    /// The member's cluster address without scheme or port.
    pub fn host(&self) -> &str {
        let rest = self.url.strip_prefix("https://").unwrap_or(&self.url);
        match rest.rsplit_once(':') {
            // [v6]:port
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                h.trim_start_matches('[').trim_end_matches(']')
            }
            _ => rest,
        }
    }
}

/// A pending join token, as LXD keeps it among its operations.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingToken {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl PendingToken {
    fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// The member name the token was issued for.
    pub fn server_name(&self) -> &str {
        self.meta("serverName")
    }

    /// The token string `lxc cluster add` printed, rebuilt from what LXD
    /// keeps (the same fields, in the same encoding).
    pub fn token(&self) -> Option<String> {
        use base64::Engine;
        // LXD's own field order, so the token is the very one it printed.
        #[derive(Serialize)]
        struct Token<'a> {
            server_name: &'a str,
            fingerprint: &'a str,
            addresses: Vec<String>,
            secret: &'a str,
            expires_at: &'a str,
        }
        let addresses = serde_json::from_value(self.metadata.get("addresses")?.clone()).ok()?;
        let body = serde_json::to_string(&Token {
            server_name: self.server_name(),
            fingerprint: self.meta("fingerprint"),
            addresses,
            secret: self.meta("secret"),
            expires_at: self.meta("expiresAt"),
        })
        .ok()?;
        (!self.meta("secret").is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(body))
    }
}

impl Lxd {
    /// This server's clustering state.
    pub fn cluster(&self) -> Result<ClusterInfo> {
        self.query_unscoped("/1.0/cluster")
    }

    /// Every member, with its status; empty on a server that is not clustered.
    pub fn cluster_members(&self) -> Result<Vec<Member>> {
        if !self.cluster()?.enabled {
            return Ok(vec![]);
        }
        self.query_unscoped("/1.0/cluster/members?recursion=1")
    }

    pub fn cluster_member(&self, name: &str) -> Result<Member> {
        self.query_unscoped(&format!("/1.0/cluster/members/{name}"))
            .map_err(|e| not_found(e, "cluster member", name))
    }

    /// One member's LXD version, asked of that member.
    pub fn member_version(&self, name: &str) -> Result<String> {
        let s: super::Server = self.query_unscoped(&format!("/1.0?target={name}"))?;
        Ok(s.environment.server_version)
    }

    /// Join tokens issued and not yet used (LXD keeps them as operations).
    pub fn join_tokens(&self) -> Result<Vec<PendingToken>> {
        #[derive(Deserialize, Default)]
        struct Ops {
            #[serde(default)]
            running: Vec<PendingToken>,
        }
        let ops: Ops = self.query_list("/1.0/operations?recursion=1")?;
        Ok(ops
            .running
            .into_iter()
            .filter(|t| t.class == "token" && !t.server_name().is_empty())
            .collect())
    }

    /// Turn this server into the first member of a new cluster.
    pub fn enable_cluster(&self, name: &str) -> Result<()> {
        self.run(&self.cmd().args(["cluster", "enable", "--", name]))
            .map(drop)
    }

    /// Issue a join token for a new member `name`; returns the token.
    pub fn add_member(&self, name: &str) -> Result<String> {
        let out = self.run(&self.cmd().args(["cluster", "add", "--", name]))?;
        // "Member NAME join token:\n<token>"
        out.stdout_str()
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Parse {
                context: format!("`lxc cluster add {name}`"),
                message: "no token in its output".into(),
            })
    }

    /// A cluster group (Terrarium's instance leases are groups of no member).
    pub fn create_cluster_group(&self, name: &str, description: &str) -> Result<()> {
        self.write(
            "POST",
            "/1.0/cluster/groups",
            &serde_json::json!({"name": name, "description": description, "members": []}),
        )
    }

    pub fn set_cluster_group_description(&self, name: &str, description: &str) -> Result<()> {
        self.write(
            "PUT",
            &format!("/1.0/cluster/groups/{name}"),
            &serde_json::json!({"description": description, "members": []}),
        )
    }

    pub fn cluster_group_description(&self, name: &str) -> Result<String> {
        #[derive(Deserialize)]
        struct Group {
            #[serde(default)]
            description: String,
        }
        let g: Group = self
            .query_unscoped(&format!("/1.0/cluster/groups/{name}"))
            .map_err(|e| not_found(e, "cluster group", name))?;
        Ok(g.description)
    }

    pub fn delete_cluster_group(&self, name: &str) -> Result<()> {
        self.write(
            "DELETE",
            &format!("/1.0/cluster/groups/{name}"),
            &serde_json::json!({}),
        )
    }

    /// Is the LXD we talk to this host's own (the client's default remote
    /// is its unix socket), not a cluster reached over HTTPS?
    pub fn is_local(&self) -> Result<bool> {
        let out = self.run(&self.cmd().args(["remote", "get-default"]))?;
        Ok(out.stdout_str().trim() == "local")
    }

    /// One key of a member's own config (`user.*` keys it publishes).
    pub fn set_member_config(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.run(&self.cmd().args(["cluster", "set", "--", name, key, value]))
            .map(drop)
    }

    /// Evacuate (`evacuate`) or bring back (`restore`) a member's instances.
    pub fn member_state(&self, name: &str, action: &str) -> Result<()> {
        self.run(
            &self
                .cmd()
                .args(["cluster", action, "--force", "--", name])
                .timeout(EVACUATE_TIMEOUT),
        )
        .map(drop)
    }

    /// Remove a member; `force` for one that is gone for good.
    pub fn remove_member(&self, name: &str, force: bool) -> Result<()> {
        let mut cmd = self.cmd().args(["cluster", "remove"]);
        if force {
            cmd = cmd.args(["--force", "--yes"]);
        }
        self.run(&cmd.args(["--", name]).timeout(EVACUATE_TIMEOUT))
            .map(drop)
    }

    /// Join this (unclustered) server to a cluster: `lxd init --preseed`
    /// with `preseed` (JSON is YAML), which checks the token's fingerprint
    /// against the cluster's certificate before it changes anything.
    pub fn join_cluster(&self, preseed: &serde_json::Value) -> Result<()> {
        let lxd = crate::process::tools::LXD.resolve()?;
        self.run(
            &Cmd::new(lxd)
                .args(["init", "--preseed"])
                .stdin_bytes(preseed.to_string())
                .timeout(JOIN_TIMEOUT),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_host_is_its_url_without_scheme_and_port() {
        let m = |url: &str| Member {
            server_name: "m".into(),
            url: url.into(),
            roles: vec![],
            status: String::new(),
            message: String::new(),
            architecture: String::new(),
            config: Config::new(),
        };
        assert_eq!(m("https://10.1.2.3:8443").host(), "10.1.2.3");
        assert_eq!(m("https://[fd00::1]:8443").host(), "fd00::1");
        assert_eq!(m("10.1.2.3").host(), "10.1.2.3");
    }

    #[test]
    fn a_pending_token_is_rebuilt_as_lxd_printed_it() {
        let t: PendingToken = serde_json::from_value(serde_json::json!({
            "id": "x", "class": "token", "status": "Running",
            "metadata": {"serverName": "m2", "fingerprint": "ab", "secret": "s3",
                         "addresses": ["10.0.0.1:8443"], "expiresAt": "2026-12-02T10:00:00Z"}
        }))
        .unwrap();
        let token = crate::cluster::token::JoinToken::decode(&t.token().unwrap()).unwrap();
        assert_eq!(token.server_name, "m2");
        assert_eq!(token.secret, "s3");
        assert_eq!(token.addresses, vec!["10.0.0.1:8443"]);
    }
}
