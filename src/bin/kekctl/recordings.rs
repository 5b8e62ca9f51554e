//! Recordings: `seal` with the active (or a cached) public key, `open`
//! through the daemon's unwrap.

use crate::files::{open_input, progress_bar, write_output, Content};
use anyhow::Context;
use kekd::api::client::Client;
use kekd::domain::KeyAlgorithm;
use std::path::PathBuf;

/// Where `seal` takes its public key from.
pub(crate) enum SealingKey {
    /// The daemon's active one.
    Daemon,
    /// A cached PEM, optionally checked against an expected key-pair id.
    Pem(PathBuf, Option<String>),
    /// The active key of a cached JWK Set.
    Jwks(PathBuf),
}

/// A cached key file as text, without a byte-order mark (an editor's
/// `\u{feff}` before the JSON or the PEM is not an error of the key).
fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The key-pair id, its algorithm and the public key to seal with.
async fn sealing_key(
    client: &Client,
    key: SealingKey,
) -> anyhow::Result<(String, KeyAlgorithm, Vec<u8>)> {
    Ok(match key {
        SealingKey::Jwks(file) => {
            let text = read_text(&file)?;
            let set: kekd::jwks::JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JWK Set", file.display()))?;
            let key = set
                .sealing_key()
                .with_context(|| format!("{}", file.display()))?;
            let kid = kekd::jwks::shown_kid(&key.kid);
            let (algorithm, der) = key
                .public_key()
                .with_context(|| format!("{}: key {kid}", file.display()))?;
            let actual = kekd::keypair::key_pair_id(&der);
            if actual != key.kid {
                anyhow::bail!(
                    "{}: key {kid} is not the key its kid names (its id is {actual})",
                    file.display()
                );
            }
            (actual, algorithm, der)
        }
        SealingKey::Pem(file, expected) => {
            let text = read_text(&file)?;
            let (algorithm, der) = public_pem(&text)
                .with_context(|| format!("{}: not a PEM public key", file.display()))?;
            let actual = kekd::keypair::key_pair_id(&der);
            if let Some(id) = expected.filter(|id| *id != actual) {
                anyhow::bail!(
                    "--key-id {id} does not belong to {} (its id is {actual})",
                    file.display()
                );
            }
            (actual, algorithm, der)
        }
        SealingKey::Daemon => {
            let p = client.public_key().await?;
            let (algorithm, der) = public_pem(&p.pem).context("daemon sent a bad PEM")?;
            (p.id, algorithm, der)
        }
    })
}

/// A PEM public key: its label says its algorithm (`PUBLIC KEY` for RSA
/// SPKI, `X25519-MLKEM768 PUBLIC KEY` for the hybrid).
fn public_pem(text: &str) -> anyhow::Result<(KeyAlgorithm, Vec<u8>)> {
    let block = pem::parse(text)?;
    let algorithm = kekd::keypair::algorithm_of_pem_label(block.tag()).with_context(|| {
        format!(
            "the PEM label is {:?}; kekd's public keys are {:?} (RSA) or {:?} (hybrid)",
            block.tag(),
            kekd::keypair::RSA_PEM_LABEL,
            kekd::keypair::HYBRID_PEM_LABEL
        )
    })?;
    Ok((algorithm, block.into_contents()))
}

/// `kekctl seal IN OUT`.
pub(crate) async fn seal(
    client: &Client,
    input: &str,
    output: &str,
    key: SealingKey,
) -> anyhow::Result<()> {
    let (id, algorithm, der) = sealing_key(client, key).await?;
    let (mut reader, len) = open_input(input)?;
    let bar = progress_bar(len);
    let n = write_output(output, Content::Ciphertext, |w| {
        let progress = |done| bar.set_position(done);
        match algorithm {
            KeyAlgorithm::Rsa => kekd::recording::seal(&mut reader, w, &id, &der, progress),
            KeyAlgorithm::X25519MlKem768 => {
                kekd::recording::seal_hybrid(&mut reader, w, &id, &der, progress)
            }
        }
        .map_err(anyhow::Error::from)
    })?;
    bar.finish_and_clear();
    if output != "-" {
        eprintln!("sealed {n} bytes for key pair {id} into {output}");
    }
    Ok(())
}

/// `kekctl open IN OUT`.
pub(crate) async fn open(client: &Client, input: &str, output: &str) -> anyhow::Result<()> {
    let (mut reader, len) = open_input(input)?;
    let header =
        kekd::recording::Header::read(&mut reader).context("reading the recording header")?;
    let answer = client
        .unwrap(&header.key_pair_id, &header.wrapped_key)
        .await?;
    let key = zeroize::Zeroizing::new(answer.content_key.clone());
    let bar = progress_bar(len);
    let n = write_output(output, Content::Plaintext, |w| {
        kekd::recording::open_body(&header, key, &mut reader, w, |done| bar.set_position(done))
            .map_err(anyhow::Error::from)
    })?;
    bar.finish_and_clear();
    if output != "-" {
        eprintln!(
            "opened {n} bytes (key pair {}) into {output}",
            header.key_pair_id
        );
    }
    Ok(())
}
