//! Bodies under guard: the request body a client sends (a size cap and an idle deadline, so a
//! slow or endless upload cannot hold a connection), and the response body an upstream streams
//! (an idle deadline, so a stalled stream ends while a slow one that keeps flowing does not).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a guarded body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Cutoff {
    /// More bytes than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    /// No bytes for longer than the idle deadline.
    #[error("no body bytes for {} ms", .0.as_millis())]
    Idle(Duration),
}

/// The error a guarded body ends with.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Cut off by the guard.
    #[error(transparent)]
    Cutoff(#[from] Cutoff),
    /// The underlying body failed.
    #[error(transparent)]
    Inner(#[from] hyper::Error),
}

/// Where the proxy learns that a body it handed to the upstream client was cut off, to answer
/// the client 413 or 408 rather than blaming the upstream.
pub type Tripwire = Arc<OnceLock<Cutoff>>;

/// A body with a size limit and an idle deadline.
pub struct Guarded<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    /// Armed the first time the inner body has nothing ready, and moved on with every frame
    /// after that: a body whose frames are all ready at once (most requests and answers here)
    /// never costs a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    tripwire: Tripwire,
}

impl<B> Guarded<B> {
    /// Guards `inner`: at most `limit` bytes (none: no limit), and no more than `idle` between
    /// frames. A cut-off is recorded in the returned tripwire as well as returned as the error.
    pub fn new(inner: B, limit: Option<u64>, idle: Duration) -> (Guarded<B>, Tripwire) {
        let tripwire = Tripwire::default();
        let guarded = Guarded {
            inner,
            limit,
            seen: 0,
            idle,
            deadline: None,
            tripwire: tripwire.clone(),
        };
        (guarded, tripwire)
    }

    fn cut(&self, why: Cutoff) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let _ = self.tripwire.set(why);
        Poll::Ready(Some(Err(why.into())))
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(limit) = this.limit
                        && this.seen > limit
                    {
                        return this.cut(Cutoff::TooLarge(limit));
                    }
                }
                if let Some(deadline) = &mut this.deadline {
                    deadline.as_mut().reset(Instant::now() + this.idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let idle = this.idle;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(deadline.as_mut().poll(cx));
                this.cut(Cutoff::Idle(this.idle))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
