//! Tenants and their tokens, for operators: `admin tenant-create`, `tenants`, `tenant-policy`,
//! `token-create`, `tokens`, `token-revoke`, `token-rotate`.

use clap::Subcommand;
use suanli_client::Client;
use suanli_proto::{
    QuotaView, RotateRequest, TenantPolicyView, TenantRequest, TenantView, TokenRequest, TokenView,
};
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
        /// The city it is in, as the centers name theirs (e.g. Shenzhen): the statistics count
        /// its work at centers elsewhere as cross-city dispatch
        #[arg(long)]
        city: Option<String>,
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
        /// Allow (true) or forbid (false) public-service work for a tenant whose category is
        /// not public-service
        #[arg(long)]
        public_service: Option<bool>,
        #[command(flatten)]
        out: Format,
    },
    /// Create an API token and print it (shown once)
    TokenCreate {
        /// A label for the token, e.g. a user name (1 to 64 of A-Z a-z 0-9 . _ -, unique in
        /// its tenant, center or the platform)
        #[arg(long)]
        name: String,
        /// operator, tenant-admin, user, site or supervisor
        #[arg(long)]
        role: Role,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        center: Option<String>,
        /// Lifetime, e.g. 30d or 12h; a bare number is minutes (default per role: user 90d; tenant-admin, supervisor,
        /// operator 30d; site 365d)
        #[arg(long, value_parser = suanli_types::sbatch::parse_flag_duration)]
        expires_in: Option<u64>,
    },
    /// List tokens (never their secrets): id, name, role, scope, created, expires, revoked,
    /// last used
    Tokens {
        #[command(flatten)]
        out: Format,
    },
    /// Revoke a token at once, on every hub
    TokenRevoke {
        /// The token's id (see `suanli admin tokens`)
        id: i64,
    },
    /// Issue a new site token for a center and revoke its older ones, at once or after a grace
    TokenRotate {
        center: String,
        /// How long the old tokens stay valid, e.g. 1h; a bare number is minutes (default: revoked at once; at most 7d)
        #[arg(long, value_parser = suanli_types::sbatch::parse_flag_duration, default_value = "0")]
        grace: u64,
    },
}

impl Admin {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Admin::TenantCreate {
                id,
                name,
                category,
                city,
            } => {
                let req = TenantRequest {
                    id: TenantId::new(id),
                    name,
                    category,
                    city,
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
                public_service,
                out,
            } => {
                let mut policy = c.tenant_policy(&tenant).await?;
                if weight.is_some() || !quotas.is_empty() || public_service.is_some() {
                    if let Some(p) = public_service {
                        policy.public_service = p;
                    }
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
                expires_in,
            } => {
                let req = TokenRequest {
                    name,
                    role,
                    tenant: tenant.map(TenantId::new),
                    center: center.map(CenterId::new),
                    expires_in,
                };
                let t = c.create_token(&req).await?;
                note(format!(
                    "Token {} for {} ({}), expires {}; it is shown only once:",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    out::or_dash(t.expires_at)
                ));
                out::line(t.token)?;
            }
            Admin::Tokens { out } => {
                let tokens = c.tokens().await?;
                out::show(out, &tokens, |t| describe_tokens(t))?;
            }
            Admin::TokenRevoke { id } => {
                let t = c.revoke_token(id).await?;
                out::line(format!(
                    "Token {} ({}, {}) revoked as of {}",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    out::or_dash(t.revoked_at)
                ))?;
            }
            Admin::TokenRotate { center, grace } => {
                let req = RotateRequest {
                    grace,
                    expires_in: None,
                };
                let t = c.rotate_site_token(&center, &req).await?;
                let old = match grace {
                    0 => "its older site tokens are revoked".to_string(),
                    g => format!("its older site tokens stay valid for {g} s"),
                };
                note(format!(
                    "New site token {} for {center}, expires {}; {old}. It is shown only once:",
                    t.id,
                    out::or_dash(t.expires_at)
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
    let mut t = Table::new("ID NAME CATEGORY CITY");
    t.extend(tenants.iter().map(|t| {
        row![
            t.id,
            t.name,
            t.category.as_str(),
            t.city.as_deref().unwrap_or("-")
        ]
    }));
    t.to_string()
}

fn describe_tokens(tokens: &[TokenView]) -> String {
    let mut t = Table::new("ID NAME ROLE SCOPE CREATED EXPIRES REVOKED LAST-USED VALID");
    for k in tokens {
        let scope = match (&k.tenant, &k.center) {
            (Some(t), _) => t.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) => "platform".into(),
        };
        t.push(row![
            k.id,
            k.name,
            k.role.as_str(),
            scope,
            k.created_at,
            out::or_dash(k.expires_at),
            out::or_dash(k.revoked_at),
            out::or_dash(k.last_used_at),
            if k.valid { "yes" } else { "no" }
        ]);
    }
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
    if policy.public_service {
        out += "  may submit public-service work\n";
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
