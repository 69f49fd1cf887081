//! A real browser for tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver) with `fantoccini`, behind a small blocking API
//! (a tokio current-thread runtime owned by the [`Browser`]).
//!
//! Nothing leaves the machine: Chromium resolves only the hosts a test
//! names (to 127.0.0.1), plus `localhost` and `127.0.0.1` themselves;
//! every other name fails with `net::ERR_NAME_NOT_RESOLVED`
//! (`--host-resolver-rules`). Background networking, component updates,
//! sync, QUIC, pings, extensions and the Debian wrapper's Google API keys
//! are off: the real binary, `/usr/lib/chromium/chromium`, is started, not
//! the `/usr/bin/chromium` wrapper script that adds flags and keys from
//! `/etc/chromium.d`.
//!
//! Chromium runs as root here, hence `--no-sandbox`. Each browser has a
//! fresh profile (`--user-data-dir` in a temp dir) and so no cookies from
//! another test. TLS errors are ignored (`--ignore-certificate-errors`,
//! `acceptInsecureCerts`): a test's own certificates are self-made.
//!
//! chromedriver runs in a process group of its own, with Chromium below
//! it; [`Browser::quit`] (and drop) ends the WebDriver session, then kills
//! that group by its id, so no Chromium outlives its test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A cookie as the browser holds it (WebDriver's view: HttpOnly ones too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// As the browser reports it: a host-only cookie has the bare host
    /// (`gate.test`), a domain cookie a leading dot (`.gate.test`).
    pub domain: Option<String>,
    pub path: Option<String>,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, when the cookie says.
    pub same_site: Option<String>,
    /// Expiry as seconds since the epoch; `None` for a session cookie.
    pub expiry: Option<i64>,
}

fn chromium_args(hosts: &[&str], profile: &std::path::Path) -> Vec<String> {
    let mut rules: Vec<String> = hosts.iter().map(|h| format!("MAP {h} 127.0.0.1")).collect();
    rules.push("MAP * ~NOTFOUND".into());
    rules.push("EXCLUDE localhost".into());
    rules.push("EXCLUDE 127.0.0.1".into());
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-pings",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-dev-shm-usage",
        "--password-store=basic",
        "--ignore-certificate-errors",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--user-data-dir={}", profile.display()),
        format!("--host-resolver-rules={}", rules.join(", ")),
    ])
    .collect()
}

