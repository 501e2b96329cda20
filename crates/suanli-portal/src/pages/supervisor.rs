//! The supervisor's desk, which the operator shares: the audit log with the state of its
//! signed checkpoints, the whole chain verified on request (as `suanli audit verify` does), and
//! the risk flags with their evidence and history, moved forward with a reason.

use axum::Form;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_audit::{Checkpoint, Export, Trust};
use suanli_client::AuditQuery;
use suanli_proto::{
    AuditExport, AuditOutcomeView, EvidenceView, FlagStateRequest, FlagStateView, LatestCheckpoint,
    RiskFlagView, SeverityView,
};
use suanli_types::Timestamp;

use crate::i18n::{Arg, cst};
use crate::layout::{self, Failure};
use crate::session::{Ctx, Session};

/// The rules' names (their labels are `rule-` and the name with dashes).
pub use suanli_audit::risk::RULES;

/// Only the operator and supervisors read the audit log and the risk flags.
fn desk(ctx: &Ctx) -> Result<&Session, Failure> {
    let s = ctx.signed_in()?;
    match s.is_operator() || s.is_supervisor() {
        true => Ok(s),
        false => Err(Failure::Forbidden),
    }
}

#[derive(Deserialize, Default)]
pub struct AuditPage {
    #[serde(default)]
    after: Option<u64>,
}

