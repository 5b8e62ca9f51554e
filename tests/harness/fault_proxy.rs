//! A fault-injecting HTTP proxy in front of moto, switchable at run time.
//!
//! moto implements KMS faithfully but does not enforce key state or key
//! policies, and never throttles or hangs; this proxy produces those faults
//! at the HTTP level, the way a real KMS endpoint would show them to the SDK.
//! A fault can be limited to one KMS operation (by `X-Amz-Target`), e.g. to
//! fail only `Decrypt` after `GenerateDataKey` succeeded.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward to moto.
    None,
    /// Close the listening socket: connections are refused.
    Refuse,
    /// Accept connections, never answer.
    BlackHole,
    /// Forward, but only after this delay.
    Slow(Duration),
    /// Answer with this HTTP status and an HTML body (a broken front end).
    Http(u16),
    /// Answer as KMS does with this error code (`__type`) and status.
    Kms(&'static str, u16),
    /// Answer as STS does (XML, the query protocol) with this code and
    /// status.
    Sts(&'static str, u16),
    /// Forward, and make the credentials in STS's answer expire this long
    /// after it (moto's are valid for the hour asked).
    Expiring(Duration),
}

impl Fault {
    /// The KMS throttling answer.
    pub fn throttling() -> Fault {
        Fault::Kms("ThrottlingException", 400)
    }
    /// An IAM / key-policy refusal.
    pub fn access_denied() -> Fault {
        Fault::Kms("AccessDeniedException", 400)
    }
    /// A disabled key.
    pub fn disabled() -> Fault {
        Fault::Kms("DisabledException", 400)
    }
    /// A key pending deletion or otherwise unusable.
    pub fn invalid_state() -> Fault {
        Fault::Kms("KMSInvalidStateException", 400)
    }
    /// KMS's own "try again" for a key it cannot reach.
    pub fn key_unavailable() -> Fault {
        Fault::Kms("KeyUnavailableException", 500)
    }
}

/// A fault for the requests whose body matches, as a key policy's
/// condition would refuse them (e.g. an encryption context naming another
/// organization, or one customer's key): checked before the global fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What the matching requests get.
    pub fault: Fault,
    /// Only this KMS operation (`X-Amz-Target`), if given.
    pub operation: Option<&'static str>,
    /// The body must contain this, if given.
    pub contains: Option<String>,
    /// The body must not contain this, if given.
    pub lacks: Option<String>,
}

impl Rule {
    /// `fault` for every request whose body contains `text`.
    pub fn containing(fault: Fault, text: &str) -> Rule {
        Rule {
            fault,
            operation: None,
            contains: Some(text.into()),
            lacks: None,
        }
    }

    fn matches(&self, operation: &str, body: &[u8]) -> bool {
        let has = |t: &str| body.windows(t.len()).any(|w| w == t.as_bytes());
        self.operation.is_none_or(|o| o == operation)
            && self.contains.as_deref().is_none_or(has)
            && self.lacks.as_deref().is_none_or(|t| !has(t))
    }
}

struct State {
    /// Checked first, in order; the first that matches applies.
    rules: Vec<Rule>,
    /// The bodies of the query-protocol (STS) requests seen, which carry
    /// no `X-Amz-Target`.
    query_bodies: Vec<Bytes>,
    fault: Fault,
    /// Only requests for this operation (e.g. `Decrypt`) get the fault.
    only: Option<String>,
    listener_task: Option<tokio::task::JoinHandle<()>>,
    faulted: u64,
    /// Faults only requests signed for this region (SigV4 credential
    /// scope), when set.
    region: Option<String>,
    /// Requests seen, by operation (`x-amz-target`).
    requests: std::collections::BTreeMap<String, u64>,
    /// A simulated account quota: at most this many requests in any one
    /// second; above it, `ThrottlingException` (as KMS answers).
    quota: Option<usize>,
    /// When the requests within the last second came (quota bookkeeping).
    recent: std::collections::VecDeque<std::time::Instant>,
    /// Requests the quota throttled.
    throttled: u64,
    /// The most requests seen in any one second.
    peak: usize,
}

