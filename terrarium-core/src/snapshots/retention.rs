//! The time machine's retention policy, sanoid-style tiers, as a pure
//! function of (snapshots, now, policy): every snapshot gets keep or
//! delete and the rule that decided it.
//!
//! Only Terrarium's automatic snapshots are ever deleted, and only when a
//! snapshot is both beyond its tier's count and older than count x period.
//! Never deleted: manual snapshots, held ones, safety snapshots younger
//! than the grace period, the newest snapshot, anything something depends
//! on, and names Terrarium did not write.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Frequent,
    Hourly,
    Daily,
    Monthly,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Frequent, Tier::Hourly, Tier::Daily, Tier::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Frequent => "frequent",
            Tier::Hourly => "hourly",
            Tier::Daily => "daily",
            Tier::Monthly => "monthly",
        }
    }

    /// The age a snapshot of this tier stands for. Months count as 31
    /// days, so "older than count x period" never cuts a month short.
    pub fn period(self) -> Duration {
        match self {
            Tier::Frequent => Duration::minutes(15),
            Tier::Hourly => Duration::hours(1),
            Tier::Daily => Duration::days(1),
            Tier::Monthly => Duration::days(31),
        }
    }

    /// The calendar slot a time falls in (15-minute, hour, day, month).
    fn slot(self, t: DateTime<Utc>) -> (i32, u32, u32, u32, u32) {
        match self {
            Tier::Frequent => (t.year(), t.month(), t.day(), t.hour(), t.minute() / 15),
            Tier::Hourly => (t.year(), t.month(), t.day(), t.hour(), 0),
            Tier::Daily => (t.year(), t.month(), t.day(), 0, 0),
            Tier::Monthly => (t.year(), t.month(), 0, 0, 0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub frequent: u32,
    pub hourly: u32,
    pub daily: u32,
    pub monthly: u32,
    /// Safety snapshots (taken before a rollback) are kept at least this long.
    pub safety_grace_days: u32,
    /// Checkpoints (`trm exec --checkpoint`) kept, newest first; the
    /// latest one always is.
    pub checkpoints: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            frequent: 4,
            hourly: 24,
            daily: 14,
            monthly: 3,
            safety_grace_days: 7,
            checkpoints: 10,
        }
    }
}

impl Policy {
    pub fn count(&self, t: Tier) -> u32 {
        match t {
            Tier::Frequent => self.frequent,
            Tier::Hourly => self.hourly,
            Tier::Daily => self.daily,
            Tier::Monthly => self.monthly,
        }
    }
}

/// What a snapshot's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "tier")]
pub enum Kind {
    Auto(Tier),
    Manual,
    Safety,
    /// Taken before a risky command (`trm exec --checkpoint`).
    Checkpoint,
    /// Not written by Terrarium: never pruned.
    Foreign,
}

pub const AUTO_PREFIX: &str = "trm-auto-";
pub const MANUAL_PREFIX: &str = "trm-manual-";
pub const SAFETY_PREFIX: &str = "trm-safety-";
pub const CHECKPOINT_PREFIX: &str = "trm-checkpoint-";
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// `trm-auto-hourly-20261128T230000Z` and friends.
pub fn auto_name(tier: Tier, at: DateTime<Utc>) -> String {
    format!("{AUTO_PREFIX}{}-{}", tier.as_str(), at.format(STAMP))
}

pub fn safety_name(at: DateTime<Utc>) -> String {
    format!("{SAFETY_PREFIX}{}", at.format(STAMP))
}

pub fn checkpoint_name(at: DateTime<Utc>) -> String {
    format!("{CHECKPOINT_PREFIX}{}", at.format(STAMP))
}

/// `YYYYMMDDTHHMMSSZ`, checked by shape: this runs for every snapshot
/// on every prune, and a full date parse costs more than the whole plan.
pub(crate) fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit())
}

