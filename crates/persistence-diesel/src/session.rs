//! A PostgreSQL session whose server errors keep their SQLSTATE.
//!
//! diesel-async 0.9 turns a server error into diesel's [`DatabaseErrorKind`]: eight SQLSTATEs
//! have a kind of their own, every other one becomes `Unknown` and its code is dropped (its
//! `DatabaseErrorInformation` has message, detail, hint, table, column, constraint and
//! position, but no code, and no way to downcast). The error policy ([`crate::error`]) must
//! tell a deadlock (`40P01`) from a statement timeout (`57014`) from a terminated session
//! (`57P01`), all `Unknown`, and must not read the server's message to do so (it follows
//! `lc_messages` and may be translated).
//!
//! So a [`Session`] reads the code where the server writes it: the socket. Its stream is
//! wrapped in a [`Tap`] that follows the backend protocol's framing (a type byte and a length
//! per message) and, for each `ErrorResponse`, keeps the `C` (SQLSTATE) and `M` (message)
//! fields of the latest one ([`HeardError`]). A statement runs on one session at a time, so
//! the latest error heard is the error diesel-async just returned; [`Session::sql_state`]
//! still checks that the two carry the same message (the same fields of the same wire
//! message, decoded twice) before it lends the code to the error, so a code is never
//! attributed to an error it did not come with.
//!
//! The tap copies nothing but error messages (a few hundred bytes, rare) and looks at five
//! header bytes per message otherwise. It never changes what flows through the stream.

use diesel::ConnectionResult;
use diesel::result::{ConnectionError, DatabaseErrorInformation};
use diesel_async::AsyncPgConnection;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// One database session: diesel-async's connection plus the SQLSTATE of the last server
/// error it received. Derefs to [`AsyncPgConnection`], so every diesel-async query runs on it.
pub struct Session {
    conn: AsyncPgConnection,
    heard: Arc<Mutex<Option<HeardError>>>,
}

/// The `ErrorResponse` fields the error policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeardError {
    code: String,
    message: String,
}

impl Session {
    /// Opens a session to `url` (a libpq-style URL or key/value string) over TCP or a Unix
    /// socket, without TLS (like diesel-async's own `establish`).
    ///
    /// # Errors
    /// The URL cannot be parsed, no host accepts the connection within the URL's
    /// `connect_timeout`, or the server refuses the start-up.
    pub async fn connect(url: &str) -> ConnectionResult<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| ConnectionError::BadConnection(format!("{e}")))?;
        let socket = Socket::open(&config)
            .await
            .map_err(|e| ConnectionError::BadConnection(format!("cannot connect: {e}")))?;
        let heard = Arc::new(Mutex::new(None));
        let tap = Tap::new(socket, heard.clone());
        let (client, connection) = config
            .connect_raw(tap, NoTls)
            .await
            .map_err(|e| ConnectionError::BadConnection(format!("{e}")))?;
        // The connection task ends when the client is dropped (or the socket closes); errors
        // of the socket itself reach the statements in flight as "connection closed".
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database session ended");
            }
        });
        let conn = AsyncPgConnection::try_from(client).await?;
        Ok(Self { conn, heard })
    }

    /// The SQLSTATE of `info`, when it is the last server error this session received.
    pub fn sql_state(&self, info: &dyn DatabaseErrorInformation) -> Option<String> {
        let heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard
            .as_ref()
            .filter(|heard| heard.message == info.message())
            .map(|heard| heard.code.clone())
    }
}

