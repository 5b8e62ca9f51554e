//! Recordings end to end: seal with the daemon's public key, open
//! through the daemon's unwrap, the Python reference opener, and unwrap's
//! errors and cache.

use crate::harness::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kekd::api::views::{KeyPairView, PublicKeyView};
use std::time::Duration;

fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 13) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_and_open_through_the_daemon_files_and_pipes() {
    let (_moto, d) = daemon_with_key("kekd-rec").await;
    let dir = d.dir.path();
    let input = dir.join("call.raw");
    let data = audio(300_000);
    std::fs::write(&input, &data).unwrap();
    let sealed = dir.join("call.kekdrec");
    let (code, _, err) = d.kekctl(&["seal", input.to_str().unwrap(), sealed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let active = d.wait_active().await.active_key_id.unwrap();
    assert!(err.contains(&active));

    // Rotate: the recording still opens with its (now retired) key pair.
    d.client().rotate().await.unwrap();
    let out = dir.join("call.out");
    let (code, _, err) = d.kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // Pipes: seal - -, open - -.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{k} --socket {s} seal - - < {i} | {k} --socket {s} open - -",
            k = env!("CARGO_BIN_EXE_kekctl"),
            s = d.socket.display(),
            i = input.display()
        ))
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(piped.stdout, data);

    // A corrupted recording: exit 1, and no output file appears.
    let mut bad = std::fs::read(&sealed).unwrap();
    let n = bad.len();
    bad[n - 100] ^= 1;
    let badf = dir.join("bad.kekdrec");
    std::fs::write(&badf, &bad).unwrap();
    let out2 = dir.join("bad.out");
    let (code, _, err) = d.kekctl(&["open", badf.to_str().unwrap(), out2.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("failed authentication"), "{err}");
    assert!(!out2.exists(), "no partial plaintext left behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files removed");

    // The recorder's cached public key path.
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    let pem = dir.join("active.pem");
    std::fs::write(&pem, &p.pem).unwrap();
    let sealed2 = dir.join("call2.kekdrec");
    // `kekctl seal IN OUT --public-key PEM` and `extra` arguments.
    let seal_cached = |extra: &[&str]| {
        let mut args = vec![
            "seal",
            input.to_str().unwrap(),
            sealed2.to_str().unwrap(),
            "--public-key",
            pem.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        d.kekctl(&args)
    };
    let (code, _, err) = seal_cached(&["--key-id", &p.id]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = seal_cached(&["--key-id", "kek-0000000000000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not belong to"), "{err}");
    // --key-id is optional: the id is computed from the key.
    let (code, _, err) = seal_cached(&[]);
    assert_eq!(code, 0, "{err}");
    let h = kekd::recording::Header::read(&mut std::fs::File::open(&sealed2).unwrap()).unwrap();
    assert_eq!(h.key_pair_id, p.id);
}

/// The Python reference opener (only `cryptography`), with the private key
/// recovered from an exported envelope by the break-glass script (only
/// boto3): the documented formats are complete.
#[tokio::test(flavor = "multi_thread")]
async fn python_opens_a_recording_with_a_key_recovered_from_an_export() {
    let (moto, d) = daemon_with_key("kekd-rec-py").await;
    let dir = d.dir.path();
    let data = audio(3 * 65536 + 1234);
    std::fs::write(dir.join("in.raw"), &data).unwrap();
    let (code, _, err) = d.kekctl(&[
        "seal",
        dir.join("in.raw").to_str().unwrap(),
        dir.join("r.kekdrec").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let id = d.wait_active().await.active_key_id.unwrap();
    let (code, _, _) = d.kekctl(&[
        "export",
        &id,
        "--out",
        dir.join("env.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let py = |args: &[&str]| {
        std::process::Command::new(moto_python())
            .args(args)
            .envs(moto_env(&moto))
            .output()
            .unwrap()
    };
    let key = py(&[
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/decrypt-envelope.py"),
        dir.join("env.json").to_str().unwrap(),
    ]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    std::fs::write(dir.join("private.pem"), &key.stdout).unwrap();
    // Regression: the break-glass recipe left a plaintext private key
    // readable by everyone (0644 under the usual umask). The script
    // refuses to write into such a file, and says how to run it.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let readable = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(dir.join("leaky.pem"))
            .unwrap();
        // Whatever the test runner's umask: readable by others.
        use std::os::unix::fs::PermissionsExt;
        readable
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let out = std::process::Command::new(moto_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/decrypt-envelope.py"
            ))
            .arg(dir.join("env.json"))
            .envs(moto_env(&moto))
            .stdout(readable)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("umask 077"), "{err}");
        assert_eq!(
            std::fs::metadata(dir.join("leaky.pem")).unwrap().len(),
            0,
            "nothing written"
        );
    }
    let out = py(&[
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/open-recording.py"),
        dir.join("private.pem").to_str().unwrap(),
        dir.join("r.kekdrec").to_str().unwrap(),
        dir.join("out.raw").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("out.raw")).unwrap(), data);

    // And the committed test vector, in Python too.
    let v = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/recording-v1");
    let out = py(&[
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/open-recording.py"),
        &format!("{v}/private.pem"),
        &format!("{v}/sealed.kekdrec"),
        dir.join("vector.raw").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &std::fs::read(dir.join("vector.raw")).unwrap(),
    );
    assert_eq!(
        hex::encode(digest.as_ref()),
        std::fs::read_to_string(format!("{v}/plaintext.sha256"))
            .unwrap()
            .trim()
    );
}

/// unwrap: 404 for an unknown key pair, one opaque 400 for any bad wrapped
/// key, and with KMS down: 503 `kms_unavailable` at once when nothing is
/// cached, success when the private key is cached.
#[tokio::test(flavor = "multi_thread")]
async fn unwrap_errors_and_the_private_key_cache() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, alias) = moto.create_key("kekd-unwrap").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &alias, "")).await;
    let c = d.client();
    let first = d.wait_active().await.active_key_id.unwrap();
    let p: PublicKeyView = c.public_key().await.unwrap();
    // A real wrapped key, made like a recorder does.
    let mut sealed = Vec::new();
    kekd::recording::seal(
        &mut &b"hello"[..],
        &mut sealed,
        &p.id,
        &pem_der(&p.pem),
        |_| {},
    )
    .unwrap();
    let h = kekd::recording::Header::read(&mut &sealed[..]).unwrap();
    let ok = c.unwrap(&first, &h.wrapped_key).await.unwrap();
    assert_eq!(ok.content_key.len(), 32);

    let e = c
        .unwrap("kek-0000000000000000", &h.wrapped_key)
        .await
        .unwrap_err();
    assert!(
        matches!(e, kekd::api::client::ClientError::Api { status: 404, .. }),
        "{e}"
    );
    let mut messages = std::collections::HashSet::new();
    for bad in [vec![0u8; 256], vec![1u8; 10], {
        let mut w = h.wrapped_key.clone();
        w[17] ^= 1;
        w
    }] {
        let e = c.unwrap(&first, &bad).await.unwrap_err();
        match e {
            kekd::api::client::ClientError::Api {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code), (400, kekd::api::ErrorCode::UnwrapFailed));
                messages.insert(message);
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        messages.len(),
        1,
        "one opaque error whatever the cause: {messages:?}"
    );
    let (status, body) = c
        .raw_with_body(
            hyper::Method::POST,
            &kekd::api::paths::unwrap(&first),
            br#"{"nope": 1}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // A second key pair, never unwrapped: not cached.
    let second: KeyPairView = c.rotate().await.unwrap();
    proxy.set(Fault::Refuse).await;
    // Cached: still works with KMS gone.
    let ok = c.unwrap(&first, &h.wrapped_key).await.unwrap();
    assert_eq!(ok.content_key.len(), 32);
    // Not cached: 503 kms_unavailable, promptly.
    let t = std::time::Instant::now();
    let e = c.unwrap(&second.id, &h.wrapped_key).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(30));
    match e {
        kekd::api::client::ClientError::Api { status, code, .. } => {
            assert_eq!((status, code), (503, kekd::api::ErrorCode::KmsUnavailable))
        }
        other => panic!("{other}"),
    }
    // Each unwrap is audited, without the content key.
    let s: kekd::api::views::StatusView = c.status().await.unwrap();
    let audit = std::fs::read_to_string(&s.audit.path).unwrap();
    assert!(
        audit
            .lines()
            .filter(|l| l.contains("/unwrap\"") && l.contains("\"role\":\"decrypt\""))
            .count()
            >= 4
    );
    assert!(!audit.contains(&B64.encode(&ok.content_key)));
}

/// Writes `data` to a file in the daemon's directory and seals it with
/// `kekctl seal`; returns the sealed file.
fn seal_file(d: &TestDaemon, data: &[u8]) -> std::path::PathBuf {
    let input = d.dir.path().join("call.raw");
    std::fs::write(&input, data).unwrap();
    let sealed = d.dir.path().join("call.kekdrec");
    let (code, _, err) = d.kekctl(&["seal", input.to_str().unwrap(), sealed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    sealed
}

/// Leftovers of an output: every file in `dir` other than `keep`.
fn leftovers(dir: &std::path::Path, keep: &[&std::path::Path]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(&p.as_path()))
        .map(|p| p.display().to_string())
        .collect()
}

/// Regression (SIGINT, SIGTERM or SIGHUP during `kekctl open` left a hidden
/// temporary file with hundreds of MB of plaintext): whatever signal stops
/// an open mid-way, no plaintext file is left in the output directory. The
/// input is a FIFO that the test feeds half a recording and then holds, so
/// the signal lands mid-open every time.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_open_leaves_no_plaintext_behind() {
    let (_moto, d) = daemon_with_key("kekd-rec-signal").await;
    let sealed_bytes = std::fs::read(seal_file(&d, &audio(4 << 20))).unwrap();
    for (signal, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGTERM, "TERM"),
        (libc::SIGHUP, "HUP"),
    ] {
        let out_dir = tempfile::tempdir().unwrap();
        let fifo = out_dir.path().join("in.fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let out = out_dir.path().join("call.out");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("open")
            .arg(&fifo)
            .arg(&out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Half the recording, then hold the FIFO open: kekctl is mid-way.
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        std::io::Write::write_all(&mut writer, &sealed_bytes[..sealed_bytes.len() / 2]).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // SAFETY: kill(2) on a child we own.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = child.wait().unwrap();
        drop(writer);
        assert!(!status.success(), "SIG{name}: kekctl stopped");
        assert!(!out.exists(), "SIG{name}: no output file");
        assert_eq!(
            leftovers(out_dir.path(), &[&fifo]),
            Vec::<String>::new(),
            "SIG{name}: no temporary file left"
        );
    }
}

/// `open IN -` streams: each chunk is written as soon as it authenticates,
/// so a truncated recording yields its authenticated prefix and exit 1 — a
/// consumer must check the exit status (documented in the format page).
#[tokio::test(flavor = "multi_thread")]
async fn opening_to_stdout_streams_authenticated_chunks_and_fails_on_truncation() {
    let (_moto, d) = daemon_with_key("kekd-rec-stream").await;
    let data = audio(1 << 20);
    let bytes = std::fs::read(seal_file(&d, &data)).unwrap();
    let truncated = d.dir.path().join("truncated.kekdrec");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["open", truncated.to_str().unwrap(), "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    assert!(!out.stdout.is_empty() && out.stdout.len() < data.len());
    assert_eq!(
        &data[..out.stdout.len()],
        &out.stdout[..],
        "only an authenticated prefix"
    );
}

/// Regression (`kekctl history --json | true` panicked with exit 101): a
/// reader that goes away is not an error.
#[tokio::test(flavor = "multi_thread")]
async fn kekctl_exits_quietly_when_its_reader_goes_away() {
    let (_moto, d) = daemon_with_key("kekd-rec-pipe").await;
    d.client().rotate().await.unwrap();
    // A pipe whose reading end is already closed: every write fails EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["history", "--json"])
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Regression (kekctl put the recording header's key-pair id into the
/// unwrap URL unescaped): a header naming `kek-…/unwrap?x=#` is refused
/// before anything is asked of the daemon.
#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_header_id_never_reaches_the_daemon() {
    let (_moto, d) = daemon_with_key("kekd-rec-crafted").await;
    let id = d.wait_active().await.active_key_id.unwrap();
    let crafted_id = format!("{id}/unwrap?x=#");
    let mut h = b"KEKDREC\x01".to_vec();
    h.push(crafted_id.len() as u8);
    h.extend_from_slice(crafted_id.as_bytes());
    h.extend_from_slice(&[0, 1, 0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    let f = d.dir.path().join("crafted.kekdrec");
    std::fs::write(&f, &h).unwrap();
    let audit = std::path::PathBuf::from(d.client().status().await.unwrap().audit.path);
    let before = std::fs::read_to_string(&audit).unwrap();
    let (code, _, err) = d.kekctl(&["open", f.to_str().unwrap(), "-"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not kek- and 16 hex digits"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&audit).unwrap(),
        before,
        "no request was made"
    );
}

/// The two programs in docs/integration.md, extracted from the page as a
/// reader would copy them: the sealer seals with the key from the JWK Set,
/// the opener opens through unwrap, and each agrees with kekctl; the opener
/// refuses an altered recording and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_integration_guides_sealer_and_opener_work_against_kekd() {
    let guide = include_str!("../docs/integration.md");
    let program = |name: &str| -> String {
        guide
            .split("```python\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.starts_with(&format!("# {name} ")))
            .unwrap_or_else(|| panic!("docs/integration.md has no {name}"))
            .to_string()
    };
    let mut d = TestDaemon::launch_local(|dir| {
        format!(
            "organization_id = \"acme\"\nkey_bits = 2048\ncadence = \"never\"\n\
             state_dir = \"{s}\"\nsocket_path = \"{s}/kekd.sock\"\n\
             [provider]\ntype = \"local\"\nroot_key_path = \"{s}/root.key\"\n",
            s = dir.display()
        )
    });
    d.spawn();
    d.wait_active().await;
    let dir = d.dir.path().to_path_buf();
    std::fs::write(dir.join("seal.py"), program("seal.py")).unwrap();
    std::fs::write(dir.join("play.py"), program("play.py")).unwrap();
    // Three chunks and a bit: the last-chunk flag is exercised.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("in.raw"), &data).unwrap();
    let py = |args: &[&str]| {
        let out = std::process::Command::new(moto_python())
            .current_dir(&dir)
            .env(
                "PYTHONPATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"),
            )
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let sock = d.socket.to_str().unwrap().to_string();

    let (code, out) = py(&["seal.py", &sock, "in.raw", "a.kekdrec"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = d.kekctl(&[
        "open",
        dir.join("a.kekdrec").to_str().unwrap(),
        dir.join("a.out").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "kekctl opens what the guide's sealer made: {err}");
    assert_eq!(std::fs::read(dir.join("a.out")).unwrap(), data);

    let (code, _, err) = d.kekctl(&[
        "seal",
        dir.join("in.raw").to_str().unwrap(),
        dir.join("b.kekdrec").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out) = py(&["play.py", &sock, "b.kekdrec", "b.out"]);
    assert_eq!(
        code,
        Some(0),
        "the guide's opener opens what kekctl sealed: {out}"
    );
    assert_eq!(std::fs::read(dir.join("b.out")).unwrap(), data);

    let mut altered = std::fs::read(dir.join("a.kekdrec")).unwrap();
    let at = altered.len() - 100;
    altered[at] ^= 1;
    std::fs::write(dir.join("c.kekdrec"), &altered).unwrap();
    let (code, out) = py(&["play.py", &sock, "c.kekdrec", "c.out"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("failed authentication"), "{out}");
    assert!(
        !dir.join("c.out").exists(),
        "nothing written for an altered recording"
    );

    // The same programs once the organization has moved to hybrid key
    // pairs: the sealer writes format 2, both openers open it, and the
    // RSA recording sealed before still opens.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace("key_bits = 2048", "key_type = \"x25519-mlkem768\""),
    )
    .unwrap();
    let reloaded = d.client().reload().await;
    if kekd::fips::FIPS_BUILD {
        // The FIPS build offers only RSA: the switch is refused, named,
        // and the running configuration stays.
        let e = reloaded.unwrap_err().to_string();
        assert!(
            e.contains("key_type") && e.contains("not available in the FIPS build"),
            "{e}"
        );
        return;
    }
    reloaded.unwrap();
    let hybrid = d.client().rotate().await.unwrap();
    assert_eq!(hybrid.key_type, Some(kekd::domain::KeyType::X25519MlKem768));
    let (code, out) = py(&["seal.py", &sock, "in.raw", "h.kekdrec"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&hybrid.id), "{out}");
    let sealed = std::fs::read(dir.join("h.kekdrec")).unwrap();
    assert_eq!(&sealed[..9], b"KEKDREC\x02\x01");
    for rec in ["h.kekdrec", "a.kekdrec"] {
        let out = dir.join(format!("{rec}.kekctl"));
        let (code, _, err) = d.kekctl(&[
            "open",
            dir.join(rec).to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{rec}: {err}");
        assert_eq!(std::fs::read(&out).unwrap(), data, "{rec}");
    }
    let (code, _, err) = d.kekctl(&[
        "seal",
        dir.join("in.raw").to_str().unwrap(),
        dir.join("hk.kekdrec").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out) = py(&["play.py", &sock, "hk.kekdrec", "hk.out"]);
    assert_eq!(code, Some(0), "the guide's opener opens format 2: {out}");
    assert_eq!(std::fs::read(dir.join("hk.out")).unwrap(), data);
}

/// Regression: `kekctl open` linked the finished plaintext under a hidden
/// staging name and then renamed it, so a SIGKILL between the two left the
/// whole recording, decrypted, as `.OUT.kekctl-PID`. Traced: the output is
/// named by one `linkat` straight to its final name, and nothing is renamed
/// (also when it replaces an existing file).
#[tokio::test(flavor = "multi_thread")]
async fn open_names_its_output_once_and_never_through_a_staging_name() {
    let (_moto, d) = daemon_with_key("kekd-rec-link").await;
    let data = audio(200_000);
    let sealed = seal_file(&d, &data);
    let out = d.dir.path().join("call.out");
    for round in ["new", "replacing"] {
        let trace = d.dir.path().join(format!("trace-{round}"));
        let (code, _, err) = run(std::process::Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=linkat,rename,renameat,renameat2",
                "-o",
            ])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_kekctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["open", sealed.to_str().unwrap(), out.to_str().unwrap()]));
        assert_eq!(code, 0, "{round}: {err}");
        assert_eq!(std::fs::read(&out).unwrap(), data, "{round}");
        let calls = std::fs::read_to_string(&trace).unwrap();
        let links: Vec<&str> = calls.lines().filter(|l| l.contains("linkat(")).collect();
        assert!(
            !links.is_empty() && links.iter().all(|l| l.contains(out.to_str().unwrap())),
            "{round}: linked straight to the output's name:\n{calls}"
        );
        assert!(
            !calls.contains("rename"),
            "{round}: nothing renamed:\n{calls}"
        );
        assert!(
            !calls.contains(".kekctl-"),
            "{round}: no staging name:\n{calls}"
        );
    }
}

/// The hybrid KEM against an independent implementation (the Python
/// reference on kyber-py and `cryptography`), both ways: Python
/// encapsulates to kekd's public key and kekd decapsulates; kekd
/// encapsulates and Python decapsulates with kekd's private key; and a key
/// pair Python made is read and used by kekd.
#[test]
fn the_hybrid_kem_interoperates_with_an_independent_implementation() {
    use kekd::hybrid::{encapsulate, HybridPrivateKey};
    let xwing = |args: &[&str]| -> Vec<Vec<u8>> {
        let out = std::process::Command::new(moto_python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/xwing.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xwing.py {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| hex::decode(l.trim()).unwrap())
            .collect()
    };
    let ours = HybridPrivateKey::generate().unwrap();
    let sk = hex::encode(&*ours.to_bytes().unwrap());
    let pk = hex::encode(ours.public_key());

    // Python → kekd.
    let e = xwing(&["encaps", &pk]);
    assert_eq!(ours.decapsulate(&e[0]).unwrap().to_vec(), e[1]);
    // kekd → Python.
    let (ct, ss) = encapsulate(ours.public_key()).unwrap();
    let d = xwing(&["decaps", &sk, &hex::encode(&ct)]);
    assert_eq!(d[0], ss.to_vec());
    // A key pair made by Python, used by kekd.
    let kp = xwing(&["keygen"]);
    let theirs = HybridPrivateKey::from_bytes(&kp[0]).unwrap();
    assert_eq!(theirs.public_key(), kp[1]);
    let (ct, ss) = encapsulate(&kp[1]).unwrap();
    let d = xwing(&["decaps", &hex::encode(&kp[0]), &hex::encode(&ct)]);
    assert_eq!(d[0], ss.to_vec());

    // A version 2 recording sealed by kekd opens in the Python reference
    // opener, as does the committed vector (which Python sealed).
    let dir = tempfile::tempdir().unwrap();
    let data = audio(2 * 65536 + 99);
    let mut sealed = Vec::new();
    kekd::recording::seal_hybrid(
        &mut &data[..],
        &mut sealed,
        "kek-00112233445566aa",
        ours.public_key(),
        |_| {},
    )
    .unwrap();
    std::fs::write(dir.path().join("r.kekdrec"), &sealed).unwrap();
    std::fs::write(dir.path().join("private.hex"), &sk).unwrap();
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    for (key, rec, want) in [
        (
            dir.path().join("private.hex"),
            dir.path().join("r.kekdrec"),
            data.clone(),
        ),
        (
            format!("{vectors}/xwing/private.hex").into(),
            format!("{vectors}/recording-v2/sealed.kekdrec").into(),
            (0..200_000usize)
                .map(|i| ((31 * i + i / 7) % 251) as u8)
                .collect(),
        ),
    ] {
        let out = dir.path().join("out.raw");
        let r = std::process::Command::new(moto_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/open-recording.py"
            ))
            .args([key.as_path(), rec.as_path(), out.as_path()])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(std::fs::read(&out).unwrap(), want, "{}", rec.display());
    }
}
