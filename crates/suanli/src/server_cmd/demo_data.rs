//! The demo's public data: `suanli up` writes two small datasets into its data folder and
//! registers them, owned by the research tenant: city air-quality readings (public, at two
//! Shenzhen centers) and clinic visits (restricted, at the Peng Cheng Lab center only, no network
//! for its jobs, outputs only as CSV without the patient identifier column), with a grant to the
//! SME tenant. Run again, it registers them again (the same records, the data folder's paths).

use std::path::Path;

use anyhow::Context;
use suanli_client::Client;
use suanli_proto::suanli_data::{Classification, DataPolicy, DatasetSpec, OutputRules};
use suanli_proto::{DatasetGrantRequest, RegisterDataset};
use suanli_types::{CenterId, TenantId};

/// The owner of both (its tenant admins review releases).
pub const OWNER: &str = "demo-lab";
/// The tenant granted the restricted one.
pub const GRANTEE: &str = "demo-sme";
pub const PUBLIC: &str = "gba-air-quality";
pub const RESTRICTED: &str = "sz-clinic-visits";
pub const RESTRICTED_HOME: &str = "pcl-cb2";
/// The folder of the data dir the demo's data is written to, and its sites' data root.
pub const DATA_DIR: &str = "demo-data";

const AIR: &str = "station,district,hour,pm25\n\
    futian-1,futian,2026-11-01T08,31\nfutian-1,futian,2026-11-01T09,35\n\
    nanshan-2,nanshan,2026-11-01T08,22\nnanshan-2,nanshan,2026-11-01T09,27\n\
    baoan-3,baoan,2026-11-01T08,40\nbaoan-3,baoan,2026-11-01T09,44\n";

const VISITS: &str = "patient_id,clinic,month,visits\n\
    p-0001,futian-a,2026-10,2\np-0002,futian-a,2026-10,1\np-0003,nanshan-b,2026-10,4\n\
    p-0004,nanshan-b,2026-10,1\np-0005,baoan-c,2026-10,3\np-0006,futian-a,2026-10,2\n";

fn write(dir: &Path, name: &str, file: &str, text: &str) -> anyhow::Result<String> {
    let d = dir.join(DATA_DIR).join(name);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    std::fs::write(d.join(file), text).with_context(|| format!("cannot write {}", d.display()))?;
    // Readable by the job user the sandbox runs jobs as.
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.join(DATA_DIR), d.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::set_permissions(d.join(file), std::fs::Permissions::from_mode(0o644))?;
    // Its real path: a dataset names an absolute path with no link on the way (a relative or
    // linked --data-dir would otherwise be refused at the site).
    let real =
        std::fs::canonicalize(&d).with_context(|| format!("cannot resolve {}", d.display()))?;
    Ok(real.display().to_string())
}

/// The two demo datasets with their data written under `dir`.
pub fn specs(dir: &Path) -> anyhow::Result<[DatasetSpec; 2]> {
    let air = DatasetSpec {
        name: PUBLIC.into(),
        homes: vec![CenterId::new("pcl-cb2"), CenterId::new("sz-guangming")],
        path: write(dir, PUBLIC, "readings.csv", AIR)?,
        size_bytes: AIR.len() as u64,
        classification: Classification::Public,
        description: "Hourly PM2.5 readings of three Shenzhen stations (demo)".into(),
        policy: DataPolicy {
            egress: true,
            ..DataPolicy::default()
        },
    };
    let visits = DatasetSpec {
        name: RESTRICTED.into(),
        homes: vec![CenterId::new(RESTRICTED_HOME)],
        path: write(dir, RESTRICTED, "visits.csv", VISITS)?,
        size_bytes: VISITS.len() as u64,
        classification: Classification::Restricted,
        description: "Clinic visits per patient, October 2026 (demo; identifiers are made up)"
            .into(),
        policy: DataPolicy {
            egress: false,
            commands: Vec::new(),
            outputs: OutputRules {
                max_bytes: Some(64 << 10),
                allowed_types: vec!["csv".into()],
                forbidden: vec!["patient_id".into()],
            },
        },
    };
    Ok([air, visits])
}

/// Registers the demo datasets and grants the SME tenant the restricted one.
pub async fn set_up(op: &Client, dir: &Path) -> anyhow::Result<()> {
    for spec in specs(dir)? {
        op.register_dataset(&RegisterDataset {
            spec,
            owner: Some(TenantId::new(OWNER)),
        })
        .await
        .context("cannot register the demo datasets")?;
    }
    let granted = in_force(&op.dataset(RESTRICTED).await?, GRANTEE);
    if !granted {
        op.grant_dataset(
            RESTRICTED,
            &DatasetGrantRequest {
                tenant: TenantId::new(GRANTEE),
                expires_at: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Whether `tenant` has a grant on `d` that is neither revoked nor expired now.
fn in_force(d: &suanli_proto::DatasetView, tenant: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    d.grants
        .iter()
        .filter(|g| g.tenant.as_str() == tenant)
        .max_by_key(|g| g.granted_at)
        .is_some_and(|g| g.in_force(suanli_types::Timestamp(now)))
}
