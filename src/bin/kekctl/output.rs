//! One way to print an answer: JSON for scripts (`--json`), text for
//! people, and nothing that panics when the reader has gone
//! (`kekctl history | head`).

use serde::Serialize;
use std::io::Write;

/// `println!` that returns an error instead of panicking when stdout is
/// closed; `main` treats a broken pipe as success.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)?
    };
}
pub(crate) use outln;

/// How answers are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// JSON instead of text.
    pub(crate) json: bool,
    /// Nothing on stdout (`-q`): the exit code says it.
    pub(crate) quiet: bool,
}

impl Output {
    /// `value` as pretty JSON, or what `text` makes of it.
    pub(crate) fn show<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.quiet {
            Ok(())
        } else if self.json {
            json(value)
        } else {
            outln!("{}", text(value));
            Ok(())
        }
    }

    /// A line for people only (nothing with `--json`).
    pub(crate) fn say(&self, text: impl std::fmt::Display) -> anyhow::Result<()> {
        if !self.json && !self.quiet {
            outln!("{text}");
        }
        Ok(())
    }
}

/// `value` as pretty JSON, whatever the output (answers that are JSON by
/// nature: policies, envelopes).
pub(crate) fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
