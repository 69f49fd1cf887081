//! Render and validate exposure for 1,000 synthetic labelled instances:
//! `cargo run --release -p terrarium-core --example bench_plan`.
//! Target: under 100 ms for the whole plan (parse, conflicts, render,
//! schema validation of every file).

use std::time::Instant;

use terrarium_core::expose::{plan, Context, Source};
use terrarium_core::settings::Settings;

fn main() {
    let mut settings = Settings::default();
    settings.expose.root_domain = "example.com".into();
    let ctx = Context::from_settings(&settings).expect("settings");
    let sources: Vec<Source> = (0..1000)
        .map(|i| Source {
            name: format!("c{i}"),
            created_at: format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60),
            running: true,
            ipv4: Some(format!("10.100.{}.{}", i / 250, i % 250 + 2)),
            unroutable: None,
            label: format!(
                "https://c{i}.example.com:3000/app@auth:devs,ops\nhttp://c{i}-plain.example.com\ntcp://{}:22",
                10000 + i
            ),
            location: None,
        })
        .collect();
    // One warm-up (compiles the schema once, as a long-lived watch would).
    let _ = plan(&sources, &ctx);
    let runs = 20;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let p = plan(&sources, &ctx);
            assert_eq!(p.files.len(), 1000);
            assert!(p.problems.is_empty());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "plan of 1000 labelled instances (3 items each, every file schema-validated): median {:.1} ms, max {:.1} ms (target < 100 ms)",
        times[runs / 2],
        times[runs - 1]
    );
}
