//! End-to-end tests of off-site backups (TRM_E2E=1): real LXD, and a real
//! S3 server on loopback, s3s-fs, which checks request signatures (so
//! wrong credentials are really refused) and keeps its objects as plain
//! files (so a test can flip a byte, or see an abandoned upload's parts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use terrarium_tests::e2e::{self, lxc, lxc_json, lxc_ok, Bed, Names, Runner, S3_SUITE};

const N: Names = S3_SUITE;
const MAIN: &str = "b-main";
const BIG: &str = "b-big";
const BUCKET: &str = "backups";
const ACCESS: &str = "TRMTESTKEY";
const SECRET: &str = "trm-test-secret-0123456789";

/// An s3s-fs server on a loopback port, restartable on the same port and
/// directory (what a crash and a restart look like to a client).
struct S3Server {
    child: Option<Child>,
    port: u16,
    root: tempfile::TempDir,
}

fn s3s_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TRM_S3S_FS") {
        return p.into();
    }
    which::which("s3s-fs")
        .ok()
        .or_else(|| Some(PathBuf::from("/root/.cargo/bin/s3s-fs")).filter(|p| p.exists()))
        .expect("s3s-fs is installed (scripts/test.sh: cargo install s3s-fs --features binary)")
}

impl S3Server {
    fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let mut s = S3Server {
            child: None,
            port,
            root,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let child = Command::new(s3s_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < until, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where s3s-fs keeps an object's bytes.
    fn object(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The part files of multipart uploads not completed or aborted.
    fn pending_parts(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn snap(bed: &Bed, args: &[&str]) -> Value {
    bed.trm_json_with("trm-snap", args)
}

fn set_args(server: &S3Server, secret_file: &Path) -> Vec<String> {
    [
        "s3",
        "set",
        "--endpoint",
        &server.endpoint(),
        "--bucket",
        BUCKET,
        "--access-key",
        ACCESS,
        "--secret-key-file",
        secret_file.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn exists(name: &str) -> bool {
    lxc(&[
        "query",
        &format!("/1.0/instances/{name}?project={}", N.project),
    ])
    .status
    .success()
}

fn instance_count() -> usize {
    lxc_json(&format!("/1.0/instances?project={}", N.project))
        .as_array()
        .unwrap()
        .len()
}

fn file_in(name: &str, path: &str) -> String {
    lxc_ok(&[
        "file",
        "pull",
        "--project",
        N.project,
        &format!("{name}{path}"),
        "-",
    ])
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn sha256_hex(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn main() {
    if !e2e::enabled("e2e_s3") {
        return;
    }
    let bed = Bed::new(N);
    let mut server = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let identity = bed.config_dir.path().join("s3-identity.txt");
    let settings = bed.config_dir.path().join("s3.toml");
    let first = std::cell::RefCell::new(Value::Null);
    let mut t = Runner::new();

    t.case("setup", || {
        bed.trm_json(&bed.init_args());
        e2e::assert_ok(
            &bed.tool("trm")
                .args(["launch", MAIN, "--format", "json"])
                .output()
                .unwrap(),
            "launch",
        );
        lxc_ok(&[
            "exec",
            "--project",
            N.project,
            MAIN,
            "--",
            "sh",
            "-c",
            "echo precious-42 > /root/marker",
        ]);
        lxc_ok(&[
            "config",
            "set",
            "--project",
            N.project,
            MAIN,
            "user.proxy",
            "https://main.example.test:3000",
        ]);
    });

    t.case(
        "s3_set_refuses_what_does_not_work_and_saves_nothing",
        || {
            let bad = work.path().join("bad-secret");
            std::fs::write(&bad, "not-the-secret").unwrap();
            let mut args = set_args(&server, &bad);
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            bed.refused("trm-snap", &a, 1, "refused the credentials");

            let mut args = set_args(&server, &secret);
            args[5] = "no-such-bucket".into();
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            bed.refused("trm-snap", &a, 1, "bucket 'no-such-bucket' does not exist");

            let mut args = set_args(&server, &secret);
            args[3] = "http://127.0.0.1:9".into();
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let msg = bed.refused("trm-snap", &a, 69, "did not answer");
            assert!(
                !msg.contains("X-Amz-Signature"),
                "no signed URL in errors: {msg}"
            );

            bed.refused(
                "trm-snap",
                &[
                    "s3",
                    "set",
                    "--endpoint",
                    "http://x",
                    "--bucket",
                    "b",
                    "--access-key",
                    "a",
                    "--secret-key-file",
                    secret.to_str().unwrap(),
                    "--recipient",
                    "age1notakey",
                ],
                2,
                "not an age X25519 public key",
            );

            assert!(!settings.exists(), "nothing saved");
            assert!(!identity.exists(), "no key written");
            bed.refused("trm-snap", &["export", MAIN], 69, "s3 set");
        },
    );

    t.case(
        "s3_set_probes_saves_0600_and_never_prints_the_secret",
        || {
            let mut args = set_args(&server, &secret);
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = bed
                .tool("trm-snap")
                .args(&a)
                .args(["--format", "json"])
                .output()
                .unwrap();
            e2e::assert_ok(&out, "s3 set");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
            assert!(stderr.contains("KEEP THIS SAFE"), "{stderr}");
            let v: Value = serde_json::from_str(&stdout).unwrap();
            assert!(v["probe"].as_str().unwrap().contains("wrote and deleted"));
            assert!(v["recipient"].as_str().unwrap().starts_with("age1"));
            assert_eq!(mode(&settings), 0o600);
            assert_eq!(mode(&identity), 0o600);
            assert!(std::fs::read_to_string(&settings).unwrap().contains(SECRET));
            let show = bed
                .tool("trm-snap")
                .args(["s3", "show", "--format", "human"])
                .output()
                .unwrap();
            assert!(!String::from_utf8_lossy(&show.stdout).contains(SECRET));
            // A second --generate-key must not replace the only key to older backups.
            bed.refused("trm-snap", &a, 2, "already exists");
        },
    );

    t.case("export_streams_then_writes_the_manifest_last", || {
        let out = bed
            .tool("trm-snap")
            .args(["export", MAIN, "--format", "jsonl"])
            .output()
            .unwrap();
        e2e::assert_ok(&out, "export");
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            lines.iter().any(|l| l["type"] == "progress"),
            "JSON Lines progress"
        );
        let x = lines.last().unwrap().clone();
        assert_eq!(x["instance"], MAIN);
        assert_eq!(x["fresh_snapshot"], true);
        let m: Value = serde_json::from_slice(
            &std::fs::read(server.object(x["manifest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let data = server.object(m["objects"]["data"].as_str().unwrap());
        assert_eq!(
            m["sha256"],
            sha256_hex(&data),
            "the manifest's digest is the object's"
        );
        assert_eq!(m["size"], std::fs::metadata(&data).unwrap().len());
        assert_eq!(m["compression"], "zstd");
        assert_eq!(m["compression_level"], 3);
        assert_eq!(m["encryption"]["scheme"], "age");
        assert!(m["encryption"]["recipient_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert_eq!(m["format_version"], 1);
        assert_eq!(m["instance"], MAIN);
        assert!(m["terrarium_version"].is_string());
        let snaps = lxc_json(&format!(
            "/1.0/instances/{MAIN}/snapshots?project={}",
            N.project
        ));
        assert!(
            !snaps.to_string().contains("trm-export-"),
            "the fresh snapshot is removed: {snaps}"
        );
        assert!(
            !lxc_ok(&["list", "--project", N.project, "-c", "n", "-f", "csv"])
                .contains("trm-export-"),
            "temporary copy removed"
        );
        let list = snap(&bed, &["s3", "list", MAIN]);
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["state"], "complete");
        *first.borrow_mut() = m;
    });

    t.case(
        "the_age_tool_decrypts_an_export_to_an_lxd_backup_tarball",
        || {
            let m = first.borrow().clone();
            let data = server.object(m["objects"]["data"].as_str().unwrap());
            let tarball = work.path().join("backup.tar");
            let mut dec = Command::new("age")
                .args(["-d", "-i"])
                .arg(&identity)
                .arg(&data)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let unz = Command::new("zstd")
                .args(["-d", "-q", "-o"])
                .arg(&tarball)
                .stdin(dec.stdout.take().unwrap())
                .status()
                .unwrap();
            assert!(
                dec.wait().unwrap().success(),
                "age decrypts with the identity"
            );
            assert!(unz.success());
            let list = Command::new("tar")
                .arg("-tf")
                .arg(&tarball)
                .output()
                .unwrap();
            let names = String::from_utf8_lossy(&list.stdout);
            assert!(
                names.lines().any(|l| l == "backup/index.yaml"),
                "an LXD backup"
            );
            let marker = Command::new("tar")
                .arg("-xOf")
                .arg(&tarball)
                .arg("backup/container/rootfs/root/marker")
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&marker.stdout).trim(),
                "precious-42"
            );
            // Valid for LXD itself, with no Terrarium in the way.
            lxc_ok(&[
                "import",
                "--project",
                N.project,
                tarball.to_str().unwrap(),
                "b-by-hand",
            ]);
            assert_eq!(file_in("b-by-hand", "/root/marker").trim(), "precious-42");
            lxc_ok(&["delete", "--project", N.project, "b-by-hand"]);
        },
    );

    t.case("import_restores_the_data_without_the_exposure", || {
        let r = snap(
            &bed,
            &[
                "import",
                MAIN,
                "--as",
                "b-copy",
                "--identity",
                identity.to_str().unwrap(),
            ],
        );
        assert_eq!(r["instance"], "b-copy");
        assert!(r["stripped"].to_string().contains("user.proxy"), "{r}");
        let i = lxc_json(&format!("/1.0/instances/b-copy?project={}", N.project));
        assert_eq!(i["status"], "Stopped");
        assert!(i["config"].get("user.proxy").is_none(), "no exposure label");
        assert_eq!(file_in("b-copy", "/root/marker").trim(), "precious-42");
        lxc_ok(&["delete", "--project", N.project, "b-copy"]);
    });

    t.case("import_refuses_bad_input_and_creates_nothing", || {
        let before = instance_count();
        bed.refused(
            "trm-snap",
            &["import", MAIN, "--as", MAIN],
            2,
            "already exists",
        );
        let wrong = work.path().join("wrong.txt");
        assert!(Command::new("age-keygen")
            .arg("-o")
            .arg(&wrong)
            .output()
            .unwrap()
            .status
            .success());
        bed.refused(
            "trm-snap",
            &[
                "import",
                MAIN,
                "--as",
                "b-x",
                "--identity",
                wrong.to_str().unwrap(),
            ],
            2,
            "wrong key",
        );

        let m = first.borrow().clone();
        let data = server.object(m["objects"]["data"].as_str().unwrap());
        let original = std::fs::read(&data).unwrap();
        let mut flipped = original.clone();
        let i = flipped.len() / 2;
        flipped[i] ^= 0x01;
        std::fs::write(&data, &flipped).unwrap();
        bed.refused("trm-snap", &["import", MAIN, "--as", "b-x"], 1, "corrupted");
        std::fs::write(&data, &original[..original.len() - 100]).unwrap();
        bed.refused("trm-snap", &["import", MAIN, "--as", "b-x"], 1, "truncated");
        std::fs::write(&data, &original).unwrap();
        bed.refused(
            "trm-snap",
            &["import", MAIN, "--as", "b-x", "--at", "2001-01-01"],
            3,
            "at or before",
        );
        assert!(!exists("b-x"));
        assert_eq!(instance_count(), before, "nothing created");
    });

    t.case(
        "a_server_killed_mid_upload_leaves_no_manifest_and_is_swept",
        || {
            e2e::ensure_busybox_image();
            lxc_ok(&["init", "--project", N.project, e2e::BUSYBOX_IMAGE, BIG]);
            let blob = work.path().join("blob");
            let dd = Command::new("dd")
                .args(["if=/dev/urandom", "bs=1M", "count=160", "status=none"])
                .arg(format!("of={}", blob.display()))
                .status()
                .unwrap();
            assert!(dd.success());
            lxc_ok(&[
                "file",
                "push",
                "--project",
                N.project,
                blob.to_str().unwrap(),
                &format!("{BIG}/root/blob"),
            ]);
            let _ = std::fs::remove_file(&blob);

            let export = bed
                .tool("trm-snap")
                .args([
                    "export",
                    BIG,
                    "--part-size",
                    "5",
                    "--parallel",
                    "1",
                    "--format",
                    "json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let until = Instant::now() + Duration::from_secs(120);
            while server.pending_parts().is_empty() {
                assert!(Instant::now() < until, "no part was uploaded");
                std::thread::sleep(Duration::from_millis(5));
            }
            server.kill();
            let out = export.wait_with_output().unwrap();
            assert_ne!(out.status.code(), Some(0), "the export must fail");
            let err = e2e::stderr_json(&out);
            println!("    export after the kill: {}", err["message"]);

            server.run();
            let dir = server.object(&format!("terrarium/{BIG}"));
            let manifests = walk(&dir)
                .into_iter()
                .filter(|p| p.ends_with("manifest.json"))
                .count();
            assert_eq!(manifests, 0, "no manifest, no backup");
            let abandoned = server.pending_parts();
            assert!(
                !abandoned.is_empty(),
                "the aborted upload's parts are still on the server"
            );
            assert!(
                snap(&bed, &["s3", "list", BIG])
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "not listed as a backup"
            );
            let all = snap(&bed, &["s3", "list", BIG, "--all"]);
            assert!(
                all[0]["state"].as_str().unwrap().starts_with("incomplete"),
                "{all}"
            );

            // The retry sweeps the abandoned upload and succeeds.
            let x = snap(&bed, &["export", BIG, "--part-size", "5"]);
            assert!(x["swept"].to_string().contains("abandoned upload"), "{x}");
            assert!(x["parts"].as_u64().unwrap() >= 20, "{x}");
            assert!(
                server.pending_parts().is_empty(),
                "{:?}",
                server.pending_parts()
            );
            let all = snap(&bed, &["s3", "list", BIG, "--all"]);
            assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
            assert_eq!(all[0]["state"], "complete");
        },
    );

    t.case("verify_runs_a_restore_drill_and_leaves_nothing", || {
        let before = instance_count();
        let v = snap(&bed, &["verify", MAIN]);
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["root_entries"].as_u64().unwrap() > 5, "{v}");
        assert!(!exists(v["restored_as"].as_str().unwrap()));
        assert_eq!(instance_count(), before);
    });

    t.case("prune_keeps_the_newest_per_day_and_never_the_last", || {
        std::thread::sleep(Duration::from_secs(1));
        let second = snap(&bed, &["export", MAIN]);
        let old_id = first.borrow()["id"].as_str().unwrap().to_string();
        let plan = snap(&bed, &["s3", "prune", MAIN, "--dry-run"]);
        let d = |id: &str| {
            plan.as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(d(&old_id)["keep"], false, "{plan}");
        assert_eq!(d(second["id"].as_str().unwrap())["keep"], true);
        assert_eq!(
            snap(&bed, &["s3", "list", MAIN]).as_array().unwrap().len(),
            2,
            "dry run deletes nothing"
        );
        bed.refused("trm-snap", &["s3", "prune", MAIN], 2, "pass --yes");
        snap(&bed, &["s3", "prune", MAIN, "--yes"]);
        let left = snap(&bed, &["s3", "list", MAIN]);
        assert_eq!(left.as_array().unwrap().len(), 1);
        assert_eq!(left[0]["id"], second["id"]);
        assert!(!server
            .object(first.borrow()["objects"]["data"].as_str().unwrap())
            .exists());
        // The last one stays, even by a policy of zero.
        let mut args = set_args(&server, &secret);
        args.extend(
            [
                "--keep-daily",
                "0",
                "--keep-weekly",
                "0",
                "--keep-monthly",
                "0",
            ]
            .map(String::from),
        );
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        snap(&bed, &a);
        snap(&bed, &["s3", "prune", "--yes"]);
        assert_eq!(
            snap(&bed, &["s3", "list", MAIN]).as_array().unwrap().len(),
            1
        );
    });

    t.case(
        "a_new_server_sets_up_from_the_owners_identity_alone",
        || {
            // After losing the server: a fresh s3.toml from the saved identity.
            let saved = work.path().join("owner-identity.txt");
            std::fs::copy(&identity, &saved).unwrap();
            let recipient = snap(&bed, &["s3", "show"])["recipient"].clone();
            std::fs::remove_file(&settings).unwrap();
            let mut args = set_args(&server, &secret);
            args.extend(["--identity-file".to_string(), saved.display().to_string()]);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let v = snap(&bed, &a);
            assert_eq!(
                v["recipient"], recipient,
                "the public key comes from the identity"
            );
            let r = snap(&bed, &["import", MAIN, "--as", "b-restored"]);
            assert_eq!(r["instance"], "b-restored");
            assert_eq!(file_in("b-restored", "/root/marker").trim(), "precious-42");
        },
    );

    server.kill();
    bed.teardown();
    t.finish();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
