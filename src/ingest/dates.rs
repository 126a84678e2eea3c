//! Date and month recognisers for the forms NHS extracts use. Each works on a trimmed `&str`
//! without allocating and returns days since 1970-01-01 (Arrow `Date32`).

use crate::config::pipeline::DateFormat;

/// Years a civil date may have.
const FIRST_YEAR: i32 = 1800;
const LAST_YEAR: i32 = 2200;

/// Days since 1970-01-01 of 1 January of each year from `FIRST_YEAR` to `LAST_YEAR`.
static YEAR_STARTS: [i32; (LAST_YEAR - FIRST_YEAR + 1) as usize] = {
    let mut starts = [0; (LAST_YEAR - FIRST_YEAR + 1) as usize];
    let mut i = 0;
    while i < starts.len() {
        starts[i] = hinnant_days(FIRST_YEAR + i as i32, 1, 1);
        i += 1;
    }
    starts
};

/// Days of the year before the first of each month, in a common year.
const DAYS_BEFORE_MONTH: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

const fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Howard Hinnant's `days_from_civil`, for any proleptic Gregorian date.
const fn hinnant_days(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// Days since 1970-01-01 of a civil date from 1800 to 2200, or `None` if the date does not exist
/// or is outside those years. Looked up from a table of year starts: this runs for every date of
/// every extract.
#[inline]
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > 31 {
        return None;
    }
    let leap = is_leap(year);
    if day > days_in_month_of(leap, month) {
        return None;
    }
    let before = DAYS_BEFORE_MONTH[month as usize - 1] as i32 + (leap && month > 2) as i32;
    Some(YEAR_STARTS[(year - FIRST_YEAR) as usize] + before + day as i32 - 1)
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// First day of the month containing `days`.
pub fn month_start(days: i32) -> i32 {
    let (y, m, _) = civil_from_days(days);
    days_from_civil(y, m, 1).unwrap_or(days)
}

/// `YYYY-MM` of a Date32 value.
pub fn month_key(days: i32) -> String {
    let (y, m, _) = civil_from_days(days);
    format!("{y:04}-{m:02}")
}

#[inline]
fn days_in_month_of(leap: bool, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, b| acc * 10 + (b - b'0') as u32))
}

/// Digits of a fixed-width field (no length check beyond non-empty).
#[inline]
fn fixed(s: &[u8]) -> Option<u32> {
    let mut acc = 0u32;
    for b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        acc = acc * 10 + d as u32;
    }
    Some(acc)
}

fn month_name(s: &[u8]) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if s.len() < 3 {
        return None;
    }
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    NAMES
        .iter()
        .position(|n| {
            let n = n.as_bytes();
            (lower.len() == 3 && n[..3] == lower[..]) || n == &lower[..] || (lower == b"sept" && n.starts_with(b"sep"))
        })
        .map(|i| i as u32 + 1)
}

/// Drops a trailing time part (`T12:00`, ` 00:00:00`).
fn date_part(s: &str) -> &str {
    match s.find(['T', ' ']) {
        Some(i) if i >= 8 && s[i + 1..].contains(':') => &s[..i],
        _ => s,
    }
}

fn split3<'a>(s: &'a str, seps: &[char]) -> Option<(&'a str, &'a str, &'a str)> {
    let mut it = s.split(seps);
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    it.next().is_none().then_some((a, b, c))
}

/// ISO `yyyy-mm-dd` (optionally with a time), always accepted.
pub fn parse_iso(s: &str) -> Option<i32> {
    let s = if s.len() == 10 { s } else { date_part(s) };
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    days_from_civil(digits(&b[..4])? as i32, digits(&b[5..7])?, digits(&b[8..])?)
}

/// Parses `s` with one declared format.
pub fn parse_with(format: DateFormat, s: &str) -> Option<i32> {
    match format {
        DateFormat::DdMmYyyy => {
            // Fast path for the fixed-width form `31/01/2024`.
            let b = s.as_bytes();
            if b.len() == 10 && b[2] == b[5] && matches!(b[2], b'/' | b'-' | b'.') {
                return days_from_civil(fixed(&b[6..])? as i32, fixed(&b[3..5])?, fixed(&b[..2])?);
            }
            let (d, m, y) = split3(date_part(s), &['/', '-', '.'])?;
            (y.len() == 4).then_some(())?;
            days_from_civil(digits(y.as_bytes())? as i32, digits(m.as_bytes())?, digits(d.as_bytes())?)
        }
        DateFormat::YyyyMmDd => {
            let (y, m, d) = split3(date_part(s), &['/', '-'])?;
            (y.len() == 4).then_some(())?;
            days_from_civil(digits(y.as_bytes())? as i32, digits(m.as_bytes())?, digits(d.as_bytes())?)
        }
        DateFormat::Yyyymmdd => {
            let b = s.as_bytes();
            (b.len() == 8).then_some(())?;
            days_from_civil(digits(&b[..4])? as i32, digits(&b[4..6])?, digits(&b[6..])?)
        }
        DateFormat::DdMonYyyy => {
            let (d, m, y) = split3(date_part(s), &['-', ' ', '/'])?;
            let year = match y.len() {
                4 => digits(y.as_bytes())? as i32,
                2 => 2000 + digits(y.as_bytes())? as i32,
                _ => return None,
            };
            days_from_civil(year, month_name(m.as_bytes())?, digits(d.as_bytes())?)
        }
        DateFormat::ExcelSerial => {
            let v: f64 = s.parse().ok()?;
            if !(1.0..2_958_466.0).contains(&v) {
                return None;
            }
            let serial = v.trunc() as i32;
            // Excel's 1900 system counts a non-existent 29 Feb 1900 (serial 60).
            let base = days_from_civil(1899, 12, 30)?;
            match serial {
                60 => None,
                s if s < 60 => Some(base + s + 1),
                s => Some(base + s),
            }
        }
        DateFormat::MonthYyyy => {
            let (m, y) = s.split_once([' ', '-'])?;
            let y = y.trim();
            (y.len() == 4).then_some(())?;
            days_from_civil(digits(y.as_bytes())? as i32, month_name(m.trim().as_bytes())?, 1)
        }
        DateFormat::MonYy => {
            let (m, y) = s.split_once(['-', ' '])?;
            (y.len() == 2 && m.len() == 3).then_some(())?;
            days_from_civil(2000 + digits(y.as_bytes())? as i32, month_name(m.as_bytes())?, 1)
        }
        DateFormat::MonFinancialYear => {
            // `JUL 2021/22`: April–December are in the first year, January–March in the next.
            let (m, fy) = s.trim().split_once(' ')?;
            let (y, _) = fy.trim().split_once('/')?;
            (y.len() == 4).then_some(())?;
            let month = month_name(m.trim().as_bytes())?;
            let year = digits(y.as_bytes())? as i32 + i32::from(month <= 3);
            days_from_civil(year, month, 1)
        }
        DateFormat::YyyyMm => {
            let (y, m) = s.split_once(['-', '/'])?;
            (y.len() == 4 && (1..=2).contains(&m.len())).then_some(())?;
            days_from_civil(digits(y.as_bytes())? as i32, digits(m.as_bytes())?, 1)
        }
    }
}

