//! A webhook receiver on 127.0.0.1:0 that records what it is sent, and can be told to answer
//! 500 until told to recover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::StopOnDrop;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub signature: String,
    pub content_type: String,
    pub body: String,
    /// Whether the receiver accepted it (2xx) or was failing.
    pub accepted: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Recomputes `Labgate-Signature` with `secret`, as a receiver would.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some((t, v1)) = self
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
        else {
            return false;
        };
        let sent: i64 = t.parse().unwrap();
        let now = chrono::Utc::now().timestamp();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{}", self.body).as_bytes());
        (now - sent).abs() < 60 && hex::encode(mac.finalize().into_bytes()) == v1
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    failing: AtomicBool,
}

pub struct Receiver {
    pub url: String,
    state: Arc<State>,
    _stop: StopOnDrop,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let stop = StopOnDrop(server.handle());
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/labgate"),
            state,
            _stop: stop,
        }
    }

    /// Answers 500 from now on (`true`), or 204 again (`false`).
    pub fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The events accepted so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// Waits until `done` holds of what was received, for at most `limit`.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Received]) -> bool) {
        let started = Instant::now();
        while !done(&self.received()) {
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}; received {:#?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an accepted event of `kind` about `connection_id`, within 5 s; returns it.
    pub async fn event(&self, kind: &str, connection_id: &str) -> Received {
        self.event_within(Duration::from_secs(5), kind, connection_id)
            .await
    }

    /// Waits for an accepted event of `kind` about `connection_id`, within `limit`; returns it.
    pub async fn event_within(&self, limit: Duration, kind: &str, connection_id: &str) -> Received {
        let is_it = |r: &Received| {
            let body = r.json();
            r.accepted && body["type"] == kind && body["data"]["connection_id"] == connection_id
        };
        self.wait_for(limit, kind, |all| all.iter().any(is_it))
            .await;
        self.received().into_iter().find(is_it).unwrap()
    }
}

async fn receive(state: web::Data<State>, request: HttpRequest, body: String) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let accepted = !state.failing.load(Ordering::SeqCst);
    state.received.lock().unwrap().push(Received {
        signature: header("labgate-signature"),
        content_type: header("content-type"),
        body,
        accepted,
    });
    if accepted {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::InternalServerError().body("receiver down")
    }
}
