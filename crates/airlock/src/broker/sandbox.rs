//! `broker run --sandbox` (Linux): the child runs in its own user and network namespace
//! (and, with paths to hide, its own mount namespace) whose only way out is the broker.
//!
//! The command starts as a small helper, `airlock __airlock-sandbox …` (handled in `main`
//! before the async runtime exists, so the process is single-threaded as `unshare` needs),
//! which:
//! 1. connects to a Unix socket of the broker's (in the broker's private temp directory);
//! 2. unshares a user and a network namespace (no privilege needed beyond unprivileged user
//!    namespaces) and maps its uid/gid (to themselves; root to 65534, so that nothing in the
//!    sandbox runs with capabilities once the command starts);
//! 3. brings up the namespace's loopback (one rtnetlink message) and creates the proxy's
//!    TCP listener on `127.0.0.1:PORT` in it;
//! 4. hides paths (`--hide`, the token file by default) by bind-mounting an unreadable empty
//!    file or directory over them, in a private mount namespace;
//! 5. sets `no_new_privs`, sends the listener to the broker (`SCM_RIGHTS`) and `exec`s the
//!    command. The broker accepts the child's connections from inside the child's namespace
//!    and dials upstreams from the host's.
//!
//! The new network namespace has nothing but loopback: raw TCP/UDP sockets to any other
//! address fail with "network unreachable", DNS lookups fail, and connecting to a port on
//! 127.0.0.1 reaches the namespace's own loopback. Pathname Unix sockets are files, not
//! network: they stay reachable unless hidden. The command's uid in the namespace is not 0,
//! so `execve` leaves it no capability: it cannot unmount what hides a path or change the
//! namespace's network.
//!
//! A step that fails is reported to the broker, which says what the kernel refused; there is
//! never a fallback to running unsandboxed.

use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The helper's first argument (not a subcommand users see).
pub const CHILD_ARG: &str = "__airlock-sandbox";

/// How long the broker waits for the helper to hand over the listener.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's side: the socket the helper reports to.
pub struct Sandbox {
    sock: UnixListener,
}

/// Resolves `--hide` paths, plus the default (the CLI's token file, when it exists).
pub fn hidden_paths(explicit: &[PathBuf], default: Option<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in explicit {
        let c = std::fs::canonicalize(p).with_context(|| format!("--hide {}", p.display()))?;
        out.push(c);
    }
    if let Some(d) = default.filter(|d| d.exists()) {
        let c = std::fs::canonicalize(&d)?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The command that starts `prog args` in a sandbox whose proxy listens on
/// `127.0.0.1:port`; `scratch` is the broker's private temp directory.
pub fn command(
    port: u16,
    hide: &[PathBuf],
    scratch: &Path,
    prog: &str,
    args: &[String],
) -> Result<(tokio::process::Command, Sandbox)> {
    if !cfg!(target_os = "linux") {
        bail!("--sandbox needs Linux (user and network namespaces); the command was not started");
    }
    let sock_path = scratch.join("sandbox.sock");
    let sock = UnixListener::bind(&sock_path)
        .with_context(|| format!("binding {}", sock_path.display()))?;
    let exe = std::env::current_exe().context("finding the airlock executable")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(CHILD_ARG).arg(&sock_path).arg(port.to_string());
    if !hide.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        // Decoys: an empty file and an empty directory nobody may read.
        let file = scratch.join("hidden-file");
        let dir = scratch.join("hidden-dir");
        std::fs::write(&file, b"")?;
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000))?;
        for p in hide {
            cmd.arg("--hide")
                .arg(p)
                .arg(if p.is_dir() { &dir } else { &file });
        }
    }
    cmd.arg("--").arg(prog).args(args);
    Ok((cmd, Sandbox { sock }))
}

