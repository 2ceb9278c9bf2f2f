//! Helpers shared by the parsers: numbered lines, noise that PVE tools print before their
//! output (Perl locale warnings, ANSI colours), `key: value` splitting and lenient numbers.

use std::sync::LazyLock;

use regex::Regex;

/// One input line: 1-based number, the text with line ending and trailing whitespace removed,
/// and the raw text (only `\r\n`/`\n` removed) for the few places where trailing blanks matter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub no: usize,
    pub text: &'a str,
    pub raw: &'a str,
}

/// Splits into numbered lines. FORMATS.md §0.4: trailing whitespace is significant in the
/// sources but often lost in captures, so every parser works on `trim_end()`ed text.
pub(crate) fn lines(input: &str) -> Vec<Line<'_>> {
    input
        .lines()
        .enumerate()
        .map(|(i, raw)| {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            Line {
                no: i + 1,
                text: raw.trim_end(),
                raw,
            }
        })
        .collect()
}

/// Builds a lazily compiled regex. The patterns are constants, so `None` (a bad pattern) can
/// only be a programming error; callers then treat every line as "no match", never panic.
pub(crate) fn regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

pub(crate) type LazyRegex = LazyLock<Option<Regex>>;

/// Captures of `re` on `text` as owned-free string slices (group 0 excluded).
pub(crate) fn captures<'t>(re: &LazyRegex, text: &'t str) -> Option<Vec<Option<&'t str>>> {
    let re = re.as_ref()?;
    let caps = re.captures(text)?;
    Some(caps.iter().skip(1).map(|m| m.map(|m| m.as_str())).collect())
}

/// The `n`-th (0-based) capture group as a string, if it matched.
pub(crate) fn group<'t>(caps: &[Option<&'t str>], n: usize) -> Option<&'t str> {
    caps.get(n).copied().flatten()
}

static ANSI: LazyRegex = LazyLock::new(|| regex(r"\x1b\[[0-9;]*[A-Za-z]"));

/// Removes SGR colour codes. FORMATS.md §0.7: pve8to9/pve7to8 always colour their output and
/// print `ESC[0m` after every line, so the reset lands at the start of the next line.
pub(crate) fn strip_ansi(text: &str) -> String {
    match ANSI.as_ref() {
        Some(re) => re.replace_all(text, "").into_owned(),
        None => text.to_owned(),
    }
}

/// Marks the lines that belong to Perl locale warnings (FORMATS.md §0.5a): when the SSH client
/// forwards `LC_*` values the node lacks, every PVE Perl tool first prints
/// `perl: warning: Setting locale failed.` and ~15 more lines to STDERR.
pub(crate) fn locale_noise(lines: &[Line<'_>]) -> Vec<bool> {
    let mut noise = vec![false; lines.len()];
    let mut in_block = false;
    for (flag, line) in noise.iter_mut().zip(lines) {
        let t = line.text;
        if t.starts_with("perl: warning:")
            || t.contains("setlocale: LC_")
            || t.starts_with("locale: Cannot set LC_")
            || t.starts_with("manpath: can't set the locale")
        {
            *flag = true;
            in_block = t.starts_with("perl: warning: Please check that your locale settings");
            continue;
        }
        if in_block && line.raw.starts_with([' ', '\t']) {
            // The indented `LC_ALL = (unset),` lines and the closing
            // `    are supported and installed on your system.` line.
            *flag = true;
            continue;
        }
        in_block = false;
    }
    noise
}

/// Splits `key: value` at the first `": "` (values contain `:`, FORMATS.md §3.3); a bare
/// `key:` (value lost to trailing-whitespace trimming) gives an empty value.
pub(crate) fn split_kv(text: &str) -> Option<(&str, &str)> {
    if let Some((k, v)) = text.split_once(": ") {
        return Some((k, v));
    }
    text.strip_suffix(':').map(|k| (k, ""))
}

/// A key as PVE prints it: no whitespace, not empty.
pub(crate) fn is_key(k: &str) -> bool {
    !k.is_empty() && !k.contains(char::is_whitespace)
}

/// Decodes `%XX` escapes exactly (FORMATS.md §3.3: `description` and `sshkeys` are URI-encoded by
/// `PVE::Tools::encode_text`); `+` stays `+`. Invalid escapes are kept verbatim; bytes that
/// are not UTF-8 after decoding are replaced rather than failing the whole config.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if let Some(v) = hex
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The figure, unless it is NaN or infinite: JSON has no such numbers (serde_json writes them
/// as `null`), so what the snapshot keeps holds None instead, the value a snapshot read back
/// has.
pub(crate) fn finite(f: Option<f64>) -> Option<f64> {
    f.filter(|f| f.is_finite())
}

/// A number as JSON: integer when it is one, else a float (e.g. `qm list` MEM(MB) is a Perl
/// number printed with `%s`, FORMATS.md §3.1, so it may carry decimals).
pub(crate) fn json_number(s: &str) -> Option<serde_json::Number> {
    if let Ok(i) = s.parse::<u64>() {
        return Some(i.into());
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
}

/// Compares two Debian-ish version strings by their numeric and textual runs
/// (`6.17.2-2` > `6.14.11-4`); good enough to find the newest installed kernel.
pub(crate) fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit && c.is_alphanumeric() => run.push(c),
                _ if c.is_alphanumeric() => out.push((digit, c.to_string())),
                _ => out.push((false, String::new())),
            }
        }
        out.retain(|(d, r)| *d || !r.is_empty());
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (x, y) {
            ((true, p), (true, q)) => {
                let p = p.trim_start_matches('0');
                let q = q.trim_start_matches('0');
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            ((true, _), (false, _)) => std::cmp::Ordering::Greater,
            ((false, _), (true, _)) => std::cmp::Ordering::Less,
            ((false, p), (false, q)) => p.cmp(q),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_exact() {
        assert_eq!(percent_decode("a%3Ab%0Ac%25d+e%20f"), "a:b\nc%d+e f");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("6.17.2-2", "6.14.11-4"), Greater);
        assert_eq!(version_cmp("6.8.12-14", "6.8.12-8"), Greater);
        assert_eq!(version_cmp("5.15.74-1", "5.15.74-1"), Equal);
    }

    #[test]
    fn kv_split_keeps_colons_in_values() {
        assert_eq!(
            split_kv("net0: ip6=fd00::53/64"),
            Some(("net0", "ip6=fd00::53/64"))
        );
        assert_eq!(split_kv("ballooninfo:"), Some(("ballooninfo", "")));
        assert_eq!(split_kv("no separator"), None);
    }
}
