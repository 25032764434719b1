//! Standard five-field cron schedules (minute hour day-of-month month day-of-week, UTC), as
//! Vault's `rotation_schedule` uses them: `*`, `N`, `A-B`, `*/S`, `A-B/S`, lists with `,`,
//! month and weekday names, and `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`. When both
//! day fields are restricted, a day matches if either does (classic cron). Time is a parameter.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    dom: u32,
    months: u16,
    dow: u8,
    dom_any: bool,
    dow_any: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_field(f: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + lo);
        }
        s.parse::<u32>().map_err(|_| format!("invalid value {s:?}"))
    };
    let mut bits = 0u64;
    let any = f == "*" || f == "?";
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("invalid step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        // Sunday may be written as 7 in the day-of-week field.
        let top = if hi == 6 { 7 } else { hi };
        if a < lo || b > top || a > b {
            return Err(format!("{part:?} is out of range {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1u64 << if hi == 6 && v == 7 { 0 } else { v };
            v += step;
        }
    }
    Ok((bits, any))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let s = spec.trim();
        let expanded = match s {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "cron schedule {spec:?} must have 5 fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let err = |i: usize, e: String| format!("cron schedule {spec:?}, field {}: {e}", i + 1);
        let (minutes, _) = parse_field(f[0], 0, 59, &[]).map_err(|e| err(0, e))?;
        let (hours, _) = parse_field(f[1], 0, 23, &[]).map_err(|e| err(1, e))?;
        let (dom, dom_any) = parse_field(f[2], 1, 31, &[]).map_err(|e| err(2, e))?;
        let (months, _) = parse_field(f[3], 1, 12, &MONTHS).map_err(|e| err(3, e))?;
        let (dow, dow_any) = parse_field(f[4], 0, 6, &DAYS).map_err(|e| err(4, e))?;
        Ok(Schedule {
            minutes,
            hours: hours as u32,
            dom: dom as u32,
            months: months as u16,
            dow: dow as u8,
            dom_any,
            dow_any,
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let d = self.dom & (1 << day) != 0;
        let w = self.dow & (1 << weekday) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => w,
            (false, true) => d,
            (false, false) => d || w,
        }
    }

    /// The first matching minute strictly after `after` (unix seconds, UTC), within 5 years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = (after.div_euclid(60) + 1) * 60;
        let limit = after + 5 * 366 * 86_400;
        while t <= limit {
            let days = t.div_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            let _ = y;
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if self.months & (1 << m) == 0 || !self.day_matches(d, weekday) {
                t = (days + 1) * 86_400;
                continue;
            }
            let secs = t.rem_euclid(86_400);
            let hour = (secs / 3600) as u32;
            if self.hours & (1 << hour) == 0 {
                t = days * 86_400 + (hour as i64 + 1) * 3600;
                continue;
            }
            let minute = (secs % 3600) / 60;
            if self.minutes & (1 << minute) != 0 {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian).
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2026-11-22T18:10:00Z (a Sunday).
    const T: i64 = 1_795_371_000;

    #[test]
    fn next_times() {
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.next_after(T), Some(T + 5 * 60));
        let s = Schedule::parse("0 3 * * *").unwrap();
        // Next 03:00 is 2026-11-23T03:00Z.
        assert_eq!(s.next_after(T), Some(1_795_402_800));
        let s = Schedule::parse("@hourly").unwrap();
        assert_eq!(s.next_after(T), Some(T + 50 * 60));
        // Mondays at 09:30.
        let s = Schedule::parse("30 9 * * mon").unwrap();
        assert_eq!(s.next_after(T), Some(1_795_426_200));
        // 1st of the month at midnight: 2026-12-01T00:00Z.
        let s = Schedule::parse("0 0 1 * *").unwrap();
        assert_eq!(s.next_after(T), Some(1_796_083_200));
        // Sunday written as 7, now is a Sunday: next hour mark today.
        let s = Schedule::parse("0 * * * 7").unwrap();
        assert_eq!(s.next_after(T), Some(T + 50 * 60));
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "x * * * *",
            "5-2 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(T / 86_400), (2026, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
