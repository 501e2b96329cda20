//! Unit tests of job specs and their validation.

use super::*;

#[test]
fn toml_spec_with_defaults() {
    let s: JobSpec = toml::from_str(
        r#"
        name = "train"
        command = "python train.py"
        cards_per_node = 8
        nodes = 2
        walltime = "2h30m"
        stack = "cann"
        max_price_per_card_hour = "8.00"
        [chips]
        family = "Ascend910B"
        [env]
        EPOCHS = "3"
        "#,
    )
    .unwrap();
    s.validate().unwrap();
    assert_eq!(s.walltime, 9000);
    assert_eq!(s.queue, "default");
    assert_eq!(s.priority, PriorityClass::Standard);
    assert_eq!(s.total_cards(), 16);
    let cat = ChipCatalog::builtin();
    assert!(s.accepts_chip(cat.get("Ascend910B3").unwrap()));
    assert!(!s.accepts_chip(cat.get("Ascend910A").unwrap()));
    assert!(!s.accepts_chip(cat.get("H100-SXM").unwrap()));
}

#[test]
fn unknown_field_is_rejected() {
    let e = toml::from_str::<JobSpec>("name='a'\ncommand='x'\ncards=3\n").unwrap_err();
    assert!(e.to_string().contains("cards"), "{e}");
}

#[test]
fn validation_names_the_field() {
    let base = JobSpec::new("t", "true");
    base.validate().unwrap();
    type Mutation = Box<dyn Fn(&mut JobSpec)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|s| s.chips.skus = vec!["H100-SXM".into(), "H9000".into()]),
            "chips.skus[1]",
        ),
        (Box::new(|s| s.cards_per_node = 0), "cards_per_node"),
        (Box::new(|s| s.nodes = 5000), "nodes"),
        (Box::new(|s| s.command = " ".into()), "command"),
        (Box::new(|s| s.stack = "opencl".into()), "stack"),
        (
            Box::new(|s| s.chips.vendor = Some("intel".into())),
            "chips.vendor",
        ),
        (Box::new(|s| s.walltime = 0), "walltime"),
        (
            Box::new(|s| {
                s.files.insert("../x".into(), "".into());
            }),
            "files.\"../x\"",
        ),
        (
            Box::new(|s| {
                s.env.insert("SUANLI_JOB_ID".into(), "1".into());
            }),
            "env.SUANLI_JOB_ID",
        ),
        (Box::new(|s| s.queue = "Bad Queue".into()), "queue"),
        (
            Box::new(|s| {
                s.stack = "cuda".into();
                s.chips.vendor = Some("huawei".into());
            }),
            "chips",
        ),
    ];
    for (mutate, field) in cases {
        let mut s = base.clone();
        mutate(&mut s);
        assert_eq!(s.validate().unwrap_err().field, field);
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90").unwrap(), 90);
    assert_eq!(parse_duration("1h30m").unwrap(), 5400);
    assert_eq!(parse_duration("2d").unwrap(), 172_800);
    assert!(parse_duration("5x").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("10m5").is_err());
}

#[test]
fn json_round_trip() {
    let mut s = JobSpec::new("t", "echo hi");
    s.max_price_per_card_hour = Some(Money::from_yuan(3));
    let j = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<JobSpec>(&j).unwrap(), s);
}

/// The spec `mutate` makes from a valid one is refused, naming `field`.
fn refused(mutate: impl FnOnce(&mut JobSpec)) -> SpecError {
    let mut s = JobSpec::new("t", "true");
    mutate(&mut s);
    s.validate().unwrap_err()
}

fn accepted(mutate: impl FnOnce(&mut JobSpec)) {
    let mut s = JobSpec::new("t", "true");
    mutate(&mut s);
    if let Err(e) = s.validate() {
        panic!("refused: {e}");
    }
}

// The attacks of finding L2-L4: each passed submit and failed (or misled the agent) at run time.

#[test]
fn nul_bytes_are_refused_where_they_would_reach_execve_or_a_file() {
    assert_eq!(refused(|s| s.command = "echo a\0b".into()).field, "command");
    let e = refused(|s| {
        s.env.insert("A".into(), "x\0y".into());
    });
    assert_eq!(e.field, "env.A");
    assert!(e.message.contains("NUL"), "{e}");
    assert_eq!(
        refused(|s| {
            s.env.insert("A\0B".into(), "x".into());
        })
        .field,
        "env.\"A\\0B\""
    );
    assert_eq!(
        refused(|s| {
            s.files.insert("a\0b".into(), "x".into());
        })
        .field,
        "files.\"a\\0b\""
    );
    let e = refused(|s| {
        s.files.insert("run.py".into(), "print(1)\0".into());
    });
    assert_eq!(e.field, "files.\"run.py\"");
    assert!(e.message.contains("NUL"), "{e}");
    assert_eq!(refused(|s| s.name = "a\0".into()).field, "name");
}

