//! `trm doctor NAME`: what a nested-Docker box needs, checked on the real
//! instance, each finding with a fix; and known failure signatures of
//! Docker inside LXC recognised in the daemon's own words.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::instances::USER;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::Row;
use crate::profiles;
use crate::verdict::Status;

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Row for Finding {
    fn headers() -> &'static [&'static str] {
        &["CHECK", "STATUS", "DETAIL", "FIX"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.check.clone(),
            self.status.cell().into(),
            self.detail.clone(),
            self.fix.clone().unwrap_or_default(),
        ]
    }
}

fn finding(check: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding {
        check: check.into(),
        status,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

pub fn diagnose(lxd: &Lxd, name: &str) -> Result<Vec<Finding>> {
    validate_instance_name(name)?;
    let i = lxd.instance(name)?;
    let mut out = Vec::new();
    let cfg = &i.expanded_config;
    let get = |k: &str| cfg.get(k).map(String::as_str).unwrap_or("");

    out.push(if get("security.privileged") == "true" {
        finding(
            "unprivileged",
            Status::Fail,
            "security.privileged=true: root inside is root on the host",
            Some("recreate it with a Terrarium profile (default, terrarium or dev)"),
        )
    } else {
        finding(
            "unprivileged",
            Status::Pass,
            "root inside maps to an unprivileged host uid",
            None,
        )
    });
    out.push(if get("security.nesting") == "true" {
        finding("nesting", Status::Pass, "security.nesting=true", None)
    } else {
        finding("nesting", Status::Fail, "security.nesting is off (the strict profile turns it off): nested Docker cannot mount its proc and sysfs",
            Some("use the default or dev profile, or `lxc config set NAME security.nesting=true`"))
    });
    for key in [
        "security.syscalls.intercept.mknod",
        "security.syscalls.intercept.setxattr",
    ] {
        out.push(if get(key) == "true" {
            finding(key, Status::Pass, format!("{key}=true"), None)
        } else {
            finding(
                key,
                Status::Fail,
                format!(
                    "{key} is off: Docker's overlay2 storage will fail on whiteouts and xattrs"
                ),
                Some("use the default or dev profile, which turn it on"),
            )
        });
    }
    out.extend(kernel_findings());

    if !i.is_running() {
        out.push(finding(
            "running",
            Status::Fail,
            format!("the instance is {}", i.status.to_ascii_lowercase()),
            Some("`trm start NAME`, then run the doctor again"),
        ));
        return Ok(out);
    }
    let run = |cmd: &[&str]| lxd.exec_read(name, cmd, EXEC_TIMEOUT);

    let ci = run(&["cloud-init", "status"])?;
    let text = ci.stdout_str();
    out.push(match ci.status.code() {
        Some(127) => finding(
            "cloud-init",
            Status::Warn,
            "no cloud-init in this image: nothing creates the terrarium user",
            Some("use an image with cloud-init (`trm image build`)"),
        ),
        _ if text.contains("done") => finding("cloud-init", Status::Pass, "finished", None),
        _ if text.contains("running") || text.contains("not run") => finding(
            "cloud-init",
            Status::Warn,
            text.trim(),
            Some("wait: `trm exec --root NAME -- cloud-init status --wait`"),
        ),
        _ => finding(
            "cloud-init",
            Status::Fail,
            text.trim(),
            Some("see `trm exec --root NAME -- cloud-init status --long`"),
        ),
    });

    let needs_user = cfg
        .get(profiles::VENDOR_DATA_KEY)
        .is_some_and(|v| v.contains(profiles::USER_SCRIPT_MARKER));
    out.push(if run(&["getent", "passwd", USER])?.status.success() {
        finding("terrarium user", Status::Pass, "present", None)
    } else if needs_user {
        finding("terrarium user", Status::Fail, "missing although a profile asks for it",
            Some("the instance's own cloud-init.vendor-data or `vendor_data: {enabled: false}` replaced the profile's"))
    } else {
        finding("terrarium user", Status::Warn, "missing: no Terrarium profile creates it here",
            Some("launch with the default, terrarium or dev profile"))
    });

    let info = run(&[
        "docker",
        "info",
        "--format",
        "{{.ServerVersion}} {{.Driver}}",
    ])?;
    if info.status.code() == Some(127) {
        out.push(finding(
            "docker",
            Status::Info,
            "Docker is not installed",
            None,
        ));
        return Ok(out);
    }
    let mut log = String::from_utf8_lossy(&info.stderr).into_owned();
    if info.status.success() {
        out.push(finding(
            "docker",
            Status::Pass,
            format!("daemon answers ({})", info.stdout_str().trim()),
            None,
        ));
    } else {
        out.push(finding(
            "docker",
            Status::Fail,
            format!("daemon does not answer: {}", log.trim()),
            Some("`trm exec --root NAME -- journalctl -u docker` shows why"),
        ));
    }
    // The daemon logs each failed container start in its own words.
    let journal = run(&[
        "journalctl",
        "-u",
        "docker",
        "-u",
        "containerd",
        "--no-pager",
        "-q",
        "-n",
        "300",
    ])?;
    log.push_str(&journal.stdout_str());
    out.extend(recognise(&log));
    Ok(out)
}

fn kernel_findings() -> Vec<Finding> {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let mut out = vec![if fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        finding(
            "kernel overlay",
            Status::Pass,
            "the host kernel has overlayfs",
            None,
        )
    } else {
        finding(
            "kernel overlay",
            Status::Warn,
            "the host kernel has no overlayfs loaded: Docker falls back to the slow vfs driver",
            Some("on the host: `modprobe overlay`"),
        )
    }];
    let apparmor = profiles::kernel_has_apparmor();
    out.push(finding(
        "kernel apparmor",
        Status::Info,
        profiles::nesting_note(apparmor),
        None,
    ));
    out
}

/// Known failure signatures of Docker inside LXC, from daemon or client
/// output. Pure: table-driven tests below.
pub fn recognise(text: &str) -> Vec<Finding> {
    const SIGNATURES: &[(&str, &str, &str, &str)] = &[
        (
            "ip_unprivileged_port_start",
            "runc sysctl permission denied",
            "runc 1.2.8/1.3.3 and later (the CVE-2025-52565/52881 fixes of November 2025) open sysctls through a detached procfs that LXD's AppArmor profile for nested containers denied: every container start fails with `open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd N: permission denied`",
            "upgrade LXD on the host to a release whose AppArmor rules allow the detached procfs (canonical/lxd#16937); until then hold the previous runc/containerd in the box (`apt-mark hold`); avoid `lxc.apparmor.profile=unconfined`, which drops confinement altogether",
        ),
        (
            "failed to mount overlay",
            "overlay mount refused",
            "Docker could not mount overlayfs inside the container",
            "turn security.nesting and the syscall intercepts on (default or dev profile), and check the host has overlayfs",
        ),
        (
            "operation not permitted: mknod",
            "mknod refused",
            "an image layer needs a device node the unprivileged container may not create",
            "set security.syscalls.intercept.mknod=true (default and dev profiles do)",
        ),
        (
            "cgroup mountpoint does not exist",
            "cgroups missing",
            "Docker found no cgroup hierarchy to use",
            "turn security.nesting on and restart the instance",
        ),
        (
            "can't initialize iptables table",
            "iptables tables missing",
            "the host kernel lacks the netfilter modules Docker's networking uses",
            "on the host: `modprobe ip_tables iptable_nat iptable_filter`, or run dockerd with --iptables=false",
        ),
    ];
    SIGNATURES
        .iter()
        .filter(|(needle, ..)| text.contains(needle))
        .map(|(_, check, detail, fix)| finding(check, Status::Fail, *detail, Some(fix)))
        .collect()
}

pub fn failures(findings: &[Finding]) -> usize {
    crate::verdict::failures(findings.iter().map(|f| f.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_signatures_are_recognised() {
        let cases: &[(&str, &[&str])] = &[
            (
                "docker: Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.ip_unprivileged_port_start file: reopen fd 8: permission denied: unknown",
                &["runc sysctl permission denied"],
            ),
            (
                "level=error msg=\"failed to mount overlay: operation not permitted\" storage-driver=overlay2",
                &["overlay mount refused"],
            ),
            ("failed to register layer: operation not permitted: mknod /dev/null", &["mknod refused"]),
            ("iptables v1.8.9: can't initialize iptables table `nat': Table does not exist", &["iptables tables missing"]),
            ("Dec 01 dockerd: API listen on /run/docker.sock", &[]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<String> = recognise(text).into_iter().map(|f| f.check).collect();
            assert_eq!(&got, want, "{text}");
        }
        let runc = &recognise("open sysctl net.ipv4.ip_unprivileged_port_start file")[0];
        assert!(runc.fix.as_deref().unwrap().contains("upgrade LXD"));
    }
}
