//! The markup of the instance pages: the list, the registration and edit forms, an instance's
//! page with its check report, and the delete confirmation. Pure rendering: the handlers fetch
//! and decide, these only show.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::http::admin::form::FormData;
use crate::http::admin::layout::{
    Errors, Input, Section, badge, button_form, check_steps, checkboxes, copyable, csrf,
    error_summary, page, textarea, when,
};
use crate::http::scopes::{DEFAULT_INSTANCE_SCOPES, GITLAB_SCOPES};
use crate::service::StepStatus;
use crate::service::admin_sessions::AdminSession;
use crate::service::instances::Instance;

/// Fields of the registration and edit forms; every one of them posts under this name.
const FIELDS: &[&str] = &[
    "name",
    "base_url",
    "client_id",
    "client_secret",
    "ca_pem",
    "scopes",
];

/// Connections of one instance, by status.
#[derive(Default)]
pub(super) struct Counts {
    pub(super) active: usize,
    pub(super) attention: usize,
    pub(super) revoked: usize,
}

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

pub(super) fn list_page(
    session: &AdminSession,
    all: &[Instance],
    counts: &BTreeMap<String, Counts>,
    deleted: bool,
) -> Markup {
    let none = Counts::default();
    let body = html! {
        h1 { "GitLab instances" }
        @if deleted {
            div.panel.ok role="status" { "The instance was deleted." }
        }
        div.actions { a.button.primary href="/admin/instances/new" { "Register an instance" } }
        @if all.is_empty() {
            p.muted { "No GitLab instance is registered yet. Register one to let services connect people's GitLab accounts." }
        } @else {
            table {
                thead { tr {
                    th { "Name" } th { "Base URL" } th { "Last check" } th { "Connections" } th { "Scopes" }
                } }
                tbody {
                    @for instance in all {
                        @let name = instance.name.as_str();
                        @let count = counts.get(name).unwrap_or(&none);
                        tr {
                            td { a href={ "/admin/instances/" (name) } { strong { (name) } } }
                            td { code { (instance.base_url.as_str()) } }
                            td {
                                (badge(if instance.last_check.ok { "passed" } else { "failed" }))
                                " " span.muted { (when(instance.last_check.at)) }
                                @if let Some(failed) = instance.last_check.steps.iter().find(|s| s.status == StepStatus::Failed) {
                                    br; span.muted { (failed.step) ": " (failed.detail) }
                                }
                                @if instance.client_rejected_at.is_some() {
                                    br;
                                    a href={ "/admin/instances/" (name) } { (badge("client_rejected")) }
                                }
                            }
                            td {
                                a href={ "/admin/connections?instance=" (name) } { (count.active) " active" }
                                @if count.attention > 0 {
                                    br;
                                    a href={ "/admin/connections?instance=" (name) "&status=reauthorization_required" } {
                                        span.badge.reauthorization_required { (count.attention) " need reauthorization" }
                                    }
                                }
                            }
                            td { (instance.scopes.to_string()) }
                        }
                    }
                }
            }
        }
    };
    page("Instances", Some(session), Section::Instances, body)
}

