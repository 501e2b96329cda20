//! The city's statistics: the indicators of a window by period and group, as bar charts drawn
//! on the server and a table of the figures (docs/INDICATORS.md defines each), and the frozen
//! quarterly releases with their files.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use suanli_client::IndicatorsQuery;
use suanli_proto::{IndicatorRow, IndicatorsView};
use suanli_types::Money;

use crate::i18n::{Arg, cst, yuan};
use crate::layout::{self, Failure};
use crate::pages::chart::bar_chart;
use crate::session::Ctx;

const PERIODS: [&str; 4] = ["hour", "day", "month", "quarter"];
const GROUPS: [&str; 5] = ["all", "center", "sku", "vendor", "category"];

#[derive(Deserialize, Default)]
pub struct IndicatorsForm {
    #[serde(default)]
    period: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn given(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn indicators(ctx: Ctx, Query(q): Query<IndicatorsForm>) -> Response {
    let r = async {
        ctx.signed_in()?;
        // The hub checks every field and names the wrong one; the form only offers known values.
        let view = ctx
            .client()?
            .indicators(&IndicatorsQuery {
                from: given(&q.from),
                to: given(&q.to),
                period: given(&q.period),
                by: given(&q.by),
            })
            .await?;
        Ok::<_, Failure>(layout::render(
            &ctx,
            &ctx.t("indicators-title"),
            indicators_body(&ctx, &q, &view),
        ))
    }
    .await;
    layout::finish(&ctx, r)
}

/// One period's figures over all its groups.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    delivered: f64,
    allocated: f64,
    available: f64,
    gross: Money,
    /// The rows with capacity figures, and the utilisation of the last of them.
    with_capacity: usize,
    own_utilisation: Option<f64>,
}

impl Totals {
    /// Allocated over available card-hours, when any were available: a lone row's own ratio
    /// (exact, where its rounded card-hours may be zero), else the ratio of the sums.
    fn utilisation(&self) -> Option<f64> {
        match self.with_capacity {
            1 => self.own_utilisation,
            _ => (self.available > 0.0).then(|| self.allocated / self.available),
        }
    }
}

/// The rows added up by period (in period order) and by group (in group order).
fn totals<'a>(
    rows: &'a [IndicatorRow],
    key: impl Fn(&'a IndicatorRow) -> &'a str,
) -> BTreeMap<&'a str, Totals> {
    let mut out: BTreeMap<&str, Totals> = BTreeMap::new();
    for r in rows {
        let t = out.entry(key(r)).or_default();
        // From the exact seconds: the hub rounds card-hours to three decimals per row.
        t.delivered += r.usage.delivered_card_seconds as f64 / 3600.0;
        t.gross = Money(t.gross.0 + r.usage.gross_yuan.0);
        if let Some(c) = &r.capacity {
            t.allocated += c.allocated_card_hours;
            t.available += c.available_card_hours;
            t.with_capacity += 1;
            t.own_utilisation = c.utilisation;
        }
    }
    out
}

/// A period as a short bar label: days and hours without their year (`10-01`, `10-01 08h`).
fn short_period(p: &str) -> String {
    let b = p.as_bytes();
    if !p.is_ascii() {
        return p.to_string();
    }
    match p.len() {
        10 if b[4] == b'-' && b[7] == b'-' => p[5..].to_string(),
        14 if b[10] == b'T' => format!("{} {}h", &p[5..10], &p[11..13]),
        _ => p.to_string(),
    }
}

/// A group's name for the page: the whole network and work not yet placed by their labels,
/// tenant categories by theirs, centers, chips and vendors as the hub names them.
fn group_label(ctx: &Ctx, by: &str, g: &str) -> String {
    match (by, g) {
        (_, "all") => ctx.t("by-all"),
        (_, "not placed") => ctx.t("group-not-placed"),
        ("category", c)
            if suanli_types::TenantCategory::ALL
                .iter()
                .any(|x| x.as_str() == c) =>
        {
            ctx.lang.t(&format!("category-{c}"))
        }
        (_, g) => g.to_string(),
    }
}

/// Card-hours to three decimals, as the hub gives them.
fn card_hours(h: f64) -> String {
    format!("{h:.3}")
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0))
}

fn secs(ctx: &Ctx, s: Option<u64>) -> String {
    s.map_or_else(|| "—".into(), |s| ctx.lang.duration(s))
}

