//! `kekctl`'s file handling for `seal` and `open`: `-` for stdin/stdout,
//! output written to a temporary file and renamed only on success, and a
//! progress bar on a terminal.

use anyhow::Context;

/// `-` is stdin; a file also reports its length for the progress bar.
pub(crate) fn open_input(
    input: &str,
) -> anyhow::Result<(Box<dyn std::io::Read + Send>, Option<u64>)> {
    if input == "-" {
        return Ok((Box::new(std::io::BufReader::new(std::io::stdin())), None));
    }
    let f = std::fs::File::open(input).with_context(|| format!("opening {input}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    // Unbuffered: recordings are read in 64 KiB chunks already, and a
    // buffer would only add a copy of every byte.
    Ok((Box::new(f), len))
}

/// What an output file will hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Decrypted audio: never left behind in a temporary file.
    Plaintext,
    /// A sealed recording.
    Ciphertext,
}

/// `-` is stdout. A file is written into an *unnamed* temporary file in its
/// directory (`O_TMPFILE`) and given its name only when `write` succeeded:
/// an error, SIGINT, SIGTERM, SIGHUP or even SIGKILL leaves no partial file
/// — and for plaintext, no decrypted audio — behind, because until the end
/// the file has no name, and then it gets the output's name directly. A file system without `O_TMPFILE` gets a named
/// temporary file for ciphertext, and a clear refusal for plaintext.
pub(crate) fn write_output(
    output: &str,
    content: Content,
    write: impl FnOnce(&mut (dyn std::io::Write + Send)) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    if output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        let n = write(&mut out)?;
        std::io::Write::flush(&mut out)?;
        return Ok(n);
    }
    let path = std::path::Path::new(output);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let unnamed = rustix::fs::open(
        dir,
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    );
    let file = match unnamed {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) if content == Content::Plaintext => anyhow::bail!(
            "cannot write decrypted audio into {}: its file system has no unnamed temporary files (O_TMPFILE: {e}), \
             which kekctl needs so that an interrupted open leaves no plaintext behind; \
             write to a directory on a local file system, or to stdout with `-`",
            dir.display()
        ),
        Err(_) => return write_via_named_temp(dir, path, output, write),
    };
    // Unbuffered, for the same reason: whole chunks are written.
    let n = write(&mut &file)?;
    file.sync_all()?;
    // Name it: link the unnamed file straight under its final name, so no
    // instant exists at which the content has another name (a staging
    // name renamed afterwards would be left behind, whole, by a SIGKILL in
    // between). An existing file of that name is removed first: if kekctl
    // dies between the two steps, the name is gone and the content with it.
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    let link = || {
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
    };
    match link() {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            std::fs::remove_file(path).with_context(|| format!("replacing {output}"))?;
            link().with_context(|| format!("naming the output {output}"))?;
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("naming the output {output} (is /proc mounted?)"))
        }
    }
    Ok(n)
}

/// The fallback for ciphertext on file systems without `O_TMPFILE`.
fn write_via_named_temp(
    dir: &std::path::Path,
    path: &std::path::Path,
    output: &str,
    write: impl FnOnce(&mut (dyn std::io::Write + Send)) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
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
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            Ok(())
        }
    }
}
