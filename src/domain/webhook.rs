//! Webhooks: where a service's connection events go (https, or http on loopback), the secret
//! their signatures are made with, what an event says, and when a failed delivery is retried.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Map, Value, json};
use url::{Host, Url};

use super::Invalid;

/// At most this many webhooks per service.
pub const MAX_WEBHOOKS: usize = 10;
const MIN_SECRET_CHARS: usize = 16;
const MAX_SECRET_CHARS: usize = 1024;

/// A URL events may be sent to: https anywhere, plain http only to this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let url = Url::parse(input).map_err(|e| Invalid::new(format!("is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new("must not carry a user name or password"));
        }
        if url.fragment().is_some() {
            return Err(Invalid::new("must not have a #fragment"));
        }
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => Ok(Self(url)),
            ("http", Some(host)) if is_loopback(&host) => Ok(Self(url)),
            ("http", Some(_)) => Err(Invalid::new(
                "must be https (plain http only to 127.0.0.1, ::1 or localhost)",
            )),
            _ => Err(Invalid::new("must be an https URL with a host")),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => *ip == Ipv4Addr::LOCALHOST,
        Host::Ipv6(ip) => *ip == Ipv6Addr::LOCALHOST,
    }
}

/// The secret deliveries are signed with; never printed.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let chars = input.chars().count();
        if chars < MIN_SECRET_CHARS {
            return Err(Invalid::new(format!(
                "must be at least {MIN_SECRET_CHARS} characters long"
            )));
        }
        if chars > MAX_SECRET_CHARS {
            return Err(Invalid::new(format!(
                "must be at most {MAX_SECRET_CHARS} characters long"
            )));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// One webhook as an administrator lists it.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: WebhookUrl,
    /// `None` only where the list may keep stored secrets (`WebhookSecrets::KeepStored`).
    pub secret: Option<WebhookSecret>,
}

/// Whether each webhook of a list must carry its secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookSecrets {
    /// The API: every webhook with its secret.
    #[default]
    Required,
    /// The admin pages, which never show a secret: a webhook listed without one keeps the
    /// secret stored for its URL (a URL not stored needs its secret all the same).
    KeepStored,
}

/// Why parts of a webhook list were refused: the place (`webhooks[0].url`) and the reason.
pub type WebhookRefusals = Vec<(String, Invalid)>;

/// Parses the API's `webhooks` array, naming every refused part by its place.
pub fn parse_webhooks(
    value: &Value,
    secrets: WebhookSecrets,
) -> Result<Vec<Webhook>, WebhookRefusals> {
    let Value::Array(items) = value else {
        return Err(refused(
            "webhooks",
            "must be an array of {\"url\", \"secret\"}",
        ));
    };
    if items.len() > MAX_WEBHOOKS {
        return Err(refused(
            "webhooks",
            &format!("may list at most {MAX_WEBHOOKS} webhooks"),
        ));
    }
    let mut refusals = Vec::new();
    let mut parsed: Vec<Webhook> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let place = format!("webhooks[{index}]");
        let Value::Object(fields) = item else {
            refusals.push((
                place,
                Invalid::new("must be an object {\"url\", \"secret\"}"),
            ));
            continue;
        };
        for unknown in fields
            .keys()
            .filter(|k| !["url", "secret"].contains(&k.as_str()))
        {
            refusals.push((
                format!("{place}.{unknown}"),
                Invalid::new("is not a field of a webhook (fields: url, secret)"),
            ));
        }
        let url = text(fields, &place, "url", &mut refusals).and_then(|url| {
            WebhookUrl::parse(url)
                .map_err(|e| refusals.push((format!("{place}.url"), e)))
                .ok()
        });
        let kept = secrets == WebhookSecrets::KeepStored && !fields.contains_key("secret");
        let secret = if kept {
            Some(None)
        } else {
            text(fields, &place, "secret", &mut refusals).and_then(|secret| {
                WebhookSecret::parse(secret)
                    .map(Some)
                    .map_err(|e| refusals.push((format!("{place}.secret"), e)))
                    .ok()
            })
        };
        if let Some(url) = &url
            && parsed.iter().any(|hook| hook.url == *url)
        {
            refusals.push((format!("{place}.url"), Invalid::new("is listed twice")));
            continue;
        }
        if let (Some(url), Some(secret)) = (url, secret) {
            parsed.push(Webhook { url, secret });
        }
    }
    if refusals.is_empty() {
        Ok(parsed)
    } else {
        Err(refusals)
    }
}

