//! Random sequences of operations keep the books' invariants.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use suanli_money::*;
use suanli_testkit::money::*;
use suanli_testkit::yuan;
use suanli_types::{JobId, Money, TenantCategory, TenantId, Timestamp};

const CENTERS: [&str; 3] = ["dc-0", "dc-1", "dc-2"];
const SKUS: [&str; 2] = ["H100-SXM", "Ascend910B3"];
const TENANTS: [&str; 4] = ["sme", "startup", "big", "stranger"];

fn dir() -> Parties {
    Parties::default()
        .tenant("sme", TenantCategory::Sme)
        .tenant("startup", TenantCategory::Startup)
        .tenant("big", TenantCategory::Enterprise)
        .affiliate("startup", "dc-0")
}

fn day(d: u64) -> Timestamp {
    at(2025, 1, 1, 0).plus_secs(d * 86_400)
}

#[derive(Clone, Debug)]
enum Op {
    Price {
        center: usize,
        sku: usize,
        units: i64,
        discount: Option<u32>,
        day: u64,
    },
    Programme {
        n: usize,
        budget: i64,
        cap: i64,
        rate: u32,
        startup: Option<u32>,
        domestic: Option<u32>,
        from: u64,
        len: u64,
        exclude: bool,
    },
    Grant {
        n: usize,
        tenant: usize,
        units: i64,
        day: u64,
    },
    Bill {
        tenant: usize,
        center: usize,
        sku: usize,
        cards: u32,
        day: u64,
        secs: u64,
        spot: bool,
    },
    Repeat {
        pick: usize,
    },
    Run {
        picks: Vec<usize>,
    },
    TopUp {
        tenant: usize,
        units: i64,
    },
    Reverse {
        pick: usize,
    },
    Expire {
        day: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, 0..2usize, 0..200_000i64, proptest::option::of(0..=10_000u32), 0..120u64)
            .prop_map(|(center, sku, units, discount, day)| Op::Price { center, sku, units, discount, day }),
        2 => (0..3usize, 1..5_000_000i64, 1..2_000_000i64, 0..=10_000u32, proptest::option::of(0..=10_000u32),
              proptest::option::of(0..=10_000u32), 0..60u64, 1..150u64, any::<bool>())
            .prop_map(|(n, budget, cap, rate, startup, domestic, from, len, exclude)|
                Op::Programme { n, budget, cap, rate, startup, domestic, from, len, exclude }),
        3 => (0..3usize, 0..4usize, -10..600_000i64, 0..150u64)
            .prop_map(|(n, tenant, units, day)| Op::Grant { n, tenant, units, day }),
        6 => (0..4usize, 0..3usize, 0..2usize, 0..9u32, 0..150u64, 0..20_000u64, any::<bool>())
            .prop_map(|(tenant, center, sku, cards, day, secs, spot)| Op::Bill { tenant, center, sku, cards, day, secs, spot }),
        2 => any::<usize>().prop_map(|pick| Op::Repeat { pick }),
        1 => proptest::collection::vec(any::<usize>(), 0..6).prop_map(|picks| Op::Run { picks }),
        1 => (0..4usize, 1..1_000_000i64).prop_map(|(tenant, units)| Op::TopUp { tenant, units }),
        1 => any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        1 => (0..200u64).prop_map(|day| Op::Expire { day }),
    ]
}

