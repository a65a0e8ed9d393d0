//! The webhooks on the service forms: a URL and a secret per row, the stored URLs shown, the
//! secrets write-only. A row whose secret is left empty keeps the secret stored for its URL; a
//! row emptied is removed. The inputs are named as the API names the list (`webhooks[0].url`),
//! so the service layer's refusals are shown beside their fields.

use maud::{Markup, html};
use serde_json::{Map, Value};

use super::super::form::FormData;
use super::super::layout::{Errors, Input};
use crate::domain::MAX_WEBHOOKS;

/// What the form posted: the URLs to show again, and the list for the service layer (secrets
/// left empty left out); `None` for a form without the rows, which keeps what is stored.
pub(super) fn posted(form: &FormData) -> (Vec<String>, Option<Value>) {
    if form.get(&url_field(0)).is_none() {
        return (Vec::new(), None);
    }
    let (mut urls, mut list) = (Vec::new(), Vec::new());
    // The form shows at most `MAX_WEBHOOKS` rows: one more is read, so that a longer list is
    // refused rather than cut short.
    for row in 0..=MAX_WEBHOOKS {
        let Some(url) = form.get(&url_field(row)).map(str::trim) else {
            break;
        };
        let secret = form.get(&secret_field(row)).unwrap_or_default();
        // An empty row: the one for adding, or a webhook removed.
        if url.is_empty() && secret.is_empty() {
            continue;
        }
        let mut hook = Map::new();
        if !url.is_empty() {
            hook.insert("url".to_owned(), Value::from(url));
        }
        if !secret.is_empty() {
            hook.insert("secret".to_owned(), Value::from(secret));
        }
        urls.push(url.to_owned());
        list.push(Value::Object(hook));
    }
    (urls, Some(Value::Array(list)))
}

/// The names of the inputs that show errors for `rows` webhooks, for the form's summary.
pub(super) fn shown_fields(rows: usize) -> Vec<String> {
    let mut names = vec!["webhooks".to_owned()];
    for row in 0..rows {
        names.extend([url_field(row), secret_field(row)]);
    }
    names
}

/// A row per URL (stored, or as posted), then an empty one while there is room; `stored` says
/// which URLs keep their secret when it is left empty. Never a secret.
pub(super) fn webhook_fields(urls: &[String], stored: &[String], errors: &Errors) -> Markup {
    let room = (urls.len() < MAX_WEBHOOKS).then(String::new);
    let error = errors.on("webhooks");
    html! {
        fieldset.invalid[error.is_some()] id="webhooks" {
            legend { "Webhooks" }
            p.hint {
                "Where its connection events go, each signed with its webhook's secret ("
                code { "Labgate-Signature" } "): https, or plain http to 127.0.0.1, ::1 or localhost. "
                "Secrets are write-only and never shown. Leave a stored URL's secret empty to keep it; "
                "empty a URL and its secret to remove that webhook; save to get another empty row."
            }
            @if !errors.is_empty() {
                p.hint { "Type new secrets again: labgate never sends them back to the browser." }
            }
            @for (row, url) in urls.iter().chain(room.iter()).enumerate() {
                @let (url_name, secret_name) = (url_field(row), secret_field(row));
                @let (url_label, secret_label) = (format!("URL {}", row + 1), format!("Secret {}", row + 1));
                @let keeps = stored.contains(url);
                div.webhook {
                    (Input::text(&url_name, &url_label, url)
                        .kind("url")
                        .placeholder("https://hooks.corp.example/labgate")
                        .render(errors))
                    (Input {
                        autocomplete: "new-password",
                        ..Input::text(&secret_name, &secret_label, "")
                            .kind("password")
                            .placeholder(if keeps { "stored: leave empty to keep it" } else { "at least 16 characters" })
                    }
                    .render(errors))
                }
            }
            @if let Some(message) = error {
                p.error id="webhooks-error" { "Webhooks " (message) }
            }
        }
    }
}

fn url_field(row: usize) -> String {
    format!("webhooks[{row}].url")
}

fn secret_field(row: usize) -> String {
    format!("webhooks[{row}].secret")
}