impl Sandbox {
    /// Waits for the started helper's report: the listener it created in its namespace,
    /// or what failed.
    pub async fn listener(
        self,
        child: &mut tokio::process::Child,
    ) -> Result<tokio::net::TcpListener> {
        let pid = child.id().unwrap_or(0);
        self.sock.set_nonblocking(true)?;
        let sock = tokio::net::UnixListener::from_std(self.sock)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let stream = loop {
            tokio::select! {
                r = sock.accept() => {
                    let (s, _) = r?;
                    // Only the helper we started may report.
                    match rustix::net::sockopt::socket_peercred(&s) {
                        Ok(c) if c.pid.as_raw_nonzero().get() as u32 == pid => break s,
                        _ => continue,
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(st) = child.try_wait()? {
                        bail!("--sandbox: the sandbox did not start ({st})");
                    }
                    if Instant::now() > deadline {
                        bail!("--sandbox: the sandbox did not start within {START_TIMEOUT:?}");
                    }
                }
            }
        };
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        let (msg, fd) = recv_report(&stream)?;
        match (msg.first(), fd) {
            (Some(b'L'), Some(fd)) => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)?;
                Ok(tokio::net::TcpListener::from_std(l)?)
            }
            (Some(b'E'), _) => {
                let text = String::from_utf8_lossy(msg.get(1..).unwrap_or_default());
                let _ = child.wait().await;
                Err(anyhow!("--sandbox: {text}; the command was not started"))
            }
            _ => bail!("--sandbox: the sandbox sent no listener"),
        }
    }
}

/// Receives one report: its bytes and the descriptor it carried, if any.
fn recv_report(s: &UnixStream) -> Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = [0u8; 2048];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        s,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("--sandbox: reading the sandbox's report")?;
    let mut fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    Ok((buf.get(..r.bytes).unwrap_or_default().to_vec(), fd))
}

/// What the helper was asked to do.
struct ChildArgs {
    sock: PathBuf,
    port: u16,
    /// (path to hide, decoy mounted over it)
    hide: Vec<(PathBuf, PathBuf)>,
    command: Vec<std::ffi::OsString>,
}

fn parse_child_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Option<ChildArgs> {
    let sock = PathBuf::from(it.next()?);
    let port = it.next()?.to_str()?.parse().ok()?;
    let mut hide = Vec::new();
    loop {
        let a = it.next()?;
        if a == "--" {
            break;
        }
        if a != "--hide" {
            return None;
        }
        let target = PathBuf::from(it.next()?);
        let decoy = PathBuf::from(it.next()?);
        hide.push((target, decoy));
    }
    let command: Vec<_> = it.collect();
    if command.is_empty() {
        return None;
    }
    Some(ChildArgs {
        sock,
        port,
        hide,
        command,
    })
}

/// The helper's entry point (`airlock __airlock-sandbox SOCK PORT [--hide PATH DECOY]… -- CMD…`):
/// sets up the sandbox and `exec`s the command; returns only on failure.
pub fn child_main(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let Some(a) = parse_child_args(args) else {
        eprintln!("airlock: {CHILD_ARG} is internal to `airlock broker run --sandbox`");
        return ExitCode::from(125);
    };
    let mut report = match UnixStream::connect(&a.sock) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("airlock: --sandbox: reaching the broker: {e}");
            return ExitCode::from(125);
        }
    };
    match setup(&a) {
        Ok(listener) => {
            let fds = [listener.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            control.push(SendAncillaryMessage::ScmRights(&fds));
            if let Err(e) = rustix::net::sendmsg(
                &report,
                &[IoSlice::new(b"L")],
                &mut control,
                SendFlags::empty(),
            ) {
                eprintln!("airlock: --sandbox: passing the listener to the broker: {e}");
                return ExitCode::from(125);
            }
            drop(listener);
            drop(report);
            let (prog, rest) = match a.command.split_first() {
                Some(x) => x,
                None => return ExitCode::from(125),
            };
            use std::os::unix::process::CommandExt;
            let e = std::process::Command::new(prog).args(rest).exec();
            eprintln!("airlock: starting {}: {e}", prog.to_string_lossy());
            ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            })
        }
        Err(e) => {
            let _ = report.write_all(format!("E{e:#}").as_bytes());
            ExitCode::from(125)
        }
    }
}

