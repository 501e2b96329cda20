//! Unit tests of the `#SBATCH` mapping.

use super::*;
use crate::spec::PriorityClass;

fn strict() -> Options {
    Options {
        strict: true,
        ..Options::default()
    }
}

fn with_map(toml_text: &str) -> Options {
    let map: SiteMap = toml::from_str(toml_text).unwrap();
    map.check().unwrap();
    Options {
        map,
        ..Options::default()
    }
}

const SCRIPT: &str = r#"#!/bin/bash
#SBATCH --job-name=llama-ft
#SBATCH -N 2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:a800:8
#SBATCH --time=1-12:00:00
#SBATCH --partition=train
#SBATCH --output=ft-%j.out   # our log
#SBATCH --mem=500G
#SBATCH --export=ALL,EPOCHS=3
#SBATCH --frobnicate

module load cuda/12.4
srun python train.py
#SBATCH --nodes=99
"#;

#[test]
fn a_realistic_script() {
    let (s, w) = parse(SCRIPT, "jobs/finetune.sh").unwrap();
    assert_eq!(s.name, "llama-ft");
    assert_eq!(
        (s.nodes, s.cards_per_node),
        (2, 8),
        "directives after the first command are ignored"
    );
    assert_eq!(s.chips.family.as_deref(), Some("A800"));
    assert_eq!(s.walltime, 36 * 3600);
    assert_eq!(s.queue, "default", "an unmapped partition is warned");
    assert_eq!(s.env.get("EPOCHS").map(String::as_str), Some("3"));
    assert_eq!(s.command, "exec /bin/bash job.sh");
    assert_eq!(s.files["job.sh"], SCRIPT);
    let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![4, 7, 8, 9, 11, 15]);
    assert!(w[4].message.contains("unknown directive --frobnicate"));
    assert!(w[5].message.contains("after the first command"), "{}", w[4]);
}

#[test]
fn accelerators_and_times() {
    let (s, _) = parse("#SBATCH --gres=npu:4\n#SBATCH -t 90\ntrue\n", "x.sh").unwrap();
    assert_eq!(
        (s.cards_per_node, s.chips.vendor.as_deref(), s.walltime),
        (4, Some("huawei"), 5400)
    );
    assert_eq!(s.name, "x");
    assert_eq!(s.command, "exec sh job.sh");
    let (s, _) = parse("#SBATCH -N 2 --gpus=H100-SXM:16 -t 2:30:00\n", "y").unwrap();
    assert_eq!((s.nodes, s.cards_per_node), (2, 8));
    assert_eq!(s.chips.skus, vec!["H100-SXM".to_string()]);
    assert_eq!(s.walltime, 9000);
    let (s, _) = parse("#SBATCH --gpus-per-node=4 --qos=spot\n", "z").unwrap();
    assert_eq!((s.cards_per_node, s.priority), (4, PriorityClass::Spot));
}

#[test]
fn invalid_values_name_the_line() {
    let e = parse("#!/bin/sh\n#SBATCH -N 2-4\n", "a").unwrap_err();
    assert_eq!(e.field, "line 2");
    let e = parse("\n\n#SBATCH --time=forever\n", "a").unwrap_err();
    assert_eq!(e.field, "line 3");
    assert!(e.message.contains("--time=forever"));
    let e = parse_with("#SBATCH --gres=gpu:tpu:2\n", "a", &strict()).unwrap_err();
    assert!(e.message.contains("GPU type \"tpu\""), "{e}");
    let e = parse("#SBATCH -N 3 --gpus=8\n", "a").unwrap_err();
    assert!(e.message.contains("divide"), "{e}");
    // Too many cards per node is caught by the spec's own validation.
    let e = parse("#SBATCH --gres=gpu:128\n", "a").unwrap_err();
    assert_eq!(e.field, "cards_per_node");
}

#[test]
fn exported_variables_follow_the_spec_rules_and_name_the_line() {
    let e = parse(
        "#!/bin/sh\n#SBATCH -N 1\n#SBATCH --export=ALL,PATH=/tmp/evil\n",
        "a",
    )
    .unwrap_err();
    assert_eq!(e.field, "line 3");
    assert!(e.message.contains("--export=PATH"), "{e}");
    let e = parse("#SBATCH --export=LD_PRELOAD=/x.so\n", "a").unwrap_err();
    assert_eq!(e.field, "line 1");
    let e = parse("#SBATCH --export=CUDA_VISIBLE_DEVICES=0,1\n", "a").unwrap_err();
    assert_eq!(e.field, "line 1");
    let e = parse("#SBATCH --export==x\n", "a").unwrap_err();
    assert_eq!(e.field, "line 1");
    // A value over the environment's limit is the spec's: its field is `env`.
    let big = format!("#SBATCH --gres=gpu --export=BIG={}\n", "x".repeat(70 << 10));
    assert_eq!(parse(&big, "a").unwrap_err().field, "env");
    let (s, _) = parse("#SBATCH --gres=gpu --export=HF_HOME=/data/hf\n", "a").unwrap();
    assert_eq!(s.env["HF_HOME"], "/data/hf");
}

