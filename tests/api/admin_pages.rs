//! The admin web pages over plain HTTP: sign-in, the session cookie, CSRF, and forms that
//! give the admin API's messages, keep what was typed and never show a secret.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ConnectWorld, GitLabWorld, TestApp, app_with_corp};
use crate::support::CLIENT_SECRET;
use crate::support::browser::Browser;
use crate::support::database::Backend;

on_both_backends!(
    every_admin_page_sends_a_visitor_without_a_session_to_sign_in,
    a_wrong_token_is_refused_and_opens_no_session,
    signing_in_sets_a_strict_expiring_cookie_and_signing_out_revokes_it,
    a_post_without_this_sessions_csrf_token_changes_nothing,
    form_errors_are_the_apis_and_keep_what_was_typed_but_not_the_secret,
    a_failed_check_is_shown_beside_the_field_with_the_report,
    registering_through_the_form_uploads_the_ca_and_shows_the_redirect_url,
    an_instance_is_rechecked_edited_and_deleted_after_confirmation,
    a_service_secret_is_shown_once_after_create_and_rotate,
    a_services_policy_is_edited_in_place,
    a_services_workload_identities_are_edited_as_json,
    connections_are_listed_and_filtered,
    a_connection_is_revoked_after_confirmation_and_the_audit_page_shows_it,
    the_audit_page_pages_back_through_older_events,
);

/// The admin pages through a browser without JavaScript, by path.
pub(crate) struct Pages {
    browser: Browser,
    base: String,
}

impl Pages {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            browser: Browser::new(),
            base: app.address.clone(),
        }
    }

    /// Signs in with `token` through the form; returns the answer to the POST.
    pub(crate) async fn sign_in(&self, token: &str) -> Response {
        let page = self.get("/admin/sign-in").await;
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.unwrap());
        self.post("/admin/sign-in", &[("csrf", &csrf), ("token", token)])
            .await
    }

    pub(crate) async fn signed_in(app: &TestApp) -> Self {
        let pages = Self::new(app);
        let response = pages.sign_in(&app.admin_token).await;
        assert_eq!(response.status(), 303, "signing in");
        pages
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        self.browser.get(&self.url(path)).await
    }

    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.browser.post_form(&self.url(path), fields).await
    }

    /// A multipart form, as a browser sends one with a file input; `files` are (field, name, content).
    pub(crate) async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &str)],
    ) -> Response {
        let boundary = "----labgate-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        for (name, filename, content) in files {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/x-pem-file\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let request = self
            .browser
            .request(Method::POST, &self.url(path))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        self.browser.send(request).await
    }

    /// The CSRF token of the form on `path`.
    pub(crate) async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status(), 200, "GET {path}");
        csrf_of(&page.text().await.unwrap())
    }

    /// GETs a page that must answer 200, and returns its HTML.
    pub(crate) async fn html(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// The session cookie the browser sends to the admin pages.
    pub(crate) fn session_cookie(&self) -> Option<String> {
        self.browser
            .cookie(&self.url("/admin/instances"), "labgate_admin")
    }

    pub(crate) fn set_session_cookie(&self, value: &str) {
        self.browser.set_cookie(
            &self.url("/admin"),
            &format!("labgate_admin={value}; Path=/admin"),
        );
    }

    /// Every `Set-Cookie` header received, as sent.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.browser.set_cookies()
    }
}

pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

