//! Hand-computed scenarios. Amounts are in 1/100 fen (1 yuan = 10,000 units).

use suanli_money::*;
use suanli_testkit::money::*;
use suanli_testkit::yuan;
use suanli_types::{JobId, Money, TenantCategory, TenantId, Timestamp};

const H100: &str = "H100-SXM";
const A100: &str = "A100-80G";
const ASCEND: &str = "Ascend910B3";

fn shenzhen() -> Programme {
    Programme {
        id: p("sz-train"),
        issuer: "Shenzhen".into(),
        budget: yuan("1000"),
        cap_per_tenant: yuan("100"),
        category_rates: vec![CategoryRate {
            category: TenantCategory::Startup,
            rate_bp: 6000,
        }],
        eligible: vec![TenantCategory::Sme, TenantCategory::Startup],
        ..programme("sz-train", 5000)
    }
}

#[test]
fn shenzhen_like_programme_on_hand_computed_lines() {
    let dir = Parties::default()
        .tenant("sme-a", TenantCategory::Sme)
        .tenant("start-b", TenantCategory::Startup)
        .tenant("big-c", TenantCategory::Enterprise);
    let mut b = Books::new();
    b.price("sz-cloud", H100, "12");
    b.price("uni", A100, "4.5");
    let recs = b.create_programme(shenzhen(), at(2025, 1, 1, 0)).unwrap();
    assert_eq!(recs.len(), 2, "the programme and its funding");
    assert_eq!(
        b.balance(&Account::ProgrammePool(p("sz-train"))),
        Money(10_000_000)
    );

    let d = at(2025, 3, 1, 0);
    b.grant(&p("sz-train"), &t("sme-a"), yuan("100"), d, &dir)
        .unwrap();
    b.grant(&p("sz-train"), &t("start-b"), yuan("100"), d, &dir)
        .unwrap();
    let e = b
        .grant(&p("sz-train"), &t("big-c"), yuan("1"), d, &dir)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tenant big-c (enterprise) is not eligible for programme sz-train"
    );
    let e = b
        .grant(&p("sz-train"), &t("sme-a"), yuan("0.01"), d, &dir)
        .unwrap_err();
    assert!(matches!(e, GrantError::OverCap { .. }), "{e}");

    // 8 cards x 1.5 h x 12 yuan = 144 yuan = 1,440,000 units.
    let start = at(2025, 3, 2, 9);
    let bill = |b: &mut Books, job, tenant: &str| {
        b.billed(&usage(job, tenant, "sz-cloud", H100, 8, start, 5400), &dir)
    };
    let l1 = bill(&mut b, 1, "sme-a");
    assert_eq!(
        (l1.gross, l1.subsidy, l1.payable),
        (Money(1_440_000), Money(720_000), Money(720_000))
    );
    assert_eq!(
        (l1.programme.clone(), l1.rate_bp),
        (Some(p("sz-train")), 5000)
    );
    let l2 = bill(&mut b, 2, "start-b");
    assert_eq!(
        (l2.subsidy, l2.payable, l2.rate_bp),
        (Money(864_000), Money(576_000), 6000)
    );
    // The start-up has 13.60 yuan of its 100 left.
    let l3 = bill(&mut b, 3, "start-b");
    assert_eq!((l3.subsidy, l3.payable), (Money(136_000), Money(1_304_000)));
    let l4 = bill(&mut b, 4, "start-b");
    assert_eq!(
        (l4.subsidy, l4.payable, l4.programme),
        (Money::ZERO, Money(1_440_000), None)
    );
    let l5 = bill(&mut b, 5, "big-c");
    assert_eq!((l5.subsidy, l5.programme), (Money::ZERO, None));

    // Rounding: 4.5 yuan x 1001 card-s / 3600 = 12,512.5 units -> 12,513; half of it
    // 6,256.5 -> 6,257 subsidy, 6,256 payable.
    let l6 = b.billed(&usage(6, "sme-a", "uni", A100, 1, start, 1001), &dir);
    assert_eq!(
        (l6.gross, l6.subsidy, l6.payable),
        (Money(12_513), Money(6_257), Money(6_256))
    );
    assert_eq!(l6.month.to_string(), "2025-03");

    let r = b.programme_report(&p("sz-train")).unwrap();
    assert_eq!(r.paid_out, Money(720_000 + 864_000 + 136_000 + 6_257));
    assert_eq!(r.remaining, Money(10_000_000 - 1_726_257));
    assert_eq!((r.granted, r.unallocated), (yuan("200"), yuan("800")));
    let draw = |tenant: &str| {
        r.tenants
            .iter()
            .find(|d| d.tenant == t(tenant))
            .unwrap()
            .clone()
    };
    assert_eq!(draw("sme-a").balance, Money(1_000_000 - 726_257));
    assert_eq!(draw("start-b").balance, Money::ZERO);
    assert_eq!(
        b.balance(&Account::ProgrammePool(p("sz-train"))),
        r.remaining
    );
    assert_eq!(
        b.balance(&Account::TenantWallet(t("sme-a"))),
        Money(-726_256)
    );
    assert_eq!(
        b.balance(&Account::CenterReceivable(c("sz-cloud"))),
        Money(5 * 1_440_000)
    );
    assert_eq!(b.ledger().total(), 0);

    let inv = b.invoice(&t("start-b"), "2025-03".parse().unwrap());
    assert_eq!(inv.lines.len(), 3);
    assert_eq!(inv.totals.gross, Money(3 * 1_440_000));
    assert_eq!(inv.totals.subsidy, yuan("100"));
    assert_eq!(inv.totals.payable, Money(3 * 1_440_000 - 1_000_000));
}

