//! Failover rules against mock hubs on loopback: which requests move to the next hub, when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use suanli_proto::suanli_types::JobSpec;

use super::*;

/// What a mock hub does with each request.
#[derive(Clone, Copy)]
enum Act {
    /// Answers 503 `unavailable` (the request was not carried out).
    Unavailable,
    /// Answers 502 `outcome_unknown`.
    Unknown,
    /// Takes the request and never answers (a frozen process).
    Hang,
    /// Answers as a working hub.
    Serve,
}

/// A request a mock hub got: its path and idempotency key.
type Seen = (String, Option<String>);

/// A mock hub: the requests it got, and what it does with them.
#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    act: Arc<Mutex<Vec<Act>>>,
}

impl Mock {
    /// Acts as `script` says, request by request; the last entry repeats.
    async fn start(script: &[Act]) -> (Mock, String) {
        let mock = Mock {
            seen: Arc::default(),
            act: Arc::new(Mutex::new(script.to_vec())),
        };
        let m = mock.clone();
        let handler = move |uri: axum::http::Uri, headers: HeaderMap| {
            let m = m.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                m.seen.lock().unwrap().push((uri.path().to_string(), key));
                let act = {
                    let mut a = m.act.lock().unwrap();
                    if a.len() > 1 { a.remove(0) } else { a[0] }
                };
                let err = |code: ErrorCode| {
                    let status = StatusCode::from_u16(code.http_status()).unwrap();
                    (status, axum::Json(ApiError::new(code, "mock"))).into_response()
                };
                match act {
                    Act::Unavailable => err(ErrorCode::Unavailable),
                    Act::Unknown => err(ErrorCode::OutcomeUnknown),
                    Act::Hang => {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        err(ErrorCode::Internal)
                    }
                    Act::Serve if uri.path().ends_with("/heartbeat") => {
                        axum::Json(HeartbeatReply {
                            kill: Vec::new(),
                            lease_ttl_secs: 60,
                        })
                        .into_response()
                    }
                    Act::Serve => axum::Json(DrainView {
                        center: "c".into(),
                        drained: false,
                        running: 0,
                        requeued: Vec::new(),
                    })
                    .into_response(),
                }
            }
        };
        let app = Router::new().fallback(post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (mock, url)
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        agent_version: "test".into(),
        protocol: suanli_proto::PROTOCOL_VERSION,
        inventory: Vec::new(),
        stacks: Default::default(),
        running: Vec::new(),
        draining: false,
    }
}

#[tokio::test]
async fn a_write_refused_with_503_moves_to_the_next_hub() {
    let (a, ua) = Mock::start(&[Act::Unavailable]).await;
    let (b, ub) = Mock::start(&[Act::Serve]).await;
    let c = Client::new(vec![ua, ub], "t");
    c.undrain("c").await.unwrap();
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn a_write_that_may_have_arrived_is_not_sent_to_another_hub() {
    let (a, ua) = Mock::start(&[Act::Hang]).await;
    let (b, ub) = Mock::start(&[Act::Serve]).await;
    let c = Client::new(vec![ua, ub], "t").with_timeout(Duration::from_millis(300));
    let err = c.undrain("c").await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert_eq!(
        (a.calls(), b.calls()),
        (1, 0),
        "the write went to one hub only"
    );
    // A 502 (outcome unknown) is not moved either, and is not called transient.
    let (a, ua) = Mock::start(&[Act::Unknown]).await;
    let (b, ub) = Mock::start(&[Act::Serve]).await;
    let err = Client::new(vec![ua, ub], "t")
        .undrain("c")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OutcomeUnknown));
    assert!(!err.is_transient());
    assert_eq!((a.calls(), b.calls()), (1, 0));
}

#[tokio::test]
async fn a_heartbeat_leaves_a_hub_that_hangs_and_later_calls_start_past_it() {
    let (a, ua) = Mock::start(&[Act::Hang]).await;
    let (b, ub) = Mock::start(&[Act::Serve]).await;
    let c = Client::new(vec![ua, ub], "t");
    let started = std::time::Instant::now();
    c.heartbeat(&heartbeat()).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= HEARTBEAT_ATTEMPT_TIMEOUT && took < HEARTBEAT_ATTEMPT_TIMEOUT * 2,
        "{took:?}"
    );
    assert_eq!((a.calls(), b.calls()), (1, 1));
    // The next call (a write) starts at the hub that answered.
    c.undrain("c").await.unwrap();
    assert_eq!((a.calls(), b.calls()), (1, 2));

    // A caller that gives up while the first hub hangs: the next call starts past it.
    let (a, ua) = Mock::start(&[Act::Hang]).await;
    let (b, ub) = Mock::start(&[Act::Serve]).await;
    let c = Client::new(vec![ua, ub], "t");
    let gave_up = tokio::time::timeout(Duration::from_millis(200), c.heartbeat(&heartbeat())).await;
    assert!(gave_up.is_err());
    c.undrain("c").await.unwrap();
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn a_submit_is_retried_under_one_key_until_it_is_taken_or_time_runs_out() {
    let (a, ua) = Mock::start(&[Act::Unknown, Act::Unavailable]).await;
    let c = Client::new(vec![ua], "t").with_submit_retry(Duration::from_millis(1_500));
    let err = c.submit(&JobSpec::new("x", "true")).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    let seen = a.seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "retried: {seen:?}");
    let key = seen[0].1.clone().expect("a key");
    assert_eq!(key.len(), 32);
    assert!(
        seen.iter()
            .all(|(p, k)| p == "/v1/jobs" && k.as_deref() == Some(key.as_str()))
    );
    // A new submit gets a new key.
    let _ = c.submit(&JobSpec::new("y", "true")).await;
    let last = a.seen.lock().unwrap().last().unwrap().1.clone().unwrap();
    assert_ne!(last, key);
}

#[tokio::test]
async fn an_event_batch_whose_outcome_is_unknown_is_worth_sending_again() {
    // Event batches are keyed by what they report, so a batch the hub could not finish (its
    // leader went away mid-request: 502 `outcome_unknown`) is safe to repeat; the shipper retries
    // transient errors only, and would otherwise drop a `finished` report.
    let (a, ua) = Mock::start(&[Act::Unknown]).await;
    let err = Client::new(vec![ua], "t")
        .events(Vec::new())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert_eq!(a.calls(), 1);
}
