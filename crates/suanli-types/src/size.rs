//! Sizes as people read them, in binary units: `512 B`, `3.0 KiB`, `1.5 GiB` (the CLI, the
//! site's notes in a job's log, the hub's quota messages and the portal say sizes alike).

/// `n` bytes, with one decimal past `B`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_do() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1000), "1000 B");
        assert_eq!(super::human(3 * 1024), "3.0 KiB");
        assert_eq!(super::human(3 << 29), "1.5 GiB");
        assert_eq!(super::human(u64::MAX), "16384.0 PiB");
    }
}
