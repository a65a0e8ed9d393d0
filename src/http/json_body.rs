//! A JSON request body, read whole but not parsed: for a handler that parses it its own way (the
//! handout reads its usual body straight into two strings). Refused exactly as `web::Json`
//! refuses a body (415, 413, 400), without what `Json` cost a handout on every request: an
//! 8 KiB buffer for a body of a hundred bytes, and a first parse into a value thrown away.

use actix_web::dev::{Decompress, Payload};
use actix_web::error::JsonPayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, mime};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

use super::{ApiError, MAX_BODY_BYTES};

pub(super) struct JsonBytes(pub Bytes);

impl FromRequest for JsonBytes {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let admitted = admit(req);
        // Decoded as `Json` decodes it: a body sent with `Content-Encoding: gzip` is read unzipped.
        let body = Decompress::from_headers(payload.take(), req.headers());
        Box::pin(async move {
            admitted?;
            read_whole(body)
                .await
                .map(JsonBytes)
                .map_err(ApiError::from_json_error)
        })
    }
}

/// What `Json` checks before reading: a JSON content type, and a declared length within the limit.
fn admit(req: &HttpRequest) -> Result<(), ApiError> {
    if !is_json(req) {
        return Err(ApiError::from_json_error(JsonPayloadError::ContentType));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<usize>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES => Err(ApiError::from_json_error(
            JsonPayloadError::OverflowKnownLength {
                length,
                limit: MAX_BODY_BYTES,
            },
        )),
        _ => Ok(()),
    }
}

/// `application/json` or any `+json` type, as `Json` accepts them. The usual header is compared as
/// it is, without parsing it into a MIME type.
fn is_json(req: &HttpRequest) -> bool {
    let usual = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"application/json"));
    usual
        || matches!(req.mime_type(), Ok(Some(kind))
            if kind.subtype() == mime::JSON || kind.suffix() == Some(mime::JSON))
}

async fn read_whole(mut body: Decompress<Payload>) -> Result<Bytes, JsonPayloadError> {
    let mut whole = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if whole.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(JsonPayloadError::Overflow {
                limit: MAX_BODY_BYTES,
            });
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use actix_web::body::MessageBody;
    use actix_web::http::header::CONTENT_ENCODING;
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, HttpResponse, web};
    use serde_json::Value;

    use super::*;

    /// A request's answer, as a caller reads it: status and body.
    type Answer = (u16, String);

    async fn answers(requests: Vec<(TestRequest, TestRequest)>) -> Vec<(Answer, Answer)> {
        // The test routes come first, so that they answer before any of labgate's; labgate's
        // bring its `Json` settings (limit, refusals).
        let app = init_service(
            App::new()
                .route(
                    "/json",
                    web::post().to(|body: web::Json<Value>| async move {
                        HttpResponse::Ok().body(body.0.to_string())
                    }),
                )
                .route(
                    "/bytes",
                    web::post().to(|body: JsonBytes| async move {
                        match serde_json::from_slice::<Value>(&body.0) {
                            Ok(value) => HttpResponse::Ok().body(value.to_string()),
                            Err(e) => actix_web::ResponseError::error_response(
                                &ApiError::from_json_error(JsonPayloadError::Deserialize(e)),
                            ),
                        }
                    }),
                )
                .configure(crate::http::routes),
        )
        .await;
        let mut seen = Vec::new();
        for (json, bytes) in requests {
            let mut pair = Vec::new();
            for (request, path) in [(json, "/json"), (bytes, "/bytes")] {
                let response = call_service(&app, request.uri(path).to_request()).await;
                let status = response.status().as_u16();
                let body = response.into_body().try_into_bytes().unwrap_or_default();
                pair.push((status, String::from_utf8_lossy(&body).into_owned()));
            }
            seen.push((pair[0].clone(), pair[1].clone()));
        }
        seen
    }

    fn gzipped(text: &str) -> Vec<u8> {
        let mut zipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        zipped.write_all(text.as_bytes()).unwrap();
        zipped.finish().unwrap()
    }

    /// Every request is answered as `web::Json` answers it: accepted with the same value, or
    /// refused with the same status and the same words.
    #[actix_web::test]
    async fn a_body_is_refused_or_read_as_json_reads_it() {
        let plain = r#"{"instance":"corp","subject":"user-17"}"#;
        let large = format!(r#"{{"subject":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let post = |content_type: Option<&str>, body: Vec<u8>| {
            let build = || {
                let request = TestRequest::post().set_payload(body.clone());
                match content_type {
                    Some(kind) => request.insert_header((CONTENT_TYPE, kind)),
                    None => request,
                }
            };
            (build(), build())
        };
        let zipped = || {
            TestRequest::post()
                .insert_header((CONTENT_TYPE, "application/json"))
                .insert_header((CONTENT_ENCODING, "gzip"))
                .set_payload(gzipped(plain))
        };
        let requests = vec![
            post(Some("application/json"), plain.into()),
            post(Some("Application/JSON"), plain.into()),
            post(Some("application/json; charset=utf-8"), plain.into()),
            post(Some("application/merge-patch+json"), plain.into()),
            post(Some("application/json-seq"), plain.into()),
            post(Some("text/plain"), plain.into()),
            post(Some("not a type"), plain.into()),
            post(None, plain.into()),
            post(Some("application/json"), b"{\"instance\": ".to_vec()),
            post(Some("application/json"), b"{\"subject\":\"\xff\"}".to_vec()),
            post(Some("application/json"), Vec::new()),
            post(Some("application/json"), large.clone().into()),
            (zipped(), zipped()),
            // Longer than declared: refused as it arrives.
            {
                let (json, bytes) = post(Some("application/json"), large.clone().into());
                let short = (CONTENT_LENGTH, "40");
                (
                    json.insert_header(short.clone()),
                    bytes.insert_header(short),
                )
            },
        ];
        let seen = answers(requests).await;
        for (n, (json, bytes)) in seen.iter().enumerate() {
            assert_eq!(json, bytes, "request {n}");
        }
        // What those answers are, as a caller reads them.
        let statuses: Vec<u16> = seen.iter().map(|(json, _)| json.0).collect();
        assert_eq!(
            statuses,
            [
                200, 200, 200, 200, 415, 415, 415, 415, 400, 400, 400, 413, 200, 413
            ]
        );
        assert!(
            seen[11].0.1.contains("larger than 64 KiB"),
            "{:?}",
            seen[11]
        );
        assert!(seen[12].0.1.contains("user-17"), "{:?}", seen[12]);
        assert!(
            seen[13].0.1.contains("larger than 64 KiB"),
            "{:?}",
            seen[13]
        );
    }
}
