//! `trm mcp`: an MCP server on stdio (the official `rmcp` SDK) that lets
//! an agent drive its boxes with exactly the safe verbs: launch from an
//! allowed profile, exec as `terrarium`, read and write files under its
//! home, checkpoint, roll back, expose behind sign-on.
//!
//! Every verb is scoped to the boxes the owner started the server for;
//! a name outside them is refused before LXD is asked anything. The
//! destructive verbs (rollback discards the box's present state, expose
//! publishes it) run only when the owner allowed them at start
//! (`--allow-destructive`): an agent cannot confirm its own step.

use std::collections::BTreeSet;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::expose::labels::{self, Item};
use crate::expose::Restart;
use crate::files;
use crate::fs::OnBusy;
use crate::instances;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::snapshots;

/// The verbs that need the owner's say-so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Destructive {
    /// Return a box to an earlier snapshot (its present state is kept
    /// only as the safety snapshot).
    Rollback,
    /// Publish a box's port on a host name (always behind sign-on).
    Expose,
}

impl Destructive {
    /// The word `--allow-destructive` takes.
    fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// What the owner started the server for.
#[derive(Debug, Clone)]
pub struct Scope {
    pub project: String,
    /// The only boxes any verb may touch (or launch).
    pub boxes: BTreeSet<String>,
    /// The profiles `launch` may use; the first is its default.
    pub profiles: Vec<String>,
    pub allowed: BTreeSet<Destructive>,
    /// What every box `launch` makes gets, as `trm launch --idle/--ttl`:
    /// an agent cannot launch its way out of the owner's deadline.
    pub idle: Option<String>,
    pub ttl: Option<String>,
}

impl Scope {
    /// Check the owner's scope itself: valid names, at least one box.
    pub fn check(&self) -> Result<()> {
        if self.boxes.is_empty() {
            return Err(Error::Usage(
                "trm mcp needs at least one --box NAME: the boxes the agent may use".into(),
            ));
        }
        for b in &self.boxes {
            validate_instance_name(b)?;
        }
        if self.profiles.is_empty() {
            return Err(Error::Usage(
                "trm mcp needs at least one --launch-profile".into(),
            ));
        }
        instances::Lifetime::parse(self.idle.as_deref(), self.ttl.as_deref(), false)?;
        Ok(())
    }

    /// Refuse a box outside the scope, naming the ones inside.
    fn box_in_scope(&self, name: &str) -> Result<()> {
        if self.boxes.contains(name) {
            return Ok(());
        }
        Err(Error::NotAllowed(format!(
            "box '{name}' is not one this server may use (it may use: {})",
            self.boxes.iter().cloned().collect::<Vec<_>>().join(", ")
        )))
    }

    fn allows(&self, verb: Destructive) -> Result<()> {
        if self.allowed.contains(&verb) {
            return Ok(());
        }
        Err(Error::NotAllowed(format!(
            "{} is a destructive verb and the owner has not allowed it: \
             ask them to start `trm mcp` with --allow-destructive {}",
            verb.name(),
            verb.name()
        )))
    }

    fn profile(&self, asked: Option<&str>) -> Result<String> {
        match asked {
            None => Ok(self.profiles[0].clone()),
            Some(p) if self.profiles.iter().any(|x| x == p) => Ok(p.into()),
            Some(p) => Err(Error::NotAllowed(format!(
                "profile '{p}' is not one this server may launch with (it may use: {})",
                self.profiles.join(", ")
            ))),
        }
    }
}

/// The exposure an agent may ask for: https, always behind sign-on.
pub fn exposure(host: &str, port: u16, groups: &[String]) -> Result<Item> {
    let host = labels::normalize_host(host).map_err(Error::Usage)?;
    if port == 0 {
        return Err(Error::Usage("port must be 1-65535".into()));
    }
    for g in groups {
        if g.is_empty()
            || !g
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Usage(format!(
                "group '{g}': letters, digits, '-', '_' and '.' only"
            )));
        }
    }
    Ok(Item::Http {
        tls: true,
        host,
        cport: port,
        path: None,
        auth: Some(groups.to_vec()),
    })
}

