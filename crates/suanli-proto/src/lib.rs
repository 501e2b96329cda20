//! Wire types: what crosses HTTP between the hub, site agents and clients.
//!
//! Every response error is an [`ApiError`] with a stable [`ErrorCode`]; its message is written for
//! the client and never carries internal error text.

mod audit;
mod datasets;
mod directory;
mod error;
mod jobs;
mod models;
mod money;
mod outputs;
mod risk;
mod site;
mod statistics;

pub use audit::*;
pub use datasets::*;
pub use directory::*;
pub use error::*;
pub use jobs::*;
pub use models::*;
pub use money::*;
pub use outputs::*;
pub use risk::*;
pub use site::*;
pub use statistics::*;

pub use suanli_data;
pub use suanli_models;
pub use suanli_types;

#[cfg(test)]
mod skew_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_types::JobId;

    #[test]
    fn event_wire_shape_is_stable() {
        let e = AgentEvent {
            job: JobId(7),
            attempt: 2,
            kind: EventKind::Log {
                seq: 0,
                stream: Stream::Stdout,
                data: "hi\n".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"job":7,"attempt":2,"kind":"log","seq":0,"stream":"stdout","data":"hi\n"})
        );
        assert_eq!(serde_json::from_value::<AgentEvent>(v).unwrap(), e);
    }

    #[test]
    fn error_display_and_status() {
        let mut e = ApiError::new(ErrorCode::InvalidSpec, "must be 1 to 64");
        e.field = Some("cards_per_node".into());
        assert_eq!(
            e.to_string(),
            "invalid_spec: cards_per_node: must be 1 to 64"
        );
        assert_eq!(e.code.http_status(), 400);
        assert_eq!(ErrorCode::Unschedulable.http_status(), 422);
    }
}
