//! Tables as plain aligned columns, as systemctl and kubectl print them: no
//! borders, upper-case headers (none with `--no-headers`), two spaces
//! between columns, and a value never broken across lines. A table fits
//! the terminal (`COLUMNS` when set, else the terminal's width): each table
//! says which columns go first and which values may be cut with `…` when it
//! is too wide. Into a pipe without `COLUMNS` nothing is cut (as systemctl
//! does), so `grep` sees every value; `-o wide` shows every column and
//! every value whole, however wide the lines get.

use std::sync::atomic::{AtomicBool, Ordering};

static WIDE: AtomicBool = AtomicBool::new(false);
static NO_HEADERS: AtomicBool = AtomicBool::new(false);

/// `-o wide` and `--no-headers`, set once by `main`.
pub(crate) fn configure(wide: bool, no_headers: bool) {
    WIDE.store(wide, Ordering::Relaxed);
    NO_HEADERS.store(no_headers, Ordering::Relaxed);
}

/// Whether `-o wide` asked for every column, whole.
pub(crate) fn wide() -> bool {
    WIDE.load(Ordering::Relaxed)
}

/// Whether tables print their header row.
pub(crate) fn headers() -> bool {
    !NO_HEADERS.load(Ordering::Relaxed)
}

/// How wide a line may be: `COLUMNS`, else the terminal's width; none
/// (nothing is cut) into a pipe or a file.
pub(crate) fn width() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| *w >= 20)
        .or_else(|| {
            console::Term::stdout()
                .size_checked()
                .map(|(_, cols)| usize::from(cols))
        })
}

/// One step towards fitting a table that is too wide, tried in order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fit {
    /// Leave out column `i`.
    Drop(usize),
    /// Cut the values of column `i` with `…`, down to `min` characters.
    Cut(usize, usize),
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// `s` in at most `n` characters: whole, or cut with `…`.
pub(crate) fn cut(s: &str, n: usize) -> String {
    if chars(s) <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// The table of `rows` under `header` (upper-cased; an empty header is a
/// key–value table without one), fitted to the width by the steps of
/// `fit`, then, if still too wide, by cutting the last column.
pub(crate) fn render(header: &[&str], rows: Vec<Vec<String>>, fit: &[Fit]) -> String {
    render_in(width(), header, rows, fit)
}

/// [`render`] for a line width of `limit`.
fn render_in(
    limit: Option<usize>,
    header: &[&str],
    mut rows: Vec<Vec<String>>,
    fit: &[Fit],
) -> String {
    let n = header.len().max(rows.first().map_or(0, Vec::len));
    let header: Vec<String> = if header.is_empty() || !headers() {
        Vec::new()
    } else {
        header.iter().map(|h| h.to_uppercase()).collect()
    };
    let mut shown: Vec<bool> = vec![true; n];
    let col_width = |i: usize, rows: &[Vec<String>]| {
        rows.iter()
            .chain(std::iter::once(&header))
            .filter_map(|r| r.get(i))
            .map(|c| chars(c))
            .max()
            .unwrap_or(0)
    };
    if let Some(limit) = limit.filter(|_| !wide()) {
        let total = |shown: &[bool], rows: &[Vec<String>]| {
            let kept: Vec<usize> = (0..n).filter(|i| shown[*i]).collect();
            kept.iter().map(|i| col_width(*i, rows)).sum::<usize>()
                + 2 * kept.len().saturating_sub(1)
        };
        for step in fit {
            let over = total(&shown, &rows).saturating_sub(limit);
            if over == 0 {
                break;
            }
            match *step {
                Fit::Drop(i) => shown[i] = false,
                Fit::Cut(i, min) if shown[i] => {
                    let to = col_width(i, &rows).saturating_sub(over).max(min);
                    for r in rows.iter_mut() {
                        r[i] = cut(&r[i], to);
                    }
                }
                Fit::Cut(..) => {}
            }
        }
        let over = total(&shown, &rows).saturating_sub(limit);
        if let Some(last) = (0..n).rev().find(|i| shown[*i]).filter(|_| over > 0) {
            let to = col_width(last, &rows).saturating_sub(over);
            for r in rows.iter_mut() {
                r[last] = cut(&r[last], to);
            }
        }
    }
    let widths: Vec<usize> = (0..n).map(|i| col_width(i, &rows)).collect();
    let line = |r: &[String]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate().filter(|(i, _)| shown[*i]) {
            if !s.is_empty() {
                s.push_str("  ");
            }
            s.push_str(c);
            s.extend(std::iter::repeat_n(' ', widths[i] - chars(c)));
        }
        s.trim_end().to_string()
    };
    let mut out: Vec<String> = Vec::with_capacity(rows.len() + 1);
    if !header.is_empty() {
        out.push(line(&header));
    }
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        vec![
            vec![
                "kek-0123456789abcdef".into(),
                "active".into(),
                "us-east-1 alias/a-long-alias-name".into(),
            ],
            vec![
                "kek-fedcba9876543210".into(),
                "retired".into(),
                "us-east-1 key/6d704f62…".into(),
            ],
        ]
    }

    #[test]
    fn a_table_that_fits_is_aligned_and_whole() {
        let t = render_in(Some(200), &["id", "state", "kms key"], rows(), &[]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID                    STATE    KMS KEY");
        assert_eq!(
            lines[1],
            "kek-0123456789abcdef  active   us-east-1 alias/a-long-alias-name"
        );
        // Too narrow: the first step cuts, the second drops; ids stay whole.
        let t = render_in(
            Some(40),
            &["id", "state", "kms key"],
            rows(),
            &[Fit::Cut(2, 12), Fit::Drop(1)],
        );
        assert!(t.lines().all(|l| chars(l) <= 40), "{t}");
        assert!(t.contains("kek-0123456789abcdef") && t.contains('…'), "{t}");
        // Into a pipe: whole.
        assert_eq!(
            render_in(None, &["id", "state", "kms key"], rows(), &[Fit::Drop(1)]),
            render_in(Some(200), &["id", "state", "kms key"], rows(), &[])
        );
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
