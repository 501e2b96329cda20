//! Bounds on the fields of what sites and the operator send (heartbeats, center registrations,
//! prices), checked before any command reaches the engine. A value out of bounds is
//! `invalid_spec` (400) naming the field. See `docs/SECURITY.md`, "The API's limits".

use std::collections::BTreeMap;

use suanli_proto::{Heartbeat, PriceRequest};
use suanli_types::{CenterSpec, Money, SpecError, Timestamp};

/// Bytes of a heartbeat's `agent_version`.
pub const AGENT_VERSION_MAX: usize = 64;
/// Nodes in a heartbeat's inventory, and nodes of all of a center's pools together (one pool's
/// own bound).
pub const NODES_MAX: usize = 100_000;
/// Attempts a heartbeat says are running.
pub const RUNNING_MAX: usize = 100_000;
/// Bytes of a node's name (a DNS name's).
pub const NODE_NAME_MAX: usize = 253;
/// Bytes of a chip SKU.
pub const SKU_MAX: usize = 64;
/// Cards of one node (a pool's `cards_per_node` bound).
pub const CARDS_PER_NODE_MAX: u32 = 64;
/// Software stacks a center offers, and the bytes of a stack's name and version.
pub const STACKS_MAX: usize = 32;
pub const STACK_NAME_MAX: usize = 32;
pub const STACK_VERSION_MAX: usize = 64;
/// Bytes of a center's name and city.
pub const CENTER_NAME_MAX: usize = 128;
pub const CITY_MAX: usize = 64;
/// Node pools of one center.
pub const POOLS_MAX: usize = 64;
/// The highest list price per card-hour, in yuan (the dearest card lists at a few hundred).
pub const PRICE_MAX_YUAN: i64 = 100_000;
/// How far ahead a price may be set to take effect, in days (ten years).
pub const PRICE_AHEAD_MAX_DAYS: i64 = 3_650;

