use std::fs;
use std::path::Path;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};
use labgate::config::{
    AdminSettings, DatabaseSettings, DatabaseUrl, OutboundSettings, RefresherSettings,
    SecuritySettings, ServerSettings, Settings,
};
use labgate::startup::Application;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::certs::{TestCa, Validity};
use crate::fake_gitlab::{Discovery, FakeGitLab, default_application};

pub const PUBLIC_URL: &str = "https://labgate.test";
pub const CLIENT_SECRET: &str =
    "gloas-5f3c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[actix_web::test]
            async fn sqlite() {
                super::$test(crate::helpers::Backend::Sqlite).await
            }

            #[actix_web::test]
            async fn postgres() {
                match crate::helpers::Backend::postgres() {
                    Some(backend) => super::$test(backend).await,
                    None => eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested"),
                }
            }
        }
    )*};
}

#[derive(Clone)]
pub enum Backend {
    Sqlite,
    /// A URL of a PostgreSQL server where the test may create and drop a database.
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Option<Self> {
        std::env::var("LABGATE_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(Self::Postgres)
    }
}

/// A database of the test's own, with a directory for its files; dropped when the test ends.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    postgres: Option<(String, String)>,
    dir: TempDir,
}

impl TestDatabase {
    pub fn create(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Self {
                url: DatabaseUrl::Sqlite(dir.path().join("labgate.db")),
                postgres: None,
                dir,
            },
            Backend::Postgres(server_url) => {
                let name = format!("labgate_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::establish(server_url).unwrap_or_else(|e| {
                    panic!("LABGATE_TEST_POSTGRES_URL is set but PostgreSQL does not answer: {e}")
                });
                sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .unwrap();
                let mut url = url::Url::parse(server_url).unwrap();
                url.set_path(&name);
                let url = DatabaseUrl::Postgres(SecretString::from(url.to_string()));
                Self {
                    url,
                    postgres: Some((server_url.clone(), name)),
                    dir,
                }
            }
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every byte the database holds, as a stolen disk (SQLite file and WAL) or a dump
    /// (`pg_dump`) would reveal it.
    pub fn raw_contents(&self) -> Vec<u8> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut bytes = fs::read(path).unwrap();
                for suffix in ["-wal", "-shm"] {
                    bytes.extend(
                        fs::read(format!("{}{suffix}", path.display())).unwrap_or_default(),
                    );
                }
                bytes
            }
            DatabaseUrl::Postgres(url) => {
                let dump = std::process::Command::new("pg_dump")
                    .args(["--data-only", "--inserts", "--dbname", url.expose_secret()])
                    .output()
                    .expect("pg_dump runs (PostgreSQL client tools are installed by .ci/run)");
                assert!(
                    dump.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&dump.stderr)
                );
                dump.stdout
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server_url, name)) = &self.postgres
            && let Ok(mut conn) = PgConnection::establish(server_url)
        {
            let _ = sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Stops a labgate server when the test lets go of it: a server left running keeps its state
/// (and with PostgreSQL its change listener) alive after the test's database is gone.
pub struct StopOnDrop(pub ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // The command is sent now; the server stops on its own threads.
        drop(self.0.stop(false));
    }
}

