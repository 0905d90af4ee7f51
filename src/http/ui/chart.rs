//! The byte charts of the host page: a line chart drawn as SVG on the
//! server, of `repo.stats` samples (repository size over time) and of
//! heartbeat metrics (memory used, disk free).
//!
//! [`Scale`] maps (time, bytes) to SVG coordinates: time runs left to
//! right from the first sample to the last, size bottom to top from 0 to
//! a round ceiling in one binary unit ([`nice_ceiling`]), so the axis
//! reads "0, 250, 500, 750, 1000 MiB" rather than odd byte counts.

use maud::{html, Markup};

use super::format;

/// SVG width and height.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
/// Plot margins: room for the axis labels.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;
/// Horizontal grid lines above zero.
const TICKS: u32 = 4;
/// Samples up to this many get a dot with a tooltip each.
const MAX_DOTS: usize = 90;

/// One point of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix ms.
    pub at: i64,
    pub bytes: u64,
}

/// A round upper bound for the y axis: `(bound in bytes, unit in bytes,
/// unit name)`, the bound being 1, 2, 2.5 or 5 times a power of ten of
/// the unit (KiB, MiB, …) at or above `max`.
pub fn nice_ceiling(max: u64) -> (u64, u64, &'static str) {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit: u64 = 1;
    let mut k = 0;
    while max / unit >= 1024 && k + 1 < UNITS.len() {
        unit *= 1024;
        k += 1;
    }
    let scaled = (max as f64 / unit as f64).max(1.0);
    let magnitude = 10f64.powi(scaled.log10().floor() as i32);
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= scaled)
        .unwrap_or(10.0 * magnitude);
    let bound = (step * unit as f64).min(u64::MAX as f64) as u64;
    (bound.max(max), unit, UNITS[k])
}

/// Maps samples to plot coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    t_min: i64,
    t_max: i64,
    /// The y axis' top value, in bytes.
    pub top_bytes: u64,
    /// The unit of the axis labels.
    pub unit: u64,
    pub unit_name: &'static str,
}

/// What a sample's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: the axis in one binary unit.
    Bytes,
    /// Thousandths of a plain number (a load average × 1000): the axis
    /// from 0 to 1, 2, 2.5 or 5 × 10^n of the number, no unit.
    Thousandths,
}

/// A round decimal upper bound (at least 1.0, in thousandths) for `max`.
fn decimal_ceiling(max: u64) -> u64 {
    let scaled = (max as f64 / 1000.0).max(1.0);
    let magnitude = 10f64.powi(scaled.log10().floor() as i32);
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= scaled)
        .unwrap_or(10.0 * magnitude);
    ((step * 1000.0).min(u64::MAX as f64) as u64).max(max)
}

impl Scale {
    /// The scale for these samples (bytes), `None` if there are none.
    pub fn new(samples: &[Sample]) -> Option<Scale> {
        Self::with_unit(samples, Unit::Bytes)
    }

    /// The scale for these samples of `unit`, `None` if there are none.
    pub fn with_unit(samples: &[Sample], unit: Unit) -> Option<Scale> {
        let t_min = samples.iter().map(|s| s.at).min()?;
        let t_max = samples.iter().map(|s| s.at).max()?;
        let max = samples.iter().map(|s| s.bytes).max().unwrap_or(0);
        let (top_bytes, unit, unit_name) = match unit {
            Unit::Bytes => nice_ceiling(max),
            Unit::Thousandths => (decimal_ceiling(max), 1000, ""),
        };
        Some(Scale {
            t_min,
            t_max,
            top_bytes,
            unit,
            unit_name,
        })
    }

    /// The x of a time: the left edge for the first sample, the right edge
    /// for the last, the middle when there is only one time.
    pub fn x(&self, at: i64) -> f64 {
        let span = (self.t_max - self.t_min) as f64;
        let plot = WIDTH - LEFT - RIGHT;
        if span <= 0.0 {
            return LEFT + plot / 2.0;
        }
        LEFT + (at - self.t_min) as f64 / span * plot
    }

