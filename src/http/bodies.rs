//! The bodies of answers serialised from a type, each its own schema in the OpenAPI document.
//! Deliberately no secret field, except the handout's token.

use std::collections::BTreeMap;

use serde::Serialize;

use super::timestamp;
use crate::domain::{CaBundle, ReturnOrigin, WorkloadIdentity};
use crate::service::CheckStep;
use crate::service::instances::Instance;
use crate::service::principal::Service;
use crate::service::webhooks::deliveries::DeliveryView;

/// An instance as the admin API shows it. There is deliberately no secret field.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct InstanceBody<'a> {
    pub(super) name: &'a str,
    pub(super) base_url: &'a str,
    pub(super) client_id: &'a str,
    pub(super) scopes: Vec<&'a str>,
    pub(super) ca_pem: Option<&'a str>,
    pub(super) ca_subjects: &'a [String],
    pub(super) redirect_url: &'a str,
    pub(super) endpoints: BTreeMap<&'static str, &'a str>,
    pub(super) last_check: CheckBody<'a>,
    /// The access-token lifetime GitLab granted last (absent until a token was issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) token_lifetime_seconds: Option<i64>,
    /// Since when GitLab rejects the client ID or secret (`invalid_client`); null while it
    /// accepts them.
    pub(super) client_rejected_at: Option<String>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CheckBody<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(super) name: &'a str,
    pub(super) ok: bool,
    pub(super) checked_at: String,
    pub(super) steps: &'a [CheckStep],
}

impl<'a> From<&'a Instance> for InstanceBody<'a> {
    fn from(instance: &'a Instance) -> Self {
        Self {
            name: instance.name.as_str(),
            base_url: instance.base_url.as_str(),
            client_id: &instance.client_id,
            scopes: instance.scopes.iter().collect(),
            ca_pem: instance.ca.as_ref().map(|ca| ca.pem()),
            ca_subjects: instance.ca.as_ref().map_or(&[], |ca| ca.subjects()),
            redirect_url: &instance.redirect_url,
            endpoints: instance.discovery.endpoints().into_iter().collect(),
            last_check: CheckBody {
                name: "",
                ok: instance.last_check.ok,
                checked_at: timestamp(instance.last_check.at),
                steps: &instance.last_check.steps,
            },
            token_lifetime_seconds: instance.token_lifetime_seconds,
            client_rejected_at: instance.client_rejected_at.map(timestamp),
            created_at: timestamp(instance.created_at),
            updated_at: timestamp(instance.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ServiceBody<'a> {
    pub(super) name: &'a str,
    pub(super) client_id: &'a str,
    pub(super) instances: Vec<String>,
    pub(super) scopes: Vec<&'a str>,
    pub(super) return_origins: Vec<&'a str>,
    pub(super) projects: Vec<String>,
    pub(super) max_access: &'static str,
    /// Workload identities whose tokens it may exchange for service tokens.
    pub(super) identities: Vec<IdentityBody<'a>>,
    /// Where its connection events go; the secrets are write-only.
    pub(super) webhooks: Vec<WebhookBody<'a>>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
}

/// A webhook as answers show it: its URL, never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WebhookBody<'a> {
    pub(super) url: &'a str,
}

/// A workload identity a service trusts.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct IdentityBody<'a> {
    /// A registered instance's name, or an https OIDC issuer URL.
    pub(super) issuer: &'a str,
    pub(super) audience: &'a str,
    /// Claim name to value; a trailing `*` matches a prefix.
    pub(super) claims: BTreeMap<&'a str, String>,
    /// The claim whose value is the only subject minted tokens may act for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) subject_claim: Option<&'a str>,
    /// The URL issuer's trust roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ca_pem: Option<&'a str>,
}

impl<'a> From<&'a WorkloadIdentity> for IdentityBody<'a> {
    fn from(identity: &'a WorkloadIdentity) -> Self {
        Self {
            issuer: identity.issuer.written(),
            audience: &identity.audience,
            claims: identity
                .claims
                .iter()
                .map(|(name, expected)| (name.as_str(), expected.written()))
                .collect(),
            subject_claim: identity.subject_claim.as_deref(),
            ca_pem: identity.ca.as_ref().map(CaBundle::pem),
        }
    }
}

impl<'a> ServiceBody<'a> {
    /// The service, with the URLs of its webhooks (`services::webhooks::urls_of`).
    pub(super) fn new(service: &'a Service, webhook_urls: &'a [String]) -> Self {
        Self {
            name: service.name.as_str(),
            client_id: &service.client_id,
            instances: service.instances.as_strings(),
            scopes: service.scopes.iter().collect(),
            return_origins: service
                .return_origins
                .iter()
                .map(ReturnOrigin::as_str)
                .collect(),
            projects: service.projects.as_strings(),
            max_access: service.max_access.as_str(),
            identities: service.identities.iter().map(IdentityBody::from).collect(),
            webhooks: webhook_urls.iter().map(|url| WebhookBody { url }).collect(),
            created_at: timestamp(service.created_at),
            updated_at: timestamp(service.updated_at),
        }
    }
}

/// One delivery of one event to one webhook URL.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryBody<'a> {
    pub(super) id: &'a str,
    /// The event's id, as in the body delivered (shared by its deliveries to every URL).
    pub(super) event_id: &'a str,
    /// `connection.created`, `connection.reauthorization_required` or `connection.revoked`.
    #[serde(rename = "type")]
    pub(super) event_type: &'a str,
    pub(super) url: &'a str,
    /// `pending`, `delivered` or `failed`.
    pub(super) status: &'a str,
    pub(super) attempts: i64,
    /// Why the last failed attempt failed (an answer's status, a timeout, a refused connection).
    pub(super) last_error: Option<&'a str>,
    /// When a pending delivery is tried next; null once delivered or failed.
    pub(super) next_attempt_at: Option<String>,
    pub(super) delivered_at: Option<String>,
    pub(super) created_at: String,
}

impl<'a> From<&'a DeliveryView> for DeliveryBody<'a> {
    fn from(view: &'a DeliveryView) -> Self {
        Self {
            id: &view.id,
            event_id: &view.event_id,
            event_type: &view.event_type,
            url: &view.url,
            status: &view.status,
            attempts: view.attempts,
            last_error: view.last_error.as_deref(),
            next_attempt_at: view.next_attempt_at.map(timestamp),
            delivered_at: view.delivered_at.map(timestamp),
            created_at: timestamp(view.created_at),
        }
    }
}

/// SPEC's credentials response, written straight from the handout (the hot path).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Handout<'a> {
    pub(super) access_token: &'a str,
    pub(super) token_type: &'static str,
    pub(super) expires_at: String,
    pub(super) scopes: Vec<&'a str>,
    pub(super) connection_id: &'a str,
    pub(super) gitlab: GitLabUser<'a>,
    pub(super) instance: InstanceRef<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GitLabUser<'a> {
    pub(super) user_id: &'a str,
    pub(super) username: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct InstanceRef<'a> {
    pub(super) name: &'a str,
    pub(super) base_url: &'a str,
}
