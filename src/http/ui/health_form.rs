//! The fields of a list of service health checks, shared by the host
//! page's "Edit health checks" form (`PUT /api/v1/hosts/{id}/health-checks`)
//! and the policy form (its `health_checks`). One fieldset per check
//! (`fieldset[data-health-check]`) plus a blank one; `app.js`
//! (`BODY_BUILDERS["health-checks"]`) turns them into the list, leaving out
//! a fieldset whose name and target are both blank (so emptying both
//! removes a check). "Add another check" copies the last fieldset,
//! emptied; the fields sit inside their labels (no ids), so a copy is as
//! good as the original. The server validates; its error names the check
//! (`[1].interval_seconds: …`).

use maud::{html, Markup};

use crate::protocol::{HealthCheckSpec, HealthCheckType, MAX_TIMEOUT_SECONDS};

/// One check's fields (blank for `None`).
fn check_fieldset(check: Option<&HealthCheckSpec>) -> Markup {
    let kind = check.map_or(HealthCheckType::Http, |c| c.kind);
    let number = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        fieldset.health-check data-health-check {
            legend { "Health check" }
            div.grid {
                label { "Name "
                    input name="name" type="text" maxlength="64" placeholder="web" value=(check.map_or("", |c| c.name.as_str())); }
                label { "Type "
                    select name="type" {
                        @for k in [HealthCheckType::Http, HealthCheckType::Tcp] {
                            option value=(k.as_str()) selected[kind == k] { (k.as_str()) }
                        }
                    }
                }
            }
            label { "Target (http: an http:// or https:// URL; tcp: host:port) "
                input name="target" type="text" placeholder="https://127.0.0.1:8443/health"
                    value=(check.map_or("", |c| c.target.as_str())); }
            div.grid {
                label { "Every (seconds) "
                    input name="interval_seconds" type="number" min="1" step="1" placeholder="30"
                        value=(number(check.map(|c| c.interval_seconds))); }
                label { "Timeout (seconds) "
                    input name="timeout_seconds" type="number" min="1" max=(MAX_TIMEOUT_SECONDS) step="1" placeholder="5"
                        value=(number(check.map(|c| c.timeout_seconds))); }
                label { "Expected status (http; empty: 200-399) "
                    input name="expect_status" type="number" min="100" max="599" step="1"
                        value=(number(check.and_then(|c| c.expect_status).map(u32::from))); }
            }
        }
    }
}

/// The checks' fieldsets in `div#holder`, a blank one last, and the
/// button that adds another.
pub(super) fn checks_inputs(holder: &str, checks: &[HealthCheckSpec]) -> Markup {
    html! {
        div id=(holder) {
            @for check in checks { (check_fieldset(Some(check))) }
            (check_fieldset(None))
        }
        button type="button" data-add-fieldset=(holder) { "Add another check" }
    }
}
