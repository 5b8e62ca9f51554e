//! The real `kekd` binary as a [`TestDaemon`]: its own directory, config,
//! log and socket, started against moto (or a fault proxy in front of it).

use super::moto::{Moto, REGION};
use super::{run, wait_for};
use kekd::api::client::Client;
use kekd::api::views::{KeyPairList, StatusView};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// moto with a fresh KMS key `alias/{alias}`, and a daemon using it with the
/// test config: the start of most tests.
pub async fn daemon_with_key(alias: &str) -> (Moto, TestDaemon) {
    let moto = Moto::start().await;
    let (_, alias_arn) = moto.create_key(alias).await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias_arn, "")).await;
    (moto, d)
}

/// Which store a test daemon keeps its history in: the tests that make
/// sense for any store run on both (see [`on_both_stores!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The redb file in the state directory.
    Redb,
    /// A DynamoDB table on moto, created for this daemon (a fleet of one).
    DynamoDb,
}

impl Backend {
    /// [`kms_config`] for this store; for DynamoDB, creates the table (named
    /// after `dir`) on `moto` first.
    pub fn config(self, moto: &Moto, dir: &Path, kms_key_arn: &str, extra: &str) -> String {
        match self {
            Backend::Redb => kms_config(dir, kms_key_arn, extra),
            Backend::DynamoDb => {
                let table = format!(
                    "kekd-{}",
                    dir.file_name().unwrap().to_string_lossy().replace('.', "")
                );
                super::fleet::create_table(moto, &table);
                kms_config(
                    dir,
                    kms_key_arn,
                    &format!("{extra}\n{}", super::fleet::store_section(&table)),
                )
            }
        }
    }
}

