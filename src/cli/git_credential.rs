//! `labgate git-credential`: git's credential-helper protocol. `get` maps git's protocol, host
//! and path to a registered instance by its base URL (sub-path included) and answers with
//! `username=oauth2` and a fresh token; `store` and `erase` have nothing to keep.
//!
//! git config --global credential.https://git.corp.example.helper '!labgate git-credential'

use std::io::{BufRead, Write};

use clap::ValueEnum;
use serde_json::{Value, json};

use super::client::{LabgateClient, ToolError};

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Operation {
    Get,
    Store,
    Erase,
}

pub(super) async fn run(operation: Operation) -> Result<(), ToolError> {
    let asked = read_request(std::io::stdin().lock());
    let Operation::Get = operation else {
        return Ok(());
    };
    if asked.get("protocol").map(String::as_str) != Some("https") {
        return Ok(());
    }
    let host = asked.get("host").cloned().unwrap_or_default();
    let path = asked.get("path").cloned();
    let client = LabgateClient::from_env()?;
    let subject = client.subject(None)?;
    let instances = client.instances().await?;
    let Some(instance) = pick(&instances, &host, path.as_deref())? else {
        // Not ours: an empty answer lets git ask its next helper.
        return Ok(());
    };
    let scopes: Vec<String> = std::env::var("LABGATE_GIT_SCOPES")
        .unwrap_or_else(|_| "read_repository".into())
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let answer = client
        .credentials(json!({"instance": instance, "subject": subject, "scopes": scopes}))
        .await?;
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| ToolError("labgate's answer has no token".into()))?;
    let expiry = answer["expires_at"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.timestamp());
    let mut out = std::io::stdout().lock();
    let mut answer = format!("username=oauth2\npassword={token}\n");
    if let Some(expiry) = expiry {
        answer.push_str(&format!("password_expiry_utc={expiry}\n"));
    }
    out.write_all(answer.as_bytes())
        .map_err(|e| ToolError(format!("cannot answer git: {e}")))
}

/// git's `key=value` lines, up to a blank line or the end.
fn read_request(input: impl BufRead) -> std::collections::HashMap<String, String> {
    input
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The instance whose base URL covers `host` and `path`. Without a path (git sends one only
/// with `credential.useHttpPath`), the host must identify one instance.
fn pick(instances: &[Value], host: &str, path: Option<&str>) -> Result<Option<String>, ToolError> {
    let on_host: Vec<(&str, String)> = instances
        .iter()
        .filter_map(|instance| {
            let base = url::Url::parse(instance["base_url"].as_str()?).ok()?;
            let authority = match base.port() {
                Some(port) => format!("{}:{port}", base.host_str()?),
                None => base.host_str()?.to_owned(),
            };
            (authority == host).then(|| {
                (
                    instance["name"].as_str().unwrap_or_default(),
                    base.path().trim_matches('/').to_owned(),
                )
            })
        })
        .collect();
    match path {
        Some(path) => {
            let path = path.trim_start_matches('/');
            Ok(on_host
                .into_iter()
                .filter(|(_, sub)| {
                    sub.is_empty() || path == sub || path.starts_with(&format!("{sub}/"))
                })
                .max_by_key(|(_, sub)| sub.len())
                .map(|(name, _)| name.to_owned()))
        }
        None => match on_host.as_slice() {
            [] => Ok(None),
            [(name, _)] => Ok(Some((*name).to_owned())),
            _ => Err(ToolError(format!(
                "several instances live on {host}: run `git config --global credential.useHttpPath true` so git sends the path"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_instance_by_host_port_and_sub_path() {
        let instances = vec![
            json!({"name": "corp", "base_url": "https://git.corp/gitlab"}),
            json!({"name": "lab", "base_url": "https://git.corp/lab"}),
            json!({"name": "other", "base_url": "https://other.corp:8443"}),
        ];
        assert_eq!(
            pick(&instances, "git.corp", Some("gitlab/group/app.git"))
                .unwrap()
                .as_deref(),
            Some("corp")
        );
        assert_eq!(
            pick(&instances, "git.corp", Some("lab/app.git"))
                .unwrap()
                .as_deref(),
            Some("lab")
        );
        assert_eq!(
            pick(&instances, "git.corp", Some("gitlabx/app.git")).unwrap(),
            None
        );
        assert_eq!(
            pick(&instances, "other.corp:8443", None)
                .unwrap()
                .as_deref(),
            Some("other")
        );
        assert_eq!(
            pick(&instances, "other.corp", None).unwrap(),
            None,
            "the port is part of the host"
        );
        assert!(
            pick(&instances, "git.corp", None)
                .unwrap_err()
                .0
                .contains("useHttpPath")
        );
    }

    #[test]
    fn reads_git_s_request_up_to_the_blank_line() {
        let asked = read_request(
            "protocol=https\nhost=git.corp\npath=gitlab/a.git\n\nignored=1\n".as_bytes(),
        );
        assert_eq!(asked.len(), 3);
        assert_eq!(asked["path"], "gitlab/a.git");
    }
}
