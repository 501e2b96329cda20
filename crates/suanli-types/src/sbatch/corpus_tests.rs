//! The corpus of batch scripts (`tests/sbatch/*.sh`), each with its expected parse
//! (`*.snap`, rewritten with SUANLI_UPDATE_SNAPSHOTS=1), and docs/SLURM-INPUT.md, generated from
//! the directive table (rewritten with SUANLI_UPDATE_DOCS=1).

use std::path::{Path, PathBuf};

use super::*;

/// The map a corpus script is read with: the example of docs/SLURM-INPUT.md.
const CORPUS_MAP: &str = "[gres]\nh200 = \"H100-SXM\"\na100 = \"A100-80G\"\n910b = \"Ascend910B\"\n\
     [partitions.a100_tandon]\nqueue = \"gpu\"\nchips = \"A100-80G\"\n\
     [partitions.gpu]\nqueue = \"gpu\"\n\
     [qos.mcml]\npriority = \"standard\"\n\
     [qos.low]\npriority = \"spot\"\n";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A first line `# suanli: strict, cards` sets the options a script is read with.
fn options_for(script: &str) -> Options {
    let mut o = Options {
        map: toml::from_str(CORPUS_MAP).expect("the corpus map parses"),
        ..Options::default()
    };
    for l in script.lines().filter_map(|l| l.strip_prefix("# suanli:")) {
        for w in l.split(',').map(str::trim) {
            match w {
                "strict" => o.strict = true,
                "cards" => o.overrides.cards = true,
                "chips" => o.overrides.chips = true,
                "queue" => o.overrides.queue = true,
                other => panic!("unknown corpus option {other:?}"),
            }
        }
    }
    o
}

/// The parse as text: the spec's fields (the script itself left out), the warnings, or the error.
fn render(script: &str, name: &str) -> String {
    let o = options_for(script);
    match parse_with(script, name, &o) {
        Err(e) => format!("error: {e}\n"),
        Ok((s, w)) => {
            let mut out = String::new();
            out += &format!("name: {}\n", s.name);
            out += &format!("command: {}\n", s.command);
            out += &format!("nodes: {}\ncards_per_node: {}\n", s.nodes, s.cards_per_node);
            out += &format!("chips: {}\nstack: {}\n", s.chips, s.stack);
            out += &format!("walltime: {}\n", s.walltime);
            out += &format!("queue: {}\npriority: {}\n", s.queue, s.priority.as_str());
            for (k, v) in [
                ("dependency", &s.dependency),
                ("begin", &s.begin),
                ("array", &s.array),
                ("signal", &s.signal),
            ] {
                if let Some(v) = v {
                    out += &format!("{k}: {v}\n");
                }
            }
            if s.hold {
                out += "hold: yes\n";
            }
            if !s.centers.is_empty() {
                let names: Vec<&str> = s.centers.iter().map(|c| c.as_str()).collect();
                out += &format!("centers: {}\n", names.join(", "));
            }
            if !s.kill_on_invalid_dep {
                out += "kill-on-invalid-dep: no\n";
            }
            for (k, v) in &s.env {
                out += &format!("env: {k}={v}\n");
            }
            let files: Vec<&str> = s.files.keys().map(String::as_str).collect();
            out += &format!("files: {}\n", files.join(", "));
            for w in w {
                out += &format!("warning: {w}\n");
            }
            out
        }
    }
}

fn check_or_update(path: &Path, actual: &str, var: &str) -> Result<(), String> {
    if std::env::var_os(var).is_some() {
        std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    let want = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} ({var}=1 writes it)", path.display()))?;
    if want != actual {
        return Err(format!(
            "{} is out of date ({var}=1 rewrites it); now:\n{actual}",
            path.display()
        ));
    }
    Ok(())
}

#[test]
fn the_corpus_parses_as_its_snapshots_say() {
    let dir = crate_dir().join("tests/sbatch");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sbatch")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 30, "{} scripts", scripts.len());
    let mut failures = Vec::new();
    let (mut parsed, mut refused) = (0, 0);
    for path in &scripts {
        let script = std::fs::read_to_string(path).expect("a script");
        let name = path.file_name().unwrap().to_string_lossy();
        let actual = render(&script, &name);
        match actual.starts_with("error:") {
            true => refused += 1,
            false => parsed += 1,
        }
        if let Err(e) = check_or_update(
            &path.with_extension("snap"),
            &actual,
            "SUANLI_UPDATE_SNAPSHOTS",
        ) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Both outcomes are in the corpus, so that a parser that accepts or refuses all fails.
    assert!(
        parsed >= 15 && refused >= 8,
        "parsed {parsed}, refused {refused}"
    );
}

#[test]
fn the_slurm_input_doc_is_the_directive_table() {
    let path = crate_dir().join("../../docs/SLURM-INPUT.md");
    check_or_update(&path, &table::render_doc(), "SUANLI_UPDATE_DOCS")
        .unwrap_or_else(|e| panic!("{e}"));
}
