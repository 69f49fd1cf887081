//! `trm-snap s3 prune`: keep the newest export of each of the last N
//! days, weeks and months (restic-style), per instance. The newest
//! complete export of an instance is never deleted; incomplete uploads
//! are the sweep's business, not the policy's, and refused (unsigned or
//! forged) backups are neither counted nor deleted: they are listed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::catalog::{self, Backup};
use super::settings::Retention;
use super::{backup_dir, data_key, manifest_key, S3Settings};
use crate::error::Result;
use crate::output::Row;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub instance: String,
    pub id: String,
    pub created: String,
    pub keep: bool,
    pub rule: String,
}

impl Row for Decision {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "ID", "CREATED", "ACTION", "RULE"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.id.clone(),
            self.created.clone(),
            if self.keep { "keep" } else { "delete" }.into(),
            self.rule.clone(),
        ]
    }
}

/// Decide one instance's exports, given as (id, created), any order.
pub fn plan(
    exports: &[(String, DateTime<Utc>)],
    policy: &Retention,
) -> Vec<(String, bool, String)> {
    let mut order: Vec<&(String, DateTime<Utc>)> = exports.iter().collect();
    order.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0)));
    type Period = fn(&DateTime<Utc>) -> String;
    let periods: [(&str, u32, Period); 3] = [
        ("daily", policy.daily, |t| t.format("%Y-%m-%d").to_string()),
        ("weekly", policy.weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t| t.format("%Y-%m").to_string()),
    ];
    let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    if let Some(newest) = order.first() {
        reasons
            .entry(&newest.0)
            .or_default()
            .push("the newest complete export is always kept".into());
    }
    for (name, count, period) in periods {
        let mut seen: Vec<String> = Vec::new();
        for (id, t) in &order {
            let p = period(t);
            if seen.contains(&p) {
                continue;
            }
            if seen.len() as u32 >= count {
                break;
            }
            seen.push(p.clone());
            reasons
                .entry(id)
                .or_default()
                .push(format!("{name}: newest of {p}"));
        }
    }
    exports
        .iter()
        .map(|(id, _)| match reasons.get(id.as_str()) {
            Some(r) => (id.clone(), true, r.join("; ")),
            None => (
                id.clone(),
                false,
                format!(
                    "beyond retention ({} daily, {} weekly, {} monthly)",
                    policy.daily, policy.weekly, policy.monthly
                ),
            ),
        })
        .collect()
}

/// The decisions for every instance's complete exports (or one instance's).
pub fn decide(backups: &[Backup], policy: &Retention) -> Vec<Decision> {
    let mut by_instance: BTreeMap<&str, Vec<&Backup>> = BTreeMap::new();
    for b in backups.iter().filter(|b| b.is_complete()) {
        by_instance.entry(&b.instance).or_default().push(b);
    }
    let mut out = Vec::new();
    for (inst, bs) in by_instance {
        let input: Vec<(String, DateTime<Utc>)> =
            bs.iter().map(|b| (b.id.clone(), b.created_at())).collect();
        for ((id, keep, rule), b) in plan(&input, policy).into_iter().zip(&bs) {
            out.push(Decision {
                instance: inst.to_string(),
                id,
                created: b.created.clone(),
                keep,
                rule,
            });
        }
    }
    // A kept incremental backup is only restorable with its chain.
    let kept: Vec<(&str, &str)> = out
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.instance.as_str(), d.id.as_str()))
        .collect();
    let needed = super::zfs_chain::needed_links(backups, &kept);
    for d in out.iter_mut().filter(|d| !d.keep) {
        if let Some(by) = needed.get(&(d.instance.clone(), d.id.clone())) {
            d.keep = true;
            d.rule = format!("a link of the ZFS chain kept backup {by} is restored from");
        }
    }
    out
}

/// Only `project`'s backups are counted or deleted: another project's
/// are refused by the catalog and left alone.
pub fn prune_plan(
    s: &S3Settings,
    name: Option<&str>,
    project: &str,
) -> Result<(Vec<Backup>, Vec<Decision>)> {
    let client = s.client()?;
    let backups = catalog::scan(&client, s, name, project)?;
    let decisions = decide(&backups, &s.retention);
    Ok((backups, decisions))
}

