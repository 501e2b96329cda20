//! The operator's desk beyond the centers: the queue by class and chip family with why each job
//! waits, the tenants with their share, quotas and budgets, the price table, and the voucher
//! programmes with what their budgets paid out.

use std::collections::BTreeMap;

use axum::response::Response;
use maud::{Markup, html};
use suanli_client::{ClientError, JobFilter};
use suanli_proto::{BudgetView, ErrorCode, JobSummary, TenantPolicyView, TenantView};
use suanli_types::{ChipRequest, JobState, PriorityClass};

use crate::i18n::{Arg, cst, yuan};
use crate::layout::{self, Failure};
use crate::pages::each_at_once;
use crate::session::Ctx;

/// The pending jobs the queue page reads (oldest first); beyond them it links to the list.
const QUEUE_PAGE: u32 = 200;
/// Reads in flight at once while the queue page learns each job's chip request (and the
/// tenants page each tenant's policy and budget).
const READS_AT_ONCE: usize = 8;

fn operator(ctx: &Ctx) -> Result<(), Failure> {
    match ctx.signed_in()?.is_operator() {
        true => Ok(()),
        false => Err(Failure::Forbidden),
    }
}

/// The operator and supervisors (who read prices and programme totals too).
fn reader(ctx: &Ctx) -> Result<(), Failure> {
    let s = ctx.signed_in()?;
    match s.is_operator() || s.is_supervisor() {
        true => Ok(()),
        false => Err(Failure::Forbidden),
    }
}

/// The chip family a job asks for: its vendor, else its SKU family, else its SKUs; `None` when
/// any chip will do.
pub fn family(c: &ChipRequest) -> Option<String> {
    c.vendor
        .clone()
        .or_else(|| c.family.clone())
        .or_else(|| (!c.skus.is_empty()).then(|| c.skus.join(" / ")))
        .map(|f| f.to_ascii_lowercase())
}

/// Pending jobs of one class and chip family.
#[derive(Debug)]
pub struct Group<'a> {
    pub class: PriorityClass,
    pub family: Option<String>,
    pub jobs: Vec<&'a JobSummary>,
}

/// `jobs` (with the chip family each asks for) by class, most urgent first, then family (any
/// chip last), oldest job first within each.
pub fn group(jobs: &[(JobSummary, Option<String>)]) -> Vec<Group<'_>> {
    let mut map: BTreeMap<(usize, bool, Option<String>), Vec<&JobSummary>> = BTreeMap::new();
    for (j, f) in jobs {
        map.entry((j.priority.rank(), f.is_none(), f.clone()))
            .or_default()
            .push(j);
    }
    map.into_iter()
        .map(|((_, _, family), mut jobs)| {
            jobs.sort_by_key(|j| (j.submitted_at, j.id.0));
            Group {
                class: jobs[0].priority,
                family,
                jobs,
            }
        })
        .collect()
}

pub fn class_label(ctx: &Ctx, c: PriorityClass) -> String {
    ctx.lang.t(&format!("class-{}", c.as_str()))
}

