//! Duration literals for `ttl = "…"`: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, `"1h30m"`.

/// Milliseconds in `text`, or a sentence saying what is wrong.
pub(crate) fn parse_millis(text: &str) -> Result<u64, String> {
    let expected = "expected a duration such as \"500ms\", \"10s\", \"5m\", \"1h\" or \"1h30m\" \
                    (units: ms, s, m, h, d)";
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("empty duration: {expected}"));
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: {expected}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too long a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                let after = rest.trim_start();
                let word = &after[..after
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(after.len())];
                return Err(match word {
                    "" => format!("`{text}` has a number without a unit: {expected}"),
                    "ms" | "s" | "m" | "h" | "d" => {
                        format!("`{text}` has a space before its unit: {expected}")
                    }
                    other => format!("unknown unit `{other}` in `{text}`: {expected}"),
                });
            }
            other => return Err(format!("unknown unit `{other}` in `{text}`: {expected}")),
        };
        rest = rest[unit_len..].trim_start();
        total = number
            .checked_mul(per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    if total == 0 {
        return Err(format!(
            "`{text}` is zero: a zero `ttl` would expire every entry at once; omit `ttl` to keep entries"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn accepts_units_and_sums() {
        assert_eq!(parse_millis("500ms"), Ok(500));
        assert_eq!(parse_millis("10s"), Ok(10_000));
        assert_eq!(parse_millis("5m"), Ok(300_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis("2d"), Ok(172_800_000));
        assert_eq!(parse_millis("1h30m"), Ok(5_400_000));
        assert_eq!(parse_millis(" 1m 30s "), Ok(90_000));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "0s",
            "99999999999999999999s",
            "1 h",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad:?} should be rejected");
        }
        let said = |bad: &str| parse_millis(bad).unwrap_err();
        assert!(said("5 minutes").starts_with("unknown unit `minutes`"));
        assert!(said("1 h").contains("a space before its unit"));
        assert!(said("10").contains("without a unit"));
    }
}
