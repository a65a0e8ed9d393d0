//! Webhooks on the admin pages' service forms: the stored URLs shown, the secrets write-only
//! (a secret left empty keeps the one stored for its URL), refusals named as the API names them
//! and shown beside their fields, nothing saved.

use reqwest::Response;
use serde_json::{Value, json};

use super::receiver::Receiver;
use super::{SECRET, world};
use crate::admin_pages::{Pages, csrf_of, text};
use crate::helpers::{ConnectWorld, RETURN_ORIGIN, TestApp, app_with_corp, location};
use crate::support::database::Backend;

on_both_backends!(
    the_edit_form_changes_webhooks_and_keeps_secrets_left_empty,
    the_edit_form_refuses_webhooks_beside_their_fields_and_saves_nothing,
    the_create_form_takes_webhooks_with_their_secrets,
);

const OTHER_SECRET: &str = "whsec-other-fedcba9876543210";

/// The policy `ConnectWorld` gives `ci-bot`, as its edit form posts it.
const POLICY: [(&str, &str); 6] = [
    ("instances", "corp"),
    ("scopes", "read_api"),
    ("scopes", "read_repository"),
    ("scopes", "write_repository"),
    ("return_origins", RETURN_ORIGIN),
    ("projects", "**"),
];

/// The edit form of `ci-bot` posted with its policy and these webhook rows: (URL, secret).
async fn post_edit(pages: &Pages, rows: &[(&str, &str)]) -> Response {
    let csrf = csrf_of(&pages.html("/admin/services/ci-bot/edit").await);
    let mut fields: Vec<(String, String)> = [("csrf", csrf.as_str()), ("max_access", "read")]
        .iter()
        .chain(POLICY.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (row, (url, secret)) in rows.iter().enumerate() {
        fields.push((format!("webhooks[{row}].url"), url.to_string()));
        fields.push((format!("webhooks[{row}].secret"), secret.to_string()));
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pages.post("/admin/services/ci-bot/edit", &fields).await
}

async fn stored_urls(app: &TestApp) -> Value {
    app.get_json("/api/v1/services/ci-bot").await["webhooks"].clone()
}

/// The message shown beside the input named `field`.
fn error_beside(html: &str, field: &str) -> String {
    let marker = format!("id=\"{field}-error\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no error beside {field}: {html}"))
        + marker.len();
    text(&html[start..][..html[start..].find("</p>").unwrap()])
}

async fn the_edit_form_changes_webhooks_and_keeps_secrets_left_empty(backend: Backend) {
    let (cw, first) = world(backend).await;
    let pages = Pages::signed_in(&cw.app).await;

    // The stored URL is shown, its secret is not; an empty row waits for another.
    let form = pages.html("/admin/services/ci-bot/edit").await;
    assert!(
        form.contains(&format!("name=\"webhooks[0].url\" value=\"{}\"", first.url)),
        "{form}"
    );
    assert!(
        form.contains("name=\"webhooks[0].secret\" value=\"\""),
        "{form}"
    );
    assert!(form.contains("stored: leave empty to keep it"), "{form}");
    assert!(
        form.contains("name=\"webhooks[1].url\" value=\"\""),
        "{form}"
    );
    assert!(!form.contains(SECRET));

    // The first webhook kept with its secret left empty, a second one added with its own.
    let second = Receiver::start().await;
    let saved = post_edit(&pages, &[(&first.url, ""), (&second.url, OTHER_SECRET)]).await;
    assert_eq!(location(&saved), "/admin/services?done=changed");
    assert_eq!(
        stored_urls(&cw.app).await,
        json!([{"url": first.url}, {"url": second.url}])
    );
    let again = pages.html("/admin/services/ci-bot/edit").await;
    assert!(!again.contains(SECRET) && !again.contains(OTHER_SECRET));
    let id = cw.connect("user-1", json!({})).await;
    let to_first = first.event("connection.created", &id).await;
    assert!(to_first.signed_with(SECRET), "the kept secret signs");
    let to_second = second.event("connection.created", &id).await;
    assert!(to_second.signed_with(OTHER_SECRET));

    // A form without the rows keeps them.
    let csrf = csrf_of(&again);
    let mut fields = vec![("csrf", csrf.as_str()), ("max_access", "read")];
    fields.extend(POLICY);
    let kept = pages.post("/admin/services/ci-bot/edit", &fields).await;
    assert_eq!(location(&kept), "/admin/services?done=changed");
    assert_eq!(stored_urls(&cw.app).await.as_array().unwrap().len(), 2);

    // The first emptied: removed; the second, now first, keeps its secret.
    let removed = post_edit(&pages, &[("", ""), (&second.url, ""), ("", "")]).await;
    assert_eq!(location(&removed), "/admin/services?done=changed");
    assert_eq!(stored_urls(&cw.app).await, json!([{"url": second.url}]));
    let id = cw.connect("user-2", json!({})).await;
    let to_second = second.event("connection.created", &id).await;
    assert!(to_second.signed_with(OTHER_SECRET));
    assert_eq!(
        first.received().len(),
        1,
        "the removed webhook hears nothing"
    );
    assert_no_secret_in_the_list(&cw, &pages).await;
}

async fn assert_no_secret_in_the_list(cw: &ConnectWorld, pages: &Pages) {
    let list = pages.html("/admin/services").await;
    assert!(!list.contains(SECRET) && !list.contains(OTHER_SECRET));
    let deliveries = pages.html("/admin/services/ci-bot/deliveries").await;
    assert!(!deliveries.contains(OTHER_SECRET));
    let api = cw.app.get_json("/api/v1/services").await.to_string();
    assert!(!api.contains(SECRET) && !api.contains(OTHER_SECRET));
}

async fn the_edit_form_refuses_webhooks_beside_their_fields_and_saves_nothing(backend: Backend) {
    let (cw, first) = world(backend).await;
    let pages = Pages::signed_in(&cw.app).await;
    let before = stored_urls(&cw.app).await;

    // A plain-http URL elsewhere and a short secret: both named, beside their fields.
    let refused = post_edit(
        &pages,
        &[
            (&first.url, ""),
            ("http://hooks.corp.example/x", "short-secret-1"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        error_beside(&page, "webhooks[1].url").contains("must be https"),
        "{page}"
    );
    assert!(error_beside(&page, "webhooks[1].secret").contains("at least 16 characters"));
    assert!(page.contains("Nothing was saved"));
    assert!(
        page.contains("value=\"http://hooks.corp.example/x\""),
        "the URL typed is kept: {page}"
    );
    assert!(
        !page.contains("short-secret-1"),
        "a secret is never sent back"
    );
    assert!(page.contains("Type new secrets again"));
    assert_eq!(stored_urls(&cw.app).await, before, "nothing saved");

    // A new URL needs its secret; a stored URL changed is a new URL: its secret stays behind.
    let changed_url = format!("{}/moved", first.url);
    for rows in [
        vec![
            (first.url.as_str(), ""),
            ("https://hooks.corp.example/y", ""),
        ],
        vec![(changed_url.as_str(), "")],
    ] {
        let refused = post_edit(&pages, &rows).await;
        assert_eq!(refused.status(), 422);
        let page = refused.text().await.unwrap();
        let row = rows.len() - 1;
        assert!(
            error_beside(&page, &format!("webhooks[{row}].secret"))
                .contains("is required for a URL not stored yet"),
            "{page}"
        );
        assert_eq!(stored_urls(&cw.app).await, before, "nothing saved");
    }

    // A secret without its URL, and one URL twice.
    let refused = post_edit(&pages, &[("", OTHER_SECRET)]).await;
    let page = refused.text().await.unwrap();
    assert!(error_beside(&page, "webhooks[0].url").contains("is required"));
    assert!(!page.contains(OTHER_SECRET));
    let refused = post_edit(&pages, &[(&first.url, ""), (&first.url, OTHER_SECRET)]).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(error_beside(&page, "webhooks[1].url").contains("is listed twice"));

    // Eleven: the list as a whole is refused.
    let urls: Vec<String> = (0..11)
        .map(|n| format!("https://hooks.corp.example/{n}"))
        .collect();
    let rows: Vec<(&str, &str)> = urls.iter().map(|u| (u.as_str(), OTHER_SECRET)).collect();
    let refused = post_edit(&pages, &rows).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        error_beside(&page, "webhooks").contains("at most 10"),
        "{page}"
    );
    assert!(!page.contains(OTHER_SECRET));
    assert_eq!(stored_urls(&cw.app).await, before, "nothing saved");
}

async fn the_create_form_takes_webhooks_with_their_secrets(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let pages = Pages::signed_in(&app).await;
    let form = pages.html("/admin/services").await;
    assert!(form.contains("name=\"webhooks[0].url\""), "{form}");
    let csrf = csrf_of(&form);
    let create = |secret: &'static str| {
        let csrf = csrf.clone();
        let pages = &pages;
        async move {
            let fields = [
                ("csrf", csrf.as_str()),
                ("name", "ci-bot"),
                ("instances", "corp"),
                ("scopes", "read_api"),
                ("webhooks[0].url", "https://hooks.corp.example/labgate"),
                ("webhooks[0].secret", secret),
                ("webhooks[1].url", ""),
                ("webhooks[1].secret", ""),
            ];
            pages.post("/admin/services", &fields).await
        }
    };

    // A new service has no secret to keep.
    let refused = create("").await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        error_beside(&page, "webhooks[0].secret").contains("is required"),
        "{page}"
    );
    assert!(page.contains("value=\"https://hooks.corp.example/labgate\""));
    assert_eq!(
        app.get_json("/api/v1/services").await["services"],
        json!([]),
        "nothing created"
    );

    let created = create(SECRET).await;
    assert_eq!(created.status(), 201);
    assert!(!created.text().await.unwrap().contains(SECRET));
    assert_eq!(
        stored_urls(&app).await,
        json!([{"url": "https://hooks.corp.example/labgate"}])
    );
}
