//! The typed client of the API, over the Unix socket: what `kekctl`, the
//! integration tests and the benchmarks use, so none of them spells a path
//! or a JSON field by hand.

mod orgs;
pub use orgs::StatusAnswer;

use super::paths;
use super::views::*;
use super::{ErrorBody, ErrorCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens on the socket (daemon not running, wrong path).
    #[error("cannot reach kekd at {path}: {source} (is the daemon running? use --socket or KEKD_SOCKET to point at its socket)")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something other than a socket is at the path.
    #[error(
        "{path} is {what}, not a socket: point --socket (or KEKD_SOCKET) at kekd's socket_path"
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What is there instead.
        what: &'static str,
    },
    /// The socket exists but we may not connect.
    #[error("permission denied on {path}: ask for membership in the socket's group, or run as a user kekd allows")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// The daemon answered with an API error.
    #[error("kekd: {message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// API error code.
        code: ErrorCode,
        /// Message.
        message: String,
    },
    /// The daemon accepted the connection but did not answer in time.
    #[error("kekd at {path} did not answer within {}; it may be overloaded or stuck (use --timeout to wait longer)", humantime::format_duration(*.after))]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// How long we waited.
        after: Duration,
    },
    /// The exchange itself failed.
    #[error("talking to kekd: {0}")]
    Protocol(String),
}

/// How long a client waits for an answer (and, on a stream, for each next
/// piece of it) unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A client bound to one socket path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    /// The organization per-organization calls are about (`None`: the
    /// unprefixed paths, which name the only one).
    org: Option<String>,
}

