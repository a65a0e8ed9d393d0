//! Bodies streamed both ways, never held whole: the caller's body into GitLab through a small
//! channel (actix's payload cannot cross threads, reqwest's body must), GitLab's answer back to
//! the caller, counted, and the call recorded when it ends, however it ends.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix_web::web::{self, Bytes};
use futures_util::{Stream, StreamExt};

use crate::service::Context;
use crate::service::proxy::CallRecord;

/// Chunks in flight between the caller and GitLab: memory per call stays bounded.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The caller's body as a body reqwest can send, read as GitLab takes it.
pub(super) fn request_body(mut payload: web::Payload) -> reqwest::Body {
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            // GitLab stopped reading (it answered, or the call failed): stop reading too.
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |cx| {
        receiver.poll_recv(cx)
    }))
}

/// GitLab's answer on its way to the caller. The call is recorded when the body ends, fails, or
/// the caller goes away.
pub(super) struct Relayed<S> {
    inner: S,
    bytes: u64,
    record: Option<(CallRecord, web::Data<Context>, u16)>,
}

impl<S> Relayed<S> {
    pub(super) fn new(inner: S, record: CallRecord, ctx: web::Data<Context>, status: u16) -> Self {
        Self {
            inner,
            bytes: 0,
            record: Some((record, ctx, status)),
        }
    }

    fn finish(&mut self) {
        if let Some((record, ctx, status)) = self.record.take() {
            record.finish(&ctx, status, self.bytes);
        }
    }
}

impl<S, E> Stream for Relayed<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.bytes += chunk.len() as u64,
            Poll::Ready(Some(Err(_)) | None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Relayed<S> {
    fn drop(&mut self) {
        self.finish();
    }
}
