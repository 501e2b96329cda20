//! Tenants and their tokens, for operators: `admin tenant-create`, `tenants`, `tenant-policy`,
//! `token-create`.

use clap::Subcommand;
use suanli_client::Client;
use suanli_proto::{QuotaView, TenantPolicyView, TenantRequest, TenantView, TokenRequest};
use suanli_types::{CenterId, Role, TenantCategory, TenantId};

use super::output::{self as out, Format, Table, note, row};

#[derive(Subcommand, Debug)]
pub enum Admin {
    /// Create a tenant
    TenantCreate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// enterprise, sme, startup, research or public-service
        #[arg(long)]
        category: TenantCategory,
    },
    /// List tenants
    Tenants {
        #[command(flatten)]
        out: Format,
    },
    /// Show or set a tenant's fair-share weight and quotas per chip family
    TenantPolicy {
        #[arg(long)]
        tenant: String,
        /// Fair-share weight, 1 to 1000
        #[arg(long)]
        weight: Option<u32>,
        /// FAMILY=NOMINAL[:BORROW] cards, e.g. nvidia=16:8 (repeatable); FAMILY=none removes it
        #[arg(long = "quota", value_name = "FAMILY=N[:B]", value_parser = parse_quota)]
        quotas: Vec<(String, Option<QuotaView>)>,
        #[command(flatten)]
        out: Format,
    },
    /// Create an API token and print it (shown once)
    TokenCreate {
        /// Who the token is for, e.g. a user name
        #[arg(long)]
        name: String,
        /// operator, tenant-admin, user, site or supervisor
        #[arg(long)]
        role: Role,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        center: Option<String>,
    },
}

impl Admin {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Admin::TenantCreate { id, name, category } => {
                let req = TenantRequest {
                    id: TenantId::new(id),
                    name,
                    category,
                };
                let t = c.create_tenant(&req).await?;
                out::line(format!(
                    "Created tenant {} ({}, {})",
                    t.id,
                    t.name,
                    t.category.as_str()
                ))?;
            }
            Admin::Tenants { out } => {
                let tenants = c.tenants().await?;
                out::show(out, &tenants, |t| describe_tenants(t))?;
            }
            Admin::TenantPolicy {
                tenant,
                weight,
                quotas,
                out,
            } => {
                let mut policy = c.tenant_policy(&tenant).await?;
                if weight.is_some() || !quotas.is_empty() {
                    if let Some(w) = weight {
                        policy.weight = w;
                    }
                    for (family, quota) in quotas {
                        match quota {
                            Some(q) => policy.quotas.insert(family, q),
                            None => policy.quotas.remove(&family),
                        };
                    }
                    policy = c.set_tenant_policy(&tenant, &policy).await?;
                }
                out::show(out, &policy, |p| describe_policy(&tenant, p))?;
            }
            Admin::TokenCreate {
                name,
                role,
                tenant,
                center,
            } => {
                let req = TokenRequest {
                    name,
                    role,
                    tenant: tenant.map(TenantId::new),
                    center: center.map(CenterId::new),
                };
                let t = c.create_token(&req).await?;
                note(format!(
                    "Token for {} ({}); it is shown only once:",
                    t.name,
                    t.role.as_str()
                ));
                out::line(t.token)?;
            }
        }
        Ok(())
    }
}

/// `FAMILY=NOMINAL[:BORROW]`, or `FAMILY=none` (no quota: `None`).
fn parse_quota(s: &str) -> Result<(String, Option<QuotaView>), String> {
    let (family, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FAMILY=NOMINAL[:BORROW], got {s:?}"))?;
    if v == "none" {
        return Ok((family.to_string(), None));
    }
    let (n, b) = v.split_once(':').unwrap_or((v, "0"));
    let num = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("{x:?} is not a number of cards"))
    };
    let quota = QuotaView {
        nominal: num(n)?,
        borrow_limit: num(b)?,
    };
    Ok((family.to_string(), Some(quota)))
}

fn describe_tenants(tenants: &[TenantView]) -> String {
    let mut t = Table::new("ID NAME CATEGORY");
    t.extend(
        tenants
            .iter()
            .map(|t| row![t.id, t.name, t.category.as_str()]),
    );
    t.to_string()
}

fn describe_policy(tenant: &str, policy: &TenantPolicyView) -> String {
    let mut out = format!("tenant {tenant}: weight {}\n", policy.weight);
    for (family, q) in &policy.quotas {
        out += &format!(
            "  {family}: {} cards nominal, {} more may be borrowed\n",
            q.nominal, q.borrow_limit
        );
    }
    if policy.quotas.is_empty() {
        out += "  no quotas\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        let q = |nominal, borrow_limit| {
            Some(QuotaView {
                nominal,
                borrow_limit,
            })
        };
        assert_eq!(
            parse_quota("nvidia=16:8").unwrap(),
            ("nvidia".into(), q(16, 8))
        );
        assert_eq!(parse_quota("huawei=4").unwrap(), ("huawei".into(), q(4, 0)));
        assert_eq!(parse_quota("hygon=none").unwrap(), ("hygon".into(), None));
        assert!(
            parse_quota("nvidia")
                .unwrap_err()
                .contains("FAMILY=NOMINAL")
        );
        assert!(parse_quota("nvidia=x:1").unwrap_err().contains("\"x\""));
    }
}
