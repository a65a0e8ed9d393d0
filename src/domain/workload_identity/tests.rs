use serde_json::{Value, json};

use super::*;

fn identity(claims: Value) -> WorkloadIdentity {
    let parsed = WorkloadIdentities::parse(&json!([{
        "issuer": "corp",
        "audience": "https://labgate.corp.example",
        "claims": claims,
        "subject_claim": "user_login",
    }]))
    .unwrap();
    parsed.0[0].clone()
}

const NOW: i64 = 1_800_000_000;

/// A token's claims: `extra` over a valid audience and times.
fn token(extra: Value) -> Map<String, Value> {
    let mut claims =
        json!({"aud": "https://labgate.corp.example", "iat": NOW, "nbf": NOW, "exp": NOW + 300});
    for (name, value) in extra.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims.as_object().unwrap().clone()
}

fn judge(identity: &WorkloadIdentity, extra: Value) -> Result<AcceptedClaims, ClaimRefusal> {
    identity.judge(&token(extra), NOW)
}

#[test]
fn exact_claims_match_byte_for_byte() {
    let identity = identity(json!({"project_path": "group/app", "ref_protected": "true"}));
    let accepted = judge(
        &identity,
        json!({
            "project_path": "group/app", "ref_protected": "true", "user_login": "alice"
        }),
    )
    .unwrap();
    assert_eq!(accepted.subject.unwrap().as_str(), "alice");
    assert_eq!(
        accepted.bound,
        vec![
            ("project_path".to_owned(), "group/app".to_owned()),
            ("ref_protected".to_owned(), "true".to_owned())
        ]
    );
    for (claim, value) in [
        ("project_path", json!("group/ap")),
        ("project_path", json!("group/app ")),
        ("project_path", json!("Group/app")),
        ("project_path", json!("group/appx")),
        ("project_path", json!(["group/app"])),
        ("project_path", json!({"path": "group/app"})),
        ("project_path", Value::Null),
        ("ref_protected", json!("false")),
        ("ref_protected", json!(false)),
    ] {
        let mut claims =
            json!({"project_path": "group/app", "ref_protected": "true", "user_login": "alice"});
        claims[claim] = value.clone();
        let refused = judge(&identity, claims).unwrap_err();
        assert_eq!(refused.check, format!("claim {claim}"), "{value}");
        assert_eq!(refused.reason, "claim");
    }
    // A boolean claim compares as its JSON text.
    assert!(
        judge(
            &identity,
            json!({"project_path": "group/app", "ref_protected": true, "user_login": "a"})
        )
        .is_ok()
    );
}

#[test]
fn a_prefix_matches_only_what_starts_with_it() {
    let identity = identity(json!({"project_path": "group/*"}));
    for accepted in ["group/app", "group/sub/app", "group/"] {
        assert!(
            judge(
                &identity,
                json!({"project_path": accepted, "user_login": "a"})
            )
            .is_ok(),
            "{accepted}"
        );
    }
    for refused in [
        "group",
        "group-evil/app",
        "Group/app",
        "groupx/app",
        "x/group/app",
        " group/app",
        "ｇroup/app",
    ] {
        let why = judge(
            &identity,
            json!({"project_path": refused, "user_login": "a"}),
        )
        .unwrap_err();
        assert_eq!(why.check, "claim project_path", "{refused}");
    }
}

#[test]
fn the_subject_claim_must_be_present_and_usable() {
    let identity = identity(json!({"project_path": "group/app"}));
    for claims in [
        json!({"project_path": "group/app"}),
        json!({"project_path": "group/app", "user_login": ""}),
        json!({"project_path": "group/app", "user_login": ["alice"]}),
        json!({"project_path": "group/app", "user_login": "al\nice"}),
    ] {
        let refused = judge(&identity, claims.clone()).unwrap_err();
        assert_eq!(refused.check, "subject_claim user_login", "{claims}");
        assert_eq!(refused.reason, "subject");
    }
    let unbound = WorkloadIdentities::parse(&json!([{
        "issuer": "https://kubernetes.default.svc", "audience": "labgate",
        "claims": {"sub": "system:serviceaccount:ci:builder"}
    }]))
    .unwrap();
    let accepted = judge(
        &unbound.0[0],
        json!({"aud": "labgate", "sub": "system:serviceaccount:ci:builder"}),
    )
    .unwrap();
    assert_eq!(accepted.subject, None);
}

