//! Responses that several operations share, declared once: the 404 of each kind of object and the 409 of one that exists (named
//! in a handler's `#[utoipa::path(responses(...))]` beside its own), and reports answered as JSON
//! or CSV.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use suanli_proto::ApiError;
use utoipa::{IntoParams, IntoResponses, ToSchema};

/// Error responses, one type each: `name: status, description;`.
macro_rules! error_responses {
    ($($(#[$m:meta])* $name:ident: $status:literal, $description:literal;)*) => {$(
        $(#[$m])*
        #[derive(IntoResponses)]
        #[response(status = $status, description = $description)]
        pub(super) struct $name(#[allow(dead_code)] ApiError);
    )*};
}

error_responses! {
    /// Jobs a principal may not see are 404, as if they did not exist.
    NoSuchJob: 404, "no such job, or not visible to this token";
    NoSuchCenter: 404, "no such center";
    NoSuchTenant: 404, "no such tenant";
    NoSuchProgramme: 404, "no such programme";
    AlreadyExists: 409, "an object with this id exists already (`already_exists`)";
}

/// `?format=`: `json` (the default) or `csv`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    #[default]
    Json,
    Csv,
}

/// The query of a report: its format only.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct FormatQuery {
    /// json (default) or csv.
    #[param(inline)]
    pub format: Option<Format>,
}

/// A report as JSON (`T`) or CSV text, as the request's [`Format`] asked.
pub(super) enum Tabular<T> {
    Json(T),
    Csv(String),
}

impl<T> Tabular<T> {
    /// `source` in `format`: its CSV text, or its JSON view.
    pub(super) fn of<S>(
        format: Option<Format>,
        source: &S,
        csv: impl FnOnce(&S) -> String,
        view: impl FnOnce(&S) -> T,
    ) -> Tabular<T> {
        match format.unwrap_or_default() {
            Format::Json => Tabular::Json(view(source)),
            Format::Csv => Tabular::Csv(csv(source)),
        }
    }
}

impl<T: Serialize> IntoResponse for Tabular<T> {
    fn into_response(self) -> axum::response::Response {
        match self {
            Tabular::Json(v) => Json(v).into_response(),
            Tabular::Csv(text) => {
                ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
            }
        }
    }
}
