//! Reading the file: only a regular file, bounded in size, and toml's
//! errors turned into one line an operator can act on.

use std::path::Path;

/// The largest configuration file read. Real ones are a few KiB; a bound
/// keeps `/dev/zero` or a runaway file from filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a configuration file, refusing what is not a regular file (a FIFO
/// would block the reader forever, a device never end) and anything over
/// [`MAX_CONFIG_BYTES`]. The type is checked on the opened descriptor, and
/// the open itself does not block on a FIFO (`O_NONBLOCK`).
pub(super) fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket, device or directory); kekd reads its configuration only from a regular file",
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} bytes, larger than the {MAX_CONFIG_BYTES} bytes a configuration file may have",
                meta.len()
            ),
        ));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "grew past the {MAX_CONFIG_BYTES} bytes a configuration file may have while read"
            ),
        ));
    }
    Ok(text)
}

/// toml's error as one line an operator can act on: where (line and
/// column), what, and for an unknown field the closest known one — not
/// the caret diagram flattened onto one line, nor every field name.
pub(super) fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {column}: ")
    });
    let message = e.message().trim_end().replace('\n', " ");
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, rest)| (field.to_string(), rest.to_string()));
    let Some((field, rest)) = unknown else {
        return format!("{}{message}", at.unwrap_or_default());
    };
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&field, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min();
    let hint = match closest {
        Some((_, k)) => format!("; did you mean `{k}`?"),
        None if known.len() <= 8 => {
            let names: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("; allowed here: {}", names.join(", "))
        }
        None => format!(
            "; this section takes {} fields (the example config/kekd.toml shows each)",
            known.len()
        ),
    };
    format!("{}unknown field `{field}`{hint}", at.unwrap_or_default())
}
