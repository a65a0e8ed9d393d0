//! Token exchange (RFC 8693): a workload's own token (a GitLab CI/CD ID token, a Kubernetes
//! service-account token) for a service token, when the service trusts that workload's
//! identity. No static secret: the issuer's signature and the identity's bound claims are the
//! proof. The token minted never outlives the one presented, and may be bound to one subject.

use std::time::Instant;

use chrono::Utc;

use super::audit::AuditEvent;
use super::principal::Service;
use super::service_token::IssuedToken;
use super::{Context, ServiceError};
use crate::crypto::{self, ServiceClaims};
use crate::domain::AcceptedClaims;
use crate::oauth::{TokenRefusal, UnverifiedToken, VerifyError};

mod views;

pub use views::ExchangeViews;
use views::TrustedIdentity;

/// Why no token was minted.
#[derive(Debug)]
pub enum ExchangeError {
    /// No service has that client ID.
    UnknownClient,
    /// The subject token is not acceptable: `check` names what failed (`signature`, `audience`,
    /// `claim project_path`...), `reason` labels it in metrics.
    Refused {
        check: String,
        reason: &'static str,
        why: String,
    },
    /// The issuer's keys could not be fetched.
    IssuerUnavailable(String),
    Service(ServiceError),
}

impl From<ServiceError> for ExchangeError {
    fn from(error: ServiceError) -> Self {
        Self::Service(error)
    }
}

impl From<TokenRefusal> for ExchangeError {
    fn from(refusal: TokenRefusal) -> Self {
        Self::Refused {
            check: refusal.check.to_owned(),
            reason: refusal.reason,
            why: refusal.why,
        }
    }
}

/// A service token for the subject token, if the service `client_id` names trusts its identity.
/// `arrived` is when the request came in (an unknown key id refetches only keys older than it).
pub async fn exchange(
    ctx: &Context,
    client_id: &str,
    subject_token: &str,
    arrived: Instant,
) -> Result<IssuedToken, ExchangeError> {
    let result = exchange_checked(ctx, client_id, subject_token, arrived).await;
    match &result {
        Ok(_) => {}
        Err(ExchangeError::UnknownClient) => ctx.metrics.exchange_refused("unknown_client"),
        Err(ExchangeError::Refused { reason, check, .. }) => {
            tracing::info!(client_id, check = %check, "token exchange refused");
            ctx.metrics.exchange_refused(reason);
        }
        Err(ExchangeError::IssuerUnavailable(why)) => {
            tracing::warn!(client_id, error = %why, "token exchange: the issuer's keys are unavailable");
            ctx.metrics.exchange_refused("issuer_unavailable");
        }
        Err(ExchangeError::Service(_)) => {}
    }
    result
}

async fn exchange_checked(
    ctx: &Context,
    client_id: &str,
    subject_token: &str,
    arrived: Instant,
) -> Result<IssuedToken, ExchangeError> {
    let view = views::read(ctx, client_id)
        .await?
        .ok_or(ExchangeError::UnknownClient)?;
    let service = &view.service;
    let token = UnverifiedToken::parse(subject_token)?;
    let claimed = token.claimed_issuer().unwrap_or_default();
    let candidates: Vec<_> = view
        .identities
        .iter()
        .filter(|trusted| trusted.issuer.iss == claimed)
        .collect();
    if candidates.is_empty() {
        let why = if service.identities.is_empty() {
            format!("the service {} trusts no workload identity", service.name)
        } else {
            format!(
                "the token's iss is not an issuer the service {} trusts",
                service.name
            )
        };
        return Err(ExchangeError::Refused {
            check: "issuer".into(),
            reason: "issuer",
            why,
        });
    }
    // Several identities may trust one issuer (other claims, other audiences): the first that
    // accepts the token mints it; if none does, the first one's refusal is the answer.
    let mut first_refusal = None;
    for trusted in &candidates {
        let claims = match ctx
            .issuer_keys
            .verify(&trusted.issuer, &token, arrived)
            .await
        {
            Ok(claims) => claims,
            Err(VerifyError::Refused(refusal)) => return Err(refusal.into()),
            Err(VerifyError::Unavailable(why)) => {
                return Err(ExchangeError::IssuerUnavailable(why));
            }
        };
        let now = Utc::now().timestamp();
        match trusted.identity.judge(claims, now) {
            Ok(accepted) => return Ok(mint(ctx, service, trusted, claims, accepted, now).await),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    let refusal = first_refusal.expect("at least one identity judged the token");
    Err(ExchangeError::Refused {
        check: refusal.check,
        reason: refusal.reason,
        why: refusal.why,
    })
}

/// Signs the service token and records the exchange.
async fn mint(
    ctx: &Context,
    service: &Service,
    trusted: &TrustedIdentity,
    claims: &serde_json::Map<String, serde_json::Value>,
    accepted: AcceptedClaims,
    now: i64,
) -> IssuedToken {
    // Judged ahead of `now`: the token ends no later than the one presented.
    let subject_exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(now);
    let exp = (now + crypto::LIFETIME_SECONDS).min(subject_exp);
    let bound_subject = accepted.subject.map(|s| s.as_str().to_owned());
    let service_claims = ServiceClaims {
        iss: ctx.public_base().to_owned(),
        aud: crypto::AUDIENCE.to_owned(),
        sub: service.id.clone(),
        iat: now,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        identity: Some(trusted.fingerprint.clone()),
        bound_subject: bound_subject.clone(),
    };
    let token_sub = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("(none)");
    let bound = accepted
        .bound
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut event = AuditEvent::new("service_token_exchanged", &service.actor).detail(format!(
        "issuer {}; sub {token_sub}; {bound}",
        trusted.identity.issuer.written()
    ));
    if let Some(subject) = &bound_subject {
        event = event.subject(subject);
    }
    ctx.audit.record(event).await;
    ctx.metrics.exchanged(service.name.as_str());
    IssuedToken {
        access_token: ctx.service_tokens.sign(&service_claims),
        expires_in: exp - now,
    }
}
