//! End-to-end tests of `trm` against a real LXD (TRM_E2E=1), in the
//! `trm-e2e` project on a NAT-less bridge. Cases share one launched
//! container; everything is deleted at the end, pass or fail.

use std::io::Read;
use std::process::Stdio;

use serde_json::Value;
use terrarium_tests::e2e::{
    self, assert_ok, lxc, lxc_json, lxc_ok, stderr_json, Bed, Names, Runner, TRM_SUITE,
};

const PROJECT: &str = TRM_SUITE.project;
const BRIDGE: &str = TRM_SUITE.bridge;
const POOL: &str = TRM_SUITE.pool;

const MAIN: &str = "e2e-main";
const BARE: &str = "e2e-bare";
const USER_DATA: &str =
    "#cloud-config\nusers:\n  - name: terrarium\n    shell: /bin/bash\n    lock_passwd: true\n";

/// A `trm` command that must fail with `code`, saying `needle`.
fn assert_refused(bed: &Bed, args: &[&str], code: i32, needle: &str) -> String {
    bed.refused("trm", args, code, needle)
}

/// `trm exec ARGS` (each command here may run twice): its status, stdout.
fn exec_out(bed: &Bed, args: &[&str]) -> (i32, String) {
    let out = bed.trm_again_if_lost(&[&["exec"], args].concat());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_trm") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(TRM_SUITE);
    let mut t = Runner::new();

    t.case("init_dry_run_changes_nothing", || {
        let plan = bed.trm_json(&[bed.init_args(), vec!["--dry-run"]].concat());
        assert_eq!(plan["changed"], true);
        assert_eq!(plan["dry_run"], true);
        assert!(
            !lxc(&["network", "show", BRIDGE]).status.success(),
            "dry run created the bridge"
        );
        assert!(
            !lxc(&["storage", "show", POOL]).status.success(),
            "dry run created the pool"
        );
        assert!(!bed.config_dir.path().join("terrarium.toml").exists());
    });

    t.setup("init_brings_the_host_to_the_baseline", || {
        let report = bed.trm_json(&bed.init_args());
        assert_eq!(report["changed"], true);
        let net = lxc_json(&format!("/1.0/networks/{BRIDGE}"));
        assert_eq!(net["config"]["ipv4.nat"], "false");
        assert_eq!(net["config"]["ipv6.address"], "none");
        let pool = lxc_json(&format!("/1.0/storage-pools/{POOL}"));
        assert_eq!(pool["driver"], "btrfs");
        let server = lxc_json("/1.0");
        assert_eq!(server["config"]["core.https_address"], "127.0.0.1:8443");
        let profile = lxc_json(&format!("/1.0/profiles/default?project={PROJECT}"));
        assert_eq!(profile["devices"]["root"]["pool"], POOL);
        assert_eq!(profile["devices"]["eth0"]["network"], BRIDGE);
        assert_eq!(profile["config"]["security.privileged"], "false");
        // Kernel limits for many containers: raised now and kept for boots.
        let conf =
            std::fs::read_to_string(bed.config_dir.path().join("60-terrarium.conf")).unwrap();
        assert!(
            conf.contains("fs.inotify.max_user_instances = 1048576"),
            "{conf}"
        );
        let live: u64 = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(live >= 1_048_576, "{live}");
        for name in ["default", "terrarium", "strict", "dev"] {
            let p = lxc_json(&format!("/1.0/profiles/{name}?project={PROJECT}"));
            assert_eq!(p["config"]["user.terrarium.managed"], "true", "{name}");
        }
        let settings =
            std::fs::read_to_string(bed.config_dir.path().join("terrarium.toml")).unwrap();
        assert!(
            settings.contains(&format!("project = \"{PROJECT}\"")),
            "{settings}"
        );
        assert!(settings.contains("nat = false"), "{settings}");
    });

    t.case("init_second_run_changes_nothing", || {
        let report = bed.trm_json(&bed.init_args());
        assert_eq!(report["changed"], false, "{report:#}");
        for step in report["steps"].as_array().unwrap() {
            assert_eq!(step["action"], "none", "{step}");
        }
        let human = bed.trm(&[bed.init_args(), vec!["--format", "human"]].concat());
        assert!(String::from_utf8_lossy(&human.stdout).contains("Nothing to change"));
    });

    t.case("init_refuses_a_subnet_that_collides", || {
        let ours = lxc_json(&format!("/1.0/networks/{BRIDGE}"))["config"]["ipv4.address"]
            .as_str()
            .unwrap()
            .to_string();
        let before = std::fs::read(bed.config_dir.path().join("terrarium.toml")).unwrap();
        assert_refused(
            &bed,
            &[
                "init", "--bridge", "trme2e1", "--pool", POOL, "--subnet", &ours,
            ],
            2,
            "collides",
        );
        assert!(!lxc(&["network", "show", "trme2e1"]).status.success());
        assert_eq!(
            std::fs::read(bed.config_dir.path().join("terrarium.toml")).unwrap(),
            before
        );
    });

    t.case("image_build_reuses_the_cached_image", || {
        let out = bed.trm_json(&["image", "build"]);
        assert_eq!(out["action"], "reuse", "{out:#}");
        assert_eq!(out["dry_run"], false, "{out:#}");
        assert_eq!(out["alias"], "terrarium/debian12");
    });

    t.setup("launch_waits_for_cloud_init", || {
        let ud = format!("cloud-init.user-data={USER_DATA}");
        let out = bed.trm_json(&["launch", MAIN, "-c", &ud]);
        assert_eq!(out["cloud_init"], "done", "{out:#}");
        assert_eq!(out["instance"]["state"], "running");
        let status = lxc_ok(&[
            "exec",
            "--project",
            PROJECT,
            MAIN,
            "--",
            "cloud-init",
            "status",
        ]);
        assert!(status.contains("done"), "{status}");
        let ip = out["instance"]["ipv4"].as_str().expect("an IPv4 on eth0");
        let gw = lxc_json(&format!("/1.0/networks/{BRIDGE}"))["config"]["ipv4.address"]
            .as_str()
            .unwrap()
            .to_string();
        let prefix = gw.rsplit_once('.').unwrap().0;
        assert!(ip.starts_with(prefix), "{ip} not on the bridge {gw}");
    });

    t.case("exec_runs_as_terrarium_in_its_home", || {
        assert_eq!(
            exec_out(&bed, &[MAIN, "--", "id", "-un"]),
            (0, "terrarium".into())
        );
        assert_eq!(
            exec_out(&bed, &[MAIN, "--", "pwd"]),
            (0, "/home/terrarium".into())
        );
        let (code, env) = exec_out(
            &bed,
            &[MAIN, "--", "printenv", "HOME", "USER", "SHELL", "PATH"],
        );
        assert_eq!(code, 0);
        let env: Vec<&str> = env.lines().collect();
        assert_eq!(env[..3], ["/home/terrarium", "terrarium", "/bin/bash"]);
        assert!(
            !env[3].contains("sbin"),
            "a user PATH, not root's: {}",
            env[3]
        );
        // Arguments reach the command untouched, and its exit status is ours.
        assert_eq!(
            exec_out(&bed, &[MAIN, "--", "echo", "$(id); *"]),
            (0, "$(id); *".into())
        );
        assert_eq!(exec_out(&bed, &[MAIN, "--", "sh", "-c", "exit 7"]).0, 7);
    });

    t.case("exec_passes_the_terminal_through", || {
        // `script` gives trm a pseudo-terminal, as an interactive user has.
        // The answer goes to a file: script may drop a pty's last output
        // when the child exits first.
        let trm = bed.bins.join("trm");
        let inner = format!(
            "{} exec {MAIN} -- sh -c 'tty > /tmp/trm-tty'",
            trm.display()
        );
        let out = bed
            .command("script")
            .args(["-q", "-e", "-c", &inner, "/dev/null"])
            .output()
            .unwrap();
        assert_ok(&out, "trm exec under a pty");
        let tty = lxc_ok(&[
            "exec",
            "--project",
            PROJECT,
            MAIN,
            "--",
            "cat",
            "/tmp/trm-tty",
        ]);
        assert!(tty.starts_with("/dev/pts/"), "no tty inside: {tty:?}");
        // Without a terminal, none is invented.
        let (code, text) = exec_out(&bed, &[MAIN, "--", "sh", "-c", "tty || true"]);
        assert_eq!((code, text.as_str()), (0, "not a tty"));
    });

    t.case(
        "a_recipe_places_files_and_user_data_before_first_use",
        || {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("run.sh");
            std::fs::write(&script, "echo from-the-host\n").unwrap();
            // The user's own runcmd reads the file: it was there at first boot.
            let ud = dir.path().join("user-data.yaml");
            std::fs::write(
            &ud,
            "#cloud-config\nruncmd:\n  - [sh, -c, 'cat /home/terrarium/app/run.sh > /root/seen']\n",
        )
        .unwrap();
            let file = format!("{}:app/run.sh", script.display());
            let secret = dir.path().join("secret.env");
            std::fs::write(&secret, "TOKEN=x\n").unwrap();
            std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let secret_file = format!("{}:.config/app/secret.env", secret.display());
            let name = "e2e-recipe";
            let out = bed.trm_json(&[
                "launch",
                name,
                "--cloud-init",
                ud.to_str().unwrap(),
                "--file",
                &file,
                "--file",
                &secret_file,
            ]);
            assert_eq!(out["cloud_init"], "done", "{out:#}");
            assert_eq!(out["files"][0]["to"], "/home/terrarium/app/run.sh", "{out}");
            let sh = |s: &str| e2e::exec_ok(PROJECT, name, s);
            assert_eq!(
                sh("stat -c %U:%G /home/terrarium/app/run.sh /home/terrarium/app"),
                "terrarium:terrarium\nterrarium:terrarium\n"
            );
            assert_eq!(sh("cat /root/seen"), "echo from-the-host\n");
            // Private stays private, and the home keeps the mode it has without
            // a recipe.
            assert_eq!(
                sh("stat -c %a /home/terrarium/.config/app/secret.env"),
                "600\n"
            );
            assert_eq!(
                sh("stat -c %a /home/terrarium"),
                e2e::exec_ok(PROJECT, MAIN, "stat -c %a /home/terrarium")
            );
            assert_eq!(
                sh("test -e /var/lib/terrarium/files || echo gone"),
                "gone\n"
            );
            // The profile's user and policy still hold under the user's data.
            let (code, _) = exec_out(&bed, &[name, "--", "sudo", "-n", "true"]);
            assert_ne!(code, 0, "the default profile gives no sudo");
            lxc_ok(&["delete", "--force", "--project", PROJECT, name]);

            // Bad recipes are refused before anything is made.
            lxc_ok(&["profile", "create", "--project", PROJECT, "e2e-nouser"]);
            let bad = dir.path().join("bad.yaml");
            std::fs::write(&bad, "packages: [jq]\n").unwrap();
            for (args, says) in [
                (
                    vec!["launch", "e2e-nope", "--cloud-init", bad.to_str().unwrap()],
                    "starts with #cloud-config",
                ),
                (
                    vec![
                        "launch",
                        "e2e-nope",
                        "--file",
                        &format!("{}:../x", script.display()),
                    ],
                    "below /home/terrarium",
                ),
                (
                    vec![
                        "launch",
                        "e2e-nope",
                        "--profile",
                        "e2e-nouser",
                        "--file",
                        &file,
                    ],
                    "creates that user",
                ),
                (
                    vec![
                        "launch",
                        "e2e-nope",
                        "-c",
                        "user.proxy=https://x.example.test",
                    ],
                    "given with --proxy",
                ),
            ] {
                assert_refused(&bed, &args, 2, says);
                assert!(!lxc(&["info", "--project", PROJECT, "e2e-nope"])
                    .status
                    .success());
            }
            lxc_ok(&["profile", "delete", "--project", PROJECT, "e2e-nouser"]);
        },
    );

    t.case("a_golden_image_launches_with_a_fresh_identity", || {
        const SRC: &str = "e2e-gold-src";
        const NEW: &str = "e2e-gold-new";
        let image = format!("{PROJECT}/golden");
        let out = bed.trm_json(&["launch", SRC]);
        assert_eq!(out["cloud_init"], "done", "{out:#}");
        let src = |s: &str| e2e::exec_ok(PROJECT, SRC, s);
        // A configured box: an app, a user's history and keys, a label, a
        // proxy device holding a host port.
        src("echo configured > /home/terrarium/app.txt && chown terrarium: /home/terrarium/app.txt \
             && echo 'curl secret' > /home/terrarium/.bash_history && echo 'vi /etc/x' > /root/.bash_history \
             && mkdir -p /home/terrarium/.ssh && echo 'ssh-ed25519 AAAA owner' > /home/terrarium/.ssh/authorized_keys");
        lxc_ok(&["config", "set", "--project", PROJECT, SRC, "user.proxy", "https://gold.example.test:8080"]);
        lxc_ok(&["config", "set", "--project", PROJECT, SRC, "user.terrarium.snapshots", "off"]);
        lxc_ok(&["config", "device", "add", "--project", PROJECT, SRC, "web", "proxy",
                 "listen=tcp:127.0.0.1:28431", "connect=tcp:127.0.0.1:80"]);
        lxc_ok(&["snapshot", "--project", PROJECT, SRC, "s1"]);
        let identity = |name: &str| {
            e2e::exec_ok(PROJECT, name, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub")
        };
        let src_identity = identity(SRC);
        assert!(src_identity.contains("ssh-ed25519"), "cloud-init made host keys: {src_identity}");
        let config_before = lxc_ok(&["config", "show", "--project", PROJECT, SRC]);
        let sum_before = src("sha256sum /home/terrarium/app.txt");

        // Checked before anything is made.
        assert_refused(&bed, &["image", "create", &image, "--from", "e2e-nope"], 3, "does not exist");
        assert_refused(&bed, &["image", "create", "bad name", "--from", SRC], 2, "image name");
        assert_refused(&bed, &["image", "create", &image, "--from", SRC, "--snapshot", "nope"], 3, "snapshot");
        let plan = bed.trm_json(&["image", "create", &image, "--from", SRC, "--snapshot", "s1", "--dry-run"]);
        assert_eq!(plan["source"], format!("{SRC}/s1"));
        assert!(!lxc(&["image", "info", "--project", PROJECT, &image]).status.success());

        let made = bed.trm_json(&["image", "create", &image, "--from", SRC]);
        let removed = made["removed"].to_string();
        for gone in [
            "user.proxy",
            "proxy device web",
            "config user.terrarium.snapshots",
            "/etc/ssh/ssh_host_ed25519_key",
            "/home/terrarium/.bash_history",
            "/root/.bash_history",
            "/home/terrarium/.ssh/authorized_keys",
            "/var/lib/cloud",
        ] {
            assert!(removed.contains(gone), "{gone} not in {removed}");
        }
        // The original: running, same config, same files, no new snapshot.
        assert_eq!(lxc_ok(&["config", "show", "--project", PROJECT, SRC]), config_before);
        assert_eq!(src("sha256sum /home/terrarium/app.txt"), sum_before);
        assert_eq!(lxc_json(&format!("/1.0/instances/{SRC}?project={PROJECT}"))["status"], "Running");
        assert_eq!(src("cat /home/terrarium/.bash_history"), "curl secret\n");
        let listed = bed.trm_json(&["image", "list"]);
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["alias"] == image.as_str())
            .cloned()
            .expect("the image is listed");
        assert_eq!(entry["origin"], "golden");
        assert_eq!(entry["source"], SRC);
        assert!(
            lxc_ok(&["list", "--project", PROJECT, "-c", "n", "-f", "csv"]).lines().all(|l| !l.starts_with("trm-golden-")),
            "the temporary copy is gone"
        );

        let out = bed.trm_json(&["launch", NEW, "--image", &image]);
        assert_eq!(out["cloud_init"], "done", "{out:#}");
        let new = |s: &str| e2e::exec_ok(PROJECT, NEW, s);
        assert_eq!(new("cat /home/terrarium/app.txt"), "configured\n", "what was configured stays");
        let new_identity = identity(NEW);
        let (src_id, new_id) = (src_identity.lines().next(), new_identity.lines().next());
        assert_ne!(src_id, new_id, "a machine-id of its own");
        assert_eq!(new_id.unwrap().len(), 32, "{new_identity}");
        assert_ne!(src_identity.lines().nth(1), new_identity.lines().nth(1), "host keys of its own");
        assert_eq!(new("cat /var/lib/cloud/data/instance-id"), format!("{NEW}\n"), "cloud-init ran again");
        assert_eq!(new("grep -c e2e-gold-src /var/log/cloud-init.log || true"), "0\n", "{}", new("cat /var/log/cloud-init.log | head -5"));
        assert_eq!(
            new("ls -a /home/terrarium/.bash_history /root/.bash_history /home/terrarium/.ssh/authorized_keys 2>/dev/null | wc -l"),
            "0\n"
        );
        let mac = |n: &str| lxc_json(&format!("/1.0/instances/{n}?project={PROJECT}"))["config"]["volatile.eth0.hwaddr"].clone();
        assert_ne!(mac(SRC), mac(NEW), "a MAC of its own");
        let cfg = lxc_json(&format!("/1.0/instances/{NEW}?project={PROJECT}"));
        assert!(cfg["config"].get("user.proxy").is_none(), "no exposure: {cfg:#}");
        assert!(cfg["devices"].get("web").is_none(), "no proxy device: {cfg:#}");
        let (code, _) = exec_out(&bed, &[NEW, "--", "sudo", "-n", "true"]);
        assert_ne!(code, 0, "the profile's policy, not the source's");
        assert_eq!(new("getent passwd debian || echo none"), "none\n", "no distro default user with sudo");

                // From a snapshot: the box's state then, under a name of its own.
        let snap_image = format!("{PROJECT}/golden-s1");
        let made = bed.trm_json(&["image", "create", &snap_image, "--from", SRC, "--snapshot", "s1"]);
        assert_eq!(made["source"], format!("{SRC}/s1"), "{made:#}");
        let d = bed.trm_json(&["image", "delete", &snap_image, "--yes"]);
        assert_eq!(d["deleted"], true);

        // Delete is confirmed; the boxes launched from it keep running.
        bed.refused("trm", &["image", "delete", &image], 2, "confirmation");
        assert!(lxc(&["image", "info", "--project", PROJECT, &image]).status.success());
        let d = bed.trm_json(&["image", "delete", &image, "--yes"]);
        assert_eq!(d["deleted"], true);
        assert!(!lxc(&["image", "info", "--project", PROJECT, &image]).status.success());
        assert_eq!(lxc_json(&format!("/1.0/instances/{NEW}?project={PROJECT}"))["status"], "Running");
        lxc_ok(&["delete", "--force", "--project", PROJECT, NEW, SRC]);
    });

    t.case("config_export_then_import_carries_profiles_settings_and_labels", || {
        const NEW: Names = Names {
            project: "trm-e2e-new",
            bridge: "",
            pool: "",
        };
        e2e::clean_lxd(&NEW);
        let dir = tempfile::tempdir().unwrap();
        let cfg = bed.config_dir.path();
        // The old host: a domain and a retention of its own, a profile,
        // a label and an opt-out, the bucket's and the gate's settings.
        let toml = std::fs::read_to_string(cfg.join("terrarium.toml")).unwrap();
        std::fs::write(
            cfg.join("terrarium.toml"),
            toml.replace("root_domain = \"\"", "root_domain = \"example.test\"")
                .replace("hourly = 24", "hourly = 12"),
        )
        .unwrap();
        lxc_ok(&["profile", "create", "--project", PROJECT, "e2e-carried"]);
        lxc_ok(&["profile", "set", "--project", PROJECT, "e2e-carried", "limits.memory", "256MiB"]);
                lxc_ok(&["profile", "device", "add", "--project", PROJECT, "e2e-carried", "eth0", "nic", &format!("network={BRIDGE}")]);
        lxc_ok(&["profile", "set", "--project", PROJECT, "e2e-carried", "environment.TOKEN", "E2E-ENV-SECRET"]);
        lxc_ok(&["config", "set", "--project", PROJECT, MAIN, "user.proxy", "https://main.example.test:8080"]);
        lxc_ok(&["config", "set", "--project", PROJECT, MAIN, "user.terrarium.snapshots", "off"]);
        std::fs::write(
            cfg.join("s3.toml"),
            "endpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\nregion = \"us-east-1\"\nprefix = \"t\"\n\
             access_key = \"AKIA-E2E-ACCESS\"\nsecret_key = \"E2E-S3-SECRET\"\nrecipient = \"age1qqq\"\n\
             identity_file = \"/etc/terrarium/s3-identity.txt\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("client-secret"), "E2E-GATE-SECRET\n").unwrap();
        std::fs::write(
            cfg.join("gate.toml"),
            format!(
                "issuer = \"https://idp.example.test\"\nclient_id = \"terrarium\"\nadmin_group = \"admins\"\n\
                 client_secret_file = \"{}\"\n",
                dir.path().join("client-secret").display()
            ),
        )
        .unwrap();
        let doc_path = dir.path().join("host.json");
        let out = bed
            .tool("trm")
            .args(["config", "export", "--output", doc_path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_ok(&out, "config export");
        let text = std::fs::read_to_string(&doc_path).unwrap();
                for secret in ["E2E-S3-SECRET", "AKIA-E2E-ACCESS", "E2E-GATE-SECRET", "E2E-ENV-SECRET"] {
            assert!(!text.contains(secret), "{secret} was written out");
        }
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["settings"]["expose.root_domain"], "example.test");
        assert!(doc["settings"].get("bridge").is_none(), "the host's own names stay");
                assert_eq!(doc["secrets_left_out"].as_array().unwrap().len(), 4, "{doc:#}");
        assert_eq!(doc["withheld"]["e2e-carried"], serde_json::json!(["environment.TOKEN"]));

        // A new host: its own project and settings, an instance of the same name.
        let new_cfg = tempfile::tempdir().unwrap();
        let on_new = |args: &[&str]| {
            bed.tool("trm")
                .env("TRM_PROJECT", NEW.project)
                .env("TRM_CONFIG_DIR", new_cfg.path())
                .args(args)
                .output()
                .unwrap()
        };
        assert_ok(&on_new(&bed.init_args()), "init on the new host");
        e2e::ensure_busybox_image();
        lxc_ok(&["init", "--project", NEW.project, e2e::BUSYBOX_IMAGE, MAIN]);
        let json = |out: std::process::Output| -> Value {
            assert_ok(&out, "on the new host");
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let plan = json(on_new(&["config", "import", doc_path.to_str().unwrap(), "--dry-run", "--format", "json"]));
        let kinds: Vec<String> = plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c["kind"].as_str().unwrap(), c["name"].as_str().unwrap()))
            .collect();
        for want in [
            "setting expose.root_domain",
            "setting snapshots.hourly",
            "profile e2e-carried",
            &format!("label {MAIN}"),
            &format!("snapshots {MAIN}"),
        ] {
            assert!(kinds.iter().any(|k| k == want), "{want} not in {kinds:?}");
        }
        let needs = plan["needs_secret"].to_string();
        assert!(needs.contains("trm-snap s3 set --endpoint http://127.0.0.1:9 --bucket b"), "{needs}");
        assert!(needs.contains("trm-harden oidc set --issuer https://idp.example.test"), "{needs}");
        assert!(!lxc(&["profile", "show", "--project", NEW.project, "e2e-carried"]).status.success(), "a dry run changes nothing");
                // A document that would make a profile privileged is refused whole.
        let mut evil = doc.clone();
        for p in evil["profiles"].as_array_mut().unwrap() {
            if p["name"] == "e2e-carried" {
                p["config"]["security.privileged"] = "true".into();
            }
        }
        let evil_path = dir.path().join("evil.json");
        std::fs::write(&evil_path, evil.to_string()).unwrap();
        let out = on_new(&["config", "import", evil_path.to_str().unwrap(), "--yes", "--format", "json"]);
        e2e::assert_refused(&out, "a privileged profile", 2, "would weaken every box");
        assert!(!lxc(&["profile", "show", "--project", NEW.project, "e2e-carried"]).status.success());
        let refused = on_new(&["config", "import", doc_path.to_str().unwrap(), "--format", "json"]);
        e2e::assert_refused(&refused, "import without --yes", 2, "confirmation");
        let done = json(on_new(&["config", "import", doc_path.to_str().unwrap(), "--yes", "--format", "json"]));
        assert_eq!(done["applied"], true);

        // The same profiles, settings and labels.
        for p in doc["profiles"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let here = lxc_json(&format!("/1.0/profiles/{name}?project={}", NEW.project));
            assert_eq!(here["config"], p["config"], "{name}");
            assert_eq!(here["devices"], p["devices"], "{name}");
        }
        let new_settings = std::fs::read_to_string(new_cfg.path().join("terrarium.toml")).unwrap();
        assert!(new_settings.contains("root_domain = \"example.test\""), "{new_settings}");
        assert!(new_settings.contains("hourly = 12"), "{new_settings}");
        assert!(new_settings.contains(&format!("project = \"{}\"", NEW.project)), "its own project: {new_settings}");
        let inst = lxc_json(&format!("/1.0/instances/{MAIN}?project={}", NEW.project));
        assert_eq!(inst["config"]["user.proxy"], "https://main.example.test:8080");
        assert_eq!(inst["config"]["user.terrarium.snapshots"], "off");
        assert!(!new_cfg.path().join("s3.toml").exists(), "no half-made bucket settings");
        // Again: nothing to change; the secrets are still asked for.
        let again = json(on_new(&["config", "import", doc_path.to_str().unwrap(), "--dry-run", "--format", "json"]));
        assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
        assert_eq!(again["needs_secret"].as_array().unwrap().len(), 2);

        e2e::clean_lxd(&NEW);
        lxc_ok(&["config", "unset", "--project", PROJECT, MAIN, "user.proxy"]);
        lxc_ok(&["config", "unset", "--project", PROJECT, MAIN, "user.terrarium.snapshots"]);
        lxc_ok(&["profile", "delete", "--project", PROJECT, "e2e-carried"]);
        std::fs::write(cfg.join("terrarium.toml"), toml).unwrap();
        for f in ["s3.toml", "gate.toml"] {
            std::fs::remove_file(cfg.join(f)).unwrap();
        }
    });

    t.case("a_debian_13_box_gets_the_user_and_its_policy", || {
        let name = "e2e-trixie";
        let out = bed.trm_json(&[
            "launch",
            name,
            "--image",
            "terrarium/debian13",
            "--profile",
            "dev",
        ]);
        assert_eq!(out["cloud_init"], "done", "a clean first boot: {out:#}");
        let sh = |s: &str| e2e::exec_ok(PROJECT, name, s);
        assert!(sh("cat /etc/os-release").contains("VERSION_CODENAME=trixie"));
        let (code, who) = exec_out(&bed, &[name, "--", "id", "-un"]);
        assert_eq!((code, who.as_str()), (0, "terrarium"));
        let (code, _) = exec_out(&bed, &[name, "--", "sudo", "-n", "true"]);
        assert_eq!(code, 0, "dev's passwordless sudo");
        assert_eq!(sh("getent passwd debian || echo none"), "none\n");
        assert!(
            sh("ls /etc/ssh").contains("ssh_host_ed25519_key.pub"),
            "host keys of its own"
        );
        lxc_ok(&["delete", "--force", "--project", PROJECT, name]);
    });

    t.case("launch_reports_a_cloud_init_failure", || {
        let ud = "cloud-init.user-data=#cloud-config\nruncmd:\n  - [false]\n";
        let msg = assert_refused(
            &bed,
            &["launch", "e2e-broken", "-c", ud],
            4,
            "cloud-init failed in 'e2e-broken'",
        );
        assert!(
            msg.contains("status: error"),
            "the status detail is carried: {msg}"
        );
        lxc_ok(&["delete", "--force", "--project", PROJECT, "e2e-broken"]);
    });

    t.case("exec_root_is_uid_0_inside", || {
        assert_eq!(
            exec_out(&bed, &["--root", MAIN, "--", "id", "-u"]),
            (0, "0".into())
        );
    });

    t.case("root_inside_is_not_root_outside", || {
        let state = lxc_json(&format!("/1.0/instances/{MAIN}/state?project={PROJECT}"));
        let pid = state["pid"].as_u64().expect("running instance has a pid");
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        let first: Vec<u64> = map
            .split_whitespace()
            .take(3)
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(first[0], 0, "{map}");
        assert_ne!(first[1], 0, "container root maps to host root: {map}");
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
        assert_eq!(u64::from(owner), first[1], "init runs as the mapped uid");
    });

    t.case("list_shows_the_lxd_nic_address_not_docker0", || {
        // An interface the workload made itself, sorting before eth0.
        for cmd in [
            vec!["ip", "link", "add", "docker0", "type", "bridge"],
            vec!["ip", "addr", "add", "172.17.0.1/16", "dev", "docker0"],
            vec!["ip", "link", "set", "docker0", "up"],
        ] {
            lxc_ok(&[&["exec", "--project", PROJECT, MAIN, "--"], &cmd[..]].concat());
        }
        let info = bed.trm_json(&["info", MAIN]);
        let ip = info["ipv4"].as_str().unwrap();
        assert!(ip.starts_with("10."), "{ip}");
        let state = lxc_json(&format!("/1.0/instances/{MAIN}/state?project={PROJECT}"));
        assert!(
            state["network"]["docker0"].is_object(),
            "docker0 exists inside"
        );
    });

    t.case("list_pipes_into_jq", || {
        let mut list = bed
            .tool("trm")
            .arg("list")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let jq = std::process::Command::new("jq")
            .args([
                "-e",
                "-r",
                &format!(".[] | select(.name == \"{MAIN}\") | .state + \" \" + .ipv4"),
            ])
            .stdin(list.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(list.wait().unwrap().success());
        assert_ok(&jq, "jq over trm list");
        let line = String::from_utf8_lossy(&jq.stdout);
        assert!(line.starts_with("running 10."), "{line}");
        let info = bed.trm_json(&["info", MAIN]);
        assert_eq!(info["snapshots"], 0);
        assert!(info["created"].as_str().unwrap().ends_with('Z'));
        let jsonl = bed.trm(&["list", "--format", "jsonl"]);
        let lines: Vec<Value> = String::from_utf8_lossy(&jsonl.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("each jsonl line is JSON"))
            .collect();
        let listed = bed.trm_json(&["list"]);
        assert_eq!(
            lines.len(),
            listed.as_array().unwrap().len(),
            "one line per instance"
        );
        assert!(
            lines.iter().any(|l| l["name"] == MAIN),
            "the running instance is a line: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l["type"] == "item" && l["kind"] == "container"),
            "every line says it is an item, and the instance its kind: {lines:?}"
        );
    });

    t.case("closed_pipe_exits_quietly", || {
        let mut child = bed
            .tool("trm")
            .args(["list", "--format", "human"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}: {err}");
        assert!(err.is_empty(), "{err}");
    });

    t.case("bad_names_are_refused_before_lxd_is_called", || {
        // With no lxc at all, a name check that ran after LXD would say 69.
        for (name, why) in [
            ("1web", "digit"),
            ("web-", "end with a hyphen"),
            ("we_b", "letters, digits"),
            (&"a".repeat(64) as &str, "63"),
        ] {
            for cmd in [
                vec!["launch", name],
                vec!["exec", name],
                vec!["info", name],
                vec!["delete", "--yes", name],
            ] {
                let out = bed
                    .tool("trm")
                    .args(&cmd)
                    .args(["--format", "json"])
                    .env("TRM_LXC", "/nonexistent/lxc")
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(2), "{cmd:?}");
                let msg = stderr_json(&out)["message"].as_str().unwrap().to_string();
                assert!(msg.contains(why) && msg.contains(name), "{cmd:?}: {msg}");
            }
        }
    });

    t.case("unknown_instance_is_a_clear_error", || {
        for cmd in [
            vec!["info", "nope"],
            vec!["start", "nope"],
            vec!["delete", "--yes", "nope"],
        ] {
            assert_refused(&bed, &cmd, 3, "instance 'nope' does not exist");
        }
        let out = bed.trm(&["exec", "--format", "json", "nope", "--", "true"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    t.case("exec_in_a_stopped_instance_says_so", || {
        // Older `user.*` keys and vendor-data must reach the NoCloud seed too.
        lxc_ok(&[
            "init",
            "--project",
            PROJECT,
            "terrarium/debian12",
            BARE,
            "-c",
            "user.user-data=#cloud-config\n# marker-user-data\n",
            "-c",
            "cloud-init.vendor-data=#cloud-config\n# marker-vendor-data\n",
        ]);
        let out = bed
            .tool("trm")
            .args(["exec", BARE, "--", "true"])
            .env("TRM_FORMAT", "json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        let msg = stderr_json(&out)["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("is stopped") && msg.contains("trm start"),
            "{msg}"
        );
    });

    t.case("lifecycle_reports_what_changed", || {
        let again = bed.trm_json(&["stop", BARE]);
        assert_eq!(again["changed"], false);
        let dry = bed.trm_json(&["start", BARE, "--dry-run"]);
        assert_eq!(dry["changed"], true);
        assert_eq!(
            lxc_json(&format!("/1.0/instances/{BARE}?project={PROJECT}"))["status"],
            "Stopped"
        );
        assert_eq!(bed.trm_json(&["start", BARE])["changed"], true);
        assert_eq!(
            lxc_json(&format!("/1.0/instances/{BARE}?project={PROJECT}"))["status"],
            "Running"
        );
        assert_eq!(bed.trm_json(&["restart", BARE])["changed"], true);
        let seed = |f: &str| {
            lxc_ok(&[
                "exec",
                "--project",
                PROJECT,
                BARE,
                "--",
                "cat",
                &format!("/var/lib/cloud/seed/nocloud-net/{f}"),
            ])
        };
        assert!(seed("user-data").contains("marker-user-data"));
        assert!(seed("vendor-data").contains("marker-vendor-data"));
        assert!(seed("network-config").contains("name: eth0"));
        assert!(seed("meta-data").contains(&format!("instance-id: {BARE}")));
    });

    t.case("exec_without_a_terrarium_user_suggests_root", || {
        // Just started by the case before: LXD 5.0 loses the first execs
        // into a box that is still coming up (exit 255, "Failed to
        // retrieve PID"), which says nothing about the user.
        e2e::eventually("e2e-bare to take execs", 60, || {
            lxc(&["exec", "--project", PROJECT, BARE, "--", "true"])
                .status
                .success()
        });
        // BARE was launched without user-data: no terrarium user.
        assert_refused(
            &bed,
            &["exec", BARE, "--", "true"],
            4,
            "no 'terrarium' user; use `trm exec --root",
        );
        assert_eq!(
            exec_out(&bed, &["--root", BARE, "--", "id", "-un"]),
            (0, "root".into())
        );
    });

    t.case("delete_is_confirmed_and_refuses_running", || {
        assert_refused(&bed, &["delete", BARE, "--yes"], 4, "is running");
        assert_refused(&bed, &["delete", BARE, "--force"], 2, "pass --yes");
        let dry = bed.trm_json(&["delete", BARE, "--force", "--dry-run"]);
        assert_eq!(dry["changed"], true);
        assert!(
            dry["detail"].as_str().unwrap().contains("0 snapshot"),
            "{dry}"
        );
        assert!(
            lxc(&["info", "--project", PROJECT, BARE]).status.success(),
            "dry run deleted it"
        );
        bed.trm_json(&["delete", BARE, "--force", "--yes"]);
        assert!(
            !lxc(&["info", "--project", PROJECT, BARE]).status.success(),
            "still there"
        );
    });

    t.case("missing_daemon_and_missing_tool_are_exit_69", || {
        let out = bed
            .tool("trm")
            .args(["list", "--format", "json"])
            .env("LXD_DIR", "/nonexistent-lxd")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(69),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stderr_json(&out)["message"]
            .as_str()
            .unwrap()
            .contains("daemon does not answer"));
        let out = bed
            .tool("trm")
            .args(["init", "--dry-run", "--format", "json"])
            .env("LXD_DIR", "/nonexistent-lxd")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(69));
        let out = bed
            .tool("trm")
            .args(["list", "--format", "json"])
            .env("TRM_LXC", "/nonexistent/lxc")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(69));
        assert_eq!(stderr_json(&out)["kind"], "tool_missing");
    });

    bed.teardown();
    t.finish()
}