/// The text of an HTML page as a person reads it: entities decoded.
pub(crate) fn text(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A registration as the form posts it.
fn registration_fields(world: &GitLabWorld, name: &str) -> Vec<(String, String)> {
    let body = world.registration(name);
    let mut fields: Vec<(String, String)> = ["name", "base_url", "client_id", "client_secret"]
        .iter()
        .map(|k| (k.to_string(), body[*k].as_str().unwrap().to_owned()))
        .collect();
    fields.push(("ca_pem".into(), world.ca.pem()));
    for scope in body["scopes"].as_array().unwrap() {
        fields.push(("scopes".into(), scope.as_str().unwrap().to_owned()));
    }
    fields
}

fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn every_admin_page_sends_a_visitor_without_a_session_to_sign_in(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let pages_and_forms = [
        (Method::GET, "/admin"),
        (Method::GET, "/admin/instances"),
        (Method::GET, "/admin/instances/new"),
        (Method::GET, "/admin/instances/corp"),
        (Method::GET, "/admin/instances/corp/edit"),
        (Method::GET, "/admin/instances/corp/delete"),
        (Method::GET, "/admin/services"),
        (Method::GET, "/admin/connections?status=active"),
        (Method::GET, "/admin/no-such-page"),
        (Method::POST, "/admin/instances"),
        (Method::POST, "/admin/instances/corp/check"),
        (Method::POST, "/admin/instances/corp/edit"),
        (Method::POST, "/admin/instances/corp/delete"),
        (Method::POST, "/admin/services"),
        (Method::POST, "/admin/services/bot/rotate-secret"),
        (Method::POST, "/admin/services/bot/delete"),
        (Method::POST, "/admin/sign-out"),
    ];
    for cookie in [
        None,
        Some("labgate_admin=lgses_forged"),
        Some("labgate_admin="),
    ] {
        for (method, path) in &pages_and_forms {
            // A browser of its own per request: each carries exactly this cookie.
            let browser = Browser::new();
            if let Some(cookie) = cookie {
                browser.set_cookie(&app.address, &format!("{cookie}; Path=/admin"));
            }
            let url = format!("{}{path}", app.address);
            assert_eq!(
                browser.cookie(&url, "labgate_admin").as_deref(),
                cookie.map(|c| c.trim_start_matches("labgate_admin=")),
                "the browser sends the cookie"
            );
            let request = browser
                .request(method.clone(), &url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("csrf=x");
            let response = browser.send(request).await;
            assert_eq!(response.status(), 303, "{method} {path} with {cookie:?}");
            let to = location(&response);
            assert!(to.starts_with("/admin/sign-in"), "{method} {path}: {to}");
            if *method == Method::GET && *path != "/admin" {
                let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                assert_eq!(to, format!("/admin/sign-in?next={next}"), "{path}");
            }
        }
    }
    assert_eq!(
        app.instance_names().await,
        ["corp"],
        "nothing was changed or deleted"
    );

    // After signing in, the browser goes back where it was headed, and only to an admin page.
    let pages = Pages::new(&app);
    let form = pages.html("/admin/sign-in?next=%2Fadmin%2Fservices").await;
    let csrf = csrf_of(&form);
    let response = pages
        .post(
            "/admin/sign-in",
            &[
                ("csrf", &csrf),
                ("token", &app.admin_token),
                ("next", "/admin/services"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/admin/services");
    let pages = Pages::new(&app);
    let csrf = pages.csrf("/admin/sign-in").await;
    let response = pages
        .post(
            "/admin/sign-in",
            &[
                ("csrf", &csrf),
                ("token", &app.admin_token),
                ("next", "//evil.example/admin"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/admin/instances");
}

async fn a_wrong_token_is_refused_and_opens_no_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pages = Pages::new(&app);
    let wrong = format!("{}x", app.admin_token);

    let response = pages.sign_in(&wrong).await;

    assert_eq!(response.status(), 401);
    let html = response.text().await.unwrap();
    assert!(text(&html).contains("Admin token this is not the admin token"));
    assert!(!html.contains(&wrong), "the typed token is not shown again");
    assert!(pages.session_cookie().is_none());
    assert_eq!(pages.get("/admin/instances").await.status(), 303);

    // The sign-in form's own token: a form posted from elsewhere is refused, even with the
    // right admin token.
    let elsewhere = Pages::new(&app);
    let response = elsewhere
        .post(
            "/admin/sign-in",
            &[("csrf", "guessed"), ("token", &app.admin_token)],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(elsewhere.session_cookie().is_none());

    // The refusal is audited, without the token typed; a sign-in with the token is too, by it.
    assert_eq!(
        Pages::new(&app).sign_in(&app.admin_token).await.status(),
        303
    );
    let audit = app.get_json("/api/v1/audit").await;
    let events: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("admin_signed_in", "admin:token"),
            ("admin_sign_in_refused", "unknown")
        ]
    );
    assert!(!audit.to_string().contains(&wrong));
}

async fn signing_in_sets_a_strict_expiring_cookie_and_signing_out_revokes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pages = Pages::new(&app);

    let response = pages.sign_in(&app.admin_token).await;

    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/instances");
    let cookie = pages
        .set_cookies()
        .iter()
        .find(|c| c.starts_with("labgate_admin="))
        .expect("a session cookie")
        .clone();
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for expected in [
        "httponly",
        "samesite=strict",
        "secure",
        "path=/admin",
        "max-age=28800",
    ] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} in {cookie}"
        );
    }
    let token = pages.session_cookie().unwrap();
    assert!(token.starts_with("lgses_") && token.len() > 40);

    let page = pages.get("/admin/instances").await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(&token),
        "the session token is not in the page"
    );
    assert!(!html.contains(&app.admin_token));
    assert!(
        !String::from_utf8_lossy(&app.db.raw_contents()).contains(&token),
        "the database holds only the session token's hash"
    );

    let csrf = csrf_of(&html);
    let out = pages.post("/admin/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert!(
        pages
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("labgate_admin=;") && c.contains("Max-Age=0"))
    );
    assert!(pages.session_cookie().is_none());
    // The old cookie, replayed, signs no one in: the session is gone on the server.
    pages.set_session_cookie(&token);
    let replayed = pages.get("/admin/instances").await;
    assert_eq!(replayed.status(), 303);
    assert!(location(&replayed).starts_with("/admin/sign-in"));
}

