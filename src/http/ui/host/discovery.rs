//! The host page's discovered databases (issue 13 §2): the database
//! containers of the host's latest Docker discovery report, each with an
//! "Add dump group" form pre-filled from the report (driver, container,
//! database, user; [`suggested_dump`]), and the blank dump group form of
//! the source groups section ([`dump_group_form`]). Secret values never
//! reach the page: the report holds none.

use maud::{html, Markup};

use super::{api_path, Data};
use crate::http::api::discovery::{suggested_dump, SuggestedDump};
use crate::http::ui::{format, PageCtx};
use crate::protocol::{DiscoveredContainer, DumpDriver, CAPABILITY_DOCKER};

/// A source group name from a container name: `[A-Za-z0-9._-]{1,64}`.
fn group_name(container: &str) -> String {
    let name: String = container
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "database".to_owned()
    } else {
        name
    }
}

/// The user a database container's environment names, if any.
fn env_user(container: &DiscoveredContainer) -> Option<&str> {
    ["POSTGRES_USER", "MYSQL_USER", "MARIADB_USER"]
        .iter()
        .find_map(|name| {
            container
                .env
                .iter()
                .find(|hint| hint.name == *name)
                .and_then(|hint| hint.value.as_deref())
        })
        .filter(|user| !user.is_empty())
}

/// The drivers a dump group of this host can use, as its agent announced
/// them: `(driver, only in a container)`. A driver whose tool the agent
/// found (`dump:<driver>`) runs on the host; with `docker` every driver
/// runs inside a named container (the tool is the container's), which is
/// what a job checks ([`crate::protocol::DumpSpec::required_capability`]).
pub(super) fn offered_drivers(capabilities: &[String]) -> Vec<(DumpDriver, bool)> {
    let has = |c: &str| capabilities.iter().any(|have| have == c);
    let docker = has(CAPABILITY_DOCKER);
    DumpDriver::ALL
        .into_iter()
        .filter_map(|driver| {
            if has(&driver.capability()) {
                Some((driver, false))
            } else {
                docker.then_some((driver, true))
            }
        })
        .collect()
}

/// The add form of a dump group, pre-filled from `prefill` (a discovered
/// container) or blank. `prefix` makes its element ids unique. Only the
/// drivers the host's agent can run are offered ([`offered_drivers`]);
/// with none, the form says why instead.
pub(super) fn dump_group_form(
    host_id: &str,
    capabilities: &[String],
    prefix: &str,
    prefill: Option<(&SuggestedDump, Option<&str>)>,
) -> Markup {
    let field = |name: &str| format!("{prefix}-{name}");
    let suggestion = prefill.map(|(s, _)| s);
    let chosen = suggestion.map(|s| s.driver);
    let drivers = offered_drivers(capabilities);
    if drivers.is_empty() {
        return html! {
            p.muted.no-dump-driver {
                "This host's agent has announced no dump tool (pg_dump, mysqldump, mariadb-dump, "
                "mongodump, sqlite3 on its PATH) and no Docker Engine. Install one on the host; "
                "the agent announces it when it next connects."
            }
        };
    }
    html! {
        form.dump-group-form data-change data-form="dump-group" data-method="POST"
            data-path=(api_path(host_id, "/source-groups")) data-then="reload" id=(field("form")) {
            label for=(field("name")) { "Name (also the restic tag)" }
            input id=(field("name")) name="name" type="text" required pattern="[A-Za-z0-9._-]{1,64}"
                value=(suggestion.map(|s| group_name(&s.container)).unwrap_or_default());
            label for=(field("driver")) { "Driver" }
            select id=(field("driver")) name="driver" {
                @for (driver, in_container) in &drivers {
                    option value=(driver.as_str()) selected[chosen == Some(*driver)] {
                        (driver.as_str()) @if *in_container { " (in a container only)" }
                    }
                }
            }
            label for=(field("container")) { "Docker container (empty: the database is reached from the host)" }
            input id=(field("container")) name="container" type="text"
                value=(suggestion.map_or("", |s| s.container.as_str()));
            label for=(field("database")) { "Database (empty: every database)" }
            input id=(field("database")) name="database" type="text"
                value=(suggestion.and_then(|s| s.database.as_deref()).unwrap_or(""));
            label for=(field("user")) { "User" }
            input id=(field("user")) name="user" type="text" value=(prefill.and_then(|(_, u)| u).unwrap_or(""));
            label for=(field("password")) { "Password (stored sealed; never shown again)" }
            input id=(field("password")) name="password" type="password" autocomplete="new-password";
            label for=(field("path")) { "SQLite file (sqlite only)" }
            input id=(field("path")) name="path" type="text";
            button type="submit" { "Add dump group" }
        }
    }
}

