//! Work-around for sqlx 0.9.0, which leaves Nagle's algorithm on for its database sockets
//! (sqlx#4335, fixed upstream in #4336 but not released). With TLS, a large statement goes out
//! as several segments and waits for the server's delayed ACK: about 40 ms a statement. sqlx
//! gives no access to its socket, so once a connection is made, every TCP socket of this process
//! gets `TCP_NODELAY`, which is what libpq and hyper set anyway. Remove with sqlx 0.9.1.

/// Sets `TCP_NODELAY` on every TCP socket this process has open.
#[cfg(target_os = "linux")]
pub fn set_nodelay_on_open_sockets() {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return };
    for entry in fds.flatten() {
        let is_socket =
            std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
        if !is_socket {
            continue;
        }
        let on: libc::c_int = 1;
        // SAFETY: `fd` is one of this process's open descriptors and `on` outlives the call; on
        // a socket that is not TCP (a Unix socket) the call fails harmlessly with ENOPROTOOPT.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_nodelay_on_open_sockets() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn open_tcp_sockets_get_nodelay() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        stream.set_nodelay(false).unwrap();
        super::set_nodelay_on_open_sockets();
        assert!(stream.nodelay().unwrap());
    }
}
