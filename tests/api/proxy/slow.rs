//! Slow callers and tricky git paths: a body that trickles in reaches GitLab whole, an answer
//! read slowly arrives intact while labgate keeps serving others, and git paths that play
//! routing tricks are refused before GitLab sees anything. Also: the one secret GitLab puts in
//! a project's description never comes through.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ProxyWorld;
use crate::support::database::Backend;
use crate::support::fake_gitlab::RUNNERS_TOKEN;

on_both_backends!(
    a_request_body_that_trickles_in_reaches_gitlab_whole,
    an_answer_read_slowly_arrives_whole_while_labgate_serves_others,
    git_paths_that_play_routing_tricks_are_refused,
    the_runner_token_never_comes_through,
);

async fn a_request_body_that_trickles_in_reaches_gitlab_whole(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let description = "d".repeat(40 * 1024);
    let body = format!(r#"{{"title":"slow","description":"{description}"}}"#).into_bytes();
    // Ten pieces, a tenth of a second apart: a second for the whole body.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body
        .chunks(body.len() / 10 + 1)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let trickle = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        piece
    });
    let created = pw
        .app
        .client
        .post(pw.api("/projects/group%2Fapp/issues"))
        .bearer_auth(&grant.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(trickle))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issues = pw.gitlab().issues("group/app");
    let last = issues.last().unwrap();
    assert_eq!(last["title"], "slow");
    assert_eq!(
        last["description"].as_str().unwrap().len(),
        description.len()
    );
}

async fn an_answer_read_slowly_arrives_whole_while_labgate_serves_others(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let content: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    pw.gitlab()
        .add_file("group/app", "slow.bin", content.clone());
    let grant = pw.grant(&["group/app"], "read").await;
    let path = "/projects/group%2Fapp/repository/files/slow.bin/raw?ref=main";
    let mut response = pw.api_call(Method::GET, path, &grant.token).await;
    assert_eq!(response.status(), 200);

    let mut received = Vec::new();
    let mut others_waited = Duration::ZERO;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend(chunk);
        if received.len() % (256 << 10) < 32 << 10 {
            // A slow reader: labgate must neither give up on it nor stop serving others.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let asked = Instant::now();
            let other = pw.api_call(Method::GET, "/user", &grant.token).await;
            assert_eq!(other.status(), 200);
            others_waited = others_waited.max(asked.elapsed());
        }
    }
    assert!(received == content, "the file arrived intact");
    assert!(
        others_waited < Duration::from_secs(5),
        "another call waited {others_waited:?} behind the slow reader"
    );
}

async fn git_paths_that_play_routing_tricks_are_refused(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "write").await;
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("labgate:{}", grant.token),
    );
    let mark = pw.gitlab_mark();
    for path in [
        "/git/corp/group/app.git/../other.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app.git/%2e%2e/other.git/info/refs?service=git-upload-pack",
        "/git/corp/group/other.git/../app.git/info/refs?service=git-upload-pack",
        "/git/corp/group//app.git/info/refs?service=git-upload-pack",
        "/git/corp/group%2Fapp.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app.git;/info/refs?service=git-upload-pack",
        "/git/corp/group\\app.git/info/refs?service=git-upload-pack",
        "/git/corp/group/app.git/info/refs?service=git-upload-pack&service=git-receive-pack",
    ] {
        let status = raw_status(&pw.app.address, path, &basic).await;
        assert!(
            [400, 403, 404].contains(&status),
            "{path} answered {status}"
        );
    }
    pw.assert_gitlab_saw_nothing_since(mark, "git path tricks");
}

async fn the_runner_token_never_comes_through(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    for path in [
        "/projects/group%2Fapp".to_owned(),
        format!("/projects/{}", pw.app_id),
    ] {
        let answer = pw.api_call(Method::GET, &path, &grant.token).await;
        assert_eq!(answer.status(), 200, "{path}");
        let text = answer.text().await.unwrap();
        assert!(!text.contains(RUNNERS_TOKEN), "{path}: {text}");
        let project: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(project["path_with_namespace"], "group/app", "{path}");
    }
}

/// One request with the path exactly as written (an HTTP library would normalise it).
async fn raw_status(address: &str, path: &str, basic: &str) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {answer}"))
}
