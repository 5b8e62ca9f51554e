//! moto's KMS server on a loopback port it picks itself, and the environment that
//! points a command at it.

use super::wait_for;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// How to get moto, said wherever it is missing.
const INSTALL_MOTO: &str = "moto_server not found. Run the tests with scripts/test (it installs moto[server]==5.2.5 and kyber-py==1.2.0 into .venv-moto), \
     or install it yourself: python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]==5.2.5' 'kyber-py==1.2.0' \
     (or point KEKD_MOTO_SERVER at a moto_server executable)";

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

/// moto_server, with every call into its DynamoDB backend made one at a
/// time. moto serves each request on a thread of its own, and its
/// `TransactWriteItems` applies the items one by one and, when one fails,
/// puts back a copy of the whole table taken at its start: a write another
/// thread committed meanwhile is lost, and a read meanwhile sees items that
/// are then rolled back. DynamoDB does neither; with several members
/// rotating several organizations in one table (the chaos soak) the
/// difference shows as a key pair activated and then found pending.
const ATOMIC_DYNAMODB: &str = r#"
import functools, inspect, sys, threading
from moto.dynamodb.models import DynamoDBBackend
lock = threading.RLock()
def one_at_a_time(fn):
    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with lock:
            return fn(*args, **kwargs)
    return locked
for name, fn in list(vars(DynamoDBBackend).items()):
    if inspect.isfunction(fn) and not name.startswith("_"):
        setattr(DynamoDBBackend, name, one_at_a_time(fn))
from moto.server import main
sys.exit(main())
"#;

/// A moto KMS server, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a port it picks itself (`-p 0`), so two tests never
    /// share one: the port is read from moto's own "Running on" line,
    /// which also proves that this child, not another process, listens.
    pub async fn start() -> Moto {
        Moto::start_on(0).await
    }

    /// Starts moto on `port` (0: any free one; or the same port again,
    /// after [`Moto::stop`]); it starts with no keys. Waits for the child's
    /// own "Running on" line and fails at once, with what moto said, if the
    /// child exits instead (its port taken, say).
    pub async fn start_on(port: u16) -> Moto {
        use std::io::BufRead;
        let exe = moto_server_exe();
        let mut child = Command::new(moto_python())
            .args([
                "-c",
                ATOMIC_DYNAMODB,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_MOTO} ({}: {e})", exe.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        // Reads the port, then keeps draining: moto logs every request to
        // stderr, and a full pipe would stall it.
        std::thread::spawn(move || {
            let mut said = String::new();
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &tx {
                    let found = line
                        .split("Running on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|rest| rest.trim().parse::<u16>().ok());
                    match found {
                        Some(p) => {
                            let _ = tx.send(Ok(p));
                        }
                        None => {
                            said.push_str(&line);
                            said.push('\n');
                            continue;
                        }
                    }
                }
                tx = None;
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(said));
            }
        });
        let bound = wait_for(Duration::from_secs(60), "moto_server to listen", || {
            let got = rx.try_recv().ok();
            async move { got }
        })
        .await;
        let port = match bound {
            Ok(p) => p,
            Err(said) => {
                let status = child.wait().ok();
                panic!("moto_server exited before listening ({status:?}): {said}")
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        Moto { child, endpoint }
    }

    /// The SDK configuration of a customer's own tooling pointed at moto:
    /// test credentials, the test region.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "kekd-tests",
            )))
            .build()
    }

    /// A KMS client for moto.
    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk_config())
    }

    /// A KMS client for moto's KMS in another region (moto keeps keys per
    /// region, as KMS does).
    pub fn kms_in(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.sdk_config())
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// Creates a symmetric key with `alias/{alias}`; returns (key ARN, alias ARN).
    pub async fn create_key(&self, alias: &str) -> (String, String) {
        self.create_key_in(REGION, alias).await
    }

    /// [`Moto::create_key`] in `region`.
    pub async fn create_key_in(&self, region: &str, alias: &str) -> (String, String) {
        let (arn, _) = Self::create_key_with(&self.kms_in(region), alias).await;
        (
            arn,
            format!("arn:aws:kms:{region}:123456789012:alias/{alias}"),
        )
    }

    /// Credentials of a customer's role `role_arn`, as moto's STS gives
    /// them: a KMS key made with them lives in the role's account.
    pub async fn assumed(&self, role_arn: &str) -> Credentials {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config());
        let out = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name("customer-admin")
            .send()
            .await
            .expect("moto AssumeRole");
        let c = out.credentials().unwrap();
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "customer-admin",
        )
    }

    /// A KMS client of the account `credentials` belong to.
    pub fn kms_as(&self, credentials: Credentials) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.sdk_config())
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// A key with `alias/{alias}` made by `kms`: (key ARN, alias ARN).
    pub async fn create_key_with(kms: &aws_sdk_kms::Client, alias: &str) -> (String, String) {
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
        let arn = meta.arn().unwrap().to_string();
        let alias_arn = format!("{}:alias/{alias}", arn.rsplit_once(":key/").unwrap().0);
        (arn, alias_arn)
    }
}

impl Moto {
    /// Disables or enables the key `key_arn` (moto reports the state in
    /// DescribeKey; it does not refuse a disabled key's use).
    pub async fn set_key_enabled(&self, key_arn: &str, enabled: bool) {
        let key_id = key_arn.rsplit('/').next().unwrap();
        let kms = self.kms();
        if enabled {
            kms.enable_key().key_id(key_id).send().await.unwrap();
        } else {
            kms.disable_key().key_id(key_id).send().await.unwrap();
        }
    }

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
