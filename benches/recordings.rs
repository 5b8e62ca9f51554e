//! Recording benchmarks (run with `scripts/bench`), side by side with
//! openssl in the same run; medians; printed, never asserted.
//!
//! 1. Seal and open throughput of a 256 MiB recording, in memory and file to
//!    file, against `openssl speed -evp aes-256-gcm -bytes 16384`.
//! 2. Unwrap requests per second over the socket with a warm cache (the real
//!    daemon, local provider, RSA-3072, 2 concurrent clients) against
//!    `openssl speed rsa3072` private-key operations per second.
//! 3. Peak resident memory of `kekctl seal` on a 1 GiB file.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::summary_row;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// openssl's AES-256-GCM throughput at 16 KiB blocks, bytes/s.
fn openssl_gcm() -> f64 {
    let text = openssl(&[
        "speed",
        "-seconds",
        "3",
        "-evp",
        "aes-256-gcm",
        "-bytes",
        "16384",
    ]);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("AES-256-GCM"))
        .expect("openssl speed output");
    let k: f64 = line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('k')
        .parse()
        .unwrap();
    k * 1000.0
}

/// openssl's RSA-3072 private-key operations per second.
fn openssl_rsa() -> f64 {
    let text = openssl(&["speed", "-seconds", "3", "rsa3072"]);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("rsa 3072"))
        .expect("openssl speed output");
    line.split_whitespace().nth(5).unwrap().parse().unwrap()
}

fn throughput() {
    const SIZE: usize = 256 << 20;
    let g = kekd::keypair::generate(kekd::domain::KeyType::Rsa(kekd::domain::KeyBits::Rsa3072))
        .unwrap();
    let key = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&g.private_key).unwrap();
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 7) as u8).collect();
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    std::fs::write(dir.path().join("in"), &data).unwrap();
    let (mut seal_mem, mut open_mem, mut seal_file, mut open_file, mut ossl) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut sealed = Vec::with_capacity(SIZE + SIZE / 1000 + 4096);
    for run in 0..3 {
        eprint!("\rseal/open 256 MiB: run {}/3", run + 1);
        // In memory: input from a buffer, output to a sink, like openssl
        // speed (which does no I/O); the sealed copy `open` reads is made
        // outside the timing.
        let t = Instant::now();
        kekd::recording::seal(
            &mut &data[..],
            &mut std::io::sink(),
            &g.id,
            &g.public_key_der,
            |_| {},
        )
        .unwrap();
        seal_mem.push(SIZE as f64 / t.elapsed().as_secs_f64());
        sealed.clear();
        kekd::recording::seal(
            &mut &data[..],
            &mut sealed,
            &g.id,
            &g.public_key_der,
            |_| {},
        )
        .unwrap();
        let t = Instant::now();
        kekd::recording::open(
            &mut &sealed[..],
            &mut std::io::sink(),
            |h| {
                kekd::recording::unwrap_with_private_key(&key, &h.wrapped_key)
                    .map_err(|e| e.to_string())
            },
            |_| {},
        )
        .unwrap();
        open_mem.push(SIZE as f64 / t.elapsed().as_secs_f64());
        // File to file, through buffered I/O as kekctl does.
        let t = Instant::now();
        {
            let mut r = std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(dir.path().join("in")).unwrap(),
            );
            let mut w = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(dir.path().join("sealed")).unwrap(),
            );
            kekd::recording::seal(&mut r, &mut w, &g.id, &g.public_key_der, |_| {}).unwrap();
            w.flush().unwrap();
        }
        seal_file.push(SIZE as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        {
            let mut r = std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(dir.path().join("sealed")).unwrap(),
            );
            let mut w = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(dir.path().join("out")).unwrap(),
            );
            kekd::recording::open(
                &mut r,
                &mut w,
                |h| {
                    kekd::recording::unwrap_with_private_key(&key, &h.wrapped_key)
                        .map_err(|e| e.to_string())
                },
                |_| {},
            )
            .unwrap();
            w.flush().unwrap();
        }
        open_file.push(SIZE as f64 / t.elapsed().as_secs_f64());
        ossl.push(openssl_gcm());
    }
    eprintln!();
    let o = median(ossl);
    let mb = |x: f64| x / 1e6;
    println!("Recording throughput, 256 MiB, median of 3 (interleaved with openssl):");
    println!(
        "  openssl speed -evp aes-256-gcm -bytes 16384   {:>8.0} MB/s",
        mb(o)
    );
    for (name, v) in [
        ("seal, in memory (buffer -> sink)", seal_mem),
        ("open, in memory (buffer -> sink)", open_mem),
        ("seal, file to file (incl. I/O)", seal_file),
        ("open, file to file (incl. I/O)", open_file),
    ] {
        let m = median(v);
        println!("  {name:<44} {:>8.0} MB/s  ({:.2}x openssl)", mb(m), m / o);
        summary_row(
            name,
            &format!("{:.0} MB/s", mb(m)),
            &format!("openssl AES-256-GCM {:.0} MB/s", mb(o)),
            &format!("{:.2}×", m / o),
        );
    }
}

