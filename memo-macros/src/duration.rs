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
    // The unit of the part before, for the unit a trailing bare number likely means.
    let mut last_unit: Option<&str> = None;
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
            "" if rest.starts_with(['.', ','])
                && rest[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                return Err(fraction(text));
            }
            "" if rest.is_empty() && last_unit.is_some() => {
                let unit = match last_unit {
                    Some("d") => Some("h"),
                    Some("h") => Some("m"),
                    Some("m") => Some("s"),
                    Some("s") => Some("ms"),
                    _ => None,
                };
                return Err(match unit {
                    Some(unit) => format!(
                        "`{text}` ends in a number without a unit: write `ttl = \"{}{unit}\"` \
                         (each number takes its unit)",
                        text.trim()
                    ),
                    None => format!("`{text}` ends in a number without a unit: {expected}"),
                });
            }
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
        last_unit = Some(&rest[..unit_len]);
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

/// The sentence for a duration with a fraction (`"1.5s"`), with the same duration in whole
/// units where it has one (`"1500ms"`).
fn fraction(text: &str) -> String {
    let whole = whole_millis(text).and_then(|ms| {
        [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ]
        .into_iter()
        .find(|&(_, per_unit)| ms.is_multiple_of(per_unit))
        .map(|(unit, per_unit)| format!("{}{unit}", ms / per_unit))
    });
    match whole {
        Some(whole) => format!(
            "`{text}` has a fraction, and a duration takes whole numbers only: write `ttl = \"{whole}\"`"
        ),
        None => format!(
            "`{text}` has a fraction, and a duration takes whole numbers only: write it in a \
             smaller unit, such as \"1500ms\" for 1.5 seconds"
        ),
    }
}

/// The milliseconds of `text` where its numbers may have fractions, if that is a whole number
/// above zero.
fn whole_millis(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    // In thousandths of a millisecond, at most three decimals.
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(rest.len());
        let number = rest[..number_len].replace(',', ".");
        let (int, frac) = number.split_once('.').unwrap_or((&number, ""));
        if int.is_empty() && frac.is_empty() || frac.len() > 3 || frac.contains('.') {
            return None;
        }
        let thousandths: u128 = format!("{int}{frac:0<3}").parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let per_unit: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = rest[unit_len..].trim_start();
        total = total.checked_add(thousandths.checked_mul(per_unit)?)?;
    }
    (total > 0 && total.is_multiple_of(1000))
        .then(|| u64::try_from(total / 1000).ok())
        .flatten()
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
        assert_eq!(
            said("1.5s"),
            "`1.5s` has a fraction, and a duration takes whole numbers only: write `ttl = \"1500ms\"`"
        );
        assert!(said("1.5h").ends_with("`ttl = \"90m\"`"));
        assert!(said("0.5m").ends_with("`ttl = \"30s\"`"));
        assert!(said("1h 1.5m").ends_with("`ttl = \"3690s\"`"));
        assert!(said("1.5ms").contains("smaller unit"));
        assert_eq!(
            said("1h30"),
            "`1h30` ends in a number without a unit: write `ttl = \"1h30m\"` (each number takes its unit)"
        );
        assert!(said("2m30").contains("`ttl = \"2m30s\"`"));
        assert!(said("5ms3").contains("ends in a number without a unit: expected"));
    }
}
