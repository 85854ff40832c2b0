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

/// Sends one keep-alive GET on `tcp` and reads its answer's head and (length-delimited) body.
async fn get_keep_alive(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET /uci/prediction HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    read_answer(tcp).await
}

/// Reads one answer (head and a `content-length` body) from `tcp`.
async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let chunked = text[..end]
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            if (chunked && text.ends_with("0\r\n\r\n"))
                || (!chunked && got.len() >= end + 4 + length)
            {
                return text;
            }
        }
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn at_the_connection_cap_idle_connections_hold_their_places_and_the_next_waits() {
    let h = Harness::start_full("max_connections = 2", |_| OPEN_ROUTE.to_string()).await;
    let plain = h.gateway.server.http_addr().unwrap();
    // Two connections served once, then left open and idle (keep-alive).
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(plain).await.unwrap();
        let answer = get_keep_alive(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        idle.push(tcp);
    }
    // The third is accepted by the kernel, but the gateway does not take it up.
    let mut third = TcpStream::connect(plain).await.unwrap();
    third
        .write_all(b"GET /uci/prediction HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(700), third.read(&mut byte))
            .await
            .is_err(),
        "a third connection was served past max_connections = 2"
    );
    // The cap is per listener: HTTPS still serves meanwhile.
    let r = h
        .send(Proto::Https1, "POST", "/uci/prediction", &[], DEMO_BODY)
        .await;
    assert_eq!(r.status, 200);
    // One idle connection goes: the waiting one is served.
    drop(idle.pop());
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut third))
        .await
        .expect("the waiting connection was served once a place was free");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // The remaining idle connection is still open and served.
    let answer = get_keep_alive(&mut idle[0]).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}

/// One HTTP/2 frame: a 9-byte header and its payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `GET /` on `stream` (HEADERS with END_STREAM and END_HEADERS; HPACK: `:method GET`,
/// `:scheme http`, `:path /` from the static table, `:authority localhost` as a literal).
fn h2_get(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 9];
    block.extend_from_slice(b"localhost");
    h2_frame(0x1, 0x5, stream, &block)
}

/// RST_STREAM(CANCEL) on `stream`.
fn h2_cancel(stream: u32) -> Vec<u8> {
    h2_frame(0x3, 0, stream, &8u32.to_be_bytes())
}

/// Opens an h2c connection (prior knowledge) and writes, in one go, `resets` streams each opened
/// and reset at once.
async fn h2_rapid_reset(addr: std::net::SocketAddr, resets: u32) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut flood = H2_PREFACE.to_vec();
    flood.extend(h2_frame(0x4, 0, 0, &[]));
    for i in 0..resets {
        let stream = 1 + 2 * i;
        flood.extend(h2_get(stream));
        flood.extend(h2_cancel(stream));
    }
    tcp.write_all(&flood).await.unwrap();
    tcp
}

/// Reads frames until the connection ends or `until` accepts one (type, flags, stream, payload).
async fn h2_read_until(
    tcp: &mut TcpStream,
    mut until: impl FnMut(u8, u8, u32, &[u8]) -> bool,
) -> Option<(u8, Vec<u8>)> {
    loop {
        let mut head = [0u8; 9];
        tcp.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.ok()?;
        if until(head[3], head[4], stream, &payload) {
            return Some((head[3], payload));
        }
    }
}

#[tokio::test]
async fn h2_rapid_reset_is_answered_with_goaway_and_others_are_served() {
    // No route matches `/`: every stream that does get through is a 404 made by the gateway,
    // so no upstream connection outlives the test's connections.
    let h = Harness::start_full("h2_max_pending_reset_streams = 50", |_| {
        "[[routes]]\nname = \"api\"\nprefix = \"/api\"\nupstream = \"{upstream}\"\n".to_string()
    })
    .await;
    let plain = h.gateway.server.http_addr().unwrap();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = tasks();

    // Under the cap: the connection stays up and serves the next stream.
    let mut tcp = h2_rapid_reset(plain, 40).await;
    tcp.write_all(&h2_get(81)).await.unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        h2_read_until(&mut tcp, |kind, _, stream, _| {
            kind == 0x7 || (kind == 0x1 && stream == 81)
        }),
    )
    .await
    .expect("an answer in time");
    assert_eq!(
        answered.map(|(kind, _)| kind),
        Some(0x1),
        "40 resets under a cap of 50: the next stream is answered, no GOAWAY"
    );
    drop(tcp);

    // Far over it: GOAWAY with ENHANCE_YOUR_CALM, then the connection is closed.
    let mut tcp = h2_rapid_reset(plain, 1000).await;
    let goaway = tokio::time::timeout(
        Duration::from_secs(10),
        h2_read_until(&mut tcp, |kind, _, _, _| kind == 0x7),
    )
    .await
    .expect("the server reacted in time")
    .expect("a GOAWAY before the connection ended");
    let code = u32::from_be_bytes(goaway.1[4..8].try_into().unwrap());
    assert_eq!(code, 0xb, "GOAWAY ENHANCE_YOUR_CALM");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("the connection was closed after the GOAWAY")
        .ok();

    // Other clients are served, on both protocols.
    let started = Instant::now();
    for proto in [Proto::Http1, Proto::Https2] {
        let r = h.send(proto, "GET", "/", &[], "").await;
        assert_eq!(r.status, 404, "{proto:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Nothing of the flooding connections is left running: every task they started has ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tasks() > baseline && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        tasks() <= baseline,
        "{} tasks alive, {baseline} before the floods",
        tasks()
    );
}

#[tokio::test]
async fn a_partial_h2_preface_is_closed_at_the_header_deadline() {
    let h = start(OPEN_ROUTE).await;
    let (answer, waited) = exchange(&h, b"PRI * HTTP/2.0\r\n", None).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed at the 300 ms deadline, not left waiting for the rest: {waited:?}"
    );

    // A preface that arrives in pieces within the deadline is h2c as before.
    let mut tcp = TcpStream::connect(h.gateway.server.http_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(&H2_PREFACE[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut rest = H2_PREFACE[10..].to_vec();
    rest.extend(h2_frame(0x4, 0, 0, &[]));
    rest.extend(h2_get(1));
    tcp.write_all(&rest).await.unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        h2_read_until(&mut tcp, |kind, _, stream, _| kind == 0x1 && stream == 1),
    )
    .await
    .expect("answered in time");
    assert!(answered.is_some(), "the h2c request was answered");
}
