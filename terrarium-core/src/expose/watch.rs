//! Keeping exposure in sync in the background: `watch` follows LXD's
//! lifecycle events, and `units` are the systemd service running it with
//! a timer-driven full sync as backstop.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{sync, RouteState, SyncReport};
use crate::error::{Error, Result};
use crate::lxd::Lxd;
use crate::process::Streaming;
use crate::settings::Settings;

/// The watcher service, and a timer-driven full sync as its backstop.
pub fn units(binary: &Path, interval_minutes: u32) -> Vec<crate::systemd::Unit> {
    let bin = binary.display();
    vec![
        crate::systemd::Unit {
            name: "trm-expose-watch.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: follow LXD and keep Traefik routes in sync\nAfter=lxd.service snap.lxd.daemon.service\n\n\
                 [Service]\nExecStart={bin} watch --format jsonl\nRestart=always\nRestartSec=2\n\n\
                 [Install]\nWantedBy=multi-user.target\n"
            ),
            enable: true,
        },
        crate::systemd::Unit {
            name: "trm-expose-sync.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: full sync of public exposure\n\n[Service]\nType=oneshot\nExecStart={bin} sync --format json\n"
            ),
            enable: false,
        },
        crate::systemd::Unit {
            name: "trm-expose-sync.timer".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: periodic full sync of public exposure\n\n\
                 [Timer]\nOnBootSec=2min\nOnUnitActiveSec={interval_minutes}min\n\n[Install]\nWantedBy=timers.target\n"
            ),
            enable: true,
        },
    ]
}

/// Lifecycle actions after which routes may have changed.
const WATCHED: &[&str] = &[
    "instance-started",
    "instance-stopped",
    "instance-restarted",
    "instance-shutdown",
    "instance-updated",
    "instance-deleted",
    "instance-renamed",
    "instance-created",
];

/// Follow LXD's lifecycle events and sync after each relevant one, plus a
/// full sync every `interval` as a backstop. A started instance gets its
/// address from DHCP a moment later, so until every running labelled
/// instance has one, ask LXD for those instances every 100 ms (up to
/// 30 s) and sync as soon as one has it.
pub fn watch(
    lxd: &Lxd,
    settings: &Settings,
    interval: Duration,
    report: &mut dyn FnMut(Result<SyncReport>) -> Result<()>,
) -> Result<()> {
    use std::io::BufRead;
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<String>();
    let spawn_monitor = |tx: mpsc::Sender<String>| -> Result<Streaming> {
        let mut monitor = lxd.monitor_lifecycle()?;
        let out = monitor.child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(monitor)
    };
    let mut monitor = spawn_monitor(tx.clone())?;
    let mut last_full = std::time::Instant::now();
    // A report that cannot be delivered (our reader went away) ends the
    // watch: the error goes back to the caller, the monitor is stopped.
    let run = |report: &mut dyn FnMut(Result<SyncReport>) -> Result<()>,
               monitor: &mut Streaming|
     -> Result<Vec<String>> {
        let r = sync(lxd, settings, false);
        let mut w: Vec<String> = match &r {
            Ok(rep) => rep
                .routes
                .iter()
                .filter(|x| x.state == RouteState::NoAddress)
                .map(|x| x.instance.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        w.dedup();
        if let Err(e) = report(r) {
            let _ = monitor.child.kill();
            let _ = monitor.child.wait();
            return Err(e);
        }
        Ok(w)
    };
    let settle =
        |w: &[String]| (!w.is_empty()).then(|| std::time::Instant::now() + Duration::from_secs(30));
    // The running labelled instances still without an address.
    let mut waiting = run(report, &mut monitor)?;
    let mut settle_until = settle(&waiting);
    loop {
        // While an address is awaited, ask LXD for just those instances
        // often (cheap), and sync the moment one has its address.
        let tick = if settle_until.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        match rx.recv_timeout(tick) {
            Ok(line) => {
                let relevant = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["metadata"]["action"].as_str().map(str::to_string))
                    .is_some_and(|a| WATCHED.contains(&a.as_str()));
                if relevant {
                    waiting = run(report, &mut monitor)?;
                    settle_until = settle(&waiting);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("we hold a sender"),
        }
        if let Some(ended) = monitor.exited() {
            // LXD restarted or the monitor died: say why (its stderr),
            // follow again, and resync in case events were missed.
            report(Err(ended.err().unwrap_or_else(|| {
                Error::Unavailable("`lxc monitor` ended; following LXD's events again".into())
            })))?;
            std::thread::sleep(Duration::from_secs(1));
            monitor = spawn_monitor(tx.clone())?;
            waiting = run(report, &mut monitor)?;
            settle_until = settle(&waiting);
        }
        if let Some(until) = settle_until {
            let arrived = waiting.iter().any(|name| {
                lxd.instance(name)
                    // What the container reports is only a hint to look
                    // again: the sync itself reads the host's leases.
                    .is_ok_and(|i| !i.ipv4().is_empty() || !i.is_running())
            });
            if std::time::Instant::now() > until {
                settle_until = None;
            } else if arrived {
                waiting = run(report, &mut monitor)?;
                settle_until = settle(&waiting);
            }
        }
        if last_full.elapsed() >= interval {
            waiting = run(report, &mut monitor)?;
            settle_until = settle(&waiting).or(settle_until);
            last_full = std::time::Instant::now();
        }
    }
}
