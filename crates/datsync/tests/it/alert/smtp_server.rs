//! A small but honest SMTP server for tests (RFC 5321 subset): greeting, EHLO/HELO,
//! optional AUTH PLAIN, MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT.
//! It listens on 127.0.0.1 (port 0), serves connections one after another and records
//! each accepted message with its envelope.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One message the server accepted.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The EHLO/HELO name the client gave.
    pub helo: String,
    /// The `AUTH PLAIN` argument (base64), when the client authenticated.
    pub auth_plain: Option<String>,
    /// The reverse path of MAIL FROM.
    pub mail_from: String,
    /// The forward paths of RCPT TO, in order.
    pub rcpt_to: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, lines joined with CRLF.
    pub data: String,
}

impl Received {
    /// The value of the first header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }

    /// The message body (after the blank line that ends the headers), decoded from its
    /// `Content-Transfer-Encoding` (7bit, 8bit or quoted-printable) as a mail reader would.
    pub fn body(&self) -> String {
        let raw = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        if encoding.eq_ignore_ascii_case("quoted-printable") {
            decode_quoted_printable(raw)
        } else {
            raw.to_owned()
        }
    }
}

/// A running test SMTP server; messages arrive on [`SmtpServer::messages`].
pub struct SmtpServer {
    /// `127.0.0.1:<port>` it listens on.
    pub addr: std::net::SocketAddr,
    /// Accepted messages, in order.
    pub messages: mpsc::UnboundedReceiver<Received>,
    /// Every command line received, for diagnostics.
    pub transcript: Arc<Mutex<Vec<String>>>,
}

impl SmtpServer {
    /// Starts a server; with `auth`, it advertises and accepts `AUTH PLAIN`.
    pub async fn start(auth: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, messages) = mpsc::unbounded_channel();
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&transcript);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve(stream, auth, &tx, &log).await;
            }
        });
        Self {
            addr,
            messages,
            transcript,
        }
    }
}

async fn serve(
    stream: TcpStream,
    auth: bool,
    tx: &mpsc::UnboundedSender<Received>,
    log: &Mutex<Vec<String>>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut msg = Received::default();
    macro_rules! reply {
        ($s:expr) => {
            if write
                .write_all(format!("{}\r\n", $s).as_bytes())
                .await
                .is_err()
            {
                return;
            }
        };
    }
    reply!("220 test.localhost ESMTP datsync-test");
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line.clone());
        let upper = line.to_ascii_uppercase();
        let verb = upper
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        match verb.as_str() {
            "EHLO" => {
                msg.helo = line[4..].trim().to_owned();
                if auth {
                    reply!("250-test.localhost greets you\r\n250-AUTH PLAIN\r\n250 SIZE 10485760");
                } else {
                    reply!("250-test.localhost greets you\r\n250 SIZE 10485760");
                }
            }
            "HELO" => {
                msg.helo = line[4..].trim().to_owned();
                reply!("250 test.localhost");
            }
            "AUTH" if auth && upper.starts_with("AUTH PLAIN ") => {
                msg.auth_plain = Some(line[11..].trim().to_owned());
                reply!("235 2.7.0 authentication successful");
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                msg.mail_from = path_of(&line[10..]);
                msg.rcpt_to.clear();
                reply!("250 2.1.0 ok");
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                msg.rcpt_to.push(path_of(&line[8..]));
                reply!("250 2.1.5 ok");
            }
            "DATA" if !msg.rcpt_to.is_empty() => {
                reply!("354 end data with <CR><LF>.<CR><LF>");
                let mut data = Vec::new();
                loop {
                    let Ok(Some(l)) = lines.next_line().await else {
                        return;
                    };
                    if l == "." {
                        break;
                    }
                    data.push(l.strip_prefix('.').map_or(l.clone(), str::to_owned));
                }
                msg.data = data.join("\r\n");
                let _ = tx.send(msg.clone());
                reply!("250 2.0.0 queued");
            }
            "RSET" => {
                msg.mail_from.clear();
                msg.rcpt_to.clear();
                reply!("250 2.0.0 ok");
            }
            "NOOP" => reply!("250 2.0.0 ok"),
            "QUIT" => {
                reply!("221 2.0.0 bye");
                return;
            }
            _ => reply!("502 5.5.2 command not recognized"),
        }
    }
}

/// `<a@b>` or `<a@b> SIZE=12` → `a@b`.
fn path_of(arg: &str) -> String {
    let arg = arg.trim();
    let end = arg.find('>').map_or(arg.len(), |i| i + 1);
    arg[..end]
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// RFC 2045 quoted-printable: `=\r\n` is a soft line break, `=XX` a byte in hex.
fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'=')
            .then(|| joined.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(byte) = hex {
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