async fn a_post_without_this_sessions_csrf_token_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let pages = Pages::signed_in(&app).await;
    let other = Pages::signed_in(&app).await;
    let others_csrf = other.csrf("/admin/instances/new").await;
    let fields = registration_fields(&world, "corp");
    let mut without = borrowed(&fields);

    let refused = pages.post("/admin/instances", &without).await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("did not carry this session")
    );
    for wrong in ["", "not-a-token", others_csrf.as_str()] {
        without.push(("csrf", wrong));
        assert_eq!(
            pages.post("/admin/instances", &without).await.status(),
            403,
            "CSRF token {wrong:?}"
        );
        assert_eq!(
            pages
                .post_multipart("/admin/instances", &without, &[])
                .await
                .status(),
            403
        );
        without.pop();
    }
    assert!(app.instance_names().await.is_empty(), "nothing registered");

    assert_eq!(
        app.register(&world.registration("corp")).await.status(),
        201
    );
    for path in [
        "/admin/instances/corp/delete",
        "/admin/instances/corp/edit",
        "/admin/instances/corp/check",
    ] {
        let response = pages
            .post(
                path,
                &[("csrf", &others_csrf), ("base_url", "https://x.example")],
            )
            .await;
        assert_eq!(response.status(), 403, "{path}");
    }
    let still = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(still["base_url"], world.gitlab.base_url());
    assert_eq!(still["updated_at"], still["created_at"], "unchanged");

    let (client_id, _) = app
        .create_service(&json!({"name": "bot", "instances": ["*"], "scopes": ["read_api"]}))
        .await;
    for path in [
        "/admin/services/bot/rotate-secret",
        "/admin/services/bot/delete",
    ] {
        assert_eq!(
            pages.post(path, &[("confirm", "yes")]).await.status(),
            403,
            "{path}"
        );
    }
    assert_eq!(
        pages
            .post("/admin/sign-out", &[("confirm", "yes")])
            .await
            .status(),
        403,
        "sign-out needs the token too"
    );
    let services = app.get_json("/api/v1/services").await;
    assert_eq!(services["services"][0]["client_id"], client_id.as_str());
    assert_eq!(
        pages.get("/admin/instances").await.status(),
        200,
        "still signed in"
    );
}

