//! The instance pages' markup: the registration and edit forms, and what they show again.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{Markup, html};

use crate::domain::InstanceName;
use crate::http::admin::form::FormData;
use crate::http::admin::layout::{
    Errors, Input, Section, check_steps, checkboxes, csrf, error_summary, page, respond, textarea,
};
use crate::http::admin::scopes::{DEFAULT_INSTANCE_SCOPES, GITLAB_SCOPES};
use crate::service::Context;
use crate::service::admin_sessions::AdminSession;
use crate::service::instances::Instance;

/// Fields of the registration and edit forms; every one of them posts under this name.
pub(super) const FIELDS: &[&str] = &[
    "name",
    "base_url",
    "client_id",
    "client_secret",
    "ca_pem",
    "scopes",
];

/// What the registration or edit form shows again: everything typed but the secret.
#[derive(Default)]
pub(super) struct Values {
    pub(super) name: String,
    pub(super) base_url: String,
    pub(super) client_id: String,
    pub(super) ca_pem: String,
    pub(super) scopes: Vec<String>,
}

impl Values {
    pub(super) fn fresh() -> Self {
        Self {
            scopes: DEFAULT_INSTANCE_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ..Self::default()
        }
    }

    pub(super) fn of(instance: &Instance) -> Self {
        Self {
            name: instance.name.to_string(),
            base_url: instance.base_url.to_string(),
            client_id: instance.client_id.clone(),
            ca_pem: instance
                .ca
                .as_ref()
                .map(|ca| ca.pem().to_owned())
                .unwrap_or_default(),
            scopes: instance.scopes.iter().map(str::to_owned).collect(),
        }
    }

    /// What was posted; an uploaded CA file wins over the text area.
    pub(super) fn posted(form: &FormData) -> Self {
        Self {
            name: form.text("name").trim().to_owned(),
            base_url: form.text("base_url").trim().to_owned(),
            client_id: form.text("client_id").trim().to_owned(),
            ca_pem: form.given("ca_file").unwrap_or_else(|| form.text("ca_pem")),
            scopes: form.all("scopes"),
        }
    }
}
pub(super) fn registration_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    values: &Values,
    errors: &Errors,
) -> HttpResponse {
    let prefix = format!("{}/oauth/", ctx.public_base());
    let preview = match InstanceName::parse(&values.name) {
        Ok(name) => ctx.redirect_url(&name),
        Err(_) => format!("{prefix}{{name}}/callback"),
    };
    let body = html! {
        h1 { "Register a GitLab instance" }
        (error_summary(errors, FIELDS))
        @if !errors.steps.is_empty() { (check_steps(&errors.steps)) }
        div.panel {
            h2 { "1. Create the application in GitLab first" }
            p { "GitLab asks for the redirect URL before it shows the application ID and secret. This instance's redirect URL will be:" }
            div class="redirect big" {
                code id="redirect-url" data-prefix=(prefix) { (preview) }
                button type="button" data-copy="redirect-url" hidden { "Copy" }
            }
            p.hint { code { "{name}" } " is the name you give the instance below." }
            (gitlab_steps(&values.scopes, false))
        }
        h2 { "2. Fill in what GitLab shows" }
        form method="post" action="/admin/instances" enctype="multipart/form-data" {
            (csrf(session))
            (Input::text("name", "Name", &values.name)
                .required()
                .placeholder("corp")
                .hint(html! { "Lowercase letters, digits and dashes; part of the redirect URL, and cannot be changed later." })
                .render(errors))
            (instance_fields(values, errors, false))
            button.primary type="submit" { "Check and register" }
        }
    };
    respond(
        status,
        page(
            "Register an instance",
            Some(session),
            Section::Instances,
            body,
        ),
    )
}