fn indicators_body(ctx: &Ctx, q: &IndicatorsForm, v: &IndicatorsView) -> Markup {
    let by_period = totals(&v.rows, |r| r.period.as_str());
    let by_group = totals(&v.rows, |r| r.group.as_str());
    let delivered: Vec<(String, f64, String)> = by_period
        .iter()
        .map(|(p, t)| (short_period(p), t.delivered, card_hours(t.delivered)))
        .collect();
    let utilisation: Vec<(String, f64, String)> = by_period
        .iter()
        .map(|(p, t)| {
            let u = t.utilisation();
            (short_period(p), u.unwrap_or(0.0) * 100.0, pct(u))
        })
        .collect();
    let gross: Vec<(String, f64, String)> = by_period
        .iter()
        .map(|(p, t)| {
            let y = t.gross.0 as f64 / Money::UNITS_PER_YUAN as f64;
            (short_period(p), y, yuan(t.gross))
        })
        .collect();
    let groups: Vec<(String, f64, String)> = by_group
        .iter()
        .map(|(g, t)| {
            (
                group_label(ctx, &v.by, g),
                t.delivered,
                card_hours(t.delivered),
            )
        })
        .collect();
    let has_capacity = v.rows.iter().any(|r| r.capacity.is_some());
    html! {
        form.filters method="get" action="/indicators" {
            label for="period" { (ctx.t("indicators-period")) }
            select id="period" name="period" {
                @for p in PERIODS {
                    option value=(p) selected[v.period == p] { (ctx.lang.t(&format!("period-{p}"))) }
                }
            }
            label for="by" { (ctx.t("indicators-by")) }
            select id="by" name="by" {
                @for g in GROUPS {
                    option value=(g) selected[v.by == g] { (ctx.lang.t(&format!("by-{g}"))) }
                }
            }
            label for="from" { (ctx.t("indicators-from")) }
            input id="from" name="from" value=(q.from) placeholder="2026Q4" size="12";
            label for="to" { (ctx.t("indicators-to")) }
            input id="to" name="to" value=(q.to) placeholder="2026-12-31" size="12";
            button type="submit" { (ctx.t("jobs-filter-button")) }
        }
        p.lead {
            (ctx.lang.ta("indicators-window", &[
                ("from", Arg::Str(cst(v.from))),
                ("to", Arg::Str(cst(v.to))),
            ]))
            @if let Some(t) = &v.tenant { " " (ctx.lang.ta("indicators-own", &[("tenant", Arg::Str(t.to_string()))])) }
        }
        @if v.rows.is_empty() {
            p.empty { (ctx.t("indicators-none")) }
        } @else {
            div.charts {
                (bar_chart("chart-delivered", &ctx.t("chart-delivered"), &delivered))
                @if has_capacity {
                    (bar_chart("chart-utilisation", &ctx.t("chart-utilisation"), &utilisation))
                }
                (bar_chart("chart-gross", &ctx.t("chart-gross"), &gross))
                @if v.by != "all" {
                    (bar_chart("chart-groups", &ctx.t("chart-groups"), &groups))
                }
            }
            (table(ctx, v))
        }
        p { small { (ctx.t("indicators-help")) } }
    }
}

fn table(ctx: &Ctx, v: &IndicatorsView) -> Markup {
    html! {
        table.indicators {
            caption { (ctx.t("indicators-table")) }
            thead { tr {
                th scope="col" { (ctx.t("col-period")) }
                th scope="col" { (ctx.t("col-group")) }
                th scope="col" class="num" { (ctx.t("col-available")) }
                th scope="col" class="num" { (ctx.t("col-allocated")) }
                th scope="col" class="num" { (ctx.t("col-delivered")) }
                th scope="col" class="num" { (ctx.t("col-utilisation")) }
                th scope="col" class="num" { (ctx.t("col-availability")) }
                th scope="col" class="num" { (ctx.t("col-jobs")) }
                th scope="col" class="num" { (ctx.t("col-wait")) }
                th scope="col" class="num" { (ctx.t("col-gross")) }
                th scope="col" class="num" { (ctx.t("col-subsidy")) }
                th scope="col" class="num" { (ctx.t("col-tenants")) }
            } }
            tbody {
                @for r in &v.rows {
                    @let u = &r.usage;
                    tr {
                        th scope="row" { (r.period) }
                        td { (group_label(ctx, &v.by, &r.group)) }
                        @match &r.capacity {
                            Some(c) => {
                                td.num { (card_hours(c.available_card_hours)) }
                                td.num { (card_hours(c.allocated_card_hours)) }
                            }
                            None => { td.num { "—" } td.num { (card_hours(u.allocated_card_hours)) } }
                        }
                        td.num { (card_hours(u.delivered_card_hours)) }
                        td.num { (pct(r.capacity.as_ref().and_then(|c| c.utilisation))) }
                        td.num { (pct(r.capacity.as_ref().and_then(|c| c.availability))) }
                        td.num {
                            (u.jobs_submitted) " / " (u.jobs_succeeded) " / " (u.jobs_failed)
                        }
                        td.num { (secs(ctx, u.wait_p50_secs)) " / " (secs(ctx, u.wait_p95_secs)) }
                        td.num { (yuan(u.gross_yuan)) }
                        td.num { (yuan(u.subsidy_yuan)) }
                        td.num { (u.active_tenants) }
                    }
                }
            }
        }
    }
}