pub fn kind_of(name: &str) -> Kind {
    if let Some(rest) = name.strip_prefix(AUTO_PREFIX) {
        let tier = Tier::ALL.into_iter().find(|t| {
            rest.strip_prefix(t.as_str())
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(is_stamp)
        });
        return tier.map_or(Kind::Foreign, Kind::Auto);
    }
    if name.starts_with(SAFETY_PREFIX) {
        Kind::Safety
    } else if name.starts_with(CHECKPOINT_PREFIX) {
        Kind::Checkpoint
    } else if name.starts_with(MANUAL_PREFIX) {
        Kind::Manual
    } else {
        Kind::Foreign
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub name: String,
    pub created: DateTime<Utc>,
    pub held: bool,
    /// Something depends on it (a clone, an export base).
    pub depended_on: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub name: String,
    pub keep: bool,
    pub rule: String,
}

/// Decide every snapshot of one instance. Output is in input order.
pub fn plan(snaps: &[Snap], now: DateTime<Utc>, policy: &Policy) -> Vec<Decision> {
    // Newest first; equal times fall back to the name so the result never
    // depends on the order LXD listed them in.
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by(|&a, &b| {
        (snaps[b].created, &snaps[b].name).cmp(&(snaps[a].created, &snaps[a].name))
    });
    let newest = order.first().copied();
    let mut rank_in_tier = [0u32; 4];
    let mut checkpoints_seen = 0u32;
    let mut out: Vec<Option<Decision>> = vec![None; snaps.len()];
    for i in order {
        let s = &snaps[i];
        let age = now - s.created;
        let keep = |rule: String| Decision {
            name: s.name.clone(),
            keep: true,
            rule,
        };
        let kind = kind_of(&s.name);
        // Rank within the tier counts every auto snapshot of it, protected or not.
        let rank = match kind {
            Kind::Auto(t) => {
                let r = rank_in_tier[t as usize];
                rank_in_tier[t as usize] += 1;
                Some(r)
            }
            Kind::Checkpoint => {
                checkpoints_seen += 1;
                Some(checkpoints_seen - 1)
            }
            _ => None,
        };
        let d = if Some(i) == newest {
            keep("the newest snapshot is always kept".into())
        } else if s.held {
            keep("held".into())
        } else if s.depended_on {
            keep("something depends on it".into())
        } else {
            match kind {
                Kind::Manual => keep("manual snapshots are never pruned".into()),
                Kind::Checkpoint => {
                    let rank = rank.expect("checkpoints are ranked");
                    if rank == 0 {
                        keep("the latest checkpoint is always kept".into())
                    } else if rank < policy.checkpoints {
                        keep(format!(
                            "within the {} newest checkpoints",
                            policy.checkpoints
                        ))
                    } else {
                        Decision {
                            name: s.name.clone(),
                            keep: false,
                            rule: format!("beyond the {} newest checkpoints", policy.checkpoints),
                        }
                    }
                }
                Kind::Foreign => keep("not a Terrarium automatic snapshot".into()),
                Kind::Safety => {
                    let grace = Duration::days(i64::from(policy.safety_grace_days));
                    if age < grace {
                        keep(format!(
                            "safety snapshot younger than {} days",
                            policy.safety_grace_days
                        ))
                    } else {
                        Decision {
                            name: s.name.clone(),
                            keep: false,
                            rule: format!(
                                "safety snapshot older than {} days",
                                policy.safety_grace_days
                            ),
                        }
                    }
                }
                Kind::Auto(t) => {
                    let count = policy.count(t);
                    let rank = rank.expect("auto snapshots are ranked");
                    let horizon = t.period() * count as i32;
                    if age < Duration::zero() {
                        keep("created in the future (the clock moved back)".into())
                    } else if rank < count {
                        keep(format!("within the {count} newest {}", t.as_str()))
                    } else if age <= horizon {
                        keep(format!(
                            "{} younger than {count} x {}",
                            t.as_str(),
                            human(t.period())
                        ))
                    } else {
                        Decision {
                            name: s.name.clone(),
                            keep: false,
                            rule: format!(
                                "beyond the {count} newest {} and older than {count} x {}",
                                t.as_str(),
                                human(t.period())
                            ),
                        }
                    }
                }
            }
        };
        out[i] = Some(d);
    }
    out.into_iter()
        .map(|d| d.expect("every snapshot decided"))
        .collect()
}

fn human(d: Duration) -> String {
    if d.num_days() >= 1 {
        format!("{}d", d.num_days())
    } else if d.num_hours() >= 1 {
        format!("{}h", d.num_hours())
    } else {
        format!("{}m", d.num_minutes())
    }
}

/// The tier the next automatic snapshot belongs to: the highest tier with
/// no snapshot in the current calendar slot, or `None` when all are taken.
pub fn due_tier(snaps: &[Snap], now: DateTime<Utc>, policy: &Policy) -> Option<Tier> {
    Tier::ALL.into_iter().rev().find(|&t| {
        policy.count(t) > 0
            && !snaps.iter().any(|s| {
                matches!(kind_of(&s.name), Kind::Auto(k) if k >= t)
                    && t.slot(s.created) == t.slot(now)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_keep_their_count_and_always_the_latest() {
        let t = |h: u32| Utc.with_ymd_and_hms(2026, 11, 28, h, 0, 0).unwrap();
        let cp = |h: u32| Snap {
            name: checkpoint_name(t(h)),
            created: t(h),
            held: false,
            depended_on: false,
        };
        assert_eq!(kind_of(&checkpoint_name(t(1))), Kind::Checkpoint);
        // Three checkpoints and a newer manual snapshot; keep 1 checkpoint.
        let mut snaps = vec![cp(1), cp(2), cp(3)];
        snaps.push(Snap {
            name: "trm-manual-later".into(),
            created: t(5),
            held: false,
            depended_on: false,
        });
        let policy = Policy {
            checkpoints: 1,
            ..Policy::default()
        };
        let d = plan(&snaps, t(6), &policy);
        let keep = |n: &str| d.iter().find(|x| x.name == n).unwrap().clone();
        let latest = keep(&checkpoint_name(t(3)));
        assert!(latest.keep, "{latest:?}");
        assert_eq!(latest.rule, "the latest checkpoint is always kept");
        assert!(!keep(&checkpoint_name(t(2))).keep);
        assert!(!keep(&checkpoint_name(t(1))).keep);
        // Even a policy of none keeps the latest.
        let none = Policy {
            checkpoints: 0,
            ..Policy::default()
        };
        assert!(plan(&snaps, t(6), &none)
            .iter()
            .any(|x| x.name == checkpoint_name(t(3)) && x.keep));
    }
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn auto(t: Tier, when: &str) -> Snap {
        Snap {
            name: auto_name(t, at(when)),
            created: at(when),
            held: false,
            depended_on: false,
        }
    }

    fn named(name: &str, when: &str) -> Snap {
        Snap {
            name: name.into(),
            created: at(when),
            held: false,
            depended_on: false,
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|x| x.keep)
            .map(|x| x.name.as_str())
            .collect()
    }

    #[test]
    fn names_round_trip_to_kinds() {
        let t = at("2026-11-28T23:15:00Z");
        assert_eq!(
            kind_of(&auto_name(Tier::Hourly, t)),
            Kind::Auto(Tier::Hourly)
        );
        assert_eq!(auto_name(Tier::Daily, t), "trm-auto-daily-20261128T231500Z");
        assert_eq!(kind_of(&safety_name(t)), Kind::Safety);
        assert_eq!(kind_of("trm-manual-before-upgrade"), Kind::Manual);
        assert_eq!(kind_of("trm-auto-hourly-yesterday"), Kind::Foreign);
        assert_eq!(kind_of("trm-auto-hourly-20261128T2315Z"), Kind::Foreign);
        assert_eq!(kind_of("trm-auto-weekly-20261128T231500Z"), Kind::Foreign);
        assert_eq!(kind_of("snap0"), Kind::Foreign);
    }

    #[test]
    fn table() {
        let p = Policy {
            frequent: 2,
            hourly: 2,
            daily: 2,
            monthly: 2,
            safety_grace_days: 7,
            checkpoints: 2,
        };
        struct Case {
            what: &'static str,
            now: &'static str,
            snaps: Vec<Snap>,
            keep: Vec<usize>,
        }
        let cases = vec![
            Case {
                what: "empty",
                now: "2026-01-01T00:00:00Z",
                snaps: vec![],
                keep: vec![],
            },
            Case {
                what: "beyond count but young enough is kept",
                now: "2026-01-01T01:00:00Z",
                snaps: vec![
                    auto(Tier::Hourly, "2026-01-01T00:59:00Z"),
                    auto(Tier::Hourly, "2026-01-01T00:30:00Z"),
                    auto(Tier::Hourly, "2026-01-01T00:00:00Z"),
                ],
                keep: vec![0, 1, 2],
            },
            Case {
                what: "beyond count and older than count x period is deleted",
                now: "2026-01-01T05:00:00Z",
                snaps: vec![
                    auto(Tier::Hourly, "2026-01-01T04:00:00Z"),
                    auto(Tier::Hourly, "2026-01-01T03:00:00Z"),
                    auto(Tier::Hourly, "2026-01-01T02:00:00Z"),
                    auto(Tier::Hourly, "2026-01-01T01:00:00Z"),
                ],
                keep: vec![0, 1],
            },
            Case {
                what: "month ends: Jan 31, Feb 28, Mar 31 monthlies on Apr 30",
                now: "2026-04-30T00:00:00Z",
                snaps: vec![
                    auto(Tier::Monthly, "2026-01-31T00:00:00Z"),
                    auto(Tier::Monthly, "2026-02-28T00:00:00Z"),
                    auto(Tier::Monthly, "2026-03-31T00:00:00Z"),
                ],
                // Jan 31 is third (beyond 2) and 89 days old > 62: deleted.
                keep: vec![1, 2],
            },
            Case {
                what: "a clock that jumped backwards keeps the future snapshots",
                now: "2026-01-01T00:00:00Z",
                snaps: vec![
                    auto(Tier::Frequent, "2026-06-01T00:00:00Z"),
                    auto(Tier::Frequent, "2026-05-01T00:00:00Z"),
                    auto(Tier::Frequent, "2026-04-01T00:00:00Z"),
                    auto(Tier::Frequent, "2025-01-01T00:00:00Z"),
                ],
                keep: vec![0, 1, 2],
            },
            Case {
                what: "duplicate timestamps are ordered by name, deterministically",
                now: "2026-01-02T00:00:00Z",
                snaps: vec![
                    named("trm-auto-hourly-20260101T000000Z", "2026-01-01T00:00:00Z"),
                    named("trm-auto-frequent-20260101T000000Z", "2026-01-01T00:00:00Z"),
                ],
                // Same instant: the later name sorts newer and is the one kept as newest.
                keep: vec![0, 1],
            },
            Case {
                what: "manual, foreign, held, depended-on and young safety snapshots survive",
                now: "2026-03-01T00:00:00Z",
                snaps: vec![
                    auto(Tier::Daily, "2026-02-28T00:00:00Z"),
                    named("trm-manual-before-upgrade", "2025-01-01T00:00:00Z"),
                    named("my-own", "2025-01-01T00:00:00Z"),
                    Snap {
                        held: true,
                        ..auto(Tier::Daily, "2025-01-01T00:00:00Z")
                    },
                    Snap {
                        depended_on: true,
                        ..auto(Tier::Daily, "2025-01-02T00:00:00Z")
                    },
                    named(
                        &safety_name(at("2026-02-25T00:00:00Z")),
                        "2026-02-25T00:00:00Z",
                    ),
                    named(
                        &safety_name(at("2026-02-01T00:00:00Z")),
                        "2026-02-01T00:00:00Z",
                    ),
                    auto(Tier::Daily, "2025-01-03T00:00:00Z"),
                    auto(Tier::Daily, "2025-01-04T00:00:00Z"),
                ],
                // 2025-01-04 is the second newest daily: within the count.
                keep: vec![0, 1, 2, 3, 4, 5, 8],
            },
            Case {
                what: "the newest snapshot is kept even when every rule says delete",
                now: "2030-01-01T00:00:00Z",
                snaps: vec![named(
                    &safety_name(at("2026-01-01T00:00:00Z")),
                    "2026-01-01T00:00:00Z",
                )],
                keep: vec![0],
            },
        ];
        for c in cases {
            let d = plan(&c.snaps, at(c.now), &p);
            let want: Vec<&str> = c.keep.iter().map(|&i| c.snaps[i].name.as_str()).collect();
            assert_eq!(kept(&d), want, "{}: {d:#?}", c.what);
            assert!(d.iter().all(|x| !x.rule.is_empty()));
        }
    }

    #[test]
    fn an_empty_tier_count_deletes_old_snapshots_of_it() {
        let p = Policy {
            monthly: 0,
            ..Policy::default()
        };
        let s = vec![
            auto(Tier::Hourly, "2026-05-01T00:00:00Z"),
            auto(Tier::Monthly, "2026-01-01T00:00:00Z"),
        ];
        let d = plan(&s, at("2026-05-01T00:10:00Z"), &p);
        assert_eq!(kept(&d), vec![s[0].name.as_str()]);
        assert!(d[1].rule.contains("beyond the 0 newest monthly"));
    }

    #[test]
    fn thousands_of_snapshots_keep_exactly_the_policy() {
        let p = Policy::default();
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        // One frequent snapshot every 15 minutes for 30 days.
        let snaps: Vec<Snap> = (1..=30 * 96)
            .map(|i| {
                let t = now - Duration::minutes(15 * i);
                Snap {
                    name: auto_name(Tier::Frequent, t),
                    created: t,
                    held: false,
                    depended_on: false,
                }
            })
            .collect();
        let d = plan(&snaps, now, &p);
        // Kept: the 4 newest, which are also all within 4 x 15 minutes.
        assert_eq!(kept(&d).len(), 4);
    }

    #[test]
    fn the_due_tier_follows_the_calendar() {
        let p = Policy::default();
        let now = at("2026-03-31T10:20:00Z");
        assert_eq!(due_tier(&[], now, &p), Some(Tier::Monthly));
        let s = vec![auto(Tier::Monthly, "2026-03-01T00:00:00Z")];
        assert_eq!(due_tier(&s, now, &p), Some(Tier::Daily));
        let s = vec![auto(Tier::Monthly, "2026-03-31T00:00:00Z")];
        assert_eq!(
            due_tier(&s, now, &p),
            Some(Tier::Hourly),
            "a monthly today counts as today's daily"
        );
        let s = vec![
            auto(Tier::Monthly, "2026-03-31T00:00:00Z"),
            auto(Tier::Hourly, "2026-03-31T10:00:00Z"),
        ];
        assert_eq!(due_tier(&s, now, &p), Some(Tier::Frequent));
        let s = vec![
            auto(Tier::Monthly, "2026-03-31T00:00:00Z"),
            auto(Tier::Hourly, "2026-03-31T10:16:00Z"),
        ];
        assert_eq!(due_tier(&s, now, &p), None, "this quarter-hour is taken");
    }
}
