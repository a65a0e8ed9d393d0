//! A finished connect's result, shown again: the callback sends the browser on to a page whose
//! URL carries no code or state, so that reloading it shows the result rather than a failure.
//! Only the browser that connected sees it: it must bring the session's binding cookie, and the
//! connection the URL names must be the one that session made.

use super::{Failure, binding_cookie_name, hash_secret, internal, session_key};
use crate::db;
use crate::service::Context;

/// Who was connected, on which instance.
pub struct Connected {
    pub username: String,
    pub instance: String,
}

/// The result of the session `key` names on `instance_path`, which made `connection_id`, for
/// the browser whose cookies `cookie` reads.
pub async fn result(
    ctx: &Context,
    instance_path: &str,
    key: &str,
    connection_id: &str,
    cookie: impl Fn(&str) -> Option<String>,
) -> Result<Connected, Failure> {
    let binding = cookie(&binding_cookie_name(key)).ok_or(Failure::ResultGone)?;
    let binding_hash = hash_secret(&binding);
    let connection_id = connection_id.to_owned();
    let found = ctx
        .db_read(move |conn| {
            let Some(session) = db::connect_sessions::find_by_binding(conn, &binding_hash)? else {
                return Ok(None);
            };
            let instance = db::instances::find_by_id(conn, &session.instance_id)?;
            let connection = db::connections::find(conn, &connection_id)?;
            Ok(Some((session, instance, connection)))
        })
        .await
        .map_err(internal)?;
    let Some((session, Some(instance), Some(connection))) = found else {
        return Err(Failure::ResultGone);
    };
    // Made by this session: the same service, instance and subject, once the session finished.
    let made_here = session.finished_at.is_some()
        && connection.service_id == session.service_id
        && connection.instance_id == session.instance_id
        && connection.subject == session.subject;
    if !made_here || session_key(&session.id) != key || instance.name != instance_path {
        return Err(Failure::ResultGone);
    }
    Ok(Connected {
        username: connection.gitlab_username,
        instance: instance.name,
    })
}
