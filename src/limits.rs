//! Per-caller limits, applied to every gRPC call before its handler runs: a request rate and a
//! number of open streams per caller, both keyed by the client certificate (role and
//! organisation), never one global budget that a single noisy caller could exhaust.
//!
//! A refusal is RESOURCE_EXHAUSTED with a message naming the caller, the limit and what to do.
//! Health checks and reflection are not limited: orchestrators and debugging tools use them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::body::Body;
use tower::{Layer, Service};

use crate::observe::caller_key;
use crate::ratelimit::RateLimiter;

/// The server-streaming methods: each open one holds a stream slot of its caller.
const STREAMING: [&str; 4] = [
    "/stophub.bank.v1.BankService/Subscribe",
    "/stophub.bank.v1.BankService/SyncBlacklist",
    "/stophub.police.v1.PoliceService/WatchNotice",
    "/stophub.oversight.v1.OversightService/StreamAudit",
];

/// The limits, from the hub's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerLimits {
    /// Calls a caller may start per second (a burst of one second's worth); 0 for no limit.
    pub requests_per_second: u32,
    /// Streams a caller may hold open at once.
    pub max_streams: usize,
}

#[derive(Clone)]
pub struct LimitLayer {
    state: Arc<State>,
}

struct State {
    limits: CallerLimits,
    rate: Option<RateLimiter>,
    /// caller -> open streams.
    streams: Mutex<HashMap<String, usize>>,
}

impl LimitLayer {
    pub fn new(limits: CallerLimits) -> Self {
        Self {
            state: Arc::new(State {
                limits,
                rate: (limits.requests_per_second > 0)
                    .then(|| RateLimiter::new(limits.requests_per_second)),
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Limit {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Limit<S> {
    inner: S,
    state: Arc<State>,
}

/// A stream slot, given back when the response body (the stream) is dropped.
struct Slot {
    state: Arc<State>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut streams = self.state.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = streams.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

impl State {
    /// Admits a call, or says why not.
    fn admit(self: &Arc<Self>, key: &str, method: &str) -> Result<Option<Slot>, tonic::Status> {
        if let Some(rate) = &self.rate
            && let Err(wait_ms) = rate.take(key, 1)
        {
            return Err(tonic::Status::resource_exhausted(format!(
                "rate limit: at most {} calls a second for {key}; retry in {wait_ms} ms",
                self.limits.requests_per_second
            )));
        }
        if !STREAMING.contains(&method) {
            return Ok(None);
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let open = streams.entry(key.to_owned()).or_default();
        if *open >= self.limits.max_streams {
            return Err(tonic::Status::resource_exhausted(format!(
                "stream limit: {key} already has {open} streams open (at most {}); close one first",
                self.limits.max_streams
            )));
        }
        *open += 1;
        Ok(Some(Slot {
            state: self.clone(),
            key: key.to_owned(),
        }))
    }
}

impl<S, B> Service<http::Request<B>> for Limit<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path();
        let exempt = method.starts_with("/grpc.health.") || method.starts_with("/grpc.reflection.");
        let admitted = match (exempt, caller_key(&req)) {
            // No usable certificate: the handler refuses it with UNAUTHENTICATED.
            (true, _) | (false, None) => Ok(None),
            (false, Some(key)) => self.state.admit(&key, method),
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            Ok(match slot {
                None => response,
                Some(slot) => response.map(|body| Body::new(Held { body, _slot: slot })),
            })
        })
    }
}

/// A response body that holds its stream slot for as long as it is alive.
struct Held {
    body: Body,
    _slot: Slot,
}

impl http_body::Body for Held {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_streams: usize, rps: u32) -> Arc<State> {
        LimitLayer::new(CallerLimits {
            requests_per_second: rps,
            max_streams,
        })
        .state
    }

    #[test]
    fn streams_are_counted_per_caller_and_given_back() {
        let s = state(2, 0);
        let sub = STREAMING[0];
        let a = s.admit("bank:ICBC", sub).unwrap().unwrap();
        let _b = s.admit("bank:ICBC", sub).unwrap().unwrap();
        let refused = s.admit("bank:ICBC", sub).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("bank:ICBC"), "{refused:?}");
        // Another caller has its own slots; a unary call takes none.
        assert!(s.admit("bank:CCB", sub).unwrap().is_some());
        assert!(
            s.admit("bank:ICBC", "/stophub.bank.v1.BankService/Acknowledge")
                .unwrap()
                .is_none()
        );
        drop(a);
        assert!(s.admit("bank:ICBC", sub).unwrap().is_some());
    }

    #[test]
    fn the_rate_is_per_caller() {
        let s = state(10, 5);
        let ack = "/stophub.bank.v1.BankService/Acknowledge";
        for _ in 0..5 {
            s.admit("bank:ICBC", ack).unwrap();
        }
        let refused = s.admit("bank:ICBC", ack).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("rate limit"), "{refused:?}");
        s.admit("bank:CCB", ack).unwrap();
    }
}
