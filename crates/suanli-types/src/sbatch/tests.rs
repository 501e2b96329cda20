//! Unit tests of the `#SBATCH` mapping.

use super::*;

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
    assert_eq!(s.chips.family.as_deref(), Some("a800"));
    assert_eq!(s.walltime, 36 * 3600);
    assert_eq!(s.queue, "train");
    assert_eq!(s.env.get("EPOCHS").map(String::as_str), Some("3"));
    assert_eq!(s.command, "/bin/bash job.sh");
    assert_eq!(s.files["job.sh"], SCRIPT);
    let lines: Vec<usize> = w.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![4, 8, 9, 11]);
    assert!(w[3].message.contains("unknown directive --frobnicate"));
}

#[test]
fn accelerators_and_times() {
    let (s, _) = parse("#SBATCH --gres=npu:4\n#SBATCH -t 90\ntrue\n", "x.sh").unwrap();
    assert_eq!(
        (s.cards_per_node, s.chips.vendor.as_deref(), s.walltime),
        (4, Some("huawei"), 5400)
    );
    assert_eq!(s.name, "x");
    assert_eq!(s.command, "sh job.sh");
    let (s, _) = parse("#SBATCH -N 2 --gpus=H100-SXM:16 -t 2:30:00\n", "y").unwrap();
    assert_eq!((s.nodes, s.cards_per_node), (2, 8));
    assert_eq!(s.chips.skus, vec!["H100-SXM".to_string()]);
    assert_eq!(s.walltime, 9000);
    let (s, _) = parse("#SBATCH --gpus-per-node=4 --qos=spot\n", "z").unwrap();
    assert_eq!((s.cards_per_node, s.priority), (4, PriorityClass::Spot));
    assert_eq!(slurm_time("2-6"), Some(2 * 86_400 + 6 * 3600));
    assert_eq!(slurm_time("10:30"), Some(630));
    assert_eq!(slurm_time("x"), None);
}

#[test]
fn invalid_values_name_the_line() {
    let e = parse("#!/bin/sh\n#SBATCH -N 2-4\n", "a").unwrap_err();
    assert_eq!(e.field, "line 2");
    let e = parse("\n\n#SBATCH --time=forever\n", "a").unwrap_err();
    assert_eq!(e.field, "line 3");
    assert!(e.message.contains("--time=forever"));
    let e = parse("#SBATCH --gres=gpu:tpu:2\n", "a").unwrap_err();
    assert!(e.message.contains("unknown GPU type"), "{e}");
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
    let big = format!("#SBATCH --export=BIG={}\n", "x".repeat(70 << 10));
    assert_eq!(parse(&big, "a").unwrap_err().field, "env");
    let (s, _) = parse("#SBATCH --export=HF_HOME=/data/hf\n", "a").unwrap();
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
    let (_, w) = parse("#SBATCH -é2\n", "a").unwrap();
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
    assert_eq!(slurm_time("18446744073709551615-0"), None);
    assert_eq!(slurm_time("5124095576030432:0:0"), None);
}
