//! `/admin/services`: the list, creating a service (its secret shown once), editing its policy
//! and webhooks, rotating the secret, deleting. Every change goes through `service::services`,
//! as the admin API's do.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

mod deliveries;
mod views;
mod webhook_fields;

use super::error::PageError;
use super::form::FormData;
use super::layout::{Errors, Section, csrf, ok, page};
use super::session::{Posted, SignedIn, see_other};
use crate::domain::WebhookSecrets;
use crate::service::principal::Service;
use crate::service::services::{self, ServiceForm};
use crate::service::{Context, FieldError, ServiceError};
use views::{ALL_INSTANCES, Values, edit_page, secret_page, services_page, webhook_urls};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/edit")
            .route(web::get().to(edit_form))
            .route(web::post().to(edit))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/rotate-secret")
            .route(web::get().to(rotate_confirmation))
            .route(web::post().to(rotate))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/deliveries")
            .route(web::get().to(deliveries::list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/delete")
            .route(web::get().to(delete_confirmation))
            .route(web::post().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let notice = match notice.done.as_deref() {
        Some("deleted") => Some("The service was deleted."),
        Some("changed") => Some("Saved: the service's new policy applies from its next request."),
        _ => None,
    };
    services_page(
        &ctx,
        &session,
        StatusCode::OK,
        notice,
        &Values::default(),
        &Errors::default(),
    )
    .await
}

async fn create(posted: Posted, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let (values, input) = posted_service(&form, None);
    let (status, errors) = match input {
        Err(refused) => refused,
        Ok(input) => match services::create(&ctx, input, &session.actor).await {
            Ok((service, secret)) => {
                let status = StatusCode::CREATED;
                return Ok(secret_page(
                    &ctx, &session, status, "created", &service, &secret,
                ));
            }
            Err(e) => refusal(e)?,
        },
    };
    services_page(&ctx, &session, status, None, &values, &errors).await
}

async fn edit_form(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let service = find(&ctx, &name).await?;
    let values = Values {
        name: service.name.to_string(),
        instances: service.instances.as_strings(),
        scopes: service.scopes.iter().map(str::to_owned).collect(),
        return_origins: lines(service.return_origins.iter().map(|o| o.as_str())),
        projects: lines(service.projects.as_strings().iter().map(String::as_str)),
        max_access: service.max_access.as_str().to_owned(),
        identities: if service.identities.is_empty() {
            String::new()
        } else {
            serde_json::to_string_pretty(&service.identities.to_json()).unwrap_or_default()
        },
        webhooks: webhook_urls(&ctx, &service).await?,
    };
    edit_page(&ctx, &session, StatusCode::OK, &values, &Errors::default()).await
}

async fn edit(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let (values, input) = posted_service(&form, Some(name.into_inner()));
    let (status, errors) = match input {
        Err(refused) => refused,
        Ok(input) => match services::change(&ctx, &values.name, input, &session.actor).await {
            Ok(_) => return Ok(see_other("/admin/services?done=changed")),
            Err(e) => refusal(e)?,
        },
    };
    edit_page(&ctx, &session, status, &values, &errors).await
}

/// Why a form saved nothing: its status, and the errors shown on it again.
type Refusal = (StatusCode, Errors);

/// What the create form (`editing` `None`) or the edit form of the service named `editing`
/// posted: the values to show again, and the service layer's input unless the identities box
/// does not hold JSON.
fn posted_service(
    form: &FormData,
    editing: Option<String>,
) -> (Values, Result<ServiceForm, Refusal>) {
    let creating = editing.is_none();
    let (webhooks, webhook_list) = webhook_fields::posted(form);
    let mut values = Values {
        name: editing.unwrap_or_else(|| form.text("name").trim().to_owned()),
        instances: every_instance_alone(form.all("instances")),
        scopes: form.all("scopes"),
        return_origins: form.text("return_origins"),
        projects: form.text("projects"),
        max_access: form.given("max_access").unwrap_or_default(),
        identities: form.text("identities"),
        webhooks,
    };
    let mut projects = Some(form.words("projects"));
    // As the API: a new service sent without these fields takes the defaults.
    if creating {
        let defaults = Values::default();
        if form.get("projects").is_none() {
            (values.projects, projects) = (defaults.projects, None);
        }
        if values.max_access.is_empty() {
            values.max_access = defaults.max_access;
        }
    }
    let identities = match form.get("identities").map(identities_input).transpose() {
        Ok(identities) => identities,
        Err(errors) => return (values, Err((StatusCode::UNPROCESSABLE_ENTITY, errors))),
    };
    let input = ServiceForm {
        name: creating
            .then(|| values.name.clone())
            .filter(|n| !n.is_empty()),
        instances: Some(values.instances.clone()),
        scopes: Some(values.scopes.clone()),
        return_origins: Some(form.words("return_origins")),
        projects,
        max_access: Some(values.max_access.clone()),
        // As the API: a form sent without the field keeps (or, new, has none of) them.
        identities,
        // Likewise the webhooks; the pages never show a secret, so a stored URL listed without
        // one keeps its own.
        webhooks: webhook_list,
        webhook_secrets: WebhookSecrets::KeepStored,
    };
    (values, Ok(input))
}

/// The service layer's refusal, shown on the form; any other error is a page of its own.
fn refusal(error: ServiceError) -> Result<Refusal, PageError> {
    match error {
        ServiceError::Invalid(fields) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, form_errors(fields)))
        }
        ServiceError::Conflict(message) => {
            let mut errors = Errors::default();
            errors.general.push(message);
            Ok((StatusCode::CONFLICT, errors))
        }
        other => Err(other.into()),
    }
}