/// The proxy. Dropping it stops it.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    upstream: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) on a free port.
    pub async fn start(upstream_endpoint: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream_endpoint.trim_start_matches("http://").to_string();
        let state = Arc::new(Mutex::new(State {
            rules: Vec::new(),
            query_bodies: Vec::new(),
            fault: Fault::None,
            only: None,
            listener_task: None,
            faulted: 0,
            region: None,
            requests: Default::default(),
            quota: None,
            recent: Default::default(),
            throttled: 0,
            peak: 0,
        }));
        let p = FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            upstream,
            state,
        };
        p.listen(listener);
        p
    }

    /// Switches the fault for every operation.
    pub async fn set(&self, fault: Fault) {
        self.set_for(fault, None).await;
    }

    /// Switches the fault, limited to one KMS operation if `only` is given.
    pub async fn set_for(&self, fault: Fault, only: Option<&str>) {
        self.switch(fault, only, None).await;
    }

    /// Switches the fault for requests signed for `region` only (a KMS
    /// region's outage; other regions pass).
    pub async fn set_for_region(&self, fault: Fault, region: &str) {
        self.switch(fault, None, Some(region)).await;
    }

    async fn switch(&self, fault: Fault, only: Option<&str>, region: Option<&str>) {
        let refusing = {
            let st = self.state.lock().unwrap();
            st.listener_task.is_none()
        };
        if fault == Fault::Refuse {
            let task = {
                let mut st = self.state.lock().unwrap();
                st.fault = fault;
                st.only = None;
                st.listener_task.take()
            };
            if let Some(t) = task {
                t.abort();
                let _ = t.await;
            }
            return;
        }
        {
            let mut st = self.state.lock().unwrap();
            st.fault = fault;
            st.only = only.map(str::to_string);
            st.region = region.map(str::to_string);
        }
        if refusing {
            // Listen again on the same port.
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", self.port)).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            self.listen(listener);
        }
    }

    /// Adds a rule for requests by body (see [`Rule`]).
    pub fn add_rule(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Drops every rule.
    pub fn clear_rules(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Simulates the account's request quota: above `per_second` requests
    /// in any one second, KMS's `ThrottlingException`; `None` lifts it.
    pub fn set_quota(&self, per_second: Option<usize>) {
        let mut st = self.state.lock().unwrap();
        st.quota = per_second;
        st.recent.clear();
        st.peak = 0;
    }

    /// Requests the simulated quota throttled so far.
    pub fn throttled(&self) -> u64 {
        self.state.lock().unwrap().throttled
    }

    /// The most requests that arrived within any one second since the
    /// quota was set (throttled ones included).
    pub fn peak_per_second(&self) -> usize {
        self.state.lock().unwrap().peak
    }

    /// Whether a query-protocol (STS) request's body contained `text`.
    pub fn saw(&self, text: &str) -> bool {
        let st = self.state.lock().unwrap();
        st.query_bodies
            .iter()
            .any(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
    }

    /// Requests seen so far, by operation (faulted or not).
    pub fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests got a fault so far.
    pub fn faulted(&self) -> u64 {
        self.state.lock().unwrap().faulted
    }

    fn listen(&self, listener: TcpListener) {
        let state = self.state.clone();
        let upstream = self.upstream.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                {
                    let mut st = state.lock().unwrap();
                    if st.fault == Fault::BlackHole && st.only.is_none() && st.region.is_none() {
                        st.faulted += 1;
                        held.push(conn);
                        continue;
                    }
                }
                let state = state.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, state.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        self.state.lock().unwrap().listener_task = Some(task);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(t) = self.state.lock().unwrap().listener_task.take() {
            t.abort();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    upstream: String,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('.').next())
        .unwrap_or("")
        .to_string();
    let region = signed_region(&req);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let fault = {
        let mut st = state.lock().unwrap();
        *st.requests.entry(operation.clone()).or_default() += 1;
        if operation.is_empty() {
            st.query_bodies.push(body.clone());
        }
        let applies = st.only.as_deref().is_none_or(|o| o == operation)
            && st
                .region
                .as_deref()
                .is_none_or(|r| region.as_deref() == Some(r));
        let ruled = st
            .rules
            .iter()
            .find(|r| r.matches(&operation, &body))
            .map(|r| r.fault.clone());
        let mut f = match ruled {
            Some(f) => f,
            None if applies => st.fault.clone(),
            None => Fault::None,
        };
        if let Some(quota) = st.quota {
            let now = std::time::Instant::now();
            while st
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                st.recent.pop_front();
            }
            st.recent.push_back(now);
            st.peak = st.peak.max(st.recent.len());
            if st.recent.len() > quota && f == Fault::None {
                st.throttled += 1;
                f = Fault::throttling();
            }
        }
        if f != Fault::None {
            st.faulted += 1;
        }
        f
    };
    let request_id = format!("fault-proxy-{}", next_request_id());
    match fault {
        Fault::None | Fault::Refuse => forward(parts, body, &upstream).await,
        Fault::BlackHole => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            forward(parts, body, &upstream).await
        }
        Fault::Expiring(d) => {
            let resp = forward(parts, body, &upstream).await?;
            Ok(expiring_in(resp, d).await)
        }
        Fault::Http(status) => Ok(Response::builder()
            .status(status)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(
                b"<html><body>Service Unavailable</body></html>",
            )))
            .unwrap()),
        Fault::Sts(code, status) => {
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>injected by the test fault proxy</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            Ok(Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "text/xml")
                .header("x-amzn-requestid", request_id)
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        }
        Fault::Kms(code, status) => {
            let body = serde_json::json!({ "__type": code, "message": format!("injected by the test fault proxy for {operation}") });
            Ok(Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-requestid", request_id)
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap())
        }
    }
}

/// The region a SigV4 request is signed for: `Credential=AKID/DATE/REGION/…`.
fn signed_region(req: &Request<Incoming>) -> Option<String> {
    let auth = req.headers().get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    scope.split('/').nth(2).map(str::to_string)
}

/// `resp` (an STS answer) with its `<Expiration>` moved to `d` from now.
async fn expiring_in(resp: Response<Full<Bytes>>, d: Duration) -> Response<Full<Bytes>> {
    let (mut parts, body) = resp.into_parts();
    let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let at = (chrono::Utc::now() + d).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let text = match (text.find("<Expiration>"), text.find("</Expiration>")) {
        (Some(a), Some(b)) => format!("{}<Expiration>{at}{}", &text[..a], &text[b..]),
        _ => text,
    };
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(text)))
}

fn next_request_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn forward(
    parts: hyper::http::request::Parts,
    body: Bytes,
    upstream: &str,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let Ok(stream) = TcpStream::connect(upstream).await else {
        return Ok(Response::builder()
            .status(502)
            .body(Full::new(Bytes::from_static(b"upstream moto unreachable")))
            .unwrap());
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
