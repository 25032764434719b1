//! A minimal MySQL/MariaDB client for the database engine: protocol 4.1 handshake with
//! `mysql_native_password` and `caching_sha2_password` (MySQL 8's default; fast and full
//! authentication, and an auth switch to either), TLS (the `SSLRequest` upgrade, then the
//! handshake over TLS), `COM_QUERY` with OK/ERR and text result sets. Enough for `CREATE
//! USER`, `GRANT`, `DROP USER` and existence checks; packets are bounded and every wait has a
//! timeout.
//!
//! `caching_sha2_password` full authentication sends the password in clear, so it is done
//! over TLS only; over plain TCP (where MySQL would want an RSA-encrypted password) the login
//! fails with a message saying to enable TLS, and the password is never sent.

use std::time::Duration;

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{Stream, TlsOptions};

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_RESULTS: u32 = 0x20000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;
const CLIENT_SSL: u32 = 0x800;
const NATIVE: &str = "mysql_native_password";
const SHA2: &str = "caching_sha2_password";
const MAX_PACKET: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct MySql {
    s: Stream,
    seq: u8,
}

/// What a query returned: an OK, or the rows of a result set (text protocol; NULL → None).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok { affected: u64 },
    Rows(Vec<Vec<Option<String>>>),
}

/// Decodes one text-protocol row of `cols` length-encoded strings.
fn decode_row(p: &[u8], cols: usize) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(cols);
    let mut i = 0;
    for _ in 0..cols {
        match p.get(i) {
            Some(0xfb) => {
                out.push(None);
                i += 1;
            }
            Some(_) => match lenenc(p.get(i..).unwrap_or_default()) {
                Some((n, used)) => {
                    let start = i + used;
                    let end = start.saturating_add(n as usize).min(p.len());
                    out.push(Some(
                        String::from_utf8_lossy(p.get(start..end).unwrap_or_default()).into_owned(),
                    ));
                    i = end;
                }
                None => out.push(None),
            },
            None => out.push(None),
        }
    }
    out
}

/// `caching_sha2_password`'s scramble: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce).
fn scramble_sha2(password: &str, nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha256::digest(password.as_bytes());
    let h2 = Sha256::digest(h1);
    let mut h = Sha256::new();
    h.update(h2);
    h.update(nonce);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The scramble `plugin` wants.
fn scramble_for(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>, String> {
    match plugin {
        NATIVE => Ok(scramble(password, nonce)),
        SHA2 => Ok(scramble_sha2(password, nonce)),
        other => Err(format!(
            "the MySQL server asks for auth plugin {:?}, which is not supported (use mysql_native_password or caching_sha2_password)",
            other.chars().take(64).collect::<String>()
        )),
    }
}

fn scramble(password: &str, salt: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = Sha1::digest(password.as_bytes());
    let h2 = Sha1::digest(h1);
    let mut h = Sha1::new();
    h.update(salt);
    h.update(h2);
    let h3 = h.finalize();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        x @ 0..=0xfa => Some((u64::from(x), 1)),
        0xfc => Some((u64::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?])), 3)),
        0xfd => Some((
            u64::from(u32::from_le_bytes([*b.get(1)?, *b.get(2)?, *b.get(3)?, 0])),
            4,
        )),
        0xfe => {
            let a: [u8; 8] = b.get(1..9)?.try_into().ok()?;
            Some((u64::from_le_bytes(a), 9))
        }
        _ => None,
    }
}

fn err_text(p: &[u8]) -> String {
    // 0xFF, code (2), '#', sqlstate (5), message.
    let code = p
        .get(1..3)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .unwrap_or(0);
    let msg = if p.get(3) == Some(&b'#') {
        p.get(9..).unwrap_or_default()
    } else {
        p.get(3..).unwrap_or_default()
    };
    format!("{} ({code})", String::from_utf8_lossy(msg))
}

/// What the server's initial handshake packet says.
struct Greeting {
    caps: u32,
    nonce: Vec<u8>,
    plugin: String,
}

