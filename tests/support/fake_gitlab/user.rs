//! The person signed in at the fake GitLab, as its userinfo endpoint and `/api/v4/user`
//! (served by `api`) describe them.

use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::{Shared, bearer_record};

pub(crate) const USER_ID: u64 = 4242;
pub(crate) const USERNAME: &str = "alice";

pub(super) async fn userinfo(state: Shared, req: HttpRequest) -> HttpResponse {
    let state = state.lock().unwrap();
    match bearer_record(&state, &req) {
        Some(record) if record.scopes.iter().any(|s| s == "openid") => {
            HttpResponse::Ok().json(user_claims())
        }
        _ => HttpResponse::Unauthorized().json(json!({"error": "invalid_token"})),
    }
}

/// `GET /api/v4/user`, as GitLab describes the person to themselves.
pub(super) fn api_user() -> Value {
    json!({"id": USER_ID, "username": USERNAME, "name": "Alice Liddell", "state": "active"})
}

pub(super) fn user_claims() -> Value {
    json!({
        "sub": USER_ID.to_string(),
        "sub_legacy": "2ecb3bc6bdf0c2d6f4b1a1e8c5e5a2f1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5",
        "name": "Alice Liddell",
        "nickname": USERNAME,
        "preferred_username": USERNAME,
        "email": "alice@corp.example",
        "email_verified": true,
        "groups_direct": ["platform"],
    })
}