pub async fn queue(ctx: Ctx) -> Response {
    let r = async {
        operator(&ctx)?;
        let c = ctx.client()?;
        let list = c
            .jobs(&JobFilter {
                state: Some("submitted,queued".into()),
                order: Some("oldest".into()),
                limit: Some(QUEUE_PAGE),
                ..JobFilter::default()
            })
            .await?;
        // The list carries neither the chip request nor why a queued job waits (the hub
        // explains that per job): each pending job is read, a few at a time.
        let reads = each_at_once(&list.jobs, READS_AT_ONCE, |j| {
            let (c, id) = (ctx.client()?, j.id);
            Ok(async move { c.job(id).await })
        })
        .await?;
        let mut pending = Vec::with_capacity(reads.len());
        for view in reads {
            match view {
                Ok(v) => {
                    let f = family(&v.spec.chips);
                    pending.push((v.summary, f));
                }
                // Gone between the list and the read: it no longer waits.
                Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Placed in the meantime: no longer pending.
        pending.retain(|(j, _)| matches!(j.state, JobState::Submitted | JobState::Queued));
        let groups = group(&pending);
        let body = html! {
            p { (ctx.t("queue-intro")) }
            @if groups.is_empty() {
                p.empty { (ctx.t("queue-empty")) }
            }
            @for g in &groups {
                @let cards: u32 = g.jobs.iter().map(|j| j.cards).sum();
                section.queue-group {
                    h2 {
                        (class_label(&ctx, g.class)) " · "
                        (g.family.clone().unwrap_or_else(|| ctx.t("queue-any-chip")))
                        " " small { (ctx.lang.ta("queue-count", &[
                            ("jobs", Arg::Num(g.jobs.len() as i64)),
                            ("cards", Arg::Num(cards as i64)),
                        ])) }
                    }
                    table.queue {
                        thead { tr {
                            th scope="col" class="num" { (ctx.t("col-id")) }
                            th scope="col" { (ctx.t("col-name")) }
                            th scope="col" { (ctx.t("col-tenant")) }
                            th scope="col" class="num" { (ctx.t("col-cards")) }
                            th scope="col" { (ctx.t("col-submitted")) }
                            th scope="col" { (ctx.t("col-pending-reason")) }
                        } }
                        tbody {
                            @for j in &g.jobs {
                                tr {
                                    td.num { a href=(format!("/jobs/{}", j.id.0)) { (j.id.0) } }
                                    td { a href=(format!("/jobs/{}", j.id.0)) { (j.name) } }
                                    td { (j.tenant) }
                                    td.num { (j.cards) }
                                    td { time { (cst(j.submitted_at)) } }
                                    td.reason { (j.reason.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
            @if list.next.is_some() {
                p { a href="/jobs?state=queued" { (ctx.lang.ta("queue-more", &[("n", Arg::Num(QUEUE_PAGE as i64))])) } }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("queue-page-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

/// A tenant's budget, or none when none is set.
fn no_budget(r: Result<BudgetView, ClientError>) -> Result<Option<BudgetView>, ClientError> {
    match r {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn tenants(ctx: Ctx) -> Response {
    let r = async {
        operator(&ctx)?;
        let c = ctx.client()?;
        let tenants = c.tenants().await?;
        // Each tenant's policy and budget are calls of their own: a few tenants at a time,
        // both calls of a tenant at once.
        let reads = each_at_once(&tenants, READS_AT_ONCE, |t| {
            let (c, id) = (ctx.client()?, t.id.to_string());
            Ok(async move { tokio::join!(c.tenant_policy(&id), c.budget(&id)) })
        })
        .await?;
        let mut rows: Vec<(TenantView, TenantPolicyView, Option<BudgetView>)> =
            Vec::with_capacity(tenants.len());
        for (t, (policy, budget)) in tenants.into_iter().zip(reads) {
            rows.push((t, policy?, no_budget(budget)?));
        }
        let body = html! {
            p { (ctx.t("tenants-intro")) }
            @if rows.is_empty() {
                p.empty { (ctx.t("tenants-none")) }
            } @else {
                table.tenants {
                    thead { tr {
                        th scope="col" { (ctx.t("col-tenant")) }
                        th scope="col" { (ctx.t("col-category")) }
                        th scope="col" class="num" { (ctx.t("col-weight")) }
                        th scope="col" { (ctx.t("col-quotas")) }
                        th scope="col" { (ctx.t("col-budget")) }
                    } }
                    tbody {
                        @for (t, p, b) in &rows {
                            tr {
                                th scope="row" { (t.name) br; small { (t.id) } }
                                td {
                                    (ctx.lang.t(&format!("category-{}", t.category.as_str())))
                                    @if p.public_service { br; small { (ctx.t("tenants-public-service")) } }
                                }
                                td.num { (p.weight) }
                                td {
                                    @if p.quotas.is_empty() { span.empty { (ctx.t("tenants-no-quota")) } }
                                    ul.quotas {
                                        @for (fam, q) in &p.quotas {
                                            li { (ctx.lang.ta("tenants-quota", &[
                                                ("family", Arg::Str(fam.clone())),
                                                ("nominal", Arg::Num(q.nominal as i64)),
                                                ("borrow", Arg::Num(q.borrow_limit as i64)),
                                            ])) }
                                        }
                                    }
                                }
                                td { (budget(&ctx, b.as_ref())) }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("tenants-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

fn budget(ctx: &Ctx, b: Option<&BudgetView>) -> Markup {
    let Some(b) = b else {
        return html! { span.empty { (ctx.t("tenants-no-budget")) } };
    };
    let at_limit = match b.at_limit {
        suanli_proto::AtLimit::Stop => ctx.t("budget-stop"),
        suanli_proto::AtLimit::LetFinish => ctx.t("budget-let-finish"),
    };
    let level = match b.level.as_str() {
        "ok" => "budget-ok",
        "warning" => "budget-warning",
        "exhausted" => "budget-exhausted",
        _ => "budget-unknown",
    };
    html! {
        (ctx.lang.ta("tenants-budget", &[
            ("spent", Arg::Str(yuan(b.spent))),
            ("limit", Arg::Str(yuan(b.monthly_limit))),
            ("month", Arg::Str(b.month.clone())),
        ]))
        br;
        span class=(format!("level {}", b.level)) { (ctx.t(level)) } " · " small { (at_limit) }
    }
}

pub async fn prices(ctx: Ctx) -> Response {
    let r = async {
        reader(&ctx)?;
        let mut rows = ctx.client()?.prices().await?;
        rows.sort_by(|a, b| {
            (a.center.as_str(), &a.sku, std::cmp::Reverse(a.effective_from)).cmp(&(
                b.center.as_str(),
                &b.sku,
                std::cmp::Reverse(b.effective_from),
            ))
        });
        let body = html! {
            p { (ctx.t("prices-intro")) }
            @if rows.is_empty() {
                p.empty { (ctx.t("prices-none")) }
            } @else {
                table.prices {
                    thead { tr {
                        th scope="col" class="num" { (ctx.t("col-row")) }
                        th scope="col" { (ctx.t("col-center")) }
                        th scope="col" { (ctx.t("col-chip")) }
                        th scope="col" class="num" { (ctx.t("col-price")) }
                        th scope="col" class="num" { (ctx.t("col-spot-discount")) }
                        th scope="col" { (ctx.t("col-effective")) }
                        th scope="col" { (ctx.t("col-in-force")) }
                    } }
                    tbody {
                        @for p in &rows {
                            tr id=(format!("row-{}", p.id)) class=[p.in_force.then_some("chosen")] {
                                td.num { (p.id) }
                                td { (p.center) }
                                td { (p.sku) }
                                td.num { (yuan(p.price_per_card_hour)) }
                                td.num { (p.spot_discount_bp.map_or_else(|| "—".into(), bp)) }
                                td { (cst(p.effective_from)) }
                                td { @if p.in_force { span.ok { (ctx.t("prices-in-force")) } } @else { small { (ctx.t("prices-superseded")) } } }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("prices-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

/// Basis points as a percentage: `2500` is `25%`, `1250` is `12.5%`.
pub fn bp(b: u32) -> String {
    match b % 100 {
        0 => format!("{}%", b / 100),
        r if r % 10 == 0 => format!("{}.{}%", b / 100, r / 10),
        r => format!("{}.{r:02}%", b / 100),
    }
}

/// The share of `whole` that `part` is, as a percentage with one decimal.
pub fn share(part: i64, whole: i64) -> String {
    match whole {
        0 => "—".into(),
        w => format!("{:.1}%", part as f64 * 100.0 / w as f64),
    }
}

pub async fn programmes(ctx: Ctx) -> Response {
    let r = async {
        reader(&ctx)?;
        let v = ctx.client()?.vouchers().await?;
        let body = html! {
            p { (ctx.t("programmes-intro")) }
            @if v.programmes.is_empty() {
                p.empty { (ctx.t("programmes-none")) }
            }
            @for p in &v.programmes {
                @let s = &p.spec;
                section.card.programme id=(format!("p-{}", s.id)) {
                    h2 {
                        (s.id) " " small { (s.issuer) }
                        @if p.expired_at.is_some() { " " span.denied { (ctx.t("programmes-expired")) } }
                    }
                    @if let Some(t) = &p.totals {
                        div.meter role="img" aria-label=(ctx.lang.ta("programmes-used", &[
                            ("share", Arg::Str(share(t.paid_out.0, s.budget.0))),
                        ])) {
                                (meter(t.paid_out.0, t.granted.0, s.budget.0))
                        }
                        p.legend {
                            span { span.swatch.paid {} (ctx.t("programmes-paid-out")) }
                            span { span.swatch.granted {} (ctx.t("programmes-granted-unpaid")) }
                            span { span.swatch.rest {} (ctx.t("programmes-unallocated")) }
                        }
                    }
                    dl.facts {
                        dt { (ctx.t("programmes-budget")) } dd { (yuan(s.budget)) }
                        @if let Some(t) = &p.totals {
                            dt { (ctx.t("programmes-granted")) } dd { (yuan(t.granted)) " (" (share(t.granted.0, s.budget.0)) ")" }
                            dt { (ctx.t("programmes-paid-out")) } dd.strong { (yuan(t.paid_out)) " (" (share(t.paid_out.0, s.budget.0)) ")" }
                            dt { (ctx.t("programmes-remaining")) } dd { (yuan(t.remaining)) }
                            dt { (ctx.t("programmes-unallocated")) } dd { (yuan(t.unallocated)) }
                        }
                        dt { (ctx.t("programmes-valid")) } dd { (cst(s.valid_from)) " – " (cst(s.valid_until)) }
                        dt { (ctx.t("programmes-rate")) } dd {
                            (bp(s.base_rate_bp))
                            @for r in &s.category_rates {
                                ", " (ctx.lang.t(&format!("category-{}", r.category.as_str()))) " " (bp(r.rate_bp))
                            }
                            @if let Some(d) = s.domestic_rate_bp { ", " (ctx.t("programmes-domestic")) " " (bp(d)) }
                        }
                        dt { (ctx.t("programmes-cap")) } dd { (yuan(s.cap_per_tenant)) }
                        dt { (ctx.t("programmes-eligible")) } dd {
                            @for (i, c) in s.eligible.iter().enumerate() {
                                @if i > 0 { ", " }
                                (ctx.lang.t(&format!("category-{}", c.as_str())))
                            }
                        }
                    }
                    @let draws: Vec<_> = v.balances.iter().filter(|b| b.programme == s.id).collect();
                    @if !draws.is_empty() {
                        table.draws {
                            thead { tr {
                                th scope="col" { (ctx.t("col-tenant")) }
                                th scope="col" class="num" { (ctx.t("programmes-granted")) }
                                th scope="col" class="num" { (ctx.t("programmes-paid-out")) }
                                th scope="col" class="num" { (ctx.t("col-balance")) }
                                th scope="col" class="num" { (ctx.t("col-expired")) }
                            } }
                            tbody {
                                @for b in draws {
                                    tr {
                                        th scope="row" { (b.draw.tenant) }
                                        td.num { (yuan(b.draw.granted)) }
                                        td.num { (yuan(b.draw.paid)) }
                                        td.num { (yuan(b.draw.balance)) }
                                        td.num { (yuan(b.draw.expired)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("programmes-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

/// The budget as a bar: paid out, then granted but not yet paid, then the rest.
fn meter(paid: i64, granted: i64, budget: i64) -> Markup {
    let w = |x: i64| match budget {
        b if b <= 0 => 0.0,
        b => (x.clamp(0, b) as f64 / b as f64 * 100.0 * 10.0).round() / 10.0,
    };
    let paid_w = w(paid);
    let granted_w = (w(granted) - paid_w).max(0.0);
    html! {
        svg viewBox="0 0 100 6" preserveAspectRatio="none" class="meter" {
            rect x="0" y="0" width="100" height="6" class="rest" {}
            rect x="0" y="0" width=(paid_w) height="6" class="paid" {}
            rect x=(paid_w) y="0" width=(granted_w) height="6" class="granted" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_types::{JobId, TenantId, Timestamp};

    fn job(id: i64, class: PriorityClass, at: i64) -> JobSummary {
        JobSummary {
            id: JobId(id),
            name: format!("j{id}"),
            tenant: TenantId::new("acme"),
            queue: "default".into(),
            priority: class,
            state: JobState::Queued,
            attempt: 0,
            center: None,
            sku: None,
            cards: 2,
            submitted_at: Timestamp(at),
            started_at: None,
            ended_at: None,
            exit_code: None,
            submitted_by: "alice".into(),
            walltime_secs: 60,
            reason: Some("no free cards".into()),
            held: false,
            array_job_id: None,
            array_task_id: None,
        }
    }

    #[test]
    fn the_queue_groups_by_class_then_family_oldest_first() {
        use PriorityClass::*;
        let jobs = vec![
            (job(1, Standard, 30), Some("nvidia".to_string())),
            (job(2, Spot, 10), None),
            (job(3, Standard, 20), Some("nvidia".to_string())),
            (job(4, PublicService, 40), Some("huawei".to_string())),
            (job(5, Standard, 5), None),
            (job(6, Standard, 50), Some("huawei".to_string())),
        ];
        let g = group(&jobs);
        let shape: Vec<(PriorityClass, Option<&str>, Vec<i64>)> = g
            .iter()
            .map(|g| {
                (
                    g.class,
                    g.family.as_deref(),
                    g.jobs.iter().map(|j| j.id.0).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (PublicService, Some("huawei"), vec![4]),
                (Standard, Some("huawei"), vec![6]),
                (Standard, Some("nvidia"), vec![3, 1]),
                (Standard, None, vec![5]),
                (Spot, None, vec![2]),
            ]
        );
    }

    #[test]
    fn a_jobs_family_is_its_vendor_else_its_sku_family_else_its_skus() {
        let mut c = ChipRequest::default();
        assert_eq!(family(&c), None);
        c.skus = vec!["H100-SXM".into(), "H800-SXM".into()];
        assert_eq!(family(&c).as_deref(), Some("h100-sxm / h800-sxm"));
        c.family = Some("Ascend910B".into());
        assert_eq!(family(&c).as_deref(), Some("ascend910b"));
        c.vendor = Some("Huawei".into());
        assert_eq!(family(&c).as_deref(), Some("huawei"));
    }

    #[test]
    fn rates_and_shares_read_as_percentages() {
        assert_eq!(bp(2500), "25%");
        assert_eq!(bp(1250), "12.5%");
        assert_eq!(bp(1234), "12.34%");
        assert_eq!(bp(5), "0.05%");
        assert_eq!(share(1, 4), "25.0%");
        assert_eq!(share(1, 0), "—");
    }

    #[test]
    fn the_budget_meter_stays_inside_its_bar() {
        let svg = meter(300, 800, 1000).into_string();
        assert!(
            svg.contains(r#"x="0" y="0" width="30" height="6" class="paid""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"x="30" y="0" width="50" height="6" class="granted""#),
            "{svg}"
        );
        let over = meter(2000, 3000, 1000).into_string();
        assert!(
            over.contains(r#"width="100" height="6" class="paid""#),
            "{over}"
        );
        assert!(over.contains(r#"x="100" y="0" width="0""#), "{over}");
        let none = meter(0, 0, 0).into_string();
        assert!(none.contains(r#"x="0" y="0" width="0""#), "{none}");
    }
}
