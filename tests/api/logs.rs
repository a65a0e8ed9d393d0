//! No token, code, state, nonce or secret reaches a log line, even at debug level.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;

use crate::helpers::ConnectWorld;
use crate::support::CLIENT_SECRET;
use crate::support::database::Backend;

on_both_backends!(a_full_connect_flow_logs_no_secret);

/// Every log event of this test process, from the moment the first test asks for it.
pub(crate) fn captured() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || Capture(sink.clone()))
                .init();
            buffer
        })
        .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn a_full_connect_flow_logs_no_secret(backend: Backend) {
    let logs = captured();
    let cw = ConnectWorld::start(backend).await;
    let callback = cw
        .browser
        .consent(
            &cw.link(
                "user-17",
                json!({"return_to": "https://bot.corp.example/done"}),
            )
            .await,
        )
        .await;
    let done = cw.browser.get(&callback).await;
    assert_eq!(done.status(), 302);
    // A second, failing attempt logs its own story.
    cw.browser.get(&callback).await;

    let authorize = cw.world.gitlab.seen().authorize_queries.pop().unwrap();
    let callback = url::Url::parse(&callback).unwrap();
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mut secrets = vec![
        ("GitLab client secret", CLIENT_SECRET.to_owned()),
        ("admin token", cw.app.admin_token.clone()),
        ("service secret", cw.service_secret.clone()),
        ("service token", cw.service_token.clone()),
        ("authorization code", code),
        ("state", authorize["state"].clone()),
        ("nonce", authorize["nonce"].clone()),
    ];
    secrets.extend(
        cw.world
            .gitlab
            .issued_tokens()
            .into_iter()
            .map(|t| ("GitLab token", t)),
    );

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("connection stored"),
        "the flow's own log lines were captured"
    );
    assert!(
        text.contains("/oauth/corp/callback"),
        "request lines were captured"
    );
    for (what, secret) in secrets {
        assert!(!text.contains(&secret), "the {what} appears in the log");
    }
}