async fn form_errors_are_the_apis_and_keep_what_was_typed_but_not_the_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let pages = Pages::signed_in(&app).await;
    let csrf = pages.csrf("/admin/instances/new").await;
    let typed_client_id = "typed-client-id-1234";
    let body = json!({
        "name": "Corp_GitLab",
        "base_url": "http://localhost/gitlab",
        "client_id": typed_client_id,
        "client_secret": CLIENT_SECRET,
        "ca_pem": "not a certificate",
        "scopes": ["read_api"],
    });
    let api = app.register(&body).await;
    assert_eq!(api.status(), 422);
    let problem: Value = api.json().await.unwrap();
    let api_errors = problem["errors"].as_array().unwrap().clone();
    assert_eq!(api_errors.len(), 4, "{problem}");

    let response = pages
        .post(
            "/admin/instances",
            &[
                ("csrf", &csrf),
                ("name", "Corp_GitLab"),
                ("base_url", "http://localhost/gitlab"),
                ("client_id", typed_client_id),
                ("client_secret", CLIENT_SECRET),
                ("ca_pem", "not a certificate"),
                ("scopes", "read_api"),
            ],
        )
        .await;

    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    let shown = text(&html);
    for error in &api_errors {
        let field = error["field"].as_str().unwrap();
        let message = error["message"].as_str().unwrap();
        let beside = format!("id=\"{field}-error\"");
        assert!(html.contains(&beside), "an error beside {field}");
        assert!(
            shown.contains(message),
            "the API's message for {field}: {message}"
        );
    }
    assert!(html.contains("value=\"Corp_GitLab\""));
    assert!(html.contains("value=\"http://localhost/gitlab\""));
    assert!(html.contains(&format!("value=\"{typed_client_id}\"")));
    assert!(html.contains(">not a certificate</textarea>"));
    assert!(html.contains("value=\"read_api\" checked"));
    assert!(
        !html.contains(CLIENT_SECRET),
        "the secret is not shown again"
    );
    assert!(html.contains("id=\"client_secret\" name=\"client_secret\" value=\"\""));
    assert!(app.instance_names().await.is_empty());

    // A missing field is "required", as in the API.
    let response = pages
        .post("/admin/instances", &[("csrf", &csrf), ("scopes", "openid")])
        .await;
    assert_eq!(response.status(), 422);
    let shown = text(&response.text().await.unwrap());
    for label in ["Name", "Base URL", "Client ID", "Client secret"] {
        assert!(shown.contains(&format!("{label} is required")), "{label}");
    }

    // A taken name is refused with the API's words, and the first registration stays.
    assert_eq!(
        app.register(&world.registration("corp")).await.status(),
        201
    );
    let fields = registration_fields(&world, "corp");
    let mut posted = borrowed(&fields);
    posted.push(("csrf", &csrf));
    let taken = pages.post("/admin/instances", &posted).await;
    assert_eq!(taken.status(), 409);
    let html = taken.text().await.unwrap();
    assert!(text(&html).contains("an instance named \"corp\" is registered already"));
    assert!(!html.contains(CLIENT_SECRET));
}

async fn a_failed_check_is_shown_beside_the_field_with_the_report(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let pages = Pages::signed_in(&app).await;
    let csrf = pages.csrf("/admin/instances/new").await;
    let mut body = world.registration("corp");
    body["ca_pem"] = Value::Null;
    let api: Value = app.register(&body).await.json().await.unwrap();
    assert_eq!(api["code"], "tls_unknown_ca");

    let mut fields = registration_fields(&world, "corp");
    fields.retain(|(k, _)| k != "ca_pem");
    let mut posted = borrowed(&fields);
    posted.push(("csrf", &csrf));
    let response = pages.post("/admin/instances", &posted).await;

    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    let shown = text(&html);
    assert!(html.contains("id=\"ca_pem-error\""));
    assert!(shown.contains(api["detail"].as_str().unwrap()), "{shown}");
    assert!(shown.contains("tls_unknown_ca"));
    for step in [
        "resolve",
        "connect",
        "tls",
        "discovery",
        "issuer",
        "endpoints",
    ] {
        assert!(html.contains(&format!("<code>{step}</code>")), "{step}");
    }
    assert!(html.contains(&format!("value=\"{}\"", world.gitlab.base_url())));
    assert!(!html.contains(CLIENT_SECRET));
    assert!(app.instance_names().await.is_empty());
}

