//! Helpers to run the real `shop` binary: find (and build) it, start it with an environment,
//! learn its port from its JSON logs, talk HTTP/1.1 to it over plain TCP, signal it.
//!
//! The binary is `SHOP_BIN` when set; otherwise it is built once per test process with
//! `cargo build -p bootstrap --bin shop` (a no-op when up to date), and its path is taken from
//! cargo's own report, so target directories and profiles need no guessing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The path of the `shop` executable.
pub fn shop_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("SHOP_BIN") {
                return PathBuf::from(path);
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let output = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "bootstrap",
                    "--bin",
                    "shop",
                    "--message-format=json",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stderr(Stdio::inherit())
                .output()
                .expect("cargo runs");
            assert!(output.status.success(), "cargo build of shop failed");
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "shop")
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .expect("cargo reported the shop executable")
        })
        .clone()
}

/// A running `shop` process; killed on drop if still running.
pub struct Shop {
    child: Child,
    pub port: u16,
    /// Every stdout line so far is forwarded here by a reader thread.
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for the listening line.
    early: Vec<String>,
}

/// Runs the binary to completion (for start-up failures).
pub fn run_to_exit(env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = Command::new(shop_binary());
    command.env_clear().envs(env.iter().copied());
    let output = command.output().expect("shop runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Shop {
    /// Starts the binary on a free port (`PORT=0`) with JSON logs and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(shop_binary());
        command
            .env_clear()
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("shop starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut early = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("shop logged that it listens within 30 s");
            let listening = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .filter(|json| json["fields"]["message"] == "shop listening")
                .and_then(|json| json["fields"]["port"].as_u64());
            early.push(line);
            if let Some(port) = listening {
                break u16::try_from(port).expect("a port");
            }
        };
        Self {
            child,
            port,
            lines,
            early,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through `kill`, to keep this crate free of unsafe code).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Every stdout line received so far.
    pub fn drain_stdout(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.early);
        all.extend(self.lines.try_iter());
        all
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
    }

    /// One request on a fresh connection (`Connection: close`); returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut stream = self.connect();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(head.as_bytes()).expect("write");
        read_response(&mut stream)
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads one `Connection: close` response to its end: (status, body).
pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One request on a fresh connection that reports failure instead of panicking: for clients
/// that keep talking to a server that may be killed under them. `headers` are extra request
/// headers (an `Idempotency-Key`, say). A connection refused or reset, or an answer cut short
/// (no status line), is an `Err`.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("no complete HTTP response: {text:?}"),
            )
        })?;
    let (_, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "response head cut short")
    })?;
    Ok((status, body.to_owned()))
}

impl Shop {
    /// Sends SIGKILL (`kill -9`: no shutdown code runs) and reaps the process.
    pub fn kill_9(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -9 {} failed", self.pid());
        self.child.wait().expect("the killed process is reaped")
    }
}