#[test]
fn an_environment_over_the_limits_is_refused() {
    // The finding's 128 KiB variable, and many small ones over 64 KiB in total.
    let e = refused(|s| {
        s.env.insert("BIG".into(), "x".repeat(128 << 10));
    });
    assert_eq!(e.field, "env");
    assert!(e.message.contains("64 KiB"), "{e}");
    let e = refused(|s| {
        for i in 0..200 {
            s.env.insert(format!("V{i}"), "x".repeat(400));
        }
    });
    assert_eq!(e.field, "env");
    // Exactly at the limit is fine: "BIG=" + value + NUL.
    accepted(|s| {
        s.env.insert("BIG".into(), "x".repeat(MAX_ENV_BYTES - 5));
    });
    let e = refused(|s| {
        s.env.insert("BIG".into(), "x".repeat(MAX_ENV_BYTES - 4));
    });
    assert_eq!(e.field, "env");
    accepted(|s| {
        for i in 0..MAX_ENV_VARS {
            s.env.insert(format!("V{i}"), "1".into());
        }
    });
    let e = refused(|s| {
        for i in 0..=MAX_ENV_VARS {
            s.env.insert(format!("V{i}"), "1".into());
        }
    });
    assert_eq!(e.field, "env");
    assert!(e.message.contains("256"), "{e}");
}

#[test]
fn a_path_cannot_be_both_a_file_and_a_folder() {
    let e = refused(|s| {
        s.files.insert("a".into(), "1".into());
        s.files
            .insert("a-x".into(), "sorts between a and a/b".into());
        s.files.insert("a/b".into(), "2".into());
    });
    assert_eq!(e.field, "files.\"a/b\"");
    assert!(e.message.contains("files.\"a\""), "{e}");
    let e = refused(|s| {
        s.files.insert("x/y".into(), "1".into());
        s.files.insert("x/y/z/w".into(), "2".into());
    });
    assert_eq!(e.field, "files.\"x/y/z/w\"");
    accepted(|s| {
        s.files.insert("a/b".into(), "1".into());
        s.files.insert("a/c".into(), "2".into());
        s.files.insert("ab".into(), "3".into());
    });
}

#[test]
fn over_long_and_escaping_paths_are_refused() {
    let long = "p".repeat(300);
    let e = refused(|s| {
        s.files.insert(format!("data/{long}"), "x".into());
    });
    assert!(e.field.starts_with("files.\"data/ppp"), "{}", e.field);
    assert!(
        e.field.len() < 100,
        "the field path is shortened: {}",
        e.field
    );
    assert!(e.message.contains("255"), "{e}");
    accepted(|s| {
        s.files
            .insert("p".repeat(MAX_PATH_COMPONENT_BYTES), "x".into());
    });
    let deep = vec!["d".repeat(200); 6].join("/");
    let e = refused(|s| {
        s.files.insert(deep, "x".into());
    });
    assert!(e.message.contains("1024"), "{e}");
    for bad in [
        "/etc/passwd",
        "../x",
        "a/../../b",
        "a//b",
        "a/",
        "./a",
        "",
        "a\\b",
    ] {
        let e = refused(|s| {
            s.files.insert(bad.into(), "x".into());
        });
        assert_eq!(e.field, format!("files.{bad:?}"));
    }
    for bad in ["a\nb", "\u{1b}[2Jx"] {
        let e = refused(|s| {
            s.files.insert(bad.into(), "x".into());
        });
        assert!(e.message.contains("control"), "{e}");
    }
    for agents in [".suanli-pgid", ".suanli/stdout"] {
        let e = refused(|s| {
            s.files.insert(agents.into(), "x".into());
        });
        assert!(e.message.contains("agent"), "{e}");
    }
    let e = refused(|s| {
        for i in 0..=MAX_FILES {
            s.files.insert(format!("f{i}"), String::new());
        }
    });
    assert_eq!(e.field, "files");
    accepted(|s| {
        s.files.insert(".config/app.toml".into(), "x".into());
    });
}

