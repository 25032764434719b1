//! A private PostgreSQL server in a temporary directory (its own port and data), for tests
//! that restart it or enable TLS on it — never the shared one. With `CI` set a missing
//! PostgreSQL installation fails the test; elsewhere it is skipped with a message.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

pub struct PrivatePg {
    pub dir: TempDir,
    pub port: u16,
    bin: PathBuf,
}

/// A CA and a server certificate for `localhost` (no IP name), made for one test.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// A client certificate for the PostgreSQL user `certuser`, and its key.
    pub client_pem: String,
    pub client_key_pem: String,
}

impl TestCa {
    pub fn new(names: &[&str]) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: another test CA is an unknown issuer, not a bad signature.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("airlock test CA {n}"));
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let ckey = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name
            .push(rcgen::DnType::CommonName, "certuser");
        let client = cp.signed_by(&ckey, &ca, &ca_key).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            client_pem: client.pem(),
            client_key_pem: ckey.serialize_pem(),
        }
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("runuser")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivatePg {
    /// Initialises and starts a server on a free port; with `tls`, `ssl = on` with that
    /// certificate (plaintext stays allowed, so `prefer` and `disable` can be told apart).
    pub fn start(tag: &str, tls: Option<&TestCa>) -> Option<PrivatePg> {
        let bin = bin_dir();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if !require(
            "a PostgreSQL installation (initdb) and root to run it as postgres",
            bin.is_some() && root,
        ) {
            return None;
        }
        let bin = bin?;
        let dir = tempdir(tag);
        let data = dir.join("data");
        let chown = |p: &std::path::Path| {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(p)
                .status()
                .unwrap();
        };
        chown(&dir);
        let out = as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\n",
            dir.display()
        );
        if let Some(ca) = tls {
            std::fs::write(data.join("server.crt"), &ca.cert_pem).unwrap();
            std::fs::write(data.join("server.key"), &ca.key_pem).unwrap();
            std::fs::write(data.join("ca.crt"), &ca.ca_pem).unwrap();
            // `certuser` logs in with a client certificate only (first matching line wins).
            let hba = data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(&hba, format!("hostssl all certuser 127.0.0.1/32 cert\nhost all certuser 127.0.0.1/32 reject\n{rest}")).unwrap();
            chown(&data);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n");
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        let pg = PrivatePg { dir, port, bin };
        pg.ctl("start");
        Some(pg)
    }

    fn ctl(&self, what: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "-m",
                "fast",
                what,
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl {what}: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn stop(&self) {
        self.ctl("stop");
    }

    pub fn start_again(&self) {
        self.ctl("start");
    }

    pub fn hostport(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs SQL as the superuser over the local socket.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
            ])
            .arg(sql)
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn wait_ready(&self) {
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(self.hostport()).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "private PostgreSQL did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
