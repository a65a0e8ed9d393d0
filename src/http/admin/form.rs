//! Reading a posted HTML form: `application/x-www-form-urlencoded`, or `multipart/form-data`
//! when it carries a file (a CA bundle). Every value is kept as text, in order, so a field that
//! appears several times (checkboxes) yields each value.

use actix_multipart::{Multipart, MultipartError};
use actix_web::HttpRequest;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use futures_util::StreamExt;

use super::error::PageError;

/// A posted form larger than this is refused with 413 before it is read any further.
const MAX_FORM_BYTES: usize = 256 * 1024;
/// The answer to a form over that limit, however it was noticed.
const TOO_LARGE: PageError = PageError::TooLarge {
    max_bytes: MAX_FORM_BYTES,
};

#[derive(Debug, Default)]
pub(super) struct FormData {
    fields: Vec<(String, String)>,
}

impl FormData {
    pub(super) async fn read(req: &HttpRequest, payload: Payload) -> Result<Self, PageError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
            return Err(TOO_LARGE);
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let limited = limit(payload);
        if content_type.starts_with("application/x-www-form-urlencoded") {
            Self::read_urlencoded(limited).await
        } else if content_type.starts_with("multipart/form-data") {
            Self::read_multipart(req, limited).await
        } else {
            Err(PageError::UnsupportedMediaType)
        }
    }

    async fn read_urlencoded(
        mut body: impl futures_util::Stream<Item = Result<actix_web::web::Bytes, PayloadError>> + Unpin,
    ) -> Result<Self, PageError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(unreadable_payload)?);
        }
        Ok(Self {
            fields: url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        })
    }

    async fn read_multipart(
        req: &HttpRequest,
        body: impl futures_util::Stream<Item = Result<actix_web::web::Bytes, PayloadError>> + 'static,
    ) -> Result<Self, PageError> {
        let mut multipart = Multipart::new(req.headers(), body);
        let mut fields = Vec::new();
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(unreadable_multipart)?;
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            let data = field
                .bytes(MAX_FORM_BYTES)
                .await
                .map_err(|_| TOO_LARGE)?
                .map_err(unreadable_multipart)?;
            // A DER file or other binary is passed on as text; the parser then says what is wrong.
            fields.push((name, String::from_utf8_lossy(&data).into_owned()));
        }
        Ok(Self { fields })
    }

    /// The first value of `name`, as posted.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or "" when absent.
    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    /// `None` when the field is absent or blank: an empty input means "not given".
    pub(super) fn given(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name` (ticked checkboxes), in order.
    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The words of a text area (one per line, or separated by spaces).
    pub(super) fn words(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    #[cfg(test)]
    pub(super) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            fields: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

fn unreadable_payload(error: PayloadError) -> PageError {
    match error {
        PayloadError::Overflow => TOO_LARGE,
        other => PageError::BadForm(format!("the form could not be read: {other}")),
    }
}

fn unreadable_multipart(error: MultipartError) -> PageError {
    match error {
        MultipartError::Payload(e) => unreadable_payload(e),
        other => PageError::BadForm(format!("the form could not be read: {other}")),
    }
}

/// Ends the body with an error once it passes `MAX_FORM_BYTES`, whatever it declared.
fn limit(
    payload: Payload,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, PayloadError>> + Unpin + 'static
{
    let mut seen = 0usize;
    payload.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > MAX_FORM_BYTES {
            Err(PayloadError::Overflow)
        } else {
            Ok(chunk)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields_are_not_given_and_checkboxes_repeat() {
        let form = FormData::from_pairs(&[
            ("name", " "),
            ("scopes", "openid"),
            ("scopes", "read_api"),
            ("origins", "https://a.example\r\n\r\n https://b.example "),
        ]);
        assert_eq!(form.given("name"), None);
        assert_eq!(form.given("missing"), None);
        assert_eq!(form.all("scopes"), ["openid", "read_api"]);
        assert_eq!(
            form.words("origins"),
            ["https://a.example", "https://b.example"]
        );
    }
}
