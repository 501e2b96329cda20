//! The site agent protocol.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::{JobId, JobSpec, TenantId, Timestamp};
use utoipa::ToSchema;

use crate::*;
/// The version of the site agent protocol this build speaks: the heartbeat and its reply, the
/// assignments, the events and their results, and the site config.
///
/// Version skew is tolerated both ways: no message of the protocol refuses a field it does not
/// know (none is `deny_unknown_fields`; the job spec and the center definition it carries, which
/// do refuse them where people write them, are read leniently: see [`SiteConfig`]), and every field
/// added since version 1 has a serde default. So an agent one version older or newer than its hub
/// keeps working; a change that cannot be made that way needs a new version. The heartbeat says
/// which version the agent speaks (0: an agent from before it said).
pub const PROTOCOL_VERSION: u32 = 1;

/// Names one attempt of one job: the attempt number is the fencing epoch.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub struct AttemptRef {
    pub job: JobId,
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeInventory {
    pub node: String,
    pub sku: String,
    pub cards: u32,
    pub free_cards: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    pub agent_version: String,
    /// The agent protocol version the agent speaks ([`PROTOCOL_VERSION`]); 0 when it did not say.
    #[serde(default)]
    pub protocol: u32,
    pub inventory: Vec<NodeInventory>,
    pub stacks: BTreeMap<String, String>,
    /// Attempts the agent is running now.
    pub running: Vec<AttemptRef>,
    /// Stop giving this center new work.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// Attempts the agent must stop now (cancelled, or no longer this center's).
    pub kill: Vec<AttemptRef>,
    /// Leases last this long past each heartbeat.
    pub lease_ttl_secs: u64,
}

/// Work handed to a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub job: JobId,
    pub attempt: u32,
    pub tenant: TenantId,
    /// Read leniently: what a newer hub added to the job spec is dropped.
    #[serde(deserialize_with = "lenient::job_spec")]
    pub spec: JobSpec,
    pub sku: String,
    pub nodes: Vec<NodeCards>,
    pub lease_expires_at: Timestamp,
    /// The datasets the job reads, where they are at this center.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetMount>,
}

/// A dataset a job reads: mounted read-only at `path` (its path at the center), named in the
/// job's environment as `SUANLI_DATASET_<NAME>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetMount {
    pub name: String,
    pub path: String,
    /// The dataset's policy allows network egress to jobs that read it.
    pub egress: bool,
    /// Sensitive data: nothing of the job's, its checkpoints included, leaves the center but
    /// through the airlock.
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignments {
    pub assignments: Vec<Assignment>,
    /// Attempts of this center to stop now (cancelled); also sent in heartbeat replies.
    #[serde(default)]
    pub kill: Vec<AttemptRef>,
}

/// How an attempt ended, as the agent saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit code, or a signal, or the backend failed to start it.
    Failed,
    /// Killed at the wall-time limit.
    TimedOut,
    /// Killed because the hub said so (cancel or lost lease).
    Killed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    Started {
        at: Timestamp,
    },
    Log {
        /// Per attempt, from 0, gap-free; a retried chunk has the same seq.
        seq: u64,
        stream: Stream,
        data: String,
    },
    Finished {
        outcome: Outcome,
        exit_code: Option<i32>,
        started_at: Timestamp,
        ended_at: Timestamp,
        /// Cards x seconds run.
        card_seconds: u64,
        /// Number of log chunks shipped for this attempt.
        log_chunks: u64,
        #[serde(default)]
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentEvent {
    pub job: JobId,
    pub attempt: u32,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventBatch {
    pub events: Vec<AgentEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventStatus {
    /// Recorded (or already recorded: retries are harmless).
    Accepted,
    /// The attempt is not current at this center: stop it, send nothing more for it.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventResults {
    /// One per event, in order.
    pub results: Vec<EventStatus>,
}

/// The site config (`GET /v1/site/config`): the center's registered definition as the agent reads
/// it. Its JSON is the [`CenterSpec`]'s; what a newer hub added to it is dropped (a `CenterSpec`
/// itself refuses unknown fields, to catch an operator's typos).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SiteConfig(pub suanli_types::CenterSpec);

impl<'de> Deserialize<'de> for SiteConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SiteConfig, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        lenient::retain_known::<suanli_types::CenterSpec>(&mut v);
        if let Some(pools) = v.get_mut("pools").and_then(|p| p.as_array_mut()) {
            pools
                .iter_mut()
                .for_each(lenient::retain_known::<suanli_types::NodePool>);
        }
        serde_json::from_value(v)
            .map(SiteConfig)
            .map_err(serde::de::Error::custom)
    }
}

/// Reading, within the agent protocol, the domain types that refuse unknown fields.
mod lenient {
    use serde::de::{self, DeserializeOwned, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;
    use suanli_types::{ChipRequest, JobSpec};

    /// A deserializer that only learns which fields a struct reads.
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    /// The fields struct `T` reads.
    fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    /// Drops the keys of object `v` that `T` does not read.
    pub(super) fn retain_known<T: DeserializeOwned>(v: &mut Value) {
        let known = fields::<T>();
        if let Value::Object(o) = v {
            o.retain(|k, _| known.contains(&k.as_str()));
        }
    }

    /// A job spec, without what this build does not know of it.
    pub(super) fn job_spec<'de, D: Deserializer<'de>>(d: D) -> Result<JobSpec, D::Error> {
        let mut v = Value::deserialize(d)?;
        retain_known::<JobSpec>(&mut v);
        if let Some(chips) = v.get_mut("chips") {
            retain_known::<ChipRequest>(chips);
        }
        serde_json::from_value(v).map_err(de::Error::custom)
    }
}
