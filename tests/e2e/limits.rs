//! Hostile clients: bodies too large or too slow, headers that never end, smuggling shapes,
//! and paths in absolute form. Each is refused at its limit, and other clients do not wait.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmgate_tests::{DEMO_BODY, Harness, Proto, SEED_ROUTE};

const LIMITS: &str =
    "header_read_timeout_ms = 300\nbody_read_timeout_ms = 300\nmax_body_bytes = 1000";

const OPEN_ROUTE: &str = "[[routes]]\nname = \"open\"\nprefix = \"/\"\nupstream = \"{upstream}\"\n";

async fn start(routes: &str) -> Harness {
    let routes = routes.to_string();
    Harness::start_full(LIMITS, move |_| routes).await
}

/// Writes `bytes` to a new plain connection and reads until the gateway closes it (bounded).
async fn exchange(h: &Harness, bytes: &[u8], pause_after: Option<Duration>) -> (String, Duration) {
    let mut tcp = TcpStream::connect(h.gateway.server.http_addr().unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    tcp.write_all(bytes).await.unwrap();
    if let Some(p) = pause_after {
        tokio::time::sleep(p).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_anything_runs() {
    let h = start(SEED_ROUTE).await;
    let big = "x".repeat(1001);
    let r = h
        .send(
            Proto::Https1,
            "POST",
            "/serving-uci/uci/prediction",
            &[],
            &big,
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json()["message"],
        "the request body is larger than 1000 bytes"
    );
    assert_eq!(h.recorder.count(), 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let h = start(OPEN_ROUTE).await;
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /uci/prediction HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n{0:x}\r\n{1}\r\n{0:x}\r\n{1}\r\n0\r\n\r\n",
        chunk.len(),
        chunk
    );
    let (answer, _) = exchange(&h, request.as_bytes(), None).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_body_that_stalls_is_408_at_the_body_deadline() {
    let h = start(OPEN_ROUTE).await;
    let started = Instant::now();
    let (answer, _) = exchange(
        &h,
        b"POST /uci/prediction HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"feed\"",
        None,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn headers_that_never_end_are_cut_off_and_others_are_served_meanwhile() {
    // A longer header deadline than the other tests', so that "served meanwhile" is told apart
    // from "served after the slow client was dropped" even on a loaded machine.
    let h = Harness::start_full("header_read_timeout_ms = 2000", |_| OPEN_ROUTE.to_string()).await;
    let slow = async {
        let (answer, waited) =
            exchange(&h, b"GET /uci/prediction HTTP/1.1\r\nhost: local", None).await;
        assert!(!answer.contains("200 OK"), "{answer}");
        waited
    };
    let others = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let r = h
            .send(Proto::Http1, "POST", "/uci/prediction", &[], DEMO_BODY)
            .await;
        assert_eq!(r.status, 200);
        started.elapsed()
    };
    let (slow_waited, other_took) = tokio::join!(slow, others);
    assert!(
        slow_waited >= Duration::from_millis(2000) && slow_waited < Duration::from_secs(5),
        "the slow client was closed at the header deadline: {slow_waited:?}"
    );
    assert!(
        other_took < Duration::from_secs(1),
        "another client waited {other_took:?}"
    );
}

#[tokio::test]
async fn a_connection_that_says_nothing_is_closed_at_the_header_deadline() {
    let h = start(OPEN_ROUTE).await;
    let (answer, waited) = exchange(&h, b"", None).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn smuggling_shapes_are_refused_or_reframed_never_passed_on() {
    let h = start(OPEN_ROUTE).await;
    // Two lengths, or a length that is not a number: refused outright.
    for request in [
        &b"POST /uci/prediction HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"[..],
        b"POST /uci/prediction HTTP/1.1\r\nhost: x\r\ncontent-length: 5x\r\n\r\nhello",
        b"POST /uci/prediction HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\nhello",
    ] {
        let (answer, _) = exchange(&h, request, None).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    assert_eq!(h.recorder.count(), 0, "nothing reached the upstream");

    // Both framings: the body is read as chunked (RFC 9112 6.1), the length is dropped, and the
    // connection is closed after the answer, so the request hidden behind the body is never
    // read. The upstream gets one request, framed one way.
    let (answer, _) = exchange(
        &h,
        b"POST /uci/prediction HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n",
        None,
    )
    .await;
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then the connection closed: {answer}"
    );
    assert_eq!(h.recorder.count(), 1);
    let seen = h.recorder.last_request().unwrap();
    assert_eq!(
        seen.path, "/uci/prediction",
        "the hidden GET /admin never went upstream"
    );
    assert!(
        seen.headers.get("content-length").is_none()
            || seen.headers.get("transfer-encoding").is_none()
    );
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_on_its_canonical_path() {
    let h = start(SEED_ROUTE).await;
    let request = |target: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nhost: localhost\r\nx-instance-id: kong_ins\r\napikey: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{DEMO_BODY}",
            wasmgate_tests::DEMO_KEY,
            DEMO_BODY.len()
        )
    };
    let (answer, _) = exchange(
        &h,
        request("http://localhost/serving-uci/uci/./prediction").as_bytes(),
        None,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(h.recorder.last_request().unwrap().path, "/uci/prediction");
    let (answer, _) = exchange(
        &h,
        request("http://localhost/serving-uci/../uci/prediction").as_bytes(),
        None,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(h.recorder.count(), 1);
}

#[tokio::test]
async fn an_upstream_stream_that_stalls_ends_broken_at_the_idle_deadline() {
    use tokio::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                    )
                    .await;
                // Then nothing, for far longer than the idle timeout.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let routes = format!(
        "[[routes]]\nname = \"stalls\"\nprefix = \"/\"\nupstream = \"http://{addr}\"\nidle_timeout_ms = 300\n"
    );
    let h = start(&routes).await;
    let started = Instant::now();
    let (answer, _) = exchange(&h, b"GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n", None).await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("first"), "{answer}");
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "no clean end of the chunked body: {answer:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
