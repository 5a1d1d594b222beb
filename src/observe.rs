//! One tower layer around every gRPC service: each request is timed, counted by method and
//! status code, and logged with its caller (from the certificate) and outcome.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ObserveLayer {
    pub metrics: Arc<Metrics>,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The caller of a request as `role:org`, worked out once by the outermost layer and kept in
/// the request's extensions for the layers inside it.
#[derive(Clone)]
struct CallerKey(Option<String>);

/// The caller named by the connection's client certificate, as `role:org`; None without one.
pub fn caller_key<B>(req: &http::Request<B>) -> Option<String> {
    if let Some(CallerKey(key)) = req.extensions().get::<CallerKey>() {
        return key.clone();
    }
    req.extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .and_then(|certs| certs.first().cloned())
        .and_then(|leaf| crate::auth::identity_from_der(leaf.as_ref()).ok())
        .map(|c| format!("{}:{}", c.role.as_str(), c.org))
}

impl<S, B, RB> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let key = caller_key(&req);
        req.extensions_mut().insert(CallerKey(key.clone()));
        let who = key.unwrap_or_else(|| "unknown".to_owned());
        let metrics = self.metrics.clone();
        // The ready service handles this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        Box::pin(async move {
            let result = inner.call(req).await;
            let took = started.elapsed();
            // Errors come back as trailers-only responses, with the status in the head; an
            // answer (or a stream) that starts has no status there: OK so far.
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", |c| tonic::Code::from_i32(c).description_name()),
                Err(_) => "TRANSPORT_ERROR",
            };
            metrics.request(&method, code, took);
            // Health checks come every few seconds from container runtimes: not worth a line.
            if method.starts_with("/grpc.health.") {
                tracing::debug!(caller = %who, %method, code, micros = took.as_micros() as u64, "request");
            } else {
                tracing::info!(caller = %who, %method, code, micros = took.as_micros() as u64, "request");
            }
            result
        })
    }
}

trait CodeName {
    fn description_name(self) -> &'static str;
}

impl CodeName for tonic::Code {
    fn description_name(self) -> &'static str {
        use tonic::Code::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }
}
