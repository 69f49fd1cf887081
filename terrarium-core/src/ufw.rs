//! UFW, run by argv with configurable `--rootdir`/`--datadir` (tests point
//! them at a private copy inside a network namespace). Terrarium owns the
//! rules whose comment it wrote and touches no others.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::process::{Cmd, Tool};

pub const UFW: Tool = Tool {
    names: &["ufw"],
    env: "TRM_UFW",
    hint: "install it with `apt-get install ufw`",
};

/// Comment prefix of the rules `trm-expose` owns.
pub const EXPOSE_TAG: &str = "terrarium-expose";

#[derive(Debug, Clone, Default)]
pub struct Ufw {
    pub rootdir: Option<PathBuf>,
    pub datadir: Option<PathBuf>,
}

/// One `allow PORT/PROTO` rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRule {
    pub port: u16,
    pub udp: bool,
    pub comment: String,
}

impl PortRule {
    pub fn spec(&self) -> String {
        format!("{}/{}", self.port, if self.udp { "udp" } else { "tcp" })
    }
}

/// The comment `trm-expose` puts on an instance's rule.
pub fn expose_comment(project: &str, instance: &str) -> String {
    format!("{EXPOSE_TAG} {project}/{instance}")
}

impl Ufw {
    /// The firewall the settings name (empty directories: ufw's own).
    pub fn from_settings(e: &crate::settings::ExposeSettings) -> Ufw {
        let dir = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        Ufw {
            rootdir: dir(&e.ufw_rootdir),
            datadir: dir(&e.ufw_datadir),
        }
    }

    /// Run `ufw ARGS` (checked) and return its standard output.
    pub fn run(&self, args: &[String]) -> Result<String> {
        Ok(self.cmd()?.args(args).run()?.stdout_str())
    }

    fn cmd(&self) -> Result<Cmd> {
        let mut c = Cmd::tool(&UFW)?;
        if let Some(r) = &self.rootdir {
            c = c.arg(format!("--rootdir={}", r.display()));
        }
        if let Some(d) = &self.datadir {
            c = c.arg(format!("--datadir={}", d.display()));
        }
        Ok(c)
    }

    /// The added rules, one `ufw ...` line each, as `ufw show added` prints them.
    pub fn added(&self) -> Result<Vec<String>> {
        let out = self.cmd()?.args(["show", "added"]).run()?;
        Ok(out
            .stdout_str()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ufw ").map(str::to_string))
            .collect())
    }

    pub fn allow(&self, rule: &PortRule) -> Result<()> {
        self.cmd()?
            .args(["allow", &rule.spec(), "comment", &rule.comment])
            .run()
            .map(drop)
    }

    pub fn delete(&self, rule: &PortRule) -> Result<()> {
        self.cmd()?
            .args(["delete", "allow", &rule.spec()])
            .run()
            .map(drop)
    }
}

/// Rules carrying Terrarium's expose tag, parsed from `show added` lines.
pub fn owned_rules(added: &[String]) -> Vec<PortRule> {
    added.iter().filter_map(|l| parse_owned(l)).collect()
}

fn parse_owned(line: &str) -> Option<PortRule> {
    let rest = line.strip_prefix("allow ")?;
    let (spec, comment) = rest.split_once(" comment ")?;
    let comment = comment.trim().trim_matches('\'').to_string();
    if !comment.starts_with(&format!("{EXPOSE_TAG} ")) {
        return None;
    }
    let (port, proto) = spec.trim().split_once('/')?;
    Some(PortRule {
        port: port.parse().ok()?,
        udp: match proto {
            "udp" => true,
            "tcp" => false,
            _ => return None,
        },
        comment,
    })
}

/// A rule Terrarium does not own that names this port (and protocol, or
/// both protocols): exposing the port would re-tag or shadow it.
pub fn foreign_rule_for(added: &[String], port: u16, udp: bool) -> Option<String> {
    let proto = if udp { "udp" } else { "tcp" };
    added
        .iter()
        .filter(|l| parse_owned(l).is_none())
        .find(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let names_port = words.iter().enumerate().any(|(i, w)| {
                let w = w.trim_matches('\'');
                w == port.to_string()
                    || w == format!("{port}/{proto}")
                    || (i > 0
                        && words[i - 1] == "port"
                        && w.split(',').any(|p| p == port.to_string()))
            });
            let other_proto = if udp { "tcp" } else { "udp" };
            let wrong_proto = words.iter().any(|w| *w == format!("{port}/{other_proto}"))
                || words
                    .windows(2)
                    .any(|w| w[0] == "proto" && w[1] == other_proto);
            names_port && !wrong_proto
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn owned_rules_are_exactly_those_with_our_comment() {
        let added = lines(&[
            "allow 5432/tcp comment 'terrarium-expose default/db'",
            "allow 5353/udp comment 'terrarium-expose default/dns'",
            "allow 8080/tcp comment 'my own rule'",
            "limit 22/tcp",
            "allow 9000/tcp comment 'terrarium-exposed default/x'",
        ]);
        let owned = owned_rules(&added);
        assert_eq!(owned.len(), 2);
        assert_eq!(owned[0].spec(), "5432/tcp");
        assert_eq!(owned[0].comment, expose_comment("default", "db"));
        assert!(owned[1].udp);
    }

    #[test]
    fn foreign_rules_naming_a_port_are_found() {
        let added = lines(&[
            "allow 8080/tcp comment 'my own rule'",
            "allow 9000",
            "allow proto udp to any port 5353",
            "allow from 10.0.0.0/8 to any port 7000,7001 proto tcp",
            "allow 5432/tcp comment 'terrarium-expose default/db'",
        ]);
        assert!(foreign_rule_for(&added, 8080, false).is_some());
        assert!(foreign_rule_for(&added, 8080, true).is_none());
        assert!(
            foreign_rule_for(&added, 9000, true).is_some(),
            "bare port covers both"
        );
        assert!(foreign_rule_for(&added, 5353, true).is_some());
        assert!(foreign_rule_for(&added, 5353, false).is_none());
        assert!(foreign_rule_for(&added, 7001, false).is_some());
        assert!(
            foreign_rule_for(&added, 5432, false).is_none(),
            "ours is not foreign"
        );
        assert!(foreign_rule_for(&added, 80, false).is_none());
    }
}