/// Default forms for `date` columns.
pub const DEFAULT_DATE_FORMATS: &[DateFormat] = &[DateFormat::DdMmYyyy, DateFormat::YyyyMmDd, DateFormat::ExcelSerial];
/// Default forms for `month` columns.
pub const DEFAULT_MONTH_FORMATS: &[DateFormat] =
    &[DateFormat::MonthYyyy, DateFormat::MonYy, DateFormat::YyyyMm, DateFormat::DdMmYyyy];

#[cfg(test)]
mod tests {
    use super::*;
    use DateFormat::*;

    fn ymd(y: i32, m: u32, d: u32) -> Option<i32> {
        days_from_civil(y, m, d)
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(ymd(1970, 1, 1), Some(0));
        assert_eq!(ymd(2024, 2, 29).map(civil_from_days), Some((2024, 2, 29)));
        assert_eq!(ymd(2023, 2, 29), None);
        let (first, last) = (ymd(1800, 1, 1).unwrap(), ymd(2200, 12, 31).unwrap());
        for d in first..=last {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(ymd(y, m, dd), Some(d));
            assert_eq!(hinnant_days(y, m, dd), d);
        }
        assert_eq!((ymd(1799, 12, 31), ymd(2201, 1, 1)), (None, None));
        assert_eq!((ymd(2000, 2, 29).is_some(), ymd(1900, 2, 29), ymd(2024, 4, 31)), (true, None, None));
        assert_eq!((ymd(2024, 0, 1), ymd(2024, 13, 1), ymd(2024, 1, 0), ymd(2024, 1, 32)), (None, None, None, None));
    }

    #[test]
    fn every_form() {
        let jan31 = ymd(2024, 1, 31);
        assert_eq!(parse_with(DdMmYyyy, "31/01/2024"), jan31);
        assert_eq!(parse_with(DdMmYyyy, "31-1-2024"), jan31);
        assert_eq!(parse_with(DdMmYyyy, "31/01/2024 00:00:00"), jan31);
        assert_eq!(parse_with(DdMmYyyy, "31/13/2024"), None);
        assert_eq!(parse_with(YyyyMmDd, "2024-01-31"), jan31);
        assert_eq!(parse_with(Yyyymmdd, "20240131"), jan31);
        assert_eq!(parse_with(DdMonYyyy, "31-Jan-2024"), jan31);
        assert_eq!(parse_with(DdMonYyyy, "31 JAN 24"), jan31);
        assert_eq!(parse_with(ExcelSerial, "45322"), jan31);
        assert_eq!(parse_with(ExcelSerial, "45322.75"), jan31);
        assert_eq!(parse_with(ExcelSerial, "60"), None);
        assert_eq!(parse_with(ExcelSerial, "1"), ymd(1900, 1, 1));
        assert_eq!(parse_with(MonthYyyy, "April 2023"), ymd(2023, 4, 1));
        assert_eq!(parse_with(MonthYyyy, "Sept 2023"), ymd(2023, 9, 1));
        assert_eq!(parse_with(MonYy, "APR-23"), ymd(2023, 4, 1));
        assert_eq!(parse_with(MonFinancialYear, "JUL 2021/22"), ymd(2021, 7, 1));
        assert_eq!(parse_with(MonFinancialYear, "JAN 2021/22"), ymd(2022, 1, 1));
        assert_eq!(parse_with(MonFinancialYear, "JUL 2021"), None);
        assert_eq!(parse_with(YyyyMm, "2023-04"), ymd(2023, 4, 1));
        assert_eq!(parse_iso("2023-04-01T00:00:00"), ymd(2023, 4, 1));
        assert_eq!(month_key(ymd(2023, 4, 17).unwrap()), "2023-04");
        assert_eq!(month_start(ymd(2023, 4, 17).unwrap()), ymd(2023, 4, 1).unwrap());
    }
}
