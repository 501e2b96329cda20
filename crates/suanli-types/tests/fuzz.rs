//! Property-based fuzzing of the job-spec parsers: JobSpec from JSON and TOML with its validation,
//! and `#SBATCH` scripts.
//!
//! These run with `cargo test --workspace`, so CI runs them on every change. Case counts are set
//! so that each test takes a few seconds in a debug build; `PROPTEST_CASES` raises them for a
//! longer local run. Every test also counts what it saw and fails if its inputs never reached
//! both sides (accepted and refused), so a strategy that drifts into producing only garbage
//! cannot pass unnoticed.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use suanli_types::spec::input::{
    RESERVED_ENV, RESERVED_ENV_PREFIXES, RESERVED_ENV_SUFFIXES, RESERVED_FILE_PREFIX,
};
use suanli_types::spec::{
    MAX_COMMAND_BYTES, MAX_ENV_BYTES, MAX_ENV_VARS, MAX_FILES, MAX_FILES_BYTES, MAX_PATH_BYTES,
    MAX_PATH_COMPONENT_BYTES,
};
use suanli_types::{ChipRequest, JobSpec, Money, PriorityClass, SpecError, TenantId, sbatch};

/// Top-level fields of a spec, the roots of every field path a refusal may name.
const SPEC_FIELDS: [&str; 13] = [
    "name",
    "tenant",
    "queue",
    "priority",
    "chips",
    "cards_per_node",
    "nodes",
    "stack",
    "command",
    "env",
    "files",
    "walltime",
    "max_price_per_card_hour",
];

/// A runner of `cases` cases (or `PROPTEST_CASES`), and that number, for the tests' checks that
/// their inputs reached every outcome.
fn runner(cases: u32) -> (TestRunner, usize) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: the same cases on every run, so that the counts checked below (how many
    // scripts parse, how many are refused by line and by field) cannot flake.
    let rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    (TestRunner::new_with_rng(config, rng), cases as usize)
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// The root of a field path: `env` for `env.PATH`, `chips` for `chips.skus[1]`.
fn root(field: &str) -> &str {
    field
        .split(['.', '['])
        .next()
        .expect("split yields at least one part")
}

/// A refusal names a field of this spec: a known root, and for `env.K` / `files."p"` a key the
/// spec has (written bare or quoted, and quoted and shortened to `"prefix"...` when long).
fn names_a_field_of(spec: &JobSpec, e: &SpecError) -> Result<(), TestCaseError> {
    if !SPEC_FIELDS.contains(&root(&e.field)) {
        return Err(fail(format!("refusal names no spec field: {e}")));
    }
    let names_key = |rest: &str, key: &str, bare: bool| {
        let quoted = format!("{key:?}");
        (bare && rest == key)
            || rest == quoted
            || rest
                .strip_suffix("\"...")
                .is_some_and(|p| p.len() > 1 && quoted.starts_with(p))
    };
    if let Some(rest) = e.field.strip_prefix("env.")
        && !spec.env.keys().any(|k| names_key(rest, k, true))
    {
        return Err(fail(format!("{}: no such variable in the spec", e.field)));
    }
    if let Some(rest) = e.field.strip_prefix("files.")
        && !spec.files.keys().any(|k| names_key(rest, k, false))
    {
        return Err(fail(format!("{}: no such file in the spec", e.field)));
    }
    if e.message.is_empty() {
        return Err(fail(format!("{}: refusal without a message", e.field)));
    }
    Ok(())
}

/// What every accepted spec satisfies, checked here independently of the validator's code.
fn obeys_the_input_rules(s: &JobSpec) -> Result<(), String> {
    let texts = [&s.name, &s.command]
        .into_iter()
        .chain(s.env.keys())
        .chain(s.env.values())
        .chain(s.files.keys())
        .chain(s.files.values());
    if texts.into_iter().any(|t| t.contains('\0')) {
        return Err("a NUL byte".into());
    }
    if s.name.chars().any(char::is_control) || s.name.trim().is_empty() {
        return Err("a bad name".into());
    }
    if s.command.trim().is_empty() || s.command.len() > MAX_COMMAND_BYTES {
        return Err("a bad command".into());
    }
    let env_bytes: usize = s.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if s.env.len() > MAX_ENV_VARS || env_bytes > MAX_ENV_BYTES {
        return Err(format!("{} variables of {env_bytes} bytes", s.env.len()));
    }
    for k in s.env.keys() {
        let shell_name = k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
            && k.chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic());
        let reserved = RESERVED_ENV.contains(&k.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
            || RESERVED_ENV_SUFFIXES.iter().any(|p| k.ends_with(p));
        if !shell_name || reserved {
            return Err(format!("variable {k:?}"));
        }
    }
    let file_bytes: usize = s.files.iter().map(|(p, c)| p.len() + c.len()).sum();
    if s.files.len() > MAX_FILES || file_bytes > MAX_FILES_BYTES {
        return Err(format!("{} files of {file_bytes} bytes", s.files.len()));
    }
    for p in s.files.keys() {
        let parts: Vec<&str> = p.split('/').collect();
        let bad = p.len() > MAX_PATH_BYTES
            || p.chars().any(char::is_control)
            || p.contains('\\')
            || p.starts_with(RESERVED_FILE_PREFIX)
            || parts.iter().any(|c| {
                c.is_empty() || *c == "." || *c == ".." || c.len() > MAX_PATH_COMPONENT_BYTES
            });
        // A file under another file: some proper prefix of its components is itself a file.
        let under_a_file = (1..parts.len()).any(|n| s.files.contains_key(&parts[..n].join("/")));
        if bad || under_a_file {
            return Err(format!("path {p:?}"));
        }
    }
    if !(1..=64).contains(&s.cards_per_node)
        || !(1..=4096).contains(&s.nodes)
        || !(1..=30 * 86_400).contains(&s.walltime)
    {
        return Err("a count out of range".into());
    }
    Ok(())
}

/// How a spec fared: accepted (and then round-tripped) or refused with a field of its own.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    refused: BTreeMap<String, usize>,
    unparsed: usize,
}

