//! A host's `schedule.set` as the greeting and every push send it: the
//! host's own schedules from their rows, its policies' schedules from the
//! policies (issue 12 §7: `hello` with 20 policies within 10 % of without).
//!
//! A policy writes its schedules and groups onto every host it matches
//! (`policy_sync`), each policy for all its hosts in one go, so a host's
//! 20 policy schedules, their 20 group copies and 20 links lie on about
//! 60 different pages, which every `hello` under constant commits read
//! afresh. The copies hold what the policy holds (`policy_sync` writes
//! and updates them in the policy's own transaction), so the policy part
//! is built from the host's schedule rows alone — `(policy_id,
//! policy_position, created_at, id)`, read in the one statement that reads
//! all of the host's schedule rows — and the policies themselves, parsed
//! and rendered to JSON once per policy revision ([`Rendered`], keyed by
//! `policy_revision.revision`, which triggers give a new random value at
//! every write to `policies`, whichever process makes it; a greeting reads
//! the revision with the host's row, `store::host_state`). A greeting
//! thus learns from one value that what it holds is current, and writes
//! each policy schedule as its host id spliced onto the rendered rest
//! ([`HostSchedules::frame`]) instead of cloning and serialising 20
//! schedules with their groups.
//!
//! A row the policies cannot explain (a position past its list, a policy
//! gone or not parsing, no revision row) falls back to the rows for the
//! whole host: never a wrong `schedule.set`. Order is the rows'
//! `(created_at, id)`, as before.
//! Blocking: call inside the caller's read transaction.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use diesel::prelude::*;

use super::models::{Schedule, ScheduleWithGroups, SourceGroup};
use super::policies::{PolicyGroup, PolicySchedule};
use super::revision_memo::RevisionMemo;
use super::schema::{policies, policy_revision, schedules};
use super::{schedules as schedule_queries, DbConnection};
use crate::protocol::{self, RetentionPolicy, ScheduleSpec, SourceGroupSpec, WireMessage};

/// What a spec's JSON starts with when its id is empty: what a policy
/// schedule's rendering drops, and the host's id replaces.
const EMPTY_ID_PREFIX: &str = r#"{"id":"""#;

/// One of a host's policy schedule rows: `(id, policy_id, position,
/// created_at)`, from the covering index.
type PolicyRow = (String, Option<String>, Option<i32>, i64);

/// A host's `schedule.set` schedules, in creation order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostSchedules {
    items: Vec<Item>,
}

/// One schedule of a host's `schedule.set`.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// Built from its rows (the host's own schedule, or the fallback).
    Row(ScheduleSpec),
    /// A policy's schedule: the host's id for it and the policy's
    /// rendering at its position.
    Policy { id: String, template: Arc<Template> },
}

/// A policy schedule without the host's id: the spec (id empty) and its
/// JSON after [`EMPTY_ID_PREFIX`] (`None` when serde's encoding does not
/// start so; the spec is then serialised per host).
#[derive(Debug, PartialEq)]
struct Template {
    spec: ScheduleSpec,
    tail: Option<String>,
}

impl HostSchedules {
    /// The schedules as the protocol type (cloned: tests and slow paths).
    pub fn specs(&self) -> Vec<ScheduleSpec> {
        self.items
            .iter()
            .map(|item| match item {
                Item::Row(spec) => spec.clone(),
                Item::Policy { id, template } => ScheduleSpec {
                    id: id.clone(),
                    ..template.spec.clone()
                },
            })
            .collect()
    }

