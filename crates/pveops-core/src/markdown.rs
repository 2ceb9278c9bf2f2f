//! Markdown for the evidence (report, runbook, diff, change log): text escaped so that a
//! value a node reports can never become markup of its own.

/// Escapes text for a markdown table cell or the middle of a line (never a line's start), as
/// sparingly as CommonMark/GFM allow, so the raw file stays readable: `|` (a cell's end), `*`,
/// `` ` ``, `~`, `$` (GitHub's math), `[` (a link or image cannot start, so `(`, `)` and `!`
/// stay as they are), `_` where it could open or close emphasis (GFM ignores it inside a word),
/// `\` before punctuation, `<` (HTML) and `&` where it could start an entity; a newline is
/// `<br>`.
pub fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(ch) = chars.next() {
        let next = chars.peek().copied();
        match ch {
            '\\' if next.is_none_or(|n| n.is_ascii_punctuation()) => o.push_str("\\\\"),
            '`' | '*' | '[' | '|' | '~' | '$' => {
                o.push('\\');
                o.push(ch);
            }
            '_' if !(prev.is_some_and(char::is_alphanumeric)
                && next.is_some_and(char::is_alphanumeric)) =>
            {
                o.push_str("\\_")
            }
            '<' => o.push_str("&lt;"),
            '&' if next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '#') => {
                o.push_str("&amp;")
            }
            '\n' => o.push_str("<br>"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
        prev = Some(ch);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cannot_be_injected() {
        assert_eq!(md("web|prod*<b>"), "web\\|prod\\*&lt;b>");
        assert_eq!(md("a\nb"), "a<br>b");
        assert_eq!(md("[x](javascript:alert(1))"), "\\[x](javascript:alert(1))");
        // Only what markdown would read: no clutter in plain text.
        assert_eq!(
            md("pve-manager (9.1.1) failed! 5 > 3"),
            "pve-manager (9.1.1) failed! 5 > 3"
        );
        assert_eq!(md("dns_01 _x_ a\\b \\*"), "dns_01 \\_x\\_ a\\b \\\\\\*");
        assert_eq!(md("&amp; & x"), "&amp;amp; & x");
    }
}
