//! Conformance checks of the centers table: upserts and the drain flag.

use suanli_types::CenterId;

use super::T0;
use crate::*;

pub async fn centers_upsert(s: &dyn Store) {
    let mut c = suanli_types::center::gba_topology(100).remove(0);
    assert!(s.upsert_center(&c, T0).await.unwrap());
    c.name = "renamed".into();
    assert!(!s.upsert_center(&c, T0).await.unwrap());
    let all = s.centers().await.unwrap();
    assert_eq!(all, vec![c]);
}

pub async fn centers_drain_flag(s: &dyn Store) {
    let topo = suanli_types::center::gba_topology(100);
    for c in &topo[..3] {
        s.upsert_center(c, T0).await.unwrap();
    }
    assert!(s.drained_centers().await.unwrap().is_empty());
    assert!(s.set_center_drained(&topo[1].id, true).await.unwrap());
    assert!(s.set_center_drained(&topo[2].id, true).await.unwrap());
    assert!(s.set_center_drained(&topo[2].id, false).await.unwrap());
    assert!(
        !s.set_center_drained(&CenterId::new("nowhere"), true)
            .await
            .unwrap()
    );
    assert_eq!(s.drained_centers().await.unwrap(), vec![topo[1].id.clone()]);
    // Re-registering a center keeps its drain flag.
    s.upsert_center(&topo[1], T0).await.unwrap();
    assert_eq!(s.drained_centers().await.unwrap(), vec![topo[1].id.clone()]);
}
