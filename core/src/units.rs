//! Numbers for people: durations and rates in their most readable unit, three significant
//! digits. The primitives label spans with them (`sleep 20.0 ms`); the lab's reports use them
//! everywhere.

/// Seconds in the most readable unit: `1.23 s`, `45.6 ms`, `789 µs`, `12 ns`.
pub fn format_seconds(seconds: f64) -> String {
    let (value, unit) = match seconds.abs() {
        s if s >= 1.0 => (seconds, "s"),
        s if s >= 1e-3 => (seconds * 1e3, "ms"),
        s if s >= 1e-6 => (seconds * 1e6, "µs"),
        _ => (seconds * 1e9, "ns"),
    };
    format!("{} {unit}", three_digits(value))
}

/// A rate with an SI prefix: `12.3 M`, `456 k`.
pub fn format_rate(rate: f64) -> String {
    let (value, prefix) = match rate.abs() {
        r if r >= 1e9 => (rate / 1e9, "G"),
        r if r >= 1e6 => (rate / 1e6, "M"),
        r if r >= 1e3 => (rate / 1e3, "k"),
        _ => (rate, ""),
    };
    format!("{} {prefix}", three_digits(value)).trim_end().to_string()
}

/// `value` to three significant digits (no exponent): `123`, `45.6`, `7.89`.
pub fn three_digits(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}
