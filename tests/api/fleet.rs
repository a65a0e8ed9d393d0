//! `labgate serve` processes (the built binary) sharing one test's PostgreSQL database, master
//! key and admin token, with the background refresher sweeping every second, that a test can
//! SIGKILL and start again: what the crash tests run.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::helpers::ConnectWorld;
use crate::support::PUBLIC_URL;

/// `labgate serve` processes on the test's database, each on its own port.
pub(crate) struct Fleet {
    env: Vec<(String, String)>,
    processes: Vec<(u16, Child)>,
}

impl Fleet {
    /// Starts `count` processes and waits until each answers `/healthz`.
    pub(crate) async fn start(cw: &ConnectWorld, count: usize) -> Self {
        let settings = &cw.app.settings;
        let labgate::config::DatabaseUrl::Postgres(url) = &settings.database.url else {
            unreachable!("a fleet runs on PostgreSQL");
        };
        let env = vec![
            ("LABGATE__SERVER__PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("LABGATE__SERVER__WORKERS", "1".to_owned()),
            ("LABGATE__DATABASE__URL", url.expose_secret().to_owned()),
            (
                "LABGATE__SECURITY__MASTER_KEY_FILE",
                settings
                    .security
                    .generated_master_key_path
                    .display()
                    .to_string(),
            ),
            (
                "LABGATE__ADMIN__TOKEN",
                settings
                    .admin
                    .token
                    .as_ref()
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
            ),
            ("LABGATE__OUTBOUND__CONNECT_TIMEOUT_SECONDS", "1".to_owned()),
            ("LABGATE__OUTBOUND__REQUEST_TIMEOUT_SECONDS", "1".to_owned()),
            ("LABGATE__REFRESHER__INTERVAL_SECONDS", "1".to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut fleet = Self {
            env,
            processes: Vec::new(),
        };
        for _ in 0..count {
            let port = free_port();
            let child = fleet.spawn(port).await;
            fleet.processes.push((port, child));
        }
        fleet
    }

    /// The address of process `n` (modulo the fleet's size).
    pub(crate) fn address(&self, n: usize) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.processes[n % self.processes.len()].0
        )
    }

    async fn spawn(&self, port: u16) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_labgate"))
            .arg("serve")
            .envs(self.env.iter().cloned())
            .env("LABGATE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("labgate starts");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let up = client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if up {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("labgate did not start on port {port}");
    }

    /// SIGKILL, then the same process started again on the same port.
    pub(crate) async fn kill_and_restart(&mut self, n: usize) {
        let port = self.processes[n].0;
        self.processes[n].1.kill().unwrap();
        self.processes[n].1.wait().unwrap();
        let child = self.spawn(port).await;
        self.processes[n].1 = child;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