/// The registration form; `redirect_prefix` is where every instance's redirect URL starts, so
/// the script can follow the name as it is typed.
pub(super) fn registration_page(
    session: &AdminSession,
    redirect_prefix: &str,
    redirect_preview: &str,
    values: &Values,
    errors: &Errors,
) -> Markup {
    let body = html! {
        h1 { "Register a GitLab instance" }
        (error_summary(errors, FIELDS))
        @if !errors.steps.is_empty() { (check_steps(&errors.steps)) }
        div.panel {
            h2 { "1. Create the application in GitLab first" }
            p { "GitLab asks for the redirect URL before it shows the application ID and secret. This instance's redirect URL will be:" }
            div class="redirect big" {
                code id="redirect-url" data-prefix=(redirect_prefix) { (redirect_preview) }
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
    page(
        "Register an instance",
        Some(session),
        Section::Instances,
        body,
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
fn gitlab_steps(scopes: &[String], saved: bool) -> Markup {
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

/// An instance's page; `done` names what the request before it did, for the notice on top.
pub(super) fn show_page(
    session: &AdminSession,
    instance: &Instance,
    count: Option<&Counts>,
    done: Option<&str>,
) -> Markup {
    let name = instance.name.as_str();
    let scopes: Vec<String> = instance.scopes.iter().map(str::to_owned).collect();
    let body = html! {
        @match done {
            Some("registered") => {
                div.panel.ok role="status" {
                    h2 { "Registered " (name) ". Now paste this redirect URL into GitLab:" }
                    (copyable("registered-redirect-url", &instance.redirect_url, "big"))
                    (gitlab_steps(&scopes, true))
                }
            }
            Some("changed") => { div.panel.ok role="status" { "Saved: the changes passed the check." } }
            Some("checked") => {
                @if instance.last_check.ok {
                    div.panel.ok role="status" { "The check passed." }
                } @else {
                    div.panel.bad role="alert" { "The check failed: see the report below." }
                }
            }
            _ => {}
        }
        @if let Some(since) = instance.client_rejected_at {
            div.panel.bad #client-rejected role="alert" {
                strong { "GitLab rejects this instance's client ID or secret" }
                " (invalid_client) since " (since.format("%Y-%m-%d %H:%M UTC")) ". "
                "Refreshes and new connections fail until you paste the application's current "
                "secret on the " a href={ "/admin/instances/" (name) "/edit" } { "Edit" } " page "
                "(after \"Renew secret\" in GitLab only the new one works). "
                "Existing connections are kept and heal once it is updated."
            }
        }
        h1 { "Instance " (name) }
        dl.facts {
            dt { "Redirect URL" } dd { (copyable("redirect-url", &instance.redirect_url, "")) }
            dt { "Base URL" } dd { code { (instance.base_url.as_str()) } }
            dt { "Client ID" } dd { code { (instance.client_id) } }
            dt { "Client secret" } dd { span.muted { "sealed; never shown" } }
            dt { "Scopes" } dd { (instance.scopes.to_string()) }
            dt { "Token lifetime" } dd {
                @match instance.token_lifetime_seconds {
                    Some(seconds) => { (seconds) " s, as GitLab granted it last" }
                    None => { span.muted { "not known until a token is issued" } }
                }
            }
            dt { "Trusted CA" } dd {
                @match &instance.ca {
                    Some(ca) => { @for subject in ca.subjects() { code { (subject) } br; } }
                    None => { span.muted { "the platform's roots" } }
                }
            }
            dt { "Connections" } dd {
                a href={ "/admin/connections?instance=" (name) } {
                    (count.map_or(0, |c| c.active)) " active, "
                    (count.map_or(0, |c| c.attention)) " need reauthorization, "
                    (count.map_or(0, |c| c.revoked)) " revoked"
                }
            }
            dt { "Registered" } dd { (when(instance.created_at)) ", changed " (when(instance.updated_at)) }
        }
        h2 { "Last check: " (badge(if instance.last_check.ok { "passed" } else { "failed" })) " " span.muted { (when(instance.last_check.at)) } }
        (check_steps(&instance.last_check.steps))
        div.actions {
            (button_form(session, &format!("/admin/instances/{name}/check"), "Re-check now", ""))
            a.button href={ "/admin/instances/" (name) "/edit" } { "Edit" }
            a.button.danger href={ "/admin/instances/" (name) "/delete" } { "Delete…" }
        }
        @let endpoints = instance.discovery.endpoints();
        @if !endpoints.is_empty() {
            h2 { "Endpoints found by discovery" }
            table { tbody { @for (what, url) in endpoints { tr { td { (what) } td { code { (url) } } } } } }
        }
    };
    page(
        &format!("Instance {name}"),
        Some(session),
        Section::Instances,
        body,
    )
}

pub(super) fn edit_page(session: &AdminSession, values: &Values, errors: &Errors) -> Markup {
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
    page(
        &format!("Edit {name}"),
        Some(session),
        Section::Instances,
        body,
    )
}

/// Asks before deleting, saying what goes with the instance: its `held` connections.
pub(super) fn delete_page(session: &AdminSession, instance: &Instance, held: usize) -> Markup {
    let name = instance.name.as_str();
    let body = html! {
        h1 { "Delete instance " (name) "?" }
        div.panel.warn {
            p { "labgate forgets " strong { (name) } " (" code { (instance.base_url.as_str()) } "), its client secret and its "
                strong { (held) " connection" @if held != 1 { "s" } } ". Services can no longer get tokens for it, and the people who connected must connect again if it is registered anew." }
            p { "The application in GitLab is not touched: delete it there too if it is no longer needed." }
        }
        div.actions {
            form method="post" action={ "/admin/instances/" (name) "/delete" } {
                (csrf(session))
                button.danger type="submit" { "Delete " (name) }
            }
            a href={ "/admin/instances/" (name) } { "Cancel" }
        }
    };
    page(
        &format!("Delete {name}"),
        Some(session),
        Section::Instances,
        body,
    )
}
