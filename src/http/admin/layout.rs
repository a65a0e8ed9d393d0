//! The frame every admin page shares (it links the stylesheet and script `assets` serves), and
//! the small widgets forms are built from. Every input has a `<label for>`; a field's error is
//! shown beside it.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::NaiveDateTime;
use maud::{DOCTYPE, Markup, html};

use super::assets::{SCRIPT_PATH, STYLESHEET_PATH};
use crate::service::admin_sessions::AdminSession;
use crate::service::{CheckStep, FieldError, StepStatus};

/// Which part of the admin pages a page belongs to, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Instances,
    Services,
    Connections,
    AccessGrants,
    Audit,
    None,
}

/// A whole page: head, navigation (with sign-out when signed in), and `body`.
pub(super) fn page(
    title: &str,
    session: Option<&AdminSession>,
    section: Section,
    body: Markup,
) -> Markup {
    let link = |href: &str, label: &str, this: Section| {
        html! { a href=(href) aria-current=[(section == this).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · labgate admin" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/admin/instances" { "labgate admin" }
                    @if let Some(session) = session {
                        nav aria-label="Admin sections" {
                            (link("/admin/instances", "Instances", Section::Instances))
                            (link("/admin/services", "Services", Section::Services))
                            (link("/admin/connections", "Connections", Section::Connections))
                            (link("/admin/access-grants", "Access grants", Section::AccessGrants))
                            (link("/admin/audit", "Audit", Section::Audit))
                        }
                        form method="post" action="/admin/sign-out" {
                            (csrf(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(super) fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

pub(super) fn ok(markup: Markup) -> HttpResponse {
    respond(StatusCode::OK, markup)
}

/// The hidden field every form of a session carries.
pub(super) fn csrf(session: &AdminSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token()); }
}

/// A form that is only a button, e.g. "Re-check" or "Sign out".
pub(super) fn button_form(
    session: &AdminSession,
    action: &str,
    label: &str,
    class: &str,
) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf(session))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// What a form refused, by field, plus what belongs to no field.
#[derive(Default)]
pub(super) struct Errors {
    fields: Vec<FieldError>,
    pub general: Vec<String>,
    pub steps: Vec<CheckStep>,
}

impl Errors {
    pub(super) fn fields(fields: Vec<FieldError>) -> Self {
        Self {
            fields,
            ..Self::default()
        }
    }

    pub(super) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push(FieldError::new(field, message));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty() && self.steps.is_empty()
    }

    /// The messages for one field, joined.
    pub(super) fn on(&self, field: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .fields
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    /// Errors about fields this form does not show, so they are not lost.
    pub(super) fn others(&self, shown: &[&str]) -> Vec<&FieldError> {
        self.fields
            .iter()
            .filter(|e| !shown.contains(&e.field.as_str()))
            .collect()
    }
}

/// The summary at the top of a refused form.
pub(super) fn error_summary(errors: &Errors, shown: &[&str]) -> Markup {
    if errors.is_empty() {
        return html! {};
    }
    html! {
        div.panel.bad role="alert" {
            strong { "Nothing was saved." }
            @if !errors.fields.is_empty() { " Check the fields marked below." }
            @for message in &errors.general { p { (message) } }
            @for error in errors.others(shown) { p { code { (error.field) } " " (error.message) } }
        }
    }
}

/// A one-line input with its label, an optional hint, and its error beside it.
pub(super) struct Input<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub hint: Option<Markup>,
    pub required: bool,
    pub autocomplete: &'a str,
    pub placeholder: Option<&'a str>,
}

impl<'a> Input<'a> {
    pub(super) fn text(name: &'a str, label: &'a str, value: &'a str) -> Self {
        Self {
            name,
            label,
            kind: "text",
            value,
            hint: None,
            required: false,
            autocomplete: "off",
            placeholder: None,
        }
    }

    pub(super) fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub(super) fn hint(mut self, hint: Markup) -> Self {
        self.hint = Some(hint);
        self
    }

    pub(super) fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub(super) fn placeholder(mut self, placeholder: &'a str) -> Self {
        self.placeholder = Some(placeholder);
        self
    }

    pub(super) fn render(self, errors: &Errors) -> Markup {
        let error = errors.on(self.name);
        let described = describedby(self.name, self.hint.is_some(), error.is_some());
        html! {
            div.field.invalid[error.is_some()] {
                label for=(self.name) { (self.label) }
                @if let Some(hint) = &self.hint { p.hint id={ (self.name) "-hint" } { (hint) } }
                input type=(self.kind) id=(self.name) name=(self.name) value=(self.value)
                    autocomplete=(self.autocomplete) placeholder=[self.placeholder]
                    required[self.required] aria-invalid=[error.as_ref().map(|_| "true")]
                    aria-describedby=[described];
                (field_error(self.name, self.label, error.as_deref()))
            }
        }
    }
}

/// A text area with its label, hint and error.
pub(super) fn textarea(
    name: &str,
    label: &str,
    value: &str,
    hint: Option<Markup>,
    errors: &Errors,
) -> Markup {
    let error = errors.on(name);
    let described = describedby(name, hint.is_some(), error.is_some());
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) }
            @if let Some(hint) = &hint { p.hint id={ (name) "-hint" } { (hint) } }
            textarea id=(name) name=(name) rows="6" spellcheck="false"
                aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[described] { (value) }
            (field_error(name, label, error.as_deref()))
        }
    }
}

