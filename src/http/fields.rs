//! Reading a JSON request body field by field. Every problem is collected and named; a
//! value, which may be a secret, is never repeated back.

use serde_json::{Map, Value};

use super::ApiError;
use crate::service::FieldError;

pub(super) struct Fields {
    map: Map<String, Value>,
    known: &'static [&'static str],
    errors: Vec<FieldError>,
}

impl Fields {
    /// The body's fields; `known` lists the ones this request takes.
    pub(super) fn of(body: Value, known: &'static [&'static str]) -> Result<Self, ApiError> {
        match body {
            Value::Object(map) => Ok(Self {
                map,
                known,
                errors: Vec::new(),
            }),
            _ => Err(ApiError::bad_request(
                "the request body must be a JSON object",
            )),
        }
    }

    pub(super) fn text(&mut self, key: &str) -> Option<String> {
        match self.map.remove(key)? {
            Value::String(text) => Some(text),
            _ => self.refuse(key, "must be a string"),
        }
    }

    /// `Some(None)` for an explicit `null`: "remove this value".
    pub(super) fn nullable_text(&mut self, key: &str) -> Option<Option<String>> {
        match self.map.remove(key)? {
            Value::Null => Some(None),
            Value::String(text) => Some(Some(text)),
            _ => self.refuse(key, "must be a string or null"),
        }
    }

    pub(super) fn integer(&mut self, key: &str) -> Option<i64> {
        match self.map.remove(key)? {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            _ => self.refuse(key, "must be a whole number"),
        }
    }

    /// Any JSON value, for a field whose shape the service layer judges (and names its parts).
    pub(super) fn value(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// An array of strings, or one string of space-separated words (GitLab's scope form).
    pub(super) fn words(&mut self, key: &str) -> Option<Vec<String>> {
        match self.map.remove(key)? {
            Value::String(text) => Some(text.split_whitespace().map(str::to_owned).collect()),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(
                items
                    .into_iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => self.refuse(
                key,
                "must be an array of strings, or one string of words separated by spaces",
            ),
        }
    }

    /// Refuses fields this request does not take, then any problem found so far.
    pub(super) fn finish(mut self) -> Result<(), ApiError> {
        for key in self.map.keys() {
            let message = format!(
                "is not a field of this request (fields: {})",
                self.known.join(", ")
            );
            self.errors.push(FieldError::new(key.clone(), message));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }

    fn refuse<T>(&mut self, key: &str, message: &str) -> Option<T> {
        self.errors.push(FieldError::new(key, message));
        None
    }
}
