//! The demo model server over real sockets: predictions, every kind of malformed request, the
//! routing answers, keep-alive, the recorder and shutdown.

use std::net::SocketAddr;

use demo_model::{BODY_LIMIT, DemoHandle, FEATURES, PREDICTION_PATH, Recorder, predict};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEED: [f64; FEATURES] = [
    0.0137, -0.1136, 0.2553, -0.0692, 0.0582, -0.0727, -0.1583, -0.0584, 0.6283, 0.4919, 0.1856,
    0.0795, -0.0332,
];

async fn start() -> (DemoHandle, Recorder) {
    let mut server = demo_model::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let recorder = server.recorder();
    (server.spawn(), recorder)
}

/// One HTTP/1.1 client connection.
async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "demo")
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        json: serde_json::from_slice(&body)
            .unwrap_or_else(|err| panic!("answer is not JSON ({err}): {body:?}")),
    }
}

async fn post(addr: SocketAddr, body: impl Into<Bytes>) -> Answer {
    send(
        &mut connect(addr).await,
        Method::POST,
        PREDICTION_PATH,
        body,
    )
    .await
}

fn assert_error(answer: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json["err_no"], status.as_u16(), "{}", answer.json);
    let message = answer.json["err_msg"].as_str().unwrap();
    assert!(message.contains(needle), "`{message}` lacks `{needle}`");
}

#[tokio::test]
async fn predicts_the_readme_request() {
    let (server, _) = start().await;
    let body = json!({ "feed": [{ "x": SEED }], "fetch": ["price"] });
    let answer = post(server.local_addr(), body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.headers["content-type"], "application/json");
    let price = answer.json["result"]["price"][0][0].as_f64().unwrap();
    assert!((18.0..20.0).contains(&price), "{price}");
    assert_eq!(price, predict(&SEED));
    assert_eq!(answer.json["result"]["price"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn several_feed_entries_give_several_rows() {
    let (server, _) = start().await;
    let zeros = [0.0; FEATURES];
    let body =
        json!({ "feed": [{ "x": SEED }, { "x": zeros }, { "x": SEED }], "fetch": ["price"] });
    let answer = post(server.local_addr(), body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json,
        json!({ "result": { "price": [[predict(&SEED)], [predict(&zeros)], [predict(&SEED)]] } })
    );
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_problem() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    let x = json!(SEED);
    let cases = [
        ("not json".to_owned(), "not valid JSON"),
        (json!({ "fetch": ["price"] }).to_string(), "missing field `feed`"),
        (json!({ "feed": [{ "x": [1, 2, 3] }], "fetch": ["price"] }).to_string(), "feed[0].x has 3 numbers, the model expects 13"),
        (
            json!({ "feed": [{ "x": x }, { "x": [0, 0, 0, 0, 0, null, 0, 0, 0, 0, 0, 0, 0] }], "fetch": ["price"] }).to_string(),
            "feed[1].x[5] is not a number",
        ),
        (json!({ "feed": [{ "x": x }] }).to_string(), "missing field `fetch`"),
        (json!({ "feed": [{ "x": x }], "fetch": ["cost"] }).to_string(), "fetch[0] names unknown variable `cost`"),
    ];
    for (body, needle) in cases {
        assert_error(&post(addr, body).await, StatusCode::BAD_REQUEST, needle);
    }
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let (server, _) = start().await;
    let answer = post(server.local_addr(), vec![b' '; BODY_LIMIT + 1]).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "larger than");
}

#[tokio::test]
async fn chunked_body_over_the_limit_gets_413() {
    let (server, _) = start().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let head = format!(
        "POST {PREDICTION_PATH} HTTP/1.1\r\nhost: demo\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..=(BODY_LIMIT / chunk.len()) {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break; // the server answered and closed early
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn other_paths_get_404_and_other_methods_405() {
    let (server, _) = start().await;
    let mut sender = connect(server.local_addr()).await;
    let answer = send(&mut sender, Method::POST, "/uci/other", "{}").await;
    assert_error(&answer, StatusCode::NOT_FOUND, "/uci/other");
    let answer = send(&mut sender, Method::GET, PREDICTION_PATH, "").await;
    assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "GET");
    assert_eq!(answer.headers["allow"], "POST");
}

#[tokio::test]
async fn one_connection_serves_many_requests() {
    let (server, recorder) = start().await;
    let mut sender = connect(server.local_addr()).await;
    let body = json!({ "feed": [{ "x": SEED }], "fetch": ["price"] }).to_string();
    for _ in 0..3 {
        let answer = send(&mut sender, Method::POST, PREDICTION_PATH, body.clone()).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // A bad request does not close the connection either.
    let answer = send(&mut sender, Method::POST, PREDICTION_PATH, "{").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = send(&mut sender, Method::POST, PREDICTION_PATH, body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(recorder.count(), 5);
}

#[tokio::test]
async fn recorder_sees_method_path_headers_and_body() {
    let (server, recorder) = start().await;
    assert!(recorder.last_request().is_none());
    let mut sender = connect(server.local_addr()).await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/uci/prediction?trace=1")
        .header("host", "demo")
        .header("x-instance-id", "kong_ins")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let seen = recorder.last_request().unwrap();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/uci/prediction?trace=1");
    assert_eq!(seen.headers["x-instance-id"], "kong_ins");
    let multi: Vec<_> = seen.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["a", "b"]);
    assert_eq!(seen.body, "{}");
    assert_eq!(recorder.count(), 1);

    let answer = send(&mut sender, Method::DELETE, "/elsewhere", "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let seen = recorder.last_request().unwrap();
    assert_eq!(
        (seen.method, seen.path.as_str()),
        (Method::DELETE, "/elsewhere")
    );
    assert_eq!(recorder.count(), 2);
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_idle_connections() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // Let the server accept the idle connection before it stops.
    let mut sender = connect(addr).await;
    let answer = send(&mut sender, Method::GET, "/", "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    tokio::time::timeout(std::time::Duration::from_secs(3), server.shutdown())
        .await
        .expect("shutdown with only idle connections is quick");
    assert!(TcpStream::connect(addr).await.is_err());
    let mut buf = [0; 16];
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let (server, _) = start().await;
    let addr = server.local_addr();
    drop(server);
    // The abort lands at the task's next poll.
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{addr} still accepts after the handle was dropped");
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let (server, recorder) = start().await;
    let addr = server.local_addr();
    let body = json!({ "feed": [{ "x": SEED }], "fetch": ["price"] }).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {PREDICTION_PATH} HTTP/1.1\r\nhost: demo\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // Give the server time to accept the connection and start reading the body.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(recorder.count(), 0, "the body is not complete yet");

    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the request");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );

    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"price\""), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(3), shutdown)
        .await
        .expect("shutdown ends once the request is answered")
        .unwrap();
}
