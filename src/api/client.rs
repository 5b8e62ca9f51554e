//! A small HTTP/1.1 client over the Unix socket, for `kekctl` and the tests.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

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
        code: String,
        /// Message.
        message: String,
    },
    /// The exchange itself failed.
    #[error("talking to kekd: {0}")]
    Protocol(String),
}

/// A client bound to one socket path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends a request; returns status and body of any answer.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.exchange(method, path, Vec::new()).await
    }

    /// Sends `body`; returns status and body of any answer.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::PermissionDenied {
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
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "kekd")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Sends a request whose answer is JSON lines and hands each line to
    /// `on_line` as it arrives (long operations with progress). An error
    /// status is returned as [`ClientError::Api`].
    pub async fn stream_lines(
        &self,
        method: Method,
        path: &str,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let resp = self.send(method, path, Vec::new()).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .to_bytes();
            return Err(api_error(status, &bytes));
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    on_line(String::from_utf8_lossy(&line).trim_end());
                }
            }
        }
        Ok(())
    }

    /// Sends a request and decodes a success body as `T`, or the error body
    /// as [`ClientError::Api`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ClientError> {
        let (status, body) = self.raw(method, path).await?;
        decode(status, &body)
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (status, body) = self.exchange(Method::POST, path, bytes).await?;
        decode(status, &body)
    }

    /// `POST path` with an empty body.
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::POST, path).await
    }
}

/// An error answer (`{"error": {"code", "message"}}`) as a [`ClientError`].
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let err = &v["error"];
    ClientError::Api {
        status: status.as_u16(),
        code: err["code"].as_str().unwrap_or("unknown").to_string(),
        message: err["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
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
