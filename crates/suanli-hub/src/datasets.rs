//! Datasets at the hub: where they reside (told to the engine, so that jobs reading them run
//! only there), who may compute on them (checked at submit), where a site finds them (handed
//! with each assignment) and, for protected data, the rules their outputs leave under (the
//! airlock, `api/airlock.rs`). The decisions are `suanli_data`'s; this only reads and writes.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use suanli_data::{Classification, DatasetSpec, OutputRules};
use suanli_proto::DatasetMount;
use suanli_store::{DatasetRecord, Store};
use suanli_types::{CenterId, JobSpec, SpecError, TenantId, Timestamp};

use crate::error::HubResult;

/// Where each dataset resides, for the engine.
pub async fn homes(store: &dyn Store) -> HubResult<BTreeMap<String, Vec<CenterId>>> {
    Ok(store
        .datasets()
        .await?
        .into_iter()
        .map(|d| (d.spec.name, d.spec.homes))
        .collect())
}

/// The records of the datasets `spec` reads, in its order; an unknown one is `datasets[i]`.
async fn records(store: &dyn Store, spec: &JobSpec) -> HubResult<Vec<DatasetRecord>> {
    let mut out = Vec::with_capacity(spec.datasets.len());
    for (i, name) in spec.datasets.iter().enumerate() {
        let Some(d) = store.dataset(name).await? else {
            return Err(SpecError::new(
                format!("spec.datasets[{i}]"),
                format!("no dataset {name:?} is registered (suanli datasets)"),
            )
            .into());
        };
        out.push(d);
    }
    Ok(out)
}

/// Whether `tenant` may submit `spec`: every dataset it reads is registered, the tenant may
/// compute on it (the owner, public data, or a grant in force), the job's command is one the
/// dataset allows, and its protected data has one owner (whose admins review the outputs).
pub async fn check_submit(
    store: &dyn Store,
    tenant: &TenantId,
    spec: &JobSpec,
    now: Timestamp,
) -> HubResult<()> {
    let sha: String = Sha256::digest(spec.command.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut owners: Vec<&TenantId> = Vec::new();
    let recs = records(store, spec).await?;
    for (i, d) in recs.iter().enumerate() {
        let field = format!("spec.datasets[{i}]");
        let grants = store.grants(&d.spec.name).await?;
        suanli_data::check_access(&d.owner, &d.spec, tenant, &grants, now)
            .map_err(|e| SpecError::new(field.clone(), e))?;
        if !d.spec.policy.commands.is_empty() && (!spec.files.is_empty() || !spec.env.is_empty()) {
            return Err(SpecError::new(
                "spec.files",
                format!(
                    "dataset {} runs only the commands its owner listed: a job on it brings no \
                     working files or environment of its own",
                    d.spec.name
                ),
            )
            .into());
        }
        if !d.spec.policy.commands.is_empty() && !d.spec.policy.commands.contains(&sha) {
            return Err(SpecError::new(
                "spec.command",
                format!(
                    "dataset {} runs only the commands its owner listed (by SHA-256); this \
                     command's is {sha}",
                    d.spec.name
                ),
            )
            .into());
        }
        if d.spec.classification.is_protected() && !owners.contains(&&d.owner) {
            owners.push(&d.owner);
        }
    }
    if owners.len() > 1 {
        return Err(SpecError::new(
            "spec.datasets",
            "a job may read protected data of one owner only (its outputs are reviewed by that \
             owner)",
        )
        .into());
    }
    Ok(())
}

/// Where the site finds each dataset `spec` reads (those no longer registered are left out:
/// the job then fails at the site for want of them, rather than reading something else).
pub async fn mounts(store: &dyn Store, spec: &JobSpec) -> HubResult<Vec<DatasetMount>> {
    let mut out = Vec::new();
    for name in &spec.datasets {
        if let Some(d) = store.dataset(name).await? {
            out.push(DatasetMount {
                name: d.spec.name,
                path: d.spec.path,
                egress: d.spec.policy.egress,
                sensitive: d.spec.classification == Classification::Sensitive,
            });
        }
    }
    Ok(out)
}

/// The protected data a job read: its owner, the strictest classification, the merged output
/// rules and the datasets' names; `None` when it read none (its outputs are not quarantined).
pub struct Protected {
    pub owner: TenantId,
    pub classification: Classification,
    pub rules: OutputRules,
    pub datasets: Vec<String>,
}

pub async fn protected(store: &dyn Store, spec: &JobSpec) -> HubResult<Option<Protected>> {
    if spec.datasets.is_empty() {
        return Ok(None);
    }
    let recs: Vec<DatasetRecord> = records(store, spec)
        .await?
        .into_iter()
        .filter(|d| d.spec.classification.is_protected())
        .collect();
    let Some(first) = recs.first() else {
        return Ok(None);
    };
    // One owner reviews: protected data of several (an owner's dataset re-registered as
    // protected after the submit) has no one reviewer, and nothing of the job leaves.
    if recs.iter().any(|d| d.owner != first.owner) {
        return Err(SpecError::new(
            "spec.datasets",
            "the job read protected data of several owners: no one owner can release its outputs",
        )
        .into());
    }
    let specs: Vec<&DatasetSpec> = recs.iter().map(|d| &d.spec).collect();
    Ok(Some(Protected {
        owner: first.owner.clone(),
        classification: suanli_data::strictest(specs.iter().map(|s| s.classification)),
        rules: suanli_data::merged_rules(specs.iter().map(|s| &s.policy.outputs)),
        datasets: specs.iter().map(|s| s.name.clone()).collect(),
    }))
}
