//! Languages: Chinese (zh-CN, the default) and English, each a Fluent catalog embedded in the
//! binary; the language is the `suanli_lang` cookie's, else the best of `Accept-Language`.
//! Times are shown in China Standard Time, money in yuan.

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use suanli_types::time::civil_from_days;
use suanli_types::{Money, Timestamp};

/// A language the portal speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

const CATALOGS: [(Lang, &str, &str); 2] = [
    (Lang::Zh, "zh-CN", include_str!("../locales/zh-CN.ftl")),
    (Lang::En, "en", include_str!("../locales/en.ftl")),
];

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// The BCP 47 tag (`lang` attribute, cookie value).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language's own name, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    /// `zh-CN`, `zh`, `zh-Hans`... are Chinese; `en`, `en-GB`... English.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The cookie's language if it names one, else the `Accept-Language` entry of highest
    /// weight that names one, else Chinese.
    pub fn negotiate(cookie: Option<&str>, accept: Option<&str>) -> Lang {
        if let Some(l) = cookie.and_then(Lang::from_tag) {
            return l;
        }
        let mut best: Option<(u32, Lang)> = None;
        for item in accept.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            // Weights in thousandths; a malformed weight counts as 1.
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| {
                    q.trim()
                        .parse::<f32>()
                        .map_or(1000, |f| (f.clamp(0.0, 1.0) * 1000.0) as u32)
                });
            if q > 0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Zh, |(_, l)| l)
    }

    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        static BUNDLES: OnceLock<Vec<(Lang, FluentBundle<FluentResource>)>> = OnceLock::new();
        let all = BUNDLES.get_or_init(|| {
            CATALOGS
                .iter()
                .map(|(lang, tag, text)| (*lang, build_bundle(tag, text)))
                .collect()
        });
        &all.iter()
            .find(|(l, _)| *l == self)
            .expect("every language has a catalog")
            .1
    }

    /// The message `id`; the id itself when the catalog lacks it (a test keeps both catalogs
    /// complete).
    pub fn t(self, id: &str) -> String {
        self.format(id, None)
    }

    /// The message `id` with its arguments.
    pub fn ta(self, id: &str, args: &[(&str, Arg)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            match v {
                Arg::Str(s) => fa.set(*k, FluentValue::from(s.clone())),
                Arg::Num(n) => fa.set(*k, FluentValue::from(*n)),
            }
        }
        self.format(id, Some(&fa))
    }

    fn format(self, id: &str, args: Option<&FluentArgs>) -> String {
        let b = self.bundle();
        let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
            tracing::warn!(id, lang = self.tag(), "portal message missing");
            return id.to_string();
        };
        let mut errors = vec![];
        b.format_pattern(pattern, args, &mut errors).into_owned()
    }

    /// A duration: `2 h 05 min`, `2小时05分`; seconds under a minute.
    pub fn duration(self, secs: u64) -> String {
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        match (h, m) {
            (0, 0) => self.ta("dur-s", &[("s", Arg::Num(s as i64))]),
            (0, _) => self.ta("dur-m", &[("m", Arg::Num(m as i64))]),
            _ => self.ta(
                "dur-hm",
                &[
                    ("h", Arg::Num(h as i64)),
                    ("m", Arg::Str(format!("{m:02}"))),
                ],
            ),
        }
    }
}

/// A message argument.
#[derive(Clone, Debug)]
pub enum Arg {
    Str(String),
    Num(i64),
}

fn build_bundle(tag: &str, text: &str) -> FluentBundle<FluentResource> {
    let lang = tag.parse().expect("catalog tags are valid");
    let mut b = FluentBundle::new_concurrent(vec![lang]);
    // No Unicode isolation marks around arguments: the pages are plain HTML.
    b.set_use_isolating(false);
    let res = FluentResource::try_new(text.to_string()).expect("catalogs parse (tested)");
    b.add_resource(res)
        .expect("message ids are unique (tested)");
    b
}

/// China Standard Time (UTC+8), minute precision: `2026-12-02 19:50`.
pub fn cst(ts: Timestamp) -> String {
    let secs = ts.millis().div_euclid(1000) + 8 * 3600;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// A size in bytes, binary units: `64 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    suanli_types::size::human(n)
}