pub struct TestApp {
    pub address: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// Before `db`: the server stops before its database is dropped.
    handle: StopOnDrop,
    pub db: TestDatabase,
    /// The running app's use-case state, to drive the background refresher by hand.
    pub context: labgate::service::Context,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::create(&backend);
        let mut settings = Self::settings_for(&db);
        change(&mut settings);
        Self::start(db, settings).await
    }

    /// Settings as an operator would leave them: no master key (labgate creates one in the
    /// test's directory), an admin token, a public https URL.
    pub fn settings_for(db: &TestDatabase) -> Settings {
        Settings {
            server: ServerSettings {
                listen: "127.0.0.1:0".parse().unwrap(),
                public_url: url::Url::parse(PUBLIC_URL).unwrap(),
                tls: None,
                workers: 1,
            },
            database: DatabaseSettings {
                url: db.url.clone(),
                pool_size: 4,
                pool_timeout: Duration::from_secs(5),
            },
            security: SecuritySettings {
                master_key: None,
                generated_master_key_path: db.dir().join("master.key"),
            },
            admin: AdminSettings {
                token: Some(SecretString::from(format!(
                    "test-admin-{}",
                    uuid::Uuid::new_v4()
                ))),
            },
            outbound: OutboundSettings {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
            },
            // Tests run sweeps themselves, when they mean to.
            refresher: RefresherSettings {
                enabled: false,
                interval: Duration::from_secs(1),
                concurrency: 8,
            },
        }
    }

    pub async fn start(db: TestDatabase, settings: Settings) -> Self {
        let app = Application::build(settings.clone())
            .await
            .expect("labgate starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = StopOnDrop(app.handle());
        let context = app.context().clone();
        actix_web::rt::spawn(app.run());
        let admin_token = settings
            .admin
            .token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        Self {
            address,
            admin_token,
            client: reqwest::Client::new(),
            settings,
            db,
            handle,
            context,
        }
    }

    /// Stops the server and hands back its database, for a restart.
    pub async fn stop(self) -> (TestDatabase, Settings) {
        self.handle.0.stop(true).await;
        (self.db, self.settings)
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&self.admin_token)
    }

    pub async fn register(&self, body: &Value) -> Response {
        self.admin(Method::POST, "/api/v1/instances")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends an admin request without a body.
    pub async fn call(&self, method: Method, path: &str) -> Response {
        self.admin(method, path).send().await.unwrap()
    }

    /// GETs an admin path and parses its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.admin(Method::GET, path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn instance_names(&self) -> Vec<String> {
        let list = self.get_json("/api/v1/instances").await;
        list["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A private CA and a GitLab behind a certificate it signed, for `localhost` and 127.0.0.1.
pub struct GitLabWorld {
    pub ca: TestCa,
    pub gitlab: FakeGitLab,
}

impl GitLabWorld {
    pub async fn start() -> Self {
        Self::start_with(
            Validity::Current,
            &["localhost", "127.0.0.1"],
            Discovery::Correct,
        )
        .await
    }

    pub async fn start_with(validity: Validity, names: &[&str], discovery: Discovery) -> Self {
        let ca = TestCa::new("Corp Test Root CA");
        let gitlab = FakeGitLab::start(&ca.issue(names, validity), discovery).await;
        Self { ca, gitlab }
    }

    /// GitLab's certificate comes from an intermediate CA; `ca_pem` holds only the root.
    pub async fn start_behind_intermediate() -> Self {
        let ca = TestCa::new("Corp Test Root CA");
        let issuing = ca.intermediate("Corp Issuing CA 1");
        let gitlab = FakeGitLab::start(
            &issuing.issue(&["localhost"], Validity::Current),
            Discovery::Correct,
        )
        .await;
        Self { ca, gitlab }
    }

    /// A complete, valid registration body for this GitLab.
    pub fn registration(&self, name: &str) -> Value {
        json!({
            "name": name,
            "base_url": self.gitlab.base_url(),
            "client_id": default_application().client_id,
            "client_secret": CLIENT_SECRET,
            "ca_pem": self.ca.pem(),
            "scopes": ["openid", "read_api", "read_repository"],
        })
    }
}

/// Asserts an RFC 9457 problem with the given status and code, and returns its body.
pub async fn expect_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status);
    body
}

