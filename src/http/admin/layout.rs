//! The frame every admin page shares, its stylesheet and script, and the small widgets forms
//! are built from. Every input has a `<label for>`; a field's error is shown beside it.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use maud::{DOCTYPE, Markup, html};

use crate::service::admin_sessions::AdminSession;
use crate::service::{CheckStep, FieldError, StepStatus};

pub const STYLESHEET_PATH: &str = "/admin/assets/admin.css";
pub const SCRIPT_PATH: &str = "/admin/assets/admin.js";

const STYLESHEET: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--accent:#0969da;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);margin:0;background:#fff}
header.top{display:flex;align-items:center;gap:1.5rem;padding:.6rem 1.5rem;border-bottom:1px solid var(--line);background:var(--bg)}
header.top .brand{font-weight:600;color:var(--fg);text-decoration:none}
header.top nav{display:flex;gap:1rem;flex:1}
header.top nav a{color:var(--fg);text-decoration:none;padding:.2rem .1rem}
header.top nav a[aria-current=page]{border-bottom:2px solid var(--accent);font-weight:600}
header.top form{margin:0}
main{max-width:68rem;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.4rem 0 1rem}h2{font-size:1.15rem;margin:1.6rem 0 .6rem}
a{color:var(--accent)}
code,pre,textarea{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
pre{white-space:pre-wrap;word-break:break-all;background:var(--bg);padding:.6rem;border-radius:6px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;background:var(--bg)}
.field{margin:0 0 1rem}
.field label,fieldset legend{display:block;font-weight:600;margin-bottom:.2rem}
.field input[type=text],.field input[type=url],.field input[type=password],.field input[type=search],.field select,.field textarea{width:100%;max-width:42rem;padding:.4rem .5rem;border:1px solid var(--line);border-radius:6px;font:inherit}
.field textarea{font-family:ui-monospace,monospace;font-size:.85em}
.field.invalid input,.field.invalid textarea,.field.invalid select,fieldset.invalid{border-color:var(--bad);background:#fff8f8}
fieldset{border:1px solid var(--line);border-radius:6px;margin:0 0 1rem;padding:.6rem .9rem;max-width:42rem}
.check{display:flex;gap:.5rem;align-items:baseline;margin:.2rem 0}
.check label{font-weight:400}
.hint{color:var(--muted);font-size:.88rem;margin:.1rem 0 .3rem}
.error{color:var(--bad);font-weight:600;margin:.25rem 0 0}
.button,button{display:inline-block;font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid var(--line);background:var(--bg);color:var(--fg);cursor:pointer;text-decoration:none}
.button.primary,button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger,.button.danger{background:var(--bad);border-color:var(--bad);color:#fff}
button.link{border:0;background:none;color:var(--accent);padding:0;text-decoration:underline}
.actions{display:flex;gap:.6rem;align-items:center;margin:1rem 0;flex-wrap:wrap}
.actions form{margin:0}
.panel{border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:1rem 0;background:#fff}
.panel.ok{border-color:var(--ok);background:#f0fff4}
.panel.warn{border-color:var(--warn);background:#fff8c5}
.panel.bad{border-color:var(--bad);background:#fff5f5}
.panel h2{margin-top:.2rem}
.redirect{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap;font-size:1.1rem}
.redirect code{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:.35rem .6rem;word-break:break-all}
.redirect.big code{font-size:1.05rem}
.badge{display:inline-block;white-space:nowrap;padding:.05rem .5rem;border-radius:1rem;font-size:.82rem;font-weight:600;border:1px solid}
.badge.ok,.badge.active,.badge.passed{color:var(--ok);border-color:var(--ok);background:#f0fff4}
.badge.reauthorization_required,.badge.skipped{color:var(--warn);border-color:var(--warn);background:#fff8c5}
.badge.revoked,.badge.failed,.badge.bad{color:var(--bad);border-color:var(--bad);background:#fff5f5}
.muted{color:var(--muted)}
time{white-space:nowrap}
.filters{display:flex;gap:1rem;align-items:flex-end;flex-wrap:wrap}
.filters .field{margin:0;min-width:12rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
ol.steps li{margin:.3rem 0}
.signin{max-width:26rem;margin:4rem auto}
"#;

/// Progressive enhancement only: copy buttons, and the redirect URL following the name as it
/// is typed. Every page works without it.
const SCRIPT: &str = r#"(function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      var text = source ? source.textContent : '';
      var done = function () { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy'; }, 1500); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { select(source); });
      } else { select(source); }
    });
  });
  function select(node) {
    if (!node) { return; }
    var range = document.createRange(); range.selectNodeContents(node);
    var selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
  }
  var name = document.getElementById('name');
  var preview = document.getElementById('redirect-url');
  if (name && preview && preview.hasAttribute('data-prefix')) {
    var update = function () {
      var typed = name.value.trim();
      preview.textContent = preview.getAttribute('data-prefix') + (typed || '{name}') + '/callback';
    };
    name.addEventListener('input', update);
  }
})();
"#;

pub fn asset_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/assets/admin.css",
        web::get().to(|| async { asset("text/css; charset=utf-8", STYLESHEET) }),
    )
    .route(
        "/assets/admin.js",
        web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// Which part of the admin pages a page belongs to, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Instances,
    Services,
    Connections,
    Audit,
    None,
}

/// A whole page: head, navigation (with sign-out when signed in), and `body`.
pub fn page(title: &str, session: Option<&AdminSession>, section: Section, body: Markup) -> Markup {
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

pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

pub fn ok(markup: Markup) -> HttpResponse {
    respond(StatusCode::OK, markup)
}

/// The hidden field every form of a session carries.
pub fn csrf(session: &AdminSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token()); }
}

/// A form that is only a button, e.g. "Re-check" or "Sign out".
pub fn button_form(session: &AdminSession, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf(session))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// What a form refused, by field, plus what belongs to no field.
#[derive(Default)]
pub struct Errors {
    fields: Vec<FieldError>,
    pub general: Vec<String>,
    pub steps: Vec<CheckStep>,
}

impl Errors {
    pub fn fields(fields: Vec<FieldError>) -> Self {
        Self {
            fields,
            ..Self::default()
        }
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty() && self.steps.is_empty()
    }

    /// The messages for one field, joined.
    pub fn on(&self, field: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .fields
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    /// Errors about fields this form does not show, so they are not lost.
    pub fn others(&self, shown: &[&str]) -> Vec<&FieldError> {
        self.fields
            .iter()
            .filter(|e| !shown.contains(&e.field.as_str()))
            .collect()
    }
}

/// The summary at the top of a refused form.
pub fn error_summary(errors: &Errors, shown: &[&str]) -> Markup {
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
pub struct Input<'a> {
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
    pub fn text(name: &'a str, label: &'a str, value: &'a str) -> Self {
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

    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub fn hint(mut self, hint: Markup) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn placeholder(mut self, placeholder: &'a str) -> Self {
        self.placeholder = Some(placeholder);
        self
    }

    pub fn render(self, errors: &Errors) -> Markup {
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
pub fn textarea(
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
pub fn checkboxes(
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
pub fn copyable(id: &str, text: &str, class: &str) -> Markup {
    html! {
        div class={ "redirect " (class) } {
            code id=(id) { (text) }
            button type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

pub fn when(at: NaiveDateTime) -> Markup {
    let utc = at.and_utc();
    html! {
        time datetime=(utc.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (utc.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

pub fn badge(word: &str) -> Markup {
    html! { span class={ "badge " (word) } { (word.replace('_', " ")) } }
}

/// The instance check, step by step, with what each saw.
pub fn check_steps(steps: &[CheckStep]) -> Markup {
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

pub fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}
