//! `limit` and `cursor` on every list, and `next_cursor` in its answer.

use serde::Deserialize;

use super::ApiError;
use crate::domain::Page;
use crate::service::{FieldError, ServiceError};

/// The paging part of a list's query string.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    pub(super) limit: Option<i64>,
    pub(super) cursor: Option<String>,
}

impl PageQuery {
    pub(super) fn page(&self) -> Result<Page, ApiError> {
        let mut errors = Vec::new();
        let limit = Page::limit(self.limit)
            .map_err(|e| errors.push(FieldError::new("limit", e.0)))
            .ok();
        let after = Page::after(self.cursor.as_deref())
            .map_err(|e| errors.push(FieldError::new("cursor", e.0)))
            .ok();
        match (limit, after) {
            (Some(limit), Some(after)) => Ok(Page { limit, after }),
            _ => Err(ServiceError::Invalid(errors).into()),
        }
    }
}