/// Steps 2–5 of the module doc, up to the exec.
fn setup(a: &ChildArgs) -> Result<std::net::TcpListener> {
    use rustix::thread::UnshareFlags;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let mut flags = UnshareFlags::NEWUSER | UnshareFlags::NEWNET;
    if !a.hide.is_empty() {
        flags |= UnshareFlags::NEWNS;
    }
    // `unshare` is unsafe only with FILES (fd tables split between threads); these flags
    // do not include it, and this process has one thread.
    #[allow(deprecated)]
    rustix::thread::unshare(flags).map_err(|e| {
        anyhow!("creating the user and network namespaces failed: {e} — unprivileged user namespaces are unavailable here (see the sysctls user.max_user_namespaces and kernel.unprivileged_userns_clone, AppArmor's kernel.apparmor_restrict_unprivileged_userns, or the container's seccomp profile)")
    })?;
    // Inside, root becomes 65534: a non-zero uid keeps no capability across exec.
    let inside = |id: u32| if id == 0 { 65534 } else { id };
    let maps = [
        ("/proc/self/setgroups", "deny".to_string()),
        ("/proc/self/uid_map", format!("{} {uid} 1\n", inside(uid))),
        ("/proc/self/gid_map", format!("{} {gid} 1\n", inside(gid))),
    ];
    for (path, text) in &maps {
        std::fs::write(path, text).with_context(|| format!("writing {path}"))?;
    }
    loopback_up().context("bringing up the sandbox's loopback")?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", a.port))
        .with_context(|| format!("listening on 127.0.0.1:{} in the sandbox", a.port))?;
    if !a.hide.is_empty() {
        use rustix::mount::MountPropagationFlags;
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .context("making the sandbox's mounts private")?;
        for (target, decoy) in &a.hide {
            rustix::mount::mount_bind(decoy, target)
                .with_context(|| format!("hiding {}", target.display()))?;
        }
    }
    rustix::thread::set_no_new_privs(true).context("setting no_new_privs")?;
    Ok(listener)
}

/// `ip link set lo up`, as one rtnetlink request (RTM_NEWLINK for interface 1, the
/// loopback of every network namespace), and its acknowledgement.
fn loopback_up() -> Result<()> {
    use rustix::net::{AddressFamily, SocketType};
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_ERROR: u16 = 2;
    const IFF_UP: u32 = 1;
    // Protocol 0 is NETLINK_ROUTE.
    let s = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, pad
    m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    m.extend_from_slice(&1i32.to_ne_bytes()); // ifi_index
    m.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    m.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    rustix::net::send(&s, &m, SendFlags::empty())?;
    let mut buf = [0u8; 512];
    let (n, _) = rustix::net::recv(&s, &mut buf, RecvFlags::empty())?;
    let field = |r: std::ops::Range<usize>| buf.get(r).filter(|_| n >= 20);
    let ty = field(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let err = field(16..20).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (ty, err) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(std::io::Error::from_raw_os_error(-e).into()),
        _ => bail!("unexpected rtnetlink answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(Into::into).collect()
    }

    #[test]
    fn child_args_parse_and_refuse_garbage() {
        let a = parse_child_args(
            os(&[
                "/t/s.sock",
                "3128",
                "--hide",
                "/h/tok",
                "/t/hf",
                "--",
                "curl",
                "-s",
            ])
            .into_iter(),
        )
        .unwrap();
        assert_eq!(a.port, 3128);
        assert_eq!(a.hide, vec![("/h/tok".into(), "/t/hf".into())]);
        assert_eq!(a.command, os(&["curl", "-s"]));
        for bad in [
            &["/t/s.sock", "x", "--", "c"][..],
            &["/t/s.sock", "1", "--"],
            &["/t/s.sock", "1", "--hide", "/a", "--", "c"],
            &["/t/s.sock", "1", "c"],
        ] {
            assert!(parse_child_args(os(bad).into_iter()).is_none(), "{bad:?}");
        }
    }
}
