//! Raw HTTP, for what reqwest will not send; the soak and memory readings.

use super::*;

// Raw HTTP, for what reqwest will not send.

pub(super) fn addr_of(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP/1.1 response with a Content-Length.
pub(super) async fn read_response(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<(u16, String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line: {head}"))?;
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let ct = header("content-type").unwrap_or_default();
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no content-length: {head}"))?;
            let mut body = buf[end + 4..].to_vec();
            while body.len() < len {
                let n = r.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed inside the body".into());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
            return Ok((status, ct, body));
        }
        let n = r.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// POSTs `body` (with its Content-Length) from one task while reading the
/// reply in another, so that an early reply is read even if the server
/// stops reading the body.
pub(super) async fn post_concurrently(
    addr: &str,
    body: Vec<u8>,
) -> Result<(u16, String, Vec<u8>), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body.chunks(64 * 1024) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        // Keep the connection open until the reply has been read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let reply = tokio::time::timeout(Duration::from_secs(20), read_response(&mut rd)).await;
    writer.abort();
    reply.map_err(|_| "no reply within 20 s".to_owned())?
}

/// Announces a 100 MiB body (by Content-Length, or chunked without end)
/// and streams at most 8 MiB of it, lazily, while reading the reply.
/// Returns the reply and how many body bytes were written.
pub(super) async fn stream_huge(
    s: &TestServer,
    chunked: bool,
) -> Result<(u16, String, Vec<u8>, usize), String> {
    let stream = TcpStream::connect(addr_of(s))
        .await
        .map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", 100u64 << 20)
    };
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    wr.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent2 = Arc::clone(&sent);
    let writer = tokio::spawn(async move {
        let block = vec![b' '; 64 * 1024];
        let size_line = format!("{:x}\r\n", block.len());
        while sent2.load(std::sync::atomic::Ordering::Relaxed) < 8 << 20 {
            let r = if chunked {
                async {
                    wr.write_all(size_line.as_bytes()).await?;
                    wr.write_all(&block).await?;
                    wr.write_all(b"\r\n").await
                }
                .await
            } else {
                wr.write_all(&block).await
            };
            if r.is_err() {
                break;
            }
            sent2.fetch_add(block.len(), std::sync::atomic::Ordering::Relaxed);
        }
        // Keep the connection half open: never finish the body.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
    });
    let reply = tokio::time::timeout(Duration::from_secs(15), read_response(&mut rd)).await;
    writer.abort();
    let (status, ct, body) = reply.map_err(|_| "no reply within 15 s".to_owned())??;
    Ok((
        status,
        ct,
        body,
        sent.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Serializes the tests that send many megabytes, so that the memory
/// measurement of one is not the allocation of another.
pub(super) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `tasks` concurrent clients each send `per_task` near-limit hostile
/// bodies (a 60 KB truncated envelope, 10 000 nested objects, a valid
/// envelope padded to 64 KiB) and check each reply. Returns the bytes sent.
pub(super) async fn soak(s: &TestServer, tasks: usize, per_task: usize) -> Result<u64, String> {
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let http = s.http.clone();
        let url = s.url.clone();
        set.spawn(async move {
            let mut sent = 0u64;
            for i in 0..per_task {
                let (body, expect) = match (task + i) % 3 {
                    0 => {
                        let e = sum();
                        let mut b = Raw::of(&e).set("nonce", q(&"n".repeat(60_000))).bytes();
                        b.truncate(b.len() - 2);
                        (b, bad(""))
                    }
                    1 => {
                        let e = sum();
                        let body = Raw::of(&e)
                            .set("args", format!(r#"{{"numbers":{}}}"#, nest_objects(10_000)))
                            .bytes();
                        (body, bad(""))
                    }
                    _ => {
                        let e = sum();
                        let mut b = e.to_json();
                        b.resize(BODY_LIMIT, b'\n');
                        (b, ok(&e.request_id))
                    }
                };
                sent += body.len() as u64;
                let resp = http
                    .post(&url)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("request {task}/{i}: {e}"))?;
                let status = resp.status().as_u16();
                let ct = content_type(&resp);
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| format!("reply {task}/{i}: {e}"))?;
                check_reply(status, ct.as_deref(), &bytes, &body, &expect)
                    .map_err(|e| format!("request {task}/{i}: {e}"))?;
            }
            Ok::<u64, String>(sent)
        });
    }
    let mut total = 0;
    while let Some(joined) = set.join_next().await {
        total += joined.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

pub(super) fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}
