//! Whether this build does its cryptography in a FIPS 140-3 module, and the
//! check a FIPS build makes before it does anything.
//!
//! The `fips` feature builds aws-lc-rs on the AWS-LC FIPS module (and, by
//! feature unification, rustls under the AWS SDK's HTTPS client; rustls'
//! default provider becomes its FIPS one). The module runs its power-on
//! self-tests when it is first used; `aws_lc_rs::try_fips_mode` says whether
//! it is in FIPS mode. A FIPS build that is not refuses to run rather than
//! silently serve non-validated cryptography. Which module version and
//! certificate: docs/fips.md.

/// This build was made with the `fips` feature.
pub const FIPS_BUILD: bool = cfg!(feature = "fips");

/// A FIPS build whose module is not in FIPS mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this is a FIPS build, but the cryptographic module is not in FIPS mode ({0}); refusing to run"
)]
pub struct NotFipsMode(pub String);

/// In a FIPS build, checks that the module is in FIPS mode; in any other
/// build there is nothing to check.
pub fn check() -> Result<(), NotFipsMode> {
    if FIPS_BUILD {
        aws_lc_rs::try_fips_mode().map_err(|e| NotFipsMode(e.to_string()))
    } else {
        Ok(())
    }
}

/// What `--version`, status and `/metrics` say about the module.
pub fn describe() -> &'static str {
    if FIPS_BUILD {
        "FIPS 140-3 (AWS-LC FIPS module)"
    } else {
        "not FIPS (AWS-LC)"
    }
}

/// The version line of both binaries: `0.1.0` or `0.1.0 (FIPS)`.
pub const VERSION: &str = if FIPS_BUILD {
    concat!(env!("CARGO_PKG_VERSION"), " (FIPS)")
} else {
    env!("CARGO_PKG_VERSION")
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_matches_the_build() {
        // A FIPS build must find its module in FIPS mode; a default build
        // has nothing to check and says it is not FIPS.
        assert_eq!(check(), Ok(()));
        assert_eq!(aws_lc_rs::try_fips_mode().is_ok(), FIPS_BUILD);
        assert_eq!(VERSION.ends_with("(FIPS)"), FIPS_BUILD);
    }
}
