use proptest::prelude::*;
use suanli_types::{JobId, TenantId, Timestamp};

use crate::*;

const OWNER: &str = "hospital";
const TENANT: &str = "sme";
const ALICE: Requester<'static> = Requester {
    id: 10,
    name: "alice (#10)",
};

static HOSPITAL: std::sync::LazyLock<TenantId> = std::sync::LazyLock::new(|| TenantId::from(OWNER));
static SME: std::sync::LazyLock<TenantId> = std::sync::LazyLock::new(|| TenantId::from(TENANT));

fn admin(id: i64, name: &'static str) -> Reviewer<'static> {
    Reviewer {
        id,
        name,
        tenant: Some(&HOSPITAL),
        is_tenant_admin: true,
    }
}

fn bob() -> Reviewer<'static> {
    admin(20, "bob (#20)")
}

fn carol() -> Reviewer<'static> {
    admin(21, "carol (#21)")
}

fn rules() -> OutputRules {
    OutputRules {
        max_bytes: Some(1 << 20),
        allowed_types: vec!["csv".into(), "png".into()],
        forbidden: vec!["patient_id".into()],
    }
}

fn file(path: &str, content: &[u8]) -> ReleaseFile {
    ReleaseFile {
        path: path.into(),
        size: content.len() as u64,
        sha256: "0".repeat(64),
    }
}

const MEANS: &[u8] = b"district,mean\nfutian,3.2\n";
const PLOT: &[u8] = b"\x89PNG....";

fn new_request(
    classification: Classification,
    contents: &[(&str, &[u8])],
) -> Result<ReleaseRequest, AirlockError> {
    let files = contents.iter().map(|(p, c)| file(p, c)).collect();
    let bytes: Vec<&[u8]> = contents.iter().map(|(_, c)| *c).collect();
    request(
        JobId(7),
        SME.clone(),
        HOSPITAL.clone(),
        vec!["clinics".into()],
        classification,
        ALICE,
        "  district means for the city report  ",
        files,
        &bytes,
        &rules(),
        Timestamp(1_000),
    )
}

fn in_review(classification: Classification) -> ReleaseRequest {
    let r = new_request(
        classification,
        &[("out/means.csv", MEANS), ("out/plot.png", PLOT)],
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::InReview);
    r
}

fn history(r: &ReleaseRequest) -> Vec<(&str, &str)> {
    r.history
        .iter()
        .map(|h| (h.actor.as_str(), h.what.as_str()))
        .collect()
}

#[test]
fn a_request_that_passes_the_checks_waits_for_review() {
    let r = in_review(Classification::Restricted);
    assert_eq!(r.id, 0);
    assert_eq!(r.justification, "district means for the city report");
    assert_eq!((r.requester_id, r.requester.as_str()), (10, "alice (#10)"));
    assert!(r.breaches.is_empty() && r.reviews.is_empty());
    assert_eq!(
        history(&r),
        [
            (
                "alice (#10)",
                "requested: district means for the city report"
            ),
            ("airlock", "check max_bytes: ok"),
            ("airlock", "check allowed_types: ok"),
            ("airlock", "check forbidden: ok"),
        ]
    );
    assert!(r.history.iter().all(|h| h.at == Timestamp(1_000)));
    assert!(!r.releases("out/means.csv"), "nothing leaves before review");
    assert_eq!(r.updated_at(), Timestamp(1_000));
}

#[test]
fn a_breach_blocks_the_request_with_the_rule_named() {
    let mut r = new_request(
        Classification::Restricted,
        &[
            ("out/a.csv", b"district,Patient_ID\n"),
            ("out/notes.txt", b"fine"),
            ("out/plot.png", PLOT),
        ],
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::Blocked);
    let rules: Vec<&str> = r.breaches.iter().map(|b| b.rule.as_str()).collect();
    assert_eq!(rules, ["forbidden", "allowed_types"]);
    assert_eq!(
        history(&r)[1..],
        [
            ("airlock", "check max_bytes: ok"),
            (
                "airlock",
                "check allowed_types: out/notes.txt is not of an allowed type (csv, png)"
            ),
            (
                "airlock",
                "check forbidden: out/a.csv contains \"patient_id\""
            ),
            ("airlock", "blocked"),
        ]
    );
    // Nothing can be approved, and nothing leaves.
    let before = r.clone();
    assert_eq!(
        r.review(bob(), Verdict::Approve, "looks fine", Timestamp(2_000)),
        Err(AirlockError::NotReviewable {
            state: ReleaseState::Blocked
        })
    );
    assert_eq!(r, before);
    assert!(!r.releases("out/plot.png"));
    assert_eq!(
        AirlockError::NotReviewable {
            state: ReleaseState::Blocked
        }
        .to_string(),
        "the request is blocked: only a request in review can be reviewed"
    );

    // Too big.
    let big = vec![b'1'; (1 << 20) + 1];
    let r = new_request(Classification::Restricted, &[("out/big.csv", &big)]).unwrap();
    assert_eq!(r.state, ReleaseState::Blocked);
    assert_eq!(r.breaches[0].rule, "max_bytes");
    assert!(r.breaches[0].detail.contains("out/big.csv"));
    assert!(r.breaches[0].detail.contains("1048576"));
}