impl Client {
    /// A client for the daemon at `socket`, waiting at most
    /// [`DEFAULT_TIMEOUT`] for an answer.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
            org: None,
        }
    }

    /// The same client, its per-organization calls about `org`
    /// (`/v1/orgs/{org}/…`).
    pub fn with_org(mut self, org: Option<String>) -> Client {
        self.org = org;
        self
    }

    /// `path` as this client sends it: a per-organization path under
    /// `/v1/orgs/{org}` when the client names an organization; the
    /// daemon-wide ones (organizations, reload, audit, metrics) as they
    /// are.
    fn scoped(&self, path: &str) -> String {
        let daemonwide = [
            paths::ORGS,
            paths::RELOAD,
            paths::AUDIT_ROTATE,
            paths::METRICS,
        ]
        .iter()
        .any(|p| {
            path == *p || path.starts_with(&format!("{p}/")) || path.starts_with(&format!("{p}?"))
        });
        if daemonwide {
            path.to_string()
        } else {
            paths::for_org(self.org.as_deref(), path)
        }
    }

    /// The same client, waiting at most `timeout` for an answer — never
    /// for ever.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Bounds `fut` by the client's timeout.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                path: self.socket.clone(),
                after: self.timeout,
            })?
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.call(Method::GET, paths::STATUS, None).await
    }

    /// `GET /v1/keypairs`: one page of the history, newest first.
    pub async fn history(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<KeyPairList, ClientError> {
        self.call(Method::GET, &paths::keypairs(limit, cursor), None)
            .await
    }

    /// `GET /v1/keypairs/{id}`.
    pub async fn keypair(&self, id: &str) -> Result<KeyPairView, ClientError> {
        self.call(Method::GET, &paths::keypair(id), None).await
    }

    /// `GET /v1/keypairs/{id}/envelope` (role `edit`).
    pub async fn envelope(&self, id: &str) -> Result<ExportView, ClientError> {
        self.call(Method::GET, &paths::envelope(id), None).await
    }

    /// `GET /v1/public-key`.
    pub async fn public_key(&self) -> Result<PublicKeyView, ClientError> {
        let path = format!("{}?key_types=rsa,x25519-mlkem768", paths::PUBLIC_KEY);
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v1/rotate`: Change Key Now, answered with the new key pair.
    pub async fn rotate(&self) -> Result<KeyPairView, ClientError> {
        self.call(Method::POST, paths::ROTATE, None).await
    }

    /// `POST /v1/test`: the Test round trip with the running KMS key.
    pub async fn test(&self) -> Result<TestReport, ClientError> {
        self.call(Method::POST, paths::TEST, None).await
    }

    /// `POST /v1/reload`.
    pub async fn reload(&self) -> Result<ReloadOutcome, ClientError> {
        self.call(Method::POST, paths::RELOAD, None).await
    }

    /// `POST /v1/audit/rotate`: a new audit file continuing the chain.
    pub async fn audit_rotate(&self) -> Result<crate::audit::Rotated, ClientError> {
        self.call(Method::POST, paths::AUDIT_ROTATE, None).await
    }

    /// `GET /v1/audit`: a page of the organization's audit records (after
    /// `cursor`, from `since` on).
    pub async fn audit(
        &self,
        limit: usize,
        cursor: Option<&str>,
        since: Option<&crate::time::Timestamp>,
    ) -> Result<crate::audit::AuditPage, ClientError> {
        self.call(Method::GET, &paths::audit(limit, cursor, since), None)
            .await
    }

    /// `POST /v1/check`: the decryptability canary, now.
    pub async fn check(&self) -> Result<CanaryReport, ClientError> {
        self.call(Method::POST, paths::CHECK, None).await
    }

    /// `POST /v1/keypairs/{id}/unwrap` (role `decrypt`).
    pub async fn unwrap(&self, id: &str, wrapped_key: &[u8]) -> Result<UnwrapView, ClientError> {
        let body = serde_json::to_vec(&UnwrapRequest {
            wrapped_key: wrapped_key.to_vec(),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call(Method::POST, &paths::unwrap(id), Some(body))
            .await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, body) = self.raw(Method::GET, paths::METRICS).await?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /v1/rewrap`, handing each progress event to `on_event` as it
    /// arrives.
    pub async fn rewrap(&self, mut on_event: impl FnMut(RewrapEvent)) -> Result<(), ClientError> {
        self.stream_lines(
            Method::POST,
            paths::REWRAP,
            |line| match serde_json::from_str::<RewrapEvent>(line) {
                Ok(e) => {
                    on_event(e);
                    Ok(())
                }
                Err(e) => Err(ClientError::Protocol(format!(
                    "unexpected rewrap progress line: {e}"
                ))),
            },
        )
        .await
    }

    /// Sends any request (bad-input tests, tools); returns status and body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.exchange(method, path, Vec::new()).await
    }

    /// The JWK Set of the active and recently retired public keys, with its
    /// ETag and Cache-Control. With `etag` (from an earlier answer), `None`
    /// when the set is unchanged (304).
    pub async fn public_keys(&self, etag: Option<&str>) -> Result<Option<Jwks>, ClientError> {
        self.bounded(async {
            let resp = self
                .send_with(Method::GET, paths::PUBLIC_KEYS, Vec::new(), etag)
                .await?;
            let status = resp.status();
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let (tag, cache_control) = (
                header(hyper::header::ETAG),
                header(hyper::header::CACHE_CONTROL),
            );
            let body = read_body(resp).await?;
            if status == StatusCode::NOT_MODIFIED {
                return Ok(None);
            }
            let set = decode(status, &body)?;
            Ok(Some(Jwks {
                set,
                etag: tag,
                cache_control,
            }))
        })
        .await
    }

    /// Sends any request with a body; returns status and body.
    pub async fn raw_with_body(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.exchange(method, path, body).await
    }

    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, body) = self
            .exchange(method, path, body.unwrap_or_default())
            .await?;
        decode(status, &body)
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.bounded(async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            Ok((status, read_body(resp).await?))
        })
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.send_with(method, path, body, None).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        if_none_match: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| {
                if let Some(what) = not_a_socket(&self.socket) {
                    ClientError::NotASocket {
                        path: self.socket.clone(),
                        what,
                    }
                } else if source.kind() == std::io::ErrorKind::PermissionDenied {
                    ClientError::PermissionDenied {
                        path: self.socket.clone(),
                    }
                } else {
                    ClientError::NotRunning {
                        path: self.socket.clone(),
                        source,
                    }
                }
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(self.scoped(path))
            .header(hyper::header::HOST, "kekd")
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(tag) = if_none_match {
            req = req.header(hyper::header::IF_NONE_MATCH, tag);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends a request whose answer is JSON lines and hands each line to
    /// `on_line` as it arrives (long operations with progress).
    async fn stream_lines(
        &self,
        method: Method,
        path: &str,
        mut on_line: impl FnMut(&str) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let resp = self.bounded(self.send(method, path, Vec::new())).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = self
                .bounded(async {
                    body.collect()
                        .await
                        .map_err(|e| ClientError::Protocol(e.to_string()))
                })
                .await?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        let mut buf: Vec<u8> = Vec::new();
        // Each next piece of a stream within the timeout: a long operation
        // that reports progress is never cut short.
        while let Some(frame) = self.bounded(async { Ok(body.frame().await) }).await? {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    on_line(String::from_utf8_lossy(&line).trim_end())?;
                }
            }
        }
        Ok(())
    }
}

/// What is at `path` if it exists and is not a socket.
fn not_a_socket(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_socket() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_file() {
        Some("a regular file")
    } else {
        Some("neither a file nor a socket")
    }
}

/// An error answer (`{"error": {"code", "message"}}`) as a [`ClientError`].
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: ErrorCode::Unknown,
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

/// A success body as `T`, or the error body as [`ClientError::Api`].
fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, body));
    }
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("unexpected answer: {e}")))
}

/// The whole body of an answer.
async fn read_body(resp: hyper::Response<hyper::body::Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .to_bytes())
}

/// A JWK Set as served: the set, its strong ETag, its Cache-Control.
#[derive(Debug, Clone)]
pub struct Jwks {
    /// The keys.
    pub set: crate::jwks::JwkSet,
    /// The strong ETag (quoted).
    pub etag: String,
    /// `max-age=…`.
    pub cache_control: String,
}
