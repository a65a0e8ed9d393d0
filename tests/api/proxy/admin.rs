//! The admin pages list live access grants (never their tokens) and revoke one, behind the
//! session's CSRF token.

use reqwest::Method;

use super::ProxyWorld;
use crate::admin_pages::{Pages, csrf_of, text};
use crate::support::database::Backend;

on_both_backends!(an_admin_sees_grants_without_tokens_and_revokes_one);

async fn an_admin_sees_grants_without_tokens_and_revokes_one(backend: Backend) {
    let pw = ProxyWorld::start(backend).await;
    let grant = pw.grant(&["group/app", "group/other"], "write").await;
    let works = || pw.api_call(Method::GET, "/user", &grant.token);
    assert_eq!(works().await.status(), 200);
    let pages = Pages::signed_in(&pw.app).await;

    let html = pages.html("/admin/access-grants").await;
    let shown = text(&html);
    for expected in [
        "ci-bot",
        "corp",
        "user-17",
        "group/app",
        "group/other",
        "write",
    ] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
    assert!(
        !html.contains(&grant.token),
        "a grant's token on the admin page"
    );
    let revoke = format!("/admin/access-grants/{}/revoke", grant.id);
    assert!(html.contains(&revoke), "a revoke form per grant");

    let forged = pages.post(&revoke, &[("csrf", "not-this-sessions")]).await;
    assert_ne!(
        forged.status(),
        303,
        "revoked without the session's CSRF token"
    );
    assert_eq!(
        works().await.status(),
        200,
        "the grant survives a forged post"
    );

    let done = pages.post(&revoke, &[("csrf", &csrf_of(&html))]).await;
    assert_eq!(done.status(), 303);
    assert_eq!(works().await.status(), 401, "revoked at once");
    let after = pages.html("/admin/access-grants").await;
    assert!(
        !after.contains(&revoke),
        "a revoked grant is no longer listed"
    );
}
