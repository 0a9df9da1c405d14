//! A small blocking HTTP/1.1 client for the daemon's own endpoints: the
//! CLI's `maintenance` subcommand to the local admin endpoint (a loopback
//! `host:port` or `unix:/path`, `request`), and the peer protocol's
//! transport (`exchange`: a total deadline, a size cap, the answer's
//! headers; `peers.rs` signs and checks what goes through it). Plain HTTP
//! only, one request per connection: enough for short JSON answers
//! without pulling an HTTP client stack into the daemon.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("talking to {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} answered something that is not HTTP")]
    Malformed { address: String },
}

/// Status code and body of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(address: &str, timeout: Duration) -> std::io::Result<Box<dyn Stream>> {
    if let Some(path) = address.strip_prefix("unix:") {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        return Ok(Box::new(stream));
    }
    let target = std::net::ToSocketAddrs::to_socket_addrs(address)?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(Box::new(stream))
}

/// `METHOD path` on `address` with a bearer token; `path` carries the
/// query, already encoded.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let mut stream = connect(address, timeout).map_err(|source| ClientError::Connect {
        address: address.to_string(),
        source,
    })?;
    let host = if address.starts_with("unix:") {
        "localhost"
    } else {
        address
    };
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let io = |source| ClientError::Io {
        address: address.to_string(),
        source,
    };
    stream.write_all(head.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse(&raw).ok_or_else(|| ClientError::Malformed {
        address: address.to_string(),
    })
}

/// Why `exchange` got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("talking to {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} did not answer completely within {deadline:?}")]
    Timeout { address: String, deadline: Duration },
    #[error("{address} answered more than {limit} bytes")]
    TooLarge { address: String, limit: usize },
    #[error("{address} answered something that is not HTTP")]
    Malformed { address: String },
}

/// Status, headers (names lower-cased) and body of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FullAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request to a TCP `address`, complete within `deadline` from now
/// (connecting, sending, and every byte of the answer: a peer that drips
/// one byte a second is cut off at the deadline, not at a per-read
/// timeout) and no larger than `limit` bytes (head and body). `from`: the
/// local address to send from (the interconnect address, so the peer can
/// check who asks); when it cannot be bound the kernel picks one.
pub fn exchange(
    address: &str,
    from: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    deadline: Duration,
    limit: usize,
) -> Result<FullAnswer, ExchangeError> {
    let started = Instant::now();
    let timeout = || ExchangeError::Timeout {
        address: address.to_string(),
        deadline,
    };
    let left = || {
        deadline
            .checked_sub(started.elapsed())
            .filter(|left| !left.is_zero())
    };
    let io = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            timeout()
        } else {
            ExchangeError::Io {
                address: address.to_string(),
                source,
            }
        }
    };
    let target: SocketAddr = address.parse().map_err(|_| ExchangeError::Connect {
        address: address.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an ip:port"),
    })?;
    let mut stream = connect_from(target, from, left().ok_or_else(timeout)?).map_err(|source| {
        ExchangeError::Connect {
            address: address.to_string(),
            source,
        }
    })?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream
        .set_write_timeout(Some(left().ok_or_else(timeout)?))
        .map_err(io)?;
    stream.write_all(head.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        stream
            .set_read_timeout(Some(left().ok_or_else(timeout)?))
            .map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if raw.len().saturating_add(n) > limit {
                    return Err(ExchangeError::TooLarge {
                        address: address.to_string(),
                        limit,
                    });
                }
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    parse_full(&raw).ok_or_else(|| ExchangeError::Malformed {
        address: address.to_string(),
    })
}

fn connect_from(
    target: SocketAddr,
    from: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    if let Some(ip) = from.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
        if let Err(error) = socket.bind(&SocketAddr::new(ip, 0).into()) {
            tracing::debug!(address = %ip, error = %error, "Cannot send peer requests from the interconnect address; the kernel picks one.");
        }
    }
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

fn parse_full(raw: &[u8]) -> Option<FullAnswer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let body = raw.get(split + 4..)?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect::<Option<_>>()?;
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(std::str::from_utf8(body).ok()?)?.into_bytes()
    } else {
        body.to_vec()
    };
    Some(FullAnswer {
        status,
        headers,
        body,
    })
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some(Answer { status, body })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!(
            plain,
            Answer {
                status: 200,
                body: "ok".into()
            }
        );
        let chunked = parse(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.status, 401);
        assert_eq!(chunked.body, "abcde");
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(encode("resize vol1/2"), "resize%20vol1%2F2");
        let full = parse_full(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n{}").unwrap();
        assert_eq!(full.header("x-a"), Some("b"));
        assert_eq!(full.body, b"{}");
    }

    /// A drip of one byte at a time ends at the total deadline, and a large
    /// answer is cut off at the limit.
    #[test]
    fn an_exchange_is_bounded_in_time_and_size() {
        use std::net::TcpListener;
        let drip = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = drip.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = drip.accept() {
                for _ in 0..100 {
                    if s.write_all(b"H").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        let started = Instant::now();
        let got = exchange(
            &address,
            None,
            "GET",
            "/",
            &[],
            Duration::from_millis(400),
            1024,
        );
        assert!(matches!(got, Err(ExchangeError::Timeout { .. })), "{got:?}");
        // Generous margin over the 400 ms deadline (a loaded machine).
        assert!(started.elapsed() < Duration::from_secs(3));

        let big = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = big.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = big.accept() {
                let _ = s.write_all(&vec![b'x'; 10_000]);
            }
        });
        let got = exchange(
            &address,
            None,
            "GET",
            "/",
            &[],
            Duration::from_secs(5),
            1024,
        );
        assert!(
            matches!(got, Err(ExchangeError::TooLarge { .. })),
            "{got:?}"
        );
    }
}