/// Runs the operations, checking what each returns; gives the books, their records and every
/// usage offered.
fn run(ops: &[Op]) -> (Books, Vec<Record>, Vec<Usage>) {
    let dir = dir();
    let mut b = Books::new();
    let mut records = Vec::new();
    let mut usages: Vec<Usage> = Vec::new();
    for (center, sku) in CENTERS
        .iter()
        .flat_map(|cn| SKUS.iter().map(move |s| (cn, s)))
    {
        records.extend(
            b.set_price(&c(center), sku, yuan("10"), Some(3000), day(0))
                .unwrap(),
        );
    }
    // A standing programme so that many lines are subsidised; random ones come and go.
    let standing = Programme {
        budget: yuan("300"),
        cap_per_tenant: yuan("100"),
        valid_until: day(100),
        category_rates: vec![CategoryRate {
            category: TenantCategory::Startup,
            rate_bp: 6000,
        }],
        domestic_rate_bp: Some(7000),
        exclude_affiliated: true,
        eligible: vec![TenantCategory::Sme, TenantCategory::Startup],
        ..programme("standing", 5000)
    };
    records.extend(b.create_programme(standing, day(0)).unwrap());
    for (tenant, amount) in [("sme", "60"), ("startup", "100")] {
        records.extend(
            b.grant(&p("standing"), &t(tenant), yuan(amount), day(0), &dir)
                .unwrap(),
        );
    }
    for (i, op) in ops.iter().enumerate() {
        match op.clone() {
            Op::Price {
                center,
                sku,
                units,
                discount,
                day: d,
            } => {
                records.extend(
                    b.set_price(
                        &c(CENTERS[center]),
                        SKUS[sku],
                        Money(units),
                        discount,
                        day(d),
                    )
                    .unwrap(),
                );
            }
            Op::Programme {
                n,
                budget,
                cap,
                rate,
                startup,
                domestic,
                from,
                len,
                exclude,
            } => {
                let prog = Programme {
                    budget: Money(budget),
                    cap_per_tenant: Money(cap),
                    valid_from: day(from),
                    valid_until: day(from + len),
                    category_rates: startup
                        .map(|r| CategoryRate {
                            category: TenantCategory::Startup,
                            rate_bp: r,
                        })
                        .into_iter()
                        .collect(),
                    domestic_rate_bp: domestic,
                    exclude_affiliated: exclude,
                    eligible: vec![TenantCategory::Sme, TenantCategory::Startup],
                    ..programme(&format!("p{n}"), rate)
                };
                match b.create_programme(prog, day(from)) {
                    Ok(r) => records.extend(r),
                    Err(e) => assert!(matches!(e, ProgrammeError::Duplicate(_)), "{e}"),
                }
            }
            Op::Grant {
                n,
                tenant,
                units,
                day: d,
            } => {
                if let Ok(r) = b.grant(
                    &p(&format!("p{n}")),
                    &t(TENANTS[tenant]),
                    Money(units),
                    day(d),
                    &dir,
                ) {
                    records.extend(r);
                }
            }
            Op::Bill {
                tenant,
                center,
                sku,
                cards,
                day: d,
                secs,
                spot,
            } => {
                let u = Usage {
                    job: JobId(i as i64),
                    spot,
                    ..usage(
                        i as i64,
                        TENANTS[tenant],
                        CENTERS[center],
                        SKUS[sku],
                        cards,
                        day(d),
                        secs,
                    )
                };
                if let Ok(billed) = b.bill(&u, &dir) {
                    records.extend(billed.records);
                }
                usages.push(u);
            }
            Op::Repeat { pick } if !usages.is_empty() => {
                let u = &usages[pick % usages.len()];
                let before = b.line_for(u.job, u.attempt).cloned();
                match b.bill(u, &dir) {
                    Ok(billed) if before.is_some() => {
                        assert!(billed.records.is_empty(), "repeat appended records");
                        assert_eq!(Some(billed.line), before);
                    }
                    Ok(billed) => records.extend(billed.records),
                    Err(_) => assert!(before.is_none()),
                }
            }
            Op::Run { picks } if !usages.is_empty() => {
                let batch: Vec<Usage> = picks
                    .iter()
                    .map(|k| usages[k % usages.len()].clone())
                    .collect();
                records.extend(b.bill_run(&batch, &dir).records);
            }
            Op::TopUp { tenant, units } => {
                records.extend(b.top_up(&t(TENANTS[tenant]), Money(units), day(0)).unwrap());
            }
            Op::Reverse { pick } if !b.ledger().transactions().is_empty() => {
                let tx = (pick % b.ledger().transactions().len()) as u64 + 1;
                if let Ok(r) = b.reverse(tx, day(200), "correction") {
                    records.extend(r);
                }
            }
            Op::Expire { day: d } => records.extend(b.expire_due(day(d))),
            _ => {}
        }
    }
    (b, records, usages)
}

/// Sum of the postings of billing transactions and of their reversals, per account.
fn billing_postings(b: &Books) -> BTreeMap<Account, i64> {
    let txs = b.ledger().transactions();
    let mut sums = BTreeMap::new();
    for tx in txs {
        let billing = match tx.kind() {
            TxKind::Billing { .. } => true,
            TxKind::Reversal { of, .. } => {
                matches!(txs[(*of - 1) as usize].kind(), TxKind::Billing { .. })
            }
            _ => false,
        };
        if billing {
            for p in tx.postings() {
                *sums.entry(p.account.clone()).or_insert(0) += p.amount.0;
            }
        }
    }
    sums
}

