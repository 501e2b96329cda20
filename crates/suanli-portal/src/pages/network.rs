//! The one network: a map of the Greater Bay Area with the centers, and a table of their chips,
//! free cards and prices.

use axum::response::Response;
use maud::{Markup, html};
use suanli_proto::CenterView;

use crate::i18n::{Arg, yuan};
use crate::layout::{self, Failure};
use crate::session::Ctx;

/// Longitude and latitude of the Greater Bay Area's cities, by English and Chinese name.
const CITIES: &[City] = &[
    ("Guangzhou", "广州", 113.26, 23.13),
    ("Shenzhen", "深圳", 114.06, 22.54),
    ("Dongguan", "东莞", 113.75, 23.02),
    ("Foshan", "佛山", 113.12, 23.02),
    ("Zhuhai", "珠海", 113.58, 22.27),
    ("Zhongshan", "中山", 113.39, 22.52),
    ("Jiangmen", "江门", 113.08, 22.58),
    ("Huizhou", "惠州", 114.42, 23.11),
    ("Zhaoqing", "肇庆", 112.47, 23.05),
    ("Hong Kong", "香港", 114.17, 22.32),
    ("Macau", "澳门", 113.54, 22.19),
];

/// The map's bounds (longitude, latitude) and size in pixels.
const WEST: f64 = 112.2;
const EAST: f64 = 114.7;
const NORTH: f64 = 23.45;
const SOUTH: f64 = 21.95;
const W: f64 = 640.0;
const H: f64 = 400.0;

fn city(name: &str) -> Option<&'static City> {
    CITIES
        .iter()
        .find(|(en, zh, _, _)| en.eq_ignore_ascii_case(name.trim()) || *zh == name.trim())
}

fn xy(lon: f64, lat: f64) -> (f64, f64) {
    (
        (lon - WEST) / (EAST - WEST) * W,
        (NORTH - lat) / (NORTH - SOUTH) * H,
    )
}

pub async fn page(ctx: Ctx) -> Response {
    let r = async {
        let centers = ctx.client()?.centers().await?;
        Ok::<_, Failure>(layout::render(
            &ctx,
            &ctx.t("network-title"),
            body(&ctx, &centers),
        ))
    }
    .await;
    layout::finish(&ctx, r)
}

fn body(ctx: &Ctx, centers: &[CenterView]) -> Markup {
    let total: u64 = centers
        .iter()
        .flat_map(|c| &c.pools)
        .map(|p| p.total_cards)
        .sum();
    let free: u64 = centers
        .iter()
        .filter(|c| c.status == "online")
        .flat_map(|c| &c.pools)
        .map(|p| p.free_cards)
        .sum();
    let online = centers.iter().filter(|c| c.status == "online").count();
    // Each cell's column, shown before it on a narrow screen (where the header row is not).
    let (l_city, l_status, l_chip, l_free, l_price) = (
        ctx.t("col-city"),
        ctx.t("col-status"),
        ctx.t("col-chip"),
        ctx.t("col-free-cards"),
        ctx.t("col-price"),
    );
    html! {
        p.lead {
            (ctx.lang.ta("network-summary", &[
                ("centers", Arg::Num(centers.len() as i64)),
                ("online", Arg::Num(online as i64)),
                ("cards", Arg::Num(total as i64)),
                ("free", Arg::Num(free as i64)),
            ]))
        }
        (map(ctx, centers))
        table {
            caption { (ctx.t("network-table")) }
            thead { tr {
                th scope="col" { (ctx.t("col-center")) }
                th scope="col" { (ctx.t("col-city")) }
                th scope="col" { (ctx.t("col-status")) }
                th scope="col" { (ctx.t("col-chip")) }
                th scope="col" class="num" { (ctx.t("col-free-cards")) }
                th scope="col" class="num" { (ctx.t("col-price")) }
            } }
            tbody {
                @for c in centers {
                    @for (i, p) in c.pools.iter().enumerate() {
                        tr {
                            @if i == 0 {
                                th scope="row" rowspan=(c.pools.len()) { (c.name) br; small { (c.id) } }
                                td rowspan=(c.pools.len()) data-label=(l_city) { (c.city) }
                                td rowspan=(c.pools.len()) data-label=(l_status) { (status(ctx, &c.status)) }
                            }
                            td data-label=(l_chip) { (p.sku) " " small { "(" (p.vendor) ")" } }
                            td.num data-label=(l_free) { (p.free_cards) " / " (p.total_cards) }
                            td.num data-label=(l_price) { (yuan(p.price_per_card_hour)) }
                        }
                    }
                    @if c.pools.is_empty() {
                        tr {
                            th scope="row" { (c.name) }
                            td { (c.city) }
                            td { (status(ctx, &c.status)) }
                            td colspan="3" { (ctx.t("network-no-pools")) }
                        }
                    }
                }
            }
        }
    }
}

