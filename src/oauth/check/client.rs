//! The last step: does GitLab know the OAuth application's ID and secret? Asked without any
//! person, so that a mistyped or renewed secret is found when it is entered, not when somebody
//! first connects.

use secrecy::SecretString;

use super::failure::Failure;
use crate::config::OutboundSettings;
use crate::oauth::client::instance_http_client;
use crate::oauth::discovery::Discovery;
use crate::oauth::gitlab::{GitLabApp, GitLabError};
use crate::oauth::tls::TrustRoots;

/// The step's code, and the word for GitLab answering `invalid_client` wherever it does.
pub const CLIENT_REJECTED: &str = "client_rejected";

/// The application's credentials as they would be used, redirect URL included.
pub struct ClientToCheck<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub redirect_url: &'a str,
}

pub(super) async fn check_client(
    discovery: &Discovery,
    client: &ClientToCheck<'_>,
    trust: TrustRoots<'_>,
    limits: &OutboundSettings,
) -> Result<String, Failure> {
    let http =
        instance_http_client(trust, limits).map_err(|e| Failure::new("client_unchecked", e))?;
    let app = GitLabApp {
        discovery,
        client_id: client.client_id,
        client_secret: client.client_secret,
        redirect_url: client.redirect_url,
    };
    match app.check_client(&http).await {
        Ok(()) => Ok(format!(
            "GitLab knows the client ID {:?} and its secret",
            client.client_id
        )),
        Err(GitLabError::Refused(code)) if code == "invalid_client" => Err(Failure::new(
            CLIENT_REJECTED,
            format!(
                "GitLab rejected the client ID {:?} or its secret (invalid_client): copy both again \
                 from the application's page in GitLab (Admin area → Applications); after \
                 \"Renew secret\" only the new secret works",
                client.client_id
            ),
        )),
        Err(e) => Err(Failure::new(
            "client_unchecked",
            format!("GitLab's token endpoint did not answer as expected: {e}"),
        )),
    }
}