/// A group of checkboxes, each with its label and a description.
pub(super) fn checkboxes(
    name: &str,
    legend: &str,
    hint: Option<Markup>,
    options: &[(&str, &str)],
    checked: &[String],
    errors: &Errors,
) -> Markup {
    let error = errors.on(name);
    html! {
        fieldset.invalid[error.is_some()] id=(name) {
            legend { (legend) }
            @if let Some(hint) = &hint { p.hint { (hint) } }
            @for (value, description) in options {
                @let id = format!("{name}-{value}");
                div.check {
                    input type="checkbox" id=(id) name=(name) value=(value)
                        checked[checked.iter().any(|c| c == value)];
                    label for=(id) {
                        code { (value) }
                        @if !description.is_empty() { " — " span.muted { (description) } }
                    }
                }
            }
            (field_error(name, legend, error.as_deref()))
        }
    }
}

/// A group of radio buttons: one choice, each with its description.
pub(super) fn radios(
    name: &str,
    legend: &str,
    options: &[(&str, &str)],
    chosen: &str,
    errors: &Errors,
) -> Markup {
    let error = errors.on(name);
    html! {
        fieldset.invalid[error.is_some()] id=(name) {
            legend { (legend) }
            @for (value, description) in options {
                @let id = format!("{name}-{value}");
                div.check {
                    input type="radio" id=(id) name=(name) value=(value) checked[*value == chosen];
                    label for=(id) { code { (value) } " — " span.muted { (description) } }
                }
            }
            (field_error(name, legend, error.as_deref()))
        }
    }
}

fn describedby(name: &str, hint: bool, error: bool) -> Option<String> {
    let ids: Vec<String> = [(hint, "hint"), (error, "error")]
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, suffix)| format!("{name}-{suffix}"))
        .collect();
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn field_error(name: &str, label: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = error {
            p.error id={ (name) "-error" } { (label) " " (message) }
        }
    }
}

/// A value to copy (a redirect URL, a secret) with a copy button the script reveals.
pub(super) fn copyable(id: &str, text: &str, class: &str) -> Markup {
    html! {
        div class={ "redirect " (class) } {
            code id=(id) { (text) }
            button type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

pub(super) fn when(at: NaiveDateTime) -> Markup {
    let utc = at.and_utc();
    html! {
        time datetime=(utc.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (utc.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

/// A link to the next page of a list at `path`: the same filters (those set), and the cursor.
pub(super) fn next_page_link(
    path: &str,
    filters: &[(&str, &Option<String>)],
    cursor: &str,
    label: &str,
) -> Markup {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in filters {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("cursor", cursor);
    html! { p { a rel="next" href={ (path) "?" (query.finish()) } { (label) } } }
}

pub(super) fn badge(word: &str) -> Markup {
    html! { span class={ "badge " (word) } { (word.replace('_', " ")) } }
}

/// The instance check, step by step, with what each saw.
pub(super) fn check_steps(steps: &[CheckStep]) -> Markup {
    html! {
        table.steps {
            thead { tr { th { "Step" } th { "Result" } th { "Detail" } } }
            tbody {
                @for step in steps {
                    tr {
                        td { code { (step.step) } }
                        td { (badge(status_word(step.status))) }
                        td {
                            (step.detail)
                            @if let Some(code) = &step.code { " " span.muted { "(" code { (code) } ")" } }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}