    /// The whole `schedule.set` frame under `version`, as
    /// `Envelope::encode` writes the typed set of [`Self::specs`] (a unit
    /// test holds the two equal), with each policy schedule written as its
    /// id and the policy's rendering instead of cloned and serialised.
    pub fn frame(&self, version: u64) -> String {
        let mut data = String::with_capacity(64 + 320 * self.items.len());
        data.push_str(r#"{"version":"#);
        data.push_str(&version.to_string());
        data.push_str(r#","schedules":["#);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            match item {
                Item::Policy { id, template } => match &template.tail {
                    Some(tail) => {
                        data.push_str(r#"{"id":"#);
                        data.push_str(&json_of(id));
                        data.push_str(tail);
                    }
                    None => data.push_str(&json_of(&ScheduleSpec {
                        id: id.clone(),
                        ..template.spec.clone()
                    })),
                },
                Item::Row(spec) => data.push_str(&json_of(spec)),
            }
        }
        data.push_str("]}");
        protocol::encode_with_data(message_type(), &data)
    }
}

/// The wire type of [`HostSchedules::frame`]'s frame (`schedule.set`).
pub fn message_type() -> &'static str {
    protocol::ServerToAgent::ScheduleSet(protocol::ScheduleSet {
        version: 0,
        schedules: Vec::new(),
    })
    .type_name()
}

/// `value`'s JSON; the types here cannot fail to serialise (strings,
/// numbers, booleans), and an empty object would be refused by the agent
/// rather than misread.
fn json_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// The host's `schedule.set` schedules, in creation order.
pub fn for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<HostSchedules> {
    schedules_with(conn, host_id, rendered)
}

/// [`for_host`] with the policy revision read beforehand (with the host's
/// other one-row state, `store::host_state`): a host with policy
/// schedules costs no statement more than one without while the policies
/// stay as they are. `None`: no revision row (the rows are used).
pub fn for_host_at(
    conn: &mut DbConnection,
    host_id: &str,
    revision: Option<i64>,
) -> QueryResult<HostSchedules> {
    schedules_with(conn, host_id, |conn| {
        revision.map(|r| rendered_at(conn, r)).transpose()
    })
}

/// The host's schedules, its policy rows explained by what `rendered`
/// gives (only asked when it has policy rows).
fn schedules_with(
    conn: &mut DbConnection,
    host_id: &str,
    rendered: impl FnOnce(&mut DbConnection) -> QueryResult<Option<Arc<Rendered>>>,
) -> QueryResult<HostSchedules> {
    let (policy_rows, own) = host_rows(conn, host_id)?;
    let mut items = Vec::with_capacity(policy_rows.len() + own.len());
    if !policy_rows.is_empty() {
        let explained = match rendered(conn)? {
            Some(rendered) => policy_items(policy_rows, &rendered),
            None => None,
        };
        let Some(policy_items) = explained else {
            return Ok(from_host_rows(schedule_queries::list_with_groups_for_host(
                conn, host_id,
            )?));
        };
        items = policy_items;
    }
    items.extend(
        own.into_iter()
            .map(|s| (s.schedule.created_at, Item::Row(row_spec(s)))),
    );
    items.sort_by(|a, b| (a.0, item_id(&a.1)).cmp(&(b.0, item_id(&b.1))));
    Ok(HostSchedules {
        items: items.into_iter().map(|(_, item)| item).collect(),
    })
}

/// The host's schedule rows: its policy rows as ids and positions (the
/// policy's rendering has the rest), its own rows with their linked
/// groups by name. One statement for the rows, one more for the own rows'
/// groups when it has own rows (`schedules::with_groups`, which the
/// fallback's full list uses too), both of fixed text (so SQLite's
/// prepared-statement cache keeps them).
///
/// Not one statement with the groups left-joined: without statistics
/// (tables just filled, before autovacuum's first analyse) PostgreSQL
/// hashed the whole link table for such a join on every push, and a
/// fan-out to 10,000 hosts took 17–19 s instead of 12 (BENCHMARKS.md,
/// "A greeting's host row in one statement").
fn host_rows(
    conn: &mut DbConnection,
    host_id: &str,
) -> QueryResult<(Vec<PolicyRow>, Vec<ScheduleWithGroups>)> {
    let rows: Vec<(Schedule, Option<String>, Option<i32>)> = schedules::table
        .filter(schedules::host_id.eq(host_id))
        .order((schedules::created_at.asc(), schedules::id.asc()))
        .select((
            Schedule::as_select(),
            schedules::policy_id,
            schedules::policy_position,
        ))
        .load(conn)?;
    let mut policy_rows = Vec::new();
    let mut own = Vec::new();
    for (schedule, policy_id, position) in rows {
        if policy_id.is_some() {
            policy_rows.push((
                schedule.id.to_string(),
                policy_id,
                position,
                schedule.created_at,
            ));
        } else {
            own.push(schedule);
        }
    }
    let own = schedule_queries::with_groups(conn, host_id, own, true)?;
    Ok((policy_rows, own))
}