/// Yuan: `¥4.50`.
pub fn yuan(m: Money) -> String {
    format!("¥{m}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<String> {
        let res = FluentResource::try_new(text.to_string()).expect("parses");
        let mut ids: Vec<String> = res
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
                _ => None,
            })
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn both_catalogs_parse_and_define_the_same_messages() {
        let zh = ids(CATALOGS[0].2);
        let en = ids(CATALOGS[1].2);
        let missing_en: Vec<_> = zh.iter().filter(|i| !en.contains(i)).collect();
        let missing_zh: Vec<_> = en.iter().filter(|i| !zh.contains(i)).collect();
        assert!(
            missing_en.is_empty() && missing_zh.is_empty(),
            "only in zh-CN: {missing_en:?}; only in en: {missing_zh:?}"
        );
        assert!(zh.len() > 20);
        for lang in Lang::ALL {
            // Building panics on a parse error or a duplicate id.
            let _ = lang.bundle();
        }
    }

    #[test]
    fn every_message_used_in_the_code_exists() {
        // The ids are string literals passed to `t`/`ta`, or `nav-`/`state-` keys built from them.
        let sources = [
            include_str!("layout.rs"),
            include_str!("session.rs"),
            include_str!("pages/network.rs"),
            include_str!("pages/jobs.rs"),
            include_str!("pages/submit.rs"),
            include_str!("pages/money.rs"),
            include_str!("pages/operator.rs"),
            include_str!("pages/supervisor.rs"),
            include_str!("pages/statistics.rs"),
            include_str!("pages/desk.rs"),
            include_str!("pages/chart.rs"),
            include_str!("pages/models.rs"),
            include_str!("pages/outputs.rs"),
            include_str!("pages/datasets.rs"),
            include_str!("pages/airlock.rs"),
        ];
        let zh = ids(CATALOGS[0].2);
        let mut unknown = vec![];
        let mut used = 0;
        for src in sources {
            for (i, m) in src.match_indices(".t(").chain(src.match_indices(".ta(")) {
                let rest = src[i + m.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let id = &rest[..rest.find('"').unwrap()];
                used += 1;
                if !zh.iter().any(|z| z == id) {
                    unknown.push(id.to_string());
                }
            }
        }
        // Ids built from values: job states, risk rules, classes, categories, periods, groups;
        // and those picked by a match (flag states, severities, budget levels).
        let mut built: Vec<String> = suanli_types::JobState::ALL
            .iter()
            .map(|s| format!("state-{}", s.as_str().replace('_', "-")))
            .collect();
        built.extend(
            crate::pages::supervisor::RULES
                .iter()
                .map(|r| format!("rule-{}", r.replace('_', "-"))),
        );
        built.extend(
            suanli_types::PriorityClass::ALL
                .iter()
                .map(|c| format!("class-{}", c.as_str())),
        );
        built.extend(
            suanli_types::TenantCategory::ALL
                .iter()
                .map(|c| format!("category-{}", c.as_str())),
        );
        built.extend(["hour", "day", "month", "quarter"].map(|p| format!("period-{p}")));
        built.extend(["all", "center", "sku", "vendor", "category"].map(|g| format!("by-{g}")));
        for id in [
            "flag-open",
            "flag-acknowledged",
            "flag-resolved",
            "severity-high",
            "severity-medium",
            "severity-low",
            "budget-ok",
            "budget-warning",
            "budget-exhausted",
            "budget-unknown",
            "budget-stop",
            "budget-let-finish",
        ] {
            built.push(id.to_string());
        }
        for id in built {
            if !zh.contains(&id) {
                unknown.push(id);
            }
        }
        assert!(used > 50, "the scan found only {used} uses");
        assert!(
            unknown.is_empty(),
            "messages used but not in the catalogs: {unknown:?}"
        );
    }

    #[test]
    fn the_cookie_wins_then_the_weightiest_accepted_language() {
        assert_eq!(Lang::negotiate(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("en-GB,zh;q=0.8")), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("fr, en;q=0.5, zh-TW;q=0.9")),
            Lang::Zh
        );
        assert_eq!(Lang::negotiate(Some("klingon"), Some("de")), Lang::Zh);
        assert_eq!(Lang::negotiate(None, Some("en;q=0")), Lang::Zh);
        assert_eq!(Lang::negotiate(None, None), Lang::Zh);
    }

    #[test]
    fn times_are_china_standard_time_and_durations_read_in_each_language() {
        // 2026-12-02T11:50:00Z is 19:50 in Beijing.
        assert_eq!(cst(Timestamp(1_796_212_200_000)), "2026-12-02 19:50");
        assert_eq!(Lang::En.duration(3900), "1 h 05 min");
        assert_eq!(Lang::Zh.duration(3900), "1小时05分");
        assert_eq!(Lang::En.duration(42), "42 s");
        assert_eq!(yuan(Money(45_000)), "¥4.50");
        assert_eq!(bytes(64), "64 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
    }
}
