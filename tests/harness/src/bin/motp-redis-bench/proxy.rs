//! `--proxy-delay-ms`: the delaying TCP proxies in user space, and the round trip they add.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP proxy on 127.0.0.1 in front of one Redis process that delays each direction by
/// `one_way`: for every connection it accepts it connects to the target, and each direction
/// gets a reader thread (which stamps every chunk it reads with the time it is due,
/// read time + `one_way`) and a writer thread (which sleeps until a chunk is due, then writes
/// it). Chunks keep their order and are never merged or held back for each other, so N
/// requests in flight each get the same added latency, as on a link with that delay. The
/// threads' timer slack is set to 1 ns, so a sleep ends close to when it is due. A closed side
/// is passed on (shutdown of the write half) after what was read before it. Threads end with
/// their connection; the listener lives as long as the bench.
pub(crate) struct DelayProxy {
    pub(crate) port: u16,
}

impl DelayProxy {
    pub(crate) fn start(target: SocketAddr, one_way: Duration) -> Result<DelayProxy, String> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("proxy listen: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("proxy address: {e}"))?
            .port();
        std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    // Unreachable target: the client sees its connection closed, as it would.
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone())
                    else {
                        continue;
                    };
                    delay_pump(client, server2, one_way);
                    delay_pump(server, client2, one_way);
                }
            })
            .map_err(|e| format!("proxy thread: {e}"))?;
        Ok(DelayProxy { port })
    }
}

/// One direction of a [`DelayProxy`] connection: `from` → `to`, each chunk `one_way` late.
fn delay_pump(mut from: TcpStream, mut to: TcpStream, one_way: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let fine_timer = || {
        // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    };
    std::thread::spawn(move || {
        fine_timer();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + one_way, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer finish what was read, then pass the close on.
    });
    std::thread::spawn(move || {
        fine_timer();
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The median round trip of `PING` on one connection to `addr:port`, in ms (500 of them).
pub(crate) fn ping_median(addr: &str, port: u16) -> f64 {
    let Ok(mut stream) = TcpStream::connect((addr, port)) else {
        return f64::NAN;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut times = Vec::with_capacity(500);
    let mut buf = [0u8; 64];
    for _ in 0..500 {
        let start = Instant::now();
        if stream.write_all(b"PING\r\n").is_err() {
            return f64::NAN;
        }
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return f64::NAN,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