impl Tally {
    fn judge(&mut self, spec: &JobSpec) -> Result<(), TestCaseError> {
        match spec.validate() {
            Ok(()) => {
                obeys_the_input_rules(spec)
                    .map_err(|why| fail(format!("accepted a spec with {why}: {spec:?}")))?;
                round_trips(spec)?;
                self.accepted += 1;
            }
            Err(e) => {
                names_a_field_of(spec, &e)?;
                *self.refused.entry(root(&e.field).to_string()).or_default() += 1;
            }
        }
        Ok(())
    }

    fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }
}

/// An accepted spec comes back equal, and still valid, through JSON and through TOML.
fn round_trips(spec: &JobSpec) -> Result<(), TestCaseError> {
    let json = serde_json::to_string(spec).map_err(|e| fail(format!("to JSON: {e}")))?;
    let back: JobSpec =
        serde_json::from_str(&json).map_err(|e| fail(format!("from JSON: {e}: {json}")))?;
    prop_assert_eq!(&back, spec);
    back.validate()
        .map_err(|e| fail(format!("invalid after JSON: {e}")))?;
    let toml_text = toml::to_string(spec).map_err(|e| fail(format!("to TOML: {e}")))?;
    let back: JobSpec =
        toml::from_str(&toml_text).map_err(|e| fail(format!("from TOML: {e}: {toml_text}")))?;
    prop_assert_eq!(&back, spec);
    back.validate()
        .map_err(|e| fail(format!("invalid after TOML: {e}")))?;
    Ok(())
}

// ---- Strategies: near-valid specs, each field mostly valid and sometimes one of the attacks.

/// Environment variable names: ordinary ones, reserved ones, and arbitrary text.
fn env_key() -> impl Strategy<Value = String> {
    let reserved: Vec<String> = RESERVED_ENV
        .iter()
        .map(|k| k.to_string())
        .chain(
            [
                "LD_PRELOAD",
                "SUANLI_JOB_ID",
                "SLURM_CONF",
                "CUDA_VISIBLE_DEVICES",
            ]
            .map(String::from),
        )
        .collect();
    prop_oneof![
        12 => "[A-Z_][A-Z0-9_]{0,12}",
        1 => proptest::sample::select(reserved),
        1 => "[a-z][a-z0-9]{0,5}",
        1 => "\\PC{0,6}",
        1 => ".{0,4}",
    ]
}

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[ -~]{0,24}",
        1 => ".{0,8}",
        1 => "[a-z]{0,4}\0[a-z]{0,4}",
        1 => (4_000..20_000usize).prop_map(|n| "v".repeat(n)),
    ]
}

