//! The integration-test harness: moto's KMS server on a free loopback port,
//! the real `kekd` binary as a [`TestDaemon`], and an independent decryptor
//! of exported envelopes (written from the README's format description, not
//! from kekd's code, so the spec is tested too).

#![allow(dead_code)] // each test module uses its own part of the harness

pub mod fault_proxy;
#[allow(unused_imports)] // benches/rotation.rs includes the harness but injects no faults
pub use fault_proxy::{Fault, FaultProxy};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kekd::api::client::Client;
use kekd::api::views::{ExportView, KeyPairList, StatusView};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// How to get moto, said wherever it is missing.
const INSTALL_MOTO: &str = "moto_server not found. Run the tests with scripts/test (it installs moto[server]==5.2.5 into .venv-moto), \
     or install it yourself: python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]==5.2.5' \
     (or point KEKD_MOTO_SERVER at a moto_server executable)";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout`
/// with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The moto_server executable: `KEKD_MOTO_SERVER`, else `.venv-moto/`, else PATH.
fn moto_server_exe() -> PathBuf {
    std::env::var_os("KEKD_MOTO_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/moto_server");
            venv.exists().then_some(venv)
        })
        .unwrap_or_else(|| PathBuf::from("moto_server"))
}

/// The Python beside moto (it has boto3 and cryptography).
pub fn moto_python() -> PathBuf {
    let exe = moto_server_exe();
    let py = exe
        .parent()
        .map(|d| d.join("python3"))
        .filter(|p| p.exists());
    py.unwrap_or_else(|| panic!("{INSTALL_MOTO} (no python3 beside {})", exe.display()))
}

/// A moto KMS server, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> Moto {
        Moto::start_on(free_port()).await
    }

    /// Starts moto on `port` (e.g. again, after [`Moto::stop`]); it starts
    /// with no keys.
    pub async fn start_on(port: u16) -> Moto {
        let exe = moto_server_exe();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_MOTO} ({}: {e})", exe.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { child, endpoint };
        wait_for(Duration::from_secs(30), "moto_server to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        moto
    }

    /// A KMS client for moto (what a customer's own tooling would use).
    pub fn kms(&self) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "kekd-tests",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// Creates a symmetric key with `alias/{alias}`; returns (key ARN, alias ARN).
    pub async fn create_key(&self, alias: &str) -> (String, String) {
        let kms = self.kms();
        // Explicit spec and usage: real KMS defaults to these, moto leaves
        // KeyUsage out of DescribeKey unless it was given.
        let key = kms
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
            .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            .send()
            .await
            .expect("moto CreateKey");
        let meta = key.key_metadata().unwrap();
        kms.create_alias()
            .alias_name(format!("alias/{alias}"))
            .target_key_id(meta.key_id())
            .send()
            .await
            .expect("moto CreateAlias");
        (
            meta.arn().unwrap().to_string(),
            format!("arn:aws:kms:{REGION}:123456789012:alias/{alias}"),
        )
    }
}

impl Moto {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stops the server: from now on its port refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for a daemon in `dir` using KMS key `kms_key_arn`.
pub fn kms_config(dir: &Path, kms_key_arn: &str, extra: &str) -> String {
    format!(
        r#"organization_id = "acme-test"
region = "{REGION}"
key_bits = 2048
cadence = "never"
state_dir = "{state}"
socket_path = "{sock}"
{extra}

[provider]
type = "aws-kms-symmetric"
kms_key_arn = "{kms_key_arn}"

[kms]
connect_timeout = "1s"
attempt_timeout = "2s"
operation_timeout = "5s"

[retry]
initial_delay = "200ms"
max_delay = "1s"
"#,
        state = dir.join("state").display(),
        sock = dir.join("kekd.sock").display(),
    )
}

/// The real `kekd` binary with its own directory, config and log.
pub struct TestDaemon {
    child: Option<Child>,
    /// Everything of this daemon lives here.
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub socket: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// stderr of every run of the daemon, appended.
    pub log: PathBuf,
    endpoint: Option<String>,
    /// Extra environment for the next spawn.
    pub env: Vec<(String, String)>,
}

impl TestDaemon {
    /// Writes `config` (made by `make_config(dir)`) and starts kekd against
    /// moto; returns once the daemon serves an active key.
    pub async fn start(moto: &Moto, make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        let d = TestDaemon::launch(moto, make_config);
        d.wait_active().await;
        d
    }

    /// Like [`TestDaemon::start`], with KMS at `endpoint` (e.g. a
    /// [`FaultProxy`] in front of moto).
    pub async fn start_via(
        endpoint: &str,
        make_config: impl FnOnce(&Path) -> String,
    ) -> TestDaemon {
        let mut d = TestDaemon::launch_with(None, make_config);
        d.endpoint = Some(endpoint.to_string());
        d.spawn();
        d.wait_active().await;
        d
    }

    /// Like [`TestDaemon::start`], but returns as soon as the socket answers,
    /// active key or not.
    pub async fn start_serving(
        moto: &Moto,
        make_config: impl FnOnce(&Path) -> String,
    ) -> TestDaemon {
        let d = TestDaemon::launch(moto, make_config);
        let c = d.client();
        wait_for(
            Duration::from_secs(30),
            "kekd to answer on its socket",
            || async { c.status().await.ok() },
        )
        .await;
        d
    }

    /// Starts kekd and returns once it either answers on its socket or has
    /// exited (start-up failure tests).
    pub async fn start_serving_or_exit(
        moto: &Moto,
        make_config: impl FnOnce(&Path) -> String,
    ) -> TestDaemon {
        let mut d = TestDaemon::launch(moto, make_config);
        let c = d.client();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if c.status().await.is_ok() {
                return d;
            }
            if d.child
                .as_mut()
                .expect("running")
                .try_wait()
                .unwrap()
                .is_some()
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("kekd neither served nor exited within 30 s");
    }

    fn launch(moto: &Moto, make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        let mut d = TestDaemon::launch_with(Some(moto.endpoint.clone()), make_config);
        d.spawn();
        d
    }

    /// Writes the config; does not start anything.
    fn launch_with(
        endpoint: Option<String>,
        make_config: impl FnOnce(&Path) -> String,
    ) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kekd.toml");
        let text = make_config(dir.path());
        std::fs::write(&config, &text).unwrap();
        // The socket the config names (tests may move it).
        let socket = toml::from_str::<toml::Value>(&text).unwrap()["socket_path"]
            .as_str()
            .map(PathBuf::from)
            .unwrap();
        let d = TestDaemon {
            child: None,
            socket,
            log: dir.path().join("kekd.log"),
            config,
            dir,
            endpoint,
            env: Vec::new(),
        };
        d
    }

    /// Points the next [`TestDaemon::spawn`] at another KMS endpoint.
    pub fn set_kms_endpoint(&mut self, endpoint: &str) {
        self.endpoint = Some(endpoint.to_string());
    }

    /// Starts the process (again), without waiting.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kekd"));
        cmd.arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "kekd=debug,info")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("JOURNAL_STREAM");
        if let Some(e) = &self.endpoint {
            cmd.env("AWS_ENDPOINT_URL_KMS", e);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(cmd.spawn().expect("spawn kekd"));
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// A client for the API.
    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// Waits until status shows an active key pair.
    pub async fn wait_active(&self) -> StatusView {
        let c = self.client();
        let log = self.log.clone();
        let start = Instant::now();
        loop {
            if let Ok(s) = c.status().await {
                if s.active_key_id.is_some() && !s.rotation_in_progress {
                    return s;
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!(
                    "kekd did not serve an active key within 60 s; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child we own; no memory is involved.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// SIGTERM, then waits for the exit (at most 30 s).
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit().await
    }

    /// kill -9, as a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for an exit already asked for (at most 30 s).
    pub async fn stop_wait(&mut self) -> ExitStatus {
        self.wait_exit().await
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.as_mut().expect("running").try_wait().unwrap() {
                self.child = None;
                return st;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("kekd did not exit within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops (SIGTERM) and starts again; waits for an active key.
    pub async fn restart(&mut self) -> StatusView {
        let st = self.stop().await;
        assert!(st.success(), "kekd exited with {st} on SIGTERM");
        self.spawn();
        self.wait_active().await
    }

    /// The full history.
    pub async fn history(&self) -> KeyPairList {
        self.client().history(1000, None).await.unwrap()
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("state/kekd.redb")
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `kekctl --socket … ARGS`; returns (exit code, stdout, stderr).
    pub fn kekctl(&self, args: &[&str]) -> (i32, String, String) {
        kekctl(&self.socket, args)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The environment that points a command at moto with test credentials, as
/// the daemon is (for kekctl --config, the Python scripts, a second kekd):
/// `Command::envs(moto_env(&moto))`.
pub fn moto_env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_KMS", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Runs a command to completion; returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `kekctl --socket SOCKET ARGS`.
pub fn kekctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(socket)
        .args(args))
}

/// Runs `kekd ARGS` to completion.
pub fn kekd(args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_kekd")).args(args))
}

/// The secrets behind one exported envelope, recovered the way a customer
/// would in a break-glass case: KMS `Decrypt` with the envelope's context,
/// then AES-256-GCM with the canonical context as associated data.
pub struct Recovered {
    /// The plaintext data key.
    pub data_key: Vec<u8>,
    /// The PKCS#8 DER private key.
    pub private_pkcs8: Vec<u8>,
}

/// The README's canonical context encoding, written independently of kekd.
pub fn canonical_context(ctx: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in ctx {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Decrypts an exported envelope through moto; panics if anything fails.
pub async fn recover(kms: &aws_sdk_kms::Client, export: &ExportView) -> Recovered {
    let json = serde_json::to_value(export).unwrap();
    let env = &json["envelope"];
    let ctx: std::collections::BTreeMap<String, String> =
        serde_json::from_value(env["encryption_context"].clone()).unwrap();
    let blob = B64
        .decode(env["encrypted_data_key"].as_str().unwrap())
        .unwrap();
    let out = kms
        .decrypt()
        .key_id(env["wrapping_key_arn"].as_str().unwrap())
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
        .set_encryption_context(Some(ctx.clone().into_iter().collect()))
        .send()
        .await
        .expect("KMS Decrypt of the exported data key");
    let data_key = out.plaintext().unwrap().as_ref().to_vec();
    let nonce: [u8; 12] = B64
        .decode(env["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut ct = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key).unwrap());
    let pt = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(canonical_context(&ctx)),
            &mut ct,
        )
        .expect("AES-GCM open of the exported private key")
        .to_vec();
    Recovered {
        data_key,
        private_pkcs8: pt,
    }
}

impl TestDaemon {
    /// Exports key pair `id`, decrypts its private key through `kms` and
    /// asserts it matches `public_key_pem`; returns the export.
    pub async fn assert_decrypts(
        &self,
        kms: &aws_sdk_kms::Client,
        id: &str,
        public_key_pem: &str,
    ) -> ExportView {
        let export: ExportView = self.client().envelope(id).await.unwrap();
        let secrets = recover(kms, &export).await;
        assert_eq!(
            public_der_of(&secrets.private_pkcs8),
            pem_der(public_key_pem),
            "{id} decrypts and matches"
        );
        export
    }
}

/// The SPKI DER public key of a PKCS#8 RSA private key.
pub fn public_der_of(private_pkcs8: &[u8]) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    let k =
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(private_pkcs8).expect("PKCS#8 RSA key");
    k.public_key().as_der().unwrap().as_ref().to_vec()
}

/// PEM → DER.
pub fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().contents().to_vec()
}
