//! Failing upstreams, each a real misbehaving server on loopback: the failure contract a client
//! of the gateway relies on (502 unreachable, 504 silent, a broken body stays broken, a stream
//! is not cut while it flows, a client that leaves frees the upstream).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use wasmgate_tests::{Harness, Proto};

fn route_to(upstream: SocketAddr) -> String {
    format!(
        "[[routes]]\nname = \"faulty\"\nprefix = \"/\"\nupstream = \"http://{upstream}\"\nconnect_timeout_ms = 1000\ntimeout_ms = 300\n"
    )
}

/// Reads one request head from `stream` (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_without_its_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let h = Harness::start(&route_to(addr)).await;
    let started = Instant::now();
    let r = h.send(Proto::Https1, "GET", "/x", &[], "").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["message"], "the upstream could not be reached");
    assert!(!String::from_utf8_lossy(&r.body).contains(&addr.port().to_string()));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_after_the_route_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let h = Harness::start(&route_to(addr)).await;
    let started = Instant::now();
    let r = h.send(Proto::Http1, "GET", "/x", &[], "").await;
    let waited = started.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["message"], "the upstream did not answer in time");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn an_upstream_that_dies_mid_body_gives_the_client_a_broken_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial...")
                .await;
            // Gone before the promised 1000 bytes.
            drop(stream);
        }
    });
    let h = Harness::start(&route_to(addr)).await;
    for proto in [Proto::Http1, Proto::Https2] {
        let tcp_addr = match proto {
            Proto::Http1 => h.gateway.server.http_addr(),
            _ => h.gateway.server.https_addr(),
        }
        .unwrap();
        let outcome = raw_body(tcp_addr, proto, &h).await;
        assert!(
            outcome.is_err(),
            "{proto:?}: the client must not see a clean end: {outcome:?}"
        );
    }
}

/// Sends GET /x and reads the body, returning whether it ended cleanly.
async fn raw_body(addr: SocketAddr, proto: Proto, h: &Harness) -> Result<Bytes, String> {
    let request = || {
        Request::get(format!("https://localhost:{}/x", addr.port()))
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    let response = if proto == Proto::Http1 {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = request();
        *req.uri_mut() = "/x".parse().unwrap();
        sender.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let tls = wasmgate_tests::client_tls(&h.dir.path().join("tls/cert.pem"));
        let mut config = (*tls).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        sender
            .send_request(request())
            .await
            .map_err(|e| e.to_string())?
    };
    assert_eq!(response.status(), 200, "the head came through");
    response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_slow_stream_is_not_cut_while_bytes_flow() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut stream).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                // Ten tokens 100 ms apart: a second in all, over three times the route timeout.
                for i in 0..10 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let chunk = format!("tok{i} ");
                    let _ = stream
                        .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
                        .await;
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    let h = Harness::start(&route_to(addr)).await;
    let r = h.send(Proto::Https2, "GET", "/stream", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 "
    );
}

/// An upstream that takes one request and never answers it. The first receiver says when the
/// request's head has arrived; the second whether the gateway then closed the connection within
/// `wait` (the request body may still arrive; only the end of the connection counts).
async fn never_answering_upstream(
    wait: Duration,
) -> (SocketAddr, oneshot::Receiver<()>, oneshot::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        let _ = seen_tx.send(());
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(wait, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok();
        let _ = closed_tx.send(closed);
    });
    (addr, seen_rx, closed_rx)
}

#[tokio::test]
async fn a_client_that_leaves_frees_the_upstream() {
    // Inference "in progress": the upstream waits to see whether the gateway hangs up.
    let (addr, seen_rx, closed_rx) = never_answering_upstream(Duration::from_secs(5)).await;
    let mut text = route_to(addr);
    text = text.replace("timeout_ms = 300", "timeout_ms = 10000");
    let h = Harness::start(&text).await;
    let gateway = h.gateway.server.http_addr().unwrap();
    let mut client = TcpStream::connect(gateway).await.unwrap();
    client
        .write_all(b"POST /predict HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    seen_rx.await.expect("the upstream got the request");
    drop(client);
    let closed = tokio::time::timeout(Duration::from_secs(6), closed_rx)
        .await
        .expect("the upstream task ended")
        .unwrap();
    assert!(
        closed,
        "the gateway closed the upstream request when the client left"
    );
}

#[tokio::test]
async fn shutdown_closes_connections_still_busy_after_the_shutdown_timeout() {
    let (addr, seen_rx, closed_rx) = never_answering_upstream(Duration::from_secs(20)).await;
    // The upstream may take a minute to answer; shutdown gives requests 300 ms.
    let routes = route_to(addr).replace("timeout_ms = 300", "timeout_ms = 60000");
    let h = Harness::start_full("shutdown_timeout_ms = 300", move |_| routes).await;
    let mut client = TcpStream::connect(h.gateway.server.http_addr().unwrap())
        .await
        .unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), seen_rx)
        .await
        .expect("the upstream got the request in time")
        .unwrap();

    let Harness {
        gateway,
        upstream: _upstream,
        dir: _dir,
        ..
    } = h;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), gateway.shutdown())
        .await
        .expect("shutdown returned");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "shutdown waited out the 300 ms drain and no longer: {took:?}"
    );

    // The client's connection is closed, without an answer, well before the upstream's minute.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the client's connection is still open after shutdown"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "{answer:?}"
    );
    // And the upstream request it was waiting on was cancelled.
    let closed = tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the upstream saw the end")
        .unwrap();
    assert!(closed, "the gateway closed the upstream connection");
}