    /// The y of a size: the bottom edge for 0, the top edge for the axis
    /// maximum.
    pub fn y(&self, bytes: u64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        let fraction = if self.top_bytes == 0 {
            0.0
        } else {
            (bytes as f64 / self.top_bytes as f64).min(1.0)
        };
        HEIGHT - BOTTOM - fraction * plot
    }

    /// The label of a tick value, in the axis unit.
    fn label(&self, bytes: u64) -> String {
        let value = bytes as f64 / self.unit as f64;
        let text = if (value - value.round()).abs() < 1e-9 {
            format!("{value:.0} {}", self.unit_name)
        } else {
            format!("{value:.1} {}", self.unit_name)
        };
        text.trim_end().to_owned()
    }

    /// A sample's value as its tooltip says it.
    fn value(&self, bytes: u64) -> String {
        if self.unit_name.is_empty() {
            format!("{:.2}", bytes as f64 / self.unit as f64)
        } else {
            format::bytes(bytes)
        }
    }
}

/// What tells one chart from another on a page.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// The `<svg>`'s id (the note's is `{id}-empty`).
    pub id: &'a str,
    /// Its accessible name.
    pub label: &'a str,
    /// The note shown when there is nothing to chart.
    pub empty: &'a str,
    /// What the values are.
    pub unit: Unit,
}

/// The repository size chart of `samples` (any order) as an inline
/// `<svg>`, or a short note when there are none.
pub fn render(samples: &[Sample]) -> Markup {
    render_with(
        samples,
        Labels {
            id: "repo-size-chart",
            label: "Repository size over time",
            empty: "No repository statistics reported yet.",
            unit: Unit::Bytes,
        },
    )
}