fn check_invariants(b: &Books) -> Result<(), TestCaseError> {
    // What a budget counts as spent is the payable of the standing lines, by tenant and month.
    let mut spent: BTreeMap<(TenantId, suanli_money::Month), i64> = BTreeMap::new();
    for l in b.live_lines() {
        *spent.entry((l.usage.tenant.clone(), l.month)).or_default() += l.payable.0;
    }
    for l in b.lines() {
        let key = (l.usage.tenant.clone(), l.month);
        let want = spent.get(&key).copied().unwrap_or(0);
        prop_assert_eq!(b.spent(&key.0, key.1), Money(want));
    }
    // Every transaction and the ledger as a whole sum to zero.
    for tx in b.ledger().transactions() {
        prop_assert_eq!(tx.postings().iter().map(|p| p.amount.0).sum::<i64>(), 0);
    }
    prop_assert_eq!(b.ledger().total(), 0);
    prop_assert_eq!(
        b.ledger()
            .balances()
            .map(|(_, m)| i128::from(m.0))
            .sum::<i128>(),
        0
    );

    // Lines: gross = subsidy + payable, nothing negative.
    for l in b.lines() {
        prop_assert_eq!(l.gross.0, l.subsidy.0 + l.payable.0);
        prop_assert!(l.subsidy >= Money::ZERO && l.payable >= Money::ZERO);
        prop_assert!(l.programme.is_some() || l.subsidy == Money::ZERO);
    }

    // Grants and budgets stay within their bounds.
    for prog in b.programmes() {
        let r = b.programme_report(&prog.id).unwrap();
        prop_assert!(r.granted <= r.budget && r.paid_out <= r.granted && r.paid_out >= Money::ZERO);
        prop_assert!(r.remaining >= Money::ZERO && r.unallocated >= Money::ZERO);
        for d in &r.tenants {
            prop_assert!(d.granted <= prog.cap_per_tenant);
            prop_assert!(d.paid >= Money::ZERO && d.paid <= d.granted);
            prop_assert!(d.balance >= Money::ZERO && d.expired >= Money::ZERO);
            prop_assert_eq!(d.balance.0 + d.expired.0 + d.paid.0, d.granted.0);
        }
        let pool = b.balance(&Account::ProgrammePool(prog.id.clone()));
        prop_assert!(pool >= Money::ZERO && pool <= r.remaining);
        if r.expired_at.is_none() {
            prop_assert_eq!(pool, r.remaining);
        }
    }

    // Invoices match the billing postings of wallets and pools; statements the receivables.
    let months: BTreeSet<Month> = b.lines().iter().map(|l| l.month).collect();
    let postings = billing_postings(b);
    let posted = |a: Account| postings.get(&a).copied().unwrap_or(0);
    let mut subsidy_by_programme: BTreeMap<ProgrammeId, i64> = BTreeMap::new();
    for tenant in TENANTS {
        let mut payable = 0;
        for &m in &months {
            let inv = b.invoice(&t(tenant), m);
            prop_assert_eq!(
                inv.totals.gross.0,
                inv.totals.subsidy.0 + inv.totals.payable.0
            );
            prop_assert_eq!(
                inv.lines.iter().map(|l| l.payable.0).sum::<i64>(),
                inv.totals.payable.0
            );
            payable += inv.totals.payable.0;
            for l in &inv.lines {
                if let Some(p) = &l.programme {
                    *subsidy_by_programme.entry(p.clone()).or_default() += l.subsidy.0;
                }
            }
        }
        prop_assert_eq!(-payable, posted(Account::TenantWallet(t(tenant))));
    }
    for prog in b.programmes() {
        let paid = subsidy_by_programme.get(&prog.id).copied().unwrap_or(0);
        prop_assert_eq!(-paid, posted(Account::ProgrammePool(prog.id.clone())));
        prop_assert_eq!(paid, b.programme_report(&prog.id).unwrap().paid_out.0);
    }
    for center in CENTERS {
        let owed: i64 = months
            .iter()
            .map(|&m| b.statement(&c(center), m).totals.gross.0)
            .sum();
        prop_assert_eq!(
            Money(owed),
            b.balance(&Account::CenterReceivable(c(center)))
        );
    }
    Ok(())
}

