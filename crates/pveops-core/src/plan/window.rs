//! The maintenance window (`--window`): when a plan may change anything, in the jump host's
//! local time.

/// Parses a maintenance window `YYYY-MM-DD HH:MM/DURATION` (local time of the jump host;
/// duration `2h`, `90m`, `1h30m`) into Unix seconds.
pub fn parse_window(text: &str) -> Result<(i64, i64), String> {
    let (start, dur) = text
        .split_once('/')
        .ok_or_else(|| format!("window `{text}`: write it as \"2026-11-28 22:00/2h\""))?;
    let dt: jiff::civil::DateTime = start
        .trim()
        .parse()
        .map_err(|e| format!("window `{text}`: the start is not a date and time ({e})"))?;
    let zoned = dt
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .map_err(|e| format!("window `{text}`: {e}"))?;
    let start = zoned.timestamp().as_second();
    let mut secs = 0i64;
    let mut num = String::new();
    for c in dur.trim().chars() {
        match c {
            '0'..='9' => num.push(c),
            'h' | 'm' | 's' => {
                let n: i64 = num
                    .parse()
                    .map_err(|_| format!("window `{text}`: bad duration `{dur}`"))?;
                secs += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                num.clear();
            }
            _ => {
                return Err(format!(
                    "window `{text}`: bad duration `{dur}` (use 2h, 90m, 1h30m)"
                ));
            }
        }
    }
    if !num.is_empty() || secs <= 0 {
        return Err(format!(
            "window `{text}`: bad duration `{dur}` (use 2h, 90m, 1h30m)"
        ));
    }
    Ok((start, start + secs))
}