#[test]
fn domestic_chip_rate_and_quotes() {
    // Hangzhou-like: 20%, 30% on domestic chips.
    let dir = Parties::default().tenant("sme", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("hz-npu", ASCEND, "5");
    b.price("hz-gpu", H100, "4");
    let hz = Programme {
        domestic_rate_bp: Some(3000),
        ..programme("hz", 2000)
    };
    b.fund(hz);
    b.give("hz", "sme", "1000", &dir);

    let q = |b: &Books, center: &str, sku: &str| {
        b.quote(
            &QuoteRequest {
                tenant: t("sme"),
                center: c(center),
                sku: sku.into(),
                cards: 2,
                seconds: 3600,
                at: at(2025, 5, 1, 0),
                spot: false,
            },
            &dir,
        )
        .unwrap()
    };
    // 2 card-hours: Ascend 10 yuan - 30% = 7; H100 8 yuan - 20% = 6.40.
    let npu = q(&b, "hz-npu", ASCEND);
    assert_eq!(
        (npu.gross, npu.subsidy, npu.payable, npu.rate_bp),
        (yuan("10"), yuan("3"), yuan("7"), 3000)
    );
    let gpu = q(&b, "hz-gpu", H100);
    assert_eq!(
        (gpu.gross, gpu.subsidy, gpu.payable, gpu.rate_bp),
        (yuan("8"), yuan("1.6"), yuan("6.4"), 2000)
    );
    assert_eq!(
        b.grant_balance(&p("hz"), &t("sme")),
        yuan("1000"),
        "quotes consume nothing"
    );

    let line = b.billed(
        &usage(1, "sme", "hz-npu", ASCEND, 2, at(2025, 5, 1, 0), 3600),
        &dir,
    );
    assert_eq!((line.subsidy, line.payable), (npu.subsidy, npu.payable));
    assert_eq!(b.grant_balance(&p("hz"), &t("sme")), yuan("997"));

    // A category rate above the domestic rate wins on a domestic chip too.
    let startup = Programme {
        domestic_rate_bp: Some(3000),
        category_rates: vec![CategoryRate {
            category: TenantCategory::Startup,
            rate_bp: 6000,
        }],
        ..programme("x", 2000)
    };
    assert_eq!(startup.rate_for(TenantCategory::Startup, true), 6000);
    assert_eq!(startup.rate_for(TenantCategory::Sme, true), 3000);
    assert_eq!(startup.rate_for(TenantCategory::Sme, false), 2000);
}

#[test]
fn largest_subsidy_wins_and_ties_go_to_the_smaller_id() {
    let dir = Parties::default().tenant("sme", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("dc", H100, "10");
    for (id, rate, grant) in [
        ("b-prog", 3000, "10"),
        ("a-prog", 3000, "10"),
        ("c-prog", 2000, "100"),
    ] {
        b.fund(programme(id, rate));
        b.give(id, "sme", grant, &dir);
    }
    let mut bill = |job, hours: u64| {
        let u = usage(job, "sme", "dc", H100, 1, at(2025, 2, 1, 0), 3600 * hours);
        b.billed(&u, &dir)
    };
    // 10 yuan gross: a-prog and b-prog both give 3 yuan, c-prog 2; the tie goes to a-prog.
    let l = bill(1, 1);
    assert_eq!((l.programme, l.subsidy), (Some(p("a-prog")), yuan("3")));
    // 100 yuan gross: a-prog has 7 left, b-prog 10, c-prog gives 20 at its lower rate.
    let l = bill(2, 10);
    assert_eq!(
        (l.programme, l.subsidy, l.rate_bp),
        (Some(p("c-prog")), yuan("20"), 2000)
    );
    // Only one programme pays per line: the others are untouched.
    assert_eq!(b.grant_balance(&p("a-prog"), &t("sme")), yuan("7"));
    assert_eq!(b.grant_balance(&p("b-prog"), &t("sme")), yuan("10"));
    assert_eq!(b.grant_balance(&p("c-prog"), &t("sme")), yuan("80"));
}

#[test]
fn affiliated_centers_are_excluded() {
    // Beijing-like: 20%, provider not affiliated with the buyer.
    let dir = Parties::default()
        .tenant("firm", TenantCategory::Sme)
        .affiliate("firm", "own-dc");
    let mut b = Books::new();
    for dc in ["own-dc", "other-dc"] {
        b.price(dc, A100, "6");
    }
    let bj = Programme {
        exclude_affiliated: true,
        ..programme("bj", 2000)
    };
    b.fund(bj);
    b.give("bj", "firm", "1000", &dir);
    let start = at(2025, 6, 1, 0);
    let own = b.billed(&usage(1, "firm", "own-dc", A100, 1, start, 3600), &dir);
    assert_eq!(
        (own.subsidy, own.payable, own.programme),
        (Money::ZERO, yuan("6"), None)
    );
    let other = b.billed(&usage(2, "firm", "other-dc", A100, 1, start, 3600), &dir);
    assert_eq!((other.subsidy, other.payable), (yuan("1.2"), yuan("4.8")));
}

#[test]
fn validity_window_and_expiry() {
    let dir = Parties::default().tenant("sme", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("dc", H100, "10");
    let march = Programme {
        budget: yuan("500"),
        valid_from: at(2025, 3, 1, 0),
        valid_until: at(2025, 4, 1, 0),
        ..programme("march", 5000)
    };
    b.create_programme(march, at(2025, 2, 1, 0)).unwrap();
    b.grant(&p("march"), &t("sme"), yuan("100"), at(2025, 2, 1, 0), &dir)
        .unwrap();

    let ending_at = |job, end| Usage {
        ended_at: end,
        started_at: end.plus_secs(0).plus_millis(-3_600_000),
        ..usage(job, "sme", "dc", H100, 1, end, 3600)
    };
    let sub = |b: &mut Books, job, end| b.bill(&ending_at(job, end), &dir).unwrap().line.subsidy;
    assert_eq!(
        sub(&mut b, 1, at(2025, 2, 28, 23)),
        Money::ZERO,
        "before the window"
    );
    assert_eq!(sub(&mut b, 2, at(2025, 3, 15, 0)), yuan("5"), "inside");
    assert_eq!(
        sub(&mut b, 3, at(2025, 4, 1, 0)),
        Money::ZERO,
        "valid_until is excluded"
    );

    assert!(b.expire_due(at(2025, 3, 31, 23)).is_empty());
    let recs = b.expire_due(at(2025, 4, 1, 0));
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(matches!(&recs[0], Record::Expired { programme, .. } if *programme == p("march")));
    let Record::Transaction(sweep) = &recs[1] else {
        panic!("{recs:?}")
    };
    assert_eq!(sweep.amount_for(&Account::Platform), yuan("495"));
    assert_eq!(b.balance(&Account::ProgrammePool(p("march"))), Money::ZERO);
    assert_eq!(b.grant_balance(&p("march"), &t("sme")), Money::ZERO);
    let r = b.programme_report(&p("march")).unwrap();
    assert_eq!(
        (
            r.tenants[0].paid,
            r.tenants[0].expired,
            r.tenants[0].balance
        ),
        (yuan("5"), yuan("95"), Money::ZERO)
    );
    assert_eq!(r.expired_at, Some(at(2025, 4, 1, 0)));

    // Usage inside the window but metered after expiry gets nothing: the balance lapsed.
    assert_eq!(sub(&mut b, 4, at(2025, 3, 20, 0)), Money::ZERO);
    let e = b
        .grant(&p("march"), &t("sme"), yuan("1"), at(2025, 3, 31, 0), &dir)
        .unwrap_err();
    assert!(e.to_string().contains("no more grants"), "{e}");
    assert!(
        b.expire_due(at(2025, 5, 1, 0)).is_empty(),
        "expiry happens once"
    );
}

#[test]
fn a_price_change_mid_month_does_not_change_earlier_lines() {
    let dir = Parties::default();
    let mut b = Books::new();
    b.set_price(&c("dc"), H100, yuan("12"), Some(5000), at(2025, 1, 1, 0))
        .unwrap();
    let early = b.billed(&usage(1, "t", "dc", H100, 1, at(2025, 3, 5, 0), 3600), &dir);
    b.set_price(&c("dc"), H100, yuan("10"), None, at(2025, 3, 15, 0))
        .unwrap();
    // Started before the change, billed after it was recorded: the old row still applies.
    let straddling = b.billed(
        &usage(2, "t", "dc", H100, 1, at(2025, 3, 14, 23), 7200),
        &dir,
    );
    let late = b.billed(
        &usage(3, "t", "dc", H100, 1, at(2025, 3, 20, 0), 3600),
        &dir,
    );
    assert_eq!((early.unit.row, early.gross), (1, yuan("12")));
    assert_eq!((straddling.unit.row, straddling.gross), (1, yuan("24")));
    assert_eq!((late.unit.row, late.gross), (2, yuan("10")));
    assert_eq!(b.line(1), Some(&early));
    let inv = b.invoice(&t("t"), "2025-03".parse().unwrap());
    assert_eq!(inv.totals.gross, yuan("46"));
    // Spot discount of the first row; the second row has none, so spot pays list.
    let spot = |at| b.price_at(&c("dc"), H100, at, true).unwrap();
    assert_eq!(
        (
            spot(at(2025, 3, 1, 0)).per_card_hour,
            spot(at(2025, 3, 1, 0)).spot
        ),
        (yuan("6"), true)
    );
    assert_eq!(
        (
            spot(at(2025, 3, 16, 0)).per_card_hour,
            spot(at(2025, 3, 16, 0)).spot
        ),
        (yuan("10"), false)
    );
    assert_eq!(b.price_at(&c("dc"), H100, at(2024, 12, 31, 0), false), None);
}

#[test]
fn budget_warning_and_refusal() {
    let dir = Parties::default();
    let mut b = Books::new();
    let (tenant, march) = (t("t"), "2025-03".parse::<Month>().unwrap());
    b.price("dc", H100, "10");
    assert_eq!(b.budget_status(&tenant, march), None);
    assert_eq!(b.check_submit(&tenant, march, yuan("1000000")), Ok(()));
    b.set_budget(&tenant, yuan("100"), OverBudgetPolicy::LetFinish)
        .unwrap();
    assert_eq!(
        b.budget_status(&tenant, march).unwrap().level,
        BudgetLevel::Ok
    );

    b.bill(&usage(1, "t", "dc", H100, 8, at(2025, 3, 2, 0), 3600), &dir)
        .unwrap();
    let s = b.budget_status(&tenant, march).unwrap();
    assert_eq!(
        (s.spent, s.level, s.at_limit),
        (
            yuan("80"),
            BudgetLevel::Warning,
            OverBudgetPolicy::LetFinish
        )
    );
    assert_eq!(b.check_submit(&tenant, march, yuan("20")), Ok(()));
    let e = b.check_submit(&tenant, march, yuan("20.01")).unwrap_err();
    assert_eq!(
        e,
        BudgetExceeded {
            limit: yuan("100"),
            spent: yuan("80"),
            quoted: yuan("20.01")
        }
    );
    assert_eq!(
        e.to_string(),
        "monthly budget exceeded: limit 100.00 yuan, already spent 80.00 yuan, this job is quoted at 20.01 yuan"
    );

    b.bill(&usage(2, "t", "dc", H100, 2, at(2025, 3, 3, 0), 3600), &dir)
        .unwrap();
    assert_eq!(
        b.budget_status(&tenant, march).unwrap().level,
        BudgetLevel::Exhausted
    );
    assert!(
        b.check_submit(&tenant, march, Money::ZERO).is_err(),
        "exhausted refuses everything"
    );
    assert_eq!(
        b.check_submit(&tenant, march.next(), yuan("100")),
        Ok(()),
        "a new month"
    );
    assert_eq!(
        b.set_budget(&tenant, yuan("-1"), OverBudgetPolicy::StopRunning),
        Err(BudgetError::Negative(yuan("-1")))
    );
}

#[test]
fn csv_export_has_a_header_and_fixed_columns() {
    let dir = Parties::default().tenant("sme-a", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("uni", A100, "4.5");
    b.fund(programme("sz", 5000));
    b.give("sz", "sme-a", "10", &dir);
    b.bill(
        &usage(7, "sme-a", "uni", A100, 1, at(2025, 3, 2, 9), 1001),
        &dir,
    )
    .unwrap();
    let csv = b.invoice(&t("sme-a"), "2025-03".parse().unwrap()).to_csv();
    assert_eq!(
        csv,
        "line,month,job,attempt,tenant,center,sku,cards,started_at,ended_at,card_seconds,spot,price_row,unit_price,gross,programme,rate_bp,subsidy,payable\n\
         1,2025-03,7,1,sme-a,uni,A100-80G,1,2025-03-02T09:00:00Z,2025-03-02T09:16:41Z,1001,false,1,4.50,1.2513,sz,5000,0.6257,0.6256\n"
    );
    assert_eq!(
        b.statement(&c("uni"), "2025-03".parse().unwrap()).to_csv(),
        csv
    );
    assert_eq!(
        b.programme_report(&p("sz")).unwrap().to_csv(),
        "programme,tenant,granted,paid,balance,expired\nsz,sme-a,10.00,0.6257,9.3743,0.00\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&b.invoice(&t("sme-a"), "2025-03".parse().unwrap()).to_json())
            .unwrap();
    assert_eq!(json["totals"]["payable"], "0.6256");
    assert_eq!(json["lines"][0]["month"], "2025-03");
}

#[test]
fn repeated_usage_is_a_no_op_and_corrections_void_lines() {
    let dir = Parties::default().tenant("sme", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("dc", H100, "10");
    b.fund(programme("v", 5000));
    b.give("v", "sme", "100", &dir);
    b.top_up(&t("sme"), yuan("50"), at(2025, 1, 1, 0)).unwrap();
    let u = usage(1, "sme", "dc", H100, 1, at(2025, 3, 1, 0), 3600);
    let first = b.bill(&u, &dir).unwrap();
    assert_eq!(first.records.len(), 2);
    let again = b.bill(&u, &dir).unwrap();
    assert_eq!(
        (again.line.clone(), again.records.len()),
        (first.line.clone(), 0)
    );
    let changed = Usage {
        card_seconds: 3599,
        ..u.clone()
    };
    let e = b.bill(&changed, &dir).unwrap_err();
    assert_eq!(
        e,
        BillError::Conflict {
            job: JobId(1),
            attempt: 1,
            line: 1
        }
    );

    let recs = b
        .reverse(first.line.tx, at(2025, 3, 2, 0), "metering error")
        .unwrap();
    let Record::Transaction(rev) = &recs[0] else {
        panic!()
    };
    assert_eq!(
        rev.kind(),
        &TxKind::Reversal {
            of: first.line.tx,
            reason: "metering error".into()
        }
    );
    assert_eq!(b.voided_by(1), Some(rev.id()));
    assert_eq!(b.grant_balance(&p("v"), &t("sme")), yuan("100"));
    assert_eq!(b.balance(&Account::TenantWallet(t("sme"))), yuan("50"));
    assert!(
        b.invoice(&t("sme"), "2025-03".parse().unwrap())
            .lines
            .is_empty()
    );
    let corrected = b.bill(&changed, &dir).unwrap().line;
    assert_eq!((corrected.id, corrected.usage.card_seconds), (2, 3599));
    assert_eq!(
        b.reverse(first.line.tx, at(2025, 3, 2, 0), "again"),
        Err(LedgerError::AlreadyReversed {
            tx: first.line.tx,
            by: rev.id()
        })
    );
    let e = b.reverse(1, at(2025, 3, 2, 0), "no").unwrap_err();
    assert_eq!(
        e.to_string(),
        "transaction 1 is a funding transaction; only billing and top-ups can be reversed"
    );
    assert_eq!(
        b.top_up(&t("sme"), Money::ZERO, at(2025, 1, 1, 0)),
        Err(LedgerError::Amount(Money::ZERO))
    );
}

#[test]
fn bad_usage_and_missing_prices_are_refused() {
    let dir = Parties::default();
    let mut b = Books::new();
    let u = usage(1, "t", "dc", H100, 2, at(2025, 3, 1, 0), 10);
    assert_eq!(
        b.bill(&u, &dir).unwrap_err().to_string(),
        "no price for SKU H100-SXM at center dc in force at 2025-03-01T00:00:00Z"
    );
    let too_much = Usage {
        card_seconds: 21,
        ..u.clone()
    };
    assert_eq!(
        b.bill(&too_much, &dir),
        Err(BillError::TooManyCardSeconds {
            card_seconds: 21,
            max: 20
        })
    );
    let backwards = Usage {
        ended_at: u.started_at.plus_millis(-1),
        ..u.clone()
    };
    assert!(matches!(
        b.bill(&backwards, &dir),
        Err(BillError::EndsBeforeStart { .. })
    ));
    assert_eq!(
        b.bill(&Usage { cards: 0, ..u }, &dir),
        Err(BillError::NoCards)
    );
    assert_eq!(
        b.set_price(&c("dc"), H100, yuan("1"), Some(10_001), at(2025, 1, 1, 0)),
        Err(PriceError::DiscountOutOfRange(10_001))
    );
    let bad = Programme {
        base_rate_bp: 12_000,
        ..programme("x", 0)
    };
    assert_eq!(
        b.create_programme(bad, at(2025, 1, 1, 0))
            .unwrap_err()
            .to_string(),
        "base rate must be at most 10000 basis points (100%), got 12000"
    );
    assert!(b.lines().is_empty() && b.ledger().transactions().is_empty());
}

#[test]
fn months_of_timestamps() {
    assert_eq!(Month::of(Timestamp(0)).to_string(), "1970-01");
    // 2000-02-29T23:59:59.999Z and the next millisecond.
    let leap = Timestamp(951_868_799_999);
    assert_eq!(Month::of(leap).to_string(), "2000-02");
    assert_eq!(Month::of(leap.plus_millis(1)).to_string(), "2000-03");
    let m: Month = "2025-12".parse().unwrap();
    assert_eq!(m.next().to_string(), "2026-01");
    assert_eq!(Month::of(m.start()), m);
    assert_eq!(Month::of(m.start().plus_millis(-1)).to_string(), "2025-11");
    assert_eq!(m.start().to_string(), "2025-12-01T00:00:00Z");
    for bad in ["2025-13", "2025-1", "25-01", "2025/01", "abcd-ef"] {
        assert!(bad.parse::<Month>().is_err(), "{bad}");
    }
    assert_eq!(serde_json::to_string(&m).unwrap(), "\"2025-12\"");
}

#[test]
fn unbalanced_transactions_cannot_exist() {
    let p = |a: Account, m: i64| Posting {
        account: a,
        amount: Money(m),
    };
    let kind = TxKind::TopUp {
        tenant: TenantId::new("t"),
    };
    let err = Transaction::new(
        1,
        Timestamp(0),
        kind.clone(),
        vec![
            p(Account::Platform, -100),
            p(Account::TenantWallet(TenantId::new("t")), 99),
        ],
    )
    .unwrap_err();
    assert_eq!(err, LedgerError::Unbalanced(Money(-1)));
    assert_eq!(err.to_string(), "postings sum to -0.0001 yuan, not zero");
    assert_eq!(
        Transaction::new(1, Timestamp(0), kind.clone(), vec![]),
        Err(LedgerError::NoPostings)
    );
    let ok = Transaction::new(
        1,
        Timestamp(0),
        kind,
        vec![
            p(Account::Platform, -100),
            p(Account::TenantWallet(TenantId::new("t")), 100),
        ],
    )
    .unwrap();
    let json = serde_json::to_string(&ok).unwrap();
    assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), ok);
    let tampered = json.replace("\"0.01\"", "\"0.02\"");
    assert_ne!(tampered, json);
    let e = serde_json::from_str::<Transaction>(&tampered).unwrap_err();
    assert!(e.to_string().contains("not zero"), "{e}");
}

/// H3 of the security review: a usage ending in the year 10000 was billed as month "10000-01",
/// which no replay could read back. Now the books refuse such usage when billing, and refuse a
/// line whose month is not that of its end, whose times are out of range, or whose amounts do not
/// add up without overflow, when applying it.
#[test]
fn usage_and_lines_outside_the_books_range_are_refused() {
    let dir = Parties::default().tenant("sme-a", TenantCategory::Sme);
    let mut b = Books::new();
    b.price("sz-cloud", H100, "12");
    let year_10000 = Timestamp(LATEST.0 + 1);
    let mut u = usage(1, "sme-a", "sz-cloud", H100, 1, at(2025, 1, 1, 0), 60);
    u.ended_at = year_10000;
    u.card_seconds = 60;
    let e = b.bill(&u, &dir).unwrap_err();
    assert_eq!(e, BillError::TimeOutOfRange { at: year_10000 });
    assert!(b.lines().is_empty(), "nothing billed");

    // A line made by these books, then altered as a bad writer would.
    let good = usage(2, "sme-a", "sz-cloud", H100, 1, at(2025, 1, 1, 0), 60);
    let mut fresh = b.clone();
    let records = fresh.bill(&good, &dir).unwrap().records;
    let Record::Line(line) = &records[0] else {
        panic!("a line first")
    };
    let mut wrong_month = line.clone();
    wrong_month.month = "2030-01".parse().unwrap();
    let mut overflow = line.clone();
    overflow.subsidy = Money(i64::MAX);
    overflow.payable = Money(i64::MAX);
    for bad in [wrong_month, overflow] {
        let e = b.clone().apply(&Record::Line(bad)).unwrap_err();
        assert!(matches!(e, ApplyError::Invalid(_)), "{e}");
    }
    b.apply(&records[0]).unwrap();
    b.apply(&records[1]).unwrap();
    assert_eq!(b, fresh, "the line as made applies");
}
