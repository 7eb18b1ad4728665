//! A real server on 127.0.0.1:0, a fake HTTP server, and a dropping proxy.

use lacre_client::{Client, ServerTrust};
use lacre_proto::SigningKey;
use lacre_server::{Server, ToolFilter, WorkerConfig, Workers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SERVER_ID: &str = "mcp-server-001";
pub const SERVER_SECRET: &[u8] = b"server_secret_key_123";
pub const CLIENT_SECRET: &[u8] = b"client_secret_key_456";

pub fn client(url: &str) -> Client {
    Client::builder(url, "client-001", SERVER_ID)
        .key(SigningKey::hmac(CLIENT_SECRET).unwrap())
        .trust(ServerTrust::Key(
            SigningKey::hmac(SERVER_SECRET).unwrap().verifying_key(),
        ))
        .call_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
}

pub struct RealServer {
    pub addr: std::net::SocketAddr,
    pub server: Server,
    _workers: Workers,
}

pub async fn real_server() -> RealServer {
    real_server_with_key(SigningKey::hmac(SERVER_SECRET).unwrap()).await
}

/// A real server signing with `key`, for client-001 (HMAC `CLIENT_SECRET`).
pub async fn real_server_with_key(key: SigningKey) -> RealServer {
    let server = Server::builder(SERVER_ID, key)
        .client(
            "client-001",
            [SigningKey::hmac(CLIENT_SECRET).unwrap().verifying_key()],
            ToolFilter::All,
        )
        .unwrap()
        .build();
    let workers = server.start_workers(WorkerConfig::default());
    let (listener, addr) = lacre_server::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    tokio::spawn(lacre_server::http::serve(
        listener,
        server.clone(),
        1 << 20,
        std::future::pending(),
    ));
    RealServer {
        addr,
        server,
        _workers: workers,
    }
}

/// Reads one HTTP/1.1 request; returns its head and body.
pub async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..head_end + len].to_vec()))
}

pub async fn write_response(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

/// A fake server answering every request with `answer(request_body)`.
pub async fn fake_server<F>(answer: F) -> String
where
    F: Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                while let Some((_, body)) = read_request(&mut stream).await {
                    let reply = answer(&body);
                    write_response(&mut stream, 200, &reply).await;
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}
