//! The LXD profiles Terrarium manages. For now the `default` profile: root
//! disk on the Terrarium pool, NIC on the private bridge, unprivileged.

use std::collections::BTreeMap;

use crate::lxd::{Config, Devices, Profile};

/// Config key marking a profile as Terrarium's (drift is measured against
/// Terrarium's definition only where this is set).
pub const MANAGED_KEY: &str = "user.terrarium.managed";

fn device(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn default_profile(pool: &str, bridge: &str) -> Profile {
    let config: Config = [("security.privileged", "false"), (MANAGED_KEY, "true")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let devices: Devices = [
        (
            "root".to_string(),
            device(&[("type", "disk"), ("path", "/"), ("pool", pool)]),
        ),
        (
            "eth0".to_string(),
            device(&[("type", "nic"), ("name", "eth0"), ("network", bridge)]),
        ),
    ]
    .into_iter()
    .collect();
    Profile {
        name: "default".into(),
        description: "Terrarium default: unprivileged, private bridge, Terrarium pool".into(),
        config,
        devices,
        used_by: Vec::new(),
    }
}

/// Does `live` already carry everything `want` asks for? Keys the user
/// added besides ours are theirs and do not count as drift.
pub fn satisfies(live: &Profile, want: &Profile) -> bool {
    live.description == want.description
        && want
            .config
            .iter()
            .all(|(k, v)| live.config.get(k) == Some(v))
        && want
            .devices
            .iter()
            .all(|(k, v)| live.devices.get(k) == Some(v))
}

/// `live` with `want`'s keys and devices laid over it.
pub fn merged(live: &Profile, want: &Profile) -> Profile {
    let mut p = live.clone();
    p.name = want.name.clone();
    p.description = want.description.clone();
    p.config.extend(want.config.clone());
    p.devices.extend(want.devices.clone());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_additions_are_kept_and_not_drift() {
        let want = default_profile("terrarium", "trmbr0");
        let mut live = want.clone();
        live.config.insert("limits.cpu".into(), "2".into());
        assert!(satisfies(&live, &want));
        live.devices
            .get_mut("eth0")
            .unwrap()
            .insert("network".into(), "lxdbr0".into());
        assert!(!satisfies(&live, &want));
        let fixed = merged(&live, &want);
        assert!(satisfies(&fixed, &want));
        assert_eq!(
            fixed.config.get("limits.cpu").map(String::as_str),
            Some("2")
        );
    }
}