/// A chart of `samples` (any order) named by `labels`.
pub fn render_with(samples: &[Sample], labels: Labels<'_>) -> Markup {
    let mut points = samples.to_vec();
    points.sort_by_key(|s| s.at);
    let Some(scale) = Scale::with_unit(&points, labels.unit) else {
        return html! { p.muted id={ (labels.id) "-empty" } { (labels.empty) } };
    };
    let line: Vec<String> = points
        .iter()
        .map(|s| format!("{:.1},{:.1}", scale.x(s.at), scale.y(s.bytes)))
        .collect();
    let first = points.first().map_or(0, |s| s.at);
    let last = points.last().map_or(0, |s| s.at);
    let date = |ms: i64| format::time(ms).chars().take(10).collect::<String>();
    html! {
        svg.chart id=(labels.id) xmlns="http://www.w3.org/2000/svg" role="img"
            width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            aria-label=(labels.label) {
            @for i in 0..=TICKS {
                @let value = scale.top_bytes / u64::from(TICKS) * u64::from(i);
                @let y = scale.y(value);
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{y:.1}")) y2=(format!("{y:.1}"))
                    stroke="#d0d7de" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", y + 4.0)) text-anchor="end" font-size="11" {
                    (scale.label(value))
                }
            }
            text x=(LEFT) y=(HEIGHT - 8.0) text-anchor="start" font-size="11" { (date(first)) }
            @if last != first {
                text x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" font-size="11" { (date(last)) }
            }
            polyline points=(line.join(" ")) fill="none" stroke="#0969da" stroke-width="2" {}
            @if points.len() <= MAX_DOTS {
                @for s in &points {
                    circle cx=(format!("{:.1}", scale.x(s.at))) cy=(format!("{:.1}", scale.y(s.bytes))) r="3" fill="#0969da" {
                        title { (format::time(s.at)) ": " (scale.value(s.bytes)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ui::xml_check::assert_well_formed;

    const MIB: u64 = 1024 * 1024;

    /// Axis maxima are 1, 2, 2.5 or 5 × 10^n of one binary unit, never below the data.
    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0), (1, 1, "B"));
        assert_eq!(nice_ceiling(700), (1000, 1, "B"));
        assert_eq!(nice_ceiling(700 * MIB), (1000 * MIB, MIB, "MiB"));
        assert_eq!(nice_ceiling(3 * MIB), (5 * MIB, MIB, "MiB"));
        assert_eq!(nice_ceiling(2 * MIB), (2 * MIB, MIB, "MiB"));
        assert_eq!(nice_ceiling(220 * MIB), (250 * MIB, MIB, "MiB"));
        assert_eq!(nice_ceiling(1536 * MIB).2, "GiB");
        let (bound, _, _) = nice_ceiling(u64::MAX);
        assert_eq!(bound, u64::MAX);
    }

    /// Time maps onto the plot's width, size onto its height from 0 at the bottom.
    #[test]
    fn scaling() {
        let samples = [
            Sample {
                at: 1_000,
                bytes: 100 * MIB,
            },
            Sample {
                at: 3_000,
                bytes: 200 * MIB,
            },
            Sample {
                at: 5_000,
                bytes: 50 * MIB,
            },
        ];
        let s = Scale::new(&samples).unwrap();
        assert_eq!(s.top_bytes, 200 * MIB);
        assert!((s.x(1_000) - LEFT).abs() < 1e-9);
        assert!((s.x(5_000) - (WIDTH - RIGHT)).abs() < 1e-9);
        assert!((s.x(3_000) - (LEFT + (WIDTH - LEFT - RIGHT) / 2.0)).abs() < 1e-9);
        assert!((s.y(0) - (HEIGHT - BOTTOM)).abs() < 1e-9);
        assert!((s.y(200 * MIB) - TOP).abs() < 1e-9);
        assert!((s.y(100 * MIB) - (TOP + (HEIGHT - TOP - BOTTOM) / 2.0)).abs() < 1e-9);
        // Values above the axis are clamped to the top.
        assert!((s.y(u64::MAX) - TOP).abs() < 1e-9);
        assert_eq!(s.label(100 * MIB), "100 MiB");
        assert_eq!(s.label(MIB / 2), "0.5 MiB");
    }

    /// A load chart's axis is a round plain number, at least 1.
    #[test]
    fn thousandths_scale() {
        let at = |bytes| Sample { at: 0, bytes };
        let s = Scale::with_unit(&[at(250)], Unit::Thousandths).unwrap();
        assert_eq!(s.top_bytes, 1000);
        assert_eq!(s.label(500), "0.5");
        assert_eq!(s.value(250), "0.25");
        let s = Scale::with_unit(&[at(3_700)], Unit::Thousandths).unwrap();
        assert_eq!(s.top_bytes, 5000);
        assert_eq!(s.label(5000), "5");
    }

    /// One sample sits in the middle; no samples is a note, not an empty chart.
    #[test]
    fn degenerate_series() {
        let one = [Sample { at: 7, bytes: 10 }];
        let s = Scale::new(&one).unwrap();
        assert!((s.x(7) - (LEFT + (WIDTH - LEFT - RIGHT) / 2.0)).abs() < 1e-9);
        assert!(Scale::new(&[]).is_none());
        let empty = render(&[]).into_string();
        assert!(empty.contains("No repository statistics"));
    }

    /// The chart is well-formed SVG with one polyline point per sample, in time order.
    #[test]
    fn svg_is_well_formed() {
        let samples: Vec<Sample> = (0..5)
            .rev()
            .map(|i| Sample {
                at: 1_767_323_045_678 + i * 86_400_000,
                bytes: (i as u64 + 1) * 10 * MIB,
            })
            .collect();
        let svg = render(&samples).into_string();
        assert_well_formed(&svg);
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let xs: Vec<f64> = points
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 5);
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("2026-01-02"));
    }
}
