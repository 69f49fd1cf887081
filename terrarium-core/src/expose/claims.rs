//! Who holds a public host, a shared path or a raw port, recorded on the
//! host (`<state_dir>/expose-claims.json`) where no tenant can edit it.
//! A claim goes to whoever held it first, not to the oldest instance, and
//! it is released when its holder's label stops asking for it or the
//! holder is gone. A host is all its holder's, every path included, unless
//! the holder's own label shares a path (`share://HOST/PATH`). One file
//! serves every LXD project, so a project's sync sees the others' claims
//! (and their raw ports) and changes only its own. `settle` is pure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::expose::labels::Item;
use crate::fs::atomic_write;
use crate::settings::ExposeSettings;

/// What one claim holds exclusively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Held {
    /// The whole host, all its paths.
    Host {
        host: String,
    },
    /// A path (and the paths below it) of a host its holder shares.
    Path {
        host: String,
        path: String,
    },
    Tcp {
        port: u16,
    },
    Udp {
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub held: Held,
    pub project: String,
    pub instance: String,
    /// When it was first held (RFC 3339 UTC).
    pub since: String,
    /// For a host: the paths its holder shares with other instances.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<String>,
    /// For a host: the paths its holder routes itself (`/` for the root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

impl Record {
    /// A claim held from `since`, sharing nothing yet.
    pub fn new(held: Held, project: &str, instance: &str, since: &str) -> Record {
        Record {
            held,
            project: project.into(),
            instance: instance.into(),
            since: since.into(),
            shares: Vec::new(),
            routes: Vec::new(),
        }
    }

    fn held_host(&self) -> &str {
        match &self.held {
            Held::Host { host } | Held::Path { host, .. } => host,
            _ => "",
        }
    }

    fn holder(&self) -> (&str, &str) {
        (&self.project, &self.instance)
    }

    /// "instance 'x'", with its project when it is not `project`.
    fn who(&self, project: &str) -> String {
        if self.project == project {
            format!("instance '{}'", self.instance)
        } else {
            format!("instance '{}' of project '{}'", self.instance, self.project)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ClaimsFile {
    claims: Vec<Record>,
}

pub fn path(e: &ExposeSettings) -> PathBuf {
    Path::new(&e.state_dir).join("expose-claims.json")
}

/// The recorded claims; none when the file does not exist yet. A file
/// that does not parse is an error: guessing would hand claims around.
pub fn load(e: &ExposeSettings) -> Result<Vec<Record>> {
    Ok(crate::fs::read_json::<ClaimsFile>(&path(e))?.map_or_else(Vec::new, |f| f.claims))
}

pub fn save(e: &ExposeSettings, claims: &[Record]) -> Result<()> {
    let f = ClaimsFile {
        claims: claims.to_vec(),
    };
    let text = serde_json::to_vec_pretty(&f).expect("json");
    atomic_write(&path(e), &text, 0o644)
}

/// Does a share of `shared` cover a route at `path`? Whole segments only:
/// a share of `/api` covers `/api` and `/api/v1`, not `/apix`.
fn covers(shared: &str, path: &str) -> bool {
    path == shared
        || path
            .strip_prefix(shared)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Would two routes on one host capture each other's requests? Traefik
/// ranks the longer rule first, so a deeper path takes part of a shallower one.
fn overlap(a: &str, b: &str) -> bool {
    covers(a, b) || covers(b, a)
}

fn path_of(item: &Item) -> String {
    match item {
        Item::Http { path, .. } => path.clone().unwrap_or_else(|| "/".into()),
        Item::Share { path, .. } => path.clone(),
        _ => String::new(),
    }
}

fn port_held(item: &Item) -> Option<Held> {
    match item.host_port()? {
        (false, port) => Some(Held::Tcp { port }),
        (true, port) => Some(Held::Udp { port }),
    }
}

/// The result of `settle`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// For each instance of `wants`, for each of its items: why it is
    /// refused, if it is.
    pub refusals: Vec<Vec<Option<String>>>,
    /// Every claim after this project's change: the other projects' as
    /// they were, this project's kept, new or released.
    pub records: Vec<Record>,
}

/// Give this project's wanted items their claims. `wants` are the
/// instances of `project` in planning order (oldest first, which breaks a
/// tie between claims first asked for in the same sync) with their items
/// that passed the policy; `recorded` are the claims on file.
pub fn settle(
    project: &str,
    wants: &[(&str, Vec<Item>)],
    recorded: &[Record],
    now: &str,
) -> Settled {
    let index: HashMap<&str, usize> = wants.iter().enumerate().map(|(i, w)| (w.0, i)).collect();
    let mut recorded: Vec<&Record> = recorded.iter().collect();
    recorded.sort_by(|a, b| (&a.since, &a.held).cmp(&(&b.since, &b.held)));
    // A record of this project stands while its holder still asks for it.
    let still_wanted = |r: &Record| -> Option<usize> {
        let i = *index.get(r.instance.as_str())?;
        let items = &wants[i].1;
        let wanted = match &r.held {
            Held::Host { host } => items.iter().any(|it| it.host() == Some(host)),
            Held::Path { host, path } => items.iter().any(|it| {
                matches!(it, Item::Http { .. }) && it.host() == Some(host) && path_of(it) == *path
            }),
            held => items.iter().any(|it| port_held(it).as_ref() == Some(held)),
        };
        wanted.then_some(i)
    };
    let fresh = |held: Held, i: usize| Record::new(held, project, wants[i].0, now);

    // Hosts and raw ports: the standing records first, then new claims.
    let mut hosts: BTreeMap<String, Record> = BTreeMap::new();
    let mut ports: BTreeMap<Held, Record> = BTreeMap::new();
    for r in &recorded {
        let keep = r.project != project || still_wanted(r).is_some();
        match &r.held {
            Held::Host { host } if keep => {
                hosts.entry(host.clone()).or_insert_with(|| (*r).clone());
            }
            Held::Tcp { .. } | Held::Udp { .. } if keep => {
                ports.entry(r.held.clone()).or_insert_with(|| (*r).clone());
            }
            _ => {}
        }
    }
    for (i, (_, items)) in wants.iter().enumerate() {
        for it in items {
            if let Some(host) = it.host() {
                hosts
                    .entry(host.to_string())
                    .or_insert_with(|| fresh(Held::Host { host: host.into() }, i));
            }
            if let Some(held) = port_held(it) {
                ports.entry(held.clone()).or_insert_with(|| fresh(held, i));
            }
        }
    }
    // What this project's holders share and route, from their labels now.
    for r in hosts.values_mut().filter(|r| r.project == project) {
        let Some(&i) = index.get(r.instance.as_str()) else {
            continue;
        };
        let on_host = wants[i]
            .1
            .iter()
            .filter(|it| it.host() == Some(r.held_host()));
        let (mut shares, mut routes) = (Vec::new(), Vec::new());
        for it in on_host {
            match it {
                Item::Share { path, .. } => shares.push(path.clone()),
                _ => routes.push(path_of(it)),
            }
        }
        shares.sort();
        routes.sort();
        (r.shares, r.routes) = (shares, routes);
    }

    // Paths of shared hosts, for instances that do not hold the host. A
    // path touching one the holder routes itself is never open: the
    // deeper rule would win Traefik's ranking and skip the holder's
    // middlewares (its sign-on) on part of the holder's own route.
    let mut paths: Vec<Record> = Vec::new();
    let shared_to = |host: &str, path: &str, i: usize| -> bool {
        hosts.get(host).is_some_and(|h| {
            h.holder() != (project, wants[i].0)
                && h.shares.iter().any(|s| covers(s, path))
                && own_route(h, path).is_none()
        })
    };
    for r in &recorded {
        if let Held::Path { host, path } = &r.held {
            let keep = if r.project != project {
                true
            } else {
                still_wanted(r).is_some_and(|i| shared_to(host, path, i))
            };
            if keep {
                paths.push((*r).clone());
            }
        }
    }

    let mut refusals: Vec<Vec<Option<String>>> = Vec::new();
    for (i, (name, items)) in wants.iter().enumerate() {
        let me = (project, *name);
        let mut out = Vec::new();
        for it in items {
            let why = match it {
                Item::Http { host, .. } | Item::Share { host, .. } => {
                    let holder = &hosts[host];
                    let path = path_of(it);
                    if holder.holder() == me {
                        None
                    } else if matches!(it, Item::Share { .. }) {
                        Some(format!(
                            "only the holder of {host} can share its paths: it is held by {}",
                            holder.who(project)
                        ))
                    } else if !holder.shares.iter().any(|s| covers(s, &path)) {
                        Some(format!(
                            "{host} is held by {}, whose label does not share {path} (a host is all its holder's, every path included)",
                            holder.who(project)
                        ))
                    } else if let Some(own) = own_route(holder, &path) {
                        Some(format!(
                            "{host}{path} overlaps {host}{own}, routed by {}, the holder of {host}, itself",
                            holder.who(project)
                        ))
                    } else {
                        let on_path = |r: &&Record, exact: bool| match &r.held {
                            Held::Path { host: h, path: p } => {
                                h == host && if exact { *p == path } else { overlap(p, &path) }
                            }
                            _ => false,
                        };
                        let foreign = paths.iter().find(|r| on_path(r, false) && r.holder() != me);
                        match foreign {
                            Some(r) => Some(format!(
                                "{host}{} (shared by the holder of {host}) is held by {}",
                                path_of_held(&r.held),
                                r.who(project)
                            )),
                            None => {
                                if !paths.iter().any(|r| on_path(&r, true) && r.holder() == me) {
                                    paths.push(fresh(
                                        Held::Path {
                                            host: host.clone(),
                                            path: path.clone(),
                                        },
                                        i,
                                    ));
                                }
                                None
                            }
                        }
                    }
                }
                Item::Tcp { .. } | Item::Udp { .. } => {
                    let held = port_held(it).expect("a raw port");
                    let holder = &ports[&held];
                    (holder.holder() != me).then(|| {
                        format!(
                            "{} port {} is held by {}",
                            if matches!(held, Held::Udp { .. }) {
                                "udp"
                            } else {
                                "tcp"
                            },
                            it.host_port().expect("a raw port").1,
                            holder.who(project)
                        )
                    })
                }
            };
            out.push(why);
        }
        refusals.push(out);
    }

    let mut records: Vec<Record> = hosts
        .into_values()
        .chain(ports.into_values())
        .chain(paths)
        .collect();
    records.sort_by(|a, b| (&a.held, &a.project).cmp(&(&b.held, &b.project)));
    Settled { refusals, records }
}

/// The holder's own route on its host that a route at `path` would
/// overlap, if any. Its root route (`/`) overlaps only `/`: every deeper
/// path is what a share hands out.
fn own_route<'a>(holder: &'a Record, path: &str) -> Option<&'a str> {
    holder
        .routes
        .iter()
        .find(|r| overlap(r, path))
        .map(String::as_str)
}

fn path_of_held(held: &Held) -> &str {
    match held {
        Held::Path { path, .. } => path,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::labels::parse;

    fn items(label: &str) -> Vec<Item> {
        let (items, errs) = parse(label);
        assert!(errs.is_empty(), "{errs:?}");
        items
    }

    fn rec(held: Held, project: &str, instance: &str, since: &str) -> Record {
        Record::new(held, project, instance, since)
    }

    fn host(h: &str) -> Held {
        Held::Host { host: h.into() }
    }

    /// Each case: recorded claims, the project's instances (planning
    /// order) with labels, and for each instance which items are refused
    /// (their index) with a word of the reason.
    #[test]
    fn claims_go_to_their_first_holder() {
        type Case<'a> = (
            &'a str,
            Vec<Record>,
            Vec<(&'a str, &'a str)>,
            Vec<Vec<(usize, &'a str)>>,
        );
        let cases: Vec<Case> = vec![
            (
                "the sub-path hijack: a host is all its holder's",
                vec![],
                vec![
                    ("a", "https://app.t@auth:admins"),
                    ("b", "https://app.t/api, http://app.t/x/y"),
                ],
                vec![
                    vec![],
                    vec![(0, "does not share /api"), (1, "does not share /x/y")],
                ],
            ),
            (
                "a share lets another instance route that path and below",
                vec![],
                vec![
                    ("a", "https://app.t@auth, share://app.t/pub"),
                    ("b", "https://app.t/pub, https://app.t/pubx, https://app.t/"),
                    ("c", "https://app.t/pub/deeper"),
                ],
                vec![
                    vec![],
                    vec![(1, "does not share /pubx"), (2, "does not share /")],
                    vec![(0, "is held by instance 'b'")],
                ],
            ),
            (
                "only the holder shares, and never a path it routes itself",
                vec![],
                vec![
                    (
                        "a",
                        "https://app.t, https://app.t:8080/pub/admin, share://app.t/pub",
                    ),
                    ("b", "share://app.t/x, https://app.t/pub/admin"),
                ],
                vec![
                    vec![],
                    vec![(0, "only the holder"), (1, "routed by instance 'a'")],
                ],
            ),
            (
                "a shared parent path never hands out what the holder routes below it",
                vec![],
                vec![
                    (
                        "a",
                        "https://app.t@auth, share://app.t/pub, https://app.t/pub/admin@auth",
                    ),
                    (
                        "b",
                        "https://app.t/pub/admin/x, https://app.t/pub/admin, https://app.t/pub/other, https://app.t/pub/adminx",
                    ),
                ],
                vec![
                    vec![],
                    vec![
                        (0, "overlaps app.t/pub/admin, routed by instance 'a'"),
                        (1, "routed by instance 'a'"),
                    ],
                ],
            ),
            (
                "nor a shallower path that would take the rest of one the holder routes",
                vec![],
                vec![
                    ("a", "https://app.t, share://app.t/pub, https://app.t/pub/x/y"),
                    ("b", "https://app.t/pub/x, https://app.t/pub/z"),
                ],
                vec![vec![], vec![(0, "overlaps app.t/pub/x/y")]],
            ),
            (
                "the holder's root route leaves every shared path open",
                vec![],
                vec![
                    ("a", "https://app.t/, share://app.t/pub"),
                    ("b", "https://app.t/pub"),
                ],
                vec![vec![], vec![]],
            ),
            (
                "another project's holder routing below its share keeps that path",
                vec![{
                    let mut r = rec(host("app.t"), "q", "a", "2026-01-01T00:00:00Z");
                    r.shares = vec!["/pub".into()];
                    r.routes = vec!["/".into(), "/pub/admin".into()];
                    r
                }],
                vec![("b", "https://app.t/pub/admin/x, https://app.t/pub/other")],
                vec![vec![(
                    0,
                    "overlaps app.t/pub/admin, routed by instance 'a' of project 'q'",
                )]],
            ),
            (
                "an old instance cannot take a live host held by a newer one",
                vec![rec(host("app.t"), "p", "new", "2026-01-02T00:00:00Z")],
                vec![("old", "https://app.t"), ("new", "https://app.t")],
                vec![vec![(0, "held by instance 'new'")], vec![]],
            ),
            (
                "a released claim is free again: the holder's label dropped it",
                vec![rec(host("app.t"), "p", "new", "2026-01-02T00:00:00Z")],
                vec![("old", "https://app.t"), ("new", "https://other.t")],
                vec![vec![], vec![]],
            ),
            (
                "a released claim is free again: the holder is gone",
                vec![rec(
                    Held::Tcp { port: 2222 },
                    "p",
                    "gone",
                    "2026-01-02T00:00:00Z",
                )],
                vec![("old", "tcp://2222:22")],
                vec![vec![]],
            ),
            (
                "raw ports go to their first holder too",
                vec![rec(
                    Held::Udp { port: 5353 },
                    "p",
                    "new",
                    "2026-01-02T00:00:00Z",
                )],
                vec![
                    ("old", "udp://5353:53, tcp://5353:53"),
                    ("new", "udp://5353:53"),
                ],
                vec![vec![(0, "udp port 5353 is held by instance 'new'")], vec![]],
            ),
            (
                "another project's claims stand, its holder unseen",
                vec![
                    rec(host("app.t"), "q", "web", "2026-01-02T00:00:00Z"),
                    rec(Held::Tcp { port: 2222 }, "q", "db", "2026-01-02T00:00:00Z"),
                ],
                vec![("web", "https://app.t/api, tcp://2222:22")],
                vec![vec![
                    (0, "held by instance 'web' of project 'q'"),
                    (1, "held by instance 'db' of project 'q'"),
                ]],
            ),
            (
                "with no record the oldest asker wins a tie",
                vec![],
                vec![("first", "tcp://2222:22"), ("second", "tcp://2222:22")],
                vec![vec![], vec![(0, "held by instance 'first'")]],
            ),
        ];
        for (what, recorded, srcs, want) in cases {
            let wants: Vec<(&str, Vec<Item>)> = srcs.iter().map(|(n, l)| (*n, items(l))).collect();
            let s = settle("p", &wants, &recorded, "2026-02-01T00:00:00Z");
            for (i, (name, its)) in wants.iter().enumerate() {
                let refused: Vec<usize> = (0..its.len())
                    .filter(|k| s.refusals[i][*k].is_some())
                    .collect();
                let want_idx: Vec<usize> = want[i].iter().map(|(k, _)| *k).collect();
                assert_eq!(refused, want_idx, "{what}: {name}: {:?}", s.refusals[i]);
                for (k, word) in &want[i] {
                    let why = s.refusals[i][*k].as_deref().unwrap();
                    assert!(why.contains(word), "{what}: {name} item {k}: {why}");
                }
            }
        }
    }

    #[test]
    fn records_keep_their_time_carry_shares_and_leave_other_projects_alone() {
        let other = rec(host("y.t"), "q", "web", "2025-01-01T00:00:00Z");
        let mine = rec(host("app.t"), "p", "a", "2026-01-01T00:00:00Z");
        let wants = vec![
            ("a", items("https://app.t, share://app.t/pub")),
            ("b", items("https://app.t/pub/x, tcp://2222:22")),
        ];
        let s = settle("p", &wants, &[other.clone(), mine], "2026-02-01T00:00:00Z");
        let find = |held: &Held| s.records.iter().find(|r| &r.held == held).unwrap();
        assert_eq!(find(&host("y.t")), &other, "untouched");
        let app = find(&host("app.t"));
        assert_eq!(app.since, "2026-01-01T00:00:00Z", "first held then");
        assert_eq!(app.shares, ["/pub"]);
        assert_eq!(app.routes, ["/"]);
        let path = find(&Held::Path {
            host: "app.t".into(),
            path: "/pub/x".into(),
        });
        assert_eq!(
            (path.instance.as_str(), path.since.as_str()),
            ("b", "2026-02-01T00:00:00Z")
        );
        assert_eq!(find(&Held::Tcp { port: 2222 }).instance, "b");
        assert_eq!(s.records.len(), 4);
        // The holder stops sharing: the path is released and refused.
        let wants = vec![
            ("a", items("https://app.t")),
            ("b", items("https://app.t/pub/x")),
        ];
        let s2 = settle("p", &wants, &s.records, "2026-03-01T00:00:00Z");
        assert!(s2.refusals[1][0]
            .as_deref()
            .unwrap()
            .contains("does not share"));
        assert!(!s2
            .records
            .iter()
            .any(|r| matches!(r.held, Held::Path { .. })));
        assert!(
            !s2.records
                .iter()
                .any(|r| matches!(r.held, Held::Tcp { .. })),
            "released"
        );
    }

    #[test]
    fn a_held_path_is_released_when_its_holder_routes_into_it() {
        let wants = vec![
            ("a", items("https://app.t, share://app.t/pub")),
            ("b", items("https://app.t/pub/admin/x")),
        ];
        let s = settle("p", &wants, &[], "2026-02-01T00:00:00Z");
        assert_eq!(s.refusals[1], [None]);
        let is_path = |r: &&Record| matches!(r.held, Held::Path { .. });
        assert_eq!(s.records.iter().filter(is_path).count(), 1);
        // The holder now routes /pub/admin itself, behind its sign-on.
        let wants = vec![
            (
                "a",
                items("https://app.t, share://app.t/pub, https://app.t/pub/admin@auth"),
            ),
            ("b", items("https://app.t/pub/admin/x")),
        ];
        let s2 = settle("p", &wants, &s.records, "2026-03-01T00:00:00Z");
        let why = s2.refusals[1][0].as_deref().unwrap();
        assert!(why.contains("overlaps app.t/pub/admin"), "{why}");
        assert_eq!(s2.records.iter().filter(is_path).count(), 0, "released");
        assert_eq!(s2.refusals[0], [None, None, None], "the holder keeps all");
    }

    #[test]
    fn the_file_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let e = ExposeSettings {
            state_dir: d.path().display().to_string(),
            ..Default::default()
        };
        assert_eq!(load(&e).unwrap(), Vec::new(), "no file: no claims");
        let mut r = rec(host("app.t"), "p", "a", "2026-01-01T00:00:00Z");
        r.shares = vec!["/pub".into()];
        save(
            &e,
            &[r.clone(), rec(Held::Udp { port: 53 }, "q", "dns", "x")],
        )
        .unwrap();
        assert_eq!(load(&e).unwrap()[0], r);
        std::fs::write(path(&e), "{not json").unwrap();
        assert!(load(&e).is_err(), "a broken file is never guessed around");
    }
}