fn item_id(item: &Item) -> &str {
    match item {
        Item::Row(spec) => &spec.id,
        Item::Policy { id, .. } => id,
    }
}

/// `schedule.set` schedules of rows read with their groups
/// (`schedules::list_with_groups_for_host`): the fallback, and what
/// [`for_host`] is checked against.
pub fn from_host_rows(rows: Vec<super::models::ScheduleWithGroups>) -> HostSchedules {
    HostSchedules {
        items: rows.into_iter().map(|s| Item::Row(row_spec(s))).collect(),
    }
}

fn row_spec(s: super::models::ScheduleWithGroups) -> ScheduleSpec {
    ScheduleSpec {
        id: s.schedule.id.to_string(),
        cron_expr: s.schedule.cron_expr,
        enabled: s.schedule.enabled,
        kind: s.schedule.kind,
        source_groups: s.groups.iter().map(group_spec).collect(),
    }
}

fn group_spec(g: &SourceGroup) -> SourceGroupSpec {
    spec_of(
        &g.name,
        &g.includes,
        &g.excludes,
        g.retention_policy.as_ref(),
        g.retry_max,
        g.retry_backoff_seconds,
    )
}

fn policy_group_spec(g: &PolicyGroup) -> SourceGroupSpec {
    spec_of(
        &g.name,
        &g.includes,
        &g.excludes,
        g.retention_policy.as_ref(),
        g.retry_max,
        g.retry_backoff_seconds,
    )
}

/// A group as `schedule.set` carries it (negative retry numbers: 0).
fn spec_of(
    name: &str,
    includes: &[String],
    excludes: &[String],
    retention_policy: Option<&RetentionPolicy>,
    retry_max: i32,
    retry_backoff_seconds: i32,
) -> SourceGroupSpec {
    SourceGroupSpec {
        name: name.to_owned(),
        includes: includes.to_vec(),
        excludes: excludes.to_vec(),
        retention_policy: retention_policy.cloned(),
        retry_max: u32::try_from(retry_max).unwrap_or(0),
        retry_backoff_seconds: u32::try_from(retry_backoff_seconds).unwrap_or(0),
    }
}

/// Every policy's schedules, parsed and rendered, by policy id and
/// position, as of one `policy_revision`. A policy whose texts do not
/// parse is absent (its hosts fall back to their rows).
#[derive(Debug, Default)]
struct Rendered {
    policies: HashMap<String, Vec<Arc<Template>>>,
}

/// Rendered policies by revision.
static MEMO: LazyLock<RevisionMemo<Rendered>> = LazyLock::new(|| RevisionMemo::new(8));

/// The policies as of the stored revision (see [`rendered_at`]). `None`:
/// no revision row (the caller falls back to the rows).
fn rendered(conn: &mut DbConnection) -> QueryResult<Option<Arc<Rendered>>> {
    let revision = policy_revision::table
        .select(policy_revision::revision)
        .filter(policy_revision::id.eq(1))
        .first::<i64>(conn)
        .optional()?;
    revision.map(|r| rendered_at(conn, r)).transpose()
}