/// Defines a test twice, on the redb store and on a DynamoDB table:
/// `on_both_stores! { #[tokio::test(...)] async fn name(store: Backend) { … } }`
/// makes `name::redb` and `name::dynamodb`.
#[macro_export]
macro_rules! on_both_stores {
    ($(#[$m:meta])* async fn $name:ident($b:ident: Backend) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($b: $crate::harness::Backend) $body
            $(#[$m])*
            async fn redb() {
                body($crate::harness::Backend::Redb).await
            }
            $(#[$m])*
            async fn dynamodb() {
                body($crate::harness::Backend::DynamoDb).await
            }
        }
    };
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

/// `extra` for [`kms_config`]: a revocation bound of 3 s. A revocation
/// (access denied, disabled, not found) is re-checked, and its rotation
/// retried, at the probe's pace — minutes with the default bound.
pub const SHORT_REVOCATION_BOUND: &str = "[customer_keys]\nnotice_revocation_within = \"3s\"\n\
     [overrides]\nallow_frequent_checks = true\n";

/// A config for the local provider (no KMS): RSA-2048, no schedule, every
/// file under `dir`.
pub fn local_config(dir: &Path) -> String {
    format!(
        "organization_id = \"acme\"\nkey_bits = 2048\ncadence = \"never\"\n\
         state_dir = \"{s}/state\"\nsocket_path = \"{s}/kekd.sock\"\n\
         [provider]\ntype = \"local\"\nroot_key_path = \"{s}/root.key\"\n",
        s = dir.display()
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
    /// Where a `dynamodb` store is (moto, for a daemon launched with moto).
    pub dynamodb_endpoint: Option<String>,
    /// Extra environment for the next spawn.
    pub env: Vec<(String, String)>,
    /// Write the daemon's stderr straight into the log file (subject to
    /// the daemon's own file limits) instead of through a pipe.
    pub log_direct: bool,
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
        let mut d = TestDaemon::launch_only(moto, make_config);
        d.spawn();
        d
    }

    /// Writes the config for a daemon against moto; starts nothing (set
    /// options, then [`TestDaemon::spawn`]).
    pub fn launch_only(moto: &Moto, make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        TestDaemon::launch_with(Some(moto.endpoint.clone()), make_config)
    }

    /// Writes the config for a daemon with KMS at `endpoint` (a
    /// [`FaultProxy`]); starts nothing.
    pub fn launch_via(endpoint: &str, make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        TestDaemon::launch_with(Some(endpoint.to_string()), make_config)
    }

    /// Writes the config for a daemon that needs no KMS (the local
    /// provider); starts nothing.
    pub fn launch_local(make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        TestDaemon::launch_with(None, make_config)
    }

    /// Starts kekd with the local provider (no moto) and waits until it
    /// serves an active key pair.
    pub async fn start_local(make_config: impl FnOnce(&Path) -> String) -> TestDaemon {
        let mut d = TestDaemon::launch_local(make_config);
        d.spawn();
        d.wait_active().await;
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
            dynamodb_endpoint: endpoint.clone(),
            endpoint,
            env: Vec::new(),
            log_direct: false,
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
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kekd"));
        cmd.arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            // Through a pipe, copied by a thread of the test: the daemon's
            // own file limits (limit_file_size) must not cut its log.
            .stderr(if self.log_direct {
                Stdio::from(log.try_clone().unwrap())
            } else {
                Stdio::piped()
            })
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
            // moto serves STS beside KMS (an assumed customer role).
            cmd.env("AWS_ENDPOINT_URL_KMS", e);
            cmd.env("AWS_ENDPOINT_URL_STS", e);
        }
        if let Some(e) = &self.dynamodb_endpoint {
            cmd.env("AWS_ENDPOINT_URL_DYNAMODB", e);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn kekd");
        if let Some(mut stderr) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut log));
        }
        self.child = Some(child);
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
        // The organization the config declares: with several organizations
        // the unprefixed status is the daemon summary.
        let org = std::fs::read_to_string(&self.config)
            .ok()
            .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
            .and_then(|v| v.get("organization_id")?.as_str().map(str::to_string));
        let c = self.client().with_org(org);
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

    /// Limits the size of every file the daemon writes (`RLIMIT_FSIZE`, soft
    /// limit) — a write past it fails part-way, as on a full disk — or
    /// lifts the limit with `None`.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let limit = match bytes {
            Some(n) => format!("--fsize={n}:unlimited"),
            None => "--fsize=unlimited:unlimited".to_string(),
        };
        let (code, _, err) = run(Command::new("prlimit")
            .arg("--pid")
            .arg(self.pid().to_string())
            .arg(limit));
        assert_eq!(code, 0, "prlimit (util-linux) failed: {err}");
    }

    /// Sets the daemon's open-file limit (`RLIMIT_NOFILE`), as systemd's
    /// default of 1,024 would.
    pub fn limit_open_files(&self, n: u64) {
        let (code, _, err) = run(Command::new("prlimit")
            .arg("--pid")
            .arg(self.pid().to_string())
            .arg(format!("--nofile={n}:{n}")));
        assert_eq!(code, 0, "prlimit (util-linux) failed: {err}");
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

    /// The ids of the whole history, newest first.
    pub async fn history_ids(&self) -> Vec<String> {
        self.history()
            .await
            .keypairs
            .into_iter()
            .map(|k| k.id)
            .collect()
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("state/kekd.redb")
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the log ends now: [`TestDaemon::wait_log`] looks after it.
    pub fn log_mark(&self) -> usize {
        self.log_text().len()
    }

    /// Waits until the daemon logs `needle` after `mark`.
    pub async fn wait_log(&self, mark: usize, needle: &str) {
        wait_for(Duration::from_secs(60), needle, || async {
            let text = self.log_text();
            text.get(mark..)
                .is_some_and(|t| t.contains(needle))
                .then_some(())
        })
        .await
    }

    /// Waits until the rotation engine has nothing to do before the next
    /// due instant (no catch-up, no retry pending), as logged after `mark`.
    pub async fn wait_engine_idle(&self, mark: usize) {
        self.wait_log(mark, "rotation engine waiting for the next rotation")
            .await
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

/// Runs `kekctl --socket SOCKET ARGS` into a pipe, whatever `COLUMNS` the
/// tests run with, so tables are whole.
pub fn kekctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .env_remove("COLUMNS")
        .arg("--socket")
        .arg(socket)
        .args(args))
}

/// Runs `kekd ARGS` to completion.
pub fn kekd(args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_kekd")).args(args))
}