impl Greeting {
    fn parse(hs: &[u8]) -> Result<Self, String> {
        if hs.first() != Some(&10) {
            return Err("unsupported MySQL protocol version".into());
        }
        let bad = || "malformed MySQL handshake".to_string();
        // version NUL, thread id (4), nonce part 1 (8), filler (1), caps low (2),
        // charset (1), status (2), caps high (2), nonce length (1), reserved (10),
        // nonce part 2, plugin name NUL.
        let nul = hs.iter().skip(1).position(|b| *b == 0).ok_or_else(bad)? + 1;
        let mut i = nul + 1 + 4;
        let mut nonce = hs.get(i..i + 8).ok_or_else(bad)?.to_vec();
        i += 8 + 1;
        let lo = hs.get(i..i + 2).ok_or_else(bad)?;
        let mut caps = u32::from(u16::from_le_bytes([lo[0], lo[1]]));
        i += 2 + 1 + 2;
        if let Some(hi) = hs.get(i..i + 2) {
            caps |= u32::from(u16::from_le_bytes([hi[0], hi[1]])) << 16;
        }
        i += 2;
        let auth_len = usize::from(*hs.get(i).unwrap_or(&0));
        i += 1 + 10;
        let part2 = auth_len.saturating_sub(8).max(13);
        if let Some(p2) = hs.get(i..i + part2) {
            nonce.extend_from_slice(p2.strip_suffix(&[0]).unwrap_or(p2));
        }
        nonce.truncate(20);
        i += part2;
        let plugin = hs
            .get(i..)
            .map(|r| {
                let n = r.iter().position(|b| *b == 0).unwrap_or(r.len());
                String::from_utf8_lossy(&r[..n]).into_owned()
            })
            .unwrap_or_default();
        Ok(Greeting {
            caps,
            nonce,
            plugin,
        })
    }
}

