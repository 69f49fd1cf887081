//! The host firewall, through ufw only: deny in, allow out, deny routed;
//! SSH (rate-limited), web and websecure in; DHCP and DNS from the private
//! bridge; the bridge may route out to the public interface, never the
//! other way. Rules are owned by their comment, so re-applying is a no-op
//! and rules of others (`trm-expose`'s included) are never touched.

use serde::Serialize;

/// Comment prefix of the rules `trm-harden` owns.
pub const TAG: &str = "terrarium-harden";

/// One ufw rule as its argv (what `ufw show added` prints after `ufw `).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub args: Vec<String>,
}

impl Rule {
    fn new(words: &str, what: &str) -> Rule {
        Rule::tagged(words, format!("{TAG} {what}"))
    }

    /// A rule owned by its comment (whoever's tag it starts with).
    pub fn tagged(words: &str, comment: String) -> Rule {
        let mut args: Vec<String> = words.split_whitespace().map(String::from).collect();
        args.push("comment".into());
        args.push(comment);
        Rule { args }
    }

    /// The line `ufw show added` prints for it (without `ufw `).
    pub fn line(&self) -> String {
        let n = self.args.len();
        format!("{} '{}'", self.args[..n - 1].join(" "), self.args[n - 1])
    }
}

/// The rules the host should have.
pub fn desired(ssh_ports: &[u16], bridge: &str, wan: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = ssh_ports
        .iter()
        .map(|p| Rule::new(&format!("limit {p}/tcp"), "ssh"))
        .collect();
    rules.push(Rule::new("allow 80/tcp", "web"));
    rules.push(Rule::new("allow 443/tcp", "websecure"));
    rules.push(Rule::new(
        &format!("allow in on {bridge} to any port 67 proto udp"),
        "dhcp from containers",
    ));
    rules.push(Rule::new(
        &format!("allow in on {bridge} to any port 53"),
        "dns from containers",
    ));
    rules.push(Rule::new(
        &format!("route allow in on {bridge} out on {wan}"),
        "container egress",
    ));
    rules.push(Rule::new(
        &format!("route deny in on {wan} out on {bridge}"),
        "nothing routed in",
    ));
    rules
}

/// Lines of `ufw show added` that carry our tag.
pub fn owned(added: &[String]) -> Vec<String> {
    owned_by(added, TAG)
}

/// Lines of `ufw show added` whose comment starts with `tag`.
pub fn owned_by(added: &[String], tag: &str) -> Vec<String> {
    added
        .iter()
        .filter(|l| l.contains(&format!(" comment '{tag} ")))
        .cloned()
        .collect()
}

/// The argv that deletes a rule `ufw show added` printed.
pub fn delete_args(line: &str) -> Vec<String> {
    let rule = line.split(" comment ").next().unwrap_or(line);
    let mut words: Vec<String> = rule.split_whitespace().map(String::from).collect();
    if words.first().map(String::as_str) == Some("route") {
        words.insert(1, "delete".into());
    } else {
        words.insert(0, "delete".into());
    }
    words
}

/// What `ufw status verbose` says about the firewall as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub active: bool,
    pub incoming: String,
    pub outgoing: String,
    pub routed: String,
}

/// The defaults we want, as `(direction, policy)`.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("incoming", "deny"),
    ("outgoing", "allow"),
    ("routed", "deny"),
];

impl Status {
    pub fn policy(&self, direction: &str) -> &str {
        match direction {
            "incoming" => &self.incoming,
            "outgoing" => &self.outgoing,
            _ => &self.routed,
        }
    }

    /// Defaults that differ from ours (`reject` is as closed as `deny`).
    pub fn wrong_defaults(&self) -> Vec<(&'static str, &'static str)> {
        DEFAULTS
            .iter()
            .filter(|(dir, want)| {
                let have = self.policy(dir);
                !(have == *want || (*want == "deny" && have == "reject"))
            })
            .copied()
            .collect()
    }
}

pub fn parse_status(text: &str) -> Status {
    let mut s = Status {
        active: text.lines().any(|l| l.trim() == "Status: active"),
        ..Status::default()
    };
    if let Some(line) = text.lines().find_map(|l| l.strip_prefix("Default: ")) {
        for part in line.split(',') {
            // "deny (incoming)"
            let mut w = part.split_whitespace();
            let (Some(policy), Some(dir)) = (w.next(), w.next()) else {
                continue;
            };
            let dir = dir.trim_matches(|c| c == '(' || c == ')');
            let slot = match dir {
                "incoming" => &mut s.incoming,
                "outgoing" => &mut s.outgoing,
                "routed" => &mut s.routed,
                _ => continue,
            };
            *slot = policy.to_string();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_render_as_ufw_prints_them_and_delete_by_their_words() {
        let rules = desired(&[22], "trmbr0", "eth0");
        let lines: Vec<String> = rules.iter().map(Rule::line).collect();
        assert_eq!(lines[0], "limit 22/tcp comment 'terrarium-harden ssh'");
        assert!(lines.contains(
            &"route deny in on eth0 out on trmbr0 comment 'terrarium-harden nothing routed in'"
                .to_string()
        ));
        assert_eq!(rules[0].args.last().unwrap(), "terrarium-harden ssh");
        assert_eq!(
            delete_args(
                "route allow in on trmbr0 out on eth0 comment 'terrarium-harden container egress'"
            ),
            ["route", "delete", "allow", "in", "on", "trmbr0", "out", "on", "eth0"]
        );
        assert_eq!(
            delete_args("limit 22/tcp comment 'terrarium-harden ssh'"),
            ["delete", "limit", "22/tcp"]
        );
    }

    #[test]
    fn only_our_rules_are_owned() {
        let added: Vec<String> = [
            "limit 22/tcp comment 'terrarium-harden ssh'",
            "allow 15432/tcp comment 'terrarium-expose default/db'",
            "allow 8080/tcp comment 'terrarium-hardened by hand'",
            "allow 9000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(owned(&added), vec![added[0].clone()]);
    }

    #[test]
    fn status_is_read_from_ufws_words() {
        let s = parse_status(
            "Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), reject (routed)\nNew profiles: skip\n",
        );
        assert!(s.active);
        assert!(s.wrong_defaults().is_empty(), "reject is as closed as deny");
        let s = parse_status(
            "Status: active\nDefault: allow (incoming), allow (outgoing), disabled (routed)\n",
        );
        assert_eq!(
            s.wrong_defaults(),
            vec![("incoming", "deny"), ("routed", "deny")]
        );
        assert!(!parse_status("Status: inactive\n").active);
    }
}
