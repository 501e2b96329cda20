//! `suanli openapi`: prints the hub API's OpenAPI 3.1 document, the one `GET /v1/openapi.json`
//! serves, without a hub (CI validates it).

pub fn run() -> anyhow::Result<i32> {
    crate::client_cmd::output::line(suanli_hub::api::openapi().to_pretty_json()?)?;
    Ok(0)
}