#[test]
fn variables_that_change_how_the_agent_starts_the_job_are_refused() {
    // `env.PATH` changed where the agent found `sh`; the loader's and the shell's variables would
    // run code before the command; the agent's own and the device variables are the agent's.
    for key in [
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "GLIBC_TUNABLES",
        "SHELL",
        "HOME",
        "IFS",
        "BASH_ENV",
        "ENV",
        "SUANLI_WORK_DIR",
        "SLURM_CONF",
        "CUDA_VISIBLE_DEVICES",
        "ASCEND_RT_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
    ] {
        let e = refused(|s| {
            s.env.insert(key.into(), "x".into());
        });
        assert_eq!(e.field, format!("env.{key}"));
    }
    assert!(
        refused(|s| {
            s.env.insert("LD_PRELOAD".into(), "/x.so".into());
        })
        .message
        .contains("export LD_PRELOAD=")
    );
    // Every vendor's visible-devices variable is covered.
    for vendor in ChipCatalog::builtin().vendors() {
        let var = crate::chips::visible_devices_env(vendor);
        assert!(input::check_env_name(var).is_err(), "{var}");
    }
    for bad in ["", "A-B", "A=B", "Ä", "A B"] {
        let e = refused(|s| {
            s.env.insert(bad.into(), "x".into());
        });
        assert_eq!(e.field, format!("env.{bad:?}"), "quoted: not a plain name");
    }
    assert_eq!(
        refused(|s| {
            s.env.insert("1A".into(), "x".into());
        })
        .field,
        "env.1A"
    );
    // Ordinary variables stay valid, lowercase look-alikes of reserved ones included.
    accepted(|s| {
        for key in [
            "EPOCHS",
            "HF_HOME",
            "PYTHONPATH",
            "OMP_NUM_THREADS",
            "NCCL_DEBUG",
            "path",
            "_X",
        ] {
            s.env.insert(key.into(), "1".into());
        }
    });
}

#[test]
fn names_are_one_line_of_text() {
    for bad in ["a\nb", "a\rb", "red\u{1b}[31m", "tab\t"] {
        assert_eq!(refused(|s| s.name = bad.into()).field, "name");
    }
    accepted(|s| s.name = "训练 llama-3 (ft #2)".into());
}

#[test]
fn the_limits_are_the_documented_ones() {
    // docs/SECURITY.md lists these numbers; a change here must change it too.
    let doc = include_str!("../../../../docs/SECURITY.md");
    for (what, n) in [
        ("variables", MAX_ENV_VARS),
        ("KiB environment", MAX_ENV_BYTES >> 10),
        ("working files", MAX_FILES),
        ("bytes per path", MAX_PATH_BYTES),
        ("bytes per path component", MAX_PATH_COMPONENT_BYTES),
    ] {
        let needle = format!("{n} {what}");
        assert!(doc.contains(&needle), "docs/SECURITY.md lacks {needle:?}");
    }
    for key in input::RESERVED_ENV {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/SECURITY.md lacks {key}"
        );
    }
    let unique: std::collections::BTreeSet<_> = input::RESERVED_ENV.iter().collect();
    assert_eq!(
        unique.len(),
        input::RESERVED_ENV.len(),
        "a reserved name is listed twice"
    );
}

/// A begin time is stored resolved and at most a year after the submit; read again later it
/// is the same instant.
#[test]
fn a_begin_time_is_resolved_at_the_submit_and_at_most_a_year_ahead() {
    let now = crate::Timestamp(1_796_300_000_000); // 2026-12-03
    let mut s = JobSpec::new("later", "true");
    s.begin = Some("now+90".into());
    let r = s.clone().resolved(now).unwrap();
    assert_eq!(r.begin_at(), Some(crate::Timestamp(now.0 + 90_000)));
    for far in ["9999-12-31", "2030-01-01", "now+400days"] {
        s.begin = Some(far.into());
        let e = s.clone().resolved(now).unwrap_err();
        assert_eq!(e.field, "begin", "{far}: {e}");
    }
    s.begin = Some("2027-06-01".into());
    assert!(s.resolved(now).is_ok(), "within a year");
}

#[test]
fn a_model_is_named_by_name_or_name_at_revision() {
    for good in ["llama2-7b", "llama2-7b@v1", "shell-count@2026.12_a-1"] {
        super::check_model_ref(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for (bad, says) in [
        ("", "name"),
        ("Llama", "lowercase"),
        ("llama@", "revision"),
        ("llama@v 1", "revision"),
        ("llama@v1@v2", "revision"),
        ("-x", "start"),
    ] {
        let e = super::check_model_ref(bad).unwrap_err();
        assert_eq!(e.field, "model");
        assert!(e.message.contains(says), "{bad:?}: {e}");
    }
    let mut s = JobSpec::new("j", "true");
    s.model = Some("x".repeat(201));
    assert_eq!(s.validate().unwrap_err().field, "model");
}
