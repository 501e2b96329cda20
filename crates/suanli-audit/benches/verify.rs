//! Audit log benchmark: offline verification of 1,000,000 entries (the target: under
//! 10 s on this machine for `suanli audit verify`).
//!
//! Builds a log of 1,000,000 entries with a signed checkpoint every 10,000, writes it as the
//! export's JSON, then times (a) parsing that JSON and verifying everything (what `suanli audit
//! verify` does after reading the file) and (b) as the baseline in the same run, recomputing
//! the leaf hashes alone (the floor any verifier pays). Medians over the runs.
//!
//! Run: `cargo bench -p suanli-audit --bench verify` (add `-- --quick` for one run).

use std::time::Instant;

use suanli_audit::{Draft, EXPORT_FORMAT, Export, Hash, Log, Outcome, Signer, Trust, verify};

const ENTRIES: u64 = 1_000_000;
const CHECKPOINT_EVERY: u64 = 10_000;

fn build() -> Export {
    let signer = Signer::from_secret([7; 32]);
    let mut log = Log::new();
    let mut entries = Vec::with_capacity(ENTRIES as usize);
    let mut checkpoints = Vec::new();
    for i in 0..ENTRIES {
        let r = log.prepare(Draft {
            time: 1_800_000_000_000 + i as i64 * 7,
            principal: format!("{}", i % 500),
            role: Some(if i % 50 == 0 { "site" } else { "user" }.into()),
            tenant: Some(format!("tenant-{}", i % 50)),
            source: format!("10.0.{}.{}:{}", i % 200, i % 250, 40_000 + i % 20_000),
            request_id: format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            action: "POST /v1/jobs".into(),
            target: "/v1/jobs".into(),
            outcome: if i % 97 == 0 {
                Outcome::Denied {
                    status: 403,
                    why: "forbidden: sites and supervisors do not submit jobs".into(),
                }
            } else {
                Outcome::Allowed { status: 201 }
            },
            request_digest: Hash::of(&i.to_be_bytes()),
        });
        log.apply(&r).expect("the log continues");
        entries.push(r);
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            checkpoints.push(log.checkpoint(&signer, 1_800_000_000_000 + i as i64 * 7));
        }
    }
    Export {
        format: EXPORT_FORMAT.into(),
        keys: vec![signer.public()],
        entries,
        checkpoints,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        1
    } else {
        3
    };
    let export = build();
    let json = serde_json::to_string(&export).expect("the export serialises");
    println!(
        "{} entries, {} checkpoints, export {:.0} MB",
        ENTRIES,
        export.checkpoints.len(),
        json.len() as f64 / 1e6
    );
    let trust = Trust {
        keys: export.keys.clone(),
    };
    let mut full = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let parsed: Export = serde_json::from_str(&json).expect("the export parses");
        let report = verify(&parsed.entries, &parsed.checkpoints, &[], &trust);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.checkpoints_verified, export.checkpoints.len());
        full.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut x = 0u8;
        for r in &export.entries {
            x ^= r.entry.leaf_hash().0[0];
        }
        std::hint::black_box(x);
        floor.push(t.elapsed().as_secs_f64());
    }
    let (full, floor) = (median(full), median(floor));
    println!("parse + verify: {full:.2} s (target: under 10 s)");
    println!(
        "leaf hashes alone (baseline): {floor:.2} s; ratio {:.2}x",
        full / floor
    );
}
