//! The pure planner: sources (instances with their labels and host-given
//! addresses) and a `Context` in, the files, entrypoints, firewall rules,
//! route rows and claims the host should have out. Reads nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::labels::{self, Item};
use super::{claims, Context};
use crate::error::{Error, Result};
use crate::output::Row;
use crate::settings::ExposeSettings;
use crate::traefik::{self, EntryPoint};
use crate::ufw::{self, PortRule};

/// The domain public hosts hang off: the configured root domain
/// (lowercased, checked as a DNS name, so `Example.com` cannot slip past
/// the management hosts), else `<dashed public IPv4>.traefik.me` (a
/// wildcard DNS service). With neither a root domain nor a public
/// address, there is nothing to hang hosts off: refuse, rather than plan
/// management hosts on some other machine's name.
pub fn base_domain(e: &ExposeSettings) -> Result<String> {
    base_domain_of(e, crate::net::default_source_ipv4)
}

fn base_domain_of(
    e: &ExposeSettings,
    default_source: impl Fn() -> Option<std::net::Ipv4Addr>,
) -> Result<String> {
    if !e.root_domain.is_empty() {
        return labels::normalize_host(e.root_domain.trim_end_matches('.'))
            .map_err(|why| Error::Usage(format!("expose.root_domain: {why}")));
    }
    let ip = if e.public_ipv4.is_empty() {
        default_source().ok_or_else(|| {
            Error::Usage(
                "no expose.root_domain is set and this host has no default route to take a \
                 public address from: set expose.root_domain (or expose.public_ipv4) in the settings"
                    .into(),
            )
        })?
    } else {
        e.public_ipv4.parse().map_err(|_| {
            Error::Usage(format!(
                "expose.public_ipv4 '{}' is not an IPv4 address",
                e.public_ipv4
            ))
        })?
    };
    if ip.is_loopback() || ip.is_unspecified() || ip.is_link_local() {
        return Err(Error::Usage(format!(
            "expose.public_ipv4 {ip} is not a public address: set expose.root_domain"
        )));
    }
    Ok(format!("{}.traefik.me", ip.to_string().replace('.', "-")))
}

/// One instance as exposure sees it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub created_at: String,
    pub running: bool,
    /// The backend address, as the host assigned it (never as reported).
    pub ipv4: Option<String>,
    /// Why the instance may not receive traffic at all (its NIC is not
    /// protected against spoofing, or the host's records disagree).
    pub unroutable: Option<String>,
    pub label: String,
    /// The cluster member it lives on (None on a lone server).
    pub location: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Carrying traffic to the instance.
    Active,
    /// The instance is stopped: no traffic, claim held.
    Stopped,
    /// Running without an IPv4 on its LXD NIC yet: no traffic, claim held.
    NoAddress,
    /// Another instance holds the host/path or port.
    Conflict,
    /// Refused (management host, reserved port, invalid item or file).
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub instance: String,
    pub item: String,
    pub public: String,
    pub backend: Option<String>,
    pub state: RouteState,
    pub auth: Option<Vec<String>>,
    pub problem: Option<String>,
    /// The cluster member the instance lives on (None on a lone server).
    pub location: Option<String>,
}

