//! Every proxied call, git or REST, is audited (grant, service, subject, method, project, path
//! without its query, status) and counted in `/metrics`.

use reqwest::Method;
use serde_json::Value;

use super::ProxyWorld;
use crate::support::database::Backend;

on_both_backends!(every_proxied_call_is_audited_and_counted);

async fn every_proxied_call_is_audited_and_counted(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app"], "read").await;
    for path in ["/user", "/projects/group%2Fapp/issues?per_page=2&page=2"] {
        let response = pw.api_call(Method::GET, path, &grant.token).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let dir = tempfile::tempdir().unwrap();
    let cloned = super::git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            &pw.git_url(Some(&grant.token), "group/app"),
            "w",
        ],
    )
    .await;
    assert!(cloned.status.success(), "{}", super::printed(&cloned));

    let audit = pw.app.get_json("/api/v1/audit?limit=100").await;
    let events: Vec<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .filter(|e| e.contains(&grant.id))
        .collect();
    let text = events.join("\n");
    assert!(!text.contains(&grant.token), "the token in the audit log");
    assert!(
        !text.contains("per_page"),
        "a query in the audit log: {text}"
    );
    let issues: Vec<_> = events
        .iter()
        .filter(|e| e.contains("issues") && e.contains("GET"))
        .collect();
    assert_eq!(issues.len(), 1, "one event for the issues call: {text}");
    assert!(
        issues[0].contains("group/app")
            && issues[0].contains("200")
            && issues[0].contains("ci-bot"),
        "grant, service, project, status: {}",
        issues[0]
    );
    assert_eq!(
        events.iter().filter(|e| e.contains("/user")).count(),
        1,
        "one event for /user: {text}"
    );
    assert!(
        events.iter().any(|e| e.contains("upload-pack")),
        "git calls are audited: {text}"
    );

    let metrics = pw
        .app
        .client
        .get(pw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let proxied: f64 = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("proxy") && !l.contains("_bucket"))
        .filter(|l| l.split_whitespace().next().unwrap().contains("_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        proxied >= 3.0,
        "proxied calls counted in /metrics:\n{metrics}"
    );
}