#[test]
fn a_nul_byte_names_its_line() {
    let e = parse("#!/bin/sh\n#SBATCH -N 1\necho a\0b\n", "a").unwrap_err();
    assert_eq!(e.field, "line 3");
    assert!(e.message.contains("NUL"), "{e}");
}

// Inputs that panicked before.

#[test]
fn a_short_option_with_a_multibyte_letter_is_an_unknown_directive() {
    let (_, w) = parse("#SBATCH -é2 --gres=gpu\n", "a").unwrap();
    assert!(w[0].message.contains("unknown directive -é"), "{:?}", w);
}

#[test]
fn gpus_over_zero_nodes_is_an_error_not_a_division_by_zero() {
    let e = parse("#SBATCH -N 0 --gpus=8\n", "a").unwrap_err();
    assert_eq!(e.field, "line 1");
}

#[test]
fn times_that_overflow_are_errors() {
    let e = parse("#SBATCH --time=99999999999999999:00:00\n", "a").unwrap_err();
    assert_eq!(e.field, "line 1");
}

#[test]
fn flags_take_durations_as_scripts_do() {
    assert_eq!(parse_flag_duration("10"), Ok(600));
    assert_eq!(parse_flag_duration("1:30:00"), Ok(5400));
    assert_eq!(parse_flag_duration("2-00:00:00"), Ok(172_800));
    assert_eq!(parse_flag_duration("90s"), Ok(90));
    assert_eq!(parse_flag_duration("1h30m"), Ok(5400));
    assert!(parse_flag_duration("").is_err());
    assert!(parse_flag_duration("1:2:3:4").is_err());
    assert!(parse_flag_duration("5x").is_err());
}

#[test]
fn untyped_gpu_means_nvidia_and_a_type_or_a_flag_says_otherwise() {
    let (s, _) = parse("#SBATCH --gres=gpu:2\n", "a").unwrap();
    assert_eq!(s.chips.vendor.as_deref(), Some("nvidia"));
    assert_eq!(s.stack, "cuda");
    let (s, _) = parse("#SBATCH --gres=gpu:910b:8\n", "a").unwrap();
    assert_eq!(
        (s.chips.family.as_deref(), s.chips.vendor.as_deref()),
        (Some("Ascend910B"), None)
    );
    assert_eq!(s.stack, "any");
    // A constraint naming a type wins over the untyped default, in either order.
    for script in [
        "#SBATCH --gres=gpu:4\n#SBATCH -C mlu370\n",
        "#SBATCH -C mlu370\n#SBATCH --gres=gpu:4\n",
    ] {
        let (s, _) = parse(script, "a").unwrap();
        assert_eq!(s.chips.family.as_deref(), Some("MLU370"), "{script}");
        assert_eq!(s.stack, "any");
    }
    // The chip flags replace the script's chips, and its unknown type is not checked.
    let o = Options {
        strict: true,
        overrides: Overrides {
            chips: true,
            ..Overrides::default()
        },
        ..Options::default()
    };
    let (s, w) = parse_with("#SBATCH --gres=gpu:h200:4\n", "a", &o).unwrap();
    assert_eq!(
        (s.cards_per_node, s.chips.is_any(), s.stack.as_str()),
        (4, true, "any")
    );
    assert!(w.is_empty(), "{w:?}");
    // Unknown types: a warning (any card of the vendor), an error with --strict.
    let (s, w) = parse("#SBATCH --gres=gpu:h200:4\n", "a").unwrap();
    assert_eq!(s.chips.vendor.as_deref(), Some("nvidia"));
    assert!(w[0].message.contains("\"h200\""), "{w:?}");
    let (s, _) = parse("#SBATCH --gres=npu:x:4\n", "a").unwrap();
    assert_eq!(s.chips.vendor.as_deref(), Some("huawei"));
    assert_eq!(
        parse_with("#SBATCH --gres=gpu:h200:4\n", "a", &strict())
            .unwrap_err()
            .field,
        "line 1"
    );
    // The network's map names them; memory per card is a minimum.
    let o = with_map("[gres]\nh200 = \"H100-SXM\"\n");
    let (s, w) = parse_with("#SBATCH --gres=gpu:h200:4,gpumem:64G\n", "a", &o).unwrap();
    assert_eq!(s.chips.skus, ["H100-SXM"]);
    assert_eq!(s.chips.min_memory_gb, Some(64));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn partitions_and_qos_by_the_map_else_warned_or_strict() {
    let o = with_map(
        "[partitions.a100_tandon]\nqueue = \"gpu\"\nchips = \"A100-80G\"\n\
         [qos.mcml]\npriority = \"spot\"\n",
    );
    let script = "#SBATCH -p a100_tandon --qos=mcml --gres=gpu:1\n";
    let (s, w) = parse_with(script, "a", &o).unwrap();
    assert_eq!((s.queue.as_str(), s.priority), ("gpu", PriorityClass::Spot));
    assert_eq!(s.chips.skus, ["A100-80G"]);
    assert!(w.is_empty(), "{w:?}");
    let (s, w) = parse(script, "a").unwrap();
    assert_eq!(
        (s.queue.as_str(), s.priority),
        ("default", PriorityClass::Standard)
    );
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].message.contains("partition map"), "{w:?}");
    let e = parse_with(script, "a", &strict()).unwrap_err();
    assert_eq!(e.field, "line 1");
    assert!(e.message.contains("--strict"), "{e}");
    // A flag for the queue or priority replaces the directive: nothing to check.
    let o = Options {
        strict: true,
        overrides: Overrides {
            queue: true,
            priority: true,
            ..Overrides::default()
        },
        ..Options::default()
    };
    assert!(parse_with(script, "a", &o).is_ok());
}