#[test]
fn without_rules_the_history_says_so() {
    let r = request(
        JobId(1),
        SME.clone(),
        HOSPITAL.clone(),
        vec!["clinics".into()],
        Classification::Restricted,
        ALICE,
        "why",
        vec![file("out/x.bin", b"patient_id")],
        &[b"patient_id"],
        &OutputRules::default(),
        Timestamp(5),
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::InReview);
    assert_eq!(history(&r)[1], ("airlock", "checks: no output rules apply"));
}

#[test]
fn a_request_needs_a_justification_files_and_their_contents() {
    let go = |justification: &str, files: Vec<ReleaseFile>, contents: &[&[u8]]| {
        request(
            JobId(1),
            SME.clone(),
            HOSPITAL.clone(),
            vec![],
            Classification::Restricted,
            ALICE,
            justification,
            files,
            contents,
            &rules(),
            Timestamp(5),
        )
    };
    let one = || vec![file("out/means.csv", MEANS)];
    assert_eq!(
        go("  ab  ", one(), &[MEANS]),
        Err(AirlockError::EmptyJustification)
    );
    assert_eq!(
        go(&"x".repeat(501), one(), &[MEANS]),
        Err(AirlockError::EmptyJustification)
    );
    assert!(go(&"说".repeat(500), one(), &[MEANS]).is_ok());
    assert!(go("abc", one(), &[MEANS]).is_ok());
    assert_eq!(go("abc", vec![], &[]), Err(AirlockError::NoFiles));
    assert_eq!(
        go("abc", one(), &[]),
        Err(AirlockError::ContentsMismatch {
            files: 1,
            contents: 0
        })
    );
}

#[test]
fn restricted_data_is_approved_by_one_reviewer() {
    let mut r = in_review(Classification::Restricted);
    assert_eq!(r.approvals_needed(), 1);
    r.review(
        bob(),
        Verdict::Approve,
        " aggregates only ",
        Timestamp(2_000),
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::Approved);
    assert_eq!(r.reviews.len(), 1);
    assert_eq!(r.reviews[0].reason, "aggregates only");
    assert_eq!(r.reviews[0].reviewer_id, 20);
    assert_eq!(
        history(&r)[4..],
        [
            ("bob (#20)", "approved by bob (#20): aggregates only"),
            ("airlock", "released"),
        ]
    );
    assert!(r.releases("out/means.csv") && r.releases("out/plot.png"));
    assert!(!r.releases("out/other.csv"), "only the files asked for");
    assert_eq!(r.updated_at(), Timestamp(2_000));
    assert_eq!(
        r.review(carol(), Verdict::Reject, "late", Timestamp(3_000)),
        Err(AirlockError::NotReviewable {
            state: ReleaseState::Approved
        })
    );
}

#[test]
fn sensitive_data_needs_two_different_reviewers() {
    let mut r = in_review(Classification::Sensitive);
    assert_eq!(r.approvals_needed(), 2);
    r.review(bob(), Verdict::Approve, "ok", Timestamp(2_000))
        .unwrap();
    assert_eq!(r.state, ReleaseState::InReview);
    assert!(!r.releases("out/means.csv"));
    let e = r
        .review(bob(), Verdict::Approve, "ok again", Timestamp(2_500))
        .unwrap_err();
    assert_eq!(
        e,
        AirlockError::AlreadyReviewed {
            reviewer: "bob (#20)".into()
        }
    );
    assert!(e.to_string().contains("bob (#20) has reviewed"), "{e}");
    // The same principal under another label is the same reviewer.
    assert!(matches!(
        r.review(
            admin(20, "robert"),
            Verdict::Approve,
            "ok",
            Timestamp(2_600)
        ),
        Err(AirlockError::AlreadyReviewed { .. })
    ));
    assert_eq!(r.reviews.len(), 1);
    r.review(
        carol(),
        Verdict::Approve,
        "checked the counts",
        Timestamp(3_000),
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::Approved);
    assert_eq!(r.approvers(), vec![20, 21]);
    assert!(r.releases("out/means.csv"));
}