impl Deref for Session {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// TCP or Unix-domain socket, whichever the URL names first that accepts.
enum Socket {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Socket {
    async fn open(config: &tokio_postgres::Config) -> io::Result<Self> {
        let hosts = config.get_hosts();
        let ports = config.get_ports();
        let timeout = config.get_connect_timeout().copied();
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no host in the URL");
        for (i, host) in hosts.iter().enumerate() {
            // libpq: one port for every host, or one per host.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let attempt = async {
                match host {
                    Host::Tcp(name) => {
                        let stream = tokio::net::TcpStream::connect((name.as_str(), port)).await?;
                        stream.set_nodelay(true)?;
                        if config.get_keepalives() {
                            // What tokio-postgres' own connect sets (libpq's `keepalives*`, on
                            // by default, 2 h idle): a peer that vanished without a FIN is
                            // eventually noticed.
                            let mut keepalive = socket2::TcpKeepalive::new()
                                .with_time(config.get_keepalives_idle());
                            if let Some(interval) = config.get_keepalives_interval() {
                                keepalive = keepalive.with_interval(interval);
                            }
                            if let Some(retries) = config.get_keepalives_retries() {
                                keepalive = keepalive.with_retries(retries);
                            }
                            socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
                        }
                        Ok(Socket::Tcp(stream))
                    }
                    #[cfg(unix)]
                    Host::Unix(dir) => {
                        let path = dir.join(format!(".s.PGSQL.{port}"));
                        Ok(Socket::Unix(tokio::net::UnixStream::connect(path).await?))
                    }
                }
            };
            let outcome = match timeout {
                Some(limit) => tokio::time::timeout(limit, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
                None => attempt.await,
            };
            match outcome {
                Ok(socket) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Socket::Tcp($stream) => $call,
            #[cfg(unix)]
            Socket::Unix($stream) => $call,
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A stream that follows the server's messages as they are read and remembers the last
/// `ErrorResponse`. Writes pass through untouched.
struct Tap<S> {
    inner: S,
    framing: Framing,
    heard: Arc<Mutex<Option<HeardError>>>,
}

impl<S> Tap<S> {
    fn new(inner: S, heard: Arc<Mutex<Option<HeardError>>>) -> Self {
        Self {
            inner,
            framing: Framing::default(),
            heard,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            for error in this.framing.feed(&buf.filled()[before..]) {
                *this.heard.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Error messages longer than this are skipped rather than kept (PostgreSQL's are far
/// shorter; the bound keeps a hostile or broken peer from growing the buffer).
const MAX_ERROR_MESSAGE: usize = 64 * 1024;

/// The backend protocol's framing, fed chunk by chunk: every message after start-up is a type
/// byte, a big-endian `i32` length that counts itself, and a body.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; 5],
    header_filled: usize,
    /// Body bytes of the current message still to come.
    remaining: usize,
    /// The body of the current message, when it is an `ErrorResponse` being kept.
    error_body: Option<Vec<u8>>,
    /// A length below 4 was read: the framing is lost and the tap stops listening (the
    /// driver reports the broken stream itself).
    lost: bool,
}

impl Framing {
    /// Follows `bytes`; returns the `ErrorResponse`s completed in them.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<HeardError> {
        let mut completed = Vec::new();
        while !bytes.is_empty() && !self.lost {
            if self.remaining == 0 && self.error_body.is_none() {
                let take = (5 - self.header_filled).min(bytes.len());
                self.header[self.header_filled..self.header_filled + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_filled += take;
                bytes = &bytes[take..];
                if self.header_filled < 5 {
                    break;
                }
                self.header_filled = 0;
                let length = i32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                let Some(body) = usize::try_from(length).ok().and_then(|l| l.checked_sub(4)) else {
                    self.lost = true;
                    break;
                };
                self.remaining = body;
                if self.header[0] == b'E' && body <= MAX_ERROR_MESSAGE {
                    self.error_body = Some(Vec::with_capacity(body));
                }
            }
            let take = self.remaining.min(bytes.len());
            if let Some(body) = self.error_body.as_mut() {
                body.extend_from_slice(&bytes[..take]);
            }
            self.remaining -= take;
            bytes = &bytes[take..];
            if self.remaining == 0
                && let Some(body) = self.error_body.take()
            {
                completed.extend(error_fields(&body));
            }
        }
        completed
    }
}

/// The SQLSTATE (`C`) and message (`M`) of an `ErrorResponse` body: fields of one type byte
/// and a NUL-terminated string each, ended by a zero byte.
fn error_fields(body: &[u8]) -> Option<HeardError> {
    let (mut code, mut message) = (None, None);
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0)?;
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'C' => code = Some(value),
            b'M' => message = Some(value),
            _ => {}
        }
        rest = &tail[end + 1..];
    }
    Some(HeardError {
        code: code?,
        message: message?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(i32::try_from(body.len()).unwrap() + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn error_response(code: &str, text: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (field, value) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', text)] {
            body.push(field);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        message(b'E', &body)
    }

    /// A realistic stretch of server output: row data, an error, ready-for-query, a notice
    /// (whose fields look like an error's but are not one), another error.
    fn stream() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(message(b'D', b"\x00\x01\x00\x00\x00\x01E"));
        out.extend(message(b'C', b"SELECT 1\0"));
        out.extend(error_response("40P01", "deadlock detected"));
        out.extend(message(b'Z', b"E"));
        out.extend(message(b'N', b"SNOTICE\0C00000\0Mhello\0\0"));
        out.extend(error_response("57014", "Abbruch der Anweisung"));
        out.extend(message(b'Z', b"I"));
        out
    }

    #[test]
    fn every_error_response_is_heard_whatever_the_chunking() {
        let bytes = stream();
        let expected = vec![
            HeardError {
                code: "40P01".into(),
                message: "deadlock detected".into(),
            },
            HeardError {
                code: "57014".into(),
                message: "Abbruch der Anweisung".into(),
            },
        ];
        for chunk in 1..=bytes.len() {
            let mut framing = Framing::default();
            let heard: Vec<HeardError> = bytes
                .chunks(chunk)
                .flat_map(|piece| framing.feed(piece))
                .collect();
            assert_eq!(heard, expected, "chunks of {chunk} bytes");
        }
    }

    #[test]
    fn a_broken_length_stops_the_tap_instead_of_misreading() {
        let mut framing = Framing::default();
        let mut bytes = vec![b'E', 0, 0, 0, 2];
        bytes.extend(error_response("40P01", "deadlock detected"));
        assert!(framing.feed(&bytes).is_empty());
        assert!(framing.lost);
    }

    #[test]
    fn an_oversized_error_is_skipped_and_the_next_one_heard() {
        let mut framing = Framing::default();
        let huge = "x".repeat(MAX_ERROR_MESSAGE + 1);
        let mut bytes = error_response("XX000", &huge);
        bytes.extend(error_response("55P03", "lock not available"));
        let heard = framing.feed(&bytes);
        assert_eq!(heard.len(), 1);
        assert_eq!(heard[0].code, "55P03");
    }

    #[test]
    fn an_error_without_a_code_is_not_heard() {
        assert_eq!(error_fields(b"SERROR\0Mno code\0\0"), None);
        assert_eq!(error_fields(b"C40P01\0Munterminated"), None);
    }
}
