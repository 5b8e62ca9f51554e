//! The man pages the package ships: clap's pages of `kekd(8)` and
//! `kekctl(1)` with FILES, EXAMPLES and SEE ALSO added, and
//! `kekd.toml(5)`, made from the commented example configuration — the
//! file a test holds to list every field — so the page cannot drift from
//! what kekd accepts.

use std::io::Write;
use std::path::Path;

/// The sections clap does not write.
pub struct Sections {
    /// (path, what it is).
    pub files: &'static [(&'static str, &'static str)],
    /// (what it does, the command).
    pub examples: &'static [(&'static str, &'static str)],
    /// Other pages, `name(section)`.
    pub see_also: &'static [&'static str],
}

/// kekd(8)'s.
pub const KEKD: Sections = Sections {
    files: &[
        ("/etc/kekd/kekd.toml", "the configuration (kekd.toml(5)); written once at install, never replaced by an upgrade"),
        ("/etc/kekd/kekd.toml.dist", "the example configuration of the installed version; diff it against kekd.toml.dist.old after an upgrade to see what is new"),
        ("/etc/kekd/ORG.toml", "the configuration of the template instance kekd@ORG"),
        ("/usr/share/kekd/", "commented example configurations, and the break-glass scripts decrypt-envelope.py, open-recording.py and xwing.py"),
        ("/var/lib/kekd/kekd.redb", "the key history: the encrypted private keys that open the recordings (back it up)"),
        ("/var/lib/kekd/audit.jsonl", "the hash-chained audit trail"),
        ("/run/kekd/kekd.sock", "the API socket; /run/kekd/ORG/kekd.sock for kekd@ORG"),
        ("/usr/share/doc/kekd/", "README.md and docs/: operations, troubleshooting, formats"),
    ],
    examples: &[
        ("Check a configuration as the service's user", "sudo -u kekd kekd check-config /etc/kekd/kekd.toml"),
        ("Try kekd without AWS (local key provider)", "kekd --dev"),
        ("Change Key Now", "systemctl kill -s USR1 kekd"),
        ("Reload the configuration, all or nothing", "systemctl reload kekd"),
    ],
    see_also: &["kekctl(1)", "kekd.toml(5)", "systemctl(1)", "journalctl(1)"],
};

/// kekctl(1)'s.
pub const KEKCTL: Sections = Sections {
    files: &[
        ("/run/kekd/kekd.sock", "the daemon's socket (--socket, KEKD_SOCKET); /run/kekd/ORG/kekd.sock for kekd@ORG"),
        ("/etc/kekd/kekd.toml", "the configuration that test --config and audit verify read"),
    ],
    examples: &[
        ("Is the daemon healthy? (exit 0 ok, 5 degraded, 3 unreachable)", "kekctl status"),
        ("The key history, every column", "kekctl history -o wide"),
        ("Add an organization with its own KMS key", "kekctl org add acme --kms-key-arn arn:aws:kms:eu-west-1:111122223333:alias/acme"),
        ("Move it to post-quantum key pairs at its next rotation", "kekctl org set acme --key-type x25519-mlkem768"),
        ("Seal and open a recording", "kekctl --org acme seal call.raw call.kekdrec && kekctl --org acme open call.kekdrec call.raw"),
        ("Follow one organization's audit trail", "kekctl --org acme audit show --follow"),
    ],
    see_also: &["kekd(8)", "kekd.toml(5)"],
};

/// Writes `cmd`'s page (`NAME.SECTION`) with `extra` into `dir`.
pub fn write(
    cmd: clap::Command,
    section: &str,
    extra: &Sections,
    dir: &Path,
) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd).section(section);
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.extend_from_slice(sections(extra).as_bytes());
    std::fs::File::create(dir.join(man.get_filename()))?.write_all(&page)
}

/// FILES, EXAMPLES and SEE ALSO in roff.
fn sections(s: &Sections) -> String {
    let mut out = String::from(".SH FILES\n");
    for (path, what) in s.files {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(path), esc(what)));
    }
    out.push_str(".SH EXAMPLES\n");
    for (what, command) in s.examples {
        out.push_str(&format!(".TP\n{}\n.B {}\n", esc(what), esc(command)));
    }
    out.push_str(".SH \"SEE ALSO\"\n");
    let pages: Vec<String> = s.see_also.iter().map(|p| page_ref(p)).collect();
    out.push_str(&pages.join(",\n"));
    out.push('\n');
    out
}

/// `name(5)` as `\fBname\fR(5)`.
fn page_ref(p: &str) -> String {
    match p.split_once('(') {
        Some((name, rest)) => format!(".BR {} ({}", esc(name), esc(rest)),
        None => esc(p),
    }
}

