//! GitLab failing under the proxy: down mid-stream, or not answering at all. The caller gets a
//! clean end or a clean error (never a panic, never a half-answer dressed as a whole one), and
//! labgate goes on serving.

use reqwest::Method;

use super::ProxyWorld;
use crate::support::database::Backend;

on_both_backends!(
    gitlab_dying_mid_stream_ends_the_answer_cleanly,
    gitlab_down_is_a_clean_gateway_error,
);

async fn gitlab_dying_mid_stream_ends_the_answer_cleanly(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    pw.gitlab()
        .add_file("group/app", "big.bin", vec![7u8; 4 << 20]);
    let grant = pw.grant(&["group/app"], "read").await;
    pw.gitlab().break_large_bodies();

    let path = "/projects/group%2Fapp/repository/files/big.bin/raw";
    let response = pw.api_call(Method::GET, path, &grant.token).await;
    if response.status() == 200 {
        // The head went out before GitLab died: the body must not end as if it were whole.
        let body = response.bytes().await;
        assert!(
            body.as_ref().map_or(true, |b| b.len() < 4 << 20),
            "a broken body passed on as complete"
        );
    } else {
        assert!(response.status().is_server_error(), "{}", response.status());
    }

    let after = pw.api_call(Method::GET, "/user", &grant.token).await;
    assert_eq!(after.status(), 200, "labgate goes on serving");
}

async fn gitlab_down_is_a_clean_gateway_error(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    assert_eq!(
        pw.api_call(Method::GET, "/user", &grant.token)
            .await
            .status(),
        200
    );
    pw.gitlab().stop().await;

    let api = pw
        .api_call(Method::GET, "/projects/group%2Fapp", &grant.token)
        .await;
    let status = api.status().as_u16();
    assert!(
        [502, 503, 504].contains(&status),
        "API with GitLab down: {status}"
    );
    let body = api.text().await.unwrap();
    assert!(!body.contains(&grant.token), "{body}");
    let git = pw
        .app
        .client
        .get(format!(
            "{}/info/refs?service=git-upload-pack",
            pw.git_url(None, "group/app")
        ))
        .basic_auth("labgate", Some(&grant.token))
        .send()
        .await
        .unwrap();
    let status = git.status().as_u16();
    assert!(
        [502, 503, 504].contains(&status),
        "git with GitLab down: {status}"
    );
    let health = pw.app.client.get(pw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
