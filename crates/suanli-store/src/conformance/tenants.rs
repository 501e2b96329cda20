//! Conformance checks of tenants, their policies, and tokens (unique names, revocation, rotation).

use suanli_types::{CardQuota, Role, SharePolicy, TenantCategory, TenantId};

use super::{T0, tenant};
use crate::*;

pub async fn tenants_and_tokens(s: &dyn Store) {
    tenant(s, "acme").await;
    let again = TenantRecord {
        id: TenantId::new("acme"),
        name: "other".into(),
        category: TenantCategory::Research,
        city: None,
    };
    assert!(
        !s.create_tenant(&again, T0).await.unwrap(),
        "duplicate tenant is refused"
    );
    assert_eq!(
        s.tenant(&TenantId::new("acme"))
            .await
            .unwrap()
            .unwrap()
            .name,
        "Tenant acme"
    );
    assert!(s.tenant(&TenantId::new("nope")).await.unwrap().is_none());
    assert_eq!(s.tenants().await.unwrap().len(), 1);
    assert_eq!(
        s.tenant(&TenantId::new("acme"))
            .await
            .unwrap()
            .unwrap()
            .city,
        None
    );
    let placed = TenantRecord {
        id: TenantId::new("sz-lab"),
        name: "Lab".into(),
        category: TenantCategory::Research,
        city: Some("Shenzhen".into()),
    };
    assert!(s.create_tenant(&placed, T0).await.unwrap());
    assert_eq!(s.tenant(&placed.id).await.unwrap(), Some(placed.clone()));
    assert_eq!(s.tenants().await.unwrap(), {
        let mut all = vec![
            s.tenant(&TenantId::new("acme")).await.unwrap().unwrap(),
            placed,
        ];
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    });

    assert!(
        !s.has_live_token_with_role(Role::Operator, T0)
            .await
            .unwrap()
    );
    let t = NewToken {
        name: "alice".into(),
        role: Role::User,
        tenant: Some(TenantId::new("acme")),
        center: None,
        expires_at: Some(T0.plus_millis(1000)),
    };
    let rec = s.insert_token("h1", &t, T0).await.unwrap();
    assert_eq!(rec.principal.name, "alice");
    assert_eq!(rec.principal.role, Role::User);
    assert_eq!(rec.expires_at, Some(T0.plus_millis(1000)));
    assert_eq!((rec.created_at, rec.revoked_at), (T0, None));
    assert_eq!(s.token("h1").await.unwrap(), Some(rec.clone()));
    assert_eq!(s.token("h2").await.unwrap(), None);
    assert!(s.has_live_token_with_role(Role::User, T0).await.unwrap());
    assert!(
        !s.has_live_token_with_role(Role::User, T0.plus_millis(1000))
            .await
            .unwrap(),
        "an expired token is not live"
    );
    assert_eq!(
        rec.invalid_at(T0.plus_millis(1000)),
        Some(TokenInvalid::Expired)
    );
}

/// Token names are unique in their scope among tokens not revoked; revocation and rotation
/// bump the generation, and a rotation's grace keeps the old token valid until it ends.
pub async fn tokens_revoke_rotate_and_unique_names(s: &dyn Store) {
    tenant(s, "acme").await;
    tenant(s, "beta").await;
    let user = |tenant: &str, name: &str| NewToken {
        name: name.into(),
        role: Role::User,
        tenant: Some(TenantId::new(tenant)),
        center: None,
        expires_at: None,
    };
    let a = s
        .insert_token("h1", &user("acme", "alice"), T0)
        .await
        .unwrap();
    let dup = s.insert_token("h2", &user("acme", "alice"), T0).await;
    assert!(matches!(dup, Err(StoreError::Exists(_))), "{dup:?}");
    // Another tenant's scope may use the name.
    let b = s
        .insert_token("h3", &user("beta", "alice"), T0)
        .await
        .unwrap();
    assert_ne!(a.principal.id, b.principal.id);
    let g0 = s.token_generation().await.unwrap();
    let at = T0.plus_millis(5);
    let revoked = s.revoke_token(a.principal.id, at).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.invalid_at(at), Some(TokenInvalid::Revoked));
    assert!(s.token_generation().await.unwrap() > g0);
    // Revoking again keeps the first time; an unknown id is None.
    let again = s
        .revoke_token(a.principal.id, at.plus_millis(9))
        .await
        .unwrap();
    assert_eq!(again.unwrap().revoked_at, Some(at));
    assert!(s.revoke_token(9_999, at).await.unwrap().is_none());
    // The name is free again once revoked.
    let a2 = s
        .insert_token("h4", &user("acme", "alice"), at)
        .await
        .unwrap();
    // A rotation with a grace: the old token stays valid until the grace ends.
    let g1 = s.token_generation().await.unwrap();
    let until = at.plus_millis(60_000);
    let a3 = s
        .rotate_token("h5", &user("acme", "alice"), at, until, true)
        .await
        .unwrap();
    assert!(s.token_generation().await.unwrap() > g1);
    let old = s.token_by_id(a2.principal.id).await.unwrap().unwrap();
    assert_eq!(old.revoked_at, Some(until));
    assert_eq!(old.invalid_at(at), None);
    assert_eq!(old.invalid_at(until), Some(TokenInvalid::Revoked));
    assert_eq!(a3.revoked_at, None);
    let listed = s
        .tokens(&TokenFilter {
            tenant: Some(TenantId::new("acme")),
            center: None,
        })
        .await
        .unwrap();
    let ids: Vec<i64> = listed.iter().map(|t| t.principal.id).collect();
    assert_eq!(ids, [a.principal.id, a2.principal.id, a3.principal.id]);
    assert_eq!(s.tokens(&TokenFilter::default()).await.unwrap().len(), 4);
    s.touch_token(a3.principal.id, until).await.unwrap();
    let used = s.token_by_id(a3.principal.id).await.unwrap().unwrap();
    assert_eq!(used.last_used_at, Some(until));
}

pub async fn tenant_policies_are_kept(s: &dyn Store) {
    tenant(s, "a").await;
    tenant(s, "b").await;
    assert!(s.tenant_policies().await.unwrap().is_empty());
    let mut policy = SharePolicy {
        weight: 2,
        ..SharePolicy::default()
    };
    let b = TenantId::new("b");
    assert!(s.set_tenant_policy(&b, &policy).await.unwrap());
    policy.weight = 3;
    let quota = CardQuota {
        nominal: 8,
        borrow_limit: 4,
    };
    policy.quotas.insert("huawei".into(), quota);
    assert!(s.set_tenant_policy(&b, &policy).await.unwrap());
    let nobody = TenantId::new("nobody");
    assert!(!s.set_tenant_policy(&nobody, &policy).await.unwrap());
    assert_eq!(s.tenant_policies().await.unwrap(), vec![(b, policy)]);
}