/// Text safe in roff: backslashes and hyphens escaped, and a leading `.`
/// or `'` (a control line) defused.
fn esc(s: &str) -> String {
    let e = s.replace('\\', "\\e").replace('-', "\\-");
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

/// The commented example configuration the page is made from.
const EXAMPLE: &str = include_str!("../config/kekd.toml");

/// kekd.toml(5): every field of the example configuration with its
/// comment, under its section, and the example itself.
pub fn config_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = format!(
        ".TH KEKD.TOML 5 \"\" \"kekd {version}\" \"File Formats\"\n\
         .SH NAME\nkekd.toml \\- configuration of kekd(8)\n\
         .SH SYNOPSIS\n/etc/kekd/kekd.toml, /etc/kekd/ORG.toml\n\
         .SH DESCRIPTION\n\
         kekd reads one TOML file. Unknown fields are refused, and every error names the file, \
         the field, the value and what is allowed; check a file with \\fBkekd check\\-config\\fR \
         \\fIFILE\\fR, and what only KMS can confirm with \\fBkekctl test \\-\\-config\\fR \\fIFILE\\fR. \
         Only \\fBorganization_id\\fR and \\fB[provider]\\fR are required. A field shown \
         commented out below is optional and shows its default or an example.\n\
         .SH FIELDS\n"
    );
    let mut comment: Vec<&str> = Vec::new();
    for line in EXAMPLE.lines() {
        let t = line.trim();
        if let Some(section) = t.strip_prefix('[').filter(|_| !t.contains('=')) {
            out.push_str(&format!(".SS \"[{}\"\n", esc(section)));
            if !comment.is_empty() {
                out.push_str(&format!("{}\n", esc(&comment.join(" "))));
            }
            comment.clear();
        } else if let Some(field) = setting(t) {
            out.push_str(&format!(".TP\n\\fB{}\\fR\n", esc(field)));
            if !comment.is_empty() {
                out.push_str(&format!("{}\n", esc(&comment.join(" "))));
            }
            comment.clear();
        } else if let Some(text) = t.strip_prefix('#') {
            let text = text.trim();
            if !text.is_empty() {
                comment.push(text);
            }
        } else {
            comment.clear();
        }
    }
    out.push_str(".SH EXAMPLE\nThe commented example the package installs (/usr/share/kekd/kekd.toml):\n.PP\n.nf\n");
    for line in EXAMPLE.lines() {
        out.push_str(&esc(line));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out.push_str(&sections(&Sections {
        files: &[
            ("/etc/kekd/kekd.toml", "the configuration of kekd.service"),
            (
                "/etc/kekd/ORG.toml",
                "the configuration of kekd@ORG.service",
            ),
            (
                "/usr/share/kekd/kekd.toml",
                "this example (AWS KMS); kekd-local.toml beside it for the local key provider",
            ),
        ],
        examples: &[(
            "Check a file as the service's user",
            "sudo -u kekd kekd check-config /etc/kekd/kekd.toml",
        )],
        see_also: &["kekd(8)", "kekctl(1)"],
    }));
    out
}

/// `name = value` (possibly commented out): the line as written, when it
/// sets a field.
fn setting(line: &str) -> Option<&str> {
    let l = line.trim_start_matches(['#', ' ']);
    let (name, _) = l.split_once(" = ")?;
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        .then_some(l)
}

/// Writes kekd.toml(5) as `kekd.toml.5` into `dir`.
pub fn write_config_page(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("kekd.toml.5"), config_page())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page names every field the example shows (itself tested to
    /// show every field kekd accepts), under its section.
    #[test]
    fn the_configuration_page_is_made_from_the_example() {
        let page = config_page();
        for field in [
            "organization_id",
            "key_type",
            "kms_key_arn",
            "socket_group",
            "cadence",
        ] {
            assert!(page.contains(&format!("\\fB{field}")), "{field}");
        }
        assert!(page.contains(".SS \"[provider]\""), "{page}");
        assert!(page.contains(".SH EXAMPLE") && page.contains(".SH \"SEE ALSO\""));
        let fields = EXAMPLE
            .lines()
            .filter(|l| setting(l.trim()).is_some())
            .count();
        assert_eq!(
            page.matches(".TP\n\\fB").count(),
            fields + 3,
            "one entry per field, plus FILES"
        );
        // No control line slips through from the example's text.
        assert!(!page
            .lines()
            .any(|l| l.starts_with(".[") || l.starts_with("'")));
    }

    #[test]
    fn added_sections_are_roff() {
        let s = sections(&KEKD);
        assert!(
            s.starts_with(".SH FILES\n.TP\n\\fB/etc/kekd/kekd.toml\\fR\n"),
            "{s}"
        );
        assert!(s.contains(".B kekd \\-\\-dev\n"), "{s}");
        assert!(s.contains(".BR kekctl (1),\n"), "{s}");
    }
}