#[test]
fn the_requester_cannot_review_even_as_an_owner_admin() {
    let mut r = in_review(Classification::Restricted);
    let me = admin(ALICE.id, "alice (#10)");
    let e = r
        .review(me, Verdict::Approve, "mine", Timestamp(2_000))
        .unwrap_err();
    assert_eq!(e, AirlockError::OwnReview);
    assert_eq!(
        e.to_string(),
        "the requester cannot review their own request"
    );
    assert_eq!(r.state, ReleaseState::InReview);
    assert!(r.reviews.is_empty());
}

#[test]
fn only_a_tenant_admin_of_the_owner_reviews() {
    let mut r = in_review(Classification::Restricted);
    let others = [
        Reviewer {
            id: 30,
            name: "dave (#30)",
            tenant: Some(&SME),
            is_tenant_admin: true,
        },
        Reviewer {
            id: 23,
            name: "erin (#23)",
            tenant: Some(&HOSPITAL),
            is_tenant_admin: false,
        },
        Reviewer {
            id: 1,
            name: "operator (#1)",
            tenant: None,
            is_tenant_admin: false,
        },
    ];
    for who in others {
        let e = r
            .review(who, Verdict::Approve, "ok", Timestamp(2_000))
            .unwrap_err();
        assert_eq!(
            e,
            AirlockError::NotOwner {
                owner: HOSPITAL.clone()
            }
        );
        assert_eq!(
            e.to_string(),
            "only a tenant admin of the data owner hospital reviews"
        );
    }
    assert_eq!(r.state, ReleaseState::InReview);
    assert!(r.reviews.is_empty());
}

#[test]
fn a_review_needs_a_reason() {
    let mut r = in_review(Classification::Restricted);
    for reason in ["", "   ", &"x".repeat(501)] {
        assert_eq!(
            r.review(bob(), Verdict::Approve, reason, Timestamp(2_000)),
            Err(AirlockError::ReasonLength)
        );
    }
    assert!(r.reviews.is_empty());
    assert_eq!(r.history.len(), 4);
}

#[test]
fn a_reject_ends_the_request() {
    let mut r = in_review(Classification::Sensitive);
    r.review(bob(), Verdict::Approve, "ok", Timestamp(2_000))
        .unwrap();
    r.review(
        carol(),
        Verdict::Reject,
        "row counts under 10",
        Timestamp(3_000),
    )
    .unwrap();
    assert_eq!(r.state, ReleaseState::Rejected);
    assert_eq!(
        history(&r).last().copied(),
        Some((
            "carol (#21)",
            "rejected by carol (#21): row counts under 10"
        ))
    );
    assert!(!r.releases("out/means.csv"));
    assert_eq!(
        r.review(
            admin(22, "dan (#22)"),
            Verdict::Approve,
            "ok",
            Timestamp(4_000)
        ),
        Err(AirlockError::NotReviewable {
            state: ReleaseState::Rejected
        })
    );
}

#[test]
fn downloads_only_when_approved_and_each_is_recorded() {
    let mut r = in_review(Classification::Restricted);
    assert!(!r.releases("out/means.csv"));
    r.review(bob(), Verdict::Approve, "ok", Timestamp(2_000))
        .unwrap();
    assert!(r.releases("out/means.csv"));
    // Only the content reviewed: the same name with other content is another file.
    let sha = r.files[0].sha256.clone();
    assert!(r.releases_content("out/means.csv", &sha));
    assert!(!r.releases_content("out/means.csv", &"f".repeat(64)));
    assert!(!r.releases_content("out/other.csv", &sha));
    r.record_download("out/means.csv", "alice (#10)", Timestamp(5_000));
    let last = r.history.last().unwrap();
    assert_eq!(
        (last.at, last.actor.as_str(), last.what.as_str()),
        (
            Timestamp(5_000),
            "alice (#10)",
            "downloaded out/means.csv by alice (#10)"
        )
    );
    assert_eq!(r.updated_at(), Timestamp(5_000));
}