/// The discovered databases, when the host's agent sent a report.
pub(super) fn discovery_section(ctx: &PageCtx, data: &Data) -> Markup {
    let Some(report) = &data.reports.discovery else {
        return html! {};
    };
    let host_id = &data.history.host.host.id;
    let databases: Vec<&DiscoveredContainer> = report
        .containers
        .iter()
        .filter(|c| c.database.is_some())
        .collect();
    html! {
        section #discovery {
            h2 { "Discovered databases" }
            p.muted {
                (report.containers.len()) " running Docker containers, reported "
                (format::ago(report.received_at, ctx.now)) "."
            }
            @if databases.is_empty() {
                p.muted { "No database container runs on this host." }
            } @else {
                table #discovered-databases {
                    thead { tr { th { "Container" } th { "Image" } th { "Engine" } th { "Ports" } th { "Networks" } @if ctx.can_operate() { th { "Actions" } } } }
                    tbody {
                        @for (i, c) in databases.iter().enumerate() {
                            tr data-container=(c.name) {
                                td { strong { (c.name) } " " span.muted { (c.state) } }
                                td { code { (c.image) } }
                                td { (c.database.map_or("", |d| d.as_str())) }
                                td {
                                    @for p in &c.ports {
                                        @match p.public_port {
                                            Some(public) => { code { (p.ip.as_deref().unwrap_or("")) ":" (public) "→" (p.private_port) "/" (p.protocol) } br; }
                                            None => { code { (p.private_port) "/" (p.protocol) } br; }
                                        }
                                    }
                                }
                                td { (c.networks.join(", ")) }
                                @if ctx.can_operate() {
                                    td.actions {
                                        @match suggested_dump(c) {
                                            Some(suggestion) => {
                                                details.edit.add-dump-group {
                                                    summary { "Add dump group" }
                                                    (dump_group_form(host_id, &data.history.host.host.capabilities, &format!("dd-{i}"), Some((&suggestion, env_user(c)))))
                                                }
                                            }
                                            None => { span.muted { "no dump driver" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| (*c).to_owned()).collect()
    }

    /// Only the drivers the agent announced are offered: its own tools on
    /// the host, every driver in a container with Docker, none without
    /// either (the form then says why).
    #[test]
    fn offers_only_the_hosts_drivers() {
        assert_eq!(
            offered_drivers(&caps(&["cancel", "dump:postgres", "dump:sqlite"])),
            vec![(DumpDriver::Postgres, false), (DumpDriver::Sqlite, false)]
        );
        let with_docker = offered_drivers(&caps(&["dump:mariadb", "docker"]));
        assert_eq!(with_docker.len(), DumpDriver::ALL.len());
        assert!(with_docker.contains(&(DumpDriver::Mariadb, false)));
        assert!(with_docker.contains(&(DumpDriver::Postgres, true)));
        assert!(offered_drivers(&caps(&["cancel", "hooks"])).is_empty());

        let form = dump_group_form("h1", &caps(&["dump:postgres"]), "x", None).into_string();
        assert!(
            form.contains(r#"<option value="postgres">postgres</option>"#),
            "{form}"
        );
        assert!(!form.contains("mysql"), "{form}");
        let none = dump_group_form("h1", &caps(&[]), "x", None).into_string();
        assert!(!none.contains("<form"), "{none}");
        assert!(none.contains("no dump tool"), "{none}");
    }

    /// Container names become valid group names.
    #[test]
    fn group_names_from_containers() {
        assert_eq!(group_name("shop-db"), "shop-db");
        assert_eq!(group_name("shop db/1"), "shop-db-1");
        assert_eq!(group_name(""), "database");
        assert_eq!(group_name(&"x".repeat(80)).len(), 64);
    }
}
