//! Who is on the other end of a connection, read once when it is accepted:
//! the kernel's record of the peer's uid, gid and pid (`SO_PEERCRED`) and of
//! its supplementary groups (`SO_PEERGROUPS`, Linux ≥ 4.13), both captured
//! when the peer connected. Roles are decided from these — the groups the
//! calling process really has — never from the group database, which
//! would grant a group the process dropped and miss one it was given at run
//! time (`SupplementaryGroups=`). Reading them costs nothing per request.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::net::UnixStream;

/// The peer of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// User id.
    pub(crate) uid: u32,
    /// Primary group id.
    pub(crate) gid: u32,
    /// Process id, if the kernel told.
    pub(crate) pid: Option<i32>,
    /// Supplementary groups; `None` when they could not be read, and then
    /// no group grants anything (fail closed).
    pub(crate) groups: Option<Arc<[u32]>>,
}

impl Peer {
    /// The credentials of `stream`'s peer; a peer whose credentials cannot
    /// be read is nobody, holding no role.
    pub(crate) fn of(stream: &UnixStream) -> Peer {
        match stream.peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
                groups: peer_groups(stream.as_raw_fd()).map(Arc::from),
            },
            Err(_) => Peer {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
                groups: None,
            },
        }
    }
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS)`, growing the buffer when the
/// kernel says it is too small (`ERANGE`).
///
/// The one reviewed exception to the crate's `deny(unsafe_code)`: neither
/// rustix nor nix exposes `SO_PEERGROUPS`, and the alternative — looking
/// the uid up in the group database — is the defect this replaces. The call
/// writes at most `len` bytes into a buffer of exactly that size, and the
/// length the kernel reports is checked before the buffer is read.
#[allow(unsafe_code)]
fn peer_groups(fd: std::os::fd::RawFd) -> Option<Vec<u32>> {
    const SO_PEERGROUPS: libc::c_int = 59; // <asm-generic/socket.h>
    let mut capacity = 64usize;
    loop {
        let mut buf = vec![0 as libc::gid_t; capacity];
        let mut len = (capacity * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `buf` is valid for `len` bytes, which the kernel does not
        // exceed; `len` is updated to the bytes written (or needed).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = len as usize;
        if rc == 0 {
            if !len.is_multiple_of(std::mem::size_of::<libc::gid_t>())
                || len > capacity * std::mem::size_of::<libc::gid_t>()
            {
                return None;
            }
            buf.truncate(len / std::mem::size_of::<libc::gid_t>());
            return Some(buf);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && capacity < 65_536 {
            capacity = (len / std::mem::size_of::<libc::gid_t>()).max(capacity * 2);
            continue;
        }
        tracing::warn!(error = %err, "cannot read the peer's groups (SO_PEERGROUPS); no group grants apply to it");
        return None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_this_process_s_own_credentials_and_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a);
        assert_eq!(p.uid, rustix::process::geteuid().as_raw());
        assert_eq!(p.gid, rustix::process::getegid().as_raw());
        let mine: Vec<u32> = rustix::process::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        let mut got = p.groups.expect("SO_PEERGROUPS readable").to_vec();
        let mut want = mine;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