#[test]
fn the_request_round_trips_as_json_in_kebab_case() {
    let mut r = in_review(Classification::Sensitive);
    r.review(bob(), Verdict::Approve, "ok", Timestamp(2_000))
        .unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""state":"in-review""#), "{json}");
    assert!(json.contains(r#""verdict":"approve""#), "{json}");
    assert!(json.contains(r#""classification":"sensitive""#), "{json}");
    let back: ReleaseRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    for s in ReleaseState::ALL {
        assert_eq!(s.as_str().parse::<ReleaseState>().unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
    }
    for v in Verdict::ALL {
        assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
    }
    assert!("in_review".parse::<ReleaseState>().is_err());
}

/// The reviewers the property draws from: the requester as an owner admin, three owner
/// admins, an admin of another tenant, an owner's user who is not an admin.
fn pool(i: usize) -> Reviewer<'static> {
    match i {
        0 => admin(ALICE.id, "alice (#10)"),
        1 => bob(),
        2 => carol(),
        3 => admin(22, "dan (#22)"),
        4 => Reviewer {
            id: 30,
            name: "dave (#30)",
            tenant: Some(&SME),
            is_tenant_admin: true,
        },
        _ => Reviewer {
            id: 23,
            name: "erin (#23)",
            tenant: Some(&HOSPITAL),
            is_tenant_admin: false,
        },
    }
}

const OWNER_ADMINS: [i64; 3] = [20, 21, 22];

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Verdict::Approve), Just(Verdict::Reject)]
}

proptest! {
    /// Whatever reviews arrive, in whatever order: the state only moves from in review to
    /// approved or rejected and never back; a refused review changes nothing; approved means
    /// enough distinct approving owner admins, none of them the requester.
    #[test]
    fn reviews_move_the_state_forward_only(
        sensitive in any::<bool>(),
        blocked in any::<bool>(),
        steps in prop::collection::vec((0usize..6, verdict(), any::<bool>()), 0..16),
    ) {
        let classification = if sensitive { Classification::Sensitive } else { Classification::Restricted };
        let content: &[u8] = if blocked { b"patient_id" } else { MEANS };
        let mut r = new_request(classification, &[("out/means.csv", content)]).unwrap();
        prop_assert_eq!(r.state, if blocked { ReleaseState::Blocked } else { ReleaseState::InReview });
        for (i, (who, v, has_reason)) in steps.into_iter().enumerate() {
            let before = r.clone();
            let reason = if has_reason { "reviewed" } else { " " };
            let res = r.review(pool(who), v, reason, Timestamp(2_000 + i as i64));
            match res {
                Err(_) => prop_assert_eq!(&r, &before),
                Ok(()) => {
                    prop_assert_eq!(before.state, ReleaseState::InReview);
                    prop_assert_eq!(r.reviews.len(), before.reviews.len() + 1);
                    prop_assert!(r.history.len() > before.history.len());
                    prop_assert_eq!(&r.history[..before.history.len()], &before.history[..]);
                }
            }
            if before.state.is_final() {
                prop_assert_eq!(r.state, before.state);
            }
            match r.state {
                ReleaseState::InReview => {
                    prop_assert_eq!(before.state, ReleaseState::InReview);
                    prop_assert!(r.approvers().len() < r.approvals_needed());
                }
                ReleaseState::Approved => {
                    prop_assert!(matches!(before.state, ReleaseState::InReview | ReleaseState::Approved));
                    let approvers = r.approvers();
                    prop_assert!(approvers.len() >= r.approvals_needed());
                    prop_assert!(!approvers.contains(&r.requester_id));
                    prop_assert!(approvers.iter().all(|id| OWNER_ADMINS.contains(id)));
                    prop_assert!(r.releases("out/means.csv"));
                }
                ReleaseState::Rejected => {
                    prop_assert!(matches!(before.state, ReleaseState::InReview | ReleaseState::Rejected));
                    prop_assert!(!r.releases("out/means.csv"));
                }
                ReleaseState::Blocked => {
                    prop_assert!(blocked);
                    prop_assert!(r.reviews.is_empty());
                }
            }
            // No reviewer twice, none but the owner's admins, never the requester.
            let mut ids: Vec<i64> = r.reviews.iter().map(|x| x.reviewer_id).collect();
            prop_assert!(ids.iter().all(|id| OWNER_ADMINS.contains(id)));
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), r.reviews.len());
        }
    }
}

#[test]
fn paths_overlap_when_one_folder_holds_the_other() {
    use crate::paths_overlap;
    assert!(paths_overlap("/data/a", "/data/a"));
    assert!(paths_overlap("/data/a/", "/data/a"));
    assert!(paths_overlap("/data/a", "/data/a/b"));
    assert!(paths_overlap("/data", "/data/a/b"));
    assert!(!paths_overlap("/data/a", "/data/ab"));
    assert!(!paths_overlap("/data/a", "/srv/a"));
}