impl MySql {
    async fn read_packet(&mut self) -> Result<Vec<u8>, String> {
        let mut h = [0u8; 4];
        tokio::time::timeout(TIMEOUT, self.s.read_exact(&mut h))
            .await
            .map_err(|_| "MySQL did not answer within 10 s".to_string())?
            .map_err(|e| format!("MySQL connection: {e}"))?;
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        if len > MAX_PACKET {
            return Err("MySQL packet too large".into());
        }
        self.seq = h[3].wrapping_add(1);
        let mut p = vec![0u8; len];
        tokio::time::timeout(TIMEOUT, self.s.read_exact(&mut p))
            .await
            .map_err(|_| "MySQL did not answer within 10 s".to_string())?
            .map_err(|e| format!("MySQL connection: {e}"))?;
        Ok(p)
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), String> {
        let len = payload.len();
        let mut buf = Vec::with_capacity(len + 4);
        buf.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, self.seq]);
        buf.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let s = &mut self.s;
        let r = tokio::time::timeout(TIMEOUT, async move {
            s.write_all(&buf).await?;
            s.flush().await?;
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|_| "MySQL write timed out".to_string())?
        .map_err(|e| format!("MySQL connection: {e}"));
        let mut buf = match r {
            Ok(b) => b,
            Err(e) => return Err(e),
        };
        use zeroize::Zeroize;
        buf.zeroize();
        Ok(())
    }

    /// Connects and logs in; `tls` upgrades the connection before any credential is sent.
    pub async fn connect(
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        tls: Option<&TlsOptions>,
    ) -> Result<Self, String> {
        let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to MySQL at {host}:{port} timed out"))?
            .map_err(|e| format!("connecting to MySQL at {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut c = MySql {
            s: Stream::Plain(tcp),
            seq: 0,
        };
        let hs = c.read_packet().await?;
        if hs.first() == Some(&0xff) {
            return Err(format!("MySQL refused the connection: {}", err_text(&hs)));
        }
        let g = Greeting::parse(&hs)?;
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH;
        let mut over_tls = false;
        if let Some(o) = tls {
            if g.caps & CLIENT_SSL == 0 {
                return Err(
                    "the MySQL server does not offer TLS, which this connection requires".into(),
                );
            }
            caps |= CLIENT_SSL;
            // SSLRequest: the first 32 bytes of the handshake response, then TLS.
            let mut req = Vec::with_capacity(32);
            req.extend_from_slice(&caps.to_le_bytes());
            req.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
            req.push(45);
            req.extend_from_slice(&[0u8; 23]);
            c.write_packet(&req).await?;
            c.s.upgrade(host, o)
                .await
                .map_err(|e| format!("MySQL {e}"))?;
            over_tls = true;
        }
        // Answer with the server's default plugin when we speak it (MySQL 8:
        // caching_sha2_password; MariaDB: mysql_native_password), else native.
        let plugin = if g.plugin == SHA2 { SHA2 } else { NATIVE };
        let mut resp = Vec::new();
        resp.extend_from_slice(&caps.to_le_bytes());
        resp.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
        resp.push(45); // utf8mb4_general_ci
        resp.extend_from_slice(&[0u8; 23]);
        resp.extend_from_slice(user.as_bytes());
        resp.push(0);
        let auth = scramble_for(plugin, password, &g.nonce)?;
        resp.push(auth.len() as u8);
        resp.extend_from_slice(&auth);
        resp.extend_from_slice(plugin.as_bytes());
        resp.push(0);
        c.write_packet(&resp).await?;
        let mut switched = false;
        let mut current = plugin.to_string();
        loop {
            let p = c.read_packet().await?;
            match p.first() {
                Some(0x00) => return Ok(c),
                Some(0xff) => return Err(format!("MySQL login failed: {}", err_text(&p))),
                Some(0xfe) if !switched => {
                    // Auth switch: plugin name, NUL, new nonce (NUL-terminated).
                    switched = true;
                    let rest = p.get(1..).unwrap_or_default();
                    let n = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                    current =
                        String::from_utf8_lossy(rest.get(..n).unwrap_or_default()).into_owned();
                    let nonce = rest.get(n + 1..).unwrap_or_default();
                    let nonce = nonce.strip_suffix(&[0]).unwrap_or(nonce);
                    let a = scramble_for(&current, password, nonce)?;
                    c.write_packet(&a).await?;
                }
                // caching_sha2_password: 0x01 0x03 fast auth done (an OK follows); 0x01 0x04
                // full authentication wanted.
                Some(0x01) if current == SHA2 && p.get(1) == Some(&0x03) => {}
                Some(0x01) if current == SHA2 && p.get(1) == Some(&0x04) => {
                    if !over_tls {
                        return Err("MySQL wants full caching_sha2_password authentication, which sends the password and is done over TLS only: add tls=true to the DSN (or tls_ca)".into());
                    }
                    let mut pw = password.as_bytes().to_vec();
                    pw.push(0);
                    let r = c.write_packet(&pw).await;
                    use zeroize::Zeroize;
                    pw.zeroize();
                    r?;
                }
                _ => return Err("unexpected MySQL authentication reply".into()),
            }
        }
    }

    /// Runs one statement. Errors carry the server's message, never the statement.
    pub async fn query(&mut self, sql: &str) -> Result<Outcome, String> {
        self.seq = 0;
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(0x03);
        p.extend_from_slice(sql.as_bytes());
        self.write_packet(&p).await?;
        use zeroize::Zeroize;
        p.zeroize();
        let first = self.read_packet().await?;
        match first.first() {
            Some(0x00) => {
                let affected = lenenc(first.get(1..).unwrap_or_default())
                    .map(|(v, _)| v)
                    .unwrap_or(0);
                Ok(Outcome::Ok { affected })
            }
            Some(0xff) => Err(err_text(&first)),
            _ => {
                let (cols, _) = lenenc(&first).ok_or("malformed MySQL result")?;
                for _ in 0..cols {
                    self.read_packet().await?;
                }
                // EOF after column definitions.
                let eof = self.read_packet().await?;
                if eof.first() != Some(&0xfe) {
                    return Err("malformed MySQL result".into());
                }
                let mut rows = Vec::new();
                loop {
                    let r = self.read_packet().await?;
                    match r.first() {
                        Some(0xfe) if r.len() < 9 => return Ok(Outcome::Rows(rows)),
                        Some(0xff) => return Err(err_text(&r)),
                        _ if rows.len() < 100_000 => rows.push(decode_row(&r, cols as usize)),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_scramble_matches_the_reference() {
        // SHA1("pw") XOR SHA1(salt + SHA1(SHA1("pw"))) for a fixed salt; checked against
        // the definition, so a refactor cannot silently change it.
        let salt = b"01234567890123456789";
        let s = scramble("pw", salt);
        assert_eq!(s.len(), 20);
        let h1 = Sha1::digest(b"pw");
        let h2 = Sha1::digest(h1);
        let mut h = Sha1::new();
        h.update(salt);
        h.update(h2);
        let back: Vec<u8> = s
            .iter()
            .zip(h.finalize().iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(back, h1.to_vec());
        assert!(scramble("", salt).is_empty());
    }

    /// A stand-in MySQL 8 server speaking `caching_sha2_password` (plain TCP): it checks the
    /// scramble as MySQL does (SHA256(scramble XOR SHA256(H2 ‖ nonce)) == H2, H2 =
    /// SHA256(SHA256(pw))), then answers `fast` (fast auth) or asks for full authentication.
    /// `switch`: the greeting announces mysql_native_password and the server switches.
    async fn fake_mysql8(
        password: &'static str,
        fast: bool,
        switch: bool,
    ) -> (u16, tokio::task::JoinHandle<Result<Vec<u8>, String>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.map_err(|e| e.to_string())?;
            let nonce: [u8; 20] = *b"abcdefghijklmnopqrst";
            let announced = if switch { NATIVE } else { SHA2 };
            let mut g = vec![10u8];
            g.extend_from_slice(b"8.4.0\0");
            g.extend_from_slice(&[1, 0, 0, 0]);
            g.extend_from_slice(&nonce[..8]);
            g.push(0);
            let caps: u32 = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
            g.extend_from_slice(&(caps as u16).to_le_bytes());
            g.push(45);
            g.extend_from_slice(&[2, 0]);
            g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
            g.push(21);
            g.extend_from_slice(&[0u8; 10]);
            g.extend_from_slice(&nonce[8..]);
            g.push(0);
            g.extend_from_slice(announced.as_bytes());
            g.push(0);
            async fn send(
                s: &mut tokio::net::TcpStream,
                seq: u8,
                p: Vec<u8>,
            ) -> Result<(), String> {
                let mut b = vec![
                    p.len() as u8,
                    (p.len() >> 8) as u8,
                    (p.len() >> 16) as u8,
                    seq,
                ];
                b.extend_from_slice(&p);
                s.write_all(&b).await.map_err(|e| e.to_string())
            }
            async fn recv(s: &mut tokio::net::TcpStream) -> Result<(u8, Vec<u8>), String> {
                let mut h = [0u8; 4];
                s.read_exact(&mut h).await.map_err(|e| e.to_string())?;
                let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
                let mut p = vec![0u8; n];
                s.read_exact(&mut p).await.map_err(|e| e.to_string())?;
                Ok((h[3], p))
            }
            send(&mut s, 0, g).await?;
            let (seq, resp) = recv(&mut s).await?;
            // user NUL, then the length-prefixed scramble, then the plugin name.
            let at = 32 + resp[32..].iter().position(|b| *b == 0).unwrap() + 1;
            let n = usize::from(resp[at]);
            let mut scr = resp[at + 1..at + 1 + n].to_vec();
            let mut seq = seq + 1;
            let mut nonce_used = nonce.to_vec();
            if switch {
                let other: [u8; 20] = *b"ZYXWVUTSRQPONMLKJIHG";
                let mut p = vec![0xfe];
                p.extend_from_slice(SHA2.as_bytes());
                p.push(0);
                p.extend_from_slice(&other);
                p.push(0);
                send(&mut s, seq, p).await?;
                let (sq, r) = recv(&mut s).await?;
                seq = sq + 1;
                scr = r;
                nonce_used = other.to_vec();
            }
            let h2 = Sha256::digest(Sha256::digest(password.as_bytes()));
            let mut x = Sha256::new();
            x.update(h2);
            x.update(&nonce_used);
            let cand: Vec<u8> = scr
                .iter()
                .zip(x.finalize().iter())
                .map(|(a, b)| a ^ b)
                .collect();
            if Sha256::digest(&cand).as_slice() != h2.as_slice() {
                send(&mut s, seq, b"\xff\x15\x04#28000Access denied".to_vec()).await?;
                return Err("bad scramble".into());
            }
            if fast {
                send(&mut s, seq, vec![0x01, 0x03]).await?;
                send(&mut s, seq + 1, vec![0, 0, 0, 2, 0, 0, 0]).await?;
                return Ok(Vec::new());
            }
            send(&mut s, seq, vec![0x01, 0x04]).await?;
            // Whatever the client sends next (it must send nothing).
            let mut rest = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_millis(300), s.read_to_end(&mut rest)).await;
            Ok(rest)
        });
        (port, h)
    }

    #[tokio::test]
    async fn caching_sha2_fast_auth_and_auth_switch() {
        let (port, h) = fake_mysql8("s3cret-pw", true, false).await;
        assert!(MySql::connect("127.0.0.1", port, "u", "s3cret-pw", None)
            .await
            .is_ok());
        h.await.unwrap().unwrap();
        let (port, h) = fake_mysql8("s3cret-pw", true, true).await;
        assert!(MySql::connect("127.0.0.1", port, "u", "s3cret-pw", None)
            .await
            .is_ok());
        h.await.unwrap().unwrap();
        // A wrong password fails at the server's check.
        let (port, h) = fake_mysql8("s3cret-pw", true, false).await;
        let e = MySql::connect("127.0.0.1", port, "u", "wrong", None)
            .await
            .err()
            .unwrap();
        assert!(e.contains("Access denied"), "{e}");
        assert!(h.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn full_auth_is_refused_over_plain_tcp_and_sends_no_password() {
        let (port, h) = fake_mysql8("s3cret-pw", false, false).await;
        let e = MySql::connect("127.0.0.1", port, "u", "s3cret-pw", None)
            .await
            .err()
            .unwrap();
        assert!(e.contains("over TLS only"), "{e}");
        let sent = h.await.unwrap().unwrap();
        assert!(
            !sent.windows(9).any(|w| w == b"s3cret-pw"),
            "the password went over plain TCP"
        );
    }

    #[tokio::test]
    async fn a_server_without_tls_is_refused_when_tls_is_required() {
        let (port, h) = fake_mysql8("s3cret-pw", true, false).await;
        let e = MySql::connect(
            "127.0.0.1",
            port,
            "u",
            "s3cret-pw",
            Some(&TlsOptions::default()),
        )
        .await
        .err()
        .unwrap();
        assert!(e.contains("does not offer TLS"), "{e}");
        h.abort();
    }

    #[test]
    fn sha2_scramble_matches_the_go_driver_vectors() {
        // go-sql-driver/mysql's TestScrambleSHA256Pass.
        let nonce = [
            10, 47, 74, 111, 75, 73, 34, 48, 88, 76, 114, 74, 37, 13, 3, 80, 82, 2, 23, 21,
        ];
        assert_eq!(
            hex::encode(scramble_sha2("secret", &nonce)),
            "f490e76f66d9d86665ce54d98c78d0acfe2fb0b08b423da807144873d30b312c"
        );
        assert_eq!(
            hex::encode(scramble_sha2("secret2", &nonce)),
            "abc3934a012cf342e876071c8ee202de51785b430258a7a0138bc79c4d800bc6"
        );
        assert!(scramble_sha2("", &nonce).is_empty());
    }

    #[test]
    fn text_rows() {
        let row = [3, b'a', b'b', b'c', 0xfb, 1, b'7'];
        assert_eq!(
            decode_row(&row, 3),
            vec![Some("abc".into()), None, Some("7".into())]
        );
    }

    #[test]
    fn length_encoded_integers() {
        assert_eq!(lenenc(&[5]), Some((5, 1)));
        assert_eq!(lenenc(&[0xfc, 1, 2]), Some((0x0201, 3)));
        assert_eq!(lenenc(&[0xfd, 1, 2, 3]), Some((0x030201, 4)));
        assert_eq!(lenenc(&[0xfc, 1]), None);
    }
}
