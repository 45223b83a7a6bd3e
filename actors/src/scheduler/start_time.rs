//! Reading task times as the scheduler brief writes them: RFC 3339, or ISO 8601 basic form
//! (`20160718T01`, `20160718T0130`, `20160718T013000Z`); no zone means UTC. Also the extended
//! form without a zone and a bare date (midnight UTC), which filters like `from`/`to` use.

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc,
};

/// Microseconds since the epoch, UTC.
pub fn parse(input: &str) -> Result<i64, String> {
    let s = input.trim();
    let bad = || {
        format!(
            "{input:?} is not a time: use RFC 3339 (2026-07-18T01:30:00Z) or ISO 8601 basic \
             (20260718T0130, 20260718T013000Z); no zone means UTC"
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc).timestamp_micros());
    }
    let (local, offset) = split_zone(s).ok_or_else(bad)?;
    let naive = parse_naive(local).ok_or_else(bad)?;
    let at = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(bad)?;
    Ok(at.with_timezone(&Utc).timestamp_micros())
}

/// RFC 3339 UTC, with fractions of a second only when there are any.
pub fn render(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Splits a trailing `Z`, `±HH`, `±HHMM` or `±HH:MM` off the local part.
fn split_zone(s: &str) -> Option<(&str, FixedOffset)> {
    if let Some(local) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((local, FixedOffset::east_opt(0)?));
    }
    let t = s.find('T').or_else(|| s.find('t'));
    if let Some(t) = t {
        if let Some(i) = s[t..].rfind(['+', '-']).map(|i| i + t) {
            let digits: String = s[i + 1..].chars().filter(|c| *c != ':').collect();
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i32>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i32>().ok()?,
                    digits[2..].parse::<i32>().ok()?,
                ),
                _ => return None,
            };
            let secs = (h * 3600 + m * 60) * if &s[i..=i] == "-" { -1 } else { 1 };
            return Some((&s[..i], FixedOffset::east_opt(secs)?));
        }
    }
    Some((s, FixedOffset::east_opt(0)?))
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t);
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, format) {
            return Some(d.and_time(NaiveTime::MIN));
        }
    }
    // Basic form: YYYYMMDD 'T' HH[MM[SS[.fff]]]
    let (date, time) = s.split_once(['T', 't'])?;
    let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    let (whole, fraction) = time.split_once(['.', ',']).unwrap_or((time, ""));
    if !whole.chars().all(|c| c.is_ascii_digit()) || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| {
        whole
            .get(i..i + 2)
            .map(|d| d.parse::<u32>().ok())
            .unwrap_or(Some(0))
    };
    let (h, m, sec) = match whole.len() {
        2 | 4 | 6 => (field(0)?, field(2)?, field(4)?),
        _ => return None,
    };
    let micros = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}")[..6].parse::<u32>().ok()?
    };
    Some(date.and_time(NaiveTime::from_hms_micro_opt(h, m, sec, micros)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn the_briefs_forms_and_rfc3339() {
        assert_eq!(parse("20160718T01").unwrap(), utc("2016-07-18T01:00:00Z"));
        assert_eq!(parse("20160718T0130").unwrap(), utc("2016-07-18T01:30:00Z"));
        assert_eq!(
            parse("20160718T013000Z").unwrap(),
            utc("2016-07-18T01:30:00Z")
        );
        assert_eq!(
            parse("20160718T013000+0200").unwrap(),
            utc("2016-07-17T23:30:00Z")
        );
        assert_eq!(
            parse("2016-07-18T01:30:00+02:00").unwrap(),
            utc("2016-07-17T23:30:00Z")
        );
        assert_eq!(
            parse("2016-07-18T01:30:00").unwrap(),
            utc("2016-07-18T01:30:00Z")
        );
        assert_eq!(parse("2016-07-18").unwrap(), utc("2016-07-18T00:00:00Z"));
        assert_eq!(
            parse("20160718T013000.25Z").unwrap(),
            utc("2016-07-18T01:30:00.25Z")
        );
        for bad in [
            "",
            "tomorrow",
            "20161318T01",
            "20160718T1",
            "20160718T25",
            "2016-07-18T01:30:00+2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_rfc3339_utc() {
        assert_eq!(render(utc("2016-07-18T01:30:00Z")), "2016-07-18T01:30:00Z");
        assert_eq!(
            render(utc("2016-07-18T01:30:00.5Z")),
            "2016-07-18T01:30:00.500Z"
        );
        let t = parse("20160718T013000+0200").unwrap();
        assert_eq!(parse(&render(t)).unwrap(), t);
    }
}
