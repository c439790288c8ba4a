//! The grammar of flag values that clap does not know: byte sizes (`20M`) and positive
//! durations (`90s`).

/// A number of bytes such as `500k`, `20M` or `1G` (k = 1024, M = 1024², G = 1024³;
/// case does not matter, a trailing `B` or `iB` may follow), more than zero.
pub fn byte_size(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let lower = text.to_ascii_lowercase();
    let without_b = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, unit) = match without_b.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&without_b[..i], c),
        _ => (without_b, ' '),
    };
    let factor: u64 = match unit {
        ' ' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => {
            return Err(format!(
                "{value:?}: unknown unit (expected e.g. 500k, 20M, 1G)"
            ));
        }
    };
    let count: u64 = number
        .parse()
        .map_err(|_| format!("{value:?}: not a size (expected e.g. 500k, 20M, 1G)"))?;
    match count.checked_mul(factor) {
        Some(0) => Err(format!("{value:?}: must be more than zero")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{value:?}: too large")),
    }
}

/// A duration such as `90s`, `5m` or `1h 30m`, more than zero.
pub(super) fn positive_duration(value: &str) -> Result<humantime::Duration, String> {
    let duration: humantime::Duration = value
        .parse()
        .map_err(|e| format!("{value:?}: {e} (expected e.g. 90s, 5m, 1h)"))?;
    if duration.is_zero() {
        return Err(format!("{value:?}: must be more than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::byte_size;

    #[test]
    fn sizes_read_as_curl_reads_them() {
        assert_eq!(byte_size("500k"), Ok(500 * 1024));
        assert_eq!(byte_size("20M"), Ok(20 << 20));
        assert_eq!(byte_size("1g"), Ok(1 << 30));
        assert_eq!(byte_size("16MiB"), Ok(16 << 20));
        assert_eq!(byte_size("64MB"), Ok(64 << 20));
        assert_eq!(byte_size("4096"), Ok(4096));
        for bad in ["", "0", "0k", "1.5M", "8X", "fast", "-1k", "99999999999G"] {
            assert!(byte_size(bad).is_err(), "{bad:?}");
        }
    }
}
