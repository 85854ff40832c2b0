//! `bench-upstream ADDR`: a fixed-answer HTTP/1.1 upstream for the load benchmark. Every request
//! gets `200` with the same small JSON body after its own body is read, on keep-alive
//! connections, from one thread, so the upstream costs the same whichever proxy is in front.
//! `GET /__bench/echo` answers with the path and headers it received instead, so the benchmark
//! can check once, before measuring, that each proxy did the job (prefix stripped, key removed).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmgate_benches::UPSTREAM_ANSWER;

/// The request as received, one `name: value` per line after the path.
fn echo(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut text = format!("path: {}\n", req.uri());
    for (name, value) in req.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    Response::new(Full::new(Bytes::from(text)))
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/__bench/echo" {
        return Ok(echo(&req));
    }
    // Read the body whole, as a model server would, before answering.
    let _ = req.into_body().collect().await;
    let mut res = Response::new(Full::new(Bytes::from_static(UPSTREAM_ANSWER.as_bytes())));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9393".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("bench-upstream listening on {}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tcp), service_fn(answer))
                    .await;
            });
        }
    })
}