/// A required string field of a webhook; the value is never repeated in a refusal.
fn text<'a>(
    fields: &'a Map<String, Value>,
    place: &str,
    name: &str,
    refusals: &mut WebhookRefusals,
) -> Option<&'a str> {
    match fields.get(name) {
        Some(Value::String(value)) => Some(value),
        Some(_) => {
            refusals.push((format!("{place}.{name}"), Invalid::new("must be a string")));
            None
        }
        None => {
            refusals.push((format!("{place}.{name}"), Invalid::new("is required")));
            None
        }
    }
}

fn refused(place: &str, why: &str) -> WebhookRefusals {
    vec![(place.to_owned(), Invalid::new(why))]
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ConnectionCreated,
    ConnectionReauthorizationRequired,
    ConnectionRevoked,
    /// An access token that cannot rotate itself expires within 7 days.
    ConnectionExpiring,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionCreated => "connection.created",
            Self::ConnectionReauthorizationRequired => "connection.reauthorization_required",
            Self::ConnectionRevoked => "connection.revoked",
            Self::ConnectionExpiring => "connection.expiring",
        }
    }
}

/// One event about a connection, as every webhook of its service receives it.
#[derive(Debug, Clone)]
pub struct ConnectionEvent {
    pub id: String,
    pub kind: EventType,
    pub created_at: NaiveDateTime,
    pub connection_id: String,
    pub instance: String,
    pub subject: String,
    pub status: String,
    pub reason: Option<String>,
    /// When the token expires (`connection.expiring`).
    pub expires_at: Option<NaiveDateTime>,
}

impl ConnectionEvent {
    /// The JSON body: `{id, type, created_at, data: {connection_id, instance, subject, status,
    /// reason?, expires_at?}}`.
    pub fn body(&self) -> String {
        let mut data = json!({
            "connection_id": self.connection_id,
            "instance": self.instance,
            "subject": self.subject,
            "status": self.status,
        });
        if let Some(reason) = &self.reason {
            data["reason"] = json!(reason);
        }
        if let Some(expires_at) = self.expires_at {
            data["expires_at"] = json!(rfc3339(expires_at));
        }
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "created_at": rfc3339(self.created_at),
            "data": data,
        })
        .to_string()
    }
}

fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up on after `MAX_ATTEMPTS`, or its webhook was removed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(Invalid::new(format!(
                "{other:?} is not a delivery status (pending, delivered, failed)"
            ))),
        }
    }
}

/// The back-off: the first retry 2 s after the first failure, each wait twice the one before,
/// at most an hour; after `MAX_ATTEMPTS` attempts (about three days) the delivery has failed.
const FIRST_RETRY_SECONDS: i64 = 2;
const LONGEST_WAIT_SECONDS: i64 = 3600;
pub const MAX_ATTEMPTS: i64 = 80;

