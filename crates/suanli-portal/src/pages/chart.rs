//! Bar charts drawn on the server: inline `<svg>` in the page (no script, nothing loaded), with
//! a value axis rounded to a readable maximum, and a table beside every chart for the exact
//! figures.

use maud::{Markup, html};

/// The drawing's size in SVG units (it scales to the page's width).
const W: f64 = 480.0;
const H: f64 = 200.0;
/// Room for the value axis' labels on the left and the bar labels below.
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 8.0;
/// Bar labels are thinned so that at least this many units separate two of them.
const LABEL_ROOM: f64 = 60.0;
/// A bar is at most this wide (a window of one period is one bar, not a block).
const MAX_BAR: f64 = 48.0;

/// A value axis from 0 to `max`, with gridlines at `ticks`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub max: f64,
    pub ticks: Vec<f64>,
}

/// The smallest "round" maximum (1, 2, 2.5 or 5 times a power of ten) at or above `top`, cut
/// into four or five equal steps. A chart of nothing (all zero, or no finite value) gets 0..1.
pub fn scale(top: f64) -> Scale {
    if !top.is_finite() || top <= 0.0 {
        return Scale {
            max: 1.0,
            ticks: vec![0.0, 0.25, 0.5, 0.75, 1.0],
        };
    }
    let pow = 10f64.powf(top.log10().floor());
    let (m, steps) = [(1.0, 5), (2.0, 4), (2.5, 5), (5.0, 5), (10.0, 5)]
        .into_iter()
        .find(|(m, _)| m * pow >= top * (1.0 - 1e-9))
        .expect("10 x pow is at least top");
    let max = m * pow;
    let ticks = (0..=steps).map(|i| max * i as f64 / steps as f64).collect();
    Scale { max, ticks }
}

/// One bar, in SVG units.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Whether its label is drawn (labels are thinned when bars are narrow).
    pub labelled: bool,
}

/// Where the bars of `values` go: side by side across the plot, heights by the [`scale`] of
/// the largest; negative and non-finite values are drawn as zero.
pub fn bars(values: &[f64]) -> (Scale, Vec<Bar>) {
    let top = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let s = scale(top);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = values.len().max(1) as f64;
    let slot = plot_w / n;
    let every = (LABEL_ROOM / slot).ceil().max(1.0) as usize;
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let h = v / s.max * plot_h;
            let w = (slot * 0.7).min(MAX_BAR);
            Bar {
                x: LEFT + slot * i as f64 + (slot - w) / 2.0,
                y: TOP + plot_h - h,
                w,
                h,
                labelled: i % every == 0,
            }
        })
        .collect();
    (s, bars)
}

/// A value for an axis label: four significant digits at most, no trailing zeros.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let decimals = match a {
        0.0 => 0,
        a => (3 - a.log10().floor() as i32).clamp(0, 8) as usize,
    };
    let s = format!("{v:.decimals$}");
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

/// A bar chart of `rows` (label, value), titled `title`, each bar's tooltip its label and
/// `shown` value. `id` must be unique in the page (it names the chart for screen readers).
pub fn bar_chart(id: &str, title: &str, rows: &[(String, f64, String)]) -> Markup {
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let (s, bs) = bars(&values);
    let plot_h = H - TOP - BOTTOM;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(id) {
                title id=(id) { (title) }
                @for t in &s.ticks {
                    @let y = TOP + plot_h - t / s.max * plot_h;
                    line x1=(LEFT) x2=(W - RIGHT) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) class="grid" {}
                    text x=(LEFT - 6.0) y=(format!("{:.1}", y + 4.0)) class="tick" { (short(*t)) }
                }
                @for (b, (label, _, shown)) in bs.iter().zip(rows) {
                    rect x=(format!("{:.1}", b.x)) y=(format!("{:.1}", b.y))
                        width=(format!("{:.1}", b.w)) height=(format!("{:.1}", b.h)) class="bar" {
                        title { (label) ": " (shown) }
                    }
                    @if b.labelled {
                        text x=(format!("{:.1}", b.x + b.w / 2.0)) y=(format!("{:.1}", H - BOTTOM + 16.0))
                            class="label" { (label) }
                    }
                }
            }
            figcaption { (title) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_rounds_up_to_a_readable_maximum() {
        assert_eq!(scale(7.3).max, 10.0);
        assert_eq!(scale(1.0).max, 1.0);
        assert_eq!(scale(1.2).max, 2.0);
        assert_eq!(scale(2.1).max, 2.5);
        assert_eq!(scale(420.0).max, 500.0);
        assert!((scale(0.037).max - 0.05).abs() < 1e-12);
        assert_eq!(scale(0.0).max, 1.0);
        assert_eq!(scale(f64::NAN).max, 1.0);
        let s = scale(2.1);
        assert_eq!(s.ticks, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        for top in [0.3, 3.0, 9.99, 12.0, 99.0, 1234.5] {
            let s = scale(top);
            assert!(s.max >= top && s.max <= top * 2.5, "{top} -> {}", s.max);
            assert_eq!(*s.ticks.last().unwrap(), s.max);
        }
    }

    #[test]
    fn bars_are_as_tall_as_their_values_and_stand_on_the_axis() {
        let (s, b) = bars(&[5.0, 10.0, 0.0, -3.0, f64::INFINITY]);
        assert_eq!(s.max, 10.0);
        let full = H - TOP - BOTTOM;
        assert!((b[1].h - full).abs() < 1e-9, "the largest fills the plot");
        assert!((b[0].h - full / 2.0).abs() < 1e-9);
        assert_eq!(b[2].h, 0.0);
        assert_eq!(b[3].h, 0.0, "negative values are drawn as zero");
        assert_eq!(b[4].h, 0.0, "so are non-finite ones");
        for x in &b {
            assert!((x.y + x.h - (H - BOTTOM)).abs() < 1e-9, "on the axis");
            assert!(x.x >= LEFT && x.x + x.w <= W - RIGHT);
        }
        assert!(b.windows(2).all(|w| w[0].x + w[0].w < w[1].x), "no overlap");
        let (_, one) = bars(&[3.0]);
        assert!(one[0].w <= MAX_BAR, "a lone bar is a bar, not a block");
        let mid = LEFT + (W - LEFT - RIGHT) / 2.0;
        assert!(
            (one[0].x + one[0].w / 2.0 - mid).abs() < 1e-9,
            "centred in its slot"
        );
    }

    #[test]
    fn labels_are_thinned_when_bars_are_many() {
        let (_, few) = bars(&[1.0; 5]);
        assert!(few.iter().all(|b| b.labelled));
        let (_, many) = bars(&[1.0; 92]);
        let shown = many.iter().filter(|b| b.labelled).count();
        assert!((5..=10).contains(&shown), "{shown} of 92 labelled");
        assert!(many[0].labelled);
    }

    #[test]
    fn axis_labels_carry_only_the_decimals_they_need() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(250.0), "250");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(1500.0), "1500");
        assert_eq!(short(0.0002), "0.0002", "small money keeps its digits");
        assert_eq!(short(0.0006), "0.0006");
        assert_eq!(short(12_345.0), "12345");
        assert_eq!(short(0.75), "0.75");
    }
}
