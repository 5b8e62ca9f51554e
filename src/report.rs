//! How the binaries say what went wrong: an error and its causes on one
//! line, each cause once — library errors often name their source in their
//! own message as well as exposing it as the source, and printing the chain
//! naively says everything twice.

/// `causes` (outermost first, e.g. `anyhow::Error::chain`) joined by `: `,
/// leaving out a cause whose text the previous message already contains.
pub fn one_line<'a>(causes: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes {
        let text = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// The text of a caught panic (`catch_unwind`'s or a task's payload).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// What a `spawn_blocking` or spawned task that did not finish says: its
/// panic's text, or that it was cancelled.
pub(crate) fn join_error(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => format!("panicked: {}", panic_message(&*p)),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("the root cause")]
    struct Inner;

    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("start-up failed");
        assert_eq!(
            super::one_line(e.chain()),
            "start-up failed: outer: the root cause"
        );
    }
}