/// The fields registration and editing share.
fn instance_fields(values: &Values, errors: &Errors, editing: bool) -> Markup {
    html! {
        (Input::text("base_url", "Base URL", &values.base_url)
            .kind("url")
            .required()
            .placeholder("https://git.corp.example")
            .hint(html! { "GitLab's external URL, https, including any sub-path such as " code { "/gitlab" } "." })
            .render(errors))
        (Input::text("client_id", "Client ID", &values.client_id)
            .required()
            .hint(html! { "GitLab's " em { "Application ID" } "." })
            .render(errors))
        @let secret = Input::text("client_secret", "Client secret", "").kind("password");
        @if editing {
            (secret.hint(html! { "Leave empty to keep the current secret; enter GitLab's new " em { "Secret" } " to rotate it." }).render(errors))
        } @else {
            @let again = if errors.is_empty() { "" } else { " Enter it again: labgate never sends it back to the browser." };
            (secret.required().hint(html! { "GitLab's " em { "Secret" } ". labgate seals it at rest and never shows it again." (again) }).render(errors))
        }
        (textarea("ca_pem", "CA bundle (PEM)", &values.ca_pem, Some(html! {
            "The CA certificates that sign GitLab's certificate. When given, only these are trusted for this instance; leave empty to trust the platform's roots. Paste them here, or upload a file below."
        }), errors))
        div.field {
            label for="ca_file" { "…or upload the CA bundle as a file" }
            input type="file" id="ca_file" name="ca_file" accept=".pem,.crt,.cer,.txt";
        }
        (checkboxes("scopes", "Scopes", Some(html! {
            "Tick the scopes you ticked in GitLab's application. " code { "openid" } " is required."
        }), GITLAB_SCOPES, &values.scopes, errors))
    }
}

/// Where to create the application in GitLab, and what to enter there; `saved` once the
/// instance is registered (the application then exists, and is to be checked).
pub(super) fn gitlab_steps(scopes: &[String], saved: bool) -> Markup {
    html! {
        ol.steps {
            li { "In GitLab, open " strong { "Admin area → Applications → New application" }
                 " (instance-wide), or " strong { "Group → Settings → Applications" }
                 ", or " strong { "User settings → Applications" } "." }
            li { strong { "Name" } ": e.g. " code { "labgate" } "." }
            li { strong { "Redirect URI" } ": the redirect URL above, exactly (GitLab compares it character by character)." }
            li { strong { "Confidential" } ": leave it ticked." }
            li { strong { "Scopes" } ": tick "
                 @for (i, scope) in scopes.iter().enumerate() {
                     @if i > 0 { ", " } code { (scope) }
                 }
                 @if !scopes.iter().any(|s| s == "openid") { @if !scopes.is_empty() { ", " } code { "openid" } }
                 " (" code { "openid" } " is required: labgate verifies who connected)." }
            @if saved {
                li { "If the application exists already, check that its Redirect URI and scopes are exactly these." }
            } @else {
                li { "Save, then copy the " strong { "Application ID" } " and " strong { "Secret" } " into the form below." }
            }
        }
    }
}
pub(super) fn edit_page(
    session: &AdminSession,
    status: StatusCode,
    values: &Values,
    errors: &Errors,
) -> HttpResponse {
    let name = &values.name;
    let body = html! {
        h1 { "Edit instance " (name) }
        (error_summary(errors, FIELDS))
        @if !errors.steps.is_empty() { (check_steps(&errors.steps)) }
        p { "Changes are checked against GitLab before they are saved; if the check fails, nothing changes." }
        form method="post" action={ "/admin/instances/" (name) "/edit" } enctype="multipart/form-data" {
            (csrf(session))
            (instance_fields(values, errors, true))
            div.actions {
                button.primary type="submit" { "Check and save" }
                a href={ "/admin/instances/" (name) } { "Cancel" }
            }
        }
    };
    respond(
        status,
        page(
            &format!("Edit {name}"),
            Some(session),
            Section::Instances,
            body,
        ),
    )
}