impl TestApp {
    /// Creates a service; returns its client ID and its secret (shown only in this answer).
    pub async fn create_service(&self, body: &Value) -> (String, String) {
        let response = self
            .admin(Method::POST, "/api/v1/services")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating a service");
        let created: Value = response.json().await.unwrap();
        (
            created["client_id"].as_str().unwrap().to_owned(),
            created["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// The client credentials grant, as a service would send it.
    pub async fn request_service_token(&self, client_id: &str, secret: &str) -> Response {
        self.client
            .post(format!("{}/api/v1/service-token", self.address))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    pub async fn service_token(&self, client_id: &str, secret: &str) -> String {
        let response = self.request_service_token(client_id, secret).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create_connect_link(&self, service_token: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}/api/v1/connect-sessions", self.address))
            .bearer_auth(service_token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn connections(&self) -> Vec<Value> {
        self.get_json("/api/v1/connections").await["connections"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Runs SQL against the app's database, as an operator with psql or sqlite3 would.
    pub fn execute_sql(&self, sql: &str) {
        use diesel::RunQueryDsl;
        let pool = labgate::db::connect(&self.settings.database).unwrap();
        diesel::sql_query(sql)
            .execute(&mut pool.get().unwrap())
            .unwrap();
    }
}

/// An instance `corp` on a fake GitLab, and a service `ci-bot` allowed to use it.
pub struct ConnectWorld {
    pub app: TestApp,
    pub world: GitLabWorld,
    pub service_client_id: String,
    pub service_secret: String,
    pub service_token: String,
    pub browser: Browser,
}

pub const RETURN_ORIGIN: &str = "https://bot.corp.example";

impl ConnectWorld {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> Self {
        let app = TestApp::spawn_with(backend, change).await;
        let world = GitLabWorld::start().await;
        let mut registration = world.registration("corp");
        registration["scopes"] = json!(default_application().scopes);
        assert_eq!(app.register(&registration).await.status(), 201);
        let (client_id, secret) = app
            .create_service(&json!({
                "name": "ci-bot",
                "instances": ["corp"],
                "scopes": ["read_api", "read_repository", "write_repository"],
                "return_origins": [RETURN_ORIGIN],
            }))
            .await;
        let service_token = app.service_token(&client_id, &secret).await;
        let browser = Browser::new(&app, &world);
        Self {
            app,
            world,
            service_client_id: client_id,
            service_secret: secret,
            service_token,
            browser,
        }
    }

    /// A connect link for `subject` with the given extra fields; returns its URL.
    pub async fn link(&self, subject: &str, extra: Value) -> String {
        let mut body = json!({"instance": "corp", "subject": subject});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = self
            .app
            .create_connect_link(&self.service_token, &body)
            .await;
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{created}");
        created["url"].as_str().unwrap().to_owned()
    }
}

/// A person's browser: trusts the fake GitLab's CA, follows no redirect on its own, keeps
/// labgate's cookies, and reaches labgate's public URL at the test server's address.
pub struct Browser {
    client: reqwest::Client,
    labgate: String,
    cookies: std::sync::Mutex<Vec<(String, String)>>,
}

impl Browser {
    pub fn new(app: &TestApp, world: &GitLabWorld) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(
                reqwest::Certificate::from_pem(world.ca.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        Self {
            client,
            labgate: app.address.clone(),
            cookies: Default::default(),
        }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.send(
            self.client.get(url.replacen(PUBLIC_URL, &self.labgate, 1)),
            url,
        )
        .await
    }

    pub async fn post(&self, url: &str) -> Response {
        self.send(
            self.client.post(url.replacen(PUBLIC_URL, &self.labgate, 1)),
            url,
        )
        .await
    }

    async fn send(&self, mut request: reqwest::RequestBuilder, url: &str) -> Response {
        let to_labgate = url.starts_with(PUBLIC_URL);
        let jar = self.cookies.lock().unwrap().clone();
        if to_labgate && !jar.is_empty() {
            let header: Vec<String> = jar
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request.send().await.unwrap();
        if to_labgate {
            for set in response.headers().get_all("set-cookie") {
                let set = set.to_str().unwrap();
                let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
                let mut jar = self.cookies.lock().unwrap();
                jar.retain(|(kept, _)| kept != name);
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        response
    }

    /// Opens a connect link, agrees, and follows GitLab's consent; returns where GitLab sends
    /// the browser back to.
    pub async fn consent(&self, link: &str) -> String {
        let page = self.get(link).await;
        assert_eq!(page.status(), 200, "opening the link");
        assert!(page.text().await.unwrap().contains("Continue to GitLab"));
        let to_gitlab = self.post(link).await;
        assert_eq!(
            to_gitlab.status(),
            302,
            "agreeing: {}",
            to_gitlab.text().await.unwrap()
        );
        let back = self.get(&location(&to_gitlab)).await;
        assert_eq!(
            back.status(),
            302,
            "GitLab's authorize: {}",
            back.text().await.unwrap()
        );
        location(&back)
    }

    /// The whole flow: link, GitLab, callback; returns labgate's last answer.
    pub async fn connect(&self, link: &str) -> Response {
        let callback = self.consent(link).await;
        self.get(&callback).await
    }
}

pub fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

impl ConnectWorld {
    /// Connects `subject` through the whole flow; returns the connection's id.
    pub async fn connect(&self, subject: &str, extra: Value) -> String {
        let done = self.browser.connect(&self.link(subject, extra).await).await;
        assert_eq!(done.status(), 200, "connecting {subject}");
        let listed = self
            .app
            .get_json(&format!("/api/v1/connections?subject={subject}"))
            .await;
        listed["connections"][0]["id"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/credentials` as the service.
    pub async fn fetch(&self, body: Value) -> Response {
        self.fetch_as(&self.service_token, body).await
    }

    pub async fn fetch_as(&self, service_token: &str, body: Value) -> Response {
        self.fetch_from(&self.app.address, service_token, body)
            .await
    }

    /// `fetch_as`, from the labgate process at `address` (another one on the same database).
    pub async fn fetch_from(&self, address: &str, service_token: &str, body: Value) -> Response {
        self.app
            .client
            .post(format!("{address}/api/v1/credentials"))
            .bearer_auth(service_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The access token of a successful fetch.
    pub async fn token(&self, body: Value) -> String {
        self.token_from(&self.app.address, body).await
    }

    /// `token`, from the labgate process at `address`.
    pub async fn token_from(&self, address: &str, body: Value) -> String {
        let response = self.fetch_from(address, &self.service_token, body).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn connection(&self, id: &str) -> Value {
        let all = self.app.connections().await;
        all.into_iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("connection {id} is listed"))
    }
}