pub async fn releases(ctx: Ctx) -> Response {
    let r = async {
        ctx.signed_in()?;
        let list = ctx.client()?.releases().await?;
        let body = html! {
            p { (ctx.t("releases-intro")) }
            @if list.releases.is_empty() {
                p.empty { (ctx.t("releases-none")) }
            } @else {
                table.releases {
                    thead { tr {
                        th scope="col" { (ctx.t("col-quarter")) }
                        th scope="col" { (ctx.t("col-made")) }
                        th scope="col" { (ctx.t("col-files")) }
                        th scope="col" { (ctx.t("col-sha256")) }
                    } }
                    tbody {
                        @for rel in &list.releases {
                            tr {
                                th scope="row" { (rel.quarter) }
                                td { (cst(rel.made_at)) }
                                td {
                                    ul.files {
                                        @for f in &rel.files {
                                            // The hub names its files by path: the portal is served beside it.
                                            li { a href=(f) { (f.rsplit('/').next().unwrap_or(f)) } }
                                        }
                                    }
                                }
                                td.hash { code { (rel.sha256) } }
                            }
                        }
                    }
                }
            }
        };
        Ok::<_, Failure>(layout::render(&ctx, &ctx.t("releases-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_proto::{CapacityFigures, UsageFigures};

    fn row(period: &str, group: &str, delivered: f64, cap: Option<(f64, f64)>) -> IndicatorRow {
        let usage: UsageFigures = serde_json::from_value(serde_json::json!({
            "allocated_card_hours": 0.0, "delivered_card_hours": delivered,
            "delivered_card_seconds": (delivered * 3600.0) as u64, "jobs_submitted": 0, "jobs_started": 0,
            "jobs_succeeded": 0, "jobs_failed": 0, "jobs_cancelled": 0, "jobs_timed_out": 0,
            "wait_p50_secs": null, "wait_p95_secs": null, "wait_p99_secs": null,
            "gross_yuan": "1.50", "subsidy_yuan": "0", "payable_yuan": "1.50",
            "subsidy_rate": null, "active_tenants": 1, "amendments": 0
        }))
        .unwrap();
        IndicatorRow {
            period: period.into(),
            group: group.into(),
            capacity: cap.map(|(allocated, available)| CapacityFigures {
                utilisation: (available > 0.0).then(|| allocated / available),
                installed_card_hours: available,
                installed_fp16_pflops: 0.0,
                available_card_hours: available,
                allocated_card_hours: allocated,
                down_card_hours: 0.0,
                drained_card_hours: 0.0,
                delivered_utilisation: None,
                availability: None,
            }),
            usage,
        }
    }

    #[test]
    fn periods_add_up_their_groups_in_period_order() {
        let rows = [
            row("2026-10-02", "sz", 2.0, Some((1.0, 4.0))),
            row("2026-10-01", "sz", 1.0, Some((0.0, 0.0))),
            row("2026-10-02", "gz", 3.0, Some((3.0, 4.0))),
            row("2026-10-01", "gz", 0.5, None),
        ];
        let t = totals(&rows, |r| r.period.as_str());
        let keys: Vec<_> = t.keys().copied().collect();
        assert_eq!(keys, ["2026-10-01", "2026-10-02"]);
        let d2 = &t["2026-10-02"];
        assert_eq!(d2.delivered, 5.0);
        assert_eq!(d2.utilisation(), Some(0.5), "(1 + 3) / (4 + 4)");
        assert_eq!(d2.gross, Money(30_000));
        assert_eq!(t["2026-10-01"].utilisation(), None, "nothing available");
        // A lone row keeps its own exact ratio, even where its rounded figures are zero.
        let mut tiny = row("2026-10-03", "sz", 0.0, Some((0.0, 0.0)));
        tiny.capacity.as_mut().unwrap().utilisation = Some(1.0);
        let t = totals(std::slice::from_ref(&tiny), |r| r.period.as_str());
        assert_eq!(t["2026-10-03"].utilisation(), Some(1.0));
        let g = totals(&rows, |r| r.group.as_str());
        assert_eq!(g["gz"].delivered, 3.5);
    }

    #[test]
    fn bar_labels_drop_the_year_of_days_and_hours() {
        assert_eq!(short_period("2026-10-01"), "10-01");
        assert_eq!(short_period("2026-10-01T08Z"), "10-01 08h");
        assert_eq!(short_period("2026-10"), "2026-10");
        assert_eq!(short_period("2026Q4"), "2026Q4");
        assert_eq!(pct(Some(0.4567)), "45.7%");
        assert_eq!(pct(None), "—");
    }
}
