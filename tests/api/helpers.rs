use std::time::Duration;

use actix_web::dev::ServerHandle;
use labgate::config::{OutboundSettings, RefresherSettings, Settings};
use labgate::startup::Application;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::certs::{TestCa, Validity};
use crate::support::database::{Backend, TestDatabase};
use crate::support::fake_gitlab::{Discovery, FakeGitLab, default_application};
use crate::support::{CLIENT_SECRET, PUBLIC_URL, settings};

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[actix_web::test]
            async fn sqlite() {
                super::$test(crate::support::database::Backend::Sqlite).await
            }

            #[actix_web::test]
            async fn postgres() {
                match crate::support::database::Backend::postgres() {
                    Some(backend) => super::$test(backend).await,
                    None => eprintln!("LABGATE_TEST_POSTGRES_URL is not set: PostgreSQL not tested"),
                }
            }
        }
    )*};
}

/// Stops a labgate server when the test lets go of it: a server left running keeps its state
/// (and with PostgreSQL its change listener) alive after the test's database is gone.
pub(crate) struct StopOnDrop(pub ServerHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // The command is sent now; the server stops on its own threads.
        drop(self.0.stop(false));
    }
}

pub(crate) struct TestApp {
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
    pub(crate) async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub(crate) async fn spawn_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::create(&backend);
        let mut settings = Self::settings_for(&db);
        change(&mut settings);
        Self::start(db, settings).await
    }

    /// labgate's configuration, isolated (its own database, port and master key, an admin
    /// token, a public https URL), and small and quick: one worker, a small pool, calls to
    /// GitLab that give up within seconds.
    pub(crate) fn settings_for(db: &TestDatabase) -> Settings {
        let admin_token = format!("test-admin-{}", uuid::Uuid::new_v4());
        let mut settings = settings::isolated(db, &admin_token);
        settings.server.workers = 1;
        settings.database.pool_size = 4;
        settings.database.pool_timeout = Duration::from_secs(5);
        settings.outbound = OutboundSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        };
        // Tests run sweeps themselves, when they mean to.
        settings.refresher = RefresherSettings {
            enabled: false,
            interval: Duration::from_secs(1),
            concurrency: 8,
        };
        settings
    }

    pub(crate) async fn start(db: TestDatabase, settings: Settings) -> Self {
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
            // Idle connections are dropped well before labgate's 5 s keep-alive closes them: a
            // request sent on a connection the server is closing fails (`IncompleteMessage`),
            // which a test that pauses (making an RSA key, say) would otherwise meet by chance.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap(),
            settings,
            db,
            handle,
            context,
        }
    }

    /// Stops the server and hands back its database, for a restart.
    pub(crate) async fn stop(self) -> (TestDatabase, Settings) {
        self.handle.0.stop(true).await;
        (self.db, self.settings)
    }

    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(&self.admin_token)
    }

    pub(crate) async fn register(&self, body: &Value) -> Response {
        self.admin(Method::POST, "/api/v1/instances")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends an admin request without a body.
    pub(crate) async fn call(&self, method: Method, path: &str) -> Response {
        self.admin(method, path).send().await.unwrap()
    }

    /// GETs an admin path and parses its JSON body.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.admin(Method::GET, path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// `/metrics` as Prometheus scrapes it (no token).
    pub(crate) async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.address);
        let response = self.client.get(url).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub(crate) async fn instance_names(&self) -> Vec<String> {
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
pub(crate) struct GitLabWorld {
    pub ca: TestCa,
    pub gitlab: FakeGitLab,
}

impl GitLabWorld {
    pub(crate) async fn start() -> Self {
        Self::start_with(
            Validity::Current,
            &["localhost", "127.0.0.1"],
            Discovery::Correct,
        )
        .await
    }

    pub(crate) async fn start_with(
        validity: Validity,
        names: &[&str],
        discovery: Discovery,
    ) -> Self {
        let ca = TestCa::new("Corp Test Root CA");
        let gitlab = FakeGitLab::start(&ca.issue(names, validity), discovery).await;
        Self { ca, gitlab }
    }

    /// GitLab's certificate comes from an intermediate CA; `ca_pem` holds only the root.
    pub(crate) async fn start_behind_intermediate() -> Self {
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
    pub(crate) fn registration(&self, name: &str) -> Value {
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
/// labgate with the instance `corp` registered on a fake GitLab of its own.
pub(crate) async fn app_with_corp(backend: Backend) -> (TestApp, GitLabWorld) {
    let app = TestApp::spawn(backend).await;
    let world = GitLabWorld::start().await;
    assert_eq!(
        app.register(&world.registration("corp")).await.status(),
        201
    );
    (app, world)
}

pub(crate) async fn expect_problem(response: Response, status: u16, code: &str) -> Value {
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
    pub(crate) async fn create_service(&self, body: &Value) -> (String, String) {
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
    pub(crate) async fn request_service_token(&self, client_id: &str, secret: &str) -> Response {
        self.client
            .post(format!("{}/api/v1/service-token", self.address))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn service_token(&self, client_id: &str, secret: &str) -> String {
        let response = self.request_service_token(client_id, secret).await;
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn create_connect_link(&self, service_token: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}/api/v1/connect-sessions", self.address))
            .bearer_auth(service_token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn connections(&self) -> Vec<Value> {
        self.get_json("/api/v1/connections").await["connections"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Runs SQL against the app's database, as an operator with psql or sqlite3 would.
    pub(crate) fn execute_sql(&self, sql: &str) {
        use diesel::RunQueryDsl;
        let pool = labgate::db::connect(&self.settings.database).unwrap();
        diesel::sql_query(sql)
            .execute(&mut pool.get().unwrap())
            .unwrap();
    }
}

/// An instance `corp` on a fake GitLab, and a service `ci-bot` allowed to use it.
pub(crate) struct ConnectWorld {
    pub app: TestApp,
    pub world: GitLabWorld,
    pub service_client_id: String,
    pub service_secret: String,
    pub service_token: String,
    pub browser: Browser,
}

pub(crate) const RETURN_ORIGIN: &str = "https://bot.corp.example";

impl ConnectWorld {
    pub(crate) async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub(crate) async fn start_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> Self {
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
        let browser = person_browser(&app, &world);
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
    pub(crate) async fn link(&self, subject: &str, extra: Value) -> String {
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

/// A person's browser: trusts the fake GitLab's CA, and reaches labgate's public URL at the
/// test server's address.
pub(crate) fn person_browser(app: &TestApp, world: &GitLabWorld) -> Browser {
    Browser::trusting(&[&world.ca.pem()]).reaching(PUBLIC_URL, &app.address)
}

/// The connect flow, as a person goes through it.
impl Browser {
    /// Opens a connect link, agrees, and follows GitLab's consent; returns where GitLab sends
    /// the browser back to.
    pub(crate) async fn consent(&self, link: &str) -> String {
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

    /// The whole flow: link, GitLab, callback, and on to labgate's own result page if the
    /// callback sends the browser there; returns labgate's last answer.
    pub(crate) async fn connect(&self, link: &str) -> Response {
        let callback = self.consent(link).await;
        let back = self.get(&callback).await;
        match result_page(&callback, &back) {
            Some(result) => self.get(&result).await,
            None => back,
        }
    }
}

/// Where the callback at `callback` sends the browser, when that is labgate's result page (a
/// path on labgate itself, not a service's `return_to`).
pub(crate) fn result_page(callback: &str, back: &Response) -> Option<String> {
    if !back.status().is_redirection() {
        return None;
    }
    let to = location(back);
    to.starts_with("/oauth/")
        .then(|| url::Url::parse(callback).unwrap().join(&to).unwrap().into())
}

pub(crate) fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

impl ConnectWorld {
    /// Connects `subject` through the whole flow; returns the connection's id.
    pub(crate) async fn connect(&self, subject: &str, extra: Value) -> String {
        let done = self.browser.connect(&self.link(subject, extra).await).await;
        assert_eq!(done.status(), 200, "connecting {subject}");
        let listed = self
            .app
            .get_json(&format!("/api/v1/connections?subject={subject}"))
            .await;
        listed["connections"][0]["id"].as_str().unwrap().to_owned()
    }

    /// `POST /api/v1/credentials` as the service.
    pub(crate) async fn fetch(&self, body: Value) -> Response {
        self.fetch_as(&self.service_token, body).await
    }

    pub(crate) async fn fetch_as(&self, service_token: &str, body: Value) -> Response {
        self.fetch_from(&self.app.address, service_token, body)
            .await
    }

    /// `fetch_as`, from the labgate process at `address` (another one on the same database).
    pub(crate) async fn fetch_from(
        &self,
        address: &str,
        service_token: &str,
        body: Value,
    ) -> Response {
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
    pub(crate) async fn token(&self, body: Value) -> String {
        self.token_from(&self.app.address, body).await
    }

    /// `token`, from the labgate process at `address`.
    pub(crate) async fn token_from(&self, address: &str, body: Value) -> String {
        let response = self.fetch_from(address, &self.service_token, body).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn connection(&self, id: &str) -> Value {
        let all = self.app.connections().await;
        all.into_iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("connection {id} is listed"))
    }
}
