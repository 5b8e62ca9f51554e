//! The post-quantum hybrid KEM (X-Wing: ML-KEM-768 + X25519) next to the
//! RSA-3072 it is to replace, in one run, on one thread (run with
//! `scripts/bench`): key generation (one rotation's CPU) and opening one
//! recording's content key (what `unwrap` does per playback: RSA-OAEP
//! decryption against X-Wing decapsulation). Medians; printed, never
//! asserted. From the generation medians, the CPU that 10,000 rotations
//! due at one instant cost with each.

#[path = "../tests/harness/mod.rs"]
mod harness;

use aws_lc_rs::rsa::{
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use harness::{median, summary_row};
use kekd::domain::KeyBits;
use kekd::hybrid::{encapsulate, HybridPrivateKey};
use std::time::{Duration, Instant};

/// The median time of one call of `f`, over `rounds` rounds of `n` calls.
fn per_call(rounds: usize, n: u32, mut f: impl FnMut()) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        times.push(t.elapsed() / n);
    }
    median(times)
}

fn main() {
    let rsa_gen = per_call(15, 1, || {
        kekd::keypair::generate(kekd::domain::KeyType::Rsa(KeyBits::Rsa3072)).unwrap();
    });
    let xwing_gen = per_call(15, 200, || {
        HybridPrivateKey::generate().unwrap();
    });

    let pair = kekd::keypair::generate(kekd::domain::KeyType::Rsa(KeyBits::Rsa3072)).unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(&pair.private_key).unwrap();
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&pair.public_key_der).unwrap())
            .unwrap();
    let mut buf = vec![0u8; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut buf, None)
        .unwrap()
        .to_vec();
    let rsa_open = per_call(5, 300, || {
        kekd::recording::unwrap_with_private_key(&private, &wrapped).unwrap();
    });
    let hybrid = HybridPrivateKey::generate().unwrap();
    let (ct, _) = encapsulate(hybrid.public_key()).unwrap();
    let xwing_open = per_call(5, 2000, || {
        hybrid.decapsulate(&ct).unwrap();
    });
    let xwing_seal = per_call(5, 2000, || {
        encapsulate(hybrid.public_key()).unwrap();
    });

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("post-quantum hybrid (X-Wing) against RSA-3072, one thread, medians:");
    println!("| operation | RSA-3072 | X-Wing | RSA ÷ X-Wing |");
    println!("|---|---|---|---|");
    println!(
        "| key generation | {:.0} µs | {:.1} µs | {:.0}× |",
        us(rsa_gen),
        us(xwing_gen),
        rsa_gen.as_secs_f64() / xwing_gen.as_secs_f64()
    );
    println!(
        "| open a content key (unwrap) | {:.0} µs | {:.1} µs | {:.1}× |",
        us(rsa_open),
        us(xwing_open),
        rsa_open.as_secs_f64() / xwing_open.as_secs_f64()
    );
    println!(
        "| seal a content key (recorder) | — | {:.1} µs | |",
        us(xwing_seal)
    );
    println!(
        "10,000 rotations at one instant: {:.0} CPU-s of RSA-3072 generation, {:.2} CPU-s of X-Wing",
        rsa_gen.as_secs_f64() * 1e4,
        xwing_gen.as_secs_f64() * 1e4
    );
    summary_row(
        "key-pair generation (X-Wing vs RSA-3072)",
        &format!("{:.1} µs", us(xwing_gen)),
        &format!("{:.0} µs", us(rsa_gen)),
        &format!("{:.4}", xwing_gen.as_secs_f64() / rsa_gen.as_secs_f64()),
    );
    summary_row(
        "content-key unwrap (X-Wing decapsulation vs RSA-OAEP-3072)",
        &format!("{:.1} µs", us(xwing_open)),
        &format!("{:.0} µs", us(rsa_open)),
        &format!("{:.3}", xwing_open.as_secs_f64() / rsa_open.as_secs_f64()),
    );
}
