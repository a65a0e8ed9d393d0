//! The request log of a real `labgate serve` process with `LABGATE__LOG__FORMAT=json`: one JSON
//! object per line; each request's line carries its method, path, status, duration and the id
//! echoed as `X-Request-Id`, at a level that says who should look.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// `labgate serve` on its embedded defaults in `dir`, logging JSON; killed when dropped.
struct JsonLogging {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl JsonLogging {
    fn start(dir: &std::path::Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_labgate"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LABGATE")) {
            command.env_remove(name);
        }
        let mut child = command
            .current_dir(dir)
            .arg("serve")
            .env("LABGATE__LOG__FORMAT", "json")
            .env("LABGATE__SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let mut running = Self {
            child,
            lines,
            port: 0,
        };
        while running.port == 0 {
            let line = running.next_line().expect("labgate said where it listens");
            if line["fields"]["message"] == "labgate is listening" {
                running.port = line["fields"]["port"].as_u64().unwrap() as u16;
            }
        }
        running
    }

    /// The next line, which must be one JSON object.
    fn next_line(&self) -> Option<Value> {
        let line = self.lines.recv_timeout(Duration::from_secs(20)).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// The log line of the request with this id.
    fn request_line(&self, id: &str) -> Value {
        loop {
            let line = self.next_line().expect("the request's line");
            if line["span"]["request.id"] == id {
                return line;
            }
        }
    }
}

impl Drop for JsonLogging {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn request_lines_are_json_with_id_duration_and_a_level_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let labgate = JsonLogging::start(dir.path());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", labgate.port);

    for (path, status, level) in [
        ("/healthz", 200, "INFO"),
        // The sign-in page a browser is sent to is no error.
        ("/admin/instances", 303, "INFO"),
        ("/api/v1/instances", 401, "INFO"),
        ("/no/such/page", 404, "INFO"),
        // A malformed request: the caller's software should look.
        ("/gitlab/corp/api/v4/projects/1/..%2Fmembers", 400, "WARN"),
    ] {
        let answer = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
        let id = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        let line = labgate.request_line(&id);
        assert_eq!(line["level"], level, "{path}: {line}");
        assert_eq!(line["span"]["http.path"], path.split('?').next().unwrap());
        assert_eq!(line["span"]["http.status_code"], status, "{line}");
        assert!(
            line["span"]["http.duration_ms"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
    }
}