async fn registering_through_the_form_uploads_the_ca_and_shows_the_redirect_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    let pages = Pages::signed_in(&app).await;
    let form = pages.html("/admin/instances/new").await;
    assert!(
        form.contains("https://labgate.test/oauth/{name}/callback"),
        "the redirect URL is shown before saving"
    );
    for field in [
        "name",
        "base_url",
        "client_id",
        "client_secret",
        "ca_pem",
        "ca_file",
    ] {
        assert!(form.contains(&format!("<label for=\"{field}\"")), "{field}");
    }
    assert!(form.contains("<label for=\"scopes-openid\""));
    assert!(form.contains("Admin area → Applications"));
    let csrf = csrf_of(&form);
    let mut fields = registration_fields(&world, "corp");
    fields.retain(|(k, _)| k != "ca_pem");
    let mut posted = borrowed(&fields);
    posted.push(("csrf", &csrf));
    posted.push(("ca_pem", ""));
    let pem = world.ca.pem();

    let response = pages
        .post_multipart(
            "/admin/instances",
            &posted,
            &[("ca_file", "corp-root.pem", &pem)],
        )
        .await;

    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/instances/corp?done=registered");
    let html = pages.html("/admin/instances/corp?done=registered").await;
    assert!(html.contains(
        "<code id=\"registered-redirect-url\">https://labgate.test/oauth/corp/callback</code>"
    ));
    assert!(html.contains("data-copy=\"registered-redirect-url\""));
    assert!(html.contains("Confidential"));
    assert!(html.contains("CN=Corp Test Root CA"));
    assert!(!html.contains(CLIENT_SECRET));
    let list = pages.html("/admin/instances").await;
    assert!(list.contains("href=\"/admin/instances/corp\""));
    assert!(list.contains(&world.gitlab.base_url()));
    assert!(!list.contains(CLIENT_SECRET));
    let stored = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(stored["ca_pem"].as_str().unwrap().trim(), pem.trim());
    assert_eq!(
        stored["scopes"],
        json!(["openid", "read_api", "read_repository"])
    );
}