async fn unwrap_rps() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kekd.toml");
    std::fs::write(
        &config,
        format!(
            "organization_id = \"bench\"\ncadence = \"never\"\nstate_dir = \"{d}/state\"\nsocket_path = \"{d}/kekd.sock\"\n[canary]\ninterval = \"off\"\n[provider]\ntype = \"local\"\nroot_key_path = \"{d}/root.key\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = kekd::api::client::Client::new(dir.path().join("kekd.sock"));
    let p: kekd::api::views::PublicKeyView =
        harness::wait_for(Duration::from_secs(60), "kekd", || async {
            client.public_key().await.ok()
        })
        .await;
    let mut sealed = Vec::new();
    kekd::recording::seal(
        &mut &b"x"[..],
        &mut sealed,
        &p.id,
        &harness::pem_der(&p.pem),
        |_| {},
    )
    .unwrap();
    let h = kekd::recording::Header::read(&mut &sealed[..]).unwrap();
    let wrapped = h.wrapped_key.clone();
    client.unwrap(&p.id, &wrapped).await.unwrap(); // warm the cache
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..3 {
        eprint!("\runwrap: run {}/3", run + 1);
        let stop = Instant::now() + Duration::from_secs(3);
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (c, id, wrapped) = (client.clone(), p.id.clone(), wrapped.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < stop {
                        c.unwrap(&id, &wrapped).await.unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let t = Instant::now();
        let mut n = 0;
        for task in tasks {
            n += task.await.unwrap();
        }
        ours.push(n as f64 / t.elapsed().as_secs_f64());
        theirs.push(openssl_rsa());
    }
    eprintln!();
    let _ = child.kill();
    let _ = child.wait();
    let (o, t) = (median(ours), median(theirs));
    println!("Unwrap over the socket, warm cache, RSA-3072, 2 clients, median of 3 x 3 s:");
    println!("  openssl speed rsa3072 (private ops/s, 1 thread)  {t:>8.0}/s");
    println!(
        "  kekd unwrap (requests/s)                         {o:>8.0}/s  ({:.2}x openssl)",
        o / t
    );
    summary_row(
        "unwrap, warm cache, RSA-3072, 2 clients",
        &format!("{o:.0}/s"),
        &format!("openssl rsa3072 1 thread {t:.0}/s"),
        &format!("{:.2}×", o / t),
    );
}

/// `kekctl seal` and `kekctl open` of 256 MiB, file to file on tmpfs, next
/// to `cp` of the same file (the copy limit), interleaved, medians of 5,
/// and kekctl's peak memory. `open` unwraps through a local-provider kekd
/// whose key cache is warmed by one untimed open first, as a player's
/// would be.
fn kekctl_vs_cp() {
    const SIZE: usize = 256 << 20;
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let d = dir.path();
    // kekd refuses a state directory on tmpfs (/dev/shm): its own lives on
    // disk; only the recordings are on tmpfs.
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    std::fs::write(
        s.join("kekd.toml"),
        format!(
            "organization_id = \"bench\"\ncadence = \"never\"\nstate_dir = \"{d}/state\"\nsocket_path = \"{d}/kekd.sock\"\n[canary]\ninterval = \"off\"\n[provider]\ntype = \"local\"\nroot_key_path = \"{d}/root.key\"\n",
            d = s.display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("--config")
        .arg(s.join("kekd.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let kekctl = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kekctl"));
        c.arg("--socket").arg(s.join("kekd.sock"));
        c
    };
    let pem = d.join("pub.pem");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kekctl()
        .args(["public-key", "--out"])
        .arg(&pem)
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "kekd did not serve a key");
        std::thread::sleep(Duration::from_millis(100));
    }
    let input = d.join("in");
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 7) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    drop(data);
    let time = |cmd: &mut Command| {
        let t = Instant::now();
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            t.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let rss_of = |err: &str| {
        err.lines()
            .find(|l| l.contains("Maximum resident set size"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    let timed_kekctl = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v")
            .arg(env!("CARGO_BIN_EXE_kekctl"))
            .arg("--socket")
            .arg(s.join("kekd.sock"))
            .args(args);
        c
    };
    let (mut cp, mut seal, mut open, mut rss, mut open_rss) =
        (vec![], vec![], vec![], vec![], vec![]);
    let sealed = d.join("sealed");
    let opened = d.join("opened");
    {
        let small = d.join("warm");
        std::fs::write(&small, b"warm the unwrap cache").unwrap();
        time(
            kekctl()
                .arg("seal")
                .arg(&small)
                .arg(&sealed)
                .arg("--public-key")
                .arg(&pem),
        );
        time(kekctl().arg("open").arg(&sealed).arg(&opened));
        for f in [&small, &sealed, &opened] {
            std::fs::remove_file(f).unwrap();
        }
    }
    const RUNS: usize = 5;
    for run in 0..RUNS {
        eprint!(
            "\rkekctl seal/open vs cp, 256 MiB on tmpfs: run {}/{RUNS}",
            run + 1
        );
        let out = d.join("copy");
        cp.push(time(Command::new("cp").arg(&input).arg(&out)).0);
        std::fs::remove_file(&out).unwrap();
        let (t, err) = time(&mut timed_kekctl(&[
            "seal".as_ref(),
            input.as_os_str(),
            sealed.as_os_str(),
            "--public-key".as_ref(),
            pem.as_os_str(),
        ]));
        seal.push(t);
        rss.push(rss_of(&err));
        let (t, err) = time(&mut timed_kekctl(&[
            "open".as_ref(),
            sealed.as_os_str(),
            opened.as_os_str(),
        ]));
        open.push(t);
        open_rss.push(rss_of(&err));
        std::fs::remove_file(&sealed).unwrap();
        std::fs::remove_file(&opened).unwrap();
    }
    eprintln!();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let (c, s, o) = (median(cp), median(seal), median(open));
    summary_row(
        "kekctl seal 256 MiB tmpfs → tmpfs",
        &format!("{s:.3} s, peak RSS {:.1} MiB", median(rss.clone())),
        &format!("cp {c:.3} s"),
        &format!("{:.2}× cp's rate", c / s),
    );
    summary_row(
        "kekctl open 256 MiB tmpfs → tmpfs",
        &format!("{o:.3} s, peak RSS {:.1} MiB", median(open_rss.clone())),
        &format!("cp {c:.3} s"),
        &format!("{:.2}× cp's rate", c / o),
    );
    println!(
        "kekctl seal, 256 MiB tmpfs -> tmpfs, median of {RUNS}: {:.3} s; cp of the same file {:.3} s; seal at {:.2}x the copy rate; peak RSS {:.1} MiB",
        s,
        c,
        c / s,
        median(rss)
    );
    println!(
        "kekctl open, 256 MiB tmpfs -> tmpfs, median of {RUNS}: {:.3} s; open at {:.2}x the copy rate; peak RSS {:.1} MiB",
        o,
        c / o,
        median(open_rss)
    );
}

fn peak_rss() {
    const SIZE: u64 = 1 << 30;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let g = kekd::keypair::generate(kekd::domain::KeyType::Rsa(kekd::domain::KeyBits::Rsa3072))
        .unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        kekd::keypair::public_key_pem(g.algorithm, &g.public_key_der),
    )
    .unwrap();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.path().join("in")).unwrap());
        let block: Vec<u8> = (0..1 << 20).map(|i| (i * 13) as u8).collect();
        for _ in 0..SIZE >> 20 {
            f.write_all(&block).unwrap();
        }
    }
    eprintln!("sealing 1 GiB with kekctl under /usr/bin/time -v");
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_kekctl"))
        .args(["seal"])
        .arg(dir.path().join("in"))
        .arg(dir.path().join("out"))
        .arg("--public-key")
        .arg(dir.path().join("pub.pem"))
        .output()
        .expect("/usr/bin/time (apt-get install time)");
    let err = String::from_utf8_lossy(&out.stderr);
    let rss_kb: f64 = err
        .lines()
        .find(|l| l.contains("Maximum resident set size"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .expect("time -v output");
    let wall = err
        .lines()
        .find(|l| l.contains("Elapsed (wall clock)"))
        .unwrap_or("")
        .trim()
        .to_string();
    println!(
        "Peak resident memory of kekctl seal on 1 GiB: {:.1} MiB ({wall})",
        rss_kb / 1024.0
    );
}

#[tokio::main]
async fn main() {
    throughput();
    kekctl_vs_cp();
    unwrap_rps().await;
    peak_rss();
}
