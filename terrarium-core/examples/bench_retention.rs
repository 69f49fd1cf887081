//! Plan retention for 100,000 snapshots of one instance:
//! `cargo run --release -p terrarium-core --example bench_retention`.
//! Target: under 100 ms.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use terrarium_core::snapshots::retention::{auto_name, plan, Policy, Snap, Tier};

fn main() {
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 23, 0, 0).unwrap();
    let tiers = [Tier::Frequent, Tier::Hourly, Tier::Daily, Tier::Monthly];
    let snaps: Vec<Snap> = (0..100_000i64)
        .map(|i| {
            let t = now - Duration::minutes(15 * i);
            Snap {
                name: auto_name(tiers[(i % 4) as usize], t),
                created: t,
                held: i % 997 == 0,
                depended_on: false,
            }
        })
        .collect();
    let policy = Policy::default();
    let _ = plan(&snaps, now, &policy);
    let mut times: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let d = plan(&snaps, now, &policy);
            assert_eq!(d.len(), snaps.len());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let kept = plan(&snaps, now, &policy).iter().filter(|d| d.keep).count();
    println!(
        "retention plan for 100000 snapshots: median {:.1} ms, max {:.1} ms (target < 100 ms); {kept} kept",
        times[5], times[9]
    );
}