fn too_long(field: impl Into<String>, value: &str, max: usize) -> Result<(), SpecError> {
    if value.len() > max {
        return Err(SpecError::new(field, format!("at most {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(SpecError::new(field, "must not contain control characters"));
    }
    Ok(())
}

fn too_many(field: &str, count: usize, max: usize) -> Result<(), SpecError> {
    if count > max {
        return Err(SpecError::new(field, format!("at most {max} entries")));
    }
    Ok(())
}

fn stacks(field: &str, stacks: &BTreeMap<String, String>) -> Result<(), SpecError> {
    too_many(field, stacks.len(), STACKS_MAX)?;
    for (name, version) in stacks {
        too_long(field, name, STACK_NAME_MAX)?;
        too_long(format!("{field}.{name}"), version, STACK_VERSION_MAX)?;
    }
    Ok(())
}

fn price(field: impl Into<String>, p: Money) -> Result<(), SpecError> {
    if p < Money::ZERO || p > Money::from_yuan(PRICE_MAX_YUAN) {
        return Err(SpecError::new(
            field,
            format!("must be 0 to {PRICE_MAX_YUAN} yuan per card-hour"),
        ));
    }
    Ok(())
}

/// A site agent's heartbeat.
pub fn heartbeat(hb: &Heartbeat) -> Result<(), SpecError> {
    too_long("agent_version", &hb.agent_version, AGENT_VERSION_MAX)?;
    too_many("inventory", hb.inventory.len(), NODES_MAX)?;
    too_many("running", hb.running.len(), RUNNING_MAX)?;
    stacks("stacks", &hb.stacks)?;
    for (i, n) in hb.inventory.iter().enumerate() {
        too_long(format!("inventory[{i}].node"), &n.node, NODE_NAME_MAX)?;
        too_long(format!("inventory[{i}].sku"), &n.sku, SKU_MAX)?;
        if n.cards > CARDS_PER_NODE_MAX {
            return Err(SpecError::new(
                format!("inventory[{i}].cards"),
                format!("at most {CARDS_PER_NODE_MAX}"),
            ));
        }
        if n.free_cards > n.cards {
            return Err(SpecError::new(
                format!("inventory[{i}].free_cards"),
                "at most the node's cards",
            ));
        }
    }
    Ok(())
}

/// A center as the operator registers it (on top of [`CenterSpec::validate`]).
pub fn center(spec: &CenterSpec) -> Result<(), SpecError> {
    too_long("name", &spec.name, CENTER_NAME_MAX)?;
    too_long("city", &spec.city, CITY_MAX)?;
    too_many("pools", spec.pools.len(), POOLS_MAX)?;
    stacks("stacks", &spec.stacks)?;
    let nodes: u64 = spec.pools.iter().map(|p| u64::from(p.nodes)).sum();
    if nodes > NODES_MAX as u64 {
        return Err(SpecError::new(
            "pools",
            format!("at most {NODES_MAX} nodes in all"),
        ));
    }
    for (i, p) in spec.pools.iter().enumerate() {
        price(
            format!("pools[{i}].price_per_card_hour"),
            p.price_per_card_hour,
        )?;
    }
    Ok(())
}

/// A row for the price table, set at `now`.
pub fn price_request(req: &PriceRequest, now: Timestamp) -> Result<(), SpecError> {
    too_long("sku", &req.sku, SKU_MAX)?;
    price("price_per_card_hour", req.price_per_card_hour)?;
    if req.spot_discount_bp.is_some_and(|bp| bp > 10_000) {
        return Err(SpecError::new("spot_discount_bp", "at most 10000 (100%)"));
    }
    let latest = now.plus_millis(PRICE_AHEAD_MAX_DAYS * 86_400_000);
    if req
        .effective_from
        .is_some_and(|t| t.millis() < 0 || t > latest)
    {
        return Err(SpecError::new(
            "effective_from",
            format!("must be after 1970 and at most {PRICE_AHEAD_MAX_DAYS} days ahead"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use suanli_proto::NodeInventory;
    use suanli_types::CenterId;

    use super::*;

    fn hb() -> Heartbeat {
        Heartbeat {
            protocol: suanli_proto::PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            inventory: vec![NodeInventory {
                node: "n1".into(),
                sku: "RTX4090".into(),
                cards: 8,
                free_cards: 8,
            }],
            stacks: BTreeMap::from([("cuda".into(), "12.4".into())]),
            running: Vec::new(),
            draining: false,
        }
    }

    fn field(r: Result<(), SpecError>) -> String {
        r.unwrap_err().field
    }

    #[test]
    fn heartbeat_fields_are_bounded_and_named() {
        heartbeat(&hb()).unwrap();
        let mut h = hb();
        h.agent_version = "x".repeat(AGENT_VERSION_MAX + 1);
        assert_eq!(field(heartbeat(&h)), "agent_version");
        h.agent_version = "1.0\n".into();
        assert_eq!(field(heartbeat(&h)), "agent_version");
        let mut h = hb();
        h.inventory = vec![h.inventory[0].clone(); NODES_MAX + 1];
        assert_eq!(field(heartbeat(&h)), "inventory");
        let mut h = hb();
        h.inventory[0].free_cards = 9;
        assert_eq!(field(heartbeat(&h)), "inventory[0].free_cards");
        h.inventory[0].cards = 65;
        assert_eq!(field(heartbeat(&h)), "inventory[0].cards");
        let mut h = hb();
        h.inventory[0].node = "n".repeat(NODE_NAME_MAX + 1);
        assert_eq!(field(heartbeat(&h)), "inventory[0].node");
        let mut h = hb();
        h.stacks
            .insert("cann".into(), "8".repeat(STACK_VERSION_MAX + 1));
        assert_eq!(field(heartbeat(&h)), "stacks.cann");
    }

    #[test]
    fn prices_are_bounded_in_registrations_and_the_price_table() {
        let mut c = suanli_types::center::gba_topology(1).remove(0);
        center(&c).unwrap();
        c.pools[0].price_per_card_hour = Money::from_yuan(PRICE_MAX_YUAN + 1);
        assert_eq!(field(center(&c)), "pools[0].price_per_card_hour");
        c.pools[0].price_per_card_hour = Money::from_yuan(PRICE_MAX_YUAN);
        center(&c).unwrap();
        c.name = "n".repeat(CENTER_NAME_MAX + 1);
        assert_eq!(field(center(&c)), "name");

        let now = Timestamp(1_700_000_000_000);
        let mut req = PriceRequest {
            center: CenterId::new("c1"),
            sku: "RTX4090".into(),
            price_per_card_hour: "3.50".parse().unwrap(),
            spot_discount_bp: Some(2_500),
            effective_from: None,
        };
        price_request(&req, now).unwrap();
        // 92 trillion yuan per card-hour.
        req.price_per_card_hour = Money(i64::MAX);
        assert_eq!(field(price_request(&req, now)), "price_per_card_hour");
        req.price_per_card_hour = Money::from_yuan(-1);
        assert_eq!(field(price_request(&req, now)), "price_per_card_hour");
        req.price_per_card_hour = Money::ZERO;
        req.spot_discount_bp = Some(10_001);
        assert_eq!(field(price_request(&req, now)), "spot_discount_bp");
        req.spot_discount_bp = None;
        req.effective_from = Some(Timestamp(253_402_300_800_000)); // the year 10000
        assert_eq!(field(price_request(&req, now)), "effective_from");
    }
}