/// W3C "Add Cookie" with only the fields given: fantoccini's own sends
/// `"domain": null` for a host-only cookie, which chromedriver refuses.
#[derive(Debug)]
struct AddCookie(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for AddCookie {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/cookie", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// Headless Chromium under chromedriver, one WebDriver session.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Option<Child>,
    /// chromedriver's port on 127.0.0.1.
    pub port: u16,
    /// The hosts this browser resolves (to 127.0.0.1).
    pub hosts: Vec<String>,
    profile: tempfile::TempDir,
    log: tempfile::NamedTempFile,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Browser {
    /// Start chromedriver on a free loopback port and a Chromium session
    /// that resolves each of `hosts` to 127.0.0.1 and nothing else.
    pub fn start(hosts: &[&str]) -> Browser {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(p).exists(),
                "{p} is missing: run scripts/setup-host.sh (Debian's chromium, chromium-driver)"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let port = crate::free_port();
        let profile = tempfile::Builder::new()
            .prefix("trm-chromium-")
            .tempdir()
            .unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.path().display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let mut b = Browser {
            rt,
            client: None,
            driver: Some(driver),
            port,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            profile,
            log,
        };
        crate::wait_for_port(port, 20, "chromedriver");
        let caps: serde_json::Map<String, Value> = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 30000, "script": 30000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": chromium_args(hosts, b.profile.path()),
            },
        })
        .as_object()
        .unwrap()
        .clone();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        let client =
            b.rt.block_on(async {
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&url)
                    .await
            })
            .unwrap_or_else(|e| {
                panic!(
                    "start a Chromium session: {e}\nchromedriver log:\n{}",
                    b.log_text()
                )
            });
        b.client = Some(client);
        b
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser has quit")
    }

    /// Navigate and wait for the page to load; Err with the browser's
    /// reason (e.g. `net::ERR_NAME_NOT_RESOLVED`) when it cannot.
    pub fn try_goto(&self, url: &str) -> Result<(), String> {
        self.rt.block_on(self.client().goto(url)).map_err(err)
    }

    pub fn goto(&self, url: &str) {
        self.try_goto(url)
            .unwrap_or_else(|e| panic!("browser: open {url}: {e}"));
    }

    /// The address bar: where redirects ended.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .expect("browser: current url")
            .to_string()
    }

    pub fn title(&self) -> String {
        self.rt
            .block_on(self.client().title())
            .expect("browser: title")
    }

    /// The current DOM, serialised.
    pub fn source(&self) -> String {
        self.rt
            .block_on(self.client().source())
            .expect("browser: page source")
    }

    /// The body's visible text; empty while a navigation has no body yet,
    /// or replaced the body between finding it and reading it (asked in
    /// the middle of a redirect, as `eventually` does).
    pub fn text(&self) -> String {
        match self
            .rt
            .block_on(async { self.client().find(Locator::Css("body")).await?.text().await })
        {
            Ok(t) => t,
            Err(e) if e.is_no_such_element() || e.is_stale_element_reference() => String::new(),
            Err(e) => panic!("browser: body text: {e:?}"),
        }
    }

    /// Whether an element matches `css` right now.
    pub fn exists(&self, css: &str) -> bool {
        self.rt
            .block_on(self.client().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Wait up to `secs` for an element matching `css`.
    pub fn wait_for(&self, css: &str, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        while !self.exists(css) {
            assert!(
                Instant::now() < until,
                "browser: no {css} within {secs}s at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait up to `secs` until the address bar satisfies `f`; the URL.
    pub fn wait_url(&self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let u = self.url();
            if f(&u) {
                return u;
            }
            assert!(
                Instant::now() < until,
                "browser: waited {secs}s for {what}; at {u}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Replace the value of the field matching `css`.
    pub fn fill(&self, css: &str, value: &str) {
        self.rt
            .block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.clear().await?;
                e.send_keys(value).await
            })
            .unwrap_or_else(|e| panic!("browser: fill {css}: {e}"));
    }

    /// Click the element matching `css` (a link, a submit button).
    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("browser: click {css}: {e}"));
    }

    /// Submit the form matching `css` by clicking its first submit button
    /// (so the button's own name=value goes with it).
    pub fn submit(&self, css: &str) {
        self.rt
            .block_on(async { self.client().form(Locator::Css(css)).await?.submit().await })
            .unwrap_or_else(|e| panic!("browser: submit {css}: {e}"));
    }

    /// Run JavaScript in the page (`return ...` gives a value).
    pub fn execute(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("browser: script: {e}"))
    }

    /// The cookies the browser would send to the current page (HttpOnly
    /// ones included).
    pub fn cookies(&self) -> Vec<Cookie> {
        let all = self
            .rt
            .block_on(self.client().get_all_cookies())
            .expect("browser: cookies");
        all.into_iter()
            .map(|c| Cookie {
                name: c.name().to_string(),
                value: c.value().to_string(),
                domain: c.domain().map(String::from),
                path: c.path().map(String::from),
                secure: c.secure().unwrap_or(false),
                http_only: c.http_only().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
                expiry: c
                    .expires()
                    .and_then(|e| e.datetime())
                    .map(|d| d.unix_timestamp()),
            })
            .collect()
    }

    /// The named cookie of the current page, if the browser has it.
    pub fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Set a cookie for the current page's site (WebDriver can only set
    /// cookies for the document it is on: navigate there first). Without
    /// `domain` it is a host-only cookie of the current page's host. A
    /// missing `same_site` is sent as `Lax` (Chromium refuses `None` on a
    /// cookie that is not `secure`).
    pub fn add_cookie(&self, c: &Cookie) {
        let mut cookie = serde_json::Map::new();
        cookie.insert("name".into(), json!(c.name));
        cookie.insert("value".into(), json!(c.value));
        cookie.insert("path".into(), json!(c.path.as_deref().unwrap_or("/")));
        if let Some(d) = &c.domain {
            cookie.insert("domain".into(), json!(d));
        }
        cookie.insert("secure".into(), json!(c.secure));
        cookie.insert("httpOnly".into(), json!(c.http_only));
        cookie.insert(
            "sameSite".into(),
            json!(c.same_site.as_deref().unwrap_or("Lax")),
        );
        if let Some(t) = c.expiry {
            cookie.insert("expiry".into(), json!(t));
        }
        let body = json!({ "cookie": cookie });
        self.rt
            .block_on(self.client().issue_cmd(AddCookie(body.clone())))
            .unwrap_or_else(|e| panic!("browser: add cookie {body}: {e}"));
    }

    /// Delete every cookie of the current page's site.
    pub fn delete_cookies(&self) {
        self.rt
            .block_on(self.client().delete_all_cookies())
            .expect("browser: delete cookies");
    }

    /// The profile directory (the browser's state, on disk).
    pub fn profile_dir(&self) -> PathBuf {
        self.profile.path().to_path_buf()
    }

    /// chromedriver's log so far (for a failing test to show).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// End the session (Chromium closes), then kill chromedriver's
    /// process group (chromedriver and anything of Chromium left) by its
    /// id. Idempotent; drop does it too.
    pub fn quit(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        if let Some(mut d) = self.driver.take() {
            // Its own group (process_group(0)): the group id is its pid.
            let group = nix::unistd::Pid::from_raw(d.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.quit();
    }
}
