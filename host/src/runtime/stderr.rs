//! A plugin's stderr: always accepts writes, keeps only the last bytes.
//!
//! wasmtime's `MemoryOutputPipe` refuses writes past its capacity, and a
//! Rust guest's `eprintln!` turns a refused write into a panic: a chatty
//! plugin would fail its call for talking. This pipe keeps the tail (where
//! a panic message lands) and counts what it dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

/// Cheap to clone: every clone writes to the same tail.
#[derive(Clone, Debug)]
pub struct StderrTail {
    keep: usize,
    tail: Arc<Mutex<Tail>>,
}

impl StderrTail {
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            tail: Arc::default(),
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut tail = self.tail.lock().expect("stderr lock");
        tail.bytes.extend_from_slice(bytes);
        // Trim in batches so a stream of small writes stays linear.
        if tail.bytes.len() >= 2 * self.keep {
            let excess = tail.bytes.len() - self.keep;
            tail.bytes.drain(..excess);
            tail.dropped += excess as u64;
        }
    }

    /// The last bytes written (at most `keep`), as text.
    pub fn text(&self) -> String {
        let tail = self.tail.lock().expect("stderr lock");
        let kept = &tail.bytes[tail.bytes.len().saturating_sub(self.keep)..];
        String::from_utf8_lossy(kept).trim().to_owned()
    }

    /// Bytes written in all, kept or not.
    pub fn written(&self) -> u64 {
        let tail = self.tail.lock().expect("stderr lock");
        tail.dropped + tail.bytes.len() as u64
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    /// Always ready, but gives the scheduler a turn first: writes are host
    /// calls, which use no fuel, so a plugin writing stderr in a loop would
    /// otherwise never reach a fuel yield and hold its thread throughout.
    async fn ready(&mut self) {
        tokio::task::yield_now().await;
    }
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_counts_all_of_them() {
        let mut tail = StderrTail::new(8);
        for chunk in ["0123456789", "abcdefghij", "panic: end"] {
            OutputStream::write(&mut tail, Bytes::from(chunk)).unwrap();
        }
        assert_eq!(tail.text(), "nic: end");
        assert_eq!(tail.written(), 30);
        assert!(tail.check_write().unwrap() > 0, "never refuses a write");
    }
}

/// Plugin text made safe for one log line: line breaks and other control
/// characters are escaped (`\n`, `\u{1b}`), so a plugin cannot forge host
/// log lines or send terminal escapes to an operator's console.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn line_breaks_and_escapes_cannot_reach_the_log_raw() {
        let forged = "ok\n2026-01-01T00:00:00Z  INFO caxton: token=abc\r\x1b[2J";
        let line = one_line(forged);
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
        assert_eq!(
            line,
            "ok\\n2026-01-01T00:00:00Z  INFO caxton: token=abc\\r\\u{1b}[2J"
        );
        assert_eq!(one_line("plain ünïcode"), "plain ünïcode");
    }
}
