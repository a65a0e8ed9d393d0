//! `/api/v1/instances`: the admin API for registered GitLab instances.

use std::collections::BTreeMap;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{Admin, Caller};
use super::fields::Fields;
use super::{ApiError, timestamp};
use crate::service::instances::{self, Instance, InstanceForm};
use crate::service::{CheckStep, Context};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/instances")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}")
            .route(web::get().to(show))
            .route(web::patch().to(change))
            .route(web::delete().to(remove))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}/check")
            .route(web::post().to(check))
            .default_service(web::to(super::method_not_allowed)),
    );
}

async fn create(
    _: Admin,
    ctx: web::Data<Context>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let instance = instances::register(&ctx, instance_form(body.into_inner())?).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/instances/{}", instance.name)))
        .json(InstanceBody::from(&instance)))
}

/// Administrators see every instance in full; a service sees the ones it may use.
async fn list(caller: Caller, ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let all = instances::list(&ctx).await?;
    let body = match caller {
        Caller::Admin => {
            json!({ "instances": all.iter().map(InstanceBody::from).collect::<Vec<_>>() })
        }
        Caller::Service(service) => json!({
            "instances": all
                .iter()
                .filter(|instance| service.instances.allows(&instance.name))
                .map(|instance| json!({"name": instance.name.as_str(), "base_url": instance.base_url.as_str()}))
                .collect::<Vec<_>>()
        }),
    };
    Ok(HttpResponse::Ok().json(body))
}

async fn show(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(InstanceBody::from(&instances::get(&ctx, &name).await?)))
}

async fn change(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let instance = instances::change(&ctx, &name, instance_form(body.into_inner())?).await?;
    Ok(HttpResponse::Ok().json(InstanceBody::from(&instance)))
}

async fn remove(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    instances::remove(&ctx, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn check(
    _: Admin,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (report, instance) = instances::check(&ctx, &name).await?;
    Ok(HttpResponse::Ok().json(CheckBody {
        name: instance.name.as_str(),
        ok: report.failure().is_none(),
        checked_at: timestamp(instance.last_check.at),
        steps: &report.steps,
    }))
}

/// Reads an instance's fields; what each must be is the service's to say.
fn instance_form(body: Value) -> Result<InstanceForm, ApiError> {
    let mut fields = Fields::of(
        body,
        &[
            "name",
            "base_url",
            "client_id",
            "client_secret",
            "ca_pem",
            "scopes",
        ],
    )?;
    let form = InstanceForm {
        name: fields.text("name"),
        base_url: fields.text("base_url"),
        client_id: fields.text("client_id"),
        client_secret: fields.text("client_secret").map(SecretString::from),
        ca_pem: fields.nullable_text("ca_pem"),
        scopes: fields.words("scopes"),
    };
    fields.finish()?;
    Ok(form)
}

/// An instance as the admin API shows it. There is deliberately no secret field.
#[derive(Serialize)]
struct InstanceBody<'a> {
    name: &'a str,
    base_url: &'a str,
    client_id: &'a str,
    scopes: Vec<&'a str>,
    ca_pem: Option<&'a str>,
    ca_subjects: &'a [String],
    redirect_url: &'a str,
    endpoints: BTreeMap<&'static str, &'a str>,
    last_check: CheckBody<'a>,
    /// The access-token lifetime GitLab granted last (absent until a token was issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_lifetime_seconds: Option<i64>,
    /// Since when GitLab rejects the client ID or secret (`invalid_client`); null while it
    /// accepts them.
    client_rejected_at: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct CheckBody<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    ok: bool,
    checked_at: String,
    steps: &'a [CheckStep],
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
