//! Reading identities as the API and the database give them, each refusal named by its place.

use serde_json::Value;
use url::Url;

use super::{ClaimMatch, IdentityIssuer, WorkloadIdentities, WorkloadIdentity};
use crate::domain::{CaBundle, InstanceName, Invalid};

impl ClaimMatch {
    fn parse(written: &str) -> Result<Self, Invalid> {
        let (body, prefix) = match written.strip_suffix('*') {
            Some(body) => (body, true),
            None => (written, false),
        };
        if body.contains('*') {
            return Err(Invalid::new(format!(
                "{written:?}: `*` may only end a value (a prefix match), not stand inside it"
            )));
        }
        if body.is_empty() {
            return Err(Invalid::new(format!(
                "{written:?} would match anything: bind a value, or a prefix such as \"group/*\""
            )));
        }
        Ok(if prefix {
            Self::Prefix(body.to_owned())
        } else {
            Self::Exact(body.to_owned())
        })
    }
}

const FIELDS: [&str; 5] = ["issuer", "audience", "claims", "subject_claim", "ca_pem"];

impl WorkloadIdentity {
    /// The API's form of one identity; each refusal names its field (`issuer`, `claims`, ...).
    fn parse(input: &Value) -> Result<Self, Vec<(&'static str, Invalid)>> {
        let Some(object) = input.as_object() else {
            return Err(vec![(
                "",
                Invalid::new(
                    "must be an object with issuer, audience, claims and optionally subject_claim \
                     and ca_pem",
                ),
            )]);
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if !FIELDS.contains(&key.as_str()) {
                errors.push((
                    "",
                    Invalid::new(format!(
                        "{key:?} is not a field of an identity (fields: {})",
                        FIELDS.join(", ")
                    )),
                ));
            }
        }
        let text = |errors: &mut Vec<_>, key: &'static str| match object.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                errors.push((key, Invalid::new("must be a string")));
                None
            }
        };
        let issuer = text(&mut errors, "issuer");
        let audience = text(&mut errors, "audience");
        let subject_claim = text(&mut errors, "subject_claim");
        let ca_pem = text(&mut errors, "ca_pem");

        let issuer = match issuer {
            None => {
                errors.push(("issuer", Invalid::new("is required")));
                None
            }
            Some(issuer) => parse_issuer(&issuer)
                .map_err(|e| errors.push(("issuer", e)))
                .ok(),
        };
        let ca = ca_pem.and_then(|pem| {
            if matches!(issuer, Some(IdentityIssuer::Instance(_))) {
                errors.push((
                    "ca_pem",
                    Invalid::new("is for URL issuers: an instance's own CA bundle is used for it"),
                ));
                return None;
            }
            CaBundle::parse(&pem)
                .map_err(|e| errors.push(("ca_pem", e)))
                .ok()
        });
        let audience = match audience {
            Some(audience) if !audience.trim().is_empty() => Some(audience),
            _ => {
                errors.push((
                    "audience",
                    Invalid::new(
                        "is required: the `aud` the tokens are minted for, e.g. labgate's URL",
                    ),
                ));
                None
            }
        };
        let claims = parse_claims(object.get("claims"))
            .map_err(|e| errors.push(("claims", e)))
            .ok();
        if let Some(name) = &subject_claim
            && name.trim().is_empty()
        {
            errors.push((
                "subject_claim",
                Invalid::new("must name a claim, e.g. user_login"),
            ));
        }
        match (issuer, audience, claims) {
            (Some(issuer), Some(audience), Some(claims)) if errors.is_empty() => Ok(Self {
                issuer,
                ca,
                audience,
                claims,
                subject_claim,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_issuer(input: &str) -> Result<IdentityIssuer, Invalid> {
    if !input.contains("://") {
        return InstanceName::parse(input)
            .map(IdentityIssuer::Instance)
            .map_err(|e| {
                Invalid::new(format!(
                    "{input:?} is neither a registered instance's name ({e}) nor an https URL"
                ))
            });
    }
    let url =
        Url::parse(input).map_err(|e| Invalid::new(format!("{input:?} is not a URL ({e})")))?;
    if url.scheme() != "https" {
        return Err(Invalid::new(format!(
            "{input:?} must be an https URL: its keys are fetched from it"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Invalid::new(format!(
            "{input:?} must be an issuer URL without query, fragment or user name"
        )));
    }
    Ok(IdentityIssuer::Url(input.to_owned()))
}

fn parse_claims(input: Option<&Value>) -> Result<Vec<(String, ClaimMatch)>, Invalid> {
    let Some(Value::Object(map)) = input else {
        return Err(Invalid::new(
            "is required: an object of claim names and values, e.g. {\"project_path\": \"group/app\"}",
        ));
    };
    if map.is_empty() {
        return Err(Invalid::new(
            "must bind at least one claim: otherwise every token the issuer mints for this \
             audience would act as the service",
        ));
    }
    let mut claims = map
        .iter()
        .map(|(name, value)| match value {
            _ if name.trim().is_empty() => Err(Invalid::new("a claim name may not be empty")),
            Value::String(written) => ClaimMatch::parse(written)
                .map(|expected| (name.clone(), expected))
                .map_err(|e| Invalid::new(format!("{name}: {e}"))),
            _ => Err(Invalid::new(format!(
                "{name}: must be a string (write true as \"true\")"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    claims.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(claims)
}

impl WorkloadIdentities {
    /// The API's form, an array of identities; each refusal is named by its place
    /// (`identities[0].claims`).
    pub fn parse(input: &Value) -> Result<Self, Vec<(String, Invalid)>> {
        let Some(items) = input.as_array() else {
            return Err(vec![(
                "identities".into(),
                Invalid::new("must be an array of identities"),
            )]);
        };
        let mut errors = Vec::new();
        let mut identities = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match WorkloadIdentity::parse(item) {
                Ok(identity) => identities.push(identity),
                Err(refused) => errors.extend(refused.into_iter().map(|(field, why)| {
                    let place = match field {
                        "" => format!("identities[{index}]"),
                        field => format!("identities[{index}].{field}"),
                    };
                    (place, why)
                })),
            }
        }
        if errors.is_empty() {
            Ok(Self(identities))
        } else {
            Err(errors)
        }
    }

    /// Reads the form `to_stored` writes.
    pub fn from_stored(stored: &str) -> Result<Self, Invalid> {
        let value: Value =
            serde_json::from_str(stored).map_err(|e| Invalid::new(format!("is not JSON ({e})")))?;
        Self::parse(&value).map_err(|errors| {
            Invalid::new(
                errors
                    .into_iter()
                    .map(|(place, why)| format!("{place}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }
}