/// Most of a file `read_file` returns, and `write_file` takes.
const FILE_LIMIT: usize = 1 << 20;
/// Most of each exec stream kept by default: enough to read, small
/// enough for a model's context.
const OUTPUT_DEFAULT: usize = 64 << 10;
/// An exec runs at most this long unless asked (and never over a day).
const EXEC_TIMEOUT_DEFAULT: u64 = 600;
const EXEC_TIMEOUT_MAX: u64 = 86_400;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxArgs {
    /// The box: one of those this server was started for (list_boxes).
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchArgs {
    /// The box to launch: one of this server's, not launched yet.
    pub name: String,
    /// One of the profiles the owner allowed [default: the first].
    pub profile: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// The box: one of this server's, running (see `start`).
    pub name: String,
    /// The program and its arguments, run as the `terrarium` user in its
    /// home (no shell unless you run one: ["sh", "-c", "..."]).
    pub command: Vec<String>,
    /// Snapshot the box first, so `rollback` can undo the command.
    #[serde(default)]
    pub checkpoint: bool,
    /// Killed after this many seconds (exit_code 124) [default: 600].
    pub timeout_seconds: Option<u64>,
    /// Bytes of stdout and of stderr kept, at most 1048576 [default: 65536].
    pub max_output_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// The box: one of this server's.
    pub name: String,
    /// A regular file below /home/terrarium (a relative path starts there).
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// The box: one of this server's.
    pub name: String,
    /// Below /home/terrarium (a relative path starts there); parent
    /// directories are made.
    pub path: String,
    /// The whole new content (UTF-8 text, at most 1 MiB).
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackArgs {
    /// The box: one of this server's.
    pub name: String,
    /// A snapshot name [default: the box's last checkpoint].
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposeArgs {
    /// The box: one of this server's.
    pub name: String,
    /// The public host name, e.g. app.example.com.
    pub host: String,
    /// The port the box's service listens on (1-65535).
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Only these sign-on groups [default: any signed-in user].
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FileRead {
    name: String,
    path: String,
    content: String,
    /// Bytes returned (at most 1 MiB).
    bytes: usize,
    /// The file is longer than what was returned.
    truncated: bool,
}

/// What `expose` did, and whether the route carries traffic now: an
/// agent must not take "label set" for "site up".
#[derive(Debug, Serialize)]
struct Exposed {
    #[serde(flatten)]
    change: crate::expose::Change,
    live: bool,
    /// Why it is not live (the route's state or problem, a failed
    /// Traefik restart), or null.
    why_not: Option<String>,
}

impl Exposed {
    fn judge(
        change: crate::expose::Change,
        routes: &[crate::expose::Route],
        restart: Restart,
        name: &str,
        item: &str,
    ) -> Exposed {
        use crate::expose::RouteState;
        let why_not = match routes.iter().find(|x| x.instance == name && x.item == item) {
            None => Some("no route was planned for it".to_string()),
            Some(x) if x.state != RouteState::Active => Some(format!(
                "the route is {}{}",
                serde_json::to_value(x.state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                x.problem
                    .as_ref()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default()
            )),
            Some(_) if restart == Restart::Failed => Some("Traefik did not restart".into()),
            Some(_) => None,
        };
        Exposed {
            change,
            live: why_not.is_none(),
            why_not,
        }
    }
}

#[derive(Debug, Serialize)]
struct Scoped {
    name: String,
    /// `None`: not launched yet.
    instance: Option<instances::Summary>,
}

/// One call as the owner's record tells it.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub tool: String,
    pub name: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
}

/// Where each call is told (the tool prints it; stdout is the protocol's).
pub type Audit = Arc<dyn Fn(&Call) + Send + Sync>;

#[derive(Clone)]
pub struct Server {
    scope: Arc<Scope>,
    audit: Audit,
    tool_router: ToolRouter<Server>,
}

/// A verb's answer: its data, or the error as Terrarium's error line
/// says it (`kind`, `message`), marked as a tool error for the agent.
fn answer<T: Serialize>(r: Result<T>) -> CallToolResult {
    match r.and_then(|v| serde_json::to_value(v).map_err(|e| Error::parse("the answer", e))) {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => CallToolResult::structured_error(serde_json::json!({
            "kind": e.kind(),
            "message": e.to_string(),
        })),
    }
}

impl Server {
    pub fn new(scope: Scope, audit: Audit) -> Server {
        Server {
            scope: Arc::new(scope),
            audit,
            tool_router: Self::tool_router(),
        }
    }

    fn audit(&self, tool: &str, name: Option<&str>, failed: Option<&Error>) {
        (self.audit)(&Call {
            tool: tool.into(),
            name: name.map(String::from),
            ok: failed.is_none(),
            error: failed.map(|e| e.to_string()),
        });
    }

    /// Run one verb's blocking work (LXD calls) off the protocol's thread,
    /// and tell the audit what was asked and how it ended: the owner's
    /// record of what the agent did.
    async fn run<T, F>(&self, tool: &str, name: Option<&str>, f: F) -> CallToolResult
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Scope, &Lxd) -> Result<T> + Send + 'static,
    {
        let scope = self.scope.clone();
        let r = tokio::task::spawn_blocking(move || {
            let lxd = Lxd::new(&scope.project)?;
            f(&scope, &lxd)
        })
        .await
        .unwrap_or_else(|e| Err(Error::Unavailable(format!("the verb failed: {e}"))));
        self.audit(tool, name, r.as_ref().err());
        answer(r)
    }

    /// As [`Server::run`], for a verb on one box in scope.
    async fn on_box<T, F>(&self, tool: &str, name: String, f: F) -> CallToolResult
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Scope, &Lxd, &str) -> Result<T> + Send + 'static,
    {
        if let Err(e) = self.scope.box_in_scope(&name) {
            self.audit(tool, Some(&name), Some(&e));
            return answer::<()>(Err(e));
        }
        let n = name.clone();
        self.run(tool, Some(&n), move |s, lxd| f(s, lxd, &name))
            .await
    }
}

#[tool_router]
impl Server {
    #[tool(
        description = "The boxes this server may use, with their state (null: not launched yet).",
        annotations(read_only_hint = true)
    )]
    async fn list_boxes(&self) -> CallToolResult {
        self.run("list_boxes", None, |scope, lxd| {
            scope
                .boxes
                .iter()
                .map(|name| match instances::info(lxd, name) {
                    Ok(i) => Ok(Scoped {
                        name: name.clone(),
                        instance: Some(i),
                    }),
                    Err(Error::NotFound { .. }) => Ok(Scoped {
                        name: name.clone(),
                        instance: None,
                    }),
                    Err(e) => Err(e),
                })
                .collect::<Result<Vec<_>>>()
                // Structured content is an object in MCP.
                .map(|boxes| serde_json::json!({ "boxes": boxes }))
        })
        .await
    }

    #[tool(
        description = "Launch one of this server's boxes (not yet launched) from an allowed \
                       profile; waits for its first boot to finish.",
        annotations(destructive_hint = false, open_world_hint = false)
    )]
    async fn launch(&self, Parameters(a): Parameters<LaunchArgs>) -> CallToolResult {
        let profile = a.profile;
        self.on_box("launch", a.name, move |scope, lxd, name| {
            let planned = instances::plan_launch(
                lxd,
                &instances::LaunchRequest {
                    name: name.into(),
                    profiles: vec![scope.profile(profile.as_deref())?],
                    idle: scope.idle.clone(),
                    ttl: scope.ttl.clone(),
                    ..Default::default()
                },
            )?;
            instances::launch_planned(lxd, &planned, Some(std::time::Duration::from_secs(600)))
        })
        .await
    }

    #[tool(
        description = "Start one of this server's boxes that is stopped (an idle stop, say) or \
                       frozen.",
        annotations(destructive_hint = false, idempotent_hint = true)
    )]
    async fn start(&self, Parameters(a): Parameters<BoxArgs>) -> CallToolResult {
        self.on_box("start", a.name, |_, lxd, name| {
            use instances::{apply_change, plan_change, Verb};
            let (change, _) = plan_change(lxd, name, Verb::Start, false)?;
            if change.changed {
                apply_change(lxd, &change, false)?;
            }
            Ok(change)
        })
        .await
    }

    #[tool(
        description = "Run a command in a box as the `terrarium` user (who has passwordless sudo \
                       in the agent profile: the box is the boundary). Returns exit_code (124: \
                       timed out), stdout and stderr (the first max_output_bytes of each; \
                       truncated says one was cut), duration_ms, and with checkpoint=true the \
                       snapshot rollback returns to. An error of kind outcome_unknown means LXD \
                       lost the command once started: it may have run, its result is unknown.",
        annotations(open_world_hint = true)
    )]
    async fn exec(&self, Parameters(a): Parameters<ExecArgs>) -> CallToolResult {
        let (command, checkpoint) = (a.command, a.checkpoint);
        let (timeout, limit) = (a.timeout_seconds, a.max_output_bytes);
        self.on_box("exec", a.name, move |_, lxd, name| {
            if command.is_empty() {
                return Err(Error::Usage("command is empty".into()));
            }
            let timeout = timeout.unwrap_or(EXEC_TIMEOUT_DEFAULT);
            if !(1..=EXEC_TIMEOUT_MAX).contains(&timeout) {
                return Err(Error::Usage(format!(
                    "timeout_seconds must be 1-{EXEC_TIMEOUT_MAX}"
                )));
            }
            let limit = limit.unwrap_or(OUTPUT_DEFAULT);
            if !(1..=instances::CAPTURE_LIMIT).contains(&limit) {
                return Err(Error::Usage(format!(
                    "max_output_bytes must be 1-{}",
                    instances::CAPTURE_LIMIT
                )));
            }
            let how = instances::Capture {
                root: false,
                checkpoint,
                limit,
                timeout: Some(std::time::Duration::from_secs(timeout)),
            };
            instances::exec_captured(lxd, name, &command, how)
        })
        .await
    }

    #[tool(
        description = "Read a regular text file below /home/terrarium in a box, as `terrarium` \
                       (links are followed as that user may): at most 1 MiB, truncated says \
                       when the file is longer.",
        annotations(read_only_hint = true)
    )]
    async fn read_file(&self, Parameters(a): Parameters<ReadArgs>) -> CallToolResult {
        let path = a.path;
        self.on_box("read_file", a.name, move |_, lxd, name| {
            let path = files::home_path(&path)?;
            let (data, truncated) = files::read(lxd, name, &path, FILE_LIMIT)?;
            let bytes = data.len();
            let content = String::from_utf8(data).map_err(|_| {
                Error::Usage(format!(
                    "{path} is not UTF-8 text; read it with exec (e.g. base64)"
                ))
            })?;
            Ok(FileRead {
                name: name.into(),
                path,
                content,
                bytes,
                truncated,
            })
        })
        .await
    }

    #[tool(
        description = "Write a text file (at most 1 MiB) below /home/terrarium in a box, as \
                       `terrarium`, replacing it if it exists.",
        annotations(destructive_hint = false)
    )]
    async fn write_file(&self, Parameters(a): Parameters<WriteArgs>) -> CallToolResult {
        let (path, content) = (a.path, a.content);
        self.on_box("write_file", a.name, move |_, lxd, name| {
            let path = files::home_path(&path)?;
            if content.len() > FILE_LIMIT {
                return Err(Error::Usage(format!(
                    "content is {} bytes; write_file takes at most {FILE_LIMIT}",
                    content.len()
                )));
            }
            let bytes = files::write(lxd, name, &path, content.as_bytes())?;
            Ok(files::Copied {
                from: "content".into(),
                to: format!("{name}:{path}"),
                bytes,
            })
        })
        .await
    }

    #[tool(
        description = "Snapshot a box now, as a checkpoint `rollback` returns to.",
        annotations(destructive_hint = false, idempotent_hint = false)
    )]
    async fn checkpoint(&self, Parameters(a): Parameters<BoxArgs>) -> CallToolResult {
        self.on_box("checkpoint", a.name, |_, lxd, name| {
            snapshots::checkpoint(lxd, name, &[], OnBusy::Fail)
        })
        .await
    }

    #[tool(
        description = "Return a box to its last checkpoint (or a named snapshot). Its present \
                       state is kept as a safety snapshot. Needs the owner's allowance.",
        annotations(destructive_hint = true)
    )]
    async fn rollback(&self, Parameters(a): Parameters<RollbackArgs>) -> CallToolResult {
        let to = a.to;
        self.on_box("rollback", a.name, move |scope, lxd, name| {
            scope.allows(Destructive::Rollback)?;
            let to = to.as_deref().unwrap_or(snapshots::LAST_CHECKPOINT);
            let plan = snapshots::rollback_plan(lxd, name, Some(to), false)?;
            snapshots::rollback_apply(lxd, &plan, OnBusy::Fail)
        })
        .await
    }

    #[tool(
        description = "Publish a box's port at https://HOST behind the host's sign-on (never \
                       public without it). Needs the owner's allowance.",
        annotations(destructive_hint = true, open_world_hint = true)
    )]
    async fn expose(&self, Parameters(a): Parameters<ExposeArgs>) -> CallToolResult {
        let (host, port, groups) = (a.host, a.port, a.groups);
        self.on_box("expose", a.name, move |scope, lxd, name| {
            scope.allows(Destructive::Expose)?;
            let item = exposure(&host, port, &groups)?;
            let settings = crate::settings::Settings::load_or_default()?;
            let shown = item.to_string();
            let change = crate::expose::add(lxd, &settings, name, item, false)?;
            // Nothing to change means nothing was synced: ask the planner.
            let routes = match &change.sync {
                Some(r) => (r.routes.clone(), r.restart),
                None => (
                    crate::expose::list(lxd, &settings)?.routes,
                    Restart::NotNeeded,
                ),
            };
            Ok(Exposed::judge(change, &routes.0, routes.1, name, &shown))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("trm", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions(&self.scope))
    }
}

fn instructions(scope: &Scope) -> String {
    let list = |v: Vec<String>| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    format!(
        "Terrarium sandboxes. You may use these boxes: {}. Commands run as the `terrarium` \
         user (passwordless sudo in the agent profile: the box is the boundary, not the \
         user); file tools read and write below /home/terrarium. Checkpoint before a risky \
         command (exec with checkpoint=true) so rollback can undo it. Pass secrets as files, \
         never on a command line. Destructive verbs the owner allowed: {}.",
        list(scope.boxes.iter().cloned().collect()),
        list(scope.allowed.iter().map(|d| d.name()).collect()),
    )
}

/// Serve MCP on stdin/stdout until the client goes away.
pub fn serve(scope: Scope, audit: Audit) -> Result<()> {
    scope.check()?;
    // An owner's typo is said now, not at the agent's first launch.
    let lxd = Lxd::new(&scope.project)?;
    for p in &scope.profiles {
        if lxd.profile(p)?.is_none() {
            return Err(Error::NotFound {
                kind: "profile",
                name: p.clone(),
            });
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the MCP server", e))?;
    rt.block_on(async move {
        let running = Server::new(scope, audit)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Unavailable(format!("MCP session did not start: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::Unavailable(format!("MCP session ended badly: {e}")))?;
        Ok::<(), Error>(())
    })?;
    // The client is gone: a call still running (its command is bounded by
    // its timeout inside the box) is not waited for.
    rt.shutdown_background();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            project: "p".into(),
            boxes: ["a1".to_string(), "a2".to_string()].into(),
            profiles: vec!["agent".into()],
            allowed: [Destructive::Rollback].into(),
            idle: None,
            ttl: Some("8h".into()),
        }
    }

    #[test]
    fn verbs_stay_inside_the_owner_scope() {
        let s = scope();
        assert!(s.box_in_scope("a1").is_ok());
        let e = s.box_in_scope("web").unwrap_err().to_string();
        assert!(e.contains("'web'") && e.contains("a1, a2"), "{e}");
        assert_eq!(s.profile(None).unwrap(), "agent");
        assert!(s.profile(Some("dev")).is_err());
        assert!(s.allows(Destructive::Rollback).is_ok());
        let e = s.allows(Destructive::Expose).unwrap_err().to_string();
        assert!(e.contains("--allow-destructive expose"), "{e}");
        let empty = Scope {
            boxes: BTreeSet::new(),
            ..scope()
        };
        assert!(empty.check().is_err());
        let bad_ttl = Scope {
            ttl: Some("forever".into()),
            ..scope()
        };
        assert!(bad_ttl.check().is_err());
        let said = instructions(&s);
        assert!(
            said.contains("a1, a2") && said.contains("allowed: rollback."),
            "{said}"
        );
    }

    #[test]
    fn expose_says_whether_the_route_is_live() {
        use crate::expose::{Change, Route, RouteState};
        let change = || Change {
            instance: "a1".into(),
            label_before: String::new(),
            label_after: "https://a.example.test@auth".into(),
            changed: true,
            sync: None,
        };
        let route = |state, problem: Option<&str>| Route {
            instance: "a1".into(),
            item: "https://a.example.test@auth".into(),
            public: "https://a.example.test".into(),
            backend: None,
            state,
            auth: Some(vec![]),
            problem: problem.map(String::from),
            location: None,
        };
        let item = "https://a.example.test@auth";
        let live = Exposed::judge(
            change(),
            &[route(RouteState::Active, None)],
            Restart::Ok,
            "a1",
            item,
        );
        assert!(live.live && live.why_not.is_none());
        let waiting = Exposed::judge(
            change(),
            &[route(RouteState::NoAddress, None)],
            Restart::NotNeeded,
            "a1",
            item,
        );
        assert_eq!(waiting.why_not.as_deref(), Some("the route is no_address"));
        let down = Exposed::judge(
            change(),
            &[route(RouteState::Active, None)],
            Restart::Failed,
            "a1",
            item,
        );
        assert!(!down.live, "a failed restart is not live");
        assert!(!Exposed::judge(change(), &[], Restart::Ok, "a1", item).live);
    }

    #[test]
    fn an_agent_can_only_expose_behind_sign_on() {
        let i = exposure("App.Example.com", 8080, &[]).unwrap();
        assert_eq!(i.to_string(), "https://app.example.com:8080@auth");
        let i = exposure("app.example.com", 80, &["devs".into()]).unwrap();
        assert_eq!(i.to_string(), "https://app.example.com@auth:devs");
        assert!(exposure("app.example.com/x", 80, &[]).is_err());
        assert!(exposure("app.example.com", 0, &[]).is_err());
        assert!(exposure("app.example.com", 80, &["a,b".into()]).is_err());
        assert!(exposure("app.example.com", 80, &["".into()]).is_err());
    }
}
