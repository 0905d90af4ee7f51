//! The host page's "Services" (issue 14 §1: each health check with its
//! latest result and where it comes from, and for operators the form that
//! edits the host's own checks) and "Host metrics" (§2: load, memory used and disk free
//! of the state directory and of each source group, the latest values and
//! charts of the last 24 hours).

use maud::{html, Markup};

use super::super::chart::{self, Labels, Sample, Unit};
use super::super::format;
use super::super::layout::badge;
use super::{api_path, Data};
use crate::http::ui::PageCtx;
use crate::store::host_metrics::MetricPoint;

/// How far back the metric charts go.
pub(super) const METRICS_MS: i64 = 86_400_000;
/// Most metric points read for the charts (24 h of minutes).
pub(super) const METRIC_POINTS: i64 = 1_440;

pub(super) fn health_section(ctx: &PageCtx, data: &Data) -> Markup {
    html! {
        section #health-checks {
            h2 { "Services" }
            @if data.health_checks.is_empty() {
                p.muted #health-none { "No health checks configured." }
            } @else {
                table #health-table {
                    thead { tr { th { "Check" } th { "From" } th { "Type" } th { "Target" } th { "State" } th { "Latency" } th { "Status" } th { "Checked" } th { "Error" } } }
                    tbody {
                        @for effective in &data.health_checks {
                            @let check = &effective.spec;
                            @let result = data.watch.health.iter().find(|r| r.name == check.name);
                            tr data-check=(check.name) data-ok=(result.map_or("unknown", |r| if r.ok { "true" } else { "false" })) {
                                td { (check.name) }
                                td { @match &effective.policy { Some(p) => { "policy " (p) }, None => "this host" } }
                                td { (check.kind.as_str()) }
                                td { code { (crate::redact::url(&check.target)) } }
                                @match result {
                                    Some(r) => {
                                        td { @if r.ok { (badge("ok", "up")) } @else { (badge("failed", "down")) } }
                                        td { (r.latency_ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"))) }
                                        td { (r.status_code.map_or_else(|| "—".to_owned(), |s| s.to_string())) }
                                        td { (format::time(r.checked_at)) }
                                        td { (r.error.as_deref().unwrap_or("")) }
                                    }
                                    None => {
                                        td { (badge("queued", "no result yet")) }
                                        td { "—" } td { "—" } td { "—" } td {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if ctx.can_operate() {
                details.edit #health-checks-edit {
                    summary { "Edit this host's health checks" }
                    form #health-checks-form data-change data-form="health-checks" data-method="PUT"
                        data-path=(api_path(&data.history.host.host.id, "/health-checks")) data-then="reload" {
                        p.error.form-error data-form-error role="alert" {}
                        p.muted { "The agent runs them (the server never probes hosts). A blank one is left out; empty a check's name and target to remove it. Checks of matching policies are edited on their policy." }
                        (super::super::health_form::checks_inputs("host-health-checks", &data.watch.own_health_checks))
                        div.form-actions { button type="submit" { "Save health checks" } }
                    }
                }
            }
        }
    }
}

fn bytes_series(points: &[MetricPoint], pick: impl Fn(&MetricPoint) -> Option<u64>) -> Vec<Sample> {
    points
        .iter()
        .filter_map(|p| {
            Some(Sample {
                at: p.at,
                bytes: pick(p)?,
            })
        })
        .collect()
}

/// Load averages in thousandths (the chart's plain-number unit).
fn load_series(points: &[MetricPoint]) -> Vec<Sample> {
    points
        .iter()
        .filter_map(|p| {
            let load = p.load1.filter(|l| *l >= 0.0)?;
            Some(Sample {
                at: p.at,
                bytes: (load * 1000.0).round() as u64,
            })
        })
        .collect()
}

pub(super) fn metrics_section(points: &[MetricPoint]) -> Markup {
    let latest = points.last();
    let to_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let mut groups: Vec<String> = points
        .iter()
        .flat_map(|p| p.sources().into_keys())
        .collect();
    groups.sort();
    groups.dedup();
    let load = |p: &MetricPoint| p.load1;
    let (load_min, load_max) = points
        .iter()
        .filter_map(load)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    html! {
        section #host-metrics {
            h2 { "Host metrics" }
            @match latest {
                None => p.muted #host-metrics-none { "No metrics reported yet." },
                Some(p) => {
                    dl.facts {
                        dt { "Load (1 min)" } dd #host-load1 {
                            (p.load1.map_or_else(|| "—".to_owned(), |l| format!("{l:.2}")))
                            @if load_max.is_finite() { " (24 h: " (format!("{load_min:.2}")) " – " (format!("{load_max:.2}")) ")" }
                        }
                        dt { "Memory used" } dd #host-mem-used {
                            (to_u64(p.mem_used_bytes).map_or_else(|| "—".to_owned(), format::bytes))
                            @if let Some(total) = to_u64(p.mem_total_bytes) { " of " (format::bytes(total)) }
                        }
                        dt { "Disk free (state directory)" } dd #host-disk-free {
                            (to_u64(p.disk_free_bytes).map_or_else(|| "—".to_owned(), format::bytes))
                        }
                        @for (group, free) in p.sources() {
                            dt { "Disk free (" (group) ")" } dd data-source-group=(group) { (format::bytes(free)) }
                        }
                        dt { "Reported" } dd { (format::time(p.at)) }
                    }
                    h3 { "Memory used" }
                    (chart::render_with(&bytes_series(points, |p| to_u64(p.mem_used_bytes)), Labels {
                        id: "mem-used-chart", label: "Memory used over time", empty: "No memory figures reported.", unit: Unit::Bytes,
                    }))
                    h3 { "Disk free (state directory)" }
                    (chart::render_with(&bytes_series(points, |p| to_u64(p.disk_free_bytes)), Labels {
                        id: "disk-free-chart", label: "Free disk space of the state directory over time", empty: "No disk figures reported.", unit: Unit::Bytes,
                    }))
                    @for (i, group) in groups.iter().enumerate() {
                        h3 { "Disk free (source group " (group) ")" }
                        @let id = format!("source-disk-free-chart-{i}");
                        @let label = format!("Free disk space of source group {group} over time");
                        (chart::render_with(&bytes_series(points, |p| p.sources().get(group).copied()), Labels {
                            id: &id, label: &label, empty: "No figures reported.", unit: Unit::Bytes,
                        }))
                    }
                    h3 { "Load (1 min)" }
                    (chart::render_with(&load_series(points), Labels {
                        id: "load-chart", label: "1-minute load average over time", empty: "No load figures reported (Windows has none).", unit: Unit::Thousandths,
                    }))
                }
            }
        }
    }
}
