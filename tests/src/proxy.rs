//! A real ACME CA for tests, on loopback only: Debian's pebble with its
//! mock DNS server (every name is 127.0.0.1), a throwaway CA for pebble's
//! own API, and HTTP requests through Traefik that resolve only the
//! test's hosts to loopback and check the chain against pebble's root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Ports one suite's pebble and Traefik use (distinct per suite, and away
/// from a host Traefik on 80/443/8082).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub api: u16,
    pub acme: u16,
    pub acme_mgmt: u16,
    pub dns: u16,
}

pub struct Pebble {
    pub dir: PathBuf,
    pub ports: Ports,
    children: Vec<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a setup command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pebble {
    /// Start pebble-challtestsrv and pebble below `dir`; HTTP-01
    /// challenges are asked on `ports.http`, where Traefik's `web` listens.
    pub fn start(dir: &Path, ports: Ports) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        let p = |f: &str| dir.join(f);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem"))
            .args(["-days", "2", "-subj", "/CN=terrarium-test-pebble-ca"]));
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(p("key.pem"))
            .arg("-out")
            .arg(p("req.csr"))
            .args(["-subj", "/CN=127.0.0.1"]));
        std::fs::write(p("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(p("req.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .args(["-CAcreateserial", "-days", "2", "-out"])
            .arg(p("cert.pem"))
            .arg("-extfile")
            .arg(p("ext")));
        let cfg = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.acme),
            "managementListenAddress": format!("127.0.0.1:{}", ports.acme_mgmt),
            "certificate": p("cert.pem"),
            "privateKey": p("key.pem"),
            "httpPort": ports.http,
            "tlsPort": ports.https,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(p("pebble.json"), cfg.to_string()).unwrap();
        // Traefik runs as its own user and must read the CA bundle.
        for f in ["ca.pem", "cert.pem"] {
            run(Command::new("chmod").arg("0644").arg(p(f)));
        }
        let log = |f: &str| std::fs::File::create(p(f)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", ports.dns)])
            .args(["-http01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", ports.dns + 2)])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian's pebble; scripts/setup-host.sh)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(p("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", ports.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble");
        let me = Pebble {
            dir: dir.to_path_buf(),
            ports,
            children: vec![dns, pebble],
        };
        // pebble makes a new root each start: fetch it once it answers.
        crate::e2e::eventually("pebble to serve its root", 30, || {
            let out = Command::new("curl")
                .args(["-sf", "-m", "2", "--cacert"])
                .arg(me.ca())
                .arg(format!("https://127.0.0.1:{}/roots/0", ports.acme_mgmt))
                .arg("-o")
                .arg(me.root())
                .status()
                .unwrap();
            out.success()
        });
        me
    }

    /// The throwaway CA of pebble's own API (Traefik's LEGO_CA_CERTIFICATES).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The root pebble signs issued certificates with.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.pem")
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.ports.acme)
    }

    /// One request through Traefik, resolving `host` to loopback only.
    /// HTTPS is verified against pebble's root (no `-k`, ever).
    pub fn get(&self, scheme: &str, host: &str, path: &str) -> Reply {
        let port = if scheme == "https" {
            self.ports.https
        } else {
            self.ports.http
        };
        let out = Command::new("curl")
            .args([
                "-s",
                "-m",
                "5",
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{redirect_url}",
            ])
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(self.root())
            .arg(format!("{scheme}://{host}:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
        let (code, redirect) = last.split_once(' ').unwrap_or((last, ""));
        Reply {
            curl_exit: out.status.code().unwrap_or(-1),
            status: code.parse().unwrap_or(0),
            body: body.to_string(),
            redirect: redirect.trim().to_string(),
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    /// curl's exit code: 0, or 60 when the certificate does not verify.
    pub curl_exit: i32,
    pub status: u16,
    pub body: String,
    pub redirect: String,
}

impl Reply {
    pub fn ok_from(&self, needle: &str) -> bool {
        self.curl_exit == 0 && self.status == 200 && self.body.contains(needle)
    }
}
