//! `/admin/connections/access-token`: an administrator gives labgate a GitLab access token
//! (personal, project or group) to hold as a connection for a service's subject. The token is
//! never shown again, not even in a form sent back with errors.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use secrecy::SecretString;

use super::error::PageError;
use super::layout::{Errors, Input, Section, csrf, error_summary, page, respond};
use super::session::{Posted, SignedIn, see_other};
use crate::service::access_token_connections::{self, AccessTokenForm, Giver};
use crate::service::admin_sessions::AdminSession;
use crate::service::{Context, ServiceError, instances, services};

const PATH: &str = "/admin/connections/access-token";

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/connections/access-token")
            .route(web::get().to(form))
            .route(web::post().to(add))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// What the form shows again after a refusal: everything but the token.
#[derive(Default)]
struct Typed {
    service: String,
    instance: String,
    subject: String,
}

async fn form(session: SignedIn, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    render(
        &ctx,
        &session,
        &Typed::default(),
        &Errors::default(),
        StatusCode::OK,
    )
    .await
}

async fn add(posted: Posted, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    let typed = Typed {
        service: posted.form.text("service"),
        instance: posted.form.text("instance"),
        subject: posted.form.text("subject"),
    };
    let form = AccessTokenForm {
        service: posted.form.given("service"),
        instance: posted.form.given("instance"),
        subject: posted.form.given("subject"),
        access_token: posted.form.given("access_token").map(SecretString::from),
    };
    let giver = Giver::Admin {
        actor: &posted.session.actor,
    };
    let refused = match access_token_connections::add(&ctx, giver, form).await {
        Ok(connection) => {
            return Ok(see_other(&format!(
                "/admin/connections?subject={}",
                url::form_urlencoded::byte_serialize(connection.subject.as_bytes())
                    .collect::<String>()
            )));
        }
        Err(ServiceError::Invalid(fields)) => Errors::fields(fields),
        // GitLab's verdict on the token, the policy's on its scopes, or a name gone meanwhile.
        Err(
            ServiceError::TokenRejected(detail)
            | ServiceError::Forbidden { detail, .. }
            | ServiceError::NotFound(detail),
        ) => {
            let mut errors = Errors::default();
            errors.general.push(detail);
            errors
        }
        Err(other) => return Err(other.into()),
    };
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    render(&ctx, &posted.session, &typed, &refused, status).await
}

async fn render(
    ctx: &Context,
    session: &AdminSession,
    typed: &Typed,
    errors: &Errors,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let service_names: Vec<String> = services::list(ctx)
        .await?
        .into_iter()
        .map(|s| s.name.as_str().to_owned())
        .collect();
    let instance_names: Vec<String> = instances::list(ctx)
        .await?
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    let shown = ["service", "instance", "subject", "access_token"];
    let body = html! {
        h1 { "Add an access token" }
        p.muted {
            "A personal, project or group access token, held as a connection of a service's "
            "subject and handed out (or used through the proxy) like a connected account. "
            "labgate asks GitLab what the token is before storing it, and rotates it itself "
            "before it expires when the token has the " code { "api" } " or "
            code { "self_rotate" } " scope."
        }
        (error_summary(errors, &shown))
        form method="post" action=(PATH) {
            (csrf(session))
            (choice("service", "Service", &service_names, &typed.service, errors))
            (choice("instance", "Instance", &instance_names, &typed.instance, errors))
            (Input::text("subject", "Subject", &typed.subject)
                .required()
                .hint(html! { "The service's own id for the person or bot this token acts for." })
                .render(errors))
            (Input::text("access_token", "Access token", "")
                .kind("password")
                .required()
                .hint(html! { "Write-only: labgate never shows it again." })
                .render(errors))
            div.actions {
                button type="submit" { "Add" }
                a href="/admin/connections" { "Cancel" }
            }
        }
    };
    Ok(respond(
        status,
        page(
            "Add an access token",
            Some(session),
            Section::Connections,
            body,
        ),
    ))
}

/// A required choice among names, with its error beside it.
fn choice(name: &str, label: &str, names: &[String], chosen: &str, errors: &Errors) -> Markup {
    let error = errors.on(name);
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) }
            select id=(name) name=(name) required aria-invalid=[error.as_ref().map(|_| "true")] {
                option value="" { "Choose…" }
                @for each in names {
                    option value=(each) selected[chosen == each] { (each) }
                }
            }
            @if let Some(message) = &error { p.error id={ (name) "-error" } { (label) " " (message) } }
        }
    }
}