fn path_component() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => "[a-z][a-z0-9_.-]{0,8}",
        1 => Just(String::new()),
        1 => Just(".".to_string()),
        1 => Just("..".to_string()),
        1 => Just(RESERVED_FILE_PREFIX.to_string()),
        1 => (250..262usize).prop_map(|n| "c".repeat(n)),
        1 => "\\PC{1,4}",
        1 => ".{1,3}",
    ]
}

fn file_path() -> impl Strategy<Value = String> {
    // Few distinct first components, so that `a` and `a/b` come up.
    let head = prop_oneof![
        Just("a".to_string()),
        Just("src".to_string()),
        path_component()
    ];
    (
        proptest::bool::weighted(0.05),
        head,
        proptest::collection::vec(path_component(), 0..3),
    )
        .prop_map(|(absolute, head, rest)| {
            let mut p = if absolute {
                "/".to_string()
            } else {
                String::new()
            };
            p.push_str(&head);
            for c in rest {
                p.push('/');
                p.push_str(&c);
            }
            p
        })
}

fn file_content() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[ -~\n]{0,40}",
        1 => ".{0,16}",
        1 => "[a-z]{0,4}\0",
    ]
}

fn chips() -> impl Strategy<Value = ChipRequest> {
    let sku = proptest::sample::select(vec!["H100-SXM", "RTX4090", "Ascend910B3", "H9000", ""]);
    let vendor = proptest::sample::select(vec!["nvidia", "huawei", "intel", "NVIDIA"]);
    prop_oneof![
        6 => Just(ChipRequest::default()),
        1 => sku.prop_map(|s| ChipRequest { skus: vec![s.to_string()], ..ChipRequest::default() }),
        1 => vendor.prop_map(|v| ChipRequest { vendor: Some(v.to_string()), ..ChipRequest::default() }),
        1 => (0..2_000u32).prop_map(|t| ChipRequest { min_fp16_tflops: Some(t), ..ChipRequest::default() }),
    ]
}

fn text(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        24 => valid,
        1 => ".{0,12}",
        1 => "\\PC{120,140}",
        1 => "[a-z]{0,3}[\0\n\u{1b}][a-z]{0,3}",
        1 => Just(" ".to_string()),
    ]
}

fn spec() -> impl Strategy<Value = JobSpec> {
    let head = (
        text("[a-z][a-z0-9 _-]{0,20}"),
        proptest::option::weighted(0.1, "[a-z][a-z0-9-]{0,8}|[A-Z ]{1,3}"),
        prop_oneof![12 => Just("default".to_string()), 1 => "[a-z-]{0,8}|.{0,4}"],
        proptest::sample::select(PriorityClass::ALL.to_vec()),
        chips(),
        prop_oneof![8 => 1..=8u32, 1 => any::<u32>()],
        prop_oneof![8 => 1..=4u32, 1 => any::<u32>()],
        prop_oneof![
            8 => Just("any"),
            1 => proptest::sample::select(vec!["cuda", "cann", "opencl"]),
        ],
    );
    let tail = (
        text("(echo|python|sh) [ -~]{0,30}"),
        proptest::collection::btree_map(env_key(), env_value(), 0..4),
        proptest::collection::btree_map(file_path(), file_content(), 0..4),
        prop_oneof![8 => 1..=86_400u64, 1 => any::<u64>()],
        proptest::option::weighted(0.2, -5i64..100_000_000),
    );
    (head, tail).prop_map(
        |(
            (name, tenant, queue, priority, chips, cards_per_node, nodes, stack),
            (command, env, files, walltime, price),
        )| JobSpec {
            name,
            tenant: tenant.map(TenantId),
            queue,
            priority,
            chips,
            cards_per_node,
            nodes,
            stack: stack.to_string(),
            command,
            env,
            files,
            walltime,
            max_price_per_card_hour: price.map(Money),
            dependency: None,
            begin: None,
            hold: false,
            array: None,
            signal: None,
            kill_on_invalid_dep: true,
            model: None,
            centers: Vec::new(),
            outputs: Vec::new(),
            keep_failed_outputs: false,
            datasets: Vec::new(),
            checkpoint: None,
        },
    )
}