impl Row for Route {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "PUBLIC", "BACKEND", "STATE", "AUTH", "PROBLEM"]
    }

    fn cells(&self) -> Vec<String> {
        let state = serde_json::to_value(self.state).expect("state");
        vec![
            self.instance.clone(),
            self.public.clone(),
            self.backend.clone().unwrap_or_default(),
            state.as_str().unwrap_or_default().replace('_', " "),
            match &self.auth {
                None => String::new(),
                Some(g) if g.is_empty() => "sso".into(),
                Some(g) => format!("sso:{}", g.join(",")),
            },
            self.problem.clone().unwrap_or_default(),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub instance: String,
    pub item: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Dynamic files to have, by file name.
    pub files: BTreeMap<String, Value>,
    /// Files whose new content failed validation: left as they are.
    pub keep: BTreeSet<String>,
    pub entrypoints: BTreeSet<EntryPoint>,
    pub rules: BTreeSet<PortRule>,
    pub routes: Vec<Route>,
    pub problems: Vec<Problem>,
    /// The LXD project planned for.
    pub project: String,
    /// Every recorded claim after this plan (`claims::settle`).
    pub claims: Vec<claims::Record>,
}

fn public_address(item: &Item) -> String {
    match item {
        Item::Http {
            tls, host, path, ..
        } => format!(
            "{}://{host}{}",
            if *tls { "https" } else { "http" },
            path.as_deref().unwrap_or("")
        ),
        Item::Tcp { host_port, .. } => format!("tcp://:{host_port}"),
        Item::Udp { host_port, .. } => format!("udp://:{host_port}"),
        Item::Share { host, path } => format!("share://{host}{path}"),
    }
}

fn backend(item: &Item, ip: &str) -> String {
    match item {
        Item::Http { cport, .. } => format!("http://{ip}:{cport}"),
        Item::Tcp { cport, .. } | Item::Udp { cport, .. } => format!("{ip}:{cport}"),
        Item::Share { .. } => String::new(),
    }
}

/// Desired state from the labels and the recorded claims (`ctx.claims`):
/// each contested host, shared path or raw port goes to whoever held it
/// first; claims first asked for in the same sync go to the instance
/// created first, so a copy never steals its original's routes. Only
/// `ctx.project`'s files and firewall rules are planned; the other
/// projects' claims stand, and their raw ports stay entrypoints.
pub fn plan(sources: &[Source], ctx: &Context) -> Plan {
    let mut order: Vec<&Source> = sources
        .iter()
        .filter(|s| !s.label.trim().is_empty())
        .collect();
    order.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
    let mut plan = Plan::default();
    // Per instance, its items in label order with the policy's verdict.
    type Judged = Vec<(Item, Option<(RouteState, String)>)>;
    let mut judged: Vec<(&Source, Judged)> = Vec::new();
    for src in order {
        let (items, errors) = labels::parse(&src.label);
        for e in errors {
            plan.problems.push(Problem {
                instance: src.name.clone(),
                item: e.item.clone(),
                message: e.message.clone(),
            });
            plan.routes.push(Route {
                instance: src.name.clone(),
                item: e.item,
                public: String::new(),
                backend: None,
                state: RouteState::Refused,
                auth: None,
                problem: Some(e.message),
                location: src.location.clone(),
            });
        }
        let mut mine: Judged = Vec::new();
        for item in items {
            // One route per host and path, one backend per port: a second
            // item for the same claim would silently replace the first.
            let twin = mine
                .iter()
                .find(|(a, ok)| ok.is_none() && a.claim() == item.claim())
                .map(|(a, _)| a);
            let refusal = match (ctx.refusal(&item), twin) {
                (Some(why), _) => Some((RouteState::Refused, why)),
                (None, Some(first)) if *first == item => continue,
                (None, Some(first)) => Some((
                    RouteState::Conflict,
                    format!(
                        "{} is already routed by `{first}` of this instance",
                        item.claim()
                    ),
                )),
                (None, None) => None,
            };
            mine.push((item, refusal));
        }
        judged.push((src, mine));
    }
    let wants: Vec<(&str, Vec<Item>)> = judged
        .iter()
        .map(|(src, items)| {
            let ok = items.iter().filter(|(_, r)| r.is_none());
            (src.name.as_str(), ok.map(|(i, _)| i.clone()).collect())
        })
        .collect();
    let settled = claims::settle(&ctx.project, &wants, &ctx.claims, &ctx.now);
    for ((src, items), verdicts) in judged.into_iter().zip(settled.refusals) {
        let mut verdicts = verdicts.into_iter();
        let mut accepted: Vec<Item> = Vec::new();
        for (item, policy) in items {
            let refusal = match policy {
                Some(r) => Some(r),
                None => verdicts
                    .next()
                    .flatten()
                    .map(|why| (RouteState::Conflict, why)),
            };
            if let Some((state, message)) = refusal {
                plan.problems.push(Problem {
                    instance: src.name.clone(),
                    item: item.to_string(),
                    message: message.clone(),
                });
                plan.routes.push(route(src, &item, state, Some(message)));
                continue;
            }
            accepted.push(item);
        }
        plan_instance(&mut plan, src, &accepted, ctx);
    }
    // Another project's raw ports keep their entrypoints in the one static file.
    for r in settled.records.iter().filter(|r| r.project != ctx.project) {
        match r.held {
            claims::Held::Tcp { port } => plan.entrypoints.insert(EntryPoint { udp: false, port }),
            claims::Held::Udp { port } => plan.entrypoints.insert(EntryPoint { udp: true, port }),
            _ => false,
        };
    }
    plan.claims = settled.records;
    plan.project = ctx.project.clone();
    plan
}

/// One instance's file, entrypoints, firewall rules and route rows, from
/// the items it may have.
fn plan_instance(plan: &mut Plan, src: &Source, accepted: &[Item], ctx: &Context) {
    for (udp, port) in accepted.iter().filter_map(Item::host_port) {
        plan.entrypoints.insert(EntryPoint { udp, port });
        plan.rules.insert(PortRule {
            port,
            udp,
            comment: ufw::expose_comment(&ctx.project, &src.name),
        });
    }
    if accepted.is_empty() {
        return;
    }
    let mut problem = None;
    let state = match (&src.ipv4, src.running, &src.unroutable) {
        (_, false, _) => RouteState::Stopped,
        (_, true, Some(why)) => {
            let message = format!("not routed: {why}");
            plan.problems.push(Problem {
                instance: src.name.clone(),
                item: String::new(),
                message: message.clone(),
            });
            problem = Some(message);
            RouteState::Refused
        }
        (None, true, None) => RouteState::NoAddress,
        (Some(_), true, None) => RouteState::Active,
    };
    // A stopped or unroutable instance keeps routes that answer 502, so
    // its hosts and paths never fall through to another tenant's.
    let backend = match state {
        RouteState::Active => src.ipv4.as_deref(),
        _ => None,
    };
    // A label of shares alone holds its hosts and routes nothing.
    if accepted.iter().any(|i| !matches!(i, Item::Share { .. })) {
        let owner = traefik::owner_id(&ctx.project, &src.name);
        let file = traefik::instance_config(&owner, backend, accepted, &ctx.route);
        let name = traefik::file_name(&ctx.project, &src.name);
        match traefik::validate_dynamic(&file) {
            Ok(()) => {
                plan.files.insert(name, file);
            }
            Err(errs) => {
                let message = format!("generated file does not validate: {}", errs.join("; "));
                plan.problems.push(Problem {
                    instance: src.name.clone(),
                    item: String::new(),
                    message: message.clone(),
                });
                plan.keep.insert(name);
                problem = Some(message);
            }
        }
    }
    for item in accepted {
        let st = if problem.is_some() {
            RouteState::Refused
        } else {
            state
        };
        plan.routes.push(route(src, item, st, problem.clone()));
    }
}

fn route(src: &Source, item: &Item, state: RouteState, problem: Option<String>) -> Route {
    Route {
        instance: src.name.clone(),
        item: item.to_string(),
        public: public_address(item),
        backend: match (state, &src.ipv4, item) {
            (_, _, Item::Share { .. }) => None,
            (RouteState::Active, Some(ip), _) => Some(backend(item, ip)),
            _ => None,
        },
        state,
        auth: match item {
            Item::Http { auth, .. } => auth.clone(),
            _ => None,
        },
        location: src.location.clone(),
        problem,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::settings::Settings;

    pub(in crate::expose) fn ctx() -> Context {
        let mut s = Settings::default();
        s.expose.root_domain = "example.com".into();
        Context::from_settings(&s).unwrap()
    }

    fn fname(instance: &str) -> String {
        traefik::file_name("default", instance)
    }

    pub(in crate::expose) fn src(name: &str, created: &str, label: &str) -> Source {
        Source {
            name: name.into(),
            created_at: created.into(),
            running: true,
            ipv4: Some("10.100.0.9".into()),
            unroutable: None,
            label: label.into(),
            location: None,
        }
    }

    #[test]
    fn the_base_domain_is_checked_and_never_guessed() {
        let route = || Some(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let no_route = || None;
        let e = |root: &str, ip: &str| ExposeSettings {
            root_domain: root.into(),
            public_ipv4: ip.into(),
            ..ExposeSettings::default()
        };
        for (root, ip, has_route, want) in [
            ("Example.COM", "", true, Ok("example.com")),
            ("example.com.", "", true, Ok("example.com")),
            (
                "exa mple.com",
                "",
                true,
                Err("expose.root_domain: host 'exa mple.com'"),
            ),
            ("-x.com", "", true, Err("expose.root_domain")),
            ("", "198.51.100.4", false, Ok("198-51-100-4.traefik.me")),
            ("", "", true, Ok("203-0-113-7.traefik.me")),
            ("", "", false, Err("no expose.root_domain is set")),
            ("", "127.0.0.1", true, Err("not a public address")),
            ("", "nope", true, Err("is not an IPv4 address")),
        ] {
            let got = if has_route {
                base_domain_of(&e(root, ip), route)
            } else {
                base_domain_of(&e(root, ip), no_route)
            };
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w),
                (Err(w), Err(g)) => assert!(g.to_string().contains(w), "{root:?}/{ip:?}: {g}"),
                (w, g) => panic!("{root:?}/{ip:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn uppercase_root_domain_still_guards_the_management_hosts() {
        let mut s = Settings::default();
        s.expose.root_domain = "Example.com".into();
        let ctx = Context::from_settings(&s).unwrap();
        let p = plan(&[src("a", "1", "https://manage.example.com:3000")], &ctx);
        assert_eq!(p.routes[0].state, RouteState::Refused, "{:?}", p.routes);
    }

    #[test]
    fn an_unroutable_running_instance_holds_its_claims_without_a_backend() {
        let mut a = src("a", "1", "http://h.example.com:3000");
        a.ipv4 = None;
        a.unroutable = Some("its NIC eth0 lets it use any address".into());
        let b = src("b", "2", "http://h.example.com:3000");
        let p = plan(&[a, b], &ctx());
        let states: Vec<(&str, RouteState)> = p
            .routes
            .iter()
            .map(|r| (r.instance.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            [("a", RouteState::Refused), ("b", RouteState::Conflict)]
        );
        assert!(p.routes[0].backend.is_none());
        assert!(p
            .problems
            .iter()
            .any(|x| x.instance == "a" && x.message.contains("any address")));
        let file = serde_json::to_string(&p.files[&fname("a")]).unwrap();
        assert!(!file.contains("10.100.0.9"), "{file}");
    }

    #[test]
    fn one_instance_cannot_route_one_claim_twice() {
        let sources = vec![src(
            "a",
            "1",
            "http://h.example.com:3000, http://h.example.com:3001, tcp://15000:3000, tcp://15000:3001, http://h.example.com:3000",
        )];
        let p = plan(&sources, &ctx());
        let msgs: Vec<&str> = p.problems.iter().map(|x| x.item.as_str()).collect();
        assert_eq!(
            msgs,
            ["http://h.example.com:3001", "tcp://15000:3001"],
            "{:?}",
            p.problems
        );
        assert!(p.problems[0]
            .message
            .contains("already routed by `http://h.example.com:3000`"));
        let file = p.files[&fname("a")].to_string();
        assert!(file.contains(":3000") && !file.contains(":3001"), "{file}");
    }

    #[test]
    fn the_first_created_keeps_a_contested_claim() {
        let sources = vec![
            src(
                "copy",
                "2026-02-01T00:00:00Z",
                "https://app.example.com, tcp://2222:22",
            ),
            src(
                "original",
                "2026-01-01T00:00:00Z",
                "https://app.example.com\ntcp://2222:22",
            ),
        ];
        let p = plan(&sources, &ctx());
        assert!(p.files.contains_key(&fname("original")));
        assert!(!p.files.contains_key(&fname("copy")));
        assert_eq!(p.problems.len(), 2);
        assert!(p
            .problems
            .iter()
            .all(|x| x.instance == "copy" && x.message.contains("held by instance 'original'")));
        assert_eq!(p.rules.len(), 1);
        assert!(p
            .rules
            .iter()
            .next()
            .unwrap()
            .comment
            .ends_with("/original"));
    }

    #[test]
    fn management_hosts_and_host_ports_are_refused() {
        let mut c = ctx();
        c.busy.insert((true, 67), "dnsmasq".into());
        let sources = vec![src("a", "1", "https://manage.example.com, tcp://22:22, tcp://8443:1, udp://4180:1, udp://67, https://ok.example.com")];
        let p = plan(&sources, &c);
        assert_eq!(p.problems.len(), 5, "{:?}", p.problems);
        let file = &p.files[&fname("a")];
        assert!(file.to_string().contains("ok.example.com"));
        assert!(p.entrypoints.is_empty());
    }

    #[test]
    fn stopped_instances_route_nothing_but_keep_their_claims() {
        let mut stopped = src("a", "1", "https://app.example.com, tcp://2222:22");
        stopped.running = false;
        let sources = vec![stopped, src("b", "2", "https://app.example.com")];
        let p = plan(&sources, &ctx());
        let file = p.files[&fname("a")].to_string();
        assert!(
            file.contains("http://127.0.0.1:0") && !file.contains("10.100.0.9"),
            "a stopped instance's routes point nowhere: {file}"
        );
        assert!(!p.files.contains_key(&fname("b")));
        assert_eq!(p.entrypoints.len(), 1, "the port stays claimed");
        assert!(p.problems.iter().any(|x| x.instance == "b"));
        assert!(p
            .routes
            .iter()
            .filter(|r| r.instance == "a")
            .all(|r| r.state == RouteState::Stopped));
    }

    #[test]
    fn one_bad_label_never_blocks_the_others() {
        let sources = vec![
            src("bad", "1", "https://{{evil}}, ftp://x"),
            src("good", "2", "https://good.example.com"),
        ];
        let p = plan(&sources, &ctx());
        assert!(p.files.contains_key(&fname("good")));
        assert_eq!(p.problems.len(), 2);
    }

    fn rec(held: claims::Held, project: &str, instance: &str) -> claims::Record {
        claims::Record::new(held, project, instance, "2026-01-01T00:00:00Z")
    }

    /// What a user of the planned files would see: which instance's file
    /// routes which rule, and what was refused and why.
    #[test]
    fn hosts_paths_and_ports_go_to_their_first_holder() {
        type Case<'a> = (
            &'a str,
            Vec<claims::Record>,
            Vec<(&'a str, &'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
        );
        use claims::Held;
        let host = |h: &str| Held::Host { host: h.into() };
        let cases: Vec<Case> = vec![
            (
                "B cannot route /api under A's host behind A's back",
                vec![],
                vec![
                    ("a", "1", "https://app.example.com@auth:admins"),
                    ("b", "2", "https://app.example.com/api"),
                ],
                vec![("a", "Host(`app.example.com`)")],
                vec![("b", "whose label does not share /api")],
            ),
            (
                "A shares /api: B routes it, and nothing else of A's",
                vec![],
                vec![
                    (
                        "a",
                        "1",
                        "https://app.example.com@auth:admins, share://app.example.com/api",
                    ),
                    (
                        "b",
                        "2",
                        "https://app.example.com/api, https://app.example.com/admin",
                    ),
                ],
                vec![
                    ("a", "Host(`app.example.com`)"),
                    ("b", "Host(`app.example.com`) && PathPrefix(`/api`)"),
                ],
                vec![("b", "does not share /admin")],
            ),
            (
                "an older instance cannot take a host a newer one holds",
                vec![rec(host("app.example.com"), "default", "new")],
                vec![
                    ("old", "1", "https://app.example.com"),
                    ("new", "2", "https://app.example.com"),
                ],
                vec![("new", "Host(`app.example.com`)")],
                vec![("old", "held by instance 'new'")],
            ),
            (
                "another project's host and port are refused, its files not planned",
                vec![
                    rec(host("app.example.com"), "acc-a", "web"),
                    rec(Held::Tcp { port: 2222 }, "acc-a", "db"),
                ],
                vec![(
                    "web",
                    "1",
                    "https://app.example.com, tcp://2222:22, https://own.example.com",
                )],
                vec![("web", "Host(`own.example.com`)")],
                vec![
                    ("web", "held by instance 'web' of project 'acc-a'"),
                    ("web", "held by instance 'db' of project 'acc-a'"),
                ],
            ),
        ];
        for (what, recorded, sources, files, refused) in cases {
            let mut c = ctx();
            c.claims = recorded;
            let sources: Vec<Source> = sources.iter().map(|(n, t, l)| src(n, t, l)).collect();
            let p = plan(&sources, &c);
            let rules: Vec<(String, String)> = p
                .files
                .iter()
                .flat_map(|(f, v)| {
                    v["http"]["routers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        // The gate's /oauth2/ router on an @auth host is no route of its own.
                        .filter(|(n, r)| {
                            r["entryPoints"][0] == "websecure" && !n.contains("_oauth2-")
                        })
                        .map(move |(_, r)| (f.clone(), r["rule"].as_str().unwrap().to_string()))
                })
                .collect();
            let want: Vec<(String, String)> = files
                .iter()
                .map(|(i, r)| (fname(i), r.to_string()))
                .collect();
            assert_eq!(rules, want, "{what}");
            let got: Vec<(&str, &str)> = p
                .problems
                .iter()
                .map(|x| (x.instance.as_str(), x.message.as_str()))
                .collect();
            assert_eq!(got.len(), refused.len(), "{what}: {got:?}");
            for ((gi, gm), (wi, wm)) in got.iter().zip(&refused) {
                assert!(gi == wi && gm.contains(wm), "{what}: {gi}: {gm}");
            }
            assert!(
                p.routes
                    .iter()
                    .filter(|r| r.state == RouteState::Conflict)
                    .count()
                    == refused.len(),
                "{what}: every refusal is a conflict row"
            );
        }
    }

    #[test]
    fn another_projects_ports_stay_entrypoints_and_its_rules_are_not_planned() {
        let mut c = ctx();
        c.claims = vec![rec(claims::Held::Udp { port: 5353 }, "acc-a", "dns")];
        let p = plan(&[src("db", "1", "tcp://15432:5432")], &c);
        let eps: Vec<String> = p.entrypoints.iter().map(EntryPoint::name).collect();
        assert_eq!(eps, ["tcp-15432", "udp-5353"]);
        let rules: Vec<&str> = p.rules.iter().map(|r| r.comment.as_str()).collect();
        assert_eq!(rules, ["terrarium-expose default/db"]);
        assert!(p
            .claims
            .iter()
            .any(|r| r.project == "acc-a" && r.instance == "dns"));
        assert!(p
            .claims
            .iter()
            .any(|r| r.project == "default" && r.instance == "db"));
    }

    #[test]
    fn a_thousand_instances_plan_quickly_and_every_file_validates() {
        let sources: Vec<Source> = (0..1000)
            .map(|i| {
                src(
                    &format!("c{i}"),
                    &format!("{i:06}"),
                    &format!(
                        "https://c{i}.example.com:3000@auth:devs, tcp://{}:22",
                        10000 + i
                    ),
                )
            })
            .collect();
        let p = plan(&sources, &ctx());
        assert_eq!(p.files.len(), 1000);
        assert!(p.problems.is_empty());
        assert_eq!(p.entrypoints.len(), 1000);
    }
}
