//! The stdio transport: one envelope per line in, one response per line
//! out, for agents that spawn tool servers as child processes. Requests are
//! handled concurrently (a long poll does not block the pipe), so replies
//! may come out of order: match them by `request_id`.

use crate::dispatch::Server;
use crate::error::CallError;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Most lines read and not yet answered.
pub const MAX_PENDING: usize = 64;

/// Reads lines from `input` until it closes, writes replies to `output`.
/// A line longer than `line_limit` bytes is answered with `too_large`.
pub async fn serve<R, W>(
    server: Server,
    mut input: R,
    mut output: W,
    line_limit: usize,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push(b'\n');
            output.write_all(&line).await?;
            output.flush().await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut tasks = tokio::task::JoinSet::new();
    // Backpressure: at most MAX_PENDING lines are read and not yet answered
    // (a permit is released only once the reply is queued for the writer,
    // whose queue is bounded too). A peer that stops reading stdout stops
    // its own input from being read, instead of growing memory.
    let pending = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_PENDING));
    loop {
        // Collect finished requests as we go, so a long-lived pipe does not
        // accumulate one finished task per line.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = std::sync::Arc::clone(&pending).acquire_owned().await else {
            break;
        };
        match read_line(&mut input, line_limit).await? {
            Line::Eof => break,
            Line::TooLong => {
                let reply = server.error_reply("", &CallError::TooLarge(line_limit));
                let _ = tx.send(reply.into_json()).await;
            }
            Line::Data(line) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let server = server.clone();
                let tx = tx.clone();
                tasks.spawn(async move {
                    let reply = server.handle(&line).await;
                    let _ = tx.send(reply.into_json()).await;
                    drop(permit);
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    writer.await.unwrap_or(Ok(()))
}

enum Line {
    Data(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads up to and excluding `\n` without buffering more than `limit` bytes.
async fn read_line<R: AsyncBufRead + Unpin>(input: &mut R, limit: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if line.is_empty() {
                Line::Eof
            } else {
                Line::Data(line)
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (buf.get(..i).unwrap_or_default(), Some(i)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > limit {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = found.map_or(buf.len(), |i| i + 1);
        input.consume(consumed);
        if found.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Data(line)
            });
        }
    }
}
