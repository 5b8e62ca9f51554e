//! Binding the API socket and serving it until shutdown.
//!
//! The accept loop is kekd's own (not `axum::serve`) because a daemon that
//! serves any local user must bound what each can hold: a header-read
//! timeout that also closes idle keep-alive connections, connection caps
//! (`connections.rs`) below the descriptor limit, peer credentials read
//! once per connection (`peer.rs`), and a drain that lets in-flight
//! requests finish at shutdown.

use super::connections::{Connections, Limits, Slot};
use super::peer::Peer;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another process answers on the socket.
    #[error("socket {0}: another kekd is already listening there; stop it or choose another socket_path")]
    InUse(PathBuf),
    /// kekd may not give the socket to `[access] socket_group`: only a
    /// member of a group can chown a file to it.
    #[error("socket {path}: cannot give it to [access] socket_group (gid {gid}): kekd's user is not a member of that group; add SupplementaryGroups= with the group to the unit (systemctl edit kekd), or leave socket_group unset for kekd's own group")]
    NotInSocketGroup {
        /// The socket path.
        path: PathBuf,
        /// The group's id.
        gid: u32,
    },
    /// Something other than a socket is at the path.
    #[error("socket {0}: a file that is not a socket is there; kekd removes only a stale socket, never another file (move it away or choose another socket_path)")]
    NotASocket(PathBuf),
    /// Filesystem trouble.
    #[error("socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Binds `path` with mode 0660. A stale socket (nobody listening) is
/// replaced; a live one is refused, so two daemons never share a socket;
/// anything that is not a socket is never removed (the configuration
/// check refuses it too, but the file may have appeared since).
pub(crate) async fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::FileTypeExt;
    let io = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    set_group(path, group).map_err(|source| match (source.kind(), group) {
        (std::io::ErrorKind::PermissionDenied, Some(gid)) => BindError::NotInSocketGroup {
            path: path.to_path_buf(),
            gid,
        },
        _ => io(source),
    })?;
    Ok(listener)
}

/// Removes the socket at shutdown, if it is still the one kekd bound
/// (same inode): never a file or another daemon's socket put there since.
pub(crate) fn remove_own(path: &Path, bound: Option<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    if bound.is_some() && now == bound {
        let _ = std::fs::remove_file(path);
    }
}

/// The device and inode of the socket just bound at `path`.
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Gives the socket to `group` (the `[access] socket_group`), if set.
pub(crate) fn set_group(path: &Path, group: Option<u32>) -> std::io::Result<()> {
    match group {
        Some(gid) => std::os::unix::fs::chown(path, None, Some(gid)),
        None => Ok(()),
    }
}

/// How the API treats connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serving {
    /// A connection that has not sent a complete request head this long
    /// after connecting, or after its previous response (keep-alive idle),
    /// is closed.
    pub(crate) header_timeout: Duration,
    /// Connection caps.
    pub(crate) limits: Limits,
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets
/// in-flight requests finish (bounded by `drain`) and closes the rest.
pub(crate) async fn serve(
    listener: UnixListener,
    router: axum::Router,
    serving: Serving,
    stop: CancellationToken,
    drain: Duration,
) {
    let daemon_uid = rustix::process::geteuid().as_raw();
    let registry = Connections::new(serving.limits, daemon_uid);
    let tracker = TaskTracker::new();
    let refusals = RateLimitedLog::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a transient error:
                // back off a little instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = Peer::of(&stream);
        let slot = match registry.admit(peer.uid) {
            Ok(slot) => slot,
            Err(why) => {
                if let Some(suppressed) = refusals.allow(peer.uid) {
                    tracing::warn!(uid = peer.uid, reason = ?why, suppressed, "connection turned away: connection limit");
                }
                continue; // dropping the stream closes it
            }
        };
        tracker.spawn(connection(stream, peer, slot, router.clone(), serving));
    }
    // Shutdown: idle connections close now, busy ones after their response.
    registry.close_all();
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = registry.count(),
            "connections still busy after the shutdown bound; closing them"
        );
    }
}

/// Serves one connection until it ends, times out, or is asked to close.
async fn connection(
    stream: UnixStream,
    peer: Peer,
    slot: Slot,
    router: axum::Router,
    serving: Serving,
) {
    let busy = slot.busy.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        crate::api::scope::select(&mut req);
        let guard = Busy::start(busy.clone());
        let call = tower::ServiceExt::oneshot(router.clone(), req);
        async move {
            let response = call.await?;
            // The request counts as in flight until its body is sent.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(BusyBody {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = slot.close.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(slot);
}

/// Marks a connection busy from a request's start to its response's end.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(count: Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its connection busy until it is dropped.
struct BusyBody {
    body: axum::body::Body,
    _guard: Busy,
}

impl http_body::Body for BusyBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// At most a few log lines per uid and minute for turned-away
/// connections, with a count of the ones left out.
pub(crate) struct RateLimitedLog {
    windows: std::sync::Mutex<std::collections::HashMap<u32, (Instant, u32, u64)>>,
}

impl RateLimitedLog {
    const PER_MINUTE: u32 = 5;

    pub(crate) fn new() -> RateLimitedLog {
        RateLimitedLog {
            windows: Default::default(),
        }
    }

    /// `Some(suppressed since the last line)` if this event may be logged.
    pub(crate) fn allow(&self, uid: u32) -> Option<u64> {
        let mut w = crate::sync::lock(&self.windows);
        let now = Instant::now();
        let e = w.entry(uid).or_insert((now, 0, 0));
        if now.duration_since(e.0) > Duration::from_secs(60) {
            *e = (now, 0, e.2);
        }
        if e.1 < Self::PER_MINUTE {
            e.1 += 1;
            let suppressed = std::mem::take(&mut e.2);
            Some(suppressed)
        } else {
            e.2 += 1;
            None
        }
    }
}