pub async fn audit(ctx: Ctx, Query(q): Query<AuditPage>) -> Response {
    let r = async {
        desk(&ctx)?;
        let c = ctx.client()?;
        let page = c
            .audit_entries(&AuditQuery {
                after: q.after,
                limit: Some(100),
                ..AuditQuery::default()
            })
            .await?;
        // No checkpoint in the first minute of a new log: the section says so.
        let checkpoint = match c.audit_checkpoint(None).await {
            Ok(cp) => Some(cp),
            Err(e) if e.code() == Some(suanli_proto::ErrorCode::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let body = html! {
            (checkpoint_section(&ctx, checkpoint.as_ref()))
            h2 { (ctx.t("audit-entries")) }
            p { (ctx.t("audit-intro")) }
            table.audit {
                thead { tr {
                    th scope="col" class="num" { "#" }
                    th scope="col" { (ctx.t("col-time")) }
                    th scope="col" { (ctx.t("col-principal")) }
                    th scope="col" { (ctx.t("col-action")) }
                    th scope="col" { (ctx.t("col-target")) }
                    th scope="col" { (ctx.t("col-outcome")) }
                } }
                tbody {
                    @for e in &page.entries {
                        tr id=(format!("seq-{}", e.seq)) {
                            td.num { (e.seq) }
                            td { (cst(Timestamp(e.time))) }
                            td { (e.principal) @if let Some(r) = &e.role { " · " (role(&ctx, r)) } @if let Some(t) = &e.tenant { " · " (t) } }
                            td { code { (e.action) } }
                            td.target { (e.target) }
                            td {
                                @match &e.outcome {
                                    AuditOutcomeView::Allowed { status } => span.ok { (ctx.t("audit-allowed")) " " (status) },
                                    AuditOutcomeView::Denied { status, why } => span.denied { (ctx.t("audit-denied")) " " (status) ": " (why) },
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = page.next {
                p { a href=(format!("/audit?after={n}")) rel="next" { (ctx.t("jobs-next-page")) } }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("audit-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

/// A role as the entry names it, in the page's language when it is one the portal knows.
fn role(ctx: &Ctx, r: &str) -> String {
    match r.parse::<suanli_types::Role>() {
        Ok(role) => ctx.t(layout::role_id(role)),
        Err(_) => r.to_string(),
    }
}

/// Whether the hub's newest checkpoint is signed by the key it names.
fn checkpoint_signed(cp: &LatestCheckpoint) -> bool {
    let key = suanli_proto::public_key(&cp.key);
    let c = Checkpoint::try_from(&cp.checkpoint);
    matches!((key, c), (Ok(k), Ok(c)) if c.signed_by(&k))
}

fn checkpoint_section(ctx: &Ctx, cp: Option<&LatestCheckpoint>) -> Markup {
    html! {
        section.card.verify {
            h2 { (ctx.t("audit-chain")) }
            @match cp {
                None => p.empty { (ctx.t("audit-no-checkpoint")) },
                Some(cp) => {
                    @let signed = checkpoint_signed(cp);
                    p {
                        @if !signed { span.denied { "✗ " (ctx.t("audit-checkpoint-unsigned")) } }
                        // A signature over no entries vouches for nothing yet.
                        @else if cp.checkpoint.size == 0 { span.note { (ctx.t("audit-checkpoint-empty")) } }
                        @else { span.ok { "✓ " (ctx.t("audit-checkpoint-signed")) } }
                    }
                    dl.facts {
                        dt { (ctx.t("audit-checkpoint-size")) } dd { (cp.checkpoint.size) }
                        dt { (ctx.t("audit-checkpoint-time")) } dd { (cst(Timestamp(cp.checkpoint.time))) }
                        dt { (ctx.t("audit-checkpoint-key")) } dd { code { (cp.checkpoint.key_id) } }
                        dt { (ctx.t("audit-checkpoint-root")) } dd.hash { code { (cp.checkpoint.root) } }
                    }
                }
            }
            p {
                a href="/audit/verify" { (ctx.t("audit-verify-link")) }
                " " small { (ctx.t("audit-verify-help")) }
            }
        }
    }
}

/// What verifying the export found, for the page.
#[derive(Debug)]
struct Verdict {
    report: suanli_audit::Report,
    checkpoints: usize,
    keys: Vec<String>,
}

/// Verifies an export as `suanli audit verify` does without saved checkpoints or `--key`:
/// trusting the keys the hub names (which the page says).
fn verify_export(view: &AuditExport) -> Result<Verdict, String> {
    let export = Export::try_from(view).map_err(|e| e.to_string())?;
    if export.format != suanli_audit::EXPORT_FORMAT {
        return Err(format!(
            "format {:?}, this portal reads {:?}",
            export.format,
            suanli_audit::EXPORT_FORMAT
        ));
    }
    let mut keys = export.keys.clone();
    keys.dedup();
    let trust = Trust { keys };
    let report = suanli_audit::verify(&export.entries, &export.checkpoints, &[], &trust);
    Ok(Verdict {
        report,
        checkpoints: export.checkpoints.len(),
        keys: trust.keys.iter().map(|k| k.id().0).collect(),
    })
}

pub async fn verify(ctx: Ctx) -> Response {
    let r = async {
        desk(&ctx)?;
        let view = ctx.client()?.audit_export().await?;
        let verdict = tokio::task::spawn_blocking(move || verify_export(&view))
            .await
            .map_err(|e| Failure::BadForm(format!("the verifier stopped: {e}")))?
            .map_err(|e| {
                Failure::BadForm(ctx.lang.ta("audit-verify-unreadable", &[("why", Arg::Str(e))]))
            })?;
        let rep = &verdict.report;
        let body = html! {
            p.note { (ctx.t("audit-verify-trust")) " " code { (verdict.keys.join(", ")) } }
            @if rep.ok() && rep.covered == 0 && rep.entries > 0 {
                // Each entry in its place, but none under a signature yet: nothing proves them.
                p.verdict.note role="status" {
                    (ctx.lang.ta("audit-verify-uncovered", &[("entries", Arg::Num(rep.entries as i64))]))
                }
            } @else if rep.ok() {
                p.verdict.ok role="status" {
                    "✓ " (ctx.lang.ta("audit-verify-ok", &[
                        ("entries", Arg::Num(rep.entries as i64)),
                        ("checkpoints", Arg::Num(rep.checkpoints_verified as i64)),
                        ("covered", Arg::Num(rep.covered as i64)),
                        ("unsigned", Arg::Num(rep.entries.saturating_sub(rep.covered) as i64)),
                    ]))
                }
            } @else {
                p.verdict.error role="alert" {
                    "✗ " (ctx.lang.ta("audit-verify-failed", &[
                        ("entries", Arg::Num(rep.entries as i64)),
                        ("first", Arg::Str(rep.first_bad_entry().map_or_else(|| "—".into(), |e| e.to_string()))),
                    ]))
                }
                ul.problems {
                    @for p in &rep.problems { li { (p.to_string()) } }
                    @if rep.more_problems > 0 {
                        li { (ctx.lang.ta("audit-verify-more", &[("n", Arg::Num(rep.more_problems as i64))])) }
                    }
                }
            }
            dl.facts {
                dt { (ctx.t("audit-verify-entries")) } dd { (rep.entries) }
                dt { (ctx.t("audit-verify-checkpoints")) } dd { (rep.checkpoints_verified) " / " (verdict.checkpoints) }
                dt { (ctx.t("audit-checkpoint-root")) } dd.hash { code { (rep.root.to_hex()) } }
            }
            p { small { (ctx.t("audit-verify-offline")) } }
            p { a href="/audit" { (ctx.t("audit-back")) } }
        };
        Ok(layout::render(&ctx, &ctx.t("audit-verify-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

#[derive(Deserialize, Default)]
pub struct RiskQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    rule: String,
}

/// A flag state from a form or query value.
fn flag_state(s: &str) -> Option<FlagStateView> {
    match s {
        "open" => Some(FlagStateView::Open),
        "acknowledged" => Some(FlagStateView::Acknowledged),
        "resolved" => Some(FlagStateView::Resolved),
        _ => None,
    }
}

fn state_id(s: FlagStateView) -> &'static str {
    match s {
        FlagStateView::Open => "flag-open",
        FlagStateView::Acknowledged => "flag-acknowledged",
        FlagStateView::Resolved => "flag-resolved",
    }
}

fn state_class(s: FlagStateView) -> &'static str {
    match s {
        FlagStateView::Open => "flag-state open",
        FlagStateView::Acknowledged => "flag-state acknowledged",
        FlagStateView::Resolved => "flag-state resolved",
    }
}

/// A rule's label, or its name when it is not one this portal knows.
fn rule_label(ctx: &Ctx, rule: &str) -> String {
    match RULES.contains(&rule) {
        true => ctx.lang.t(&format!("rule-{}", rule.replace('_', "-"))),
        false => rule.to_string(),
    }
}

pub async fn risk(ctx: Ctx, Query(q): Query<RiskQuery>) -> Response {
    let r = async {
        desk(&ctx)?;
        let state = match q.state.as_str() {
            "" => None,
            s => Some(flag_state(s).ok_or_else(|| {
                Failure::BadForm(ctx.lang.ta("risk-bad-state", &[("state", Arg::Str(s.into()))]))
            })?),
        };
        let rule = Some(q.rule.as_str()).filter(|r| !r.is_empty());
        let flags = ctx.client()?.risk_flags(state, rule).await?.flags;
        let body = html! {
            p { (ctx.t("risk-intro")) }
            form.filters method="get" action="/risk" {
                label for="state" { (ctx.t("col-state")) }
                select id="state" name="state" {
                    option value="" selected[q.state.is_empty()] { (ctx.t("jobs-all")) }
                    @for s in [FlagStateView::Open, FlagStateView::Acknowledged, FlagStateView::Resolved] {
                        @let v = state_id(s).trim_start_matches("flag-");
                        option value=(v) selected[q.state == v] { (ctx.t(state_id(s))) }
                    }
                }
                label for="rule" { (ctx.t("risk-rule")) }
                select id="rule" name="rule" {
                    option value="" selected[q.rule.is_empty()] { (ctx.t("jobs-all")) }
                    @for r in RULES {
                        option value=(r) selected[q.rule == r] { (rule_label(&ctx, r)) }
                    }
                }
                button type="submit" { (ctx.t("jobs-filter-button")) }
            }
            @if flags.is_empty() {
                p.empty { (ctx.t("risk-none")) }
            }
            @for f in &flags { (flag(&ctx, f)) }
        };
        Ok(layout::render(&ctx, &ctx.t("risk-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

fn severity(ctx: &Ctx, s: SeverityView) -> Markup {
    let (class, id) = match s {
        SeverityView::High => ("sev high", "severity-high"),
        SeverityView::Medium => ("sev medium", "severity-medium"),
        SeverityView::Low => ("sev low", "severity-low"),
    };
    html! { span class=(class) { (ctx.t(id)) } }
}

/// Where a piece of evidence can be read in the portal, when it can.
fn evidence(ctx: &Ctx, e: &EvidenceView) -> Markup {
    match e {
        EvidenceView::Audit { seq } => html! {
            // The page of entries after `after` starts with this one.
            a href=(match seq.checked_sub(1) {
                Some(after) => format!("/audit?after={after}#seq-{seq}"),
                None => "/audit#seq-0".to_string(),
            }) {
                (ctx.t("evidence-audit")) " #" (seq)
            }
        },
        EvidenceView::PriceRow { row } => html! {
            a href=(format!("/prices#row-{row}")) { (ctx.t("evidence-price-row")) " " (row) }
        },
        EvidenceView::BillLine { line } => html! {
            span { (ctx.t("evidence-bill-line")) " " (line) }
        },
        EvidenceView::Attempt { job, attempt } => html! {
            a href=(format!("/jobs/{job}")) { (ctx.t("evidence-attempt")) " " (job) " #" (attempt) }
        },
        EvidenceView::Programme { id } => html! {
            a href=(format!("/programmes#p-{id}")) { (ctx.t("evidence-programme")) " " (id) }
        },
    }
}

fn flag(ctx: &Ctx, f: &RiskFlagView) -> Markup {
    html! {
        article.flag.card {
            h2 {
                (severity(ctx, f.severity)) " "
                (rule_label(ctx, &f.rule)) " · " (f.subject) " "
                span class=(state_class(f.state)) { (ctx.t(state_id(f.state))) }
            }
            p.detail { (f.detail) }
            dl.facts {
                dt { (ctx.t("risk-id")) } dd { code { (f.id) } }
                dt { (ctx.t("risk-seen")) } dd {
                    (cst(Timestamp(f.first_seen))) " – " (cst(Timestamp(f.last_seen)))
                }
                dt { (ctx.t("risk-raised")) } dd { (cst(Timestamp(f.raised_at))) }
                dt { (ctx.t("risk-evidence")) } dd {
                    ul.evidence {
                        @for e in &f.evidence { li { (evidence(ctx, e)) } }
                    }
                    @if f.count > f.evidence.len() as u64 {
                        small { (ctx.lang.ta("risk-evidence-more", &[
                            ("shown", Arg::Num(f.evidence.len() as i64)),
                            ("count", Arg::Num(f.count as i64)),
                        ])) }
                    }
                }
            }
            @if !f.history.is_empty() {
                h3 { (ctx.t("risk-history")) }
                ol.timeline {
                    @for c in &f.history {
                        li {
                            time { (cst(Timestamp(c.at))) } " "
                            span class=(state_class(c.state)) { (ctx.t(state_id(c.state))) } " "
                            small { (c.by) } " " span.msg { (c.why) }
                        }
                    }
                }
            }
            @if f.state != FlagStateView::Resolved {
                form.flag-action method="post" action="/risk/state" {
                    (ctx.csrf_field())
                    input type="hidden" name="flag" value=(f.id);
                    label for=(format!("why-{}", f.id)) { (ctx.t("risk-why")) }
                    input id=(format!("why-{}", f.id)) name="why" required maxlength="500" size="40";
                    @if f.state == FlagStateView::Open {
                        button type="submit" name="state" value="acknowledged" { (ctx.t("risk-ack")) }
                    }
                    button type="submit" name="state" value="resolved" { (ctx.t("risk-resolve")) }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct FlagForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    flag: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    why: String,
}

/// Moves a flag forward: the hub checks who may, that the state only moves forward and that a
/// reason is given, and records the change.
pub async fn set_state(ctx: Ctx, Form(f): Form<FlagForm>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        let state = flag_state(&f.state).ok_or_else(|| {
            Failure::BadForm(
                ctx.lang
                    .ta("risk-bad-state", &[("state", Arg::Str(f.state.clone()))]),
            )
        })?;
        ctx.client()?
            .set_flag_state(&FlagStateRequest {
                flag: f.flag.clone(),
                state,
                why: f.why.clone(),
            })
            .await?;
        Ok(Redirect::to("/risk").into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_audit::{Draft, Log, Signer};

    fn export(n: u64) -> AuditExport {
        let signer = Signer::from_secret([7; 32]);
        let mut log = Log::new();
        let mut records = vec![];
        for i in 0..n {
            let d = Draft {
                time: 1_000 + i as i64,
                principal: "1".into(),
                role: Some("operator".into()),
                tenant: None,
                action: "POST /v1/prices".into(),
                target: format!("/v1/prices/{i}"),
                outcome: suanli_audit::Outcome::Allowed { status: 200 },
                source: "127.0.0.1:1".into(),
                request_id: format!("r{i}"),
                request_digest: suanli_audit::Hash::of(b"x"),
            };
            let r = log.prepare(d);
            log.apply(&r).unwrap();
            records.push(r);
        }
        let cp = log.checkpoint(&signer, 5_000);
        AuditExport {
            format: suanli_audit::EXPORT_FORMAT.into(),
            keys: vec![signer.public().to_hex()],
            entries: records
                .iter()
                .map(suanli_proto::AuditEntryView::from)
                .collect(),
            checkpoints: vec![suanli_proto::CheckpointView::from(&cp)],
        }
    }

    #[test]
    fn an_untouched_export_verifies_and_a_changed_entry_is_named() {
        let good = export(4);
        let v = verify_export(&good).unwrap();
        assert!(v.report.ok(), "{:?}", v.report.problems);
        assert_eq!((v.report.entries, v.report.covered), (4, 4));
        assert_eq!(v.checkpoints, 1);

        let mut bad = good.clone();
        bad.entries[2].target = "/v1/prices/forged".into();
        let v = verify_export(&bad).unwrap();
        assert!(!v.report.ok());
        assert_eq!(v.report.first_bad_entry(), Some(2));

        let mut other = good;
        other.format = "something-else/9".into();
        assert!(
            verify_export(&other)
                .unwrap_err()
                .contains("something-else/9")
        );
    }

    #[test]
    fn flag_states_read_from_forms_and_only_known_ones() {
        assert_eq!(flag_state("open"), Some(FlagStateView::Open));
        assert_eq!(flag_state("resolved"), Some(FlagStateView::Resolved));
        assert_eq!(flag_state("Resolved"), None);
        assert_eq!(flag_state(""), None);
    }
}
