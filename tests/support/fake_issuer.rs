//! A fake Kubernetes API server as an OpenID Connect issuer of service-account tokens: real TLS
//! from a private CA of its own (not GitLab's), discovery at
//! `{issuer}/.well-known/openid-configuration`, its JWKS at `/openid/v1/jwks`, ES256 keys that
//! rotate, and every discovery and JWKS request counted.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use super::certs::{TestCa, Validity};
use super::jwt::{JwtKey, KeySet, OldKey, TokenBuilder, now};

/// Projected service-account tokens last an hour unless the pod asks otherwise.
const LIFETIME_SECONDS: i64 = 3600;

/// What the issuer was asked, for tests to assert on.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct IssuerSeen {
    pub discovery_requests: usize,
    pub jwks_requests: usize,
}

impl IssuerSeen {
    /// Discovery and JWKS requests together: every fetch of key material.
    pub(crate) fn key_fetches(&self) -> usize {
        self.discovery_requests + self.jwks_requests
    }
}

struct IssuerState {
    issuer: String,
    keys: KeySet,
    /// `id_token_signing_alg_values_supported`.
    algorithms: Vec<String>,
    seen: IssuerSeen,
}

type Shared = web::Data<Mutex<IssuerState>>;

pub(crate) struct FakeIssuer {
    /// The cluster's own CA: what an identity's `ca_pem` must hold to reach this issuer.
    pub ca: TestCa,
    handle: ServerHandle,
    state: Arc<Mutex<IssuerState>>,
}

impl FakeIssuer {
    /// An issuer at `https://localhost:{port}` signing with one ES256 key.
    pub(crate) async fn start() -> Self {
        let ca = TestCa::new("Cluster Test Root CA");
        let cert = ca.issue(&["localhost", "127.0.0.1"], Validity::Current);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(IssuerState {
            issuer: format!("https://localhost:{port}"),
            keys: KeySet::new(Arc::new(JwtKey::es256(&new_kid()))),
            algorithms: vec!["ES256".into()],
            seen: IssuerSeen::default(),
        }));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(openid_configuration),
                )
                .route("/openid/v1/jwks", web::get().to(jwks))
        })
        .workers(1)
        .listen_rustls_0_23(listener, cert.rustls_server_config())
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { ca, handle, state }
    }

    pub(crate) fn issuer(&self) -> String {
        self.state.lock().unwrap().issuer.clone()
    }

    pub(crate) fn seen(&self) -> IssuerSeen {
        self.state.lock().unwrap().seen
    }

    /// The token the kubelet projects into a pod running as service account `name` in
    /// `namespace`, for audience `aud`, signed with the current key.
    pub(crate) fn service_account_token(
        &self,
        aud: &str,
        namespace: &str,
        name: &str,
    ) -> TokenBuilder {
        let issued = now();
        self.token(json!({
            "aud": [aud],
            "exp": issued + LIFETIME_SECONDS,
            "iat": issued,
            "nbf": issued,
            "iss": self.issuer(),
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": uuid::Uuid::new_v4().to_string()},
                "pod": {"name": format!("{name}-7d9f8c6b5-x2k4q"), "uid": uuid::Uuid::new_v4().to_string()},
                "serviceaccount": {"name": name, "uid": uuid::Uuid::new_v4().to_string()},
            },
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        }))
    }

    /// A token with exactly `claims`, signed (once built) with the current key.
    pub(crate) fn token(&self, claims: Value) -> TokenBuilder {
        TokenBuilder::new(self.key(), claims)
    }

    /// The key new tokens are signed with.
    pub(crate) fn key(&self) -> Arc<JwtKey> {
        self.state.lock().unwrap().keys.current()
    }

    /// The cluster's signing key is rotated: a new key under a new `kid`.
    pub(crate) fn rotate_key(&self, old: OldKey) {
        let key = JwtKey::es256(&new_kid());
        self.state.lock().unwrap().keys.rotate(key, old);
    }

    /// Changes the algorithms the discovery document advertises.
    pub(crate) fn advertise(&self, algorithms: &[&str]) {
        self.state.lock().unwrap().algorithms = algorithms.iter().map(|a| a.to_string()).collect();
    }

    /// The API server goes away: nothing answers at its address any more.
    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Kubernetes names its keys by a hash of the public key; any unique string will do here.
fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn openid_configuration(state: Shared) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.seen.discovery_requests += 1;
    // As kube-apiserver answers it: no authorization or token endpoint.
    HttpResponse::Ok().json(json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/openid/v1/jwks", state.issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": state.algorithms,
    }))
}

async fn jwks(state: Shared) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.seen.jwks_requests += 1;
    HttpResponse::Ok().json(json!({"keys": state.keys.jwks()}))
}