/// The identities box's JSON; an empty box means none.
fn identities_input(text: &str) -> Result<serde_json::Value, Errors> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_str(text).map_err(|e| {
        let mut errors = Errors::default();
        errors.add("identities", format!("is not valid JSON ({e})"));
        errors
    })
}

/// The service layer names an identity's parts (`identities[0].claims`); the form has one box
/// for them all, so each message says which part.
fn form_errors(fields: Vec<FieldError>) -> Errors {
    let mut errors = Errors::default();
    for field in fields {
        match field.field.strip_prefix("identities") {
            Some(part) if !part.is_empty() => {
                errors.add("identities", format!("{part}: {}", field.message));
            }
            _ => errors.add(&field.field, field.message),
        }
    }
    errors
}

fn lines<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join("\n")
}

async fn rotate_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let service = find(&ctx, &name).await?;
    let name = service.name.as_str();
    let body = html! {
        h1 { "Rotate the secret of " (name) "?" }
        div.panel.warn {
            p { "A new secret is made and shown once. The current one stops working at once, and so do the service tokens and access grants it bought." }
        }
        div.actions {
            form method="post" action={ "/admin/services/" (name) "/rotate-secret" } {
                (csrf(&session))
                button.primary type="submit" { "Rotate the secret" }
            }
            a href="/admin/services" { "Cancel" }
        }
    };
    Ok(ok(page(
        &format!("Rotate {name}"),
        Some(&session),
        Section::Services,
        body,
    )))
}

async fn rotate(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let session = posted.session;
    let (service, secret) = services::rotate_secret(&ctx, &name, &session.actor).await?;
    Ok(secret_page(
        &ctx,
        &session,
        StatusCode::OK,
        "has a new secret",
        &service,
        &secret,
    ))
}

async fn delete_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let service = find(&ctx, &name).await?;
    let name = service.name.as_str();
    let body = html! {
        h1 { "Delete service " (name) "?" }
        div.panel.warn {
            p { "Its client ID and secret stop working at once, and so do its pending connect links. Service tokens already issued are refused once the service is gone." }
        }
        div.actions {
            form method="post" action={ "/admin/services/" (name) "/delete" } {
                (csrf(&session))
                button.danger type="submit" { "Delete " (name) }
            }
            a href="/admin/services" { "Cancel" }
        }
    };
    Ok(ok(page(
        &format!("Delete {name}"),
        Some(&session),
        Section::Services,
        body,
    )))
}

async fn delete(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    services::delete(&ctx, &name, &posted.session.actor).await?;
    Ok(see_other("/admin/services?done=deleted"))
}

async fn find(ctx: &Context, name: &str) -> Result<Service, PageError> {
    Ok(services::get(ctx, name).await?)
}

/// "Every instance" stands alone, whatever else was ticked.
fn every_instance_alone(ticked: Vec<String>) -> Vec<String> {
    if ticked.iter().any(|i| i == ALL_INSTANCES) {
        vec![ALL_INSTANCES.to_owned()]
    } else {
        ticked
    }
}
