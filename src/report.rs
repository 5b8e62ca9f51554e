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
