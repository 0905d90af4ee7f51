//! `store::hosts::update_from_hellos`: a batch of hellos (the writer's
//! group commit) leaves the rows and answers that one `update_from_hello`
//! per hello did, on both backends; on PostgreSQL it is one bulk
//! statement (issue 19).

use restic_manager::store::hosts;
use restic_manager::store::models::HostHello;

use super::{add_host, for_each_backend, NOW};

pub(super) fn hello(
    hostname: &str,
    agent_version: Option<&str>,
    capabilities: Option<&[&str]>,
) -> HostHello {
    HostHello {
        hostname: hostname.to_owned(),
        os: "linux".to_owned(),
        arch: "amd64".to_owned(),
        agent_version: agent_version.map(str::to_owned),
        restic_version: None,
        boot_time: Some(1_700_000_000),
        capabilities: capabilities.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
    }
}

/// An unknown host and a revoked one are answered `None` and change
/// nothing; a field the hello leaves out keeps its stored value; a host
/// with two hellos in the batch ends as the last left it, and both are
/// answered with that row; the others of the batch are written.
#[test]
fn a_batch_writes_what_one_by_one_did() {
    for_each_backend("hellos_batch", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let a = add_host(c, "a");
        let b = add_host(c, "b");
        let revoked = add_host(c, "r");
        hosts::update_from_hello(c, &a.id, &hello("a", Some("1.0"), Some(&["x"])), NOW).unwrap();
        hosts::revoke(c, &revoked.id, NOW).unwrap();

        let later = NOW + 1000;
        let keep = hello("a", None, None);
        let first_b = hello("b", Some("2.0"), Some(&["download", "health"]));
        let second_b = hello("web-10", Some("2.1"), None);
        let for_revoked = hello("r", Some("9.9"), None);
        let unknown = hello("ghost", None, None);
        let answers = hosts::update_from_hellos(
            c,
            &[
                (a.id.as_str(), &keep, later),
                ("no-such-host", &unknown, later),
                (b.id.as_str(), &first_b, later),
                (revoked.id.as_str(), &for_revoked, later),
                (b.id.as_str(), &second_b, later + 1),
            ],
        )
        .unwrap();
        assert_eq!(answers.len(), 5);
        assert!(answers[1].is_none(), "unknown host");
        assert!(answers[3].is_none(), "revoked host");

        let a_row = answers[0].clone().expect("a written");
        assert_eq!(a_row.agent_version.as_deref(), Some("1.0"), "kept");
        assert_eq!(a_row.capabilities, vec!["x".to_owned()], "kept");
        assert!(a_row.online);
        assert_eq!(a_row.last_seen_at, Some(later));

        for answer in [&answers[2], &answers[4]] {
            let b_row = answer.clone().expect("b written");
            assert_eq!(b_row.hostname, "web-10", "the last hello of b wins");
            assert_eq!(b_row.agent_version.as_deref(), Some("2.1"));
            assert_eq!(
                b_row.capabilities,
                vec!["download".to_owned(), "health".to_owned()],
                "left out by the last hello: the first's stays"
            );
            assert_eq!(b_row.last_seen_at, Some(later + 1));
        }
        let stored_b = hosts::get(c, &b.id).unwrap().unwrap();
        assert!(
            Some(stored_b.clone()) == answers[4],
            "the answer is the stored row"
        );
        assert_eq!(stored_b.boot_time, Some(1_700_000_000));

        let stored_r = hosts::get(c, &revoked.id).unwrap().unwrap();
        assert_eq!(stored_r.hostname, "r");
        assert!(!stored_r.online);
        assert_eq!(stored_r.agent_version, None);

        // The host list sorts by the written natural key: web-10 after a.
        let names: Vec<String> = hosts::page(
            c,
            &hosts::HostFilter {
                include_revoked: true,
                limit: 100,
                ..hosts::HostFilter::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|h| h.hostname)
        .collect();
        assert_eq!(names, vec!["a", "r", "web-10"]);
        assert!(hosts::update_from_hellos(c, &[]).unwrap().is_empty());
    });
}