/// The policies as of `revision`, read before the call: from the memo when
/// it holds that revision, else read, parsed and rendered (and
/// remembered; [`RevisionMemo`]).
fn rendered_at(conn: &mut DbConnection, revision: i64) -> QueryResult<Arc<Rendered>> {
    MEMO.get_or_load(revision, || {
        let texts: Vec<(String, String, String)> = policies::table
            .select((policies::id, policies::schedules, policies::source_groups))
            .load(conn)?;
        Ok(Rendered {
            policies: texts
                .into_iter()
                .filter_map(|(id, schedules, groups)| Some((id, render(&schedules, &groups)?)))
                .collect(),
        })
    })
}

/// One policy's schedules as `schedule.set` carries them (without the
/// host's schedule id), by position; `None` when a text does not parse.
fn render(schedules_text: &str, groups_text: &str) -> Option<Vec<Arc<Template>>> {
    let list: Vec<PolicySchedule> = serde_json::from_str(schedules_text).ok()?;
    let groups: Vec<PolicyGroup> = serde_json::from_str(groups_text).ok()?;
    Some(
        list.into_iter()
            .map(|s| {
                let mut named: Vec<&PolicyGroup> = groups
                    .iter()
                    .filter(|g| s.source_groups.contains(&g.name))
                    .collect();
                named.sort_by(|a, b| a.name.cmp(&b.name));
                let spec = ScheduleSpec {
                    id: String::new(),
                    cron_expr: s.cron_expr,
                    enabled: s.enabled,
                    kind: s.kind,
                    source_groups: named.into_iter().map(policy_group_spec).collect(),
                };
                let tail = json_of(&spec)
                    .strip_prefix(EMPTY_ID_PREFIX)
                    .map(str::to_owned);
                Arc::new(Template { spec, tail })
            })
            .collect(),
    )
}

