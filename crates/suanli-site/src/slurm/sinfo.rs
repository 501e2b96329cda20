//! The nodes as Slurm has them: `sinfo` output and GRES lists, and the heartbeat's inventory made
//! from them. Pure; tested in `parse_tests.rs`.

use suanli_proto::NodeInventory;

/// One GRES entry of a node: `gpu:a100:4(S:0-1)` is name `gpu`, type `a100`, count 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gres {
    pub name: String,
    pub kind: Option<String>,
    pub count: u32,
}

impl Gres {
    /// `name` or `name:type`, as `--gres` takes it (without the count).
    pub fn spec(&self) -> String {
        match &self.kind {
            Some(k) => format!("{}:{k}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A GRES list (`gpu:fake:2`, `gpu:a100:2(S:0),gpu:v100:2(IDX:0,2)`, `(null)`); entries with a
/// count suffix (`1K`) or an unreadable count are skipped.
pub fn parse_gres(s: &str) -> Vec<Gres> {
    let s = s.trim();
    if s.is_empty() || s == "(null)" || s == "N/A" {
        return Vec::new();
    }
    let mut entries = Vec::new();
    let (mut depth, mut startpos) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&s[startpos..i]);
                startpos = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&s[startpos..]);
    entries
        .into_iter()
        .filter_map(|e| {
            let e = e.split('(').next()?.trim();
            let parts: Vec<&str> = e.split(':').collect();
            let (name, kind, count) = match parts.as_slice() {
                [n] => (*n, None, "1"),
                [n, c] if c.starts_with(|ch: char| ch.is_ascii_digit()) => (*n, None, *c),
                [n, t] => (*n, Some(*t), "1"),
                [n, t, c, ..] => (*n, Some(*t), *c),
                _ => return None,
            };
            Some(Gres {
                name: name.to_string(),
                kind: kind.map(str::to_string),
                count: count.parse().ok()?,
            })
        })
        .filter(|g| !g.name.is_empty())
        .collect()
}

/// The `sinfo` output format [`parse_sinfo`] reads (`:0` = no width limit, `|` separates).
pub const SINFO_FORMAT: &str = "NodeList:0|,Gres:0|,GresUsed:0|,StateLong:0|";

/// One node as `sinfo -N -h -O` [`SINFO_FORMAT`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    pub gres: Vec<Gres>,
    pub gres_used: Vec<Gres>,
    /// `idle`, `mixed`, `allocated`, `down*`, `drained`, ...
    pub state: String,
}

impl SlurmNode {
    /// Can Slurm start jobs on the node (not down, drained, failing or powered off)?
    pub fn usable(&self) -> bool {
        let s = self.state.to_ascii_lowercase();
        let base = s.trim_end_matches(|c: char| "*~#!%$@^-+".contains(c));
        !s.ends_with('*')
            && !s.contains("drain")
            && !s.contains("down")
            && !s.contains("fail")
            && !s.contains("maint")
            && !s.contains("power")
            && !s.contains("reboot")
            && !s.contains("future")
            && ["idle", "mixed", "allocated", "completing", "planned"].contains(&base)
    }
}

/// Nodes from `sinfo -N -h -O` [`SINFO_FORMAT`]; a node listed once per partition is kept once.
pub fn parse_sinfo(text: &str) -> Vec<SlurmNode> {
    let mut out: Vec<SlurmNode> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 4 || f[0].is_empty() || out.iter().any(|n| n.name == f[0]) {
            continue;
        }
        out.push(SlurmNode {
            name: f[0].to_string(),
            gres: parse_gres(f[1]),
            gres_used: parse_gres(f[2]),
            state: f[3].to_string(),
        });
    }
    out
}

/// The heartbeat's inventory from Slurm's nodes. `requests` lists the center's SKUs with the GRES
/// each asks for (`gpu`, `gpu:a100`); a node's GRES entry counts for the first SKU whose request is
/// its name (any type) or its `name:type`. Free cards are the total less Slurm's `GresUsed` on a
/// usable node, none on a down, drained or failing one. Nodes with no such GRES are left out.
pub fn slurm_inventory(nodes: &[SlurmNode], requests: &[(String, String)]) -> Vec<NodeInventory> {
    let mut out = Vec::new();
    for n in nodes {
        let mut per_sku: Vec<(String, u32, u32)> = Vec::new();
        for g in &n.gres {
            let Some((sku, _)) = requests
                .iter()
                .find(|(_, r)| *r == g.name || *r == g.spec())
            else {
                continue;
            };
            let used: u32 = n
                .gres_used
                .iter()
                .filter(|u| u.name == g.name && (u.kind.is_none() || u.kind == g.kind))
                .map(|u| u.count)
                .sum();
            match per_sku.iter_mut().find(|(s, ..)| s == sku) {
                Some(e) => {
                    e.1 += g.count;
                    e.2 += used.min(g.count);
                }
                None => per_sku.push((sku.clone(), g.count, used.min(g.count))),
            }
        }
        for (sku, cards, used) in per_sku {
            out.push(NodeInventory {
                node: n.name.clone(),
                sku,
                cards,
                free_cards: if n.usable() { cards - used } else { 0 },
            });
        }
    }
    out
}