/// How long to wait after `attempts` failed attempts (1 or more) before the next; `None` once
/// the delivery is given up.
pub fn next_retry(attempts: i64) -> Option<TimeDelta> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let wait = FIRST_RETRY_SECONDS
        .saturating_mul(1_i64 << doublings)
        .min(LONGEST_WAIT_SECONDS);
    Some(TimeDelta::seconds(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_on_loopback() {
        for good in [
            "https://hooks.corp.example/labgate",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9000/",
            "http://localhost/x",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.corp.example/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "https://user:pw@hooks.corp.example/",
            "https://hooks.corp.example/#x",
            "not a url",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_refused_part_is_named_and_no_value_repeated() {
        let refused = parse_webhooks(
            &json!([
                {"url": "http://hooks.corp.example/", "secret": "short-one"},
                {"secret": "0123456789abcdef", "extra": 1},
                {"url": "https://a.example/", "secret": "0123456789abcdef"},
                {"url": "https://a.example/", "secret": "0123456789abcdef"},
                {"url": "https://b.example/"},
            ]),
            WebhookSecrets::Required,
        )
        .unwrap_err();
        let places: Vec<&str> = refused.iter().map(|(place, _)| place.as_str()).collect();
        assert_eq!(
            places,
            [
                "webhooks[0].url",
                "webhooks[0].secret",
                "webhooks[1].extra",
                "webhooks[1].url",
                "webhooks[3].url",
                "webhooks[4].secret"
            ]
        );
        assert!(refused.iter().all(|(_, why)| !why.0.contains("short-one")));
        assert!(parse_webhooks(&json!({"url": "x"}), WebhookSecrets::Required).is_err());
        assert_eq!(
            parse_webhooks(&json!([]), WebhookSecrets::Required)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn a_list_that_keeps_stored_secrets_may_leave_them_out_but_not_break_them() {
        let parsed = parse_webhooks(
            &json!([
                {"url": "https://a.example/"},
                {"url": "https://b.example/", "secret": "0123456789abcdef"},
            ]),
            WebhookSecrets::KeepStored,
        )
        .unwrap();
        assert!(parsed[0].secret.is_none());
        assert!(parsed[1].secret.is_some());
        let refused = parse_webhooks(
            &json!([{"url": "https://a.example/", "secret": "short-one"}, {"secret": 7}]),
            WebhookSecrets::KeepStored,
        )
        .unwrap_err();
        let places: Vec<&str> = refused.iter().map(|(place, _)| place.as_str()).collect();
        assert_eq!(
            places,
            [
                "webhooks[0].secret",
                "webhooks[1].url",
                "webhooks[1].secret"
            ]
        );
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = WebhookSecret::parse("0123456789abcdef-very-secret").unwrap();
        assert!(!format!("{secret:?}").contains("very-secret"));
    }

    #[test]
    fn retries_double_from_two_seconds_to_an_hour_then_stop() {
        assert_eq!(next_retry(1), Some(TimeDelta::seconds(2)));
        assert_eq!(next_retry(2), Some(TimeDelta::seconds(4)));
        assert_eq!(next_retry(11), Some(TimeDelta::seconds(2048)));
        assert_eq!(next_retry(12), Some(TimeDelta::seconds(3600)));
        assert_eq!(next_retry(MAX_ATTEMPTS - 1), Some(TimeDelta::seconds(3600)));
        assert_eq!(next_retry(MAX_ATTEMPTS), None);
        let total: i64 = (1..MAX_ATTEMPTS)
            .filter_map(next_retry)
            .map(|wait| wait.num_seconds())
            .sum();
        assert!(
            (2 * 86_400..4 * 86_400).contains(&total),
            "about three days: {total}"
        );
    }

    #[test]
    fn the_body_has_the_reason_only_when_there_is_one() {
        let mut event = ConnectionEvent {
            id: "e1".into(),
            kind: EventType::ConnectionRevoked,
            created_at: chrono::DateTime::from_timestamp(1_764_820_769, 0)
                .unwrap()
                .naive_utc(),
            connection_id: "c1".into(),
            instance: "corp".into(),
            subject: "alice".into(),
            status: "revoked".into(),
            reason: None,
            expires_at: None,
        };
        let body: Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["type"], "connection.revoked");
        assert!(body["data"].get("expires_at").is_none());
        assert_eq!(body["created_at"], "2025-12-04T03:59:29Z");
        assert!(body["data"].get("reason").is_none());
        event.reason = Some("invalid_grant".into());
        let body: Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["data"]["reason"], "invalid_grant");
        event.expires_at = Some(event.created_at);
        let body: Value = serde_json::from_str(&event.body()).unwrap();
        assert_eq!(body["data"]["expires_at"], "2025-12-04T03:59:29Z");
    }
}