/// The items of the host's policy schedule rows, or `None` when a row is
/// not explained by its policy (gone, not parsing, position past its
/// list).
fn policy_items(rows: Vec<PolicyRow>, rendered: &Rendered) -> Option<Vec<(i64, Item)>> {
    rows.into_iter()
        .map(|(id, policy_id, position, created_at)| {
            let templates = rendered.policies.get(&policy_id?)?;
            let template = templates.get(usize::try_from(position?).ok()?)?;
            Some((
                created_at,
                Item::Policy {
                    id,
                    template: Arc::clone(template),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Envelope, ScheduleKind};

    fn spec(id: &str, cron: &str, groups: Vec<SourceGroupSpec>) -> ScheduleSpec {
        ScheduleSpec {
            id: id.to_owned(),
            cron_expr: cron.to_owned(),
            enabled: true,
            kind: ScheduleKind::Backup,
            source_groups: groups,
        }
    }

    fn group(name: &str) -> SourceGroupSpec {
        spec_of(
            name,
            &["/srv/\"quoted\"\\path".to_owned()],
            &["*.tmp".to_owned()],
            Some(&RetentionPolicy {
                keep_daily: Some(7),
                ..RetentionPolicy::default()
            }),
            2,
            -5,
        )
    }

    fn set_of(schedules: &HostSchedules, version: u64) -> protocol::ScheduleSet {
        protocol::ScheduleSet {
            version,
            schedules: schedules.specs(),
        }
    }

    /// A policy's stored `schedules` text.
    fn policy_schedules(list: &[(&str, bool, ScheduleKind, &[&str])]) -> String {
        let list: Vec<PolicySchedule> = list
            .iter()
            .map(|(cron, enabled, kind, groups)| PolicySchedule {
                cron_expr: (*cron).to_owned(),
                enabled: *enabled,
                kind: *kind,
                source_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            })
            .collect();
        serde_json::to_string(&list).unwrap()
    }

    /// A policy's stored `source_groups` text.
    fn policy_groups(names: &[&str]) -> String {
        let list: Vec<PolicyGroup> = names
            .iter()
            .map(|name| PolicyGroup {
                name: (*name).to_owned(),
                includes: vec![format!("/srv/{name}")],
                excludes: vec!["*.tmp".to_owned()],
                retention_policy: None,
                retry_max: 3,
                retry_backoff_seconds: 30,
                prune_after_forget: false,
                options: None,
            })
            .collect();
        serde_json::to_string(&list).unwrap()
    }

    /// `(type, data)` of a frame's JSON.
    fn typed_parts(frame: &str) -> (serde_json::Value, serde_json::Value) {
        let mut v: serde_json::Value = serde_json::from_str(frame).expect("frame is JSON");
        assert!(v["id"].as_str().is_some_and(|id| !id.is_empty()), "{frame}");
        (v["type"].take(), v["data"].take())
    }

    /// The assembled frame is the typed encoding: rows, rendered policy
    /// schedules (ids that need escaping included), a template serde does
    /// not start with the id, and no schedules at all.
    #[test]
    fn the_assembled_frame_is_the_typed_encoding() {
        let rendered = render(
            &policy_schedules(&[
                ("0 2 * * *", false, ScheduleKind::Prune, &[]),
                ("0 3 * * *", true, ScheduleKind::Backup, &["b", "a"]),
            ]),
            &policy_groups(&["a", "b"]),
        )
        .expect("the policy parses");
        assert!(rendered.iter().all(|t| t.tail.is_some()));
        let untailed = Arc::new(Template {
            spec: spec("", "5 4 * * *", vec![group("c")]),
            tail: None,
        });
        let cases = vec![
            HostSchedules::default(),
            HostSchedules {
                items: vec![
                    Item::Row(spec("own-1", "0 1 * * *", vec![group("g")])),
                    Item::Policy {
                        id: "p\"1\\\u{1}é".to_owned(),
                        template: Arc::clone(&rendered[0]),
                    },
                    Item::Policy {
                        id: "p-2".to_owned(),
                        template: Arc::clone(&rendered[1]),
                    },
                    Item::Policy {
                        id: "p-3".to_owned(),
                        template: untailed,
                    },
                ],
            },
        ];
        for schedules in cases {
            for version in [0, 7, u64::MAX] {
                let assembled = schedules.frame(version);
                let typed = Envelope::new(protocol::ServerToAgent::ScheduleSet(set_of(
                    &schedules, version,
                )))
                .encode();
                assert_eq!(typed_parts(&assembled), typed_parts(&typed), "{assembled}");
                let back = Envelope::<protocol::ServerToAgent>::decode(&assembled)
                    .expect("the agent's decoder reads it");
                assert_eq!(
                    back.message,
                    protocol::ServerToAgent::ScheduleSet(set_of(&schedules, version))
                );
            }
        }
        assert_eq!(
            rendered[1].spec.source_groups[0].name, "a",
            "groups by name"
        );
    }

    /// A policy text that does not parse renders nothing (its hosts fall
    /// back to their rows), and a row past its policy's list is not
    /// explained.
    #[test]
    fn what_the_policies_cannot_explain_is_refused() {
        assert!(render("not json", "[]").is_none());
        assert!(render("[]", "{").is_none());
        let mut rendered = Rendered::default();
        rendered.policies.insert(
            "p".to_owned(),
            render(
                &policy_schedules(&[("0 2 * * *", true, ScheduleKind::Backup, &[])]),
                "[]",
            )
            .unwrap(),
        );
        let row = |policy: Option<&str>, position: Option<i32>| {
            vec![("s".to_owned(), policy.map(str::to_owned), position, 1_i64)]
        };
        assert!(policy_items(row(Some("p"), Some(0)), &rendered).is_some());
        assert!(policy_items(row(Some("p"), Some(1)), &rendered).is_none());
        assert!(policy_items(row(Some("p"), Some(-1)), &rendered).is_none());
        assert!(policy_items(row(Some("gone"), Some(0)), &rendered).is_none());
        assert!(policy_items(row(None, Some(0)), &rendered).is_none());
        assert!(policy_items(row(Some("p"), None), &rendered).is_none());
    }
}