fn amounts(b: &Books) -> Vec<(Account, Money)> {
    b.ledger().balances().map(|(a, m)| (a.clone(), m)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let (mut b, records, usages) = run(&ops);
        check_invariants(&b)?;

        // The records rebuild the same books, also through JSON.
        let json = serde_json::to_string(&records).unwrap();
        let back: Vec<Record> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &records);
        prop_assert_eq!(&Books::replay(&back).unwrap(), &b);

        // Replaying every usage (twice) changes no amount once each has a standing line.
        let dir = dir();
        b.bill_run(&usages, &dir);
        check_invariants(&b)?;
        let (lines, balances) = (b.lines().len(), amounts(&b));
        let again = b.bill_run(&usages, &dir);
        prop_assert!(again.records.is_empty());
        let twice: Vec<Usage> = usages.iter().chain(&usages).cloned().collect();
        prop_assert!(b.bill_run(&twice, &dir).records.is_empty());
        prop_assert_eq!(b.lines().len(), lines);
        prop_assert_eq!(amounts(&b), balances);
    }

    #[test]
    fn quotes_match_the_line_billed_at_the_same_time(
        ops in proptest::collection::vec(op(), 1..40),
        tenant in 0..4usize, center in 0..3usize, sku in 0..2usize, cards in 1..9u32, secs in 0..20_000u64, d in 0..150u64,
    ) {
        let (mut b, _, _) = run(&ops);
        let dir = dir();
        let req = QuoteRequest {
            tenant: t(TENANTS[tenant]), center: c(CENTERS[center]), sku: SKUS[sku].into(),
            cards, seconds: secs, at: day(d), spot: false,
        };
        let quote = b.quote(&req, &dir);
        // Windows, price rows and expiry fall on day boundaries and the usage ends the day it
        // starts, so validity at `ended_at` equals validity at `at`.
        let u = usage(1_000_000, TENANTS[tenant], CENTERS[center], SKUS[sku], cards, day(d), secs);
        match (quote, b.bill(&u, &dir)) {
            (Ok(q), Ok(billed)) => {
                let l = billed.line;
                prop_assert_eq!((q.gross, q.subsidy, q.payable, q.programme), (l.gross, l.subsidy, l.payable, l.programme));
            }
            (Err(_), Err(BillError::NoPrice { .. })) => {}
            (q, l) => prop_assert!(false, "quote {:?} but bill {:?}", q, l),
        }
    }
}

#[test]
fn apply_refuses_records_that_do_not_fit() {
    let mut b = Books::new();
    let recs = b
        .set_price(&c("dc"), "H100-SXM", yuan("1"), None, day(0))
        .unwrap();
    let mut other = Books::new();
    other.apply(&recs[0]).unwrap();
    assert_eq!(
        other.apply(&recs[0]),
        Err(ApplyError::OutOfSequence {
            what: "price row",
            expected: 2,
            got: 1
        })
    );
    let unbalanced = r#"{"record":"transaction","id":1,"at":0,"kind":{"type":"top-up","tenant":"t"},
        "postings":[{"account":{"type":"platform"},"amount":"-1"},{"account":{"type":"tenant-wallet","id":"t"},"amount":"2"}]}"#;
    let e = serde_json::from_str::<Record>(unbalanced).unwrap_err();
    assert!(
        e.to_string()
            .contains("postings sum to 1.00 yuan, not zero"),
        "{e}"
    );

    // A line claiming more subsidy than the grant holds, or a billing that does not match its
    // line, does not replay.
    let dir = dir();
    let mut b = Books::new();
    let mut recs = b
        .set_price(&c("dc"), "H100-SXM", yuan("10"), None, day(0))
        .unwrap();
    recs.extend(b.create_programme(programme("v", 5000), day(0)).unwrap());
    recs.extend(
        b.grant(&p("v"), &t("sme"), yuan("1"), day(0), &dir)
            .unwrap(),
    );
    let u = usage(1, "sme", "dc", "H100-SXM", 1, day(1), 3600);
    recs.extend(b.bill(&u, &dir).unwrap().records);
    assert_eq!(Books::replay(&recs).unwrap(), b);
    let tamper = |f: &dyn Fn(&mut BillLine)| {
        let mut recs = recs.clone();
        let Record::Line(l) = &mut recs[4] else {
            panic!("{:?}", recs[4])
        };
        f(l);
        Books::replay(&recs).unwrap_err().to_string()
    };
    let e = tamper(&|l| (l.subsidy, l.payable) = (yuan("2"), yuan("8")));
    assert!(
        e.contains("exceeds what programme v has left for tenant sme"),
        "{e}"
    );
    let e = tamper(&|l| (l.gross, l.payable) = (yuan("9"), yuan("8")));
    assert!(
        e.contains("transaction 2 is not the billing transaction"),
        "{e}"
    );
}
