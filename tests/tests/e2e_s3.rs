//! End-to-end tests of off-site backups (TRM_E2E=1): real LXD, and a real
//! S3 server on loopback, s3s-fs, which checks request signatures (so
//! wrong credentials are really refused) and keeps its objects as plain
//! files (so a test can flip a byte, or see an abandoned upload's parts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use terrarium_core::offsite::manifest::Manifest;
use terrarium_core::offsite::s3::{Client, Target};
use terrarium_core::offsite::signing::{self, SigningKey};
use terrarium_tests::e2e::{self, lxc, lxc_json, lxc_ok, Bed, Names, Runner, S3_SUITE};
use terrarium_tests::s3s::{S3Server, ACCESS, BUCKET, SECRET};

const N: Names = S3_SUITE;
const MAIN: &str = "b-main";
const BIG: &str = "b-big";
/// A forged backup's id: later than any real one.
const FORGED_ID: &str = "20991231T000000Z";

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

fn sha256_hex(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_s3") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(N);
    let mut server = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let identity = bed.config_dir.path().join("s3-identity.txt");
    let settings = bed.config_dir.path().join("s3.toml");
    let signing_key = bed.config_dir.path().join("s3-signing-key.txt");
    let first = std::cell::RefCell::new(Value::Null);
    let mut t = Runner::new();

    let toml = bed.config_dir.path().join("terrarium.toml");
    let schedule = |minutes: u32| {
        let text = std::fs::read_to_string(&toml).unwrap();
        let base = text
            .split("\n[offsite]")
            .next()
            .unwrap()
            .trim_end()
            .to_string();
        std::fs::write(
            &toml,
            format!("{base}\n\n[offsite]\nevery_minutes = {minutes}\n"),
        )
        .unwrap();
    };
    t.setup("setup", || {
        bed.trm_json(&bed.init_args());
        // Exports happen by hand here, but in the case that schedules them.
        schedule(0);
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
            let mut args = server.set_args(&bad);
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            bed.refused("trm-snap", &a, 1, "refused the credentials");

            let mut args = server.set_args(&secret);
            args[5] = "no-such-bucket".into();
            args.push("--generate-key".into());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            bed.refused("trm-snap", &a, 1, "bucket 'no-such-bucket' does not exist");

            let mut args = server.set_args(&secret);
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
            assert!(!signing_key.exists(), "no signing key written");
            bed.refused("trm-snap", &["export", MAIN], 69, "s3 set");
        },
    );

    t.case(
        "s3_set_probes_saves_0600_and_never_prints_the_secret",
        || {
            let mut args = server.set_args(&secret);
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
            assert_eq!(e2e::mode(&settings), 0o600);
            assert_eq!(e2e::mode(&identity), 0o600);
            assert_eq!(
                e2e::mode(&signing_key),
                0o600,
                "the signing key beside the identity"
            );
            assert!(stderr.contains("KEEP THIS SAFE TOO"), "{stderr}");
            let public = v["signing_public_key"].as_str().unwrap();
            assert!(public.starts_with("ed25519:"), "{v}");
            assert!(std::fs::read_to_string(&signing_key)
                .unwrap()
                .contains(public));
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
        assert_eq!(x["type"], "summary", "the result is the last line");
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
        assert_eq!(m["signature"]["scheme"], "ed25519");
        assert_eq!(
            m["signature"]["public_key"],
            bed.snap(&["s3", "show"])["signing_public_key"],
            "signed with this host's key"
        );
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
        let list = bed.snap(&["s3", "list", MAIN]);
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
        let r = bed.snap(&[
            "import",
            MAIN,
            "--as",
            "b-copy",
            "--identity",
            identity.to_str().unwrap(),
        ]);
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
                bed.snap(&["s3", "list", BIG])
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "not listed as a backup"
            );
            let all = bed.snap(&["s3", "list", BIG, "--all"]);
            assert!(
                all[0]["state"].as_str().unwrap().starts_with("incomplete"),
                "{all}"
            );

            // The retry sweeps the abandoned upload and succeeds.
            let x = bed.snap(&["export", BIG, "--part-size", "5"]);
            assert!(x["swept"].to_string().contains("abandoned upload"), "{x}");
            assert!(x["parts"].as_u64().unwrap() >= 20, "{x}");
            assert!(
                server.pending_parts().is_empty(),
                "{:?}",
                server.pending_parts()
            );
            let all = bed.snap(&["s3", "list", BIG, "--all"]);
            assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
            assert_eq!(all[0]["state"], "complete");
        },
    );

    t.case("verify_runs_a_restore_drill_and_leaves_nothing", || {
        let before = instance_count();
        let v = bed.snap(&["verify", MAIN]);
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["root_entries"].as_u64().unwrap() > 5, "{v}");
        assert!(!exists(v["restored_as"].as_str().unwrap()));
        assert_eq!(instance_count(), before);
    });

    t.case("prune_keeps_the_newest_per_day_and_never_the_last", || {
        std::thread::sleep(Duration::from_secs(1));
        let second = bed.snap(&["export", MAIN]);
        let old_id = first.borrow()["id"].as_str().unwrap().to_string();
        let plan = bed.snap(&["s3", "prune", MAIN, "--dry-run"]);
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
            bed.snap(&["s3", "list", MAIN]).as_array().unwrap().len(),
            2,
            "dry run deletes nothing"
        );
        bed.refused("trm-snap", &["s3", "prune", MAIN], 2, "pass --yes");
        bed.snap(&["s3", "prune", MAIN, "--yes"]);
        let left = bed.snap(&["s3", "list", MAIN]);
        assert_eq!(left.as_array().unwrap().len(), 1);
        assert_eq!(left[0]["id"], second["id"]);
        assert!(!server
            .object(first.borrow()["objects"]["data"].as_str().unwrap())
            .exists());
        // The last one stays, even by a policy of zero.
        let mut args = server.set_args(&secret);
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
        bed.snap(&a);
        bed.snap(&["s3", "prune", "--yes"]);
        assert_eq!(bed.snap(&["s3", "list", MAIN]).as_array().unwrap().len(), 1);
    });

    t.case(
        "a_forged_backup_encrypted_to_the_recipient_is_refused_and_never_the_newest",
        || {
            let before = instance_count();
            let genuine = newest(&bed, MAIN);
            let gm = manifest_at(&server, &genuine);
            // The manifest itself names the public key to encrypt to.
            let recipient = gm["encryption"]["recipient"].as_str().unwrap();
            let tar = forge_tarball(&work.path().join("backup.tar"), work.path());
            let data = work.path().join("forged.tar.zst.age");
            seal(&tar, recipient, &data);
            let dir = format!("terrarium/{MAIN}/{FORGED_ID}/");
            let evil = attacker(&server, BUCKET);
            evil.put(
                &format!("{dir}data.tar.zst.age"),
                &std::fs::read(&data).unwrap(),
            )
            .unwrap();
            let m = forged_manifest(&gm, MAIN, FORGED_ID, &data, size_of(&tar));
            let mut copied = m.clone();
            copied["signature"] = gm["signature"].clone();
            let cases = [
                ("unsigned", json_bytes(&m), "its manifest is not signed"),
                (
                    "the genuine signature copied",
                    json_bytes(&copied),
                    "altered after signing",
                ),
                (
                    "signed with the attacker's own key",
                    signed(&m, &signing::generate().unwrap()),
                    "not by this host's signing key",
                ),
            ];
            for (what, bytes, why) in cases {
                evil.put(&format!("{dir}manifest.json"), &bytes).unwrap();
                let list = bed.snap(&["s3", "list", MAIN]);
                assert_eq!(list.as_array().unwrap().len(), 1, "{what}: {list}");
                assert_eq!(list[0]["id"], genuine["id"], "{what}");
                let f = listed(&bed, MAIN, FORGED_ID);
                assert_eq!(f["state"], "refused", "{what}: {f}");
                assert!(f["refused"].as_str().unwrap().contains(why), "{what}: {f}");
                let at = ["--at", FORGED_ID];
                let msg = bed.refused(
                    "trm-snap",
                    &["import", MAIN, "--as", "b-forged", at[0], at[1]],
                    1,
                    why,
                );
                assert!(msg.contains("nothing was created"), "{msg}");
                bed.refused("trm-snap", &["verify", MAIN, at[0], at[1]], 1, why);
                assert!(!exists("b-forged"), "{what}");
                assert_eq!(instance_count(), before, "{what}: nothing created");
            }
            // "The newest backup" is still the genuine one.
            let r = bed.snap(&["import", MAIN, "--as", "b-latest"]);
            assert_eq!(r["backup"], genuine["id"], "{r}");
            assert!(r["refused"].to_string().contains(FORGED_ID), "{r}");
            let i = lxc_json(&format!("/1.0/instances/b-latest?project={}", N.project));
            assert!(i["config"].get("security.privileged").is_none(), "{i}");
            assert!(i["devices"].get("host").is_none(), "{i}");
            lxc_ok(&["delete", "--project", N.project, "b-latest"]);
            let v = bed.snap(&["verify", MAIN]);
            assert_eq!(
                (v["ok"].clone(), v["backup"].clone()),
                (Value::Bool(true), genuine["id"].clone()),
                "{v}"
            );
            // Prune neither counts it as the newest nor deletes it.
            bed.snap(&["s3", "prune", MAIN, "--yes"]);
            assert!(server.object(&format!("{dir}manifest.json")).exists());
            assert!(server
                .object(&format!(
                    "{}manifest.json",
                    genuine["dir"].as_str().unwrap()
                ))
                .exists());
            assert_eq!(instance_count(), before);
        },
    );

    t.case(
        "import_strips_what_the_policy_refuses_even_from_a_signed_backup",
        || {
            // Signed with the host's own key: the policy holds without the signature.
            let key = signing::read_key(&signing_key).unwrap();
            let genuine = newest(&bed, MAIN);
            let gm = manifest_at(&server, &genuine);
            let tar = work.path().join("forged.tar");
            let data = work.path().join("forged.tar.zst.age");
            let dir = format!("terrarium/{MAIN}/{FORGED_ID}/");
            let evil = attacker(&server, BUCKET);
            let m = forged_manifest(&gm, MAIN, FORGED_ID, &data, size_of(&tar));
            evil.put(&format!("{dir}manifest.json"), &signed(&m, &key))
                .unwrap();
            let r = bed.snap(&["import", MAIN, "--as", "b-policy", "--at", FORGED_ID]);
            let removed: Vec<(String, String)> = r["removed_by_policy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap().to_string(),
                        x["why"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let names: Vec<&str> = removed.iter().map(|(n, _)| n.as_str()).collect();
            assert!(
                names.contains(&"security.privileged") && names.contains(&"host"),
                "{r}"
            );
            assert!(removed.iter().all(|(_, why)| !why.is_empty()), "{r}");
            let i = lxc_json(&format!("/1.0/instances/b-policy?project={}", N.project));
            assert_eq!(i["status"], "Stopped");
            assert!(i["config"].get("security.privileged").is_none(), "{i}");
            assert_ne!(i["expanded_config"]["security.privileged"], "true", "{i}");
            assert!(i["devices"].get("host").is_none(), "{i}");
            assert!(
                !i["expanded_devices"].to_string().contains("/mnt/host"),
                "{i}"
            );
            assert_eq!(file_in("b-policy", "/root/marker").trim(), "precious-42");
            lxc_ok(&["delete", "--project", N.project, "b-policy"]);
            std::fs::remove_dir_all(server.object(&dir)).unwrap();
        },
    );

    t.case(
        "import_judges_what_the_instance_runs_with_its_profiles_included",
        || {
            // Signed with the host's own key, as a mistake would be.
            let key = signing::read_key(&signing_key).unwrap();
            let gm = manifest_at(&server, &newest(&bed, MAIN));
            let recipient = gm["encryption"]["recipient"].as_str().unwrap();
            let evil = attacker(&server, BUCKET);
            let dir = format!("terrarium/{MAIN}/{FORGED_ID}/");
            let plant = |tar: &Path| {
                let data = work.path().join("rewritten.tar.zst.age");
                seal(tar, recipient, &data);
                evil.put(
                    &format!("{dir}data.tar.zst.age"),
                    &std::fs::read(&data).unwrap(),
                )
                .unwrap();
                let m = forged_manifest(&gm, MAIN, FORGED_ID, &data, size_of(tar));
                evil.put(&format!("{dir}manifest.json"), &signed(&m, &key))
                    .unwrap();
            };
            let before = instance_count();
            let src = work.path().join("backup.tar");

            // An existing profile of this project with the host's root in it.
            let p = ["--project", N.project];
            lxc_ok(&["profile", "create", "b-hostdisk", p[0], p[1]]);
            lxc_ok(&[
                "profile",
                "device",
                "add",
                "b-hostdisk",
                "host",
                "disk",
                "source=/",
                "path=/mnt/host",
                p[0],
                p[1],
            ]);
            let tar = rewrite_tarball(&src, &work.path().join("profile.tar"), &mut |i| {
                if let Some(serde_yaml_ng::Value::Sequence(ps)) = i.get_mut("profiles") {
                    ps.push("b-hostdisk".into());
                }
            });
            plant(&tar);
            let args = ["import", MAIN, "--as", "b-prof", "--at", FORGED_ID];
            let msg = bed.refused(
                "trm-snap",
                &args,
                1,
                "host-path disk: disk host mounts host / at /mnt/host (from profile b-hostdisk)",
            );
            assert!(msg.contains("it was deleted"), "{msg}");
            assert!(!exists("b-prof"), "never left behind, never started");
            assert_eq!(instance_count(), before);
            lxc_ok(&["profile", "delete", "b-hostdisk", p[0], p[1]]);

            // The instance's own eth0 on the bridge, with a neighbour's MAC and a fixed address.
            let net = lxc_json(&format!("/1.0/networks/{}", N.bridge));
            let gw = net["config"]["ipv4.address"].as_str().unwrap();
            let addr = format!("{}.250", gw.rsplit_once('.').unwrap().0);
            let nic = format!(
                "{{type: nic, name: eth0, network: {}, hwaddr: '00:16:3e:12:34:56', \
                 ipv4.address: '{addr}', security.mac_filtering: 'true', \
                 security.ipv4_filtering: 'true'}}",
                N.bridge
            );
            let nic: serde_yaml_ng::Value = serde_yaml_ng::from_str(&nic).unwrap();
            let tar = rewrite_tarball(&src, &work.path().join("nic.tar"), &mut |i| {
                let mut d = serde_yaml_ng::Mapping::new();
                d.insert("eth0".into(), nic.clone());
                i.insert("devices".into(), serde_yaml_ng::Value::Mapping(d));
            });
            plant(&tar);
            let r = bed.snap(&["import", MAIN, "--as", "b-nic", "--at", FORGED_ID]);
            let keys: Vec<String> = r["removed_by_policy"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["kind"] == "device key")
                .map(|x| format!("{}.{}={}", x["name"], x["key"], x["value"]))
                .collect();
            assert_eq!(
                keys,
                [
                    r#""eth0"."hwaddr"="00:16:3e:12:34:56""#.to_string(),
                    format!(r#""eth0"."ipv4.address"="{addr}""#),
                ],
                "{r}"
            );
            let i = lxc_json(&format!("/1.0/instances/b-nic?project={}", N.project));
            assert_eq!(i["status"], "Stopped");
            let eth0 = &i["expanded_devices"]["eth0"];
            assert!(
                eth0.get("hwaddr").is_none() && eth0.get("ipv4.address").is_none(),
                "{i}"
            );
            assert_eq!(eth0["network"], N.bridge, "{i}");
            assert_eq!(eth0["security.mac_filtering"], "true", "{i}");
            lxc_ok(&["delete", "--project", N.project, "b-nic"]);
            std::fs::remove_dir_all(server.object(&dir)).unwrap();
        },
    );

    t.case(
        "another_projects_signed_backup_of_the_same_name_is_neither_imported_nor_pruned",
        || {
            let key = signing::read_key(&signing_key).unwrap();
            let genuine = newest(&bed, MAIN);
            let gm = manifest_at(&server, &genuine);
            let evil = attacker(&server, BUCKET);
            let small = work.path().join("small");
            std::fs::write(&small, [7u8; 1000]).unwrap();
            // Project B's backups of its own b-main, signed by this host:
            // the newest of all, and an old one the retention would delete.
            let ids = [FORGED_ID, "20000101T000000Z"];
            let mut dirs = Vec::new();
            for id in ids {
                let dir = format!("terrarium/{MAIN}/{id}/");
                let mut m = forged_manifest(&gm, MAIN, id, &small, 4000);
                m["project"] = "trm-e2e-s3-b".into();
                if id != FORGED_ID {
                    m["created"] = "2000-01-01T00:00:00Z".into();
                }
                evil.put(&format!("{dir}data.tar.zst.age"), &[7u8; 1000])
                    .unwrap();
                evil.put(&format!("{dir}manifest.json"), &signed(&m, &key))
                    .unwrap();
                dirs.push(dir);
            }
            for id in ids {
                let b = listed(&bed, MAIN, id);
                assert_eq!(b["state"], "refused", "{b}");
                assert_eq!(
                    b["refused"],
                    format!(
                        "it belongs to project trm-e2e-s3-b (this is project {})",
                        N.project
                    ),
                    "{b}"
                );
            }
            assert_eq!(newest(&bed, MAIN)["id"], genuine["id"]);
            let r = bed.snap(&["import", MAIN, "--as", "b-proj"]);
            assert_eq!(r["backup"], genuine["id"], "{r}");
            assert_eq!(file_in("b-proj", "/root/marker").trim(), "precious-42");
            lxc_ok(&["delete", "--project", N.project, "b-proj"]);
            let plan = bed.snap(&["s3", "prune", "--dry-run"]);
            assert!(
                !plan.to_string().contains("20000101T000000Z")
                    && !plan.to_string().contains(FORGED_ID),
                "{plan}"
            );
            bed.snap(&["s3", "prune", MAIN, "--yes"]);
            for dir in &dirs {
                assert!(
                    server.object(&format!("{dir}manifest.json")).exists(),
                    "{dir}"
                );
                assert!(
                    server.object(&format!("{dir}data.tar.zst.age")).exists(),
                    "{dir}"
                );
                std::fs::remove_dir_all(server.object(dir)).unwrap();
            }
        },
    );

    t.case(
        "keys_planted_in_manifests_and_markers_never_leave_the_prefix",
        || {
            std::fs::create_dir_all(server.root.path().join("other")).unwrap();
            attacker(&server, "other")
                .put("x", b"another bucket's object")
                .unwrap();
            let evil = attacker(&server, BUCKET);
            evil.put("keepme.txt", b"outside the prefix").unwrap();
            let outside = [
                server.root.path().join("other/x"),
                server.object("keepme.txt"),
            ];
            let big = newest(&bed, BIG);
            let big_dir = big["dir"].as_str().unwrap().to_string();
            let big_id = big["id"].as_str().unwrap().to_string();
            let big_objects = [
                server.object(&format!("{big_dir}manifest.json")),
                server.object(&format!("{big_dir}data.tar.zst.age")),
            ];
            let gm = manifest_at(&server, &newest(&bed, MAIN));
            let key = signing::read_key(&signing_key).unwrap();
            let small = work.path().join("small");
            std::fs::write(&small, [7u8; 1000]).unwrap();
            let plant = |id: &str, data: &str, manifest: &str, sign: bool| {
                let dir = format!("terrarium/{MAIN}/{id}/");
                let mut m = forged_manifest(&gm, MAIN, id, &small, 4000);
                m["created"] = "2000-01-01T00:00:00Z".into();
                m["objects"]["data"] = data.into();
                m["objects"]["manifest"] = manifest.into();
                let bytes = if sign {
                    signed(&m, &key)
                } else {
                    json_bytes(&m)
                };
                evil.put(&format!("{dir}data.tar.zst.age"), &[7u8; 1000])
                    .unwrap();
                evil.put(&format!("{dir}manifest.json"), &bytes).unwrap();
                dir
            };
            // Old, so the policy deletes it; even this host's signature
            // does not let its keys point elsewhere.
            let old = plant("20000101T000000Z", "../other/x", "keepme.txt", true);
            plant("20000102T000000Z", "../../other/x", "keepme.txt", false);
            // Another instance's genuine, signed manifest, copied into this folder.
            let copied_dir = format!("terrarium/{MAIN}/{big_id}/");
            evil.put(
                &format!("{copied_dir}manifest.json"),
                &std::fs::read(&big_objects[0]).unwrap(),
            )
            .unwrap();
            let host = terrarium_core::offsite::hostname();
            for (id, data) in [
                ("20000103T000000Z", "../other/x"),
                ("20000104T000000Z", "keepme.txt"),
            ] {
                let marker = serde_json::json!({
                    "upload_id": "forged", "data": data, "host": host,
                    "started": "2000-01-01T00:00:00Z",
                });
                evil.put(
                    &format!("terrarium/{MAIN}/{id}/upload.json"),
                    &json_bytes(&marker),
                )
                .unwrap();
            }

            let state = |id: &str| {
                let b = listed(&bed, MAIN, id);
                format!("{} {}", b["state"], b["refused"])
            };
            assert!(state("20000102T000000Z").contains("not signed"));
            assert!(
                state(&big_id).contains(&format!(
                    "names {BIG}/{big_id} but lies in folder {MAIN}/{big_id}"
                )),
                "{}",
                state(&big_id)
            );
            bed.refused(
                "trm-snap",
                &["import", MAIN, "--as", "b-x", "--at", &big_id],
                1,
                "lies in folder",
            );
            let plan = bed.snap(&["s3", "prune", "--dry-run"]);
            let doomed: Vec<String> = plan
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["keep"] == false)
                .map(|d| {
                    format!(
                        "{}/{}",
                        d["instance"].as_str().unwrap(),
                        d["id"].as_str().unwrap()
                    )
                })
                .collect();
            assert_eq!(doomed, [format!("{MAIN}/20000101T000000Z")], "{plan}");
            bed.snap(&["s3", "prune", "--yes"]);
            assert!(
                !server.object(&format!("{old}manifest.json")).exists()
                    && !server.object(&format!("{old}data.tar.zst.age")).exists(),
                "the pruned backup's own folder was emptied"
            );
            for p in outside.iter().chain(&big_objects) {
                assert!(p.exists(), "{} survived the prune", p.display());
            }
            assert_eq!(
                std::fs::read(&outside[0]).unwrap(),
                b"another bucket's object"
            );

            // Planted markers: the export sweeps what it can and succeeds.
            let x = bed.snap(&["export", MAIN]);
            let swept = x["swept"].to_string();
            for id in ["20000103T000000Z", "20000104T000000Z"] {
                assert!(swept.contains(&format!("{MAIN}/{id}")), "{x}");
            }
            let again = bed.snap(&["export", MAIN]);
            assert!(
                again["id"].is_string(),
                "a later export is not failed either"
            );
            for p in outside.iter().chain(&big_objects) {
                assert!(p.exists(), "{} survived the sweep", p.display());
            }
            for id in [
                "20000102T000000Z",
                "20000103T000000Z",
                "20000104T000000Z",
                &big_id,
            ] {
                let _ = std::fs::remove_dir_all(server.object(&format!("terrarium/{MAIN}/{id}")));
            }
            let _ = std::fs::remove_dir_all(server.object(&old));
            for p in &outside {
                std::fs::remove_file(p).unwrap();
            }
        },
    );

    t.case(
        "an_oversized_object_under_a_small_manifest_is_refused_before_download",
        || {
            let before = instance_count();
            let g = newest(&bed, MAIN);
            let id = g["id"].as_str().unwrap();
            let data = server.object(&format!("{}data.tar.zst.age", g["dir"].as_str().unwrap()));
            let aside = work.path().join("aside");
            std::fs::copy(&data, &aside).unwrap();
            // 1 GiB, sparse: costly only to whoever downloads it.
            let f = std::fs::File::create(&data).unwrap();
            f.set_len(1 << 30).unwrap();
            drop(f);
            let b = listed(&bed, MAIN, id);
            assert_eq!(b["state"], "refused", "{b}");
            let why = "1073741824 bytes in the listing";
            assert!(b["refused"].as_str().unwrap().contains(why), "{b}");
            bed.refused(
                "trm-snap",
                &["import", MAIN, "--as", "b-x", "--at", id],
                1,
                why,
            );
            assert!(!exists("b-x"));
            assert_eq!(instance_count(), before);
            std::fs::copy(&aside, &data).unwrap();
            assert_eq!(newest(&bed, MAIN)["id"], id, "trusted again once whole");
        },
    );

    t.case(
        "a_ttl_export_box_is_exported_before_it_goes_and_kept_if_it_cannot_be",
        || {
            use chrono::{Duration, SecondsFormat, Utc};
            let name = "b-ttl";
            let at = |d: Duration| (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Secs, true);
            // An agent box: its import also shows a copy gets a fence of its own.
            let launched = bed.trm_json(&[
                "launch",
                name,
                "--profile",
                "agent",
                "--ttl",
                "1h",
                "--ttl-export",
            ]);
            assert!(launched["instance"]["expires"].is_string(), "{launched}");
            e2e::exec_ok(N.project, name, "echo last-words > /root/marker");
            let outcome = |ticks: &Value| e2e::outcomes(ticks, name).concat();
            // With no S3 to export to at the deadline, the box is kept, stopped.
            let aside = work.path().join("s3.toml.aside");
            std::fs::rename(&settings, &aside).unwrap();
            let failed = bed.snap(&["auto", "--now", &at(Duration::hours(2))]);
            std::fs::rename(&aside, &settings).unwrap();
            assert!(
                outcome(&failed).starts_with("kept_export_failed: "),
                "{failed}"
            );
            assert!(exists(name), "kept");
            assert_eq!(bed.trm_json(&["info", name])["state"], "stopped");
            // The next tick exports it, then deletes it; the backup restores.
            let done = bed.snap(&["auto", "--now", &at(Duration::hours(2))]);
            let o = outcome(&done);
            let id = o
                .strip_prefix("exported_and_deleted: ")
                .unwrap_or_else(|| panic!("{done}"));
            assert!(!exists(name), "deleted after its export");
            listed(&bed, name, id);
            bed.snap(&["import", name, "--as", "b-ttl-back"]);
            assert_eq!(file_in("b-ttl-back", "/root/marker").trim(), "last-words");
            // Its NIC on the gone box's bridge was the bucket's to say: the
            // import gets a bridge of its own, shut (`none`) until the owner
            // opens it.
            let own = terrarium_core::agents::sandbox::bridge_of(N.project, "b-ttl-back");
            let conf = e2e::lxc_json(&format!("/1.0/instances/b-ttl-back?project={}", N.project));
            assert_eq!(conf["devices"]["eth0"]["network"], own.as_str(), "{conf}");
            assert_eq!(
                bed.trm_json(&["info", "b-ttl-back"])["egress"]["policy"],
                "none"
            );
            bed.trm_json(&["delete", "b-ttl-back", "--force", "--yes"]);
            assert!(!e2e::lxc_json("/1.0/networks").to_string().contains(&own));
        },
    );

    t.case(
        "a_new_server_restores_from_the_owners_saved_identity_and_signing_key",
        || {
            // After losing the server: a fresh s3.toml from the saved keys.
            let saved = work.path().join("owner-identity.txt");
            let saved_signing = work.path().join("owner-signing-key.txt");
            std::fs::copy(&identity, &saved).unwrap();
            std::fs::copy(&signing_key, &saved_signing).unwrap();
            let shown = bed.snap(&["s3", "show"]);
            let recipient = shown["recipient"].clone();
            let signer = shown["signing_public_key"].clone();
            std::fs::remove_file(&settings).unwrap();
            std::fs::remove_file(&signing_key).unwrap();

            // The identity alone: a new signing key, and nothing old is trusted.
            let mut args = server.set_args(&secret);
            args.extend(["--identity-file".to_string(), saved.display().to_string()]);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let v = bed.snap(&a);
            assert_eq!(
                v["recipient"], recipient,
                "the public key comes from the identity"
            );
            assert_ne!(v["signing_public_key"], signer);
            let before = instance_count();
            let msg = bed.refused(
                "trm-snap",
                &["import", MAIN, "--as", "b-restored"],
                1,
                "not by this host's signing key",
            );
            assert!(
                msg.contains("no backup of b-main is one this host trusts"),
                "{msg}"
            );
            assert_eq!(instance_count(), before);

            // With the saved signing key, as the README says.
            let v = bed.snap(&[
                "s3",
                "set",
                "--signing-key-file",
                saved_signing.to_str().unwrap(),
            ]);
            assert_eq!(v["signing_public_key"], signer);
            let r = bed.snap(&["import", MAIN, "--as", "b-restored"]);
            assert_eq!(r["instance"], "b-restored");
            assert_eq!(file_in("b-restored", "/root/marker").trim(), "precious-42");
        },
    );

    t.case("scheduled_exports_take_what_is_due_and_fail_loudly", || {
        use chrono::{Duration, SecondsFormat, Utc};
        let at = |d: Duration| (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Secs, true);
        schedule(60);
        // Only b-main is in the schedule; a frequent snapshot newer
        // than everything else must stay local.
        for i in e2e::lxc_json(&format!("/1.0/instances?project={}", N.project))
            .as_array()
            .unwrap()
        {
            let name = i
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string();
            if name != MAIN {
                lxc_ok(&[
                    "config",
                    "set",
                    "--project",
                    N.project,
                    &name,
                    "user.terrarium.offsite",
                    "off",
                ]);
            }
        }
        bed.snap(&["create", MAIN]);
        let frequent = format!("trm-auto-frequent-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
        std::thread::sleep(std::time::Duration::from_secs(1));
        lxc_ok(&["snapshot", "--project", N.project, MAIN, &frequent]);
        let row = |ticks: &Value| {
            ticks
                .as_array()
                .unwrap()
                .iter()
                .find(|t| {
                    t["instance"] == MAIN && t["outcome"].as_str().unwrap_or("").contains("export")
                })
                .cloned()
        };
        // Due (its last backup is older than an hour, two hours on).
        let ticks = bed.snap(&["auto", "--now", &at(Duration::hours(2))]);
        let r = row(&ticks).unwrap_or_else(|| panic!("no export: {ticks:#}"));
        let id = r["outcome"]
            .as_str()
            .unwrap()
            .strip_prefix("exported: ")
            .unwrap_or_else(|| panic!("{r}"))
            .to_string();
        let snap = r["snapshot"].as_str().unwrap();
        assert!(
            !snap.starts_with("trm-auto-frequent-"),
            "a frequent snapshot went off-site: {r}"
        );
        assert_eq!(listed(&bed, MAIN, &id)["snapshot"], snap);
        // Retention ran after it: one backup a day is kept, this one.
        let mine: Vec<Value> = bed
            .trm_json_with("trm-snap", &["s3", "list", MAIN])
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(mine.len(), 1, "{mine:#?}");
        assert_eq!(mine[0]["id"], id.as_str());
        // Not due again right away.
        assert!(row(&bed.snap(&["auto"])).is_none());
        // The server down: the tick fails loudly (exit 5), status says
        // so, and the next tick with the server back exports.
        server.kill();
        let down = bed
            .tool("trm-snap")
            .args(["auto", "--now", &at(Duration::hours(4)), "--format", "json"])
            .output()
            .unwrap();
        server.run();
        assert_eq!(
            down.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
        let ticks: Value = serde_json::from_slice(&down.stdout).unwrap();
        let r = row(&ticks).unwrap();
        assert!(
            r["outcome"]
                .as_str()
                .unwrap()
                .starts_with("export_failed: "),
            "{r}"
        );
        let st = bed
            .tool("trm")
            .args([
                "status",
                "--now",
                &at(Duration::hours(4)),
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let st: Value = serde_json::from_slice(&st.stdout).unwrap();
        assert!(
            st["problems"]
                .to_string()
                .contains(&format!("{MAIN}'s newest off-site backup is ")),
            "{:#}",
            st["problems"]
        );
        let again = bed.snap(&["auto", "--now", &at(Duration::hours(4))]);
        let r = row(&again).unwrap_or_else(|| panic!("{again:#}"));
        assert!(
            r["outcome"].as_str().unwrap().starts_with("exported: "),
            "{r}"
        );
        let newest_id = r["outcome"].as_str().unwrap()["exported: ".len()..].to_string();

        // Monthly restore drills, by the same tick: the first one at once.
        let mut text = std::fs::read_to_string(&toml).unwrap();
        text.push_str("verify_every_days = 30\n");
        std::fs::write(&toml, text).unwrap();
        let drilled = bed.snap(&["auto"]);
        let drills: Vec<&Value> = drilled
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["outcome"].as_str().unwrap_or("").starts_with("verif"))
            .collect();
        assert!(
            drills
                .iter()
                .any(|t| t["instance"] == MAIN && t["outcome"] == format!("verified: {newest_id}")),
            "{drilled:#}"
        );
        assert!(
            drills
                .iter()
                .all(|t| t["outcome"].as_str().unwrap().starts_with("verified: ")),
            "{drilled:#}"
        );
        assert!(
            !e2e::lxc_json(&format!("/1.0/instances?project={}", N.project))
                .to_string()
                .contains("trm-verify-"),
            "the drills' throwaway instances are gone"
        );
        // Not due again for 30 days; status shows the schedule and the result.
        assert!(!bed.snap(&["auto"]).to_string().contains("verified: "));
        let rows = bed.snap(&["schedule", "status"]);
        let verify = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "verify")
            .unwrap_or_else(|| panic!("{rows:#}"))
            .clone();
        assert_eq!(
            verify["every"], "every 30 days, checked each tick",
            "{verify}"
        );
        assert_eq!(verify["state"], "last run ok", "{verify}");
        let export_row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "export")
            .unwrap();
        assert!(
            export_row["every"]
                .as_str()
                .unwrap()
                .contains("every 60 min"),
            "{export_row}"
        );
        let st: Value = serde_json::from_slice(
            &bed.tool("trm")
                .args(["status", "--format", "json"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(
            !st["problems"].to_string().contains("verify"),
            "{:#}",
            st["problems"]
        );
        let t = st["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["job"] == "verify")
            .unwrap();
        assert_eq!(t["last_ok"], true, "{t}");
        schedule(0);
    });

    server.kill();
    bed.teardown();
    t.finish()
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

fn size_of(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// Anyone who can write to the bucket: valid credentials, no Terrarium.
fn attacker(server: &S3Server, bucket: &str) -> Client {
    Client::new(&Target {
        endpoint: server.endpoint(),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        access_key: ACCESS.into(),
        secret_key: SECRET.into(),
    })
    .unwrap()
}

/// Backup `id` of `name` as `s3 list --all` shows it (refused ones too).
fn listed(bed: &Bed, name: &str, id: &str) -> Value {
    let all = bed.trm_json_with("trm-snap", &["s3", "list", name, "--all"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("{name}/{id} is listed with --all: {all}"))
        .clone()
}

/// The newest complete backup of `name`, as `s3 list` shows it.
fn newest(bed: &Bed, name: &str) -> Value {
    let list = bed.trm_json_with("trm-snap", &["s3", "list", name]);
    list.as_array().unwrap().last().unwrap().clone()
}

fn manifest_at(server: &S3Server, backup: &Value) -> Value {
    let key = format!("{}manifest.json", backup["dir"].as_str().unwrap());
    serde_json::from_slice(&std::fs::read(server.object(&key)).unwrap()).unwrap()
}

/// A genuine manifest rewritten for forged data, its signature dropped.
fn forged_manifest(genuine: &Value, instance: &str, id: &str, data: &Path, tarball: u64) -> Value {
    let mut m = genuine.clone();
    m["id"] = id.into();
    m["instance"] = instance.into();
    m["created"] = "2099-12-31T00:00:00Z".into();
    m["size"] = size_of(data).into();
    m["sha256"] = sha256_hex(data).into();
    m["tarball_size"] = tarball.into();
    m["objects"]["data"] = format!("terrarium/{instance}/{id}/data.tar.zst.age").into();
    m["objects"]["manifest"] = format!("terrarium/{instance}/{id}/manifest.json").into();
    m.as_object_mut().unwrap().remove("signature");
    m
}

fn signed(m: &Value, key: &SigningKey) -> Vec<u8> {
    let mut parsed: Manifest = serde_json::from_value(m.clone()).unwrap();
    signing::sign(&mut parsed, key);
    serde_json::to_vec_pretty(&parsed).unwrap()
}

/// zstd, then age to `recipient`: what `trm-snap export` uploads.
fn seal(tar: &Path, recipient: &str, out: &Path) {
    let mut z = Command::new("zstd")
        .args(["-1", "-q", "-c"])
        .arg(tar)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let age = Command::new("age")
        .args(["-r", recipient, "-o"])
        .arg(out)
        .stdin(z.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(z.wait().unwrap().success() && age.success(), "sealed");
}

/// A copy of a real LXD backup, made privileged with the host's root
/// mounted at /mnt/host: in both places LXD reads an instance from.
fn forge_tarball(src: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("forged.tar");
    if out.exists() {
        return out;
    }
    rewrite_tarball(src, &out, &mut make_privileged)
}

/// A copy of a real LXD backup with `change` applied to every instance
/// record, in both places LXD reads an instance from.
fn rewrite_tarball(
    src: &Path,
    out: &Path,
    change: &mut dyn FnMut(&mut serde_yaml_ng::Mapping),
) -> PathBuf {
    let tree = out.with_extension("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let tar = |args: &[&str]| {
        let ok = Command::new("tar")
            .arg("--numeric-owner")
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar {args:?}");
    };
    let (src_s, tree_s, out_s) = (
        src.to_str().unwrap(),
        tree.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    tar(&["-xpf", src_s, "-C", tree_s]);
    for member in ["backup/index.yaml", "backup/container/backup.yaml"] {
        let path = tree.join(member);
        let mut doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(
            each_instance(&mut doc, change) > 0,
            "an instance in {member}"
        );
        std::fs::write(&path, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    }
    // The index first, as LXD writes it.
    tar(&["-cf", out_s, "-C", tree_s, "backup/index.yaml"]);
    tar(&[
        "-rf",
        out_s,
        "-C",
        tree_s,
        "--exclude=backup/index.yaml",
        "backup",
    ]);
    std::fs::remove_dir_all(&tree).unwrap();
    out.to_path_buf()
}

/// Apply `change` to every instance record (architecture, config,
/// devices) in an LXD backup's YAML; how many there were.
fn each_instance(
    v: &mut serde_yaml_ng::Value,
    change: &mut dyn FnMut(&mut serde_yaml_ng::Mapping),
) -> usize {
    use serde_yaml_ng::Value as Y;
    let mut n = 0;
    match v {
        Y::Mapping(m) => {
            if m.contains_key("architecture") && m.get("config").is_some_and(Y::is_mapping) {
                change(m);
                n += 1;
            }
            for (_, x) in m.iter_mut() {
                n += each_instance(x, change);
            }
        }
        Y::Sequence(s) => {
            for x in s {
                n += each_instance(x, change);
            }
        }
        _ => {}
    }
    n
}

/// An instance record gets `security.privileged=true` and a disk `source: /`.
fn make_privileged(m: &mut serde_yaml_ng::Mapping) {
    use serde_yaml_ng::Value as Y;
    if let Some(Y::Mapping(c)) = m.get_mut("config") {
        c.insert("security.privileged".into(), "true".into());
    }
    let host: Y = serde_yaml_ng::from_str("{type: disk, source: /, path: /mnt/host}").unwrap();
    match m.get_mut("devices") {
        Some(Y::Mapping(d)) => {
            d.insert("host".into(), host);
        }
        _ => {
            let mut d = serde_yaml_ng::Mapping::new();
            d.insert("host".into(), host);
            m.insert("devices".into(), Y::Mapping(d));
        }
    }
}
