use proptest::prelude::*;
use suanli_types::{CenterId, JobId, TenantId, Timestamp};

use crate::*;

pub(crate) const MODEL: &str = r#"
name = "tiny-mlp"
revision = "v1"
task = "image-classification"
framework = "pytorch"
parameters = 1200000
licence = "Apache-2.0"
unit = "samples/s"
reference_throughput = 1000.0

[precision]
metric = "loss after 10 steps"
reference = 0.5
tolerance = 0.01

[stacks.cuda]
script = "python3 train.py"
framework_version = "2.8.0"

[stacks.cann]
image = "swr.cn-south-1.myhuaweicloud.com/ascend/torch@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
framework_version = "2.8.0"

[benchmark]
name = "bench"
command = "sh launch.sh"
walltime = "5m"
"#;

fn model() -> ModelSpec {
    toml::from_str(MODEL).unwrap()
}

fn request() -> CertRequest {
    CertRequest {
        model: 1,
        center: CenterId::from("c1"),
        sku: "RTX4090".into(),
        stack: "cuda".into(),
        stack_version: "12.4".into(),
        framework_version: "2.8.0".into(),
        job: JobId(7),
        tenant: TenantId::from("t1"),
        requested_by: "alice (#3)".into(),
        requested_at: Timestamp(1000),
    }
}

fn end(stdout: &str) -> JobEnd<'_> {
    static C1: std::sync::LazyLock<CenterId> = std::sync::LazyLock::new(|| CenterId::from("c1"));
    JobEnd {
        succeeded: true,
        detail: "succeeded".into(),
        center: Some(&C1),
        stdout,
        log_sha256: sha256_hex(stdout.as_bytes()),
    }
}

#[test]
fn a_model_file_validates_and_errors_name_the_field() {
    let m = model();
    m.validate().unwrap();
    let bad = |f: &dyn Fn(&mut ModelSpec), field: &str| {
        let mut m = model();
        f(&mut m);
        let e = m.validate().unwrap_err();
        assert_eq!(e.field, field, "{e}");
    };
    bad(&|m| m.name = "Tiny MLP".into(), "name");
    bad(&|m| m.revision = "v 1".into(), "revision");
    bad(&|m| m.parameters = 0, "parameters");
    bad(&|m| m.unit = String::new(), "unit");
    bad(
        &|m| m.reference_throughput = Some(f64::NAN),
        "reference_throughput",
    );
    bad(
        &|m| m.precision.as_mut().unwrap().tolerance = -1.0,
        "precision.tolerance",
    );
    bad(&|m| m.stacks.clear(), "stacks");
    bad(
        &|m| {
            let l = m.stacks.remove("cuda").unwrap();
            m.stacks.insert("opencl".into(), l);
        },
        "stacks.opencl",
    );
    bad(
        &|m| m.stacks.get_mut("cann").unwrap().image = Some("ascend/torch:latest".into()),
        "stacks.cann.image",
    );
    bad(
        &|m| m.stacks.get_mut("cuda").unwrap().image = Some("a@sha256:00".into()),
        "stacks.cuda",
    );
    bad(
        &|m| m.benchmark.tenant = Some("t1".into()),
        "benchmark.tenant",
    );
    bad(
        &|m| m.benchmark.command = String::new(),
        "benchmark.command",
    );
    // A benchmark that would bill many jobs or never start is not one.
    bad(
        &|m| m.benchmark.array = Some("0-999".into()),
        "benchmark.array",
    );
    bad(&|m| m.benchmark.hold = true, "benchmark.hold");
    bad(
        &|m| m.benchmark.model = Some("other@v1".into()),
        "benchmark.model",
    );
    bad(
        &|m| m.benchmark.begin = Some("now+1hour".into()),
        "benchmark.begin",
    );
    bad(
        &|m| m.benchmark.dependency = Some("afterok:1".into()),
        "benchmark.dependency",
    );
    assert!(toml::from_str::<ModelSpec>(&format!("{MODEL}\nsize = 3")).is_err());
}

#[test]
fn the_benchmark_job_is_pinned_to_the_chip_and_stack() {
    let m = model();
    let j = m.benchmark_job("RTX4090", "cuda").unwrap();
    assert_eq!(j.chips.skus, vec!["RTX4090".to_string()]);
    assert_eq!(j.stack, "cuda");
    assert_eq!(j.files.get(LAUNCH_FILE).unwrap(), "python3 train.py");
    assert_eq!(j.env.get("MODEL_NAME").unwrap(), "tiny-mlp@v1");
    let j = m.benchmark_job("Ascend910B3", "cann").unwrap();
    assert!(j.env.get("MODEL_IMAGE").unwrap().contains("@sha256:"));
    assert!(!j.files.contains_key(LAUNCH_FILE));
    let e = m.benchmark_job("MLU370-X8", "neuware").unwrap_err();
    assert_eq!(e.field, "stack");
    assert!(e.message.contains("cann, cuda"), "{e}");
}

