// apps_probe.rs: Rust std::net against an echo server (HOST PORT [REFUSED_PORT]), one line per
// check; test_shim_apps_heavy.sh runs it over kernel TCP and under the shim and wants the same
// lines.  connect_timeout, set_nodelay / nodelay, peer_addr, local_addr (an address, a port),
// peek, set_read_timeout (WouldBlock/TimedOut on silence), set_nonblocking (WouldBlock, then a
// poll-free retry loop), take_error, a 2 MiB echo written from a second thread while this one
// reads, shutdown(Write) then EOF, try_clone, a refused port, connect_timeout to nowhere.
// Compile: rustc -O -o apps_probe_rs apps_probe.rs
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

fn fill(n: usize, mut seed: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
            (seed >> 16) as u8
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = format!("{}:{}", args[1], args[2]).to_socket_addrs().unwrap().next().unwrap();
    let t = Duration::from_secs(10);

    let mut s = TcpStream::connect_timeout(&addr, t).expect("connect_timeout");
    s.set_nodelay(true).unwrap();
    let local = s.local_addr().unwrap();
    println!(
        "rust: peer {} nodelay {} local-ip-unspecified {} local-port>0 {} take_error {:?}",
        s.peer_addr().unwrap(),
        s.nodelay().unwrap(),
        local.ip().is_unspecified(),
        local.port() > 0,
        s.take_error().unwrap()
    );

    // Silence: read timeout, then non-blocking WouldBlock.
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut b = [0u8; 64];
    let e = s.read(&mut b).unwrap_err().kind();
    println!("rust: read timeout {}", e == ErrorKind::WouldBlock || e == ErrorKind::TimedOut);
    s.set_read_timeout(None).unwrap();
    s.set_nonblocking(true).unwrap();
    println!("rust: nonblocking read {:?}", s.read(&mut b).unwrap_err().kind());
    s.write_all(b"peek me").unwrap();
    let start = Instant::now();
    let n = loop {
        match s.peek(&mut b[..7]) {
            Ok(7) => break 7,
            Ok(_) | Err(_) if start.elapsed() < t => std::thread::sleep(Duration::from_millis(5)),
            r => panic!("peek: {:?}", r),
        }
    };
    s.set_nonblocking(false).unwrap();
    let mut c = [0u8; 7];
    s.read_exact(&mut c).unwrap();
    println!(
        "rust: peek {} {:?} read {:?}",
        n,
        String::from_utf8_lossy(&b[..7]),
        String::from_utf8_lossy(&c)
    );

    // 2 MiB echoed while a clone writes from another thread, then shutdown(Write) and EOF.
    let data = fill(2 << 20, 9);
    let mut w = s.try_clone().unwrap();
    let out = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&out).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    println!("rust: echo {} same {} eof after shutdown(Write)", got.len(), got == data);
    drop(s);

    // Non-blocking connect to a listening port, written as soon as it is writable.
    let mut s2 = TcpStream::connect_timeout(&addr, t).unwrap();
    s2.set_nonblocking(true).unwrap();
    let mut written = 0usize;
    let big = fill(1 << 20, 10);
    let mut back = Vec::new();
    let start = Instant::now();
    while back.len() < big.len() && start.elapsed() < Duration::from_secs(30) {
        if written < big.len() {
            match s2.write(&big[written..]) {
                Ok(k) => written += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("nonblocking write: {}", e),
            }
        }
        let mut buf = [0u8; 65536];
        match s2.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => back.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("nonblocking read: {}", e),
        }
    }
    println!("rust: nonblocking echo {} same {}", back.len(), back == big);

    if args.len() > 3 {
        let refused: SocketAddr = format!("{}:{}", args[1], args[3]).parse().unwrap();
        match TcpStream::connect_timeout(&refused, t) {
            Ok(_) => println!("rust: refused port connected"),
            Err(e) => println!("rust: refused port {:?}", e.kind()),
        }
    }
}
