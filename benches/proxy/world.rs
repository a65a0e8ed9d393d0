//! The benchmark's world: the fake GitLab in this process, labgate as a child process with
//! instance `corp`, a service allowed `group/*` up to `write`, a connected person, their
//! GitLab token (for the direct calls) and an access grant (for the proxied ones).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::Response;
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::certs::{TestCa, Validity};
use crate::support::fake_gitlab::{Discovery, FakeGitLab, default_application};
use crate::support::{CLIENT_SECRET, PUBLIC_URL};

pub const PROJECT: &str = "group/bench";
const SUBJECT: &str = "bench-person";
const SCOPES: [&str; 4] = ["api", "read_api", "read_repository", "write_repository"];
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef0123456789";

pub struct World {
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    gitlab: FakeGitLab,
    labgate: Child,
    pub labgate_pid: u32,
    /// labgate's address, `http://127.0.0.1:PORT`.
    pub address: String,
    /// GitLab's base URL, sub-path included.
    pub gitlab_base: String,
    /// A client for labgate, and one that trusts GitLab's CA.
    pub client: reqwest::Client,
    pub gitlab_client: reqwest::Client,
    pub person_token: String,
    pub grant_token: String,
    pub project_id: u64,
}

impl World {
    pub async fn start() -> anyhow::Result<Self> {
        let ca = TestCa::new("Bench Root CA");
        let mut application = default_application();
        application.scopes.push("api".into());
        let scopes = application.scopes.clone();
        let gitlab = FakeGitLab::start_with(
            &ca.issue(&["localhost", "127.0.0.1"], Validity::Current),
            Discovery::Correct,
            application,
        )
        .await;
        let project_id = gitlab.create_repository(PROJECT);
        let dir = tempfile::tempdir()?;
        let ca_file = dir.path().join("gitlab-ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        let (labgate, address) = spawn_labgate(dir.path())?;
        let gitlab_client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes())?)
            .build()?;
        let mut world = Self {
            labgate_pid: labgate.id(),
            ca_file,
            gitlab_base: gitlab.base_url(),
            gitlab,
            labgate,
            address,
            client: reqwest::Client::new(),
            gitlab_client,
            person_token: String::new(),
            grant_token: String::new(),
            project_id,
            dir,
        };
        world.wait_until_ready().await?;
        world.set_up(&ca, &scopes).await?;
        Ok(world)
    }

    pub async fn stop(mut self) {
        let _ = self.labgate.kill();
        let _ = self.labgate.wait();
        self.gitlab.stop().await;
    }

    /// A fresh empty folder under the world's temporary one.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("the temporary folder is writable");
        path
    }

    pub fn direct_git_url(&self) -> String {
        let base = self.gitlab_base.replacen(
            "https://",
            &format!("https://oauth2:{}@", self.person_token),
            1,
        );
        format!("{base}/{PROJECT}.git")
    }

    pub fn proxy_git_url(&self) -> String {
        let host = self.address.trim_start_matches("http://");
        format!(
            "http://labgate:{}@{host}/git/corp/{PROJECT}.git",
            self.grant_token
        )
    }

    pub fn labgate_rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.labgate_pid)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .client
                .get(format!("{}/healthz", self.address))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "labgate did not start in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Instance, service, connection, the person's token and a write grant.
    async fn set_up(&mut self, ca: &TestCa, scopes: &[String]) -> anyhow::Result<()> {
        let registration = json!({
            "name": "corp",
            "base_url": self.gitlab_base,
            "client_id": default_application().client_id,
            "client_secret": CLIENT_SECRET,
            "ca_pem": ca.pem(),
            "scopes": scopes,
        });
        self.admin_post("/api/v1/instances", &registration, 201)
            .await?;
        let service = json!({
            "name": "bench-bot",
            "instances": ["corp"],
            "scopes": SCOPES,
            "return_origins": ["https://app.example"],
            "projects": ["group/*"],
            "max_access": "write",
        });
        let service = self.admin_post("/api/v1/services", &service, 201).await?;
        let service_token = self
            .client
            .post(format!("{}/api/v1/service-token", self.address))
            .basic_auth(
                field(&service, "client_id")?,
                Some(field(&service, "client_secret")?),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        let service_token = field(&expect(service_token, 200).await?, "access_token")?;

        let link = json!({"instance": "corp", "subject": SUBJECT, "scopes": SCOPES});
        let link = self.service_post(&service_token, "/api/v1/connect-sessions", &link, 201);
        let link = field(&link.await?, "url")?;
        connect(
            &Browser::trusting(&[&ca.pem()]).reaching(PUBLIC_URL, &self.address),
            &link,
        )
        .await?;

        let wanted = json!({"instance": "corp", "subject": SUBJECT, "scopes": SCOPES});
        let credentials = self.service_post(&service_token, "/api/v1/credentials", &wanted, 200);
        self.person_token = field(&credentials.await?, "access_token")?;
        let grant = json!({
            "instance": "corp", "subject": SUBJECT, "projects": [PROJECT],
            "access": "write", "ttl": 3600,
        });
        let grant = self.service_post(&service_token, "/api/v1/access-grants", &grant, 201);
        self.grant_token = field(&grant.await?, "token")?;
        Ok(())
    }

    async fn admin_post(&self, path: &str, body: &Value, status: u16) -> anyhow::Result<Value> {
        self.service_post(ADMIN_TOKEN, path, body, status).await
    }

    async fn service_post(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        status: u16,
    ) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        expect(response, status)
            .await
            .with_context(|| format!("POST {path}"))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.labgate.kill();
    }
}

/// `labgate serve` on a free port, with its database and key in `dir`.
fn spawn_labgate(dir: &Path) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
        command.env_remove(name);
    }
    let child = command
        .arg("serve")
        .current_dir(dir)
        .env("LABGATE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("LABGATE__SERVER__PUBLIC_URL", PUBLIC_URL)
        .env(
            "LABGATE__DATABASE__URL",
            format!("sqlite://{}", dir.join("labgate.db").display()),
        )
        .env("LABGATE__ADMIN__TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting labgate")?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// The connect flow as a person goes through it: link, GitLab's consent, the callback.
async fn connect(browser: &Browser, link: &str) -> anyhow::Result<()> {
    ensure!(browser.get(link).await.status() == 200, "opening {link}");
    let to_gitlab = browser.post(link).await;
    let at_gitlab = browser.get(&location(&to_gitlab)?).await;
    let back = browser.get(&location(&at_gitlab)?).await;
    ensure!(
        back.status() == 200,
        "the callback answered {}",
        back.status()
    );
    Ok(())
}

fn location(response: &Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get("location")
        .with_context(|| format!("no redirect but {}", response.status()))?
        .to_str()?
        .to_owned())
}

async fn expect(response: Response, status: u16) -> anyhow::Result<Value> {
    let got = response.status().as_u16();
    let body = response.text().await?;
    ensure!(got == status, "answered {got}, not {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

fn field(value: &Value, name: &str) -> anyhow::Result<String> {
    Ok(value[name]
        .as_str()
        .with_context(|| format!("no {name} in {value}"))?
        .to_owned())
}

/// A process's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// Real `git` in `dir` with nothing of the machine's configuration, trusting GitLab's CA;
/// returns its standard output.
pub async fn git(world: &World, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSL_CAINFO", &world.ca_file)
        .args(["-c", "credential.helper="])
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@corp.example",
        ])
        .args(args)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
