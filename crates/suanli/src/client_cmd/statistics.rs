//! Statistics: `stats` (the indicators by period and group; a tenant's token sees its own
//! usage), `releases`, and the operator's `admin release` (freeze a quarter, write its files).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use suanli_client::{Client, ClientError, IndicatorsQuery};
use suanli_proto::{ErrorCode, IndicatorRow, IndicatorsView, RELEASE_FILES, ReleaseList};

use super::exit::Exit;
use super::output::{self as out, Export, Format, Table, note, or_dash};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Indicators by period and group: capacity, utilisation, delivered card-hours, jobs, waits,
    /// yuan (docs/INDICATORS.md). Tenants see their own usage
    Stats {
        /// Start (included): 2026Q4, 2026-10, 2026-10-01 (China Standard Time), 2026-10-01T08Z
        /// (UTC hour) or Unix ms [default: the start of this quarter]
        #[arg(long)]
        from: Option<String>,
        /// End (excluded), in the same forms [default: the end of this hour]
        #[arg(long)]
        to: Option<String>,
        /// hour, day, month or quarter [default: day]
        #[arg(long)]
        period: Option<String>,
        /// all, center, sku, vendor or category [default: all]
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        out: Export,
    },
    /// The frozen quarterly releases (public)
    Releases {
        #[command(flatten)]
        out: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum Admin {
    /// Freeze the statistics release of a quarter that has ended and write its files
    /// (release.json, release.csv, release.html); a release made before is written as stored
    Release {
        /// The quarter, e.g. 2026Q4 (China Standard Time)
        #[arg(long)]
        quarter: String,
        /// Where to write the files [default: ./QUARTER]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The quarter so far (it need not have ended): the same three files, marked
        /// preliminary, made now and not stored as the quarter's release
        #[arg(long)]
        preliminary: bool,
    },
}

/// The columns of `stats`: name, and the figure of a row.
type Column = (&'static str, fn(&IndicatorRow) -> String);

fn columns() -> Vec<Column> {
    fn cap(r: &IndicatorRow, f: fn(&suanli_proto::CapacityFigures) -> String) -> String {
        r.capacity.as_ref().map_or_else(String::new, f)
    }
    vec![
        ("period", |r| r.period.clone()),
        ("group", |r| r.group.clone()),
        ("installed_card_hours", |r| {
            cap(r, |c| c.installed_card_hours.to_string())
        }),
        ("installed_fp16_pflops", |r| {
            cap(r, |c| c.installed_fp16_pflops.to_string())
        }),
        ("available_card_hours", |r| {
            cap(r, |c| c.available_card_hours.to_string())
        }),
        ("allocated_card_hours", |r| {
            r.usage.allocated_card_hours.to_string()
        }),
        ("utilisation", |r| cap(r, |c| or_dash(c.utilisation))),
        ("delivered_card_hours", |r| {
            r.usage.delivered_card_hours.to_string()
        }),
        ("delivered_card_seconds", |r| {
            r.usage.delivered_card_seconds.to_string()
        }),
        ("jobs_submitted", |r| r.usage.jobs_submitted.to_string()),
        ("jobs_started", |r| r.usage.jobs_started.to_string()),
        ("jobs_ended", |r| {
            let u = &r.usage;
            (u.jobs_succeeded + u.jobs_failed + u.jobs_cancelled + u.jobs_timed_out).to_string()
        }),
        ("wait_p50_secs", |r| or_dash(r.usage.wait_p50_secs)),
        ("wait_p95_secs", |r| or_dash(r.usage.wait_p95_secs)),
        ("gross_yuan", |r| r.usage.gross_yuan.to_string()),
        ("subsidy_yuan", |r| r.usage.subsidy_yuan.to_string()),
        ("payable_yuan", |r| r.usage.payable_yuan.to_string()),
        ("active_tenants", |r| r.usage.active_tenants.to_string()),
        ("located_card_hours", |r| {
            r.usage.located_card_hours.to_string()
        }),
        ("cross_city_card_hours", |r| {
            r.usage.cross_city_card_hours.to_string()
        }),
    ]
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    match s.contains([',', '"', '\n']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_string(),
    }
}

/// The rows as CSV: a header line, then one line per row (empty cells for absent figures).
pub fn stats_csv(v: &IndicatorsView) -> String {
    let cols = columns();
    let mut text = cols.iter().map(|c| c.0).collect::<Vec<_>>().join(",");
    text.push('\n');
    for r in &v.rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                let cell = (c.1)(r);
                csv_field(if cell == "-" { "" } else { &cell })
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    text
}

fn stats_table(v: &IndicatorsView) -> String {
    let whose = match &v.tenant {
        Some(t) => format!("tenant {t}'s usage"),
        None => "the network".into(),
    };
    let mut text = format!(
        "Indicators of {whose}, {} to {}, by {} and {} (card-hours; yuan)\n",
        v.from, v.to, v.period, v.by
    );
    if v.rows.is_empty() {
        text.push_str("  nothing counted in this window\n");
        return text;
    }
    let cols = columns();
    let short = [
        "period",
        "group",
        "installed_fp16_pflops",
        "available_card_hours",
        "allocated_card_hours",
        "utilisation",
        "delivered_card_hours",
        "jobs_started",
        "jobs_ended",
        "wait_p50_secs",
        "gross_yuan",
        "subsidy_yuan",
    ];
    let shown: Vec<&Column> = cols.iter().filter(|c| short.contains(&c.0)).collect();
    let header = [
        "PERIOD", "GROUP", "PFLOPS", "AVAIL_H", "ALLOC_H", "UTIL", "DELIV_H", "STARTED", "ENDED",
        "WAIT_P50", "GROSS", "SUBSIDY",
    ];
    let mut t = Table::new(&header.join(" "));
    for r in &v.rows {
        t.push(shown.iter().map(|c| (c.1)(r)).collect());
    }
    text.push_str(&t.indented());
    text
}

fn releases_table(l: &ReleaseList) -> String {
    if l.releases.is_empty() {
        return "No release has been made yet.\n".into();
    }
    let mut t = Table::new("QUARTER MADE SHA256");
    for r in &l.releases {
        t.push(vec![
            r.quarter.clone(),
            r.made_at.to_string(),
            r.sha256.clone(),
        ]);
    }
    t.to_string()
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let c = conn.client()?;
        match self {
            Command::Stats {
                from,
                to,
                period,
                by,
                out,
            } => {
                let q = IndicatorsQuery {
                    from,
                    to,
                    period,
                    by,
                };
                let v = c.indicators(&q).await?;
                match out.csv {
                    true => out::print(&stats_csv(&v))?,
                    false => out::show(out.format(), &v, stats_table)?,
                }
            }
            Command::Releases { out } => out::show(out, &c.releases().await?, releases_table)?,
        }
        Ok(Exit::Success)
    }
}

impl Admin {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Admin::Release {
                quarter,
                out,
                preliminary: true,
            } => {
                let p = c.preliminary_release(&quarter).await?;
                match p.until {
                    Some(t) => note(format!(
                        "preliminary release of {}: the quarter up to {} (not stored)",
                        p.quarter,
                        suanli_types::Timestamp(t)
                    )),
                    None => note(format!(
                        "{} has ended: these are the files its release would have (not stored; \
                         make the release without --preliminary)",
                        p.quarter
                    )),
                }
                let dir = out.unwrap_or_else(|| PathBuf::from(format!("{quarter}-preliminary")));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                for (file, text) in RELEASE_FILES.iter().zip([&p.json, &p.csv, &p.html]) {
                    let path = dir.join(file);
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    out::line(path.display())?;
                }
            }
            Admin::Release {
                quarter,
                out,
                preliminary: false,
            } => {
                match c.make_release(&quarter).await {
                    Ok(r) => note(format!(
                        "release {} made; SHA-256 of release.json {}",
                        r.quarter, r.sha256
                    )),
                    Err(ClientError::Api(e)) if e.code == ErrorCode::AlreadyExists => note(
                        format!("release {quarter} was made before; writing it as stored"),
                    ),
                    Err(e) => return Err(e.into()),
                }
                let dir = out.unwrap_or_else(|| PathBuf::from(&quarter));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                for file in RELEASE_FILES {
                    let text = c.release_file(&quarter, file).await?;
                    let path = dir.join(file);
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    out::line(path.display())?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_proto::UsageFigures;
    use suanli_types::{Money, Timestamp};

    fn row(group: &str) -> IndicatorRow {
        IndicatorRow {
            period: "2026-10".into(),
            group: group.into(),
            capacity: None,
            usage: UsageFigures {
                allocated_card_hours: 1.5,
                delivered_card_hours: 1.25,
                delivered_card_seconds: 4500,
                jobs_submitted: 3,
                jobs_started: 2,
                jobs_succeeded: 1,
                jobs_failed: 1,
                jobs_cancelled: 0,
                jobs_timed_out: 0,
                wait_p50_secs: Some(4),
                wait_p95_secs: None,
                wait_p99_secs: None,
                gross_yuan: Money::from_yuan(3),
                subsidy_yuan: Money::from_yuan(1),
                payable_yuan: Money::from_yuan(2),
                subsidy_rate: Some(0.3333),
                active_tenants: 2,
                amendments: 0,
                located_card_hours: 1.5,
                cross_city_card_hours: 0.5,
            },
        }
    }

    #[test]
    fn csv_has_a_line_per_row_and_empty_cells_for_absent_figures() {
        let v = IndicatorsView {
            from: Timestamp(0),
            to: Timestamp(3_600_000),
            period: "month".into(),
            by: "category".into(),
            tenant: None,
            rows: vec![row("sme"), row("a,b")],
        };
        let text = stats_csv(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("period,group,installed_card_hours,"));
        assert_eq!(
            lines[1],
            "2026-10,sme,,,,1.5,,1.25,4500,3,2,2,4,,3.00,1.00,2.00,2,1.5,0.5"
        );
        assert!(lines[2].starts_with("2026-10,\"a,b\","), "{}", lines[2]);
    }
}
