//! Binding the API socket and serving it until shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another process answers on the socket.
    #[error("socket {0}: another kekd is already listening there; stop it or choose another socket_path")]
    InUse(PathBuf),
    /// Filesystem trouble.
    #[error("socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Who is on the other end of a connection (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// User id.
    pub(crate) uid: u32,
    /// Primary group id.
    pub(crate) gid: u32,
    /// Process id, if the kernel told.
    pub(crate) pid: Option<i32>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, UnixListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            // No credentials: treat as nobody, who holds no role.
            Err(_) => Peer {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
            },
        }
    }
}

/// Binds `path` with mode 0660. A stale socket file (nobody listening) is
/// replaced; a live one is refused, so two daemons never share a socket.
pub(crate) async fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, BindError> {
    let io = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    set_group(path, group).map_err(io)?;
    Ok(listener)
}

/// Gives the socket to `group` (the `[access] socket_group`), if set.
pub(crate) fn set_group(path: &Path, group: Option<u32>) -> std::io::Result<()> {
    match group {
        Some(gid) => std::os::unix::fs::chown(path, None, Some(gid)),
        None => Ok(()),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub(crate) async fn serve(
    listener: UnixListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
