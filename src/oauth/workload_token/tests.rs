use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

fn token(header: Value) -> String {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        part(header),
        part(json!({"iss": "https://issuer.test"}))
    )
}

#[test]
fn headers_that_bring_their_own_keys_are_refused() {
    for member in ["jku", "x5u", "jwk", "x5c", "crit"] {
        let refused = UnverifiedToken::parse(&token(
            json!({"alg": "RS256", "kid": "k", member: "https://evil.test/keys"}),
        ))
        .err()
        .unwrap();
        assert_eq!(refused.check, "header", "{member}");
    }
}

#[test]
fn only_asymmetric_algorithms_pass() {
    for alg in [
        json!("none"),
        json!("None"),
        json!("HS256"),
        json!("HS512"),
        json!("RSA"),
        json!(1),
    ] {
        let refused = UnverifiedToken::parse(&token(json!({"alg": alg, "kid": "k"})))
            .err()
            .unwrap();
        assert_eq!(refused.check, "algorithm", "{alg}");
    }
    assert_eq!(
        UnverifiedToken::parse(&token(json!({"kid": "k"})))
            .err()
            .unwrap()
            .check,
        "algorithm"
    );
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let parsed = UnverifiedToken::parse(&token(json!({"alg": alg, "kid": "k"}))).unwrap();
        assert_eq!(parsed.claimed_issuer(), Some("https://issuer.test"));
    }
}

#[test]
fn what_is_not_a_jwt_is_malformed() {
    for text in ["", "a.b", "a.b.c.d", "e30.e30", "!!.e30.sig", "W10.e30.sig"] {
        let refused = UnverifiedToken::parse(text).err().unwrap();
        assert_eq!(refused.check, "subject_token", "{text}");
    }
}
