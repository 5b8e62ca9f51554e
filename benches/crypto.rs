//! The cryptography kekd does, timed in-process, to compare the default
//! build with the FIPS build (`scripts/bench-fips` runs this bench in both
//! and prints them side by side): RSA-3072 key generation (one rotation)
//! and RSA-OAEP-SHA-256 unwraps of a content key (what `unwrap` does per
//! recording played back), on one thread. Medians; printed, never asserted.

use aws_lc_rs::rsa::{
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use kekd::domain::KeyBits;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    kekd::fips::check().expect("the module is in the mode this build expects");
    let build = if kekd::fips::FIPS_BUILD {
        "fips"
    } else {
        "default"
    };

    let mut gen = Vec::new();
    let mut last = None;
    for _ in 0..15 {
        let t = Instant::now();
        last = Some(kekd::keypair::generate(kekd::domain::KeyType::Rsa(KeyBits::Rsa3072)).unwrap());
        gen.push(t.elapsed());
    }
    let pair = last.unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(&pair.private_key).unwrap();
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&pair.public_key_der).unwrap())
            .unwrap();
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut wrapped, None)
        .unwrap()
        .to_vec();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = 300;
        for _ in 0..n {
            kekd::recording::unwrap_with_private_key(&private, &wrapped).unwrap();
        }
        rates.push(Duration::from_secs_f64(
            t.elapsed().as_secs_f64() / f64::from(n),
        ));
    }
    let per_unwrap = median(rates);
    println!(
        "{build:<8} RSA-3072 generation median {:>7.1} ms (15 keys) | RSA-OAEP unwrap {:>6.0} /s on one thread (median of 5 x 300)",
        median(gen).as_secs_f64() * 1000.0,
        1.0 / per_unwrap.as_secs_f64()
    );
}