#[test]
fn outcomes_are_judged_per_dimension() {
    let (m, r) = (model(), request());
    let o = judge(
        &m,
        &r,
        &end(r#"{"throughput": 900, "precision": 0.505, "mfu": 0.3}"#),
    );
    assert_eq!(
        o.statuses,
        Statuses {
            functional: Status::Ok,
            performance: Status::Ok,
            precision: Status::Ok
        }
    );
    assert_eq!(o.throughput, Some(900.0));
    assert!((o.precision_diff.unwrap() - 0.005).abs() < 1e-12);
    assert_eq!(
        o.log_sha256,
        sha256_hex(br#"{"throughput": 900, "precision": 0.505, "mfu": 0.3}"#)
    );

    let o = judge(
        &m,
        &r,
        &end(r#"{"throughput": 600, "precision": 0.515, "fallback_ops": 2}"#),
    );
    assert_eq!(o.statuses.functional, Status::Partial);
    assert_eq!(o.statuses.performance, Status::Partial);
    assert_eq!(o.statuses.precision, Status::Partial);
    assert_eq!(o.statuses.overall(), Status::Partial);
    assert!(o.note.contains("60%"), "{}", o.note);

    let o = judge(&m, &r, &end(r#"{"throughput": 100, "precision": 0.9}"#));
    assert_eq!(o.statuses.performance, Status::Nok);
    assert_eq!(o.statuses.precision, Status::Nok);
    assert_eq!(o.statuses.functional, Status::Ok);

    let o = judge(&m, &r, &end("Segmentation fault\n"));
    assert_eq!(o.statuses.overall(), Status::Nok);
    assert_eq!(o.statuses.functional, Status::Nok);
    assert!(o.note.starts_with("no result"), "{}", o.note);
    assert_eq!(o.throughput, None);

    let mut failed = end(r#"{"throughput": 900}"#);
    failed.succeeded = false;
    failed.detail = "failed: exit code 1".into();
    let o = judge(&m, &r, &failed);
    assert_eq!(o.statuses.functional, Status::Nok);
    assert!(o.note.contains("exit code 1"));

    let elsewhere = CenterId::from("c2");
    let mut moved = end(r#"{"throughput": 900}"#);
    moved.center = Some(&elsewhere);
    assert!(judge(&m, &r, &moved).note.contains("ran at c2"));

    let mut m2 = model();
    m2.reference_throughput = None;
    m2.precision = None;
    let o = judge(&m2, &r, &end(r#"{"throughput": 5}"#));
    assert_eq!(o.statuses.performance, Status::Partial);
    assert_eq!(o.statuses.precision, Status::Partial);
}

#[test]
fn a_record_is_reviewed_once_and_never_accepted_stale() {
    let (m, r) = (model(), request());
    let mut c = Certification::new(1, r.clone());
    assert_eq!(c.state(), CertState::Running);
    assert_eq!(
        c.review(Verdict::Accept, "op", "ok", Timestamp(2), Some("12.4")),
        Err(CertError::NotMeasured(1))
    );
    let o = judge(&m, &r, &end(r#"{"throughput": 900, "precision": 0.5}"#));
    let o = c.conclude(o).unwrap();
    c.apply_outcome(o.clone(), Timestamp(2));
    assert_eq!(c.conclude(o), Err(CertError::Measured(1)));
    assert_eq!(c.state(), CertState::Pending);
    assert!(matches!(
        c.review(Verdict::Accept, "op", "ok", Timestamp(3), Some("12.6")),
        Err(CertError::Stale { .. })
    ));
    assert_eq!(
        c.review(Verdict::Accept, "op", "  ", Timestamp(3), Some("12.4")),
        Err(CertError::Reason)
    );
    // A stale record may still be rejected.
    assert!(
        c.review(Verdict::Reject, "op", "old", Timestamp(3), None)
            .is_ok()
    );
    let rv = c
        .review(
            Verdict::Accept,
            "op",
            "numbers look right",
            Timestamp(3),
            Some("12.4"),
        )
        .unwrap();
    c.apply_review(rv);
    assert_eq!(c.state(), CertState::Accepted);
    assert!(c.certifies(Some("12.4")));
    assert!(!c.certifies(Some("12.6")), "a stack change makes it stale");
    assert!(matches!(
        c.review(Verdict::Reject, "op", "no", Timestamp(4), Some("12.4")),
        Err(CertError::Decided {
            state: "accepted",
            ..
        })
    ));
}

#[test]
fn the_matrix_shows_the_best_record_per_chip_and_stack_version() {
    let (m, r) = (model(), request());
    let measured = |id: i64, out: &str, verdict: Option<Verdict>, version: &str| {
        let mut r = r.clone();
        r.stack_version = version.into();
        let mut c = Certification::new(id, r.clone());
        c.apply_outcome(judge(&m, &r, &end(out)), Timestamp(id));
        if let Some(v) = verdict {
            c.apply_review(
                c.review(v, "op", "reviewed", Timestamp(id), Some(version))
                    .unwrap(),
            );
        }
        c
    };
    let certs = vec![
        measured(
            1,
            r#"{"throughput": 900, "precision": 0.5}"#,
            Some(Verdict::Accept),
            "12.4",
        ),
        // A later pending record does not hide the accepted one.
        measured(2, r#"{"throughput": 950, "precision": 0.5}"#, None, "12.4"),
        measured(3, "garbage", Some(Verdict::Reject), "12.2"),
    ];
    let cells = matrix(&certs, |_, _| Some("12.4"));
    assert_eq!(cells.len(), 2);
    let c122 = cells.iter().find(|c| c.stack_version == "12.2").unwrap();
    assert!(c122.stale);
    assert_eq!(c122.state, CertState::Rejected);
    let c124 = cells.iter().find(|c| c.stack_version == "12.4").unwrap();
    assert_eq!((c124.certification, c124.throughput), (1, Some(900.0)));
    // After the center moves on, the newest record shows, stale.
    let cells = matrix(&certs, |_, _| Some("12.6"));
    let c124 = cells.iter().find(|c| c.stack_version == "12.4").unwrap();
    assert_eq!(c124.certification, 2);
    assert!(c124.stale);
}

#[derive(Clone, Debug)]
enum Step {
    Finish(bool),
    Review(Verdict),
    StackChange(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(Step::Finish),
        prop_oneof![Just(Verdict::Accept), Just(Verdict::Reject)].prop_map(Step::Review),
        (0u8..3).prop_map(Step::StackChange),
    ]
}

proptest! {
    /// Whatever happens in whatever order: a record gets at most one outcome and one review,
    /// is never accepted while stale, and once stale it never certifies again without a new run.
    #[test]
    fn reviews_happen_once_and_stale_records_never_certify(steps in prop::collection::vec(step(), 0..24)) {
        let (m, r) = (model(), request());
        let versions = ["12.4", "12.6", "11.8"];
        let mut current = "12.4";
        let mut c = Certification::new(1, r.clone());
        let (mut outcomes, mut reviews, mut went_stale) = (0, 0, false);
        for (i, s) in steps.into_iter().enumerate() {
            let at = Timestamp(i as i64);
            match s {
                Step::Finish(ok) => {
                    let out = if ok { r#"{"throughput": 900, "precision": 0.5}"# } else { "?" };
                    if let Ok(o) = c.conclude(judge(&m, &r, &end(out))) {
                        c.apply_outcome(o, at);
                        outcomes += 1;
                    }
                }
                Step::Review(v) => {
                    let was_stale = c.is_stale(Some(current));
                    if let Ok(rv) = c.review(v, "op", "why", at, Some(current)) {
                        prop_assert!(!(v == Verdict::Accept && was_stale));
                        c.apply_review(rv);
                        reviews += 1;
                    }
                }
                Step::StackChange(k) => current = versions[k as usize],
            }
            went_stale |= c.is_stale(Some(current));
            prop_assert!(outcomes <= 1 && reviews <= 1);
            if c.review.is_some() {
                prop_assert!(c.outcome.is_some());
            }
            if c.certifies(Some(current)) {
                prop_assert_eq!(current, "12.4");
                prop_assert_eq!(c.state(), CertState::Accepted);
            }
        }
        if went_stale && c.state() != CertState::Accepted {
            // It was stale at some point and not accepted before: no accept can follow unless
            // the stack is back at the measured version.
            prop_assert!(!c.certifies(Some("12.6")));
        }
    }
}