/// A spec that uses most of the format, as JSON: the seed the byte-level mutations start from.
fn rich_spec_json() -> String {
    let mut s = JobSpec::new("finetune", "python train.py --epochs 3");
    s.tenant = Some(TenantId::new("demo-sme"));
    s.queue = "train".into();
    s.stack = "cuda".into();
    s.chips.min_memory_gb = Some(80);
    s.cards_per_node = 8;
    s.walltime = 7200;
    s.max_price_per_card_hour = Some(Money::from_yuan(10));
    s.env.insert("HF_HOME".into(), "/data/hf".into());
    s.files
        .insert("train.py".into(), "print('training')".into());
    s.files.insert("conf/a.toml".into(), "x = 1".into());
    s.validate().expect("the seed is valid");
    serde_json::to_string(&s).expect("serialises")
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
    /// Replaces a span with a JSON fragment an attacker would try.
    Splice(usize, usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = proptest::sample::select(vec![
        "\\u0000",
        "\"PATH\":\"/tmp\",",
        "\"a\":\"1\",\"a/b\":\"2\",",
        "\"../x\":\"\",",
        "null",
        "-1",
        "18446744073709551616",
        "\"1h30m\"",
        "[]",
        "{}",
        "}xx",
        "\"",
        "\\",
        ",",
    ]);
    let byte = prop_oneof![3 => 0x20..0x7fu8, 1 => any::<u8>()];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), 0..8usize, fragment).prop_map(|(i, n, f)| Edit::Splice(i, n, f)),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *e {
        Edit::Insert(i, b) => bytes.insert(at(i, bytes.len() + 1), b),
        Edit::Delete(i) if !bytes.is_empty() => {
            bytes.remove(at(i, bytes.len()));
        }
        Edit::Delete(_) => {}
        Edit::Replace(i, b) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] = b;
        }
        Edit::Replace(..) => {}
        Edit::Splice(i, n, f) => {
            let i = at(i, bytes.len() + 1);
            let tail = bytes.split_off((i + n).min(bytes.len()));
            bytes.truncate(i);
            bytes.extend_from_slice(f.as_bytes());
            bytes.extend(tail);
        }
    }
}

// ---- JobSpec: JSON, TOML, validation.

#[test]
fn structured_near_valid_specs_are_accepted_sound_or_refused_by_field() {
    let tally = RefCell::new(Tally::default());
    let (mut runner, n) = runner(3000);
    runner
        .run(&spec(), |s| tally.borrow_mut().judge(&s))
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    eprintln!("{n} cases: {tally:?}");
    // Both outcomes are reached, and every rule family refuses something.
    assert!(tally.accepted >= n / 20, "only {} accepted", tally.accepted);
    for field in [
        "name",
        "command",
        "env",
        "files",
        "cards_per_node",
        "walltime",
    ] {
        assert!(
            tally.refused.get(field).copied().unwrap_or(0) >= n / 200,
            "{field} is almost never refused: {:?}",
            tally.refused
        );
    }
}

