//! Work-around for sqlx 0.9.0, which leaves Nagle's algorithm on for its database sockets
//! (sqlx#4335, fixed upstream in #4336 but not released). With TLS, a large statement goes out
//! as several segments and waits for the server's delayed ACK: about 40 ms a statement, and
//! twice that in the TLS handshake. sqlx gives no access to its socket, so every TCP socket of
//! this process gets `TCP_NODELAY` (what libpq and hyper set anyway): while a connection is being
//! made, from a thread that looks every 100 µs (the socket exists one round trip before the
//! handshake's first stall), and once it is made. Remove with sqlx 0.9.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sets `TCP_NODELAY` on new sockets until dropped.
pub struct WhileConnecting {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WhileConnecting {
    pub fn start() -> WhileConnecting {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("audit-nodelay".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    set_nodelay_on_open_sockets();
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
            .ok();
        WhileConnecting { done, thread }
    }
}

impl Drop for WhileConnecting {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

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
        #[allow(unsafe_code, reason = "setsockopt has no safe wrapper for a descriptor sqlx owns")]
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

    #[test]
    fn sockets_opened_while_connecting_get_nodelay_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = super::WhileConnecting::start();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !stream.nodelay().unwrap() {
            assert!(std::time::Instant::now() < deadline, "never set");
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        drop(watch);
    }
}