#[test]
fn refusals_name_the_field_and_place() {
    let cases = [
        (
            json!({"issuer": "corp", "audience": "a", "claims": {}}),
            "identities[0].claims",
        ),
        (
            json!({"issuer": "corp", "audience": "a"}),
            "identities[0].claims",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": "a*b"}}),
            "identities[0].claims",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": "*"}}),
            "identities[0].claims",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": true}}),
            "identities[0].claims",
        ),
        (
            json!({"issuer": "http://k8s.example", "audience": "a", "claims": {"p": "v"}}),
            "identities[0].issuer",
        ),
        (
            json!({"issuer": "Not A Name", "audience": "a", "claims": {"p": "v"}}),
            "identities[0].issuer",
        ),
        (
            json!({"audience": "a", "claims": {"p": "v"}}),
            "identities[0].issuer",
        ),
        (
            json!({"issuer": "corp", "audience": " ", "claims": {"p": "v"}}),
            "identities[0].audience",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": "v"}, "ca_pem": "x"}),
            "identities[0].ca_pem",
        ),
        (
            json!({"issuer": "https://k8s.example", "audience": "a", "claims": {"p": "v"}, "ca_pem": "x"}),
            "identities[0].ca_pem",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": "v"}, "subject_claim": ""}),
            "identities[0].subject_claim",
        ),
        (
            json!({"issuer": "corp", "audience": "a", "claims": {"p": "v"}, "extra": 1}),
            "identities[0]",
        ),
        (json!("corp"), "identities[0]"),
    ];
    for (input, place) in cases {
        let errors = WorkloadIdentities::parse(&json!([input])).unwrap_err();
        assert!(
            errors.iter().any(|(field, _)| field == place),
            "{input} gave {errors:?}"
        );
    }
    assert_eq!(
        WorkloadIdentities::parse(&json!({})).unwrap_err()[0].0,
        "identities"
    );
}

#[test]
fn the_stored_form_reads_back_the_same() {
    let identities = WorkloadIdentities::parse(&json!([
        {"issuer": "corp", "audience": "https://labgate.corp.example",
         "claims": {"ref_protected": "true", "project_path": "group/*"}, "subject_claim": "user_login"},
        {"issuer": "https://kubernetes.default.svc/", "audience": "labgate",
         "claims": {"sub": "system:serviceaccount:ci:builder"}}
    ]))
    .unwrap();
    let again = WorkloadIdentities::from_stored(&identities.to_stored()).unwrap();
    assert_eq!(again, identities);
    assert_eq!(
        again
            .instances()
            .map(InstanceName::as_str)
            .collect::<Vec<_>>(),
        ["corp"]
    );
    // The issuer URL is kept as written: the token's `iss` must equal it exactly.
    assert_eq!(
        again.to_json()[1]["issuer"],
        "https://kubernetes.default.svc/"
    );
}

#[test]
fn audience_and_times_are_judged_with_a_minute_of_leeway_for_the_clock() {
    let identity = identity(json!({"project_path": "group/app"}));
    let good = json!({"project_path": "group/app", "user_login": "alice"});
    let cases = [
        (
            json!({"aud": "https://labgate.corp.example.evil"}),
            Some("audience"),
        ),
        (
            json!({"aud": ["other", "https://labgate.corp.example"]}),
            None,
        ),
        (json!({"aud": ["other"]}), Some("audience")),
        (json!({"aud": null}), Some("audience")),
        (json!({"exp": NOW}), Some("expiry")),
        (json!({"exp": NOW - 30}), Some("expiry")),
        (json!({"exp": "soon"}), Some("expiry")),
        (json!({"exp": NOW + 1}), None),
        (json!({"nbf": NOW + 60}), None),
        (json!({"nbf": NOW + 61}), Some("not_before")),
        (json!({"iat": NOW + 60}), None),
        (json!({"iat": NOW + 61}), Some("issued_at")),
        (json!({"iat": "now"}), Some("issued_at")),
    ];
    for (change, refused) in cases {
        let mut claims = token(good.clone());
        for (name, value) in change.as_object().unwrap() {
            claims.insert(name.clone(), value.clone());
        }
        let judged = identity.judge(&claims, NOW);
        match refused {
            None => assert!(judged.is_ok(), "{change}: {judged:?}"),
            Some(check) => assert_eq!(judged.unwrap_err().check, check, "{change}"),
        }
    }
    let mut without_exp = token(good);
    without_exp.remove("exp");
    assert_eq!(
        identity.judge(&without_exp, NOW).unwrap_err().check,
        "expiry"
    );
}
