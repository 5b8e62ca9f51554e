//! `kekctl`'s file handling for `seal` and `open`: `-` for stdin/stdout,
//! output written to a temporary file and renamed only on success, and a
//! progress bar on a terminal.

use anyhow::Context;

/// `-` is stdin; a file also reports its length for the progress bar.
pub(crate) fn open_input(input: &str) -> anyhow::Result<(Box<dyn std::io::Read>, Option<u64>)> {
    if input == "-" {
        return Ok((
            Box::new(std::io::BufReader::new(std::io::stdin().lock())),
            None,
        ));
    }
    let f = std::fs::File::open(input).with_context(|| format!("opening {input}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len))
}

/// `-` is stdout; a file is written to a temporary file beside it and
/// renamed only when `write` succeeded, so a failure leaves no partial file.
pub(crate) fn write_output(
    output: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    if output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return write(&mut out);
    }
    let path = std::path::Path::new(output);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let n = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        let n = write(&mut w)?;
        std::io::Write::flush(&mut w)?;
        n
    };
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {output}"))?;
    Ok(n)
}

/// A byte progress bar on a terminal for inputs of 16 MiB or more.
pub(crate) fn progress_bar(len: Option<u64>) -> indicatif::ProgressBar {
    match len {
        Some(n) if n >= 16 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            let bar = indicatif::ProgressBar::new(n);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }
        _ => indicatif::ProgressBar::hidden(),
    }
}

/// Writes `text` to `out`, or to stdout.
pub(crate) fn write_text(out: &Option<std::path::PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