async fn an_instance_is_rechecked_edited_and_deleted_after_confirmation(backend: Backend) {
    let (app, world) = app_with_corp(backend).await;
    let pages = Pages::signed_in(&app).await;
    let page = pages.html("/admin/instances/corp").await;
    let csrf = csrf_of(&page);
    assert!(page.contains("Re-check now"));

    let checked = pages
        .post("/admin/instances/corp/check", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&checked), "/admin/instances/corp?done=checked");
    assert!(
        pages
            .html("/admin/instances/corp?done=checked")
            .await
            .contains("The check passed.")
    );

    let edit = pages.html("/admin/instances/corp/edit").await;
    assert!(edit.contains(&format!("value=\"{}\"", world.gitlab.base_url())));
    assert!(!edit.contains(CLIENT_SECRET));
    // "Renew secret" in GitLab, then the new secret with the CA dropped: the check fails,
    // nothing changes.
    let new_secret = world.gitlab.renew_client_secret();
    let before = app.get_json("/api/v1/instances/corp").await;
    let client_id = before["client_id"].as_str().unwrap().to_owned();
    let base_url = world.gitlab.base_url();
    let failed = pages
        .post(
            "/admin/instances/corp/edit",
            &[
                ("csrf", &csrf),
                ("base_url", &base_url),
                ("client_id", &client_id),
                ("client_secret", &new_secret),
                ("ca_pem", ""),
                ("scopes", "openid"),
                ("scopes", "read_api"),
            ],
        )
        .await;
    assert_eq!(failed.status(), 422);
    let html = failed.text().await.unwrap();
    assert!(html.contains("id=\"ca_pem-error\""));
    assert!(!html.contains(&new_secret));
    assert_eq!(
        app.get_json("/api/v1/instances/corp").await["updated_at"],
        before["updated_at"]
    );

    let pem = world.ca.pem();
    let saved = pages
        .post(
            "/admin/instances/corp/edit",
            &[
                ("csrf", &csrf),
                ("base_url", &base_url),
                ("client_id", &client_id),
                ("client_secret", &new_secret),
                ("ca_pem", &pem),
                ("scopes", "openid"),
                ("scopes", "read_api"),
            ],
        )
        .await;
    assert_eq!(location(&saved), "/admin/instances/corp?done=changed");
    let after = app.get_json("/api/v1/instances/corp").await;
    assert_eq!(after["scopes"], json!(["openid", "read_api"]));

    let confirm = pages.html("/admin/instances/corp/delete").await;
    assert!(confirm.contains("Delete instance corp?"));
    assert_eq!(
        app.instance_names().await,
        ["corp"],
        "asking deletes nothing"
    );
    let deleted = pages
        .post("/admin/instances/corp/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/admin/instances?done=deleted");
    assert!(app.instance_names().await.is_empty());
    let missing = pages.get("/admin/instances/corp").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn a_service_secret_is_shown_once_after_create_and_rotate(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let pages = Pages::signed_in(&app).await;
    let form = pages.html("/admin/services").await;
    assert!(form.contains("<label for=\"instances-corp\""));
    let csrf = csrf_of(&form);

    let refused = pages
        .post(
            "/admin/services",
            &[
                ("csrf", &csrf),
                ("name", "ci-bot"),
                ("scopes", "read_api"),
                ("return_origins", "https://bot.corp.example/path"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let shown = text(&refused.text().await.unwrap());
    assert!(shown.contains("must name at least one instance"), "{shown}");
    assert!(shown.contains("must be an origin like"));
    assert!(shown.contains(">https://bot.corp.example/path</textarea>"));

    let created = pages
        .post(
            "/admin/services",
            &[
                ("csrf", &csrf),
                ("name", "ci-bot"),
                ("instances", "corp"),
                ("scopes", "read_api"),
                ("scopes", "read_repository"),
                ("return_origins", "https://bot.corp.example"),
            ],
        )
        .await;
    assert_eq!(created.status(), 201);
    let html = created.text().await.unwrap();
    let secret = code_text(&html, "client-secret");
    let client_id = code_text(&html, "client-id");
    assert!(secret.starts_with("lgsec_"));
    assert!(html.contains("shown only this once"));
    assert_eq!(
        app.request_service_token(&client_id, &secret)
            .await
            .status(),
        200
    );
    let list = pages.html("/admin/services").await;
    assert!(list.contains(&client_id));
    assert!(!list.contains(&secret), "the list never shows the secret");

    let confirm = pages.html("/admin/services/ci-bot/rotate-secret").await;
    assert!(confirm.contains("stops working at once"));
    let rotated = pages
        .post("/admin/services/ci-bot/rotate-secret", &[("csrf", &csrf)])
        .await;
    assert_eq!(rotated.status(), 200);
    let html = rotated.text().await.unwrap();
    let new_secret = code_text(&html, "client-secret");
    assert_ne!(new_secret, secret);
    assert_eq!(
        app.request_service_token(&client_id, &secret)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.request_service_token(&client_id, &new_secret)
            .await
            .status(),
        200
    );

    let deleted = pages
        .post("/admin/services/ci-bot/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/admin/services?done=deleted");
    assert_eq!(
        app.get_json("/api/v1/services").await["services"],
        json!([])
    );
}

async fn a_services_policy_is_edited_in_place(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    let (client_id, _) = app
        .create_service(&json!({
            "name": "ci-bot", "instances": ["corp"], "scopes": ["read_api"],
            "return_origins": ["https://bot.corp.example"], "projects": ["group/**"]
        }))
        .await;
    let pages = Pages::signed_in(&app).await;
    let list = pages.html("/admin/services").await;
    assert!(
        list.contains("href=\"/admin/services/ci-bot/edit\""),
        "{list}"
    );

    let form = pages.html("/admin/services/ci-bot/edit").await;
    assert!(
        form.contains(">https://bot.corp.example</textarea>"),
        "{form}"
    );
    assert!(form.contains(">group/**</textarea>"), "{form}");
    let csrf = csrf_of(&form);
    let refused = pages
        .post(
            "/admin/services/ci-bot/edit",
            &[
                ("csrf", &csrf),
                ("instances", "corp"),
                ("scopes", "read_api"),
                ("projects", "group/../x"),
                ("max_access", "read"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let shown = text(&refused.text().await.unwrap());
    assert!(
        shown.contains(">group/../x</textarea>"),
        "what was typed is kept: {shown}"
    );
    assert_eq!(
        app.get_json("/api/v1/services/ci-bot").await["projects"],
        json!(["group/**"]),
        "a refused edit changes nothing"
    );

    let saved = pages
        .post(
            "/admin/services/ci-bot/edit",
            &[
                ("csrf", &csrf),
                ("instances", "corp"),
                ("scopes", "read_api"),
                ("scopes", "read_repository"),
                ("return_origins", "https://bot.corp.example"),
                ("projects", "group/app\ngroup/tools/*"),
                ("max_access", "write"),
            ],
        )
        .await;
    assert_eq!(location(&saved), "/admin/services?done=changed");
    let service = app.get_json("/api/v1/services/ci-bot").await;
    assert_eq!(service["scopes"], json!(["read_api", "read_repository"]));
    assert_eq!(service["projects"], json!(["group/app", "group/tools/*"]));
    assert_eq!(service["max_access"], "write");
    assert_eq!(service["client_id"], client_id, "the same client");
    assert!(
        pages
            .html("/admin/services?done=changed")
            .await
            .contains("new policy applies")
    );
}

async fn a_services_workload_identities_are_edited_as_json(backend: Backend) {
    let (app, _world) = app_with_corp(backend).await;
    app.create_service(&json!({"name": "ci-bot", "instances": ["corp"], "scopes": ["read_api"]}))
        .await;
    let pages = Pages::signed_in(&app).await;
    let form = pages.html("/admin/services/ci-bot/edit").await;
    assert!(form.contains("name=\"identities\""), "{form}");
    let csrf = csrf_of(&form);
    let post = |identities: &'static str| {
        let fields = [
            ("csrf", csrf.clone()),
            ("instances", "corp".to_owned()),
            ("scopes", "read_api".to_owned()),
            ("projects", "**".to_owned()),
            ("max_access", "read".to_owned()),
            ("identities", identities.to_owned()),
        ];
        let pages = &pages;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            pages.post("/admin/services/ci-bot/edit", &fields).await
        }
    };

    let not_json = post("[{\"issuer\": \"corp\",").await;
    assert_eq!(not_json.status(), 422);
    let shown = text(&not_json.text().await.unwrap());
    assert!(shown.contains("is not valid JSON"), "{shown}");
    assert!(
        shown.contains("[{\"issuer\": \"corp\","),
        "what was typed is kept: {shown}"
    );

    let unbound =
        post(r#"[{"issuer": "corp", "audience": "https://labgate.test", "claims": {}}]"#).await;
    assert_eq!(unbound.status(), 422);
    let shown = text(&unbound.text().await.unwrap());
    assert!(
        shown.contains("[0].claims: must bind at least one claim"),
        "{shown}"
    );
    assert_eq!(
        app.get_json("/api/v1/services/ci-bot").await["identities"],
        json!([]),
        "a refused edit changes nothing"
    );

    let saved = post(
        r#"[{"issuer": "corp", "audience": "https://labgate.test",
             "claims": {"project_path": "group/*", "ref_protected": "true"}, "subject_claim": "user_login"}]"#,
    )
    .await;
    assert_eq!(location(&saved), "/admin/services?done=changed");
    assert_eq!(
        app.get_json("/api/v1/services/ci-bot").await["identities"],
        json!([{"issuer": "corp", "audience": "https://labgate.test",
                "claims": {"project_path": "group/*", "ref_protected": "true"},
                "subject_claim": "user_login"}])
    );
    let list = text(&pages.html("/admin/services").await);
    assert!(list.contains("project_path=group/*"), "{list}");
    assert!(
        list.contains("acts for its <code>user_login</code>"),
        "{list}"
    );
    let again = pages.html("/admin/services/ci-bot/edit").await;
    assert!(
        again.contains("&quot;subject_claim&quot;: &quot;user_login&quot;"),
        "{again}"
    );

    // A form without the box keeps what is stored.
    let kept = pages
        .post(
            "/admin/services/ci-bot/edit",
            &[
                ("csrf", &csrf),
                ("instances", "corp"),
                ("scopes", "read_api"),
                ("projects", "**"),
                ("max_access", "read"),
            ],
        )
        .await;
    assert_eq!(location(&kept), "/admin/services?done=changed");
    assert_eq!(
        app.get_json("/api/v1/services/ci-bot").await["identities"][0]["issuer"],
        "corp"
    );
}

async fn connections_are_listed_and_filtered(backend: Backend) {
    let world = ConnectWorld::start(backend).await;
    let link = world.link("alice", json!({})).await;
    let done = world.browser.connect(&link).await;
    assert_eq!(done.status(), 200);
    let app = &world.app;
    let pages = Pages::signed_in(app).await;

    let html = pages.html("/admin/connections").await;
    assert!(html.contains("<code>alice</code>"));
    assert!(html.contains("class=\"badge active\""));
    let none = pages
        .html("/admin/connections?instance=corp&subject=bob&status=")
        .await;
    assert!(none.contains("No connection matches these filters."));
    let attention = pages
        .html("/admin/connections?status=reauthorization_required")
        .await;
    assert!(!attention.contains("<code>alice</code>"));

    let bad = pages.get("/admin/connections?status=broken").await;
    assert_eq!(bad.status(), 422);
    let shown = text(&bad.text().await.unwrap());
    assert!(shown.contains("\"broken\" is not a status"), "{shown}");

    let instances = pages.html("/admin/instances").await;
    assert!(instances.contains("1 active"));
    for connection in app.connections().await {
        for secret in ["access_token", "refresh_token"] {
            assert!(connection.get(secret).is_none());
        }
    }
}

async fn a_connection_is_revoked_after_confirmation_and_the_audit_page_shows_it(backend: Backend) {
    let world = ConnectWorld::start(backend).await;
    let id = world.connect("alice", json!({})).await;
    let token = world.world.gitlab.issued_tokens()[0].clone();
    let app = &world.app;
    let pages = Pages::signed_in(app).await;

    let listed = pages.html("/admin/connections").await;
    let revoke_path = format!("/admin/connections/{id}/revoke");
    assert!(
        listed.contains(&revoke_path),
        "a revoke link per connection"
    );
    let confirmation = text(&pages.html(&revoke_path).await);
    assert!(
        confirmation.contains("Revoke alice's connection on corp?"),
        "{confirmation}"
    );
    assert!(
        world.world.gitlab.access_token_works(&token),
        "asking is not revoking"
    );

    let csrf = pages.csrf(&revoke_path).await;
    let done = pages.post(&revoke_path, &[("csrf", &csrf)]).await;

    assert_eq!(done.status(), 303);
    assert!(
        !world.world.gitlab.access_token_works(&token),
        "revoked at GitLab"
    );
    let after = pages.html("/admin/connections?status=revoked").await;
    assert!(
        after.contains("<code>alice</code>") && !after.contains(&revoke_path),
        "revoked, nothing left to revoke"
    );

    let audit = text(&pages.html("/admin/audit?kind=connection_revoked").await);
    assert!(
        audit.contains("connection_revoked") && audit.contains("alice"),
        "{audit}"
    );
    assert!(
        !audit.contains("instance_registered"),
        "filtered by kind: {audit}"
    );
    let everything = text(&pages.html("/admin/audit").await);
    assert!(
        everything.contains("instance_registered") && everything.contains("service_created"),
        "{everything}"
    );
    assert!(!everything.contains(&token));
}

/// The text of the page's `<code id="…">` element (a secret or client ID shown once).
fn code_text(html: &str, id: &str) -> String {
    html.split(&format!("<code id=\"{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned()
}

async fn the_audit_page_pages_back_through_older_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Signed in first, and that event written (reading the log flushes it): it is older than
    // the 600 below.
    let pages = Pages::signed_in(&app).await;
    app.get_json("/api/v1/audit").await;
    app.execute_sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) \
         INSERT INTO audit_events (at, kind, actor, detail) \
         SELECT CURRENT_TIMESTAMP, 'test_event', 'labgate', 'event-' || i || '.' FROM n",
    );

    let newest = pages.html("/admin/audit?kind=test_event").await;
    assert!(newest.contains("event-600.") && newest.contains("event-101."));
    assert!(!newest.contains("event-100."), "500 at a time");
    let link = "rel=\"next\" href=\"";
    let start = newest.find(link).expect("a link to older events") + link.len();
    let next = text(&newest[start..][..newest[start..].find('"').unwrap()]);
    assert!(
        next.starts_with("/admin/audit?kind=test_event&cursor="),
        "{next}"
    );

    let older = pages.html(&next).await;
    assert!(older.contains("event-100.") && older.contains("event-1."));
    assert!(!older.contains("event-101."));
    assert!(!older.contains("rel=\"next\""), "the last page");
}