#[test]
fn not_yet_honoured_directives_are_refused_by_line() {
    for (d, word) in [
        ("--deadline=2026-12-03T15:00", "deadline"),
        ("--test-only", "quote"),
        ("--wrap='echo hi'", "suanli submit --"),
        ("--array=3-1", "backwards"),
        ("--dependency=afterok:x", "job id"),
        ("-d sometime:4", "unknown dependency type"),
        ("--begin=soon", "expected"),
    ] {
        let script = format!("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH {d}\necho\n");
        let e = parse(&script, "a").unwrap_err();
        assert_eq!(e.field, "line 3", "{d}");
        assert!(e.message.contains(word), "{d}: {e}");
    }
    let e = parse("#SBATCH --gres=gpu\n#SBATCH hetjob\n", "a").unwrap_err();
    assert_eq!(e.field, "line 2");
}

#[test]
fn when_directives_are_carried_onto_the_spec() {
    let script = "#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH -a 0-15:4%2\n#SBATCH --dependency=afterok:12:13,singleton\n#SBATCH --begin=now+1hour\n#SBATCH -H\necho\n";
    let (s, w) = parse(script, "a").unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(s.array.as_deref(), Some("0-15:4%2"));
    assert_eq!(s.dependency.as_deref(), Some("afterok:12:13,singleton"));
    assert_eq!(s.begin.as_deref(), Some("now+1hour"));
    assert!(s.hold);
    assert_eq!(s.array_spec().unwrap().tasks, vec![0, 4, 8, 12]);
    let (s, w) = parse(
        "#SBATCH --gres=gpu:1\n#SBATCH --kill-on-invalid-dep=yes\n",
        "a",
    )
    .unwrap();
    assert!(s.dependency.is_none() && !s.hold && s.kill_on_invalid_dep);
    assert!(w.is_empty(), "{w:?}");
    let (s, _) = parse(
        "#SBATCH --gres=gpu:1\n#SBATCH --kill-on-invalid-dep=NO\n#SBATCH --signal=B:usr1@90\n",
        "a",
    )
    .unwrap();
    assert!(!s.kill_on_invalid_dep);
    assert_eq!(s.signal.as_deref(), Some("B:USR1@90"), "the canonical form");
    let e = parse(
        "#SBATCH --gres=gpu:1\n#SBATCH --kill-on-invalid-dep=maybe\n",
        "a",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("yes or no"),
        "{e}"
    );
    let e = parse("#SBATCH --gres=gpu:1\n\n#SBATCH --signal=STOP@10\n", "a").unwrap_err();
    assert!(
        e.to_string().contains("line 3") && e.to_string().contains("STOP"),
        "{e}"
    );
}

#[test]
fn a_script_asking_for_no_accelerator_is_refused_unless_cards_are_given() {
    let script = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=64\n#SBATCH -t 7-00:00:00\nsrun ./mpi\n";
    let e = parse(script, "a").unwrap_err();
    assert_eq!(e.field, "cards_per_node");
    assert!(
        e.message.contains("no accelerator") && e.message.contains("--cards"),
        "{e}"
    );
    assert!(parse("#SBATCH --gres=gpu:0\n", "a").is_err());
    let o = Options {
        overrides: Overrides {
            cards: true,
            ..Overrides::default()
        },
        ..Options::default()
    };
    let (s, _) = parse_with(script, "a", &o).unwrap();
    assert_eq!((s.nodes, s.walltime), (2, 7 * 86_400));
}

#[test]
fn prefixes_combined_flags_comments_and_lines_that_only_look_like_directives() {
    let script = "#!/bin/bash\n\
                  #SBATCH --err=e.log --job=x  # named x\n\
                  #SBATCH -kN2 --gres=gpu:1 #-N 9\n\
                  # SBATCH -N 5\n\
                  \x20#SBATCH -N 6\n\
                  ##SBATCH -N 7\n\
                  #SBATCH --gpu=1\n";
    let e = parse(script, "a").unwrap_err();
    assert_eq!(e.field, "line 7");
    assert!(e.message.contains("ambiguous"), "{e}");
    let script = script.replace("#SBATCH --gpu=1\n", "");
    let (s, w) = parse(&script, "a").unwrap();
    assert_eq!((s.name.as_str(), s.nodes), ("x", 2));
    let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
    assert_eq!(lines, [2, 3, 4, 5], "{w:?}");
    assert!(
        w[0].message.starts_with("--err=e.log: suanli keeps stdout"),
        "{}",
        w[0]
    );
    assert!(w[2].message.contains("not a directive"), "{}", w[2]);
}
