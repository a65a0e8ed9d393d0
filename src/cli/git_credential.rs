//! `labgate git-credential`: git's credential-helper protocol. `get` answers for two kinds of
//! URL; `store` and `erase` have nothing to keep.
//! - labgate's own proxy, `{LABGATE_URL}/git/{instance}/{project}.git`: `username=labgate` and an
//!   access grant for that one project (`read`, or `write` with `LABGATE_GIT_ACCESS=write`);
//! - a registered instance, matched by its base URL (sub-path included): `username=oauth2` and a
//!   fresh GitLab token.
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
    let protocol = asked.get("protocol").cloned().unwrap_or_default();
    let host = asked.get("host").cloned().unwrap_or_default();
    let path = asked.get("path").cloned();
    let client = LabgateClient::from_env()?;
    let subject = client.subject(None)?;
    if let Some(proxied) = proxied_repository(client.url(), &protocol, &host, path.as_deref())? {
        return answer_with_grant(&client, &subject, proxied).await;
    }
    if protocol != "https" {
        return Ok(());
    }
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
    tell_git("oauth2", token, answer["expires_at"].as_str())
}

/// A repository behind labgate's own proxy: the instance and the project's full path.
struct Proxied {
    instance: String,
    project: String,
}

/// Whether git asks about labgate's own `/git/` URLs, and for which repository. git sends the
/// path only with `credential.useHttpPath`, and a grant names one project, so it is required.
fn proxied_repository(
    labgate_url: &str,
    protocol: &str,
    host: &str,
    path: Option<&str>,
) -> Result<Option<Proxied>, ToolError> {
    let Ok(labgate) = url::Url::parse(labgate_url) else {
        return Ok(None);
    };
    let authority = match (labgate.host_str(), labgate.port()) {
        (Some(name), Some(port)) => format!("{name}:{port}"),
        (Some(name), None) => name.to_owned(),
        (None, _) => return Ok(None),
    };
    if labgate.scheme() != protocol || authority != host {
        return Ok(None);
    }
    let Some(path) = path else {
        return Err(ToolError(
            "git did not send the repository path, which labgate's access grants need: run `git config --global credential.useHttpPath true`".into(),
        ));
    };
    let prefix = format!("{}/git/", labgate.path().trim_matches('/'));
    let Some(repository) = path
        .trim_start_matches('/')
        .strip_prefix(prefix.trim_start_matches('/'))
    else {
        return Ok(None);
    };
    let Some((instance, project)) = repository.split_once('/') else {
        return Ok(None);
    };
    let project = project.trim_end_matches('/');
    let project = project.strip_suffix(".git").unwrap_or(project);
    Ok(Some(Proxied {
        instance: instance.to_owned(),
        project: project.to_owned(),
    }))
}

async fn answer_with_grant(
    client: &LabgateClient,
    subject: &str,
    proxied: Proxied,
) -> Result<(), ToolError> {
    let access = std::env::var("LABGATE_GIT_ACCESS").unwrap_or_else(|_| "read".into());
    let grant = client
        .access_grant(json!({
            "instance": proxied.instance,
            "subject": subject,
            "projects": [proxied.project],
            "access": access,
        }))
        .await?;
    let token = grant["token"]
        .as_str()
        .ok_or_else(|| ToolError("labgate's answer has no access grant token".into()))?;
    tell_git("labgate", token, grant["expires_at"].as_str())
}

/// Writes the answer git reads: who, the password, and when it stops working.
fn tell_git(username: &str, password: &str, expires_at: Option<&str>) -> Result<(), ToolError> {
    let expiry = expires_at
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.timestamp());
    let mut answer = format!("username={username}\npassword={password}\n");
    if let Some(expiry) = expiry {
        answer.push_str(&format!("password_expiry_utc={expiry}\n"));
    }
    std::io::stdout()
        .lock()
        .write_all(answer.as_bytes())
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
    fn recognises_labgate_s_own_git_urls() {
        let own = |protocol, host, path| {
            proxied_repository("http://127.0.0.1:8080", protocol, host, path)
                .unwrap()
                .map(|p| (p.instance, p.project))
        };
        assert_eq!(
            own("http", "127.0.0.1:8080", Some("git/corp/group/sub/app.git")),
            Some(("corp".into(), "group/sub/app".into()))
        );
        assert_eq!(
            own("http", "127.0.0.1:8080", Some("git/corp/group/app")),
            Some(("corp".into(), "group/app".into()))
        );
        assert_eq!(
            own("https", "127.0.0.1:8080", Some("git/corp/g/a.git")),
            None
        );
        assert_eq!(
            own("http", "127.0.0.1:9090", Some("git/corp/g/a.git")),
            None
        );
        assert_eq!(
            own("http", "127.0.0.1:8080", Some("other/corp/g/a.git")),
            None
        );
        assert!(
            proxied_repository("http://127.0.0.1:8080", "http", "127.0.0.1:8080", None).is_err()
        );
        let behind = proxied_repository(
            "https://tools.corp/labgate/",
            "https",
            "tools.corp",
            Some("labgate/git/corp/g/a.git"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (behind.instance.as_str(), behind.project.as_str()),
            ("corp", "g/a")
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
