//! Go's `time.Time.Format` for UTC instants, for consul-template's `timestamp LAYOUT`
//! (reference time `Mon Jan 2 15:04:05 MST 2006`).

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `time.RFC3339`.
pub(crate) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) — Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn year_day(y: i64, m: u32, d: u32) -> u32 {
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut n = CUM[(m as usize - 1).min(11)] + d;
    if m > 2 && is_leap(y) {
        n += 1;
    }
    n
}

#[derive(Clone, Copy)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm(bool),
    Tz,
    /// Numeric zone (`-0700` etc.): the text for UTC, and whether `Z` replaces it.
    Zone(&'static str, bool),
    /// Fractional seconds: digits, trim trailing zeros, separator.
    Frac(usize, bool, char),
}

/// Go's `nextStdChunk`: (literal prefix length, chunk, chunk length).
fn next_chunk(layout: &str) -> Option<(usize, Std, usize)> {
    let b = layout.as_bytes();
    let starts = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_after = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_lowercase());
    for i in 0..b.len() {
        let hit = match b[i] {
            b'J' if starts(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if starts(i, "Jan") && !lower_after(i + 3) => Some((Std::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if starts(i, "Mon") && !lower_after(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if starts(i, "MST") => Some((Std::Tz, 3)),
            b'0' => match b.get(i + 1) {
                Some(b'1') => Some((Std::ZeroMonth, 2)),
                Some(b'2') => Some((Std::ZeroDay, 2)),
                Some(b'3') => Some((Std::ZeroHour12, 2)),
                Some(b'4') => Some((Std::ZeroMinute, 2)),
                Some(b'5') => Some((Std::ZeroSecond, 2)),
                Some(b'6') => Some((Std::Year, 2)),
                Some(b'0') if b.get(i + 2) == Some(&b'2') => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if b.get(i + 1) == Some(&b'5') => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if starts(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if starts(i, "_2006") => return Some((i + 1, Std::LongYear, 4)),
            b'_' if starts(i, "_2") => Some((Std::UnderDay, 2)),
            b'_' if starts(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if b.get(i + 1) == Some(&b'M') => Some((Std::Pm(true), 2)),
            b'p' if b.get(i + 1) == Some(&b'm') => Some((Std::Pm(false), 2)),
            b'-' if starts(i, "-070000") => Some((Std::Zone("+000000", false), 7)),
            b'-' if starts(i, "-07:00:00") => Some((Std::Zone("+00:00:00", false), 9)),
            b'-' if starts(i, "-0700") => Some((Std::Zone("+0000", false), 5)),
            b'-' if starts(i, "-07:00") => Some((Std::Zone("+00:00", false), 6)),
            b'-' if starts(i, "-07") => Some((Std::Zone("+00", false), 3)),
            b'Z' if starts(i, "Z070000") => Some((Std::Zone("", true), 7)),
            b'Z' if starts(i, "Z07:00:00") => Some((Std::Zone("", true), 9)),
            b'Z' if starts(i, "Z0700") => Some((Std::Zone("", true), 5)),
            b'Z' if starts(i, "Z07:00") => Some((Std::Zone("", true), 6)),
            b'Z' if starts(i, "Z07") => Some((Std::Zone("", true), 3)),
            c @ (b'.' | b',') if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&ch) {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((Std::Frac(j - i - 1, ch == b'9', c as char), j - i))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = hit {
            return Some((i, std, len));
        }
    }
    None
}

/// Formats the UTC instant `secs`.`nanos` after the Unix epoch with a Go layout.
pub(crate) fn format(layout: &str, secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, min, sec) = (sod / 3600, sod % 3600 / 60, sod % 60);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let mut out = String::new();
    let mut rest = layout;
    while let Some((prefix, std, len)) = next_chunk(rest) {
        out.push_str(&rest[..prefix]);
        rest = &rest[prefix + len..];
        match std {
            Std::LongMonth => out.push_str(MONTHS[(month as usize - 1).min(11)]),
            Std::Month => out.push_str(&MONTHS[(month as usize - 1).min(11)][..3]),
            Std::NumMonth => out.push_str(&month.to_string()),
            Std::ZeroMonth => out.push_str(&format!("{month:02}")),
            Std::LongWeekDay => out.push_str(DAYS[weekday]),
            Std::WeekDay => out.push_str(&DAYS[weekday][..3]),
            Std::Day => out.push_str(&day.to_string()),
            Std::UnderDay => out.push_str(&format!("{day:>2}")),
            Std::ZeroDay => out.push_str(&format!("{day:02}")),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", year_day(year, month, day))),
            Std::ZeroYearDay => out.push_str(&format!("{:03}", year_day(year, month, day))),
            Std::Hour => out.push_str(&format!("{hour:02}")),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = if hour % 12 == 0 { 12 } else { hour % 12 };
                if matches!(std, Std::Hour12) {
                    out.push_str(&h.to_string());
                } else {
                    out.push_str(&format!("{h:02}"));
                }
            }
            Std::Minute => out.push_str(&min.to_string()),
            Std::ZeroMinute => out.push_str(&format!("{min:02}")),
            Std::Second => out.push_str(&sec.to_string()),
            Std::ZeroSecond => out.push_str(&format!("{sec:02}")),
            Std::LongYear => {
                if year < 0 {
                    out.push_str(&format!("-{:04}", -year));
                } else {
                    out.push_str(&format!("{year:04}"));
                }
            }
            Std::Year => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Std::Pm(upper) => out.push_str(match (hour >= 12, upper) {
                (true, true) => "PM",
                (true, false) => "pm",
                (false, true) => "AM",
                (false, false) => "am",
            }),
            Std::Tz => out.push_str("UTC"),
            Std::Zone(text, iso) => out.push_str(if iso { "Z" } else { text }),
            Std::Frac(n, trim, sep) => {
                let digits = format!("{nanos:09}");
                let mut d = &digits[..n.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.push_str(d);
            }
        }
    }
    out.push_str(rest);
    out
}