#[test]
fn mutated_json_specs_never_panic_and_are_judged_like_the_rest() {
    let seed = rich_spec_json();
    let tally = RefCell::new(Tally::default());
    let (mut runner, n) = runner(5000);
    runner
        .run(&proptest::collection::vec(edit(), 1..4), |edits| {
            let mut bytes = seed.clone().into_bytes();
            for e in &edits {
                apply(&mut bytes, e);
            }
            match serde_json::from_slice::<JobSpec>(&bytes) {
                Ok(s) => tally.borrow_mut().judge(&s),
                Err(_) => {
                    tally.borrow_mut().unparsed += 1;
                    Ok(())
                }
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    eprintln!("{n} cases: {tally:?}");
    assert!(tally.accepted >= n / 30, "only {} accepted", tally.accepted);
    assert!(
        tally.refused_total() >= n / 200,
        "refused: {:?}",
        tally.refused
    );
    assert!(tally.unparsed >= n / 4, "only {} unparsed", tally.unparsed);
}

#[test]
fn arbitrary_bytes_as_json_or_toml_never_panic() {
    let tally = RefCell::new(Tally::default());
    let input = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        // Text shaped like TOML assignments and tables.
        "((name|command|walltime|nodes|env|files|\\[env\\]|\\[files\\]|\\[chips\\]| |=|\"|'|\n|[a-z0-9./]){0,60})"
            .prop_map(String::into_bytes),
    ];
    let (mut runner, n) = runner(1000);
    runner
        .run(&input, |bytes| {
            if let Ok(s) = serde_json::from_slice::<JobSpec>(&bytes) {
                tally.borrow_mut().judge(&s)?;
            }
            if let Ok(s) = toml::from_str::<JobSpec>(&String::from_utf8_lossy(&bytes)) {
                tally.borrow_mut().judge(&s)?;
            } else {
                tally.borrow_mut().unparsed += 1;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    eprintln!("{n} cases: {tally:?}");
    assert!(tally.unparsed >= n / 2, "only {} unparsed", tally.unparsed);
}

#[test]
fn toml_specs_built_from_fields_round_trip_or_are_refused_by_field() {
    // The structured specs again, but through TOML text first, as `suanli submit -f` reads them.
    let tally = RefCell::new(Tally::default());
    let (mut runner, n) = runner(1500);
    runner
        .run(&spec(), |s| {
            let Ok(text) = toml::to_string(&s) else {
                // Only out-of-range integers (TOML's are i64) cannot be written.
                prop_assert!(s.walltime > i64::MAX as u64, "cannot write {s:?}");
                return Ok(());
            };
            let back: JobSpec = toml::from_str(&text)
                .map_err(|e| fail(format!("cannot read back {text:?}: {e}")))?;
            prop_assert_eq!(&back, &s);
            tally.borrow_mut().judge(&back)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let tally = tally.into_inner();
    eprintln!("{n} cases: {tally:?}");
    assert!(
        tally.accepted >= n / 20 && tally.refused_total() >= n / 20,
        "{tally:?}"
    );
}

// ---- #SBATCH scripts.

/// Errors of the `#SBATCH` parser name a line of the script, or (for what only the spec's own
/// validation can tell, such as `cards_per_node` over 64) a spec field.
fn sbatch_error_is_located(script: &str, e: &SpecError) -> Result<(), TestCaseError> {
    if let Some(n) = e.field.strip_prefix("line ") {
        let n: usize = n
            .parse()
            .map_err(|_| fail(format!("bad line number in {e}")))?;
        let lines = script.lines().count();
        prop_assert!((1..=lines).contains(&n), "line {n} of {lines}: {e}");
    } else {
        prop_assert!(
            SPEC_FIELDS.contains(&root(&e.field)),
            "error locates nothing: {e}"
        );
    }
    Ok(())
}

/// One `#SBATCH` word: a known option with a value that may be wrong, or noise.
fn directive_word() -> impl Strategy<Value = String> {
    let option = proptest::sample::select(vec![
        "-J",
        "--job-name",
        "-N",
        "--nodes",
        "--gres",
        "--gpus-per-node",
        "-G",
        "--gpus",
        "-t",
        "--time",
        "-p",
        "--partition",
        "-q",
        "--qos",
        "--export",
        "-o",
        "--mem",
        "-A",
        "-c",
        "--exclusive",
        "--frobnicate",
        "-",
        "--",
    ]);
    let value = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{1,25}",
        "gpu:[0-9]{1,2}|npu:[0-9]|gpu:(a800|H100-SXM|tpu):[0-9]{1,3}|mlu|gpu:x:y:z",
        "[0-9]{1,2}-[0-9]{1,2}(:[0-9]{1,2}){0,3}|[0-9]{1,3}(:[0-9]{1,2}){0,3}",
        "(ALL|NONE|[A-Z_]{1,8}=[a-z]{0,4}|PATH=/x|LD_PRELOAD=x|=x|SUANLI_A=1)(,(ALL|[A-Z]{1,3}=1)){0,2}",
        "spot|standard|public-service|gold",
        "[a-z-]{0,8}",
        "\\PC{0,6}",
        "\"[a-z ]{0,6}\"",
    ];
    prop_oneof![
        // `--opt=v`, and for short options `-Xv` (`-X=v` is refused, as sbatch reads `=v`).
        4 => (option.clone(), value.clone()).prop_map(|(o, v)| match o.starts_with("--") {
            true => format!("{o}={v}"),
            false => format!("{o}{v}"),
        }),
        2 => (option, value).prop_map(|(o, v)| format!("{o} {v}")),
        1 => "-[^ ]{1,3}",
        1 => "\\PC{0,8}",
    ]
}

fn script_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::collection::vec(directive_word(), 1..4)
            .prop_map(|w| format!("#SBATCH {}", w.join(" "))),
        1 => "#SBATCH[ -~]{0,20}( #[a-z ]{0,10})?",
        1 => "#[ -~]{0,20}",
        1 => Just(String::new()),
        1 => "(srun|echo|python) [ -~]{0,20}",
        1 => ".{0,12}",
    ]
}

fn script() -> impl Strategy<Value = String> {
    (
        proptest::option::of("#!(/bin/bash|/bin/sh|/usr/bin/env python3|[ -~]{0,10})"),
        proptest::collection::vec(script_line(), 0..8),
        proptest::bool::ANY,
    )
        .prop_map(|(shebang, lines, crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            shebang
                .into_iter()
                .chain(lines)
                .map(|l| format!("{l}{eol}"))
                .collect()
        })
}

fn judge_script(script: &str, counts: &mut [usize; 3]) -> Result<(), TestCaseError> {
    // As read by default (a script without accelerator directives is refused by field) ...
    if let Err(e) = sbatch::parse(script, "jobs/train.sh") {
        sbatch_error_is_located(script, &e)?;
    }
    // ... and with `--cards` given, where every directive is read.
    let opts = sbatch::Options {
        overrides: sbatch::Overrides {
            cards: true,
            ..sbatch::Overrides::default()
        },
        ..sbatch::Options::default()
    };
    match sbatch::parse_with(script, "jobs/train.sh", &opts) {
        Ok((spec, warnings)) => {
            spec.validate()
                .map_err(|e| fail(format!("parsed into an invalid spec: {e}")))?;
            prop_assert_eq!(spec.files.get("job.sh").map(String::as_str), Some(script));
            let lines = script.lines().count();
            for w in &warnings {
                prop_assert!((1..=lines).contains(&w.line), "warning on line {}", w.line);
            }
            counts[0] += 1;
        }
        Err(e) => {
            sbatch_error_is_located(script, &e)?;
            counts[if e.field.starts_with("line ") { 1 } else { 2 }] += 1;
        }
    }
    Ok(())
}

#[test]
fn sbatch_scripts_never_panic_and_errors_name_a_line() {
    let counts = RefCell::new([0usize; 3]);
    let (mut runner, n) = runner(2500);
    runner
        .run(&script(), |s| judge_script(&s, &mut counts.borrow_mut()))
        .unwrap_or_else(|e| panic!("{e}"));
    let [ok, by_line, by_field] = counts.into_inner();
    eprintln!("{n} cases: parsed {ok}, refused by line {by_line}, by field {by_field}");
    assert!(
        ok >= n / 10 && by_line >= n / 10 && by_field >= n / 200,
        "parsed {ok}, refused by line {by_line}, by field {by_field}"
    );
}

#[test]
fn arbitrary_text_as_a_batch_script_never_panics() {
    let counts = RefCell::new([0usize; 3]);
    let text = prop_oneof![
        any::<String>(),
        "(#SBATCH| |-|=|:|,|\"|'|\n|\r|#|[A-Za-z0-9]|é|\0){0,80}",
    ];
    let (mut runner, n) = runner(1000);
    runner
        .run(&text, |s| judge_script(&s, &mut counts.borrow_mut()))
        .unwrap_or_else(|e| panic!("{e}"));
    let [ok, by_line, by_field] = counts.into_inner();
    eprintln!("{n} cases: parsed {ok}, refused by line {by_line}, by field {by_field}");
    assert!(
        ok >= n / 20 && by_line >= n / 20,
        "parsed {ok}, refused by line {by_line}, by field {by_field}"
    );
}
