//! Byte sizes as berth.toml writes them: `10MiB`, `512 KB`, or a plain number of bytes.

/// Bytes in one unit, by the unit's name (matched without regard to case).
const UNITS: [(&str, u64); 7] = [
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
];

/// The number of bytes `text` names: digits, optionally a space, optionally a unit
/// (B, KiB, MiB, GiB, KB, MB, GB); `None` for anything else, or for more than
/// `u64::MAX` bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, bytes)| *bytes)?
    };
    number.checked_mul(multiplier)
}

/// `bytes` as [`parse_size`] reads it back: in the largest unit that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    let by_size = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    by_size
        .iter()
        .find(|(_, unit)| bytes > 0 && bytes.is_multiple_of(*unit))
        .map_or_else(
            || format!("{bytes}B"),
            |(name, unit)| format!("{}{name}", bytes / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        let cases: &[(&str, Option<u64>)] = &[
            ("10MiB", Some(10 * 1024 * 1024)),
            ("10 MiB", Some(10 * 1024 * 1024)),
            ("10mib", Some(10 * 1024 * 1024)),
            ("1GiB", Some(1 << 30)),
            ("64KiB", Some(64 * 1024)),
            ("512KB", Some(512_000)),
            ("3MB", Some(3_000_000)),
            ("2GB", Some(2_000_000_000)),
            ("100B", Some(100)),
            ("4096", Some(4096)),
            (" 7 ", Some(7)),
            ("", None),
            ("MiB", None),
            ("1.5MiB", None),
            ("-1MiB", None),
            ("10 MiBs", None),
            ("10 TiB", None),
            ("99999999999999999999", None),
            ("99999999999GiB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn sizes_are_written_back_in_their_largest_exact_unit() {
        for (bytes, text) in [
            (10 << 20, "10MiB"),
            (64 << 10, "64KiB"),
            (3_000_000, "3MB"),
            (1 << 30, "1GiB"),
            (100_001, "100001B"),
            (0, "0B"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Some(bytes));
        }
    }
}
