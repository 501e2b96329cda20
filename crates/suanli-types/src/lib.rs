//! Domain vocabulary shared by every suanli crate.
//!
//! Nothing here does I/O or reads a clock. Types that are also external or stored formats (job
//! specs, center definitions, job records, tenant share policies) derive serde; with the `openapi`
//! feature the external ones also describe themselves for the API document.

pub mod center;
pub mod chips;
pub mod ids;
pub mod money;
pub mod record;
pub mod sbatch;
pub mod share;
pub mod size;
pub mod spec;
pub mod state;
pub mod time;

pub use center::{BackendKind, CenterSpec, NodePool, OwnerType};
pub use chips::{Chip, ChipCatalog};
pub use ids::{CenterId, JobId, TenantId};
pub use money::Money;
pub use share::{CardQuota, SharePolicy};
pub use spec::{ChipRequest, JobSpec, PriorityClass, SpecError};
pub use state::{JobState, Role, TenantCategory};
pub use time::Timestamp;
