//! HTTP/1.1 messages on the wire: recorded ones parsed, requests sent to twitcher byte for
//! byte, answers read with their framing (length, chunked, until close).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Res;
use crate::bytes::find;

/// One HTTP message: start line, headers in order, decoded body.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// Request or status line.
    pub start: String,
    /// Headers as sent.
    pub headers: Vec<(String, String)>,
    /// Body without transfer encoding.
    pub body: Vec<u8>,
}

impl Message {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The status code of a response (0 when unreadable).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The method of a request.
    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or_default()
    }

    /// The target of a request.
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or_default()
    }
}

/// How a message's body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Start line and headers of a message head.
pub fn parse_head(head: &[u8]) -> Res<(String, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((start, headers))
}

/// The framing of a message (RFC 9112 §6.3, as far as the recordings need it).
fn framing(
    response: bool,
    head_request: bool,
    start: &str,
    headers: &[(String, String)],
) -> Res<Framing> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    if response {
        let status: u16 = start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if head_request || status / 100 == 1 || status == 204 || status == 304 {
            return Ok(Framing::Empty);
        }
    }
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(Framing::Chunked);
    }
    if let Some(len) = get("content-length") {
        return len
            .parse()
            .map(Framing::Length)
            .map_err(|_| format!("bad Content-Length {len:?}"));
    }
    Ok(if response {
        Framing::UntilClose
    } else {
        Framing::Empty
    })
}

/// Decodes a chunked body; `None` while it is incomplete.
fn dechunk(data: &[u8]) -> Res<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find(&data[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[pos..pos + eol]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("bad chunk size line {line:?}"))?;
        pos += eol + 2;
        if size == 0 {
            return Ok(Some(out));
        }
        if data.len() < pos + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[pos..pos + size]);
        pos += size + 2;
    }
}

/// Parses a complete recorded message.
pub fn parse_message(raw: &[u8], response: bool, head_request: bool) -> Res<Message> {
    let end = find(raw, b"\r\n\r\n").ok_or("message without end of head")?;
    let (start, headers) = parse_head(&raw[..end])?;
    let rest = &raw[end + 4..];
    let body = match framing(response, head_request, &start, &headers)? {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => rest[..n.min(rest.len())].to_vec(),
        Framing::Chunked => dechunk(rest)?.ok_or("incomplete chunked body")?,
        Framing::UntilClose => rest.to_vec(),
    };
    Ok(Message {
        start,
        headers,
        body,
    })
}

/// Reads one message from a connection, honouring its framing.
pub async fn read_message(
    stream: &mut TcpStream,
    response: bool,
    head_request: bool,
) -> Res<Message> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut more = async |stream: &mut TcpStream, buf: &mut Vec<u8>| -> Res<bool> {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    };
    let head_end = loop {
        if let Some(e) = find(&buf, b"\r\n\r\n") {
            break e;
        }
        if !more(stream, &mut buf).await? {
            return Err(format!(
                "connection closed after {} bytes, before the end of the head",
                buf.len()
            ));
        }
    };
    let (start, headers) = parse_head(&buf[..head_end])?;
    let at = head_end + 4;
    let body = match framing(response, head_request, &start, &headers)? {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => {
            while buf.len() < at + n {
                if !more(stream, &mut buf).await? {
                    return Err(format!("body ends after {} of {n} bytes", buf.len() - at));
                }
            }
            buf[at..at + n].to_vec()
        }
        Framing::Chunked => loop {
            if let Some(body) = dechunk(&buf[at..])? {
                break body;
            }
            if !more(stream, &mut buf).await? {
                return Err("chunked body cut off".into());
            }
        },
        Framing::UntilClose => {
            while more(stream, &mut buf).await? {}
            buf[at..].to_vec()
        }
    };
    Ok(Message {
        start,
        headers,
        body,
    })
}

/// Sends raw request bytes to twitcher and reads the response.
pub async fn send(addr: &str, raw: &[u8], head_request: bool) -> Res<Message> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.write_all(raw).await.map_err(|e| e.to_string())?;
        read_message(&mut stream, true, head_request).await
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .map_err(|_| "no answer within 30 s".to_string())?
}
