//! The release as one self-contained HTML page: bilingual headings, the summary table, and SVG
//! bar charts drawn here (no script, no external file), so the bytes depend only on the release.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::release::{Release, figures};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of `items` (label, value), values printed with `unit`.
fn bars(id: &str, items: &[(String, f64)], unit: &str) -> String {
    const W: f64 = 720.0;
    const LABEL: f64 = 230.0;
    const ROW: f64 = 24.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let h = ROW * items.len().max(1) as f64 + 8.0;
    let mut s = format!(
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" role=\"img\">\n"
    );
    if items.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"4\" y=\"18\" font-size=\"13\">无数据 No data</text>"
        );
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let len = if max > 0.0 {
            (W - LABEL - 110.0) * v / max
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"16\" fill=\"#2b6cb0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{} {}</text>",
            LABEL - 6.0,
            y + 13.0,
            esc(label),
            y,
            LABEL + len + 6.0,
            y + 13.0,
            trim(*v),
            esc(unit)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A number with at most three decimals and no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.1}%", v * 100.0))
}

pub fn render(r: &Release) -> String {
    let q = r.quarter;
    let s = &r.summary;
    let mut h = String::new();
    // A preliminary release says so in its title and first line.
    let (q, note) = match r.preliminary_until {
        Some(t) => (
            format!("{q} (初步 · preliminary)"),
            format!(
                "<p><strong>初步数据：截至 {t}，季度未结束，正式发布于季度结束后。</strong><br>\
                 <span class=\"en\">Preliminary: the quarter as of {t}; it has not ended, and \
                 its release is made once it has.</span></p>\n"
            ),
        ),
        None => (q.to_string(), String::new()),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>算力网络统计发布 {q} · Computing power network statistics {q}</title>\n\
         <style>body{{font-family:\"Noto Sans CJK SC\",\"Source Han Sans SC\",sans-serif;\
         max-width:960px;margin:2em auto;color:#1a202c}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #cbd5e0;padding:4px 8px;text-align:right}}\
         th{{background:#edf2f7}}td:first-child,th:first-child{{text-align:left}}\
         .en{{color:#4a5568;font-size:.9em}}.wide{{overflow-x:auto}}\
         .wide table{{font-size:.75em}}</style>\n</head>\n<body>\n\
         <h1>算力网络季度统计发布 {q}<br><span class=\"en\">Quarterly statistical release of the \
         computing power network, {q}</span></h1>\n\
         <p>时间按中国标准时间 (UTC+8)；算力为 FP16 稠密张量 PFLOPS；利用率 = 已分配卡时 / 可用卡时。\
         <br><span class=\"en\">Periods in China Standard Time (UTC+8); capacity in dense FP16 \
         tensor PFLOPS; utilisation = allocated / available card-hours. Definitions: \
         docs/INDICATORS.md.</span></p>\n{note}"
    );
    let lines: [(&str, &str, String); 14] = [
        (
            "装机算力",
            "Installed capacity (FP16 PFLOPS, quarter average)",
            trim(s.installed_fp16_pflops),
        ),
        (
            "国产算力",
            "Domestic capacity (FP16 PFLOPS)",
            trim(s.domestic_fp16_pflops),
        ),
        (
            "国产算力占比",
            "Domestic share of installed capacity",
            pct(s.domestic_share_installed),
        ),
        (
            "国产卡时占比",
            "Domestic share of delivered card-hours",
            pct(s.domestic_share_delivered),
        ),
        (
            "利用率",
            "Utilisation (allocated / available)",
            pct(s.utilisation),
        ),
        (
            "交付利用率",
            "Delivered utilisation (delivered / available)",
            pct(s.delivered_utilisation),
        ),
        (
            "交付卡时",
            "Delivered card-hours",
            trim(s.delivered_card_hours),
        ),
        ("活跃用户", "Active tenants", s.active_tenants.to_string()),
        (
            "中小企业与初创占比",
            "Share of SMEs and start-ups among active tenants",
            pct(s.sme_startup_share),
        ),
        (
            "排队等待中位数 (秒)",
            "Median wait (s)",
            s.wait_p50_secs.map_or("—".into(), |v| v.to_string()),
        ),
        (
            "排队等待 P95 (秒)",
            "95th percentile wait (s)",
            s.wait_p95_secs.map_or("—".into(), |v| v.to_string()),
        ),
        ("交易总额 (元)", "Gross (yuan)", s.gross_yuan.to_string()),
        (
            "算力券补贴 (元)",
            "Voucher subsidy (yuan)",
            s.subsidy_yuan.to_string(),
        ),
        ("实际补贴率", "Subsidy rate achieved", pct(s.subsidy_rate)),
    ];
    h.push_str("<h2>概览 <span class=\"en\">Summary</span></h2>\n<table>\n");
    for (zh, en, v) in lines {
        let _ = writeln!(
            h,
            "<tr><td>{zh} <span class=\"en\">{en}</span></td><td>{}</td></tr>",
            esc(&v)
        );
    }
    let v = &r.vouchers;
    let _ = writeln!(
        h,
        "<tr><td>算力券 已发放 / 已使用 / 剩余 (元) <span class=\"en\">Vouchers granted / paid out / \
         remaining (yuan)</span></td><td>{} / {} / {}</td></tr>\n</table>",
        v.granted_yuan, v.paid_out_yuan, v.remaining_yuan
    );

    let last_month = r.by_vendor.iter().map(|r| r.period.clone()).max();
    let vendors: Vec<(String, f64)> = r
        .by_vendor
        .iter()
        .filter(|row| Some(&row.period) == last_month.as_ref())
        .filter_map(|row| {
            Some((
                row.group.clone(),
                row.capacity.as_ref()?.installed_fp16_pflops,
            ))
        })
        .collect();
    chart(
        &mut h,
        "capacity-by-vendor",
        "各厂商装机算力",
        &format!(
            "Installed capacity by vendor ({})",
            last_month.as_deref().unwrap_or("—")
        ),
        &vendors,
        "PFLOPS",
    );

    let util: Vec<(String, f64)> = r
        .by_center
        .iter()
        .filter_map(|row| {
            let u = row.capacity.as_ref()?.utilisation?;
            Some((
                format!("{} {}", row.period, row.group),
                (u * 1000.0).round() / 10.0,
            ))
        })
        .collect();
    chart(
        &mut h,
        "utilisation",
        "各月各中心利用率",
        "Utilisation per month and center",
        &util,
        "%",
    );

    let waits: Vec<(String, f64)> = r
        .waits
        .iter()
        .map(|(c, n)| (c.clone(), *n as f64))
        .collect();
    chart(
        &mut h,
        "waits",
        "排队等待分布",
        "Wait distribution (jobs started)",
        &waits,
        "jobs",
    );

    let subsidy: Vec<(String, f64)> = r
        .by_month
        .iter()
        .map(|row| {
            (
                row.period.clone(),
                row.usage.subsidy_yuan.units() as f64 / 10_000.0,
            )
        })
        .collect();
    chart(
        &mut h,
        "vouchers",
        "算力券补贴支出",
        "Voucher spending per month",
        &subsidy,
        "yuan",
    );

    let mut cats: BTreeMap<String, f64> = BTreeMap::new();
    for row in &r.by_category {
        *cats.entry(row.group.clone()).or_default() += row.usage.delivered_card_hours;
    }
    let cats: Vec<(String, f64)> = cats.into_iter().collect();
    chart(
        &mut h,
        "usage-by-category",
        "各类用户交付卡时",
        "Delivered card-hours by tenant category",
        &cats,
        "card-h",
    );

    h.push_str("<h2>各月明细 <span class=\"en\">Months</span></h2>\n");
    table(&mut h, &r.by_month);
    h.push_str("<h2>各中心明细 <span class=\"en\">Centers</span></h2>\n");
    table(&mut h, &r.by_center);
    h.push_str("</body>\n</html>\n");
    h
}

fn chart(h: &mut String, id: &str, zh: &str, en: &str, items: &[(String, f64)], unit: &str) {
    let _ = writeln!(h, "<h2>{zh} <span class=\"en\">{}</span></h2>", esc(en));
    h.push_str(&bars(id, items, unit));
}

fn table(h: &mut String, rows: &[crate::indicators::Row]) {
    // The columns of the fullest row (a row of jobs never placed has no capacity figures).
    let Some(fullest) = rows.iter().max_by_key(|r| figures(r).len()) else {
        h.push_str("<p>无数据 <span class=\"en\">No data</span></p>\n");
        return;
    };
    let names: Vec<&str> = figures(fullest).into_iter().map(|(n, _)| n).collect();
    h.push_str("<div class=\"wide\"><table>\n<tr><th>period</th><th>group</th>");
    for n in &names {
        let _ = write!(h, "<th>{}</th>", n.replace('_', " "));
    }
    h.push_str("</tr>\n");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            esc(&r.period),
            esc(&r.group)
        );
        let f = figures(r);
        for n in &names {
            let v = f
                .iter()
                .find(|(k, _)| k == n)
                .map_or("", |(_, v)| v.as_str());
            let _ = write!(h, "<td>{}</td>", esc(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></div>\n");
}