/// Delete what the plan says: the manifest first, so a backup never
/// looks complete without its data. The keys are the listed folder's,
/// never the manifest's own `objects` (a bucket writer's text).
pub fn apply(s: &S3Settings, backups: &[Backup], decisions: &[Decision]) -> Result<usize> {
    let client = s.client()?;
    let mut n = 0;
    for d in decisions.iter().filter(|d| !d.keep) {
        let Some(b) = backups
            .iter()
            .find(|b| b.instance == d.instance && b.id == d.id && b.is_complete())
        else {
            continue;
        };
        let dir = backup_dir(s, &b.instance, &b.id);
        client.delete(&manifest_key(&dir))?;
        client.delete(&data_key(&dir))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn newest_per_day_week_month_are_kept() {
        let mut exports = Vec::new();
        // Two exports a day for 60 days.
        for day in 0..60 {
            let t = at(2026, 9, 1, 1) + chrono::Duration::days(day);
            exports.push((format!("{day}-a"), t));
            exports.push((format!("{day}-b"), t + chrono::Duration::hours(12)));
        }
        let p = Retention::default();
        let plan = plan(&exports, &p);
        let kept: Vec<&str> = plan.iter().filter(|d| d.1).map(|d| d.0.as_str()).collect();
        // Morning exports are never the newest of their day.
        assert!(kept.iter().all(|k| k.ends_with("-b")), "{kept:?}");
        assert!(kept.contains(&"59-b") && kept.contains(&"53-b"), "{kept:?}");
        let daily: Vec<&str> = plan
            .iter()
            .filter(|d| d.1 && d.2.contains("daily:"))
            .map(|d| d.0.as_str())
            .collect();
        assert_eq!(daily.len(), 7);
        let monthly = plan
            .iter()
            .filter(|d| d.1 && d.2.contains("monthly:"))
            .count();
        assert_eq!(monthly, 2, "September and October exist");
        assert!(kept.len() < exports.len() / 4);
    }

    #[test]
    fn the_newest_is_kept_even_with_a_zero_policy() {
        let p = Retention {
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let e = vec![
            ("old".to_string(), at(2026, 1, 1, 0)),
            ("new".to_string(), at(2026, 2, 1, 0)),
        ];
        let plan = plan(&e, &p);
        assert_eq!(
            plan[0],
            (
                "old".into(),
                false,
                "beyond retention (0 daily, 0 weekly, 0 monthly)".into()
            )
        );
        assert!(plan[1].1);
        assert!(plan[1].2.contains("newest complete export"));
    }

    #[test]
    fn same_day_older_export_goes() {
        let e = vec![
            ("a".to_string(), at(2026, 11, 29, 1)),
            ("b".to_string(), at(2026, 11, 29, 2)),
        ];
        let plan = plan(&e, &Retention::default());
        assert!(!plan[0].1, "{plan:?}");
        assert!(plan[1].1);
    }

    #[test]
    fn links_a_kept_incremental_needs_are_kept_and_others_go() {
        let b = crate::offsite::zfs_chain::tests::link;
        // An old full chain (F0 <- I0), then a new one (F1 <- I1 <- I2),
        // all on different days; the policy alone keeps only the newest.
        let backups = vec![
            b("20261101T000000Z", None, 0),
            b("20261102T000000Z", Some("20261101T000000Z"), 1),
            b("20261110T000000Z", None, 0),
            b("20261111T000000Z", Some("20261110T000000Z"), 1),
            b("20261112T000000Z", Some("20261111T000000Z"), 2),
        ];
        let policy = Retention {
            daily: 1,
            weekly: 0,
            monthly: 0,
        };
        let kept: Vec<bool> = decide(&backups, &policy).iter().map(|d| d.keep).collect();
        assert_eq!(kept, [false, false, true, true, true]);
    }
}
