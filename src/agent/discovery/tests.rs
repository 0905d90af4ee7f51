//! Unit tests of discovery's rules: the debounce, the conversion of the
//! Engine's answers (secret values gone), which events count.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerSummary, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointSettings,
    EventMessage, EventMessageTypeEnum, PortSummary, PortSummaryTypeEnum,
};
use tokio::time::Instant;

use super::*;

/// The first listing is due at once; after it, nothing is due until a
/// change; changes within the gap wait for its end and make one listing.
#[test]
fn debounce_lists_at_most_once_per_gap() {
    let gap = Duration::from_secs(10);
    let t0 = Instant::now();
    let mut debounce = Debounce::new(gap);
    assert_eq!(
        debounce.due(t0),
        Some(t0),
        "the first listing is due at once"
    );
    debounce.ran(t0);
    assert_eq!(
        debounce.due(t0 + Duration::from_secs(60)),
        None,
        "no change, nothing due"
    );

    debounce.mark();
    debounce.mark();
    debounce.mark();
    assert_eq!(
        debounce.due(t0 + Duration::from_secs(3)),
        Some(t0 + gap),
        "changes within the gap wait for its end"
    );
    debounce.ran(t0 + gap);
    assert_eq!(
        debounce.due(t0 + gap),
        None,
        "three changes made one listing"
    );

    debounce.mark();
    let late = t0 + gap + Duration::from_secs(25);
    assert_eq!(
        debounce.due(late),
        Some(late),
        "a change after the gap lists at once"
    );
}

fn summary(id: &str, name: &str, image: &str) -> ContainerSummary {
    ContainerSummary {
        id: Some(id.to_owned()),
        names: Some(vec![format!("/{name}")]),
        image: Some(image.to_owned()),
        state: Some(ContainerSummaryStateEnum::RUNNING),
        ..ContainerSummary::default()
    }
}

/// A database container becomes a report entry: name without `/`, its
/// networks and ports sorted, the engine from the image, and the values
/// of secret variables gone (names kept).
#[test]
fn container_of_strips_secrets_and_detects_the_engine() {
    let mut db = summary("4f1c", "shop-db", "postgres:16");
    db.network_settings = Some(ContainerSummaryNetworkSettings {
        networks: Some(HashMap::from([
            ("shop".to_owned(), EndpointSettings::default()),
            ("bridge".to_owned(), EndpointSettings::default()),
        ])),
    });
    db.ports = Some(vec![
        PortSummary {
            ip: Some("127.0.0.1".to_owned()),
            private_port: 5432,
            public_port: Some(15432),
            typ: Some(PortSummaryTypeEnum::TCP),
        },
        PortSummary {
            ip: None,
            private_port: 8008,
            public_port: None,
            typ: Some(PortSummaryTypeEnum::UDP),
        },
    ]);
    let env = [
        "POSTGRES_DB=shop".to_owned(),
        "POSTGRES_USER=app".to_owned(),
        "POSTGRES_PASSWORD=s3cr3t-value".to_owned(),
        "API_TOKEN=t0ken-value".to_owned(),
    ];
    let container = container_of(db, &env).unwrap();
    assert_eq!(container.name, "shop-db");
    assert_eq!(container.state, "running");
    assert_eq!(container.database, Some(DatabaseType::Postgres));
    assert_eq!(container.networks, ["bridge", "shop"]);
    assert_eq!(container.ports.len(), 2);
    assert_eq!(container.ports[0].private_port, 5432);
    assert_eq!(container.ports[0].public_port, Some(15432));
    assert_eq!(container.ports[0].protocol, "tcp");
    assert_eq!(container.ports[1].protocol, "udp");
    let names: Vec<&str> = container.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "POSTGRES_DB",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "API_TOKEN"
        ]
    );
    assert_eq!(container.env[0].value.as_deref(), Some("shop"));
    assert_eq!(container.env[2].value, None);
    assert_eq!(container.env[3].value, None);
    let json = serde_json::to_string(&container).unwrap();
    assert!(
        !json.contains("s3cr3t-value") && !json.contains("t0ken-value"),
        "{json}"
    );

    let web = container_of(summary("9a0b", "web", "nginx:1.27"), &[]).unwrap();
    assert_eq!(web.database, None);
    assert!(
        container_of(ContainerSummary::default(), &[]).is_none(),
        "no id"
    );
}

/// A report is sorted by name (two listings of one set compare equal)
/// and holds at most MAX_DISCOVERED_CONTAINERS.
#[test]
fn report_is_sorted_and_bounded() {
    let report = report_of(vec![
        (summary("b", "zeta", "redis"), vec![]),
        (summary("a", "alpha", "mysql:8"), vec![]),
    ]);
    let names: Vec<&str> = report.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);

    let many = (0..MAX_DISCOVERED_CONTAINERS + 5)
        .map(|i| {
            (
                summary(&format!("id{i}"), &format!("c{i:05}"), "nginx"),
                vec![],
            )
        })
        .collect();
    assert_eq!(report_of(many).containers.len(), MAX_DISCOVERED_CONTAINERS);
}

/// Starts, deaths, renames and network changes count; exec and health
/// events do not.
#[test]
fn which_events_change_the_report() {
    let event = |typ, action: &str| EventMessage {
        typ: Some(typ),
        action: Some(action.to_owned()),
        ..EventMessage::default()
    };
    assert!(changes_report(&event(
        EventMessageTypeEnum::CONTAINER,
        "start"
    )));
    assert!(changes_report(&event(
        EventMessageTypeEnum::CONTAINER,
        "die"
    )));
    assert!(changes_report(&event(
        EventMessageTypeEnum::CONTAINER,
        "rename"
    )));
    assert!(changes_report(&event(
        EventMessageTypeEnum::NETWORK,
        "connect"
    )));
    assert!(!changes_report(&event(
        EventMessageTypeEnum::CONTAINER,
        "exec_start: sh"
    )));
    assert!(!changes_report(&event(
        EventMessageTypeEnum::CONTAINER,
        "health_status: healthy"
    )));
    assert!(!changes_report(&event(EventMessageTypeEnum::IMAGE, "pull")));
}
