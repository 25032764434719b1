//! A minimal Redis client (RESP2 over TCP) for the database engine's Redis ACL plugin:
//! `AUTH`, `ACL SETUSER`, `ACL DELUSER`, `PING`. Only what the plugin needs; replies are
//! parsed strictly and bounded in size.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::tls::{Stream, TlsOptions};

pub struct Redis {
    io: BufReader<Stream>,
}

/// A reply, reduced to what the plugin looks at.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(usize),
}

const MAX_LINE: usize = 64 << 10;

impl Redis {
    /// Connects, over TLS when `tls` is given (RESP is the same either way).
    pub async fn connect(host: &str, port: u16, tls: Option<&TlsOptions>) -> Result<Self, String> {
        let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to Redis at {host}:{port} timed out"))?
            .map_err(|e| format!("connecting to Redis at {host}:{port}: {e}"))?;
        let _ = s.set_nodelay(true);
        let mut stream = Stream::Plain(s);
        if let Some(o) = tls {
            stream
                .upgrade(host, o)
                .await
                .map_err(|e| format!("Redis {e}"))?;
        }
        Ok(Redis {
            io: BufReader::new(stream),
        })
    }

    /// Sends one command; returns its reply or the server's error text. Arguments may be
    /// secrets: they are never put into an error.
    pub async fn cmd(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        let io = tokio::time::timeout(Duration::from_secs(10), async {
            let w = self.io.get_mut();
            w.write_all(&buf).await?;
            w.flush().await?;
            self.read_reply().await
        })
        .await
        .map_err(|_| "Redis did not answer within 10 s".to_string())?;
        use zeroize::Zeroize;
        buf.zeroize();
        io.map_err(|e| format!("Redis connection: {e}"))?
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 || !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "short reply",
            ));
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    async fn read_reply(&mut self) -> std::io::Result<Result<Reply, String>> {
        let line = self.read_line().await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad reply");
        Ok(match kind {
            "+" => Ok(Reply::Ok(rest.to_string())),
            "-" => Err(rest.to_string()),
            ":" => Ok(Reply::Int(rest.parse().map_err(|_| bad())?)),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Ok(Reply::Bulk(None))
                } else if n as usize > MAX_LINE {
                    return Err(bad());
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.io.read_exact(&mut b).await?;
                    b.truncate(n as usize);
                    Ok(Reply::Bulk(Some(b)))
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                // The plugin never needs array contents: drain them.
                for _ in 0..n.max(0) {
                    let _ = Box::pin(self.read_reply()).await?;
                }
                Ok(Reply::Array(n.max(0) as usize))
            }
            _ => return Err(bad()),
        })
    }

    /// Authenticates (ACL user + password, or password only when `user` is empty).
    pub async fn auth(&mut self, user: &str, password: &str) -> Result<(), String> {
        if password.is_empty() && user.is_empty() {
            return Ok(());
        }
        let r = if user.is_empty() {
            self.cmd(&["AUTH", password]).await
        } else {
            self.cmd(&["AUTH", user, password]).await
        };
        r.map(|_| ())
            .map_err(|e| format!("Redis authentication failed: {e}"))
    }
}
