//! The demo's model library: `suanli up` publishes two small models whose benchmarks measure
//! and print their own throughput (a shell loop, a sort), certifies each at three demo centers
//! on domestic chips (as real jobs of the research tenant, billed as any job), and accepts each
//! record the benchmark measured as functional, so that the adaptation matrix holds measured
//! numbers. Run again on the same data, it certifies only where no accepted, current record is.

use std::time::Duration;

use anyhow::Context;
use suanli_client::Client;
use suanli_proto::suanli_models::{CertState, ModelSpec, Status, Verdict};
use suanli_proto::{CertifyRequest, ReviewRequest};
use suanli_types::{CenterId, TenantId};

/// The models, as `suanli model publish` reads them.
const MODELS: [(&str, &str); 2] = [
    (
        "shell-count.toml",
        include_str!("demo_models/shell-count.toml"),
    ),
    (
        "shell-sort.toml",
        include_str!("demo_models/shell-sort.toml"),
    ),
];

/// Where they are certified: one center each of Ascend, Cambricon and MetaX chips.
pub const CENTERS: [&str; 3] = ["pcl-cb2", "hengqin-mlu", "ct-sz-metax"];

/// The tenant the benchmarks run as (and are billed to).
pub const TENANT: &str = "demo-lab";

/// How long to wait for the benchmarks to be measured.
const PATIENCE: Duration = Duration::from_secs(180);

/// The demo models, parsed.
pub fn models() -> anyhow::Result<Vec<ModelSpec>> {
    MODELS
        .iter()
        .map(|(file, text)| toml::from_str(text).with_context(|| format!("demo model {file}")))
        .collect()
}

/// Publishes the demo models (once), certifies them where they have no accepted, current
/// record, and accepts what was measured as functional; returns the names.
pub async fn set_up(op: &Client) -> anyhow::Result<Vec<String>> {
    let specs = models()?;
    let have = op.models().await?.models;
    let mut ids = Vec::new();
    for spec in &specs {
        let found = have
            .iter()
            .find(|m| m.model.name == spec.name && m.model.revision == spec.revision);
        let id = match found {
            Some(m) => m.id,
            None => op.publish_model(spec).await?.id,
        };
        ids.push(id);
    }
    for &model in &ids {
        let list = op.certifications(model).await?;
        for center in CENTERS {
            let done = list.certifications.iter().any(|c| {
                c.center.as_str() == center
                    && !c.stale
                    && matches!(
                        c.state,
                        CertState::Accepted | CertState::Pending | CertState::Running
                    )
            });
            if done {
                continue;
            }
            let req = CertifyRequest {
                center: CenterId::new(center),
                sku: None,
                tenant: Some(TenantId::new(TENANT)),
            };
            op.certify(model, &req)
                .await
                .with_context(|| format!("certifying model {model} at {center}"))?;
        }
    }
    review_when_measured(op, &ids).await?;
    Ok(specs.into_iter().map(|s| s.name).collect())
}

/// Accepts every pending record of `models` the benchmark measured as functional, until none
/// is running (or [`PATIENCE`] is over); records it did not measure as functional stay pending
/// for a reviewer.
async fn review_when_measured(op: &Client, models: &[i64]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut running = 0;
        for &model in models {
            let list = op.certifications(model).await?;
            for c in &list.certifications {
                match c.state {
                    CertState::Running => running += 1,
                    CertState::Pending
                        if !c.stale
                            && c.outcome
                                .as_ref()
                                .is_some_and(|o| o.statuses.functional == Status::Ok) =>
                    {
                        let req = ReviewRequest {
                            verdict: Verdict::Accept,
                            reason: "demo: measured by the model's own benchmark at suanli up"
                                .into(),
                        };
                        op.review_certification(c.id, &req).await?;
                    }
                    _ => {}
                }
            }
        }
        if running == 0 || tokio::time::Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_models_are_valid_and_launch_on_the_centers_stacks() {
        let specs = models().unwrap();
        assert_eq!(specs.len(), MODELS.len());
        let centers = suanli_types::center::gba_topology(1);
        let catalog = suanli_types::ChipCatalog::builtin();
        for s in &specs {
            s.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            for name in CENTERS {
                let c = centers
                    .iter()
                    .find(|c| c.id.as_str() == name)
                    .unwrap_or_else(|| panic!("no demo center {name}"));
                for pool in &c.pools {
                    let stack = &catalog.get(&pool.sku).unwrap().stack;
                    assert!(
                        s.stacks.contains_key(stack.as_str()),
                        "{} has no launch for {stack} at {name}",
                        s.name
                    );
                }
            }
        }
    }
}