pub fn status(ctx: &Ctx, s: &str) -> Markup {
    let id = match s {
        "online" => "center-online",
        "offline" => "center-offline",
        "draining" => "center-draining",
        "drained" => "center-drained",
        _ => "center-unknown",
    };
    html! { span class=(format!("status {s}")) { (ctx.t(id)) } }
}

/// A city on the map with the centers there.
struct Spot<'a> {
    city: &'static City,
    cards: u64,
    online: bool,
    names: Vec<&'a str>,
}

/// English name, Chinese name, longitude, latitude.
type City = (&'static str, &'static str, f64, f64);

/// The centers on a schematic map: a dot per city, its area by installed cards, green while
/// any center there is online.
fn map(ctx: &Ctx, centers: &[CenterView]) -> Markup {
    let mut by_city: Vec<Spot> = vec![];
    let mut elsewhere = vec![];
    for c in centers {
        let cards: u64 = c.pools.iter().map(|p| p.total_cards).sum();
        match city(&c.city) {
            Some(k) => match by_city.iter_mut().find(|e| std::ptr::eq(e.city, k)) {
                Some(e) => {
                    e.cards += cards;
                    e.online |= c.status == "online";
                    e.names.push(&c.name);
                }
                None => by_city.push(Spot {
                    city: k,
                    cards,
                    online: c.status == "online",
                    names: vec![&c.name],
                }),
            },
            None => elsewhere.push(c.name.as_str()),
        }
    }
    let max = by_city.iter().map(|e| e.cards).max().unwrap_or(1).max(1) as f64;
    let zh = ctx.lang == crate::i18n::Lang::Zh;
    html! {
        figure.map {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby="map-title" {
                title id="map-title" { (ctx.t("network-map")) }
                rect x="0" y="0" width=(W) height=(H) class="sea" {}
                @for (name_en, name_zh, lon, lat) in CITIES {
                    @let (x, y) = xy(*lon, *lat);
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" class="city" {}
                    text x=(format!("{:.1}", x + 6.0)) y=(format!("{:.1}", y + 4.0)) class="city-name" {
                        (if zh { *name_zh } else { *name_en })
                    }
                }
                @for s in &by_city {
                    @let (x, y) = xy(s.city.2, s.city.3);
                    @let r = 8.0 + 22.0 * (s.cards as f64 / max).sqrt();
                    circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r=(format!("{r:.1}"))
                        class=(if s.online { "site online" } else { "site offline" }) {
                        title { (s.names.join(", ")) ": " (s.cards) }
                    }
                }
            }
            figcaption {
                (ctx.t("network-map-caption"))
                @if !elsewhere.is_empty() {
                    " " (ctx.t("network-elsewhere")) " " (elsewhere.join(", "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cities_are_found_by_either_name_and_fall_inside_the_map() {
        assert_eq!(city("shenzhen").unwrap().1, "深圳");
        assert_eq!(city("广州").unwrap().0, "Guangzhou");
        assert!(city("Atlantis").is_none());
        for (_, _, lon, lat) in CITIES {
            let (x, y) = xy(*lon, *lat);
            assert!(
                (0.0..=W).contains(&x) && (0.0..=H).contains(&y),
                "{lon},{lat}"
            );
        }
    }
}
